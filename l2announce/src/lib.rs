//! L2 announcements: answer ARP and IPv6 neighbour solicitations for service addresses on the
//! node that holds the address's lease, and announce takeovers with gratuitous ARP and
//! unsolicited neighbour advertisements.

pub mod election;
pub mod lease;
pub mod wire;
