//! The responder: on each interface, answer ARP requests and neighbour solicitations for
//! the addresses this node holds, with the interface's MAC, and announce them (gratuitous
//! ARP, unsolicited neighbour advertisements) when they are taken over and after the link
//! comes back up.
//!
//! What to answer comes from a shared [`Table`] the elections write: an address appears in
//! it when its lease is won and leaves it the moment the lease is lost, released or the
//! address withdrawn; the next frame is already answered (or not) accordingly. Each entry has
//! a generation, bumped on every takeover, so that a takeover is announced even if the table
//! changed back and forth in between.
//!
//! One task per interface; it opens its sockets ([`socket`]) only while it has something to
//! answer and the link is up, so a node that holds nothing reads no frames at all.

pub mod link;
mod socket;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::wire::{
    ArpOperation, ArpPacket, ETHERTYPE_ARP, ETHERTYPE_IPV6, EthernetFrame, MacAddr, NdpMessage,
    NeighborAdvertisement, WireError, solicited_node,
};
use link::{LinkInfo, Links};
use socket::PacketSocket;

/// How takeovers are announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnnounceConfig {
    /// How many rounds of gratuitous ARP / unsolicited NA (each round: an ARP announcement
    /// and a gratuitous ARP reply per IPv4 address, an unsolicited NA per IPv6 address).
    pub count: u32,
    /// Time between rounds.
    pub interval: Duration,
}

impl Default for AnnounceConfig {
    /// Five rounds a second apart: about five seconds, as MetalLB does, so a switch or
    /// host that missed the first (a port still coming up, a lossy link) gets another.
    fn default() -> Self {
        AnnounceConfig {
            count: 5,
            interval: Duration::from_secs(1),
        }
    }
}

/// An address this node answers for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    /// The interfaces to answer on.
    pub interfaces: BTreeSet<String>,
    /// Bumped on every takeover, so the responder announces again.
    pub generation: u64,
}

/// What this node answers for, by address.
pub type Table = Arc<BTreeMap<IpAddr, Held>>;

/// Frame counters, shared by all interfaces (read with [`Counters::snapshot`]).
#[derive(Debug, Default)]
pub struct Counters {
    pub(crate) arp_replies: AtomicU64,
    pub(crate) na_replies: AtomicU64,
    pub(crate) gratuitous_arp: AtomicU64,
    pub(crate) unsolicited_na: AtomicU64,
    pub(crate) malformed: AtomicU64,
    pub(crate) send_errors: AtomicU64,
    pub(crate) socket_errors: AtomicU64,
    pub(crate) leases_acquired: AtomicU64,
    pub(crate) leases_renewed: AtomicU64,
    pub(crate) leases_released: AtomicU64,
    pub(crate) leases_lost: AtomicU64,
    pub(crate) lease_conflicts: AtomicU64,
    pub(crate) lease_errors: AtomicU64,
}

/// The counters at one moment, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct CountersSnapshot {
    /// ARP replies sent (requests answered).
    pub arp_replies: u64,
    /// Solicited neighbour advertisements sent.
    pub na_replies: u64,
    /// Gratuitous ARP frames sent (announcements and gratuitous replies).
    pub gratuitous_arp: u64,
    /// Unsolicited neighbour advertisements sent.
    pub unsolicited_na: u64,
    /// Frames that passed the socket filter but did not decode.
    pub malformed: u64,
    /// Frames that could not be sent.
    pub send_errors: u64,
    /// Sockets or multicast memberships that could not be opened.
    pub socket_errors: u64,
    /// Leases won.
    pub leases_acquired: u64,
    /// Renewals written.
    pub leases_renewed: u64,
    /// Leases given up (ineligible, withdrawn, shutdown).
    pub leases_released: u64,
    /// Leases lost (renew deadline passed, taken by another node).
    pub leases_lost: u64,
    /// Writes that lost an optimistic-concurrency race.
    pub lease_conflicts: u64,
    /// Backend failures other than conflicts.
    pub lease_errors: u64,
}

impl Counters {
    /// Current values.
    pub fn snapshot(&self) -> CountersSnapshot {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        CountersSnapshot {
            arp_replies: g(&self.arp_replies),
            na_replies: g(&self.na_replies),
            gratuitous_arp: g(&self.gratuitous_arp),
            unsolicited_na: g(&self.unsolicited_na),
            malformed: g(&self.malformed),
            send_errors: g(&self.send_errors),
            socket_errors: g(&self.socket_errors),
            leases_acquired: g(&self.leases_acquired),
            leases_renewed: g(&self.leases_renewed),
            leases_released: g(&self.leases_released),
            leases_lost: g(&self.leases_lost),
            lease_conflicts: g(&self.lease_conflicts),
            lease_errors: g(&self.lease_errors),
        }
    }
}

