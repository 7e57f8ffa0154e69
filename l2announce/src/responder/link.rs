//! The node's interfaces and their state, from rtnetlink: one dump, then the kernel's link
//! notifications (RTNLGRP_LINK), published as a snapshot that changes whenever a link
//! appears, goes, changes MAC or goes up or down.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use futures::TryStreamExt as _;
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use rtnetlink::packet_core::NetlinkPayload;
use rtnetlink::{MulticastGroup, new_multicast_connection};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::wire::MacAddr;

/// One interface as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LinkInfo {
    /// Its name (`eth1`).
    pub name: String,
    /// Its index; changes when the interface is deleted and created again.
    pub index: u32,
    /// Its MAC address, if it has an Ethernet-like one.
    pub mac: Option<MacAddr>,
    /// Administratively up and operationally running (carrier).
    pub up: bool,
    /// The loopback device (never announced on).
    pub loopback: bool,
    /// When `up` last changed (or when the link was first seen).
    #[serde(skip)]
    pub since: Instant,
}

/// Every interface, by name.
pub type Links = Arc<BTreeMap<String, LinkInfo>>;

fn parse(msg: &LinkMessage) -> Option<LinkInfo> {
    let mut name = None;
    let mut mac = None;
    for a in &msg.attributes {
        match a {
            LinkAttribute::IfName(n) => name = Some(n.clone()),
            LinkAttribute::Address(bytes) => mac = MacAddr::from_slice(bytes),
            _ => {}
        }
    }
    let flags = msg.header.flags;
    Some(LinkInfo {
        name: name?,
        index: msg.header.index,
        mac,
        up: flags.contains(LinkFlags::Up) && flags.contains(LinkFlags::Running),
        loopback: flags.contains(LinkFlags::Loopback),
        since: Instant::now(),
    })
}

/// Applies a new report of a link; returns whether anything changed.
fn apply_new(links: &mut BTreeMap<String, LinkInfo>, mut info: LinkInfo) -> bool {
    // A rename: the index lives on under another name.
    let renamed: Vec<String> = links
        .values()
        .filter(|l| l.index == info.index && l.name != info.name)
        .map(|l| l.name.clone())
        .collect();
    for name in &renamed {
        links.remove(name);
    }
    match links.get(&info.name) {
        Some(old) if old.index == info.index && old.up == info.up => {
            info.since = old.since;
            if *old == info {
                return !renamed.is_empty();
            }
        }
        _ => {}
    }
    links.insert(info.name.clone(), info);
    true
}

fn apply_del(links: &mut BTreeMap<String, LinkInfo>, index: u32) -> bool {
    let before = links.len();
    links.retain(|_, l| l.index != index);
    links.len() != before
}

/// Replaces `links` by a fresh dump, keeping `since` of links whose state did not change;
/// returns whether anything changed.
fn merge_dump(links: &mut BTreeMap<String, LinkInfo>, fresh: Vec<LinkInfo>) -> bool {
    let names: std::collections::BTreeSet<String> = fresh.iter().map(|l| l.name.clone()).collect();
    let before = links.len();
    links.retain(|name, _| names.contains(name));
    let mut changed = links.len() != before;
    for info in fresh {
        changed |= apply_new(links, info);
    }
    changed
}

type Messages = futures::channel::mpsc::UnboundedReceiver<(
    rtnetlink::packet_core::NetlinkMessage<RouteNetlinkMessage>,
    rtnetlink::sys::SocketAddr,
)>;

/// A netlink connection subscribed to link notifications.
struct Session {
    conn: JoinHandle<()>,
    handle: rtnetlink::Handle,
    messages: Messages,
}

impl Session {
    async fn open() -> std::io::Result<Session> {
        let (conn, handle, messages) = new_multicast_connection(&[MulticastGroup::Link])?;
        Ok(Session {
            conn: tokio::spawn(conn),
            handle,
            messages,
        })
    }

