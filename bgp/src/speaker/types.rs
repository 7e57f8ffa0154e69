//! The speaker's public data types: errors, stop and reset modes, peer state and events,
//! RIB views.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ipnet::IpNet;
use serde::Serialize;

use crate::config::ConfigError;
use crate::fsm::{PeerGracefulRestart, State};
use crate::rib::Attrs;
use crate::wire::{Family, Notification};

/// What the speaker refuses, and why.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpeakerError {
    /// An instance of that name runs already.
    #[error("instance {0:?} already exists")]
    InstanceExists(String),
    /// No instance of that name.
    #[error("no instance {0:?}")]
    NoInstance(String),
    /// A peer of that name exists in the instance.
    #[error("instance {instance:?}: peer {peer:?} already exists")]
    PeerExists {
        /// The instance.
        instance: String,
        /// The peer.
        peer: String,
    },
    /// No peer of that name in the instance.
    #[error("instance {instance:?}: no peer {peer:?}")]
    NoPeer {
        /// The instance.
        instance: String,
        /// The peer.
        peer: String,
    },
    /// Another peer of the instance has that address.
    #[error("instance {instance:?}: address {address} is already peer {peer:?}")]
    AddressInUse {
        /// The instance.
        instance: String,
        /// The address.
        address: IpAddr,
        /// The peer that has it.
        peer: String,
    },
    /// The configuration is not valid.
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    /// The listening socket could not be opened.
    #[error("cannot listen on port {port}: {source}")]
    Listen {
        /// The port.
        port: u16,
        /// Why.
        source: std::io::Error,
    },
    /// A TCP MD5 key could not be installed on a listening socket.
    #[error("cannot set the TCP MD5 key for {address}: {source}")]
    Md5 {
        /// The peer address.
        address: IpAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// How to stop an instance (or the whole speaker).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopMode {
    /// Cease / Administrative Shutdown to every peer, with this RFC 9003 communication: the
    /// peers withdraw our routes.
    Shutdown {
        /// The shutdown communication.
        communication: Option<String>,
    },
    /// Just close the connections: peers with graceful restart keep our routes (stale) until
    /// we come back and send End-of-RIB.
    GracefulRestart,
}

/// Why a session is forced down from outside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResetReason {
    /// BFD saw the path fail (Cease / BFD Down, RFC 9384); the session restarts by itself.
    BfdDown,
    /// An operator's reset (Cease / Administrative Reset with this communication).
    Administrative(Option<String>),
    /// Any other NOTIFICATION.
    Notification(Notification),
}

/// Received and advertised prefixes of one family.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FamilyCounts {
    /// The family.
    pub family: Family,
    /// Prefixes in the peer's Adj-RIB-In.
    pub received: u32,
    /// Of those, kept stale under graceful restart.
    pub stale: u32,
    /// Prefixes in the peer's Adj-RIB-Out.
    pub advertised: u32,
}

/// A peer as `lbspeaker bgp peers` and CiliumBGPNodeConfig status show it.
#[derive(Debug, Clone, Serialize)]
pub struct PeerState {
    /// The peer's name.
    pub name: String,
    /// Its address.
    pub address: IpAddr,
    /// The AS configured (0: any).
    pub configured_as: u32,
    /// The AS it announced, once known.
    pub peer_as: Option<u32>,
    /// Our AS.
    pub local_as: u32,
    /// Session state.
    pub state: State,
    /// When the session became Established.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub established_since: Option<SystemTime>,
    /// How long it has been Established.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uptime: Option<Duration>,
    /// Applied hold time, seconds.
    pub hold_time: Option<u16>,
    /// Applied keepalive interval, seconds.
    pub keepalive: Option<u16>,
    /// Negotiated families.
    pub families: Vec<Family>,
    /// Per family counts.
    pub counts: Vec<FamilyCounts>,
    /// The peer's BGP identifier.
    pub peer_id: Option<Ipv4Addr>,
    /// The TCP endpoints.
    pub local: Option<SocketAddr>,
    /// The TCP endpoints.
    pub remote: Option<SocketAddr>,
    /// Graceful restart as negotiated.
    pub graceful_restart: Option<PeerGracefulRestart>,
    /// Why the last session or attempt ended.
    pub last_error: Option<String>,
    /// Established sessions that ended.
    pub flaps: u32,
    /// Messages received and sent.
    pub messages_received: u64,
    /// Messages sent.
    pub messages_sent: u64,
    /// Octets waiting in our write buffer (at most about 64 KiB plus one batch: the rest
    /// stays in the Adj-RIB-Out until the peer reads).
    pub out_queue: usize,
}

/// Something that happened to a peer.
#[derive(Debug, Clone, Serialize)]
pub struct PeerEvent {
    /// The instance.
    pub instance: String,
    /// The peer's name.
    pub peer: String,
    /// Its address.
    pub address: IpAddr,
    /// What happened.
    pub kind: PeerEventKind,
}

/// What happened to a peer.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case", tag = "event")]
pub enum PeerEventKind {
    /// The FSM changed state.
    StateChanged {
        /// Old state.
        from: State,
        /// New state.
        to: State,
    },
    /// The session is Established.
    Established {
        /// The peer's AS.
        peer_as: u32,
        /// Applied hold time.
        hold_time: u16,
        /// Applied keepalive.
        keepalive: u16,
        /// Negotiated families.
        families: Vec<Family>,
    },
    /// A session (or an attempt) ended.
    Down {
        /// Why.
        reason: String,
        /// The peer's routes are kept stale (graceful restart).
        graceful: bool,
        /// It had been Established.
        established: bool,
    },
    /// The peer sent End-of-RIB.
    EndOfRib {
        /// For this family.
        family: Family,
    },
    /// Stale routes of a restarting peer were removed.
    StaleSwept {
        /// Family.
        family: Family,
        /// How many.
        count: usize,
    },
    /// The peer sent more prefixes than allowed; the session was closed.
    MaxPrefixReached {
        /// Family.
        family: Family,
        /// The limit.
        limit: u32,
    },
}

/// A route as the RIB read API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RibRoute {
    /// The prefix.
    pub prefix: IpNet,
    /// The peer it came from (`None`: ours).
    pub peer: Option<String>,
    /// The next hop (for an Adj-RIB-Out, the one sent).
    pub next_hop: Option<IpAddr>,
    /// Attributes.
    pub attrs: Arc<Attrs>,
    /// Best path.
    pub best: bool,
    /// In the multipath (ECMP) set.
    pub multipath: bool,
    /// Kept stale (graceful restart).
    pub stale: bool,
    /// Usable (no loop).
    pub eligible: bool,
}

/// A Loc-RIB change: the paths now used for a prefix, best first; empty when it is gone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BestPathChange {
    /// The prefix.
    pub prefix: IpNet,
    /// The paths now used (the multipath set), best first.
    pub paths: Vec<RibRoute>,
}
