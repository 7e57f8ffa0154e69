//! Sockets: dialling from an ephemeral port (or a given source address), listening, and the
//! options BGP needs: TCP_NODELAY, TCP MD5 signatures (RFC 2385, `TCP_MD5SIG`), the TTL of
//! eBGP multihop, GTSM (RFC 5082: TTL 255 out, `IP_MINTTL` / `IPV6_MINHOPCOUNT` in). Also our
//! own next hops: the addresses of the interface a session runs over.
//!
//! This module uses `unsafe` for the two `setsockopt` calls the socket crates do not wrap (each
//! call says why it is sound).
#![allow(unsafe_code)]

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};

use socket2::{Domain, Protocol, SockRef, Socket, Type};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

use super::config::PeerConfig;

/// The key length limit of `struct tcp_md5sig` (linux/tcp.h).
const TCP_MD5SIG_MAXKEYLEN: usize = 80;

/// `struct tcp_md5sig` of linux/tcp.h.
#[repr(C)]
struct TcpMd5Sig {
    addr: libc::sockaddr_storage,
    flags: u8,
    prefixlen: u8,
    keylen: u16,
    ifindex: libc::c_int,
    key: [u8; TCP_MD5SIG_MAXKEYLEN],
}

/// Sets (or with `None`, removes) the TCP MD5 key for connections with `peer` on `fd`.
pub(crate) fn set_md5(fd: RawFd, peer: IpAddr, key: Option<&str>) -> io::Result<()> {
    let key = key.unwrap_or("").as_bytes();
    if key.len() > TCP_MD5SIG_MAXKEYLEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "TCP MD5 key longer than 80 octets",
        ));
    }
    let sa = socket2::SockAddr::from(SocketAddr::new(peer, 0));
    // SAFETY: `sockaddr_storage` is plain old data; all-zero is a valid value.
    let mut addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = (sa.len() as usize).min(std::mem::size_of::<libc::sockaddr_storage>());
    // SAFETY: `sa.as_ptr()` points to `sa.len()` initialised octets of a socket address, and
    // `addr` has room for `len` <= its size; the two do not overlap.
    unsafe {
        std::ptr::copy_nonoverlapping(sa.as_ptr().cast::<u8>(), (&raw mut addr).cast::<u8>(), len);
    }
    let mut sig = TcpMd5Sig {
        addr,
        flags: 0,
        prefixlen: 0,
        keylen: key.len() as u16,
        ifindex: 0,
        key: [0; TCP_MD5SIG_MAXKEYLEN],
    };
    if let Some(dst) = sig.key.get_mut(..key.len()) {
        dst.copy_from_slice(key);
    }
    // SAFETY: `sig` is a live, fully initialised `struct tcp_md5sig` of the size passed; the
    // kernel only reads it during the call.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_MD5SIG,
            (&raw const sig).cast::<libc::c_void>(),
            std::mem::size_of::<TcpMd5Sig>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn set_int(fd: RawFd, level: libc::c_int, name: libc::c_int, value: libc::c_int) -> io::Result<()> {
    // SAFETY: an `int` option value read by the kernel during the call.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&raw const value).cast::<libc::c_void>(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// TTL / hop limit of outgoing packets and, with GTSM, the minimum accepted.
pub(crate) fn set_ttl(
    sock: SockRef<'_>,
    v6: bool,
    cfg: &PeerConfig,
    local_as: u32,
) -> io::Result<()> {
    let (ttl, min) = match cfg.ttl_security {
        Some(hops) => (255u32, Some(256 - u32::from(hops))),
        None if cfg.is_ibgp(local_as) => (255, None),
        None => (u32::from(cfg.ebgp_multihop.unwrap_or(1)), None),
    };
    if v6 {
        sock.set_unicast_hops_v6(ttl)?;
    } else {
        sock.set_ttl_v4(ttl)?;
    }
    if let Some(min) = min {
        let (level, name) = if v6 {
            (libc::IPPROTO_IPV6, libc::IPV6_MINHOPCOUNT)
        } else {
            (libc::IPPROTO_IP, libc::IP_MINTTL)
        };
        set_int(sock.as_raw_fd(), level, name, min as libc::c_int)?;
    }
    Ok(())
}

/// Dials the peer from an ephemeral port (bound to the configured source address, if any)
/// with every option set before the SYN.
pub(crate) async fn dial(cfg: &PeerConfig, local_as: u32) -> io::Result<TcpStream> {
    let v6 = cfg.address.is_ipv6();
    let domain = if v6 { Domain::IPV6 } else { Domain::IPV4 };
    let sock = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
    sock.set_nonblocking(true)?;
    sock.set_tcp_nodelay(true)?;
    if let Some(local) = cfg.local_address {
        sock.bind(&SocketAddr::new(local, 0).into())?;
    }
    if let Some(pw) = &cfg.password {
        set_md5(sock.as_raw_fd(), cfg.address, Some(pw))?;
    }
    set_ttl(SockRef::from(&sock), v6, cfg, local_as)?;
    let std: std::net::TcpStream = sock.into();
    TcpSocket::from_std_stream(std)
        .connect(SocketAddr::new(cfg.address, cfg.port))
        .await
}

/// Options for a connection we accepted (the MD5 key was on the listener already).
pub(crate) fn accepted(stream: &TcpStream, cfg: &PeerConfig, local_as: u32) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let v6 = stream.local_addr()?.is_ipv6();
    set_ttl(SockRef::from(stream), v6, cfg, local_as)
}

