//! The netlink half of FIB installation: read the kernel's routes and addresses, carry out
//! [`Op`]s, and say when the kernel's routes change (rtnetlink, RTNLGRP_IPV4/IPV6_ROUTE).
//!
//! Routes are written as one message each: a single next hop as RTA_GATEWAY + RTA_OIF, several
//! as RTA_MULTIPATH (the kernel's multipath route; `ip route` shows `nexthop via ...` lines),
//! an IPv6 next hop of an IPv4 route (RFC 8950) as RTA_VIA. A table above 255 goes in
//! RTA_TABLE. Additions use NLM_F_CREATE|NLM_F_EXCL, so a route that is not ours at the same
//! destination, metric and table is never overwritten: the kernel answers EEXIST and the
//! destination is reported as a conflict.

use std::future::Future;
use std::net::IpAddr;

use futures::StreamExt as _;
use futures::TryStreamExt as _;
use ipnet::IpNet;
use netlink_packet_route::address::AddressAttribute;
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteNextHop, RouteProtocol,
    RouteScope, RouteType, RouteVia,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use rtnetlink::packet_core::NetlinkPayload;
use rtnetlink::{Handle, MulticastGroup, new_multicast_connection};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::FibError;
use super::config::FibConfig;
use super::plan::{KernelRoute, KernelView, NextHop, Op, RouteKind};

/// What the installer needs from a kernel (the real one through netlink, a fake in tests).
pub trait Kernel: Send + 'static {
    /// Every route of both families, and this host's addresses.
    fn view(&mut self) -> impl Future<Output = Result<KernelView, FibError>> + Send;
    /// Carries out one operation with our protocol, table and metric.
    fn apply(
        &mut self,
        op: &Op,
        cfg: &FibConfig,
    ) -> impl Future<Output = Result<(), FibError>> + Send;
    /// A receiver told (with a unit) whenever a route or address changed in a way that may
    /// need a reconcile, taken once.
    fn changes(&mut self) -> Option<mpsc::UnboundedReceiver<()>>;
}

/// The kernel of the network namespace the process (the calling thread) is in.
#[derive(Debug)]
pub struct NetlinkKernel {
    handle: Handle,
    conn: JoinHandle<()>,
    watcher: Option<JoinHandle<()>>,
    changes: Option<mpsc::UnboundedReceiver<()>>,
}

impl Drop for NetlinkKernel {
    fn drop(&mut self) {
        self.conn.abort();
        if let Some(w) = &self.watcher {
            w.abort();
        }
    }
}

impl NetlinkKernel {
    /// Opens an rtnetlink socket subscribed to route and address changes; new routes with
    /// `protocol` (ours) are not reported. Call inside a tokio runtime.
    pub fn open(protocol: u8) -> Result<NetlinkKernel, FibError> {
        let (conn, handle, mut messages) = new_multicast_connection(&[
            MulticastGroup::Ipv4Route,
            MulticastGroup::Ipv6Route,
            MulticastGroup::Ipv4Ifaddr,
            MulticastGroup::Ipv6Ifaddr,
        ])
        .map_err(|e| FibError::Netlink(format!("cannot open an rtnetlink socket: {e}")))?;
        let conn = tokio::spawn(conn);
        let (tx, rx) = mpsc::unbounded_channel();
        let watcher = tokio::spawn(async move {
            while let Some((msg, _)) = messages.next().await {
                let NetlinkPayload::InnerMessage(inner) = msg.payload else {
                    continue;
                };
                // Routes of others and addresses change resolution; a route of ours deleted
                // (by hand, or flushed with its interface) must come back. Our own additions
                // need no second look.
                let relevant = match &inner {
                    RouteNetlinkMessage::NewRoute(r) => u8::from(r.header.protocol) != protocol,
                    RouteNetlinkMessage::DelRoute(_) => true,
                    RouteNetlinkMessage::NewAddress(_) | RouteNetlinkMessage::DelAddress(_) => true,
                    _ => false,
                };
                if relevant && tx.send(()).is_err() {
                    break;
                }
            }
        });
        Ok(NetlinkKernel {
            handle,
            conn,
            watcher: Some(watcher),
            changes: Some(rx),
        })
    }

    async fn routes(&self, family: AddressFamily) -> Result<Vec<KernelRoute>, FibError> {
        let mut req = RouteMessage::default();
        req.header.address_family = family;
        let msgs: Vec<RouteMessage> = self
            .handle
            .route()
            .get(req)
            .execute()
            .try_collect()
            .await
            .map_err(|e| FibError::Netlink(format!("route dump: {e}")))?;
        Ok(msgs.iter().filter_map(kernel_route).collect())
    }
}

impl Kernel for NetlinkKernel {
    async fn view(&mut self) -> Result<KernelView, FibError> {
        let mut routes = self.routes(AddressFamily::Inet).await?;
        routes.extend(self.routes(AddressFamily::Inet6).await?);
        let addrs: Vec<_> = self
            .handle
            .address()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(|e| FibError::Netlink(format!("address dump: {e}")))?;
        let local_addresses = addrs
            .iter()
            .flat_map(|m| m.attributes.iter())
            .filter_map(|a| match a {
                AddressAttribute::Address(ip) | AddressAttribute::Local(ip) => Some(*ip),
                _ => None,
            })
            .collect();
        Ok(KernelView {
            routes,
            local_addresses,
        })
    }

