//! Topology files: which network namespaces a lab has, how they are wired, and what runs in
//! each, in the spirit of containerlab's `*.clab.yml`.
//!
//! ```yaml
//! name: pair
//! nodes:
//!   tor:
//!     kind: frr                 # host (default) | bridge | frr | gobgpd | bird
//!     config: tor.conf          # FRR configuration, relative to this file (or `bgp:` below)
//!     interfaces: { eth1: [10.0.0.1/24] }
//!   node1:
//!     kind: gobgpd
//!     interfaces: { eth1: [10.0.0.2/24], lo: [10.99.0.1/32] }
//!     routes: ["10.1.0.0/16 via 10.0.0.1"]
//!     bgp:
//!       asn: 65001
//!       router-id: 10.0.0.2
//!       announce: [172.20.0.0/24]
//!       neighbors: [{ address: 10.0.0.1, asn: 65000, hold-time: 9, keepalive: 3 }]
//! links:
//!   - endpoints: [tor:eth1, node1:eth1]
//! ```
//!
//! A `bridge` node is a namespace holding one Linux bridge (`br0`) to which every link ending
//! on it is attached: that is how a shared segment (several nodes on one subnet) is built
//! without touching the host's own interfaces.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Everything that can be wrong with a topology file, with enough context to fix it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TopologyError {
    /// The YAML does not parse into the topology schema.
    #[error("topology {source_name}: {message}")]
    Parse {
        /// Where the topology came from (a path or a built-in name).
        source_name: String,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A file the topology refers to cannot be read.
    #[error("topology {source_name}: cannot read {path}: {error}")]
    File {
        /// Where the topology came from.
        source_name: String,
        /// The file that could not be read.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// Neither a built-in topology of that name nor a readable file.
    #[error("no topology named {0:?}: built-in topologies are {builtins}; or give a path to a YAML file", builtins = BUILTIN_NAMES.join(", "))]
    Unknown(String),
    /// The topology parses but does not make sense.
    #[error("topology {topology}: {message}")]
    Invalid {
        /// The topology's name.
        topology: String,
        /// What is wrong, naming the node, link or field.
        message: String,
    },
}

/// A lab: named nodes (each one network namespace) and the veth links between them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Topology {
    /// Short name; the default namespace prefix of a lab built from it.
    pub name: String,
    /// What the lab is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The nodes by name. Names become part of namespace names.
    pub nodes: BTreeMap<String, Node>,
    /// Point-to-point veth links.
    #[serde(default)]
    pub links: Vec<Link>,
    /// Manifests (relative to this file) copied into the lab's shared manifest directory,
    /// `LAB/manifests/`, which every `lbspeaker` node runs on: the cluster the lab plays.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub manifests: Vec<String>,
    /// Where `manifests` are read from, relative to this file (default: its directory); they
    /// keep the names listed under `LAB/manifests/`. For a variant living beside the lab it
    /// varies (`manifest-dir: ..`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_dir: Option<String>,
    /// Contents of the files the nodes' `config` fields and `manifests` name, read when the
    /// topology was loaded, so that a lab never depends on the working directory.
    #[serde(skip)]
    pub files: BTreeMap<String, String>,
}

/// One network namespace and what runs in it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Node {
    /// What the node runs.
    #[serde(default)]
    pub kind: NodeKind,
    /// For `frr`: the configuration file given to bgpd, verbatim (relative to the topology).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
    /// Addresses per interface. `lo` may carry addresses; other names must be link endpoints.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub interfaces: BTreeMap<String, Vec<IpNet>>,
    /// Static routes, `"PREFIX via ADDRESS"` (or `"default via ADDRESS"`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<StaticRoute>,
    /// Extra sysctls inside the namespace, e.g. `net.ipv4.ip_forward: "1"`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sysctls: BTreeMap<String, String>,
    /// BGP settings rendered into the daemon's own configuration language (gobgpd, bird, and
    /// frr when no `config` file is given), so every daemon gets the same semantics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bgp: Option<BgpSpec>,
    /// For `lbspeaker` nodes: how `lbspeaker run` is started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lbspeaker: Option<LbspeakerSpec>,
    /// For `frr`: also start FRR's bfdd (BFD for `neighbor X bfd` in bgpd's configuration).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub bfdd: bool,
    /// For `frr` with `bfdd`: bfdd's own configuration file (a `bfd` section with profiles and
    /// peers), relative to the topology; an empty `bfd` section when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bfdd_config: Option<String>,
    /// Pin the node's daemons to these CPUs (`taskset -c LIST`, e.g. `"1"` or `"0,2-3"`), so
    /// a benchmark can keep a device under test and its helpers on different cores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<String>,
    /// Processes started in the node once the network is up, before any daemon (a lab's
    /// backends, for instance).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub processes: Vec<ProcessSpec>,
}

