//! The sockets of single-hop BFD (RFC 5881).
//!
//! - Control packets go to UDP port 3784 and come from a source port in 49152-65535, the same
//!   for every packet of a session and different between sessions: one [`Sender`] per
//!   session, bound to a free port of that range.
//! - They leave with TTL / Hop Limit 255, and a received one with anything else is discarded
//!   (§5: without authentication this check is mandatory): a packet from more than one hop
//!   away cannot pass for our neighbour's. The [`Listener`] reads the TTL of each datagram
//!   (`IP_RECVTTL`, `IPV6_RECVHOPLIMIT`) with the interface and destination it arrived on.
//! - Packets are marked DSCP CS6 (network control), as routers expect BFD to be.
//!
//! One [`Listener`] per address family serves every session: packets are matched to sessions
//! by discriminator, or by source address and interface while the remote does not know ours.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::ops::RangeInclusive;
use std::os::fd::AsRawFd as _;

use nix::sys::socket::{
    ControlMessageOwned, MsgFlags, SockaddrStorage, recvmsg, setsockopt, sockopt,
};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::Interest;

use super::packet::ControlPacket;

/// The destination port of single-hop Control packets.
pub const CONTROL_PORT: u16 = 3784;

/// Source ports of Control packets (RFC 5881 §4).
pub const SOURCE_PORTS: RangeInclusive<u16> = 49152..=65535;

/// TTL / Hop Limit sent, and the only one accepted.
pub const TTL: u8 = 255;

/// DSCP CS6 in the TOS / traffic-class octet.
const TOS_CS6: u32 = 0xc0;

/// One datagram as the listener received it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// Source address and port.
    pub from: SocketAddr,
    /// The address it was sent to (from `IP_PKTINFO` / `IPV6_PKTINFO`).
    pub to: Option<IpAddr>,
    /// The interface it arrived on.
    pub ifindex: Option<u32>,
    /// Its TTL / Hop Limit.
    pub ttl: Option<u8>,
    /// Octets received (copied into the caller's buffer).
    pub len: usize,
}

impl Received {
    /// RFC 5881 §5: only TTL / Hop Limit 255 is accepted.
    pub fn single_hop(&self) -> bool {
        self.ttl == Some(TTL)
    }
}

fn nix_io(e: nix::Error) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

/// The receiving socket of one address family, on the control port.
#[derive(Debug)]
pub struct Listener {
    sock: tokio::net::UdpSocket,
    v6: bool,
}

