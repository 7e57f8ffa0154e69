//! Helpers of the `lbspeaker run` lab tests: the seed lab with this build's lbspeaker on every
//! node, manifest edits, and what the FRR routers and the kernels report.

#![allow(dead_code)]
#![allow(clippy::unwrap_used)]

pub mod faults;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use frr_lab::{Lab, LabOptions, Topology, unique_prefix};
use serde_json::Value;

/// How long anything in these labs may take (it takes about a second).
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// The seed's nodes and their addresses toward the tor.
pub const NODES: [(&str, &str); 4] = [
    ("node1", "192.168.10.100"),
    ("node2", "192.168.10.101"),
    ("node3", "192.168.10.102"),
    ("node4", "192.168.20.100"),
];

/// The seed's PodCIDRs, node1 to node4.
pub const POD_CIDRS: [&str; 4] = [
    "172.20.0.0/24",
    "172.20.1.0/24",
    "172.20.2.0/24",
    "172.20.3.0/24",
];

/// Brings a topology up with this build's `lbspeaker`.
pub fn up(tag: &str, topology: Topology) -> Lab {
    let opts = LabOptions {
        lbspeaker: Some(PathBuf::from(env!("CARGO_BIN_EXE_lbspeaker"))),
        ..LabOptions::with_prefix(unique_prefix(tag))
    };
    Lab::up(topology, opts).unwrap()
}