pub(crate) fn bump(a: &AtomicU64) {
    a.fetch_add(1, Ordering::Relaxed);
}

/// What to do with a received frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Answer {
    /// Send this frame back.
    Reply(Vec<u8>),
    /// Not for us (another address, our own frame, a gratuitous frame, a reply).
    Ignore,
    /// It passed the filter but does not decode.
    Malformed(WireError),
}

/// The answer to one frame received on an interface whose MAC is `mac`, answering for the
/// addresses for which `holds` is true. Pure, so every rule is unit-tested.
pub(crate) fn answer(frame: &[u8], mac: MacAddr, holds: impl Fn(IpAddr) -> bool) -> Answer {
    let eth = match EthernetFrame::parse(frame) {
        Ok(e) => e,
        Err(e) => return Answer::Malformed(e),
    };
    if eth.src == mac {
        return Answer::Ignore;
    }
    match eth.ethertype {
        ETHERTYPE_ARP => match ArpPacket::parse(eth.payload) {
            Ok(arp)
                if arp.operation == ArpOperation::Request
                    && !arp.is_gratuitous()
                    && holds(IpAddr::V4(arp.target_ip)) =>
            {
                Answer::Reply(arp.reply(mac).to_frame(arp.sender_mac, mac))
            }
            Ok(_) => Answer::Ignore,
            Err(e) => Answer::Malformed(e),
        },
        ETHERTYPE_IPV6 => match NdpMessage::parse(eth.payload) {
            Ok(NdpMessage::Solicitation(ns)) if holds(IpAddr::V6(ns.target)) => {
                let dst = ns.source_link_layer.unwrap_or(eth.src);
                Answer::Reply(ns.answer(mac).to_frame(mac, dst))
            }
            Ok(_) => Answer::Ignore,
            Err(e) => Answer::Malformed(e),
        },
        _ => Answer::Ignore,
    }
}

/// The frames of one announcement round for `addr`.
pub(crate) fn announcement_frames(addr: IpAddr, mac: MacAddr) -> Vec<Vec<u8>> {
    match addr {
        IpAddr::V4(v4) => vec![
            ArpPacket::announcement(mac, v4).to_frame(MacAddr::BROADCAST, mac),
            ArpPacket::gratuitous_reply(mac, v4).to_frame(MacAddr::BROADCAST, mac),
        ],
        IpAddr::V6(v6) => {
            vec![NeighborAdvertisement::unsolicited(v6, mac).to_frame(mac, MacAddr::BROADCAST)]
        }
    }
}

/// Solicited-node groups joined on one interface (an IPv6 UDP socket's memberships make the
/// kernel send MLD reports and program the NIC's multicast filter, so switches that snoop
/// MLD forward solicitations to us).
#[derive(Debug)]
struct Multicast {
    socket: Option<socket2::Socket>,
    joined: BTreeSet<Ipv6Addr>,
}

impl Multicast {
    fn new() -> Multicast {
        Multicast {
            socket: None,
            joined: BTreeSet::new(),
        }
    }

    /// Joins and leaves groups so that exactly those of `addrs` are joined.
    fn sync(
        &mut self,
        ifindex: u32,
        addrs: &BTreeSet<Ipv6Addr>,
        counters: &Counters,
        ifname: &str,
    ) {
        let want: BTreeSet<Ipv6Addr> = addrs.iter().map(|a| solicited_node(*a)).collect();
        if want.is_empty() {
            self.socket = None; // closing the socket leaves every group
            self.joined.clear();
            return;
        }
        if self.socket.is_none() {
            match socket2::Socket::new(socket2::Domain::IPV6, socket2::Type::DGRAM, None) {
                Ok(s) => self.socket = Some(s),
                Err(e) => {
                    bump(&counters.socket_errors);
                    warn!(interface = ifname, error = %e, "cannot open the socket for multicast memberships");
                    return;
                }
            }
        }
        let Some(socket) = &self.socket else { return };
        for g in self.joined.difference(&want).copied().collect::<Vec<_>>() {
            let _ = socket.leave_multicast_v6(&g, ifindex);
            self.joined.remove(&g);
        }
        for g in want.difference(&self.joined).copied().collect::<Vec<_>>() {
            match socket.join_multicast_v6(&g, ifindex) {
                Ok(()) => {
                    self.joined.insert(g);
                }
                Err(e) => {
                    bump(&counters.socket_errors);
                    warn!(interface = ifname, group = %g, error = %e, "cannot join the solicited-node group");
                }
            }
        }
    }
}

