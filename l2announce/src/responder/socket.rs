//! AF_PACKET sockets bound to one interface and one EtherType, with a classic BPF filter so
//! that only the frames we answer (ARP requests, neighbour solicitations) reach user space.
//!
//! Why AF_PACKET and not eBPF: the answers are built in user space anyway (they depend on
//! the lease), the rate is a few frames per second per address, and a packet socket sees
//! frames to any Ethernet destination, so no multicast filter stands between us and the
//! solicited-node group on a veth or a bridge. (On real NICs the group is joined too, see
//! `super::Multicast`.) The socket is created with protocol 0, so it receives nothing until
//! the filter is attached and it is bound, and so no unfiltered frame is ever queued.

#![allow(unsafe_code)]

use std::io::{self, Read as _};
use std::mem;

use socket2::{Domain, Protocol, SockAddr, SockAddrStorage, SockFilter, Socket, Type};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// Accept up to this many octets of a frame (what tcpdump uses).
const SNAPLEN: u32 = 0x0004_0000;

// Classic BPF opcodes (linux/filter.h).
const LD_H_ABS: u16 = 0x28;
const LD_B_ABS: u16 = 0x30;
const JEQ_K: u16 = 0x15;
const RET_K: u16 = 0x06;

/// ARP requests: operation (offset 20 of the frame) is 1.
pub(crate) fn arp_request_filter() -> Vec<SockFilter> {
    vec![
        SockFilter::new(LD_H_ABS, 0, 0, 20),
        SockFilter::new(JEQ_K, 0, 1, 1),
        SockFilter::new(RET_K, 0, 0, SNAPLEN),
        SockFilter::new(RET_K, 0, 0, 0),
    ]
}

/// Neighbour solicitations: IPv6 next header (offset 20) is ICMPv6 and the ICMPv6 type
/// (offset 54, right after the fixed header) is 135.
pub(crate) fn neighbor_solicitation_filter() -> Vec<SockFilter> {
    vec![
        SockFilter::new(LD_B_ABS, 0, 0, 20),
        SockFilter::new(JEQ_K, 0, 3, 58),
        SockFilter::new(LD_B_ABS, 0, 0, 54),
        SockFilter::new(JEQ_K, 0, 1, 135),
        SockFilter::new(RET_K, 0, 0, SNAPLEN),
        SockFilter::new(RET_K, 0, 0, 0),
    ]
}

/// A non-blocking packet socket on one interface, registered with tokio.
#[derive(Debug)]
pub(crate) struct PacketSocket {
    fd: AsyncFd<Socket>,
}

fn link_address(ifindex: u32, ethertype: u16) -> io::Result<SockAddr> {
    let index = i32::try_from(ifindex)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "interface index too large"))?;
    let mut storage = SockAddrStorage::zeroed();
    // SAFETY: `sockaddr_storage` is larger than and suitably aligned for every socket
    // address type, `sockaddr_ll` included; the storage is zeroed, and all-zeros is a valid
    // `sockaddr_ll`, so the reference points at a valid value.
    let ll: &mut libc::sockaddr_ll = unsafe { storage.view_as() };
    ll.sll_family = libc::AF_PACKET as u16;
    ll.sll_protocol = ethertype.to_be();
    ll.sll_ifindex = index;
    let len = mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    // SAFETY: the storage holds an initialised `sockaddr_ll` whose family is AF_PACKET, and
    // `len` is exactly its size, so the address is what its family says it is.
    Ok(unsafe { SockAddr::new(storage, len) })
}

impl PacketSocket {
    /// Opens a socket receiving frames of `ethertype` on interface `ifindex` that pass
    /// `filter`, and sending on that interface.
    pub(crate) fn open(
        ifindex: u32,
        ethertype: u16,
        filter: &[SockFilter],
    ) -> io::Result<PacketSocket> {
        let socket = Socket::new(Domain::PACKET, Type::RAW, Some(Protocol::from(0)))?;
        socket.attach_filter(filter)?;
        socket.bind(&link_address(ifindex, ethertype)?)?;
        socket.set_nonblocking(true)?;
        // SAFETY: `socket` owns its descriptor, which stays open and refers to the same socket
        // until the `Socket` is dropped, and that happens only when the `AsyncFd` is dropped
        // (we never take it out); `as_raw_fd` of a `Socket` always returns that descriptor.
        let fd = unsafe { AsyncFd::register_with_interest(socket, Interest::READABLE) }?;
        Ok(PacketSocket { fd })
    }

    /// Waits for the next frame and copies it into `buf`, returning its length.
    pub(crate) async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut guard = self.fd.readable().await?;
            match guard.try_io(|fd| {
                let mut socket: &Socket = fd.get_ref();
                socket.read(buf)
            }) {
                Ok(result) => return result,
                Err(_would_block) => continue,
            }
        }
    }

    /// Sends one whole Ethernet frame on the interface. A full send queue drops the frame
    /// (the next announcement or the requester's retry makes up for it).
    pub(crate) fn send(&self, frame: &[u8]) -> io::Result<()> {
        let sent = self.fd.get_ref().send(frame)?;
        if sent == frame.len() {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "sent {sent} of {} octets",
                frame.len()
            )))
        }
    }
}