/// A process a node runs: started in the node's namespace with the node's directory as its
/// working directory (where its `files` are copied), its output in `NODE_DIR/NAME.log`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ProcessSpec {
    /// Its name (the log file's, and what `frr-lab status` shows).
    pub name: String,
    /// The program and its arguments.
    pub command: Vec<String>,
    /// Topology files (relative to it) copied into the node's directory under their file
    /// names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<String>,
    /// Ports the process listens on when ready: `tcp/80`, `udp/5353`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ready: Vec<String>,
}

/// How an `lbspeaker` node runs `lbspeaker run --config-dir LAB/manifests --node NAME
/// --api LAB/NODE/api.sock --metrics-addr 127.0.0.1:9962`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct LbspeakerSpec {
    /// The Node object it speaks for (default: the lab node's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Extra arguments to `lbspeaker run` (e.g. `--log-level`, `debug`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Give the node a bpffs of its own (as its machine's `/sys/fs/bpf`, which `ip netns
    /// exec` hides), mounted at `LAB/NODE/bpffs` and passed as `--bpffs-root
    /// LAB/NODE/bpffs/lbspeaker`: for `--dataplane on`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub bpffs: bool,
}

/// What runs in a node.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum NodeKind {
    /// A plain host: addresses and routes, no daemon.
    #[default]
    Host,
    /// A shared segment: a namespace with one bridge that all its links join.
    Bridge,
    /// FRR: its own zebra and bgpd.
    Frr,
    /// GoBGP's gobgpd, with routes injected through its gRPC API.
    Gobgpd,
    /// BIRD 2.
    Bird,
    /// `lbspeaker run` on the lab's shared manifest directory.
    Lbspeaker,
}

impl NodeKind {
    /// Whether this kind runs a BGP daemon.
    pub fn runs_bgp(self) -> bool {
        matches!(
            self,
            NodeKind::Frr | NodeKind::Gobgpd | NodeKind::Bird | NodeKind::Lbspeaker
        )
    }
}

impl fmt::Display for NodeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NodeKind::Host => "host",
            NodeKind::Bridge => "bridge",
            NodeKind::Frr => "frr",
            NodeKind::Gobgpd => "gobgpd",
            NodeKind::Bird => "bird",
            NodeKind::Lbspeaker => "lbspeaker",
        })
    }
}

/// BGP settings shared by the gobgpd, bird and frr renderers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct BgpSpec {
    /// Local AS number.
    pub asn: u32,
    /// BGP identifier.
    pub router_id: Ipv4Addr,
    /// Accept incoming sessions on port 179. Off by default, as a Cilium node (which only
    /// dials out) behaves; FRR and BIRD always listen.
    #[serde(default)]
    pub listen: bool,
    /// Prefixes this node originates (origin IGP, next hop self).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub announce: Vec<IpNet>,
    /// The peers.
    #[serde(default)]
    pub neighbors: Vec<NeighborSpec>,
    /// Pass routes learnt from one neighbor on to the others, as a transit router does.
    /// gobgpd and FRR do that anyway (their defaults); BIRD exports only its own static
    /// routes unless this is set.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub transit: bool,
    /// FRR: keep BGP's routes out of zebra and the kernel (`bgp no-rib`), as gobgpd and BIRD
    /// in these labs never install any.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_fib: bool,
}

/// An address family a neighbor carries.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum AddressFamily {
    /// IPv4 unicast.
    Ipv4,
    /// IPv6 unicast.
    Ipv6,
}

/// One BGP peer of a [`BgpSpec`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct NeighborSpec {
    /// The peer's address.
    pub address: IpAddr,
    /// The peer's AS.
    pub asn: u32,
    /// Hold time in seconds (the daemon's default when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_time: Option<u16>,
    /// Keepalive interval in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keepalive: Option<u16>,
    /// Connect-retry interval in seconds; labs default to 1 s so that a first refused
    /// connection does not leave a session idle for two minutes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_retry: Option<u16>,
    /// eBGP multihop TTL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multihop: Option<u8>,
    /// TCP MD5 password (RFC 2385).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Graceful restart with this restart time in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graceful_restart: Option<u16>,
    /// The unicast families of the session; when empty, IPv4 always and IPv6 when the session
    /// is IPv6 or the node announces IPv6 prefixes. `[ipv4, ipv6]` on an IPv4 session carries
    /// IPv6 prefixes with IPv6 next hops in MP_REACH_NLRI.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub families: Vec<AddressFamily>,
}

impl NeighborSpec {
    /// The connect-retry interval the renderers use.
    pub fn connect_retry_or_default(&self) -> u16 {
        self.connect_retry.unwrap_or(1)
    }
}

/// A veth link between two node interfaces.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Link {
    /// The two ends, each `node:interface`.
    pub endpoints: [Endpoint; 2],
}

/// One end of a link: `node:interface`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    /// Node name.
    pub node: String,
    /// Interface name inside the node's namespace.
    pub interface: String,
}

