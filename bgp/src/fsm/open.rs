//! Our OPEN, and the checks of the peer's OPEN that need the session's configuration
//! (RFC 4271 §6.2, RFC 6793, RFC 6286, RFC 5492): the codec has already refused what the bytes
//! alone show (version, hold time 1 or 2, identifier 0, bad parameters).

use std::net::Ipv4Addr;

use serde::Serialize;

use super::SessionConfig;
use crate::wire::notification::open as open_sub;
use crate::wire::open::{
    Capability, ExtendedNextHopEntry, GracefulRestart, GracefulRestartFamily, code,
};
use crate::wire::{ErrorCode, FamilySet, Negotiated, Notification, Open};

/// Graceful restart as both sides agreed on it (RFC 4724, RFC 8538).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PeerGracefulRestart {
    /// The peer's restart time in seconds: how long we keep its routes after a loss.
    pub restart_time: u16,
    /// R: the peer says it has just restarted.
    pub restarting: bool,
    /// Both sides set N (RFC 8538): NOTIFICATIONs other than Hard Reset also keep routes.
    pub notification: bool,
    /// Families the peer keeps state for (in its capability).
    pub families: FamilySet,
    /// Of those, families whose forwarding state the peer preserved (F bit).
    pub preserved: FamilySet,
}

/// What the OPEN exchange established: everything the RIB and the driver need.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionInfo {
    /// Our OPEN.
    pub local_open: Open,
    /// The peer's OPEN.
    pub remote_open: Open,
    /// The codec contexts.
    pub negotiated: Negotiated,
    /// The peer's AS (4-octet capability or My AS).
    pub peer_as: u32,
    /// The peer's BGP identifier.
    pub peer_id: Ipv4Addr,
    /// Whether the session is external (peer AS differs from ours).
    pub ebgp: bool,
    /// The negotiated hold time (smaller of the two; 0 means none).
    pub hold_time: u16,
    /// The keepalive interval applied (0 when the hold time is 0).
    pub keepalive: u16,
    /// Families both sides offered.
    pub families: FamilySet,
    /// The peer offered ROUTE-REFRESH (RFC 2918).
    pub route_refresh: bool,
    /// Both offered enhanced route refresh (RFC 7313).
    pub enhanced_route_refresh: bool,
    /// Both offered graceful restart.
    pub graceful_restart: Option<PeerGracefulRestart>,
}

/// Builds our OPEN. `restarting` sets the R bit (RFC 4724 §3).
pub(crate) fn local_open(config: &SessionConfig, restarting: bool) -> Open {
    let mut caps: Vec<Capability> = config
        .families
        .iter()
        .map(Capability::Multiprotocol)
        .collect();
    caps.push(Capability::RouteRefresh);
    caps.push(Capability::EnhancedRouteRefresh);
    let enh: Vec<ExtendedNextHopEntry> = config
        .extended_next_hop
        .intersection(config.families)
        .iter()
        .filter(|f| !f.is_ipv6())
        .map(|f| ExtendedNextHopEntry {
            afi: f.afi,
            safi: u16::from(f.safi),
            next_hop_afi: crate::wire::family::AFI_IPV6,
        })
        .collect();
    if !enh.is_empty() {
        caps.push(Capability::ExtendedNextHop(enh));
    }
    if config.extended_message {
        caps.push(Capability::ExtendedMessage);
    }
    if let Some(gr) = &config.graceful_restart {
        caps.push(Capability::GracefulRestart(GracefulRestart {
            restart_state: restarting,
            notification: gr.notification,
            restart_time: gr.restart_time.min(4095),
            families: config
                .families
                .iter()
                .map(|family| GracefulRestartFamily {
                    family,
                    forwarding_preserved: gr.forwarding_preserved,
                })
                .collect(),
        }));
    }
    caps.push(Capability::FourOctetAs(config.local_as));
    Open::new(config.local_as, config.hold_time, config.router_id, caps)
}

/// Checks the peer's OPEN against the configuration; on success, what was negotiated.
pub(crate) fn accept(
    config: &SessionConfig,
    ours: &Open,
    theirs: &Open,
) -> Result<SessionInfo, Notification> {
    let peer_as = theirs.asn();
    if peer_as == 0 || (config.peer_as != 0 && peer_as != config.peer_as) {
        return Err(Notification::new(
            ErrorCode::OpenMessage,
            open_sub::BAD_PEER_AS,
            theirs.my_as.to_be_bytes().to_vec(),
        ));
    }
    let ebgp = peer_as != config.local_as;
    // RFC 6286 §2.2: within an AS the identifiers must differ.
    if !ebgp && theirs.bgp_id == config.router_id {
        return Err(Notification::new(
            ErrorCode::OpenMessage,
            open_sub::BAD_BGP_IDENTIFIER,
            theirs.bgp_id.octets().to_vec(),
        ));
    }
    let negotiated = Negotiated::from_opens(ours, theirs);
    let families = negotiated.encode.families.intersection(config.families);
    if families.is_empty() {
        // Nothing in common to exchange: say which families we wanted (RFC 5492 §3).
        let mut data = Vec::new();
        for f in config.families.iter() {
            data.extend_from_slice(&[code::MULTIPROTOCOL, 4]);
            data.extend_from_slice(&f.afi.to_be_bytes());
            data.extend_from_slice(&[0, f.safi]);
        }
        return Err(Notification::new(
            ErrorCode::OpenMessage,
            open_sub::UNSUPPORTED_CAPABILITY,
            data,
        ));
    }
    let hold_time = ours.hold_time.min(theirs.hold_time);
    let keepalive = if hold_time == 0 {
        0
    } else {
        let wanted = config.keepalive.unwrap_or(config.hold_time / 3);
        wanted.min(hold_time / 3).max(1)
    };
    let graceful_restart = match (gr_of(ours), gr_of(theirs)) {
        (Some(our), Some(their)) => {
            let mut fams = FamilySet::EMPTY;
            let mut preserved = FamilySet::EMPTY;
            for f in &their.families {
                fams.insert(f.family);
                if f.forwarding_preserved {
                    preserved.insert(f.family);
                }
            }
            Some(PeerGracefulRestart {
                restart_time: their.restart_time,
                restarting: their.restart_state,
                notification: our.notification && their.notification,
                families: fams.intersection(families),
                preserved: preserved.intersection(families),
            })
        }
        _ => None,
    };
    Ok(SessionInfo {
        local_open: ours.clone(),
        remote_open: theirs.clone(),
        negotiated,
        peer_as,
        peer_id: theirs.bgp_id,
        ebgp,
        hold_time,
        keepalive,
        families,
        route_refresh: theirs.has_capability(code::ROUTE_REFRESH),
        enhanced_route_refresh: theirs.has_capability(code::ENHANCED_ROUTE_REFRESH)
            && ours.has_capability(code::ENHANCED_ROUTE_REFRESH),
        graceful_restart,
    })
}

fn gr_of(open: &Open) -> Option<&GracefulRestart> {
    open.capabilities().find_map(|c| match c {
        Capability::GracefulRestart(g) => Some(g),
        _ => None,
    })
}
