//! What LB-IPAM is given and what it answers, in plain types: `agent-glue` builds them from
//! CiliumLoadBalancerIPPools and Services (evaluating the label selectors there) and turns the
//! answer into Service and pool status.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use crate::count::Count;

/// One block of a pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Block {
    /// A prefix; with `allowFirstLastIPs: No` its first and last address are not used when it
    /// holds more than two.
    Cidr(ipnet::IpNet),
    /// `start..=stop` (a single address when they are equal).
    Range {
        /// First address.
        start: IpAddr,
        /// Last address.
        stop: IpAddr,
    },
}

/// A CiliumLoadBalancerIPPool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolSpec {
    /// The pool's name (unique).
    pub name: String,
    /// Creation time (any monotonic scale, e.g. Unix seconds): of two overlapping pools the
    /// newer one is marked conflicting; equal times fall back to the name.
    pub created: i64,
    /// The blocks that could be read.
    pub blocks: Vec<Block>,
    /// Blocks that could not be read, each described (`block 2: start "10.0.0.x" is not an IP
    /// address`). Any makes the pool conflicting.
    pub invalid_blocks: Vec<String>,
    /// `spec.disabled`: no new allocations; existing ones are kept.
    pub disabled: bool,
    /// `spec.allowFirstLastIPs` (default true).
    pub allow_first_last_ips: bool,
    /// The pool has no `serviceSelector` (or an empty one): it serves every service. Pools with
    /// a selector are preferred over such catch-all pools.
    pub catch_all: bool,
    /// The selector could not be evaluated: the pool allocates nothing new, and what it holds
    /// stays with its services (the caller lists it as eligible for every service).
    pub selector_broken: bool,
}

impl PoolSpec {
    /// A pool of `blocks` with every other field at its default: enabled, first and last
    /// addresses allowed, catch-all, created at 0.
    pub fn new(name: impl Into<String>, blocks: Vec<Block>) -> Self {
        PoolSpec {
            name: name.into(),
            created: 0,
            blocks,
            invalid_blocks: Vec::new(),
            disabled: false,
            allow_first_last_ips: true,
            catch_all: true,
            selector_broken: false,
        }
    }
}

/// Index of a pool in the `pools` slice given to [`crate::allocate`].
pub type PoolId = usize;

/// Which families a service wants, from `ipFamilies` and `ipFamilyPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Families {
    /// Wants an IPv4 address.
    pub ipv4: bool,
    /// Wants an IPv6 address.
    pub ipv6: bool,
    /// Every wanted family is required (`RequireDualStack`, or single stack); otherwise one is
    /// enough (`PreferDualStack`).
    pub require_all: bool,
}

impl Families {
    /// One IPv4 address.
    pub const IPV4: Families = Families {
        ipv4: true,
        ipv6: false,
        require_all: true,
    };
    /// One IPv6 address.
    pub const IPV6: Families = Families {
        ipv4: false,
        ipv6: true,
        require_all: true,
    };
    /// `RequireDualStack`.
    pub const REQUIRE_DUAL: Families = Families {
        ipv4: true,
        ipv6: true,
        require_all: true,
    };
    /// `PreferDualStack`.
    pub const PREFER_DUAL: Families = Families {
        ipv4: true,
        ipv6: true,
        require_all: false,
    };
}

/// `lbipam.cilium.io/sharing-cross-namespace`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum CrossNamespace {
    /// Only services of the same namespace.
    #[default]
    None,
    /// These namespaces too.
    Some(Vec<String>),
    /// `*`: any namespace.
    Any,
}

impl CrossNamespace {
    fn allows(&self, ns: &str) -> bool {
        match self {
            CrossNamespace::None => false,
            CrossNamespace::Some(list) => list.iter().any(|n| n == ns),
            CrossNamespace::Any => true,
        }
    }
}

/// A LoadBalancer service LB-IPAM is responsible for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRequest {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Creation time: services needing new addresses are served oldest first (then by
    /// namespace and name).
    pub created: i64,
    /// The pools whose `serviceSelector` selects this service (indices into `pools`).
    pub pools: Vec<PoolId>,
    /// Wanted families (ignored when specific addresses are requested).
    pub families: Families,
    /// Specific addresses requested (`spec.loadBalancerIP`, `lbipam.cilium.io/ips`,
    /// `io.cilium/lb-ipam-ips`); when any, the service gets exactly these.
    pub requested: Vec<IpAddr>,
    /// Requested entries that are not addresses, to be reported.
    pub invalid_requests: Vec<String>,
    /// `lbipam.cilium.io/sharing-key`.
    pub sharing_key: Option<String>,
    /// `lbipam.cilium.io/sharing-cross-namespace`.
    pub sharing_cross_namespace: CrossNamespace,
    /// Service port numbers (sharing services must not have one in common).
    pub ports: Vec<u16>,
    /// `externalTrafficPolicy: Local`.
    pub external_traffic_local: bool,
    /// `spec.selector` (with `Local`, sharing services must select the same pods).
    pub pod_selector: BTreeMap<String, String>,
    /// Addresses in `status.loadBalancer.ingress` now: re-imported before anything new is
    /// given, so an address stays with its service.
    pub current: Vec<IpAddr>,
}

