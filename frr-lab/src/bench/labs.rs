//! The two bench labs (`frr-lab/topologies/bench/`), with the DUT filled in: its kind, its
//! `bgp:` block or, for `lbspeaker run`, the manifests, and the CPUs everything is pinned to.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use ipnet::IpNet;

use super::{BenchError, BenchOptions, Dut};
use crate::lab::find_lbspeaker;
use crate::topology::{AddressFamily, BgpSpec, NeighborSpec, NodeKind, Topology};
use crate::{Lab, LabOptions, unique_prefix};

const ORIGIN_YAML: &str = include_str!("../../topologies/bench/origin.yaml");
const TRANSIT_YAML: &str = include_str!("../../topologies/bench/transit.yaml");

/// The DUT's AS in both labs.
pub const DUT_AS: u32 = 65001;
/// The tor's AS.
pub const TOR_AS: u32 = 65000;
/// The generators' and the monitor's ASes.
pub const GEN_A_AS: u32 = 65101;
/// Feed B.
pub const GEN_B_AS: u32 = 65102;
/// The monitor.
pub const MON_AS: u32 = 65200;

/// The DUT's address facing the tor in the origin lab.
pub const ORIGIN_DUT: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
/// The tor's address.
pub const ORIGIN_TOR: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

/// Timers and graceful restart of the origin lab's one session.
#[derive(Debug, Clone, Copy, Default)]
pub struct SessionTimers {
    /// (hold, keepalive); `None`: each daemon's default.
    pub hold_keepalive: Option<(u16, u16)>,
    /// Graceful restart time on both sides.
    pub graceful_restart: Option<u16>,
}

fn load(yaml: &str, name: &str) -> Result<Topology, BenchError> {
    Topology::from_yaml(yaml, name, |f| {
        Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("the bench topologies refer to no file ({f})"),
        ))
    })
    .map_err(|e| BenchError::Lab(e.into()))
}

fn neighbor(address: IpAddr, asn: u32, t: &SessionTimers) -> NeighborSpec {
    NeighborSpec {
        address,
        asn,
        hold_time: t.hold_keepalive.map(|h| h.0),
        keepalive: t.hold_keepalive.map(|h| h.1),
        connect_retry: Some(1),
        multihop: None,
        password: None,
        graceful_restart: t.graceful_restart,
        families: Vec::new(),
    }
}

fn lab_options(opts: &BenchOptions, tag: &str) -> LabOptions {
    LabOptions {
        prefix: Some(unique_prefix(tag)),
        root: opts.lab_root.clone(),
        start_daemons: true,
        lbspeaker: opts.lbspeaker.clone(),
    }
}

fn set_kind(t: &mut Topology, dut: Dut, bgp: Option<BgpSpec>, opts: &BenchOptions) {
    let cpus = |c: Option<usize>| c.map(|c| c.to_string());
    for (name, node) in t.nodes.iter_mut() {
        if name == "dut" {
            node.kind = match dut {
                Dut::Gobgpd => NodeKind::Gobgpd,
                Dut::Bird => NodeKind::Bird,
                Dut::Frr => NodeKind::Frr,
                // Set by the caller: `lbspeaker run` or a host running bench-speaker.
                Dut::Lbspeaker => node.kind,
            };
            if dut != Dut::Lbspeaker {
                node.bgp = bgp.clone();
            }
            node.cpus = cpus(opts.dut_cpu());
        } else if node.kind.runs_bgp() {
            node.cpus = cpus(opts.helper_cpu());
        }
    }
}

/// The origin lab's DUT `bgp:` block (gobgpd, BIRD, FRR): one neighbor, the tor; listening
/// too, so the tor's own connection is taken at once.
pub fn origin_spec(t: &SessionTimers, announce: Vec<IpNet>) -> BgpSpec {
    BgpSpec {
        asn: DUT_AS,
        router_id: ORIGIN_DUT,
        listen: true,
        announce,
        neighbors: vec![neighbor(IpAddr::V4(ORIGIN_TOR), TOR_AS, t)],
        transit: false,
        no_fib: false,
    }
}