struct Sockets {
    index: u32,
    arp: PacketSocket,
    nd: PacketSocket,
}

/// A pending round of announcements for one address.
#[derive(Debug, Clone, Copy)]
struct Burst {
    remaining: u32,
    next: Instant,
}

/// Runs the responder of interface `name` until `stop` says so (or its sender goes).
pub(crate) async fn run_interface(
    name: String,
    mut table: watch::Receiver<Table>,
    mut links: watch::Receiver<Links>,
    mut stop: watch::Receiver<bool>,
    announce: AnnounceConfig,
    counters: Arc<Counters>,
) {
    let mut sockets: Option<Sockets> = None;
    let mut multicast = Multicast::new();
    let mut was_up = false;
    let mut last_mac: Option<MacAddr> = None;
    let mut announced: BTreeMap<IpAddr, u64> = BTreeMap::new();
    let mut bursts: BTreeMap<IpAddr, Burst> = BTreeMap::new();
    let mut retry_open: Option<Instant> = None;
    let mut buf_arp = vec![0u8; 2048];
    let mut buf_nd = vec![0u8; 2048];
    let mut failed = false;
    loop {
        // Reconcile with the table and the link.
        let link: Option<LinkInfo> = links.borrow_and_update().get(&name).cloned();
        let held: BTreeMap<IpAddr, u64> = table
            .borrow_and_update()
            .iter()
            .filter(|(_, h)| h.interfaces.contains(&name))
            .map(|(a, h)| (*a, h.generation))
            .collect();
        let usable = link
            .as_ref()
            .filter(|l| l.up && l.mac.is_some() && !l.loopback);
        let now = Instant::now();

        // Takeovers and the link coming back are announced; withdrawn addresses are not.
        announced.retain(|a, _| held.contains_key(a));
        bursts.retain(|a, _| held.contains_key(a));
        for (addr, generation) in &held {
            if announced.get(addr) != Some(generation) {
                announced.insert(*addr, *generation);
                bursts.insert(
                    *addr,
                    Burst {
                        remaining: announce.count,
                        next: now,
                    },
                );
            }
        }
        let up = usable.is_some();
        if up && !was_up && !held.is_empty() {
            info!(interface = %name, "link up: announcing again");
            for addr in held.keys() {
                bursts.insert(
                    *addr,
                    Burst {
                        remaining: announce.count,
                        next: now,
                    },
                );
            }
        }
        was_up = up;
        // A new MAC (a bond failing over, an operator's `ip link set address`): tell everyone.
        let mac_now = usable.and_then(|l| l.mac);
        if mac_now.is_some() && last_mac.is_some() && mac_now != last_mac && !held.is_empty() {
            info!(interface = %name, "MAC changed: announcing again");
            for addr in held.keys() {
                bursts.insert(
                    *addr,
                    Burst {
                        remaining: announce.count,
                        next: now,
                    },
                );
            }
        }
        if mac_now.is_some() {
            last_mac = mac_now;
        }

        match usable {
            Some(l) if !held.is_empty() => {
                if sockets.as_ref().is_some_and(|s| s.index != l.index) {
                    sockets = None;
                    multicast = Multicast::new();
                }
                if sockets.is_none() && retry_open.is_none_or(|t| now >= t) {
                    match (
                        PacketSocket::open(l.index, ETHERTYPE_ARP, &socket::arp_request_filter()),
                        PacketSocket::open(
                            l.index,
                            ETHERTYPE_IPV6,
                            &socket::neighbor_solicitation_filter(),
                        ),
                    ) {
                        (Ok(arp), Ok(nd)) => {
                            debug!(interface = %name, index = l.index, "sockets open");
                            sockets = Some(Sockets {
                                index: l.index,
                                arp,
                                nd,
                            });
                            retry_open = None;
                        }
                        (a, n) => {
                            bump(&counters.socket_errors);
                            let e = a
                                .err()
                                .or(n.err())
                                .map(|e| e.to_string())
                                .unwrap_or_default();
                            warn!(interface = %name, error = %e, "cannot open packet sockets; retrying in a second");
                            retry_open = Some(now + Duration::from_secs(1));
                        }
                    }
                }
                let v6: BTreeSet<Ipv6Addr> = held
                    .keys()
                    .filter_map(|a| match a {
                        IpAddr::V6(v6) => Some(*v6),
                        IpAddr::V4(_) => None,
                    })
                    .collect();
                multicast.sync(l.index, &v6, &counters, &name);
            }
            _ => {
                if sockets.take().is_some() {
                    debug!(interface = %name, "sockets closed");
                }
                multicast.sync(0, &BTreeSet::new(), &counters, &name);
            }
        }

        // Send what is due.
        if let (Some(s), Some(l)) = (&sockets, usable)
            && let Some(mac) = l.mac
        {
            for (addr, burst) in bursts.iter_mut() {
                if burst.next <= now && burst.remaining > 0 {
                    // Each frame on the socket of its EtherType, so the kernel labels it right.
                    let socket = if addr.is_ipv4() { &s.arp } else { &s.nd };
                    for frame in announcement_frames(*addr, mac) {
                        match socket.send(&frame) {
                            Ok(()) => bump(if addr.is_ipv4() {
                                &counters.gratuitous_arp
                            } else {
                                &counters.unsolicited_na
                            }),
                            Err(e) => {
                                bump(&counters.send_errors);
                                debug!(interface = %name, error = %e, "cannot send an announcement");
                            }
                        }
                    }
                    if burst.remaining == announce.count {
                        info!(interface = %name, address = %addr, "announcing");
                    }
                    burst.remaining -= 1;
                    burst.next = now + announce.interval;
                }
            }
        }
        bursts.retain(|_, b| b.remaining > 0);

        let wake = bursts
            .values()
            .map(|b| b.next)
            .chain(retry_open.filter(|_| sockets.is_none() && !held.is_empty()))
            .min();
        let sleep = async {
            match wake {
                Some(t) => tokio::time::sleep_until(t.into()).await,
                None => std::future::pending().await,
            }
        };
        let mac = usable.and_then(|l| l.mac);
        tokio::select! {
            r = table.changed() => if r.is_err() { break },
            r = links.changed() => if r.is_err() { break },
            r = stop.changed() => if r.is_err() || *stop.borrow() { break },
            () = sleep => {}
            r = recv(sockets.as_ref().map(|s| &s.arp), &mut buf_arp) => {
                failed = handle(r, &buf_arp, mac, &table, sockets.as_ref().map(|s| &s.arp), &counters, &name);
            }
            r = recv(sockets.as_ref().map(|s| &s.nd), &mut buf_nd) => {
                failed = handle(r, &buf_nd, mac, &table, sockets.as_ref().map(|s| &s.nd), &counters, &name);
            }
        }
        if failed {
            // A socket that cannot be read (the device went away under it) is not read in a
            // loop: close both, open again in a second or at the next link change.
            sockets = None;
            retry_open = Some(Instant::now() + Duration::from_secs(1));
            failed = false;
        }
    }
    debug!(interface = %name, "responder stopped");
}