impl Listener {
    /// Binds `addr` (normally `0.0.0.0:3784` or `[::]:3784`, IPv6 only) and asks the kernel
    /// for each datagram's TTL, destination and interface.
    pub fn bind(addr: SocketAddr) -> io::Result<Listener> {
        let v6 = addr.is_ipv6();
        let domain = if v6 { Domain::IPV6 } else { Domain::IPV4 };
        let s = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
        if v6 {
            s.set_only_v6(true)?;
            setsockopt(&s, sockopt::Ipv6RecvHopLimit, &true).map_err(nix_io)?;
            setsockopt(&s, sockopt::Ipv6RecvPacketInfo, &true).map_err(nix_io)?;
        } else {
            setsockopt(&s, sockopt::Ipv4RecvTtl, &true).map_err(nix_io)?;
            setsockopt(&s, sockopt::Ipv4PacketInfo, &true).map_err(nix_io)?;
        }
        s.set_nonblocking(true)?;
        s.bind(&addr.into())?;
        let std: std::net::UdpSocket = s.into();
        Ok(Listener {
            sock: tokio::net::UdpSocket::from_std(std)?,
            v6,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sock.local_addr()
    }

    /// The next datagram, copied into `buf` (truncated to its size).
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<Received> {
        self.sock
            .async_io(Interest::READABLE, || self.recv_now(buf))
            .await
    }

    fn recv_now(&self, buf: &mut [u8]) -> io::Result<Received> {
        let mut iov = [io::IoSliceMut::new(buf)];
        let mut cmsg = if self.v6 {
            nix::cmsg_space!(libc::in6_pktinfo, libc::c_int)
        } else {
            nix::cmsg_space!(libc::in_pktinfo, libc::c_int, libc::c_int)
        };
        let msg = recvmsg::<SockaddrStorage>(
            self.sock.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_DONTWAIT,
        )
        .map_err(nix_io)?;
        let mut r = Received {
            from: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)),
            to: None,
            ifindex: None,
            ttl: None,
            len: msg.bytes,
        };
        let from = msg.address.as_ref().and_then(|a| {
            a.as_sockaddr_in()
                .map(|s| SocketAddr::V4(SocketAddrV4::new(s.ip(), s.port())))
                .or_else(|| {
                    a.as_sockaddr_in6().map(|s| {
                        SocketAddr::V6(SocketAddrV6::new(
                            s.ip(),
                            s.port(),
                            s.flowinfo(),
                            s.scope_id(),
                        ))
                    })
                })
        });
        let Some(from) = from else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "datagram without a source address",
            ));
        };
        r.from = from;
        for c in msg.cmsgs().map_err(nix_io)? {
            match c {
                ControlMessageOwned::Ipv4Ttl(t) => r.ttl = u8::try_from(t).ok(),
                ControlMessageOwned::Ipv6HopLimit(t) => r.ttl = u8::try_from(t).ok(),
                ControlMessageOwned::Ipv4PacketInfo(i) => {
                    r.ifindex = u32::try_from(i.ipi_ifindex).ok();
                    r.to = Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(i.ipi_addr.s_addr))));
                }
                ControlMessageOwned::Ipv6PacketInfo(i) => {
                    r.ifindex = Some(i.ipi6_ifindex);
                    r.to = Some(IpAddr::V6(Ipv6Addr::from(i.ipi6_addr.s6_addr)));
                }
                _ => {}
            }
        }
        Ok(r)
    }
}

/// The sending socket of one session: a fixed source port, TTL 255, CS6.
#[derive(Debug)]
pub struct Sender {
    /// A plain non-blocking socket: sending never waits, so it needs no reactor.
    sock: std::net::UdpSocket,
    remote: SocketAddr,
}