/// Manifests for `lbspeaker run` on the DUT node with the same semantics as
/// [`origin_spec`]: one ClusterConfig selecting Node `dut`, one peer (the tor) with the
/// timers and graceful restart given, one advertisement of LoadBalancer addresses of the
/// services labelled `bench: svc`, and a pool holding them (10.96.0.0/16).
pub fn origin_manifests(t: &SessionTimers) -> String {
    let timers = match t.hold_keepalive {
        Some((h, k)) => format!(
            "  timers:\n    holdTimeSeconds: {h}\n    keepAliveTimeSeconds: {k}\n    connectRetryTimeSeconds: 1\n"
        ),
        None => "  timers:\n    connectRetryTimeSeconds: 1\n".to_owned(),
    };
    let gr = match t.graceful_restart {
        Some(s) => format!("  gracefulRestart:\n    enabled: true\n    restartTimeSeconds: {s}\n"),
        None => String::new(),
    };
    format!(
        "# frr-lab bench: the DUT node's cluster (written by frr-lab bench).
apiVersion: cilium.io/v2
kind: CiliumBGPClusterConfig
metadata:
  name: bench
spec:
  nodeSelector:
    matchLabels:
      bench: dut
  bgpInstances:
  - name: bench
    localASN: {DUT_AS}
    peers:
    - name: tor
      peerASN: {TOR_AS}
      peerAddress: {ORIGIN_TOR}
      peerConfigRef:
        name: bench-peer
---
apiVersion: cilium.io/v2
kind: CiliumBGPPeerConfig
metadata:
  name: bench-peer
spec:
{timers}{gr}  families:
  - afi: ipv4
    safi: unicast
    advertisements:
      matchLabels:
        advertise: bench
---
apiVersion: cilium.io/v2
kind: CiliumBGPAdvertisement
metadata:
  name: bench-services
  labels:
    advertise: bench
spec:
  advertisements:
  - advertisementType: Service
    service:
      addresses: [LoadBalancerIP]
    selector:
      matchLabels:
        bench: svc
---
apiVersion: cilium.io/v2
kind: CiliumLoadBalancerIPPool
metadata:
  name: bench-pool
spec:
  blocks:
  - cidr: 10.96.0.0/16
---
apiVersion: v1
kind: Node
metadata:
  name: dut
  labels:
    bench: dut
status:
  addresses:
  - type: InternalIP
    address: {ORIGIN_DUT}
"
    )
}

/// `count` LoadBalancer Services labelled `bench: svc`, each with the address `address(i)`
/// in its status when `with_status` (else LB-IPAM gives them theirs).
pub fn services_yaml(count: usize, with_status: bool, address: impl Fn(usize) -> IpAddr) -> String {
    let mut s = String::with_capacity(count * 260);
    s.push_str("# frr-lab bench: the services the DUT announces.\n");
    for i in 0..count {
        s.push_str(&format!(
            "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: svc-{i:05}\n  namespace: bench\n  labels:\n    bench: svc\nspec:\n  type: LoadBalancer\n  ports:\n  - port: 80\n    protocol: TCP\n"
        ));
        if with_status {
            s.push_str(&format!(
                "status:\n  loadBalancer:\n    ingress:\n    - ip: {}\n",
                address(i)
            ));
        }
    }
    s
}

/// A DUT's lab and the processes that are the DUT.
#[derive(Debug)]
pub struct BenchLab {
    /// The lab (removed when dropped).
    pub lab: Lab,
    /// The DUT.
    pub dut: Dut,
    /// The `bgp:` block the DUT runs (also for lbspeaker's bench-speaker), if any.
    pub spec: Option<BgpSpec>,
    /// Where the nodes' logs are copied when the lab goes away.
    pub keep_logs: Option<PathBuf>,
}