    async fn apply(&mut self, op: &Op, cfg: &FibConfig) -> Result<(), FibError> {
        let route = self.handle.route();
        let (what, dst, result) = match op {
            Op::Add(d) => {
                let hops: Vec<NextHop> = d.next_hops.iter().copied().collect();
                let m = message(d.dst, cfg.table, cfg.protocol, cfg.metric, &hops);
                ("add", d.dst, route.add(m).execute().await)
            }
            Op::Replace(d) => {
                let hops: Vec<NextHop> = d.next_hops.iter().copied().collect();
                let m = message(d.dst, cfg.table, cfg.protocol, cfg.metric, &hops);
                ("replace", d.dst, route.add(m).replace().execute().await)
            }
            Op::Delete(r) => {
                let m = message(r.dst, r.table, r.protocol, r.metric, &r.next_hops);
                ("delete", r.dst, route.del(m).execute().await)
            }
        };
        result.map_err(|e| match e {
            rtnetlink::Error::NetlinkError(m) if m.raw_code() == -libc::EEXIST => {
                FibError::Exists(dst)
            }
            rtnetlink::Error::NetlinkError(m) if m.raw_code() == -libc::ESRCH => {
                FibError::Gone(dst)
            }
            e => FibError::Netlink(format!("{what} {dst}: {e}")),
        })
    }

    fn changes(&mut self) -> Option<mpsc::UnboundedReceiver<()>> {
        self.changes.take()
    }
}

fn ip_of(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

fn via_of(v: &RouteVia) -> Option<IpAddr> {
    match v {
        RouteVia::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteVia::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

fn gateway_in(attrs: &[RouteAttribute]) -> Option<IpAddr> {
    attrs.iter().find_map(|a| match a {
        RouteAttribute::Gateway(g) => ip_of(g),
        RouteAttribute::Via(v) => via_of(v),
        _ => None,
    })
}

/// A dumped route as planning sees it; `None` for families other than IPv4 and IPv6.
pub fn kernel_route(m: &RouteMessage) -> Option<KernelRoute> {
    let h = &m.header;
    let dst_addr = m.attributes.iter().find_map(|a| match a {
        RouteAttribute::Destination(d) => ip_of(d),
        _ => None,
    });
    let dst_addr = match (h.address_family, dst_addr) {
        (_, Some(a)) => a,
        (AddressFamily::Inet, None) => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        (AddressFamily::Inet6, None) => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
        _ => return None,
    };
    let dst = IpNet::new(dst_addr, h.destination_prefix_length).ok()?;
    let mut table = u32::from(h.table);
    let mut metric = 0;
    let mut oif = None;
    let mut next_hops = Vec::new();
    for a in &m.attributes {
        match a {
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Priority(p) => metric = *p,
            RouteAttribute::Oif(i) => oif = Some(*i),
            RouteAttribute::MultiPath(hops) => {
                next_hops.extend(hops.iter().map(|nh| NextHop {
                    gateway: gateway_in(&nh.attributes),
                    ifindex: nh.interface_index,
                }));
            }
            _ => {}
        }
    }
    if next_hops.is_empty()
        && let Some(ifindex) = oif
    {
        next_hops.push(NextHop {
            gateway: gateway_in(&m.attributes),
            ifindex,
        });
    }
    let kind = match h.kind {
        RouteType::Unicast => RouteKind::Unicast,
        RouteType::Local => RouteKind::Local,
        _ => RouteKind::Other,
    };
    Some(KernelRoute {
        dst,
        table,
        protocol: u8::from(h.protocol),
        metric,
        kind,
        next_hops,
    })
}

fn gateway_attribute(route_is_v4: bool, gw: IpAddr) -> RouteAttribute {
    match (route_is_v4, gw) {
        (true, IpAddr::V6(v6)) => RouteAttribute::Via(RouteVia::Inet6(v6)),
        (false, IpAddr::V4(v4)) => RouteAttribute::Via(RouteVia::Inet(v4)),
        (_, gw) => RouteAttribute::Gateway(RouteAddress::from(gw)),
    }
}

/// The message for a unicast route of ours (or for deleting one exactly).
pub fn message(
    dst: IpNet,
    table: u32,
    protocol: u8,
    metric: u32,
    hops: &[NextHop],
) -> RouteMessage {
    let v4 = dst.addr().is_ipv4();
    let mut m = RouteMessage::default();
    m.header.address_family = if v4 {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    m.header.destination_prefix_length = dst.prefix_len();
    m.header.table = u8::try_from(table).unwrap_or(RouteHeader::RT_TABLE_UNSPEC);
    m.header.protocol = RouteProtocol::from(protocol);
    m.header.scope = RouteScope::Universe;
    m.header.kind = RouteType::Unicast;
    m.attributes
        .push(RouteAttribute::Destination(RouteAddress::from(dst.addr())));
    m.attributes.push(RouteAttribute::Table(table));
    m.attributes.push(RouteAttribute::Priority(metric));
    match hops {
        [] => {}
        [one] => {
            if let Some(gw) = one.gateway {
                m.attributes.push(gateway_attribute(v4, gw));
            }
            m.attributes.push(RouteAttribute::Oif(one.ifindex));
        }
        many => {
            let nhs = many
                .iter()
                .map(|h| {
                    let mut nh = RouteNextHop::default();
                    nh.interface_index = h.ifindex;
                    if let Some(gw) = h.gateway {
                        nh.attributes.push(gateway_attribute(v4, gw));
                    }
                    nh
                })
                .collect();
            m.attributes.push(RouteAttribute::MultiPath(nhs));
        }
    }
    m
}