impl ServiceRequest {
    /// A single-stack IPv4 service eligible for `pools`, with nothing else set.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>, pools: Vec<PoolId>) -> Self {
        ServiceRequest {
            namespace: namespace.into(),
            name: name.into(),
            created: 0,
            pools,
            families: Families::IPV4,
            requested: Vec::new(),
            invalid_requests: Vec::new(),
            sharing_key: None,
            sharing_cross_namespace: CrossNamespace::None,
            ports: Vec::new(),
            external_traffic_local: false,
            pod_selector: BTreeMap::new(),
            current: Vec::new(),
        }
    }

    /// Whether `self` and `other` may share one address (Cilium's rules): same sharing key,
    /// same namespace or both allowing each other's, no port number in common, the same
    /// `externalTrafficPolicy`, and with `Local` the same non-empty pod selector.
    pub fn can_share_with(&self, other: &ServiceRequest) -> Result<(), &'static str> {
        match (&self.sharing_key, &other.sharing_key) {
            (Some(a), Some(b)) if a == b => {}
            (Some(_), Some(_)) => return Err("has a different sharing key"),
            _ => return Err("has no sharing key"),
        }
        if self.namespace != other.namespace
            && !(self.sharing_cross_namespace.allows(&other.namespace)
                && other.sharing_cross_namespace.allows(&self.namespace))
        {
            return Err("is in a namespace sharing is not allowed with");
        }
        if self.ports.iter().any(|p| other.ports.contains(p)) {
            return Err("uses the same port");
        }
        if self.external_traffic_local != other.external_traffic_local {
            return Err("has a different externalTrafficPolicy");
        }
        if self.external_traffic_local
            && (self.pod_selector.is_empty() || self.pod_selector != other.pod_selector)
        {
            return Err("has externalTrafficPolicy Local and selects different pods");
        }
        Ok(())
    }
}

/// The `reason` of the `cilium.io/IPAMRequestSatisfied` condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Every wanted address was given (status True).
    Satisfied,
    /// No enabled pool that selects the service holds what it wants.
    NoPool,
    /// The pools that could serve it are full.
    OutOfIps,
    /// A requested address is in a pool whose selector does not select the service.
    PoolSelectorMismatch,
    /// A requested address belongs to another service.
    AlreadyAllocated,
    /// A requested address belongs to a service it may not share with.
    AlreadyAllocatedIncompatibleService,
}

impl Reason {
    /// As Cilium writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Satisfied => "satisfied",
            Reason::NoPool => "no_pool",
            Reason::OutOfIps => "out_of_ips",
            Reason::PoolSelectorMismatch => "pool_selector_mismatch",
            Reason::AlreadyAllocated => "already_allocated",
            Reason::AlreadyAllocatedIncompatibleService => "already_allocated_incompatible_service",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An address given to a service and the pool it counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Assigned {
    /// The address.
    pub ip: IpAddr,
    /// Its pool.
    pub pool: PoolId,
}

/// What one service gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceOutcome {
    /// Index into the `services` slice given.
    pub service: usize,
    /// Its addresses, IPv4 before IPv6, each family ascending.
    pub addresses: Vec<Assigned>,
    /// The condition's reason.
    pub reason: Reason,
    /// The condition's message.
    pub message: String,
}

impl ServiceOutcome {
    /// Whether the condition is True.
    pub fn satisfied(&self) -> bool {
        self.reason == Reason::Satisfied
    }
}

/// What one pool reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolOutcome {
    /// Index into the `pools` slice given.
    pub pool: usize,
    /// Allocatable addresses (the union of its blocks, reserved first/last excluded).
    pub total: Count,
    /// Addresses given to services and counted against this pool.
    pub used: Count,
    /// `total - used`.
    pub available: Count,
    /// Why the pool is conflicting (overlaps named), if it is.
    pub conflict: Option<String>,
}

/// The whole answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    /// One per service, in the order given.
    pub services: Vec<ServiceOutcome>,
    /// One per pool, in the order given.
    pub pools: Vec<PoolOutcome>,
}