impl Sender {
    /// Opens a socket toward `remote` from `local` (or the kernel's choice) on a free source
    /// port of [`SOURCE_PORTS`] (tried from a pseudo-random start given by `seed`), bound to
    /// `interface` when given (needed for IPv6 link-local peers).
    pub fn open(
        local: Option<IpAddr>,
        remote: SocketAddr,
        interface: Option<&str>,
        seed: u64,
    ) -> io::Result<Sender> {
        let v6 = remote.is_ipv6();
        let domain = if v6 { Domain::IPV6 } else { Domain::IPV4 };
        let span = u64::from(SOURCE_PORTS.end() - SOURCE_PORTS.start()) + 1;
        let mut last = io::Error::new(io::ErrorKind::AddrInUse, "no free source port");
        // Up to 256 ports, spread over the range by a multiplicative step.
        for i in 0..256u64 {
            let offset = (seed.wrapping_add(i.wrapping_mul(40_503))) % span;
            let port = SOURCE_PORTS
                .start()
                .saturating_add(u16::try_from(offset).unwrap_or(0));
            let s = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
            if v6 {
                s.set_only_v6(true)?;
                s.set_unicast_hops_v6(u32::from(TTL))?;
                s.set_tclass_v6(TOS_CS6)?;
            } else {
                s.set_ttl_v4(u32::from(TTL))?;
                s.set_tos_v4(TOS_CS6)?;
            }
            if let Some(ifname) = interface {
                s.bind_device(Some(ifname.as_bytes()))?;
            }
            s.set_nonblocking(true)?;
            let ip = local.unwrap_or(if v6 {
                IpAddr::V6(Ipv6Addr::UNSPECIFIED)
            } else {
                IpAddr::V4(Ipv4Addr::UNSPECIFIED)
            });
            let bind = match (ip, remote) {
                (IpAddr::V6(a), SocketAddr::V6(r)) if a.is_unicast_link_local() => {
                    SocketAddr::V6(SocketAddrV6::new(a, port, 0, r.scope_id()))
                }
                _ => SocketAddr::new(ip, port),
            };
            match s.bind(&bind.into()) {
                Ok(()) => {
                    return Ok(Sender {
                        sock: s.into(),
                        remote,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => last = e,
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }

    /// Our end (the source port in use).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sock.local_addr()
    }

    /// Where packets go.
    pub fn remote(&self) -> SocketAddr {
        self.remote
    }

    /// Sends one packet without waiting: BFD tolerates a lost packet better than a late one,
    /// so a full socket buffer drops it (an error the caller counts).
    pub fn send(&self, p: &ControlPacket) -> io::Result<()> {
        self.sock.send_to(&p.encode(), self.remote).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bfd::packet::{BfdState, Diagnostic};

    fn packet() -> ControlPacket {
        ControlPacket {
            diag: Diagnostic::None,
            state: BfdState::Down,
            poll: false,
            final_: false,
            control_plane_independent: false,
            demand: false,
            detect_mult: 3,
            my_discriminator: 5,
            your_discriminator: 0,
            desired_min_tx: 1_000_000,
            required_min_rx: 300_000,
            required_min_echo_rx: 0,
        }
    }

    #[tokio::test]
    async fn a_packet_sent_on_loopback_arrives_with_ttl_255_from_a_port_of_the_range() {
        let l = Listener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let to = l.local_addr().unwrap();
        let s = Sender::open(Some("127.0.0.1".parse().unwrap()), to, None, 7).unwrap();
        let port = s.local_addr().unwrap().port();
        assert!(SOURCE_PORTS.contains(&port), "{port}");
        s.send(&packet()).unwrap();
        let mut buf = [0u8; 64];
        let r = l.recv(&mut buf).await.unwrap();
        assert!(r.single_hop(), "{r:?}");
        assert_eq!(r.from.port(), port);
        assert_eq!(r.to, Some("127.0.0.1".parse().unwrap()));
        assert_eq!(r.ifindex, Some(1), "lo");
        assert_eq!(ControlPacket::decode(&buf[..r.len]).unwrap(), packet());
    }

    #[tokio::test]
    async fn ipv6_packets_carry_hop_limit_255_too() {
        let Ok(l) = Listener::bind("[::1]:0".parse().unwrap()) else {
            return; // no IPv6 loopback here
        };
        let to = l.local_addr().unwrap();
        let s = Sender::open(None, to, None, 9).unwrap();
        s.send(&packet()).unwrap();
        let mut buf = [0u8; 64];
        let r = l.recv(&mut buf).await.unwrap();
        assert_eq!(r.ttl, Some(255));
        assert_eq!(r.to, Some("::1".parse().unwrap()));
    }

    #[tokio::test]
    async fn a_datagram_with_a_lower_ttl_is_reported_as_not_single_hop() {
        let l = Listener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let to = l.local_addr().unwrap();
        let raw = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        raw.set_ttl(254).unwrap();
        raw.send_to(&packet().encode(), to).unwrap();
        let mut buf = [0u8; 64];
        let r = l.recv(&mut buf).await.unwrap();
        assert_eq!(r.ttl, Some(254));
        assert!(!r.single_hop());
    }

    #[tokio::test]
    async fn sessions_get_different_source_ports() {
        let to: SocketAddr = "127.0.0.1:3784".parse().unwrap();
        let a = Sender::open(None, to, None, 1).unwrap();
        let b = Sender::open(None, to, None, 1).unwrap();
        assert_ne!(
            a.local_addr().unwrap().port(),
            b.local_addr().unwrap().port(),
            "the same seed still finds another port"
        );
    }
}
