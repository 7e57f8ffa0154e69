//! What the fault scenarios need beyond the seed helpers: a watch on the tor's kernel
//! (`ip monitor route`), packet loss in a namespace, the tor's bgpd and the operator.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use frr_lab::{Lab, daemons};
use nix::sys::signal::Signal;

/// Every BGP route change of a namespace's kernel while it lives: `ip -o monitor route`,
/// run as a child of the test (killed by its own handle when stopped or dropped).
pub struct RouteMonitor {
    child: Child,
    lines: Arc<Mutex<Vec<(Duration, String)>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl RouteMonitor {
    /// Starts watching `node`'s kernel; returns once `ip monitor` runs.
    pub fn start(lab: &Lab, node: &str) -> RouteMonitor {
        let mut child = Command::new("ip")
            .args(["-o", "-n", &lab.namespace(node), "monitor", "route"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let t0 = Instant::now();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if line.contains("proto bgp") {
                    sink.lock().unwrap().push((t0.elapsed(), line));
                }
            }
        });
        // `ip monitor` subscribes at once; give it a moment to be in place.
        std::thread::sleep(Duration::from_millis(200));
        RouteMonitor {
            child,
            lines,
            reader: Some(reader),
        }
    }

    /// What it saw so far: (time since start, the route as `ip -o` prints it, `Deleted`
    /// first for a removal).
    pub fn events(&self) -> Vec<(Duration, String)> {
        self.lines.lock().unwrap().clone()
    }

    /// The removals it saw.
    pub fn deletions(&self) -> Vec<String> {
        self.events()
            .into_iter()
            .filter(|(_, l)| l.starts_with("Deleted"))
            .map(|(_, l)| l)
            .collect()
    }

    /// Stops watching; returns every event.
    pub fn stop(mut self) -> Vec<(Duration, String)> {
        self.end();
        self.events()
    }

    fn end(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

impl Drop for RouteMonitor {
    fn drop(&mut self) {
        self.end();
    }
}

/// Drops `percent` of the packets a node's namespace sends and receives on every interface
/// but `lo` (nftables `numgen random`: this kernel has no netem). The rules live in the
/// lab's namespace and go with it; [`clear_loss`] removes them earlier.
pub fn add_loss(lab: &Lab, node: &str, percent: u8) {
    let rules = format!(
        "table inet lbloss {{\n chain input {{ type filter hook input priority 0; policy accept; iifname \"lo\" accept; numgen random mod 100 < {percent} counter drop; }}\n chain output {{ type filter hook output priority 0; policy accept; oifname \"lo\" accept; numgen random mod 100 < {percent} counter drop; }}\n}}\n"
    );
    let mut child = Command::new("ip")
        .args(["netns", "exec", &lab.namespace(node), "nft", "-f", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), rules.as_bytes()).unwrap();
    assert!(
        child.wait().unwrap().success(),
        "nft refused the loss rules"
    );
}

/// Removes the loss rules; returns how many packets they dropped (input, output).
pub fn clear_loss(lab: &Lab, node: &str) -> (u64, u64) {
    let listing = Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.namespace(node),
            "nft",
            "-j",
            "list",
            "table",
            "inet",
            "lbloss",
        ])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&listing.stdout).unwrap_or_default();
    let mut counts = (0, 0);
    for item in v["nftables"].as_array().into_iter().flatten() {
        let rule = &item["rule"];
        let Some(exprs) = rule["expr"].as_array() else {
            continue;
        };
        for e in exprs {
            if let Some(p) = e["counter"]["packets"].as_u64() {
                match rule["chain"].as_str() {
                    Some("input") => counts.0 += p,
                    Some("output") => counts.1 += p,
                    _ => {}
                }
            }
        }
    }
    let st = Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.namespace(node),
            "nft",
            "delete",
            "table",
            "inet",
            "lbloss",
        ])
        .status()
        .unwrap();
    assert!(st.success());
    counts
}

/// The pid of a daemon the lab started in a node (`bgpd`, `zebra`, `lbspeaker`).
pub fn pid_of(lab: &Lab, node: &str, name: &str) -> u32 {
    lab.state()
        .processes
        .iter()
        .rev()
        .find(|p| p.node == node && p.name == name)
        .map(|p| p.pid)
        .unwrap()
}

/// SIGKILLs a node's bgpd (FRR: the routes it gave zebra are its own business) and waits
/// until it is gone.
pub fn kill_bgpd(lab: &mut Lab, node: &str) {
    let pid = pid_of(lab, node, "bgpd");
    lab.signal(pid, Signal::SIGKILL).unwrap();
    super::wait(&format!("{node}'s bgpd to die"), super::TIMEOUT, |_| {
        (!lab.is_running(pid)).then_some(())
    });
}

/// Starts a node's bgpd again with its configuration (zebra kept running).
pub fn start_bgpd(lab: &mut Lab, node: &str) {
    let dir = lab.node_dir(node).unwrap();
    daemons::start_frr_daemon(lab, node, &dir, "bgpd").unwrap();
}

/// The node whose daemon holds the operator lock (LB-IPAM runs there).
pub fn leader(lab: &Lab) -> String {
    super::wait("an operator", super::TIMEOUT, |last| {
        let text =
            std::fs::read_to_string(lab.manifest_dir().join("status/.operator.lock")).ok()?;
        *last = text.clone();
        text.split_whitespace().next().map(str::to_owned)
    })
}

/// Cuts `iface` of a node's namespace at the packet level (nftables drops everything in and
/// out), its carrier staying up: a link broken beyond the port, as a failed optic or a
/// switch in between would. [`restore_link`] mends it.
pub fn cut_link(lab: &Lab, node: &str, iface: &str) {
    let rules = format!(
        "table inet lbcut {{\n chain input {{ type filter hook input priority -10; policy accept; iifname \"{iface}\" drop; }}\n chain output {{ type filter hook output priority -10; policy accept; oifname \"{iface}\" drop; }}\n}}\n"
    );
    let mut child = Command::new("ip")
        .args(["netns", "exec", &lab.namespace(node), "nft", "-f", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), rules.as_bytes()).unwrap();
    assert!(child.wait().unwrap().success(), "nft refused the cut");
}

/// Mends what [`cut_link`] cut.
pub fn restore_link(lab: &Lab, node: &str) {
    let st = Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.namespace(node),
            "nft",
            "delete",
            "table",
            "inet",
            "lbcut",
        ])
        .status()
        .unwrap();
    assert!(st.success());
}