impl Drop for BenchLab {
    fn drop(&mut self) {
        super::interrupt::forget(self.lab.prefix());
        let Some(dest) = &self.keep_logs else { return };
        let nodes: Vec<String> = self.lab.topology().nodes.keys().cloned().collect();
        for node in nodes {
            let src = self.lab.state().dir.join(&node);
            let to = dest.join(self.lab.prefix()).join(&node);
            let Ok(entries) = std::fs::read_dir(&src) else {
                continue;
            };
            for e in entries.flatten() {
                let p = e.path();
                let keep = p
                    .extension()
                    .is_some_and(|x| x == "log" || x == "conf" || x == "toml" || x == "yaml");
                if keep && std::fs::create_dir_all(&to).is_ok() {
                    let _ = std::fs::copy(&p, to.join(e.file_name()));
                }
            }
        }
    }
}

impl BenchLab {
    /// The pids that make up the DUT (FRR: bgpd and zebra).
    pub fn pids(&self) -> Vec<u32> {
        let names: &[&str] = match self.dut {
            Dut::Lbspeaker => &["lbspeaker", "bench-speaker"],
            Dut::Gobgpd => &["gobgpd"],
            Dut::Bird => &["bird"],
            Dut::Frr => &["bgpd", "zebra"],
        };
        let mut pids: Vec<u32> = self
            .lab
            .processes("dut")
            .iter()
            .filter(|p| names.contains(&p.name.as_str()))
            .map(|p| p.pid)
            .collect();
        // Restarted daemons leave their old records: keep the live ones.
        pids.retain(|p| std::path::Path::new(&format!("/proc/{p}")).exists());
        pids
    }

    /// The pid of the BGP daemon itself (FRR: bgpd), newest first.
    pub fn bgp_pid(&self) -> Option<u32> {
        let name = match self.dut {
            Dut::Lbspeaker => None,
            Dut::Gobgpd => Some("gobgpd"),
            Dut::Bird => Some("bird"),
            Dut::Frr => Some("bgpd"),
        };
        self.lab
            .processes("dut")
            .iter()
            .rev()
            .filter(|p| match name {
                Some(n) => p.name == n,
                None => p.name == "lbspeaker" || p.name == "bench-speaker",
            })
            .map(|p| p.pid)
            .find(|p| std::path::Path::new(&format!("/proc/{p}")).exists())
    }
}

/// The origin lab (workloads 1 and 4). gobgpd, BIRD and FRR originate `announce` from their
/// configuration; lbspeaker runs `lbspeaker run` on the manifests of [`origin_manifests`]
/// (services are written by the workload).
pub fn origin(
    opts: &BenchOptions,
    dut: Dut,
    t: &SessionTimers,
    announce: Vec<IpNet>,
) -> Result<BenchLab, BenchError> {
    let mut topo = load(ORIGIN_YAML, "bench-origin")?;
    if let Some(tor) = topo.nodes.get_mut("tor").and_then(|n| n.bgp.as_mut()) {
        tor.neighbors = vec![neighbor(IpAddr::V4(ORIGIN_DUT), DUT_AS, t)];
    }
    let spec = origin_spec(t, announce);
    if dut == Dut::Lbspeaker {
        if let Some(n) = topo.nodes.get_mut("dut") {
            n.kind = NodeKind::Lbspeaker;
        }
        topo.files.insert("bench.yaml".into(), origin_manifests(t));
        topo.manifests.push("bench.yaml".into());
    }
    set_kind(&mut topo, dut, Some(spec.clone()), opts);
    let lab = Lab::up(topo, lab_options(opts, "bo"))?;
    super::interrupt::register(lab.prefix(), lab.topology(), &opts.lab_root);
    Ok(BenchLab {
        lab,
        dut,
        spec: (dut != Dut::Lbspeaker).then_some(spec),
        keep_logs: opts.keep_logs.clone(),
    })
}

