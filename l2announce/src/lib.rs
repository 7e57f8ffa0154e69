//! L2 announcements: answer ARP and IPv6 neighbour solicitations for service addresses on the
//! node that holds the address's lease, and announce takeovers with gratuitous ARP and
//! unsolicited neighbour advertisements.
//!
//! Planned parts: `wire` (ARP/NDP parsing and building), `election` (a pure function of the
//! clock, the lease and this node) and `responder` (AF_PACKET sockets). Empty for now; it
//! arrives with the l2announce issue.