/// Listeners on `port`: one IPv4 and one IPv6-only socket (or the given addresses).
pub(crate) fn listen(port: u16, addresses: &[IpAddr]) -> io::Result<Vec<TcpListener>> {
    let addrs: Vec<IpAddr> = if addresses.is_empty() {
        vec![
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        ]
    } else {
        addresses.to_vec()
    };
    let mut out = Vec::new();
    let mut first_err = None;
    for a in addrs {
        let domain = if a.is_ipv6() {
            Domain::IPV6
        } else {
            Domain::IPV4
        };
        let bound = (|| -> io::Result<TcpListener> {
            let sock = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
            if a.is_ipv6() {
                sock.set_only_v6(true)?;
            }
            sock.set_reuse_address(true)?;
            sock.set_nonblocking(true)?;
            sock.bind(&SocketAddr::new(a, port).into())?;
            sock.listen(64)?;
            TcpListener::from_std(sock.into())
        })();
        match bound {
            Ok(l) => out.push(l),
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    match (out.is_empty(), first_err) {
        (true, Some(e)) => Err(e),
        _ => Ok(out),
    }
}

/// The peer address as configured: IPv4-mapped IPv6 addresses become IPv4.
pub(crate) fn canonical(a: IpAddr) -> IpAddr {
    match a {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(a, IpAddr::V4),
        v4 => v4,
    }
}

/// Our addresses on the interface that holds `local`: an IPv4 one, an IPv6 global and an
/// IPv6 link-local one. They are the next hops of the families the session's own address
/// does not cover.
pub(crate) fn interface_addresses(
    local: IpAddr,
) -> (Option<Ipv4Addr>, Option<Ipv6Addr>, Option<Ipv6Addr>) {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return (None, None, None);
    };
    let all: Vec<(String, IpAddr)> = addrs
        .filter_map(|ifa| {
            let sa = ifa.address?;
            let ip = if let Some(v4) = sa.as_sockaddr_in() {
                IpAddr::V4(v4.ip())
            } else if let Some(v6) = sa.as_sockaddr_in6() {
                IpAddr::V6(v6.ip())
            } else {
                return None;
            };
            Some((ifa.interface_name, ip))
        })
        .collect();
    let Some(ifname) = all
        .iter()
        .find(|(_, ip)| *ip == local)
        .map(|(n, _)| n.clone())
    else {
        return (None, None, None);
    };
    let mine = || all.iter().filter(|(n, _)| *n == ifname).map(|(_, ip)| *ip);
    let v4 = mine().find_map(|ip| match ip {
        IpAddr::V4(a) => Some(a),
        IpAddr::V6(_) => None,
    });
    let is_ll = |a: &Ipv6Addr| (a.segments()[0] & 0xffc0) == 0xfe80;
    let v6 = mine().find_map(|ip| match ip {
        IpAddr::V6(a) if !is_ll(&a) && !a.is_loopback() => Some(a),
        _ => None,
    });
    let ll = mine().find_map(|ip| match ip {
        IpAddr::V6(a) if is_ll(&a) => Some(a),
        _ => None,
    });
    (v4, v6, ll)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_addresses_of_accepted_connections_become_ipv4() {
        let a: IpAddr = "::ffff:192.168.10.200".parse().unwrap();
        assert_eq!(canonical(a), "192.168.10.200".parse::<IpAddr>().unwrap());
        let b: IpAddr = "fd00::1".parse().unwrap();
        assert_eq!(canonical(b), b);
    }

    #[test]
    fn the_loopback_interface_has_its_ipv4_address() {
        let (v4, _, _) = interface_addresses(IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(v4, Some(Ipv4Addr::LOCALHOST));
    }

    #[test]
    fn an_md5_key_can_be_set_on_a_socket_and_too_long_keys_are_refused() {
        let s = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
        let peer: IpAddr = "127.0.0.2".parse().unwrap();
        set_md5(s.as_raw_fd(), peer, Some("secret")).unwrap();
        set_md5(s.as_raw_fd(), peer, None).unwrap();
        assert!(set_md5(s.as_raw_fd(), peer, Some(&"x".repeat(81))).is_err());
    }
}
