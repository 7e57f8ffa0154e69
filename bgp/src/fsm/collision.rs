//! Connection collision detection (RFC 4271 §6.8, with the equal-identifier rule of RFC 6286
//! §2.3), as a pure decision.
//!
//! When both speakers open a TCP connection to each other, each ends up with two connections
//! to the same peer. Once the peer's BGP identifier is known (from an OPEN), both sides keep
//! the connection initiated by the speaker with the higher identifier, so they agree without
//! talking about it. The loser is told with [`Input::OpenCollisionDump`](super::Input), which
//! sends Cease / Connection Collision Resolution.

use std::net::Ipv4Addr;

/// Who opened a TCP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Initiator {
    /// We dialled it.
    Local,
    /// The peer dialled it (we accepted it).
    Remote,
}

/// Which of two connections to the same peer survives: the one initiated by the speaker with
/// the higher BGP identifier; with equal identifiers (possible between ASes, RFC 6286), the
/// one initiated by the speaker with the higher AS number.
pub fn survivor(
    local_id: Ipv4Addr,
    remote_id: Ipv4Addr,
    local_as: u32,
    remote_as: u32,
) -> Initiator {
    match u32::from(local_id).cmp(&u32::from(remote_id)) {
        std::cmp::Ordering::Greater => Initiator::Local,
        std::cmp::Ordering::Less => Initiator::Remote,
        std::cmp::Ordering::Equal => {
            if local_as > remote_as {
                Initiator::Local
            } else {
                Initiator::Remote
            }
        }
    }
}

/// What to do with a second connection given the state of the first one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Keep both until one of them receives an OPEN.
    KeepBoth,
    /// Close the connection initiated by this side.
    Dump(Initiator),
}

/// The decision once an OPEN has told us the peer's identifier: `other_established` says
/// whether the other connection is already Established (then the new one is dropped, RFC 4271
/// §6.8 last paragraph), `other_open_exchanged` whether the other connection is in OpenSent
/// or OpenConfirm (then the identifiers decide).
pub fn decide(
    new: Initiator,
    other_established: bool,
    other_open_exchanged: bool,
    local_id: Ipv4Addr,
    remote_id: Ipv4Addr,
    local_as: u32,
    remote_as: u32,
) -> Verdict {
    if other_established {
        return Verdict::Dump(new);
    }
    if !other_open_exchanged {
        return Verdict::KeepBoth;
    }
    let keep = survivor(local_id, remote_id, local_as, remote_as);
    let dump = match keep {
        Initiator::Local => Initiator::Remote,
        Initiator::Remote => Initiator::Local,
    };
    Verdict::Dump(dump)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOW: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const HIGH: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

    #[test]
    fn the_connection_of_the_higher_identifier_survives_on_both_sides() {
        // Seen from the low side, the high side's connection (remote) survives...
        assert_eq!(survivor(LOW, HIGH, 65001, 65002), Initiator::Remote);
        // ...and from the high side, its own (local) one: the same TCP connection.
        assert_eq!(survivor(HIGH, LOW, 65002, 65001), Initiator::Local);
    }

    #[test]
    fn equal_identifiers_fall_back_to_the_higher_as() {
        assert_eq!(survivor(LOW, LOW, 65002, 65001), Initiator::Local);
        assert_eq!(survivor(LOW, LOW, 65001, 65002), Initiator::Remote);
    }

    #[test]
    fn a_new_connection_colliding_with_an_established_one_is_dropped() {
        assert_eq!(
            decide(Initiator::Remote, true, false, HIGH, LOW, 1, 2),
            Verdict::Dump(Initiator::Remote)
        );
        assert_eq!(
            decide(Initiator::Local, false, false, HIGH, LOW, 1, 2),
            Verdict::KeepBoth
        );
        assert_eq!(
            decide(Initiator::Remote, false, true, HIGH, LOW, 1, 2),
            Verdict::Dump(Initiator::Remote)
        );
        assert_eq!(
            decide(Initiator::Remote, false, true, LOW, HIGH, 1, 2),
            Verdict::Dump(Initiator::Local)
        );
    }
}