impl FromStr for Endpoint {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once(':') {
            Some((node, interface)) if !node.is_empty() && !interface.is_empty() => Ok(Endpoint {
                node: node.to_owned(),
                interface: interface.to_owned(),
            }),
            _ => Err(format!(
                "link endpoint {s:?} is not of the form node:interface"
            )),
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.node, self.interface)
    }
}

impl Serialize for Endpoint {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Endpoint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A static route: `PREFIX via ADDRESS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticRoute {
    /// Destination.
    pub prefix: IpNet,
    /// Next hop.
    pub via: IpAddr,
}

impl FromStr for StaticRoute {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let words: Vec<&str> = s.split_whitespace().collect();
        let [dest, "via", via] = words.as_slice() else {
            return Err(format!(
                "route {s:?} is not of the form \"PREFIX via ADDRESS\""
            ));
        };
        let via: IpAddr = via
            .parse()
            .map_err(|_| format!("route {s:?}: {via:?} is not an IP address"))?;
        let prefix = if *dest == "default" {
            match via {
                IpAddr::V4(_) => IpNet::from_str("0.0.0.0/0"),
                IpAddr::V6(_) => IpNet::from_str("::/0"),
            }
            .map_err(|e| e.to_string())?
        } else {
            dest.parse()
                .map_err(|_| format!("route {s:?}: {dest:?} is not a prefix"))?
        };
        if prefix.addr().is_ipv4() != via.is_ipv4() {
            return Err(format!("route {s:?} mixes address families"));
        }
        Ok(StaticRoute { prefix, via })
    }
}

impl fmt::Display for StaticRoute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} via {}", self.prefix, self.via)
    }
}

impl Serialize for StaticRoute {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for StaticRoute {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The topologies compiled into frr-lab, by name.
pub const BUILTIN_NAMES: &[&str] = &["seed", "seed-gobgpd", "seed-dataplane", "l2"];

/// `(topology name, file name, contents)` of every file of the built-in topologies.
const BUILTIN_FILES: &[(&str, &str, &str)] = &[
    (
        "seed",
        "topology.yaml",
        include_str!("../topologies/seed/topology.yaml"),
    ),
    (
        "seed",
        "frr-tor.conf",
        include_str!("../topologies/seed/frr-tor.conf"),
    ),
    (
        "seed",
        "bgp.yaml",
        include_str!("../topologies/seed/bgp.yaml"),
    ),
    (
        "seed",
        "lb-pool.yaml",
        include_str!("../topologies/seed/lb-pool.yaml"),
    ),
    (
        "seed",
        "webpod.yaml",
        include_str!("../topologies/seed/webpod.yaml"),
    ),
    (
        "seed",
        "lb-advertisement.yaml",
        include_str!("../topologies/seed/lb-advertisement.yaml"),
    ),
    (
        "seed",
        "cluster/nodes.yaml",
        include_str!("../topologies/seed/cluster/nodes.yaml"),
    ),
    (
        "seed",
        "cluster/webpod-endpoints.yaml",
        include_str!("../topologies/seed/cluster/webpod-endpoints.yaml"),
    ),
    (
        "seed-gobgpd",
        "topology.yaml",
        include_str!("../topologies/seed-gobgpd/topology.yaml"),
    ),
    (
        "seed-gobgpd",
        "../seed/frr-tor.conf",
        include_str!("../topologies/seed/frr-tor.conf"),
    ),
    (
        "seed-dataplane",
        "topology.yaml",
        include_str!("../topologies/seed/dataplane/topology.yaml"),
    ),
    (
        "seed-dataplane",
        "../frr-tor.conf",
        include_str!("../topologies/seed/frr-tor.conf"),
    ),
    (
        "seed-dataplane",
        "../bgp.yaml",
        include_str!("../topologies/seed/bgp.yaml"),
    ),
    (
        "seed-dataplane",
        "../lb-pool.yaml",
        include_str!("../topologies/seed/lb-pool.yaml"),
    ),
    (
        "seed-dataplane",
        "../webpod.yaml",
        include_str!("../topologies/seed/webpod.yaml"),
    ),
    (
        "seed-dataplane",
        "../lb-advertisement.yaml",
        include_str!("../topologies/seed/lb-advertisement.yaml"),
    ),
    (
        "seed-dataplane",
        "../cluster/nodes.yaml",
        include_str!("../topologies/seed/cluster/nodes.yaml"),
    ),
    (
        "seed-dataplane",
        "../cluster/webpod-endpoints.yaml",
        include_str!("../topologies/seed/cluster/webpod-endpoints.yaml"),
    ),
    (
        "seed-dataplane",
        "../dataplane/webpod-udp.yaml",
        include_str!("../topologies/seed/dataplane/webpod-udp.yaml"),
    ),
    (
        "seed-dataplane",
        "webpod.py",
        include_str!("../topologies/seed/dataplane/webpod.py"),
    ),
    (
        "l2",
        "topology.yaml",
        include_str!("../topologies/l2/topology.yaml"),
    ),
    ("l2", "l2.yaml", include_str!("../topologies/l2/l2.yaml")),
    (
        "l2",
        "cluster/nodes.yaml",
        include_str!("../topologies/l2/cluster/nodes.yaml"),
    ),
    (
        "l2",
        "cluster/ingress.yaml",
        include_str!("../topologies/l2/cluster/ingress.yaml"),
    ),
];

impl Topology {
    /// A built-in topology by name, or else a YAML file at that path.
    pub fn load(name_or_path: &str) -> Result<Topology, TopologyError> {
        if let Some(t) = Topology::builtin(name_or_path) {
            return t;
        }
        let path = Path::new(name_or_path);
        if path.is_file() {
            return Topology::from_file(path);
        }
        Err(TopologyError::Unknown(name_or_path.to_owned()))
    }

    /// A topology compiled into frr-lab.
    pub fn builtin(name: &str) -> Option<Result<Topology, TopologyError>> {
        let yaml = builtin_file(name, "topology.yaml")?;
        Some(Topology::from_yaml(yaml, name, |file| {
            builtin_file(name, file).map(str::to_owned).ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::NotFound, "not a file of this topology")
            })
        }))
    }

    /// A topology file; `config` files are read relative to its directory.
    pub fn from_file(path: &Path) -> Result<Topology, TopologyError> {
        let source_name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|error| TopologyError::File {
            source_name: source_name.clone(),
            path: path.to_owned(),
            error,
        })?;
        let dir = path.parent().map(Path::to_owned).unwrap_or_default();
        Topology::from_yaml(&text, &source_name, |file| {
            std::fs::read_to_string(dir.join(file))
        })
    }

    /// Parses and validates a topology, reading referenced files through `read_file`.
    pub fn from_yaml(
        yaml: &str,
        source_name: &str,
        mut read_file: impl FnMut(&str) -> std::io::Result<String>,
    ) -> Result<Topology, TopologyError> {
        let mut topology: Topology =
            serde_saphyr::from_str(yaml).map_err(|e| TopologyError::Parse {
                source_name: source_name.to_owned(),
                message: e.to_string(),
            })?;
        let configs = topology
            .nodes
            .values()
            .flat_map(|n| n.config.iter().chain(n.bfdd_config.iter()).cloned());
        let process_files: Vec<String> = topology
            .nodes
            .values()
            .flat_map(|n| n.processes.iter().flat_map(|p| p.files.iter().cloned()))
            .collect();
        let from = |m: &String| match &topology.manifest_dir {
            Some(d) => format!("{}/{m}", d.trim_end_matches('/')),
            None => m.clone(),
        };
        // (name in the lab, must be a plain relative path, where to read it)
        let wanted: Vec<(String, bool, String)> = configs
            .map(|c| (c.clone(), false, c))
            .chain(
                topology
                    .manifests
                    .iter()
                    .map(|m| (m.clone(), true, from(m))),
            )
            .chain(process_files.into_iter().map(|f| (f.clone(), true, f)))
            .collect();
        for (file, manifest, source) in wanted {
            if topology.files.contains_key(&file) {
                continue;
            }
            if manifest && !valid_relative(&file) {
                return Err(TopologyError::Invalid {
                    topology: topology.name.clone(),
                    message: format!(
                        "file {file:?} must be a relative path inside the topology's directory"
                    ),
                });
            }
            let text = read_file(&source).map_err(|error| TopologyError::File {
                source_name: source_name.to_owned(),
                path: PathBuf::from(&source),
                error,
            })?;
            topology.files.insert(file, text);
        }
        topology.validate()?;
        Ok(topology)
    }

    /// The manifests of the lab's shared directory: (path relative to it, contents).
    pub fn manifest_files(&self) -> Vec<(&str, &str)> {
        self.manifests
            .iter()
            .filter_map(|m| Some((m.as_str(), self.files.get(m)?.as_str())))
            .collect()
    }

    /// Whether the lab runs lbspeaker anywhere (then it has a shared manifest directory).
    pub fn runs_lbspeaker(&self) -> bool {
        self.nodes.values().any(|n| n.kind == NodeKind::Lbspeaker)
    }

    /// The contents of a node's `bfdd-config` file, if it has one.
    pub fn bfdd_config_text(&self, node: &str) -> Option<&str> {
        let file = self.nodes.get(node)?.bfdd_config.as_ref()?;
        self.files.get(file).map(String::as_str)
    }

    /// The contents of a node's `config` file, if it has one.
    pub fn config_text(&self, node: &str) -> Option<&str> {
        let file = self.nodes.get(node)?.config.as_ref()?;
        self.files.get(file).map(String::as_str)
    }

    /// Node names in start order: bridges and hosts, then gobgpd and BIRD, then FRR, then
    /// lbspeaker. FRR connects to its neighbors once at start-up and then only every
    /// connect-retry interval (120 s unless configured), so the speakers it dials should
    /// already be listening; lbspeaker dials at once when it starts (and listens only with a
    /// `localPort`), so it comes last and finds FRR ready.
    pub fn start_order(&self) -> Vec<&str> {
        let rank = |k: NodeKind| match k {
            NodeKind::Bridge | NodeKind::Host => 0,
            NodeKind::Gobgpd | NodeKind::Bird => 1,
            NodeKind::Frr => 2,
            NodeKind::Lbspeaker => 3,
        };
        let mut names: Vec<&str> = self.nodes.keys().map(String::as_str).collect();
        names.sort_by_key(|n| self.nodes.get(*n).map(|node| rank(node.kind)));
        names
    }

    /// Checks everything that can be checked without touching the system.
    pub fn validate(&self) -> Result<(), TopologyError> {
        let invalid = |message: String| TopologyError::Invalid {
            topology: self.name.clone(),
            message,
        };
        if !valid_name(&self.name, 24) {
            return Err(invalid(format!(
                "name {:?} must be 1-24 characters of a-z, 0-9 and '-'",
                self.name
            )));
        }
        if self.nodes.is_empty() {
            return Err(invalid("has no nodes".into()));
        }
        let mut linked: BTreeSet<(&str, &str)> = BTreeSet::new();
        for (i, link) in self.links.iter().enumerate() {
            for end in &link.endpoints {
                let Some(node) = self.nodes.get(&end.node) else {
                    return Err(invalid(format!(
                        "link {} names unknown node {:?}",
                        i + 1,
                        end.node
                    )));
                };
                if !valid_ifname(&end.interface) || end.interface == "lo" {
                    return Err(invalid(format!(
                        "link {}: interface {:?} must be 1-15 characters of a-z, 0-9, '-', '_' or '.', and not lo",
                        i + 1,
                        end.interface
                    )));
                }
                if node.kind == NodeKind::Bridge && end.interface == "br0" {
                    return Err(invalid(format!("link {}: br0 is the bridge itself", i + 1)));
                }
                if !linked.insert((end.node.as_str(), end.interface.as_str())) {
                    return Err(invalid(format!("interface {end} is used by two links")));
                }
            }
            if link.endpoints[0].node == link.endpoints[1].node {
                return Err(invalid(format!("link {} loops back to one node", i + 1)));
            }
        }
        for (name, node) in &self.nodes {
            if !valid_name(name, 24) {
                return Err(invalid(format!(
                    "node name {name:?} must be 1-24 characters of a-z, 0-9 and '-'"
                )));
            }
            for interface in node.interfaces.keys() {
                if interface != "lo" && !linked.contains(&(name.as_str(), interface.as_str())) {
                    return Err(invalid(format!(
                        "node {name}: interface {interface} has addresses but no link"
                    )));
                }
            }
            match node.kind {
                NodeKind::Bridge => {
                    if !node.interfaces.is_empty() || !node.routes.is_empty() || node.bgp.is_some()
                    {
                        return Err(invalid(format!(
                            "node {name}: a bridge has no addresses, routes or BGP"
                        )));
                    }
                }
                NodeKind::Frr => {
                    if node.config.is_none() && node.bgp.is_none() {
                        return Err(invalid(format!(
                            "node {name}: an frr node needs `config` (a file) or `bgp`"
                        )));
                    }
                }
                NodeKind::Gobgpd | NodeKind::Bird => {
                    if node.bgp.is_none() {
                        return Err(invalid(format!(
                            "node {name}: a {} node needs `bgp`",
                            node.kind
                        )));
                    }
                }
                NodeKind::Host => {
                    if node.bgp.is_some() {
                        return Err(invalid(format!(
                            "node {name}: `bgp` needs a daemon kind (frr, gobgpd or bird)"
                        )));
                    }
                }
                NodeKind::Lbspeaker => {
                    if node.bgp.is_some() {
                        return Err(invalid(format!(
                            "node {name}: an lbspeaker node is configured by the lab's `manifests`, not `bgp`"
                        )));
                    }
                }
            }
            if node.lbspeaker.is_some() && node.kind != NodeKind::Lbspeaker {
                return Err(invalid(format!(
                    "node {name}: `lbspeaker` is for lbspeaker nodes"
                )));
            }
            let mut process_names = BTreeSet::new();
            for p in &node.processes {
                if !valid_name(&p.name, 24) || !process_names.insert(p.name.as_str()) {
                    return Err(invalid(format!(
                        "node {name}: process name {:?} must be unique and 1-24 characters of a-z, 0-9 and '-'",
                        p.name
                    )));
                }
                if p.command.is_empty() {
                    return Err(invalid(format!(
                        "node {name}: process {} has no command",
                        p.name
                    )));
                }
                for r in &p.ready {
                    if parse_ready(r).is_none() {
                        return Err(invalid(format!(
                            "node {name}: process {}: ready {r:?} is not tcp/PORT or udp/PORT",
                            p.name
                        )));
                    }
                }
            }
            if node.config.is_some() && node.kind != NodeKind::Frr {
                return Err(invalid(format!("node {name}: `config` is for frr nodes")));
            }
            if node.bfdd && node.kind != NodeKind::Frr {
                return Err(invalid(format!("node {name}: `bfdd` is for frr nodes")));
            }
            if let Some(cpus) = &node.cpus
                && !valid_cpu_list(cpus)
            {
                return Err(invalid(format!(
                    "node {name}: cpus {cpus:?} is not a CPU list such as \"1\" or \"0,2-3\""
                )));
            }
            if node.bfdd_config.is_some() && !node.bfdd {
                return Err(invalid(format!(
                    "node {name}: `bfdd-config` needs `bfdd: true`"
                )));
            }
            if let Some(bgp) = &node.bgp {
                for n in &bgp.neighbors {
                    if let (Some(hold), Some(keepalive)) = (n.hold_time, n.keepalive)
                        && hold != 0
                        && (hold < 3 || keepalive > hold)
                    {
                        return Err(invalid(format!(
                            "node {name}: neighbor {}: hold time {hold} must be 0 or >= 3 and not below keepalive {keepalive}",
                            n.address
                        )));
                    }
                }
            }
        }
        Ok(())
    }
}

/// `tcp/80` or `udp/5353`: (is TCP, port).
pub(crate) fn parse_ready(s: &str) -> Option<(bool, u16)> {
    let (proto, port) = s.split_once('/')?;
    let tcp = match proto {
        "tcp" => true,
        "udp" => false,
        _ => return None,
    };
    let port: u16 = port.parse().ok().filter(|p| *p != 0)?;
    Some((tcp, port))
}

fn builtin_file(topology: &str, file: &str) -> Option<&'static str> {
    BUILTIN_FILES
        .iter()
        .find(|(t, f, _)| *t == topology && *f == file)
        .map(|(_, _, text)| *text)
}

/// Node and topology names become namespace names: keep them short and shell-safe.
pub(crate) fn valid_name(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// A manifest named by a topology: relative, no `..`, no hidden parts (it is copied to the
/// same place under the lab's manifest directory).
fn valid_relative(s: &str) -> bool {
    let p = Path::new(s);
    !s.is_empty()
        && p.is_relative()
        && p.components().all(|c| {
            matches!(c, std::path::Component::Normal(n) if !n.to_string_lossy().starts_with('.'))
        })
}

/// A `taskset -c` CPU list: numbers and ranges separated by commas.
fn valid_cpu_list(s: &str) -> bool {
    let number = |n: &str| !n.is_empty() && n.len() <= 4 && n.bytes().all(|b| b.is_ascii_digit());
    !s.is_empty()
        && s.split(',').all(|part| match part.split_once('-') {
            Some((a, b)) => number(a) && number(b),
            None => number(part),
        })
}

/// Linux interface names: at most 15 bytes (IFNAMSIZ - 1).
fn valid_ifname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 15
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<Topology, TopologyError> {
        Topology::from_yaml(yaml, "test", |f| Ok(format!("! contents of {f}\n")))
    }

    #[test]
    fn the_seed_runs_lbspeaker_on_every_node_on_the_seed_manifests() {
        let t = Topology::load("seed").unwrap();
        assert_eq!(t.name, "seed");
        for n in ["node1", "node2", "node3", "node4"] {
            assert_eq!(t.nodes[n].kind, NodeKind::Lbspeaker, "{n}");
            assert!(t.nodes[n].bgp.is_none());
        }
        let names: Vec<&str> = t.manifest_files().iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            [
                "bgp.yaml",
                "lb-pool.yaml",
                "webpod.yaml",
                "lb-advertisement.yaml",
                "cluster/nodes.yaml",
                "cluster/webpod-endpoints.yaml"
            ]
        );
        let bgp = t.manifest_files()[0].1;
        assert_eq!(bgp, include_str!("../topologies/seed/bgp.yaml"));
        let gobgpd = Topology::load("seed-gobgpd").unwrap();
        assert_eq!(t.links, gobgpd.links, "same wiring as the gobgpd variant");
        for (name, node) in &t.nodes {
            assert_eq!(node.interfaces, gobgpd.nodes[name].interfaces, "{name}");
            assert_eq!(node.routes, gobgpd.nodes[name].routes, "{name}");
        }
        let order = t.start_order();
        let pos = |n: &str| order.iter().position(|x| *x == n).unwrap();
        assert!(pos("tor") < pos("node1"), "lbspeaker dials: the tor first");
    }

    #[test]
    fn the_dataplane_variant_is_the_seed_with_webpods_behind_node2_to_node4() {
        let seed = Topology::load("seed").unwrap();
        let t = Topology::load("seed-dataplane").unwrap();
        for (n, pod, addr) in [
            ("node2", "webpod-1", "172.20.1.10/24"),
            ("node3", "webpod-2", "172.20.2.10/24"),
            ("node4", "webpod-3", "172.20.3.10/24"),
        ] {
            assert_eq!(t.nodes[pod].interfaces["eth0"][0].to_string(), addr);
            assert!(t.links.iter().any(|l| l.endpoints[0].node == n
                && l.endpoints[0].interface == "pod0"
                && l.endpoints[1].node == pod));
            let p = &t.nodes[pod].processes[0];
            assert_eq!(p.files, ["webpod.py"]);
            assert!(p.command.contains(&pod.to_owned()), "{:?}", p.command);
        }
        for n in ["node1", "node2", "node3", "node4"] {
            let l = t.nodes[n].lbspeaker.as_ref().unwrap();
            assert!(l.bpffs);
            assert_eq!(l.args, ["--dataplane", "on"]);
            assert_eq!(
                t.nodes[n].interfaces["eth1"], seed.nodes[n].interfaces["eth1"],
                "{n}"
            );
        }
        // The seed's manifests, byte for byte, plus the UDP service.
        for (name, text) in seed.manifest_files() {
            assert_eq!(t.files[name], text, "{name}");
        }
        assert!(t.files.contains_key("dataplane/webpod-udp.yaml"));
        assert_eq!(t.config_text("tor"), seed.config_text("tor"));
        // The file on disk is the built-in.
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies/seed/dataplane");
        let from_file = Topology::from_file(&dir.join("topology.yaml")).unwrap();
        assert_eq!(from_file.files, t.files);
        assert!(t.files["webpod.py"].contains("HTTP/1.1"));
    }

    #[test]
    fn process_ready_ports_must_be_tcp_or_udp() {
        let err = parse(
            "name: t\nnodes:\n  a: {processes: [{name: p, command: [sleep, '1'], ready: [sctp/9]}]}\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("tcp/PORT or udp/PORT"), "{err}");
        let t = parse(
            "name: t\nnodes:\n  a: {processes: [{name: p, command: [sleep, '1'], files: [x.py], ready: [tcp/80]}]}\n",
        )
        .unwrap();
        assert_eq!(t.files["x.py"], "! contents of x.py\n");
    }

    #[test]
    fn manifests_must_be_relative_files_inside_the_topology() {
        for bad in ["/etc/passwd", "../x.yaml", ".hidden.yaml"] {
            let err = parse(&format!(
                "name: t\nmanifests: [{bad:?}]\nnodes: {{a: {{}}}}\n"
            ))
            .unwrap_err();
            assert!(err.to_string().contains("relative path"), "{bad}: {err}");
        }
        let t = parse("name: t\nmanifests: [m/a.yaml]\nnodes: {a: {kind: lbspeaker}}\n").unwrap();
        assert_eq!(
            t.manifest_files(),
            [("m/a.yaml", "! contents of m/a.yaml\n")]
        );
        let err =
            parse("name: t\nnodes:\n  a: {kind: lbspeaker, bgp: {asn: 1, router-id: 1.1.1.1}}\n")
                .unwrap_err();
        assert!(
            err.to_string()
                .contains("configured by the lab's `manifests`"),
            "{err}"
        );
    }

    #[test]
    fn seed_gobgpd_topology_matches_the_field_lab() {
        let t = Topology::load("seed-gobgpd").unwrap();
        assert_eq!(t.name, "seed-gobgpd");
        let tor = &t.nodes["tor"];
        assert_eq!(tor.kind, NodeKind::Frr);
        assert_eq!(
            t.config_text("tor").unwrap(),
            include_str!("../topologies/seed/frr-tor.conf")
        );
        let addr = |node: &str, ifname: &str| t.nodes[node].interfaces[ifname][0].to_string();
        assert_eq!(addr("tor", "eth1"), "192.168.10.200/24");
        assert_eq!(addr("tor", "eth2"), "192.168.20.200/24");
        assert_eq!(addr("node1", "eth1"), "192.168.10.100/24");
        assert_eq!(addr("node2", "eth1"), "192.168.10.101/24");
        assert_eq!(addr("node3", "eth1"), "192.168.10.102/24");
        assert_eq!(addr("node4", "eth1"), "192.168.20.100/24");
        for n in ["node1", "node2", "node3"] {
            assert_eq!(
                t.nodes[n].routes,
                vec!["192.168.20.0/24 via 192.168.10.200".parse().unwrap()]
            );
        }
        assert_eq!(
            t.nodes["node4"].routes,
            vec!["192.168.10.0/24 via 192.168.20.200".parse().unwrap()]
        );
        let pod_cidrs: Vec<String> = ["node1", "node2", "node3", "node4"]
            .iter()
            .map(|n| t.nodes[*n].bgp.as_ref().unwrap().announce[0].to_string())
            .collect();
        assert_eq!(
            pod_cidrs,
            [
                "172.20.0.0/24",
                "172.20.1.0/24",
                "172.20.2.0/24",
                "172.20.3.0/24"
            ]
        );
        let node4 = t.nodes["node4"].bgp.as_ref().unwrap();
        assert_eq!(node4.neighbors[0].multihop, Some(2));
        assert_eq!(node4.neighbors[0].address.to_string(), "192.168.10.200");
    }

    #[test]
    fn start_order_puts_speakers_before_the_frr_router() {
        let t = Topology::load("seed-gobgpd").unwrap();
        let order = t.start_order();
        let pos = |n: &str| order.iter().position(|x| *x == n).unwrap();
        assert!(pos("sw1") < pos("node1"));
        assert!(pos("node4") < pos("tor"));
    }

    #[test]
    fn link_to_unknown_node_is_rejected_with_its_name() {
        let err = parse("name: t\nnodes: {a: {}}\nlinks:\n  - endpoints: [a:eth1, b:eth1]\n")
            .unwrap_err();
        assert!(err.to_string().contains("unknown node \"b\""), "{err}");
    }

    #[test]
    fn interface_used_twice_is_rejected() {
        let err = parse(
            "name: t\nnodes: {a: {}, b: {}, c: {}}\nlinks:\n  - endpoints: [a:eth1, b:eth1]\n  - endpoints: [a:eth1, c:eth1]\n",
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("a:eth1 is used by two links"),
            "{err}"
        );
    }

    #[test]
    fn addresses_on_an_unlinked_interface_are_rejected() {
        let err = parse("name: t\nnodes:\n  a: {interfaces: {eth9: [10.0.0.1/24]}}\n").unwrap_err();
        assert!(
            err.to_string().contains("eth9 has addresses but no link"),
            "{err}"
        );
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let err = parse("name: t\nnodes:\n  a: {kind: host, colour: red}\n").unwrap_err();
        assert!(err.to_string().contains("colour"), "{err}");
    }

    #[test]
    fn gobgpd_without_bgp_is_rejected() {
        let err = parse("name: t\nnodes:\n  a: {kind: gobgpd}\n").unwrap_err();
        assert!(err.to_string().contains("needs `bgp`"), "{err}");
    }

    #[test]
    fn long_interface_names_are_rejected() {
        let err = parse(
            "name: t\nnodes: {a: {}, b: {}}\nlinks:\n  - endpoints: [a:averyveryverylongname, b:eth1]\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("1-15 characters"), "{err}");
    }

    #[test]
    fn routes_parse_with_default_and_reject_mixed_families() {
        let r: StaticRoute = "default via 10.0.0.1".parse().unwrap();
        assert_eq!(r.prefix.to_string(), "0.0.0.0/0");
        let r: StaticRoute = "default via fd00::1".parse().unwrap();
        assert_eq!(r.prefix.to_string(), "::/0");
        assert!("10.0.0.0/8 via fd00::1".parse::<StaticRoute>().is_err());
        assert!("10.0.0.0/8 dev eth0".parse::<StaticRoute>().is_err());
    }

    #[test]
    fn bad_hold_time_is_rejected() {
        let err = parse(
            "name: t\nnodes:\n  a:\n    kind: gobgpd\n    bgp: {asn: 1, router-id: 1.1.1.1, neighbors: [{address: 10.0.0.1, asn: 2, hold-time: 2, keepalive: 1}]}\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("hold time 2"), "{err}");
    }

    #[test]
    fn bfdd_is_for_frr_nodes_and_its_config_file_is_read() {
        let t = parse(
            "name: t\nnodes:\n  tor: {kind: frr, config: tor.conf, bfdd: true, bfdd-config: bfdd.conf}\n",
        )
        .unwrap();
        assert!(t.nodes["tor"].bfdd);
        assert_eq!(t.bfdd_config_text("tor"), Some("! contents of bfdd.conf\n"));
        let err = parse("name: t\nnodes:\n  a: {kind: host, bfdd: true}\n").unwrap_err();
        assert!(err.to_string().contains("`bfdd` is for frr nodes"), "{err}");
        let err =
            parse("name: t\nnodes:\n  a: {kind: frr, config: x, bfdd-config: b}\n").unwrap_err();
        assert!(err.to_string().contains("needs `bfdd: true`"), "{err}");
    }

    #[test]
    fn cpu_lists_are_checked() {
        let t = parse("name: t\nnodes:\n  a: {cpus: \"0,2-3\"}\n").unwrap();
        assert_eq!(t.nodes["a"].cpus.as_deref(), Some("0,2-3"));
        for bad in ["", "one", "1;rm", "1-", "-1", "1,,2"] {
            let err = parse(&format!("name: t\nnodes:\n  a: {{cpus: {bad:?}}}\n")).unwrap_err();
            assert!(err.to_string().contains("not a CPU list"), "{bad}: {err}");
        }
    }

    #[test]
    fn unknown_topology_names_the_builtins() {
        let err = Topology::load("no-such-topology").unwrap_err();
        assert!(err.to_string().contains("seed"), "{err}");
    }
}