    /// Every link, as a dump (subscribed first, so no change between the two is missed).
    async fn dump(&self) -> std::io::Result<Vec<LinkInfo>> {
        let mut out = Vec::new();
        let mut dump = self.handle.link().get().execute();
        loop {
            match dump.try_next().await {
                Ok(Some(msg)) => out.extend(parse(&msg)),
                Ok(None) => return Ok(out),
                Err(e) => return Err(std::io::Error::other(format!("cannot list links: {e}"))),
            }
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.conn.abort();
    }
}

/// How often the whole list is read again, in case notifications were lost (a netlink
/// receive buffer overrun drops them silently).
const RESYNC: Duration = Duration::from_secs(30);

/// Starts watching the interfaces of this process's network namespace. The task ends when
/// every receiver is gone; if the kernel's notifications stop, it reconnects and lists the
/// links again rather than leave a stale picture.
pub async fn watch_links() -> std::io::Result<(watch::Receiver<Links>, JoinHandle<()>)> {
    let mut session = Session::open().await?;
    let mut links = BTreeMap::new();
    merge_dump(&mut links, session.dump().await?);
    let (tx, rx) = watch::channel(Arc::new(links));
    let task = tokio::spawn(async move {
        let mut resync = tokio::time::interval(RESYNC);
        resync.tick().await;
        loop {
            tokio::select! {
                () = tx.closed() => break,
                _ = resync.tick() => match session.dump().await {
                    Ok(fresh) => {
                        tx.send_if_modified(|links| merge_dump(Arc::make_mut(links), fresh));
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot list links"),
                },
                msg = session.messages.next() => {
                    let Some((msg, _)) = msg else {
                        tracing::warn!("link notifications stopped: reconnecting");
                        session = loop {
                            if tx.is_closed() {
                                return;
                            }
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            match Session::open().await {
                                Ok(s) => match s.dump().await {
                                    Ok(fresh) => {
                                        tx.send_if_modified(|links| merge_dump(Arc::make_mut(links), fresh));
                                        break s;
                                    }
                                    Err(e) => tracing::warn!(error = %e, "cannot list links"),
                                },
                                Err(e) => tracing::warn!(error = %e, "cannot open rtnetlink"),
                            }
                        };
                        continue;
                    };
                    let NetlinkPayload::InnerMessage(inner) = msg.payload else { continue };
                    tx.send_if_modified(|links| {
                        let links = Arc::make_mut(links);
                        match &inner {
                            RouteNetlinkMessage::NewLink(m) => parse(m).is_some_and(|info| {
                                let changed = apply_new(links, info.clone());
                                if changed {
                                    tracing::debug!(link = %info.name, index = info.index, up = info.up, "link changed");
                                }
                                changed
                            }),
                            RouteNetlinkMessage::DelLink(m) => apply_del(links, m.header.index),
                            _ => false,
                        }
                    });
                }
            }
        }
    });
    Ok((rx, task))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(name: &str, index: u32, up: bool) -> LinkInfo {
        LinkInfo {
            name: name.into(),
            index,
            mac: Some(MacAddr([2, 0, 0, 0, 0, index as u8])),
            up,
            loopback: false,
            since: Instant::now(),
        }
    }

    #[test]
    fn a_repeated_report_changes_nothing_and_keeps_the_time_of_the_last_flip() {
        let mut links = BTreeMap::new();
        assert!(apply_new(&mut links, link("eth1", 2, true)));
        let since = links["eth1"].since;
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(!apply_new(&mut links, link("eth1", 2, true)));
        assert_eq!(links["eth1"].since, since);
        assert!(apply_new(&mut links, link("eth1", 2, false)));
        assert!(links["eth1"].since > since);
    }

    #[test]
    fn a_renamed_or_recreated_link_replaces_the_old_entry() {
        let mut links = BTreeMap::new();
        apply_new(&mut links, link("eth1", 2, true));
        assert!(apply_new(&mut links, link("lan0", 2, true)));
        assert!(!links.contains_key("eth1"));
        assert!(apply_new(&mut links, link("lan0", 7, true)), "new index");
        assert_eq!(links["lan0"].index, 7);
        assert!(apply_del(&mut links, 7));
        assert!(links.is_empty());
        assert!(!apply_del(&mut links, 7));
    }

    #[test]
    fn a_fresh_dump_drops_vanished_links_and_keeps_unchanged_ones_as_they_were() {
        let mut links = BTreeMap::new();
        apply_new(&mut links, link("eth1", 2, true));
        apply_new(&mut links, link("eth2", 3, true));
        let since = links["eth1"].since;
        assert!(merge_dump(&mut links, vec![link("eth1", 2, true)]));
        assert_eq!(links.keys().collect::<Vec<_>>(), ["eth1"]);
        assert_eq!(links["eth1"].since, since);
        assert!(!merge_dump(&mut links, vec![link("eth1", 2, true)]));
    }
}