/// Polls `probe` every 100 ms until it gives a value; panics after `timeout` with what it saw
/// last.
pub fn wait<T>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut(&mut String) -> Option<T>,
) -> T {
    let start = Instant::now();
    let mut last = String::new();
    loop {
        if let Some(v) = probe(&mut last) {
            return v;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {:?} waiting for {what}; last seen: {last}",
            start.elapsed()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `show bgp neighbors json` of an FRR node, by neighbor address.
pub fn neighbors(lab: &Lab, router: &str) -> BTreeMap<String, Value> {
    match lab.vtysh_json(router, "show bgp neighbors json") {
        Ok(Value::Object(m)) => m.into_iter().collect(),
        _ => BTreeMap::new(),
    }
}

/// Neighbor address to (state, connections established).
pub fn sessions(lab: &Lab, router: &str) -> BTreeMap<String, (String, u64)> {
    neighbors(lab, router)
        .into_iter()
        .map(|(a, n)| {
            (
                a,
                (
                    n["bgpState"].as_str().unwrap_or_default().to_owned(),
                    n["connectionsEstablished"].as_u64().unwrap_or(0),
                ),
            )
        })
        .collect()
}

/// Waits until every neighbor of `router` is Established; returns their connection counts.
pub fn all_established(lab: &Lab, router: &str, count: usize) -> BTreeMap<String, u64> {
    wait(
        &format!("{count} Established sessions on {router}"),
        TIMEOUT,
        |last| {
            let s = sessions(lab, router);
            *last = format!("{s:?}");
            (s.len() == count && s.values().all(|(st, _)| st == "Established"))
                .then(|| s.into_iter().map(|(a, (_, c))| (a, c)).collect())
        },
    )
}

/// The gateways of a kernel route of `node` (sorted), if the route exists.
pub fn kernel_gateways(lab: &Lab, node: &str, dst: &str) -> Option<Vec<IpAddr>> {
    lab.kernel_routes(node, false, Some("bgp"))
        .ok()?
        .into_iter()
        .find(|r| r.dst == dst)
        .map(|r| r.gateways)
}

/// Addresses as sorted `IpAddr`s.
pub fn ips(list: &[&str]) -> Vec<IpAddr> {
    let mut v: Vec<IpAddr> = list.iter().map(|a| a.parse().unwrap()).collect();
    v.sort();
    v
}

/// Waits until the tor's kernel routes `dst` via exactly `gateways` (none: no route).
pub fn wait_kernel(lab: &Lab, dst: &str, gateways: &[&str]) -> Duration {
    let want = ips(gateways);
    let start = Instant::now();
    wait(
        &format!("{dst} via {gateways:?} in the tor's kernel"),
        TIMEOUT,
        |last| {
            let got = kernel_gateways(lab, "tor", dst);
            *last = format!("{got:?}");
            match (&got, want.is_empty()) {
                (None, true) => Some(()),
                (Some(g), false) if *g == want => Some(()),
                _ => None,
            }
        },
    );
    start.elapsed()
}

/// The paths FRR has for a prefix (`show ip bgp PREFIX json`).
pub fn bgp_paths(lab: &Lab, router: &str, prefix: &str) -> Vec<Value> {
    lab.vtysh_json(router, &format!("show ip bgp {prefix} json"))
        .ok()
        .and_then(|v| v.get("paths").and_then(|p| p.as_array()).cloned())
        .unwrap_or_default()
}

/// The peer (node address) of each path.
pub fn path_peers(paths: &[Value]) -> Vec<String> {
    let mut v: Vec<String> = paths
        .iter()
        .filter_map(|p| p["peer"]["peerId"].as_str().map(str::to_owned))
        .collect();
    v.sort();
    v
}

/// The communities of a path as FRR prints them (`65001:42 no-export`), or "".
pub fn communities(path: &Value) -> String {
    path["community"]["string"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// `lbspeaker -o json ARGS` run in a node (against that node's daemon).
pub fn lbspeaker_json(lab: &Lab, node: &str, args: &[&str]) -> Value {
    let mut all = vec!["-o", "json"];
    all.extend_from_slice(args);
    let out = lab.exec_ok(node, "lbspeaker", &all).unwrap();
    serde_json::from_str(&out).unwrap()
}

/// Replaces (or creates) a manifest of the lab's shared directory the way an editor or
/// `kubectl apply` would: the whole new file at once (written aside, renamed over).
pub fn write_manifest(lab: &Lab, name: &str, text: &str) {
    let path = lab.manifest_dir().join(name);
    let file = path.file_name().unwrap().to_string_lossy().into_owned();
    let tmp = path.with_file_name(format!(".{file}.tmp"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
}

/// A manifest of the lab's shared directory.
pub fn read_manifest(lab: &Lab, name: &str) -> String {
    std::fs::read_to_string(lab.manifest_dir().join(name)).unwrap()
}

/// A node's `/metrics`, fetched from inside its namespace.
pub fn metrics(lab: &Lab, node: &str) -> String {
    let url = format!(
        "http://127.0.0.1:{}/metrics",
        frr_lab::daemons::LBSPEAKER_METRICS_PORT
    );
    lab.exec_ok(node, "curl", &["-sf", &url]).unwrap()
}

/// The lbspeaker process of each node.
pub fn lbspeaker_pids(lab: &Lab) -> BTreeMap<String, u32> {
    lab.state()
        .processes
        .iter()
        .filter(|p| p.name == "lbspeaker")
        .map(|p| (p.node.clone(), p.pid))
        .collect()
}

/// The addresses in a Service's status file (`status/services/NS/NAME.yaml`).
pub fn service_ips(lab: &Lab, namespace: &str, name: &str) -> Vec<String> {
    let path = lab
        .manifest_dir()
        .join(format!("status/services/{namespace}/{name}.yaml"));
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    let v: Value = serde_saphyr::from_str(&text).unwrap_or(Value::Null);
    v["status"]["loadBalancer"]["ingress"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["ip"].as_str().map(str::to_owned))
        .collect()
}

/// The address LB-IPAM gives webpod.
pub const SERVICE: &str = "172.16.1.1";
/// Every node's address toward the tor (the service's ECMP next hops).
pub const ALL_NODES: [&str; 4] = [
    "192.168.10.100",
    "192.168.10.101",
    "192.168.10.102",
    "192.168.20.100",
];

/// The built-in seed topology.
pub fn seed() -> Topology {
    Topology::load("seed").unwrap()
}

/// Waits for the seed's steady state: four sessions, each PodCIDR via its node, the service
/// via every node.
pub fn converged(lab: &Lab) -> BTreeMap<String, u64> {
    let counts = all_established(lab, "tor", 4);
    for (cidr, (_, via)) in POD_CIDRS.iter().zip(NODES) {
        wait_kernel(lab, cidr, &[via]);
    }
    wait_kernel(lab, SERVICE, &ALL_NODES);
    counts
}

/// The BGP routes of a namespace's kernel as (destination, sorted gateways), sorted; callable
/// from another thread (it needs only the namespace's name).
pub fn sample_routes(ns: &str) -> Vec<(String, Vec<String>)> {
    let out = std::process::Command::new("ip")
        .args(["-j", "-n", ns, "route", "show", "proto", "bgp"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    let mut routes: Vec<(String, Vec<String>)> = v
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            let mut gws: Vec<String> = match r["nexthops"].as_array() {
                Some(h) => h
                    .iter()
                    .filter_map(|n| n["gateway"].as_str().map(str::to_owned))
                    .collect(),
                None => r["gateway"]
                    .as_str()
                    .map(str::to_owned)
                    .into_iter()
                    .collect(),
            };
            gws.sort();
            (r["dst"].as_str().unwrap_or_default().to_owned(), gws)
        })
        .collect();
    routes.sort();
    routes
}

/// Builds a topology without starting its daemons (to prepare something first), with this
/// build's `lbspeaker`; [`start_all`] starts them in the lab's order.
pub fn up_stopped(tag: &str, topology: Topology) -> Lab {
    let opts = LabOptions {
        lbspeaker: Some(PathBuf::from(env!("CARGO_BIN_EXE_lbspeaker"))),
        start_daemons: false,
        ..LabOptions::with_prefix(unique_prefix(tag))
    };
    Lab::up(topology, opts).unwrap()
}

/// Starts every daemon of a lab built by [`up_stopped`]: routers first, lbspeaker last.
pub fn start_all(lab: &mut Lab) {
    let order: Vec<String> = lab
        .topology()
        .start_order()
        .into_iter()
        .map(str::to_owned)
        .collect();
    for node in order {
        frr_lab::daemons::restart(lab, &node).unwrap();
    }
}