/// The transit lab's DUT block: three neighbors carrying both families, learnt routes passed
/// on, nothing installed in a kernel.
pub fn transit_spec(hold_keepalive: Option<(u16, u16)>) -> BgpSpec {
    let t = SessionTimers {
        hold_keepalive,
        graceful_restart: None,
    };
    let n = |a: [u8; 4], asn| {
        let mut n = neighbor(IpAddr::V4(Ipv4Addr::from(a)), asn, &t);
        n.families = vec![AddressFamily::Ipv4, AddressFamily::Ipv6];
        n
    };
    BgpSpec {
        asn: DUT_AS,
        router_id: Ipv4Addr::new(10, 0, 1, 1),
        listen: true,
        announce: Vec::new(),
        neighbors: vec![
            n([10, 0, 1, 2], GEN_A_AS),
            n([10, 0, 2, 2], GEN_B_AS),
            n([10, 0, 3, 2], MON_AS),
        ],
        transit: true,
        no_fib: true,
    }
}

/// Where `bench-speaker` is: given, `$BENCH_SPEAKER_BIN`, or beside this program.
pub fn find_bench_speaker(explicit: Option<&std::path::Path>) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return p.is_file().then(|| p.to_owned());
    }
    if let Some(p) = std::env::var_os("BENCH_SPEAKER_BIN").map(PathBuf::from) {
        return p.is_file().then_some(p);
    }
    let exe = std::env::current_exe().ok()?;
    exe.ancestors()
        .skip(1)
        .take(2)
        .map(|d| d.join("bench-speaker"))
        .find(|p| p.is_file())
}

/// The transit lab (workloads 2, 3 and 5), the DUT started and pinned.
pub fn transit(
    opts: &BenchOptions,
    dut: Dut,
    hold_keepalive: Option<(u16, u16)>,
) -> Result<BenchLab, BenchError> {
    let mut topo = load(TRANSIT_YAML, "bench-transit")?;
    let spec = transit_spec(hold_keepalive);
    set_kind(&mut topo, dut, Some(spec.clone()), opts);
    let mut lab = Lab::up(topo, lab_options(opts, "bt"))?;
    super::interrupt::register(lab.prefix(), lab.topology(), &opts.lab_root);
    if dut == Dut::Lbspeaker {
        let exe = find_bench_speaker(opts.bench_speaker.as_deref()).ok_or_else(|| {
            BenchError::Failed(
                "bench-speaker not found: cargo build --release -p frr-lab (or set BENCH_SPEAKER_BIN)"
                    .into(),
            )
        })?;
        let file = lab.node_dir("dut")?.join("bgp.yaml");
        let text = serde_saphyr::to_string(&spec)
            .map_err(|e| BenchError::Failed(format!("cannot write the bgp block: {e}")))?;
        std::fs::write(&file, text)
            .map_err(BenchError::io(format!("cannot write {}", file.display())))?;
        let (exe, file) = (exe.to_string_lossy(), file.to_string_lossy());
        let mut args: Vec<String> = Vec::new();
        let program = match opts.dut_cpu() {
            Some(cpu) => {
                args.extend(["-c".to_owned(), cpu.to_string(), exe.to_string()]);
                "taskset".to_owned()
            }
            None => exe.to_string(),
        };
        args.extend(["--config".to_owned(), file.to_string()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        lab.spawn("dut", "bench-speaker", &program, &args)?;
    }
    Ok(BenchLab {
        lab,
        dut,
        spec: Some(spec),
        keep_logs: opts.keep_logs.clone(),
    })
}

/// The lbspeaker binary a lab would run, for error messages early.
pub fn require_lbspeaker(opts: &BenchOptions) -> Result<PathBuf, BenchError> {
    find_lbspeaker(opts.lbspeaker.as_deref()).ok_or_else(|| {
        BenchError::Failed(
            "lbspeaker not found: cargo build --release -p agent-glue (or set LBSPEAKER_BIN)"
                .into(),
        )
    })
}