async fn recv(socket: Option<&PacketSocket>, buf: &mut [u8]) -> std::io::Result<usize> {
    match socket {
        Some(s) => s.recv(buf).await,
        None => std::future::pending().await,
    }
}

/// Answers one received frame; true when the socket failed.
fn handle(
    received: std::io::Result<usize>,
    buf: &[u8],
    mac: Option<MacAddr>,
    table: &watch::Receiver<Table>,
    socket: Option<&PacketSocket>,
    counters: &Counters,
    name: &str,
) -> bool {
    let n = match received {
        Ok(n) => n,
        Err(e) => {
            bump(&counters.socket_errors);
            warn!(interface = name, error = %e, "cannot read from the packet socket");
            return true;
        }
    };
    let (Some(mac), Some(socket)) = (mac, socket) else {
        return false;
    };
    let frame = buf.get(..n).unwrap_or_default();
    // The table as it is now, not as it was when the loop last woke: a withdrawn address is
    // not answered even once more.
    let answer = {
        let t = table.borrow();
        answer(frame, mac, |a| {
            t.get(&a).is_some_and(|h| h.interfaces.contains(name))
        })
    };
    match answer {
        Answer::Reply(reply) => match socket.send(&reply) {
            Ok(()) => {
                let is_arp =
                    EthernetFrame::parse(&reply).is_ok_and(|e| e.ethertype == ETHERTYPE_ARP);
                bump(if is_arp {
                    &counters.arp_replies
                } else {
                    &counters.na_replies
                });
                tracing::trace!(interface = name, "answered");
            }
            Err(e) => {
                bump(&counters.send_errors);
                debug!(interface = name, error = %e, "cannot send an answer");
            }
        },
        Answer::Ignore => {}
        Answer::Malformed(e) => {
            bump(&counters.malformed);
            debug!(interface = name, error = %e, "malformed frame");
        }
    }
    false
}

#[cfg(test)]
mod tests;
