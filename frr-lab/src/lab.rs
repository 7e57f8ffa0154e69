//! A running lab: its namespaces, links, daemons and working directory, and the guarantee that
//! all of it goes away.
//!
//! [`Lab::up`] builds a [`Topology`] under a prefix: node `tor` of a lab with prefix `t1` lives
//! in namespace `t1-tor`, with its files in `ROOT/t1/tor/`. The returned [`Lab`] is a guard:
//! dropping it (also while a test panics) stops every process the lab started and removes
//! every namespace it created, and with them every link. [`Lab::persist`] hands the lab over
//! to a later `frr-lab down` instead, through a state file.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::os::linux::fs::MetadataExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::cmd;
use crate::daemons;
use crate::topology::{NodeKind, Topology};
use crate::{LabError, topology};

/// Where labs keep their files unless told otherwise.
pub const DEFAULT_ROOT: &str = "/run/frr-lab";

/// How to build a lab.
#[derive(Debug, Clone)]
pub struct LabOptions {
    /// Namespace prefix; the topology's name when `None`.
    pub prefix: Option<String>,
    /// Directory under which the lab's directory is made.
    pub root: PathBuf,
    /// Start the nodes' daemons (otherwise only namespaces, links, addresses and routes).
    pub start_daemons: bool,
    /// The `lbspeaker` binary for `lbspeaker` nodes; `None`: `$LBSPEAKER_BIN`, else the
    /// `lbspeaker` beside the running program (cargo puts both in `target/debug`), else `PATH`.
    pub lbspeaker: Option<PathBuf>,
}

impl Default for LabOptions {
    fn default() -> Self {
        LabOptions {
            prefix: None,
            root: PathBuf::from(DEFAULT_ROOT),
            start_daemons: true,
            lbspeaker: None,
        }
    }
}

/// Where the `lbspeaker` binary is: `explicit`, `$LBSPEAKER_BIN`, beside the running program
/// (or one directory up, for test binaries in `target/debug/deps`), or on `PATH`.
pub fn find_lbspeaker(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return p.is_file().then(|| p.to_owned());
    }
    if let Some(p) = std::env::var_os("LBSPEAKER_BIN").map(PathBuf::from) {
        return p.is_file().then_some(p);
    }
    if let Ok(exe) = std::env::current_exe() {
        for dir in exe.ancestors().skip(1).take(2) {
            let p = dir.join("lbspeaker");
            if p.is_file() {
                return Some(p);
            }
        }
    }
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("lbspeaker"))
            .find(|p| p.is_file())
    })
}

impl LabOptions {
    /// Options with a given prefix.
    pub fn with_prefix(prefix: impl Into<String>) -> Self {
        LabOptions {
            prefix: Some(prefix.into()),
            ..LabOptions::default()
        }
    }
}

/// A process the lab started, by node.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ProcessRecord {
    /// The node it runs in.
    pub node: String,
    /// What it is (`zebra`, `bgpd`, `gobgpd`, `bird`, or a caller's name).
    pub name: String,
    /// Its process id.
    pub pid: u32,
}

/// What a lab is, written to `ROOT/PREFIX/state.json` so that other commands can find it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LabState {
    /// The namespace prefix.
    pub prefix: String,
    /// The topology it was built from.
    pub topology: Topology,
    /// The lab's directory.
    pub dir: PathBuf,
    /// Namespaces the lab created, in creation order.
    pub namespaces: Vec<String>,
    /// Processes the lab started, in start order.
    pub processes: Vec<ProcessRecord>,
    /// The `lbspeaker` binary the lab's lbspeaker nodes run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lbspeaker: Option<PathBuf>,
}

/// A lab that is up. Dropping it tears it down unless it was [persisted](Lab::persist).
#[derive(Debug)]
pub struct Lab {
    state: LabState,
    /// Processes we spawned ourselves and must reap, by pid.
    children: HashMap<u32, Child>,
    started: HashMap<u32, Instant>,
    armed: bool,
}

/// One route of a kernel routing table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelRoute {
    /// Destination prefix as the kernel prints it (`172.20.0.0/24`, `default`).
    pub dst: String,
    /// Gateways, one per next hop (several for ECMP).
    pub gateways: Vec<IpAddr>,
    /// The routing protocol that installed it (`bgp`, `kernel`, `static`, a number, ...).
    pub protocol: String,
}

/// A unique, short prefix for a lab made by a test: `TAG` + pid + a counter, so that tests in
/// one process and in parallel processes never collide.
pub fn unique_prefix(tag: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{tag}{:x}x{n}", std::process::id())
}

impl Lab {
    /// Builds the topology: namespaces, bridges, links, sysctls, addresses, routes, then the
    /// daemons (routers before speakers). On any error everything made so far is removed.
    pub fn up(topology: Topology, opts: LabOptions) -> Result<Lab, LabError> {
        topology.validate()?;
        let prefix = opts.prefix.clone().unwrap_or_else(|| topology.name.clone());
        if !topology::valid_name(&prefix, 24) {
            return Err(LabError::Prerequisite(format!(
                "prefix {prefix:?} must be 1-24 characters of a-z, 0-9 and '-'"
            )));
        }
        check_prerequisites(&topology, opts.start_daemons)?;
        let lbspeaker = if topology.runs_lbspeaker() {
            let found = find_lbspeaker(opts.lbspeaker.as_deref());
            if found.is_none() && opts.start_daemons {
                return Err(LabError::Prerequisite(
                    "the lbspeaker binary is needed by lbspeaker nodes and was not found (cargo build -p agent-glue, or set LBSPEAKER_BIN)".into(),
                ));
            }
            found
        } else {
            None
        };
        let dir = opts.root.join(&prefix);
        if dir.join("state.json").exists() {
            return Err(LabError::Exists {
                prefix,
                what: format!("{} exists", dir.join("state.json").display()),
            });
        }
        for node in topology.nodes.keys() {
            let ns = namespace_name(&prefix, node);
            if namespace_exists(&ns) {
                return Err(LabError::Exists {
                    prefix,
                    what: format!("namespace {ns} exists"),
                });
            }
        }
        // From here on, the guard owns whatever is created.
        let mut lab = Lab {
            state: LabState {
                prefix,
                topology,
                dir,
                namespaces: Vec::new(),
                processes: Vec::new(),
                lbspeaker,
            },
            children: HashMap::new(),
            started: HashMap::new(),
            armed: true,
        };
        std::fs::create_dir_all(&lab.state.dir).map_err(LabError::io(format!(
            "cannot create {}",
            lab.state.dir.display()
        )))?;
        lab.write_manifests()?;
        lab.build_network()?;
        if opts.start_daemons {
            lab.start_processes()?;
            let order: Vec<String> = lab
                .state
                .topology
                .start_order()
                .into_iter()
                .map(str::to_owned)
                .collect();
            for node in order {
                daemons::start(&mut lab, &node)?;
            }
        }
        Ok(lab)
    }

    /// The lab's shared manifest directory (`LAB/manifests/`), which every lbspeaker node runs
    /// on; tests edit files here to change the cluster's desired state.
    pub fn manifest_dir(&self) -> PathBuf {
        self.state.dir.join("manifests")
    }

    /// The local API socket of an lbspeaker node (`LAB/NODE/api.sock`).
    pub fn api_socket(&self, node: &str) -> PathBuf {
        self.state.dir.join(node).join("api.sock")
    }

    /// The `lbspeaker` binary of the lab, if it runs lbspeaker.
    pub fn lbspeaker_bin(&self) -> Option<&Path> {
        self.state.lbspeaker.as_deref()
    }

    fn write_manifests(&self) -> Result<(), LabError> {
        if !self.state.topology.runs_lbspeaker() && self.state.topology.manifests.is_empty() {
            return Ok(());
        }
        let dir = self.manifest_dir();
        for (name, text) in self.state.topology.manifest_files() {
            let path = dir.join(name);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(LabError::io(format!("cannot create {}", parent.display())))?;
            }
            std::fs::write(&path, text)
                .map_err(LabError::io(format!("cannot write {}", path.display())))?;
        }
        std::fs::create_dir_all(&dir)
            .map_err(LabError::io(format!("cannot create {}", dir.display())))?;
        Ok(())
    }

    fn build_network(&mut self) -> Result<(), LabError> {
        let topology = self.state.topology.clone();
        for (name, node) in &topology.nodes {
            let ns = self.namespace(name);
            cmd::run("ip", &["netns", "add", &ns])?;
            self.state.namespaces.push(ns.clone());
            cmd::ip_in(&ns, &["link", "set", "dev", "lo", "up"])?;
            // Lab addresses are unique by construction: skip IPv6 duplicate address
            // detection so they are usable at once. Set before links exist so they inherit it.
            let mut sysctls: BTreeMap<&str, &str> = BTreeMap::from([
                ("net.ipv6.conf.all.accept_dad", "0"),
                ("net.ipv6.conf.default.accept_dad", "0"),
            ]);
            if node.kind == NodeKind::Bridge {
                sysctls.insert("net.ipv6.conf.default.disable_ipv6", "1");
            }
            for (k, v) in &node.sysctls {
                sysctls.insert(k, v);
            }
            let assignments: Vec<String> =
                sysctls.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let mut args = vec!["netns", "exec", &ns, "sysctl", "-q", "-w"];
            args.extend(assignments.iter().map(String::as_str));
            cmd::run("ip", &args)?;
            if node.kind == NodeKind::Bridge {
                cmd::ip_in(&ns, &["link", "add", "br0", "type", "bridge"])?;
                cmd::ip_in(&ns, &["link", "set", "dev", "br0", "up"])?;
            }
        }
        for link in &topology.links {
            let [a, b] = &link.endpoints;
            let (ns_a, ns_b) = (self.namespace(&a.node), self.namespace(&b.node));
            cmd::ip_in(
                &ns_a,
                &[
                    "link",
                    "add",
                    &a.interface,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    &b.interface,
                    "netns",
                    &ns_b,
                ],
            )?;
            for (end, ns) in [(a, &ns_a), (b, &ns_b)] {
                if topology.nodes.get(&end.node).map(|n| n.kind) == Some(NodeKind::Bridge) {
                    cmd::ip_in(ns, &["link", "set", "dev", &end.interface, "master", "br0"])?;
                }
                cmd::ip_in(ns, &["link", "set", "dev", &end.interface, "up"])?;
            }
        }
        for (name, node) in &topology.nodes {
            let ns = self.namespace(name);
            for (ifname, addrs) in &node.interfaces {
                for a in addrs {
                    let a = a.to_string();
                    let mut args = vec!["addr", "add", a.as_str(), "dev", ifname.as_str()];
                    if a.contains(':') {
                        args.push("nodad");
                    }
                    cmd::ip_in(&ns, &args)?;
                }
            }
            for r in &node.routes {
                let (dst, via) = (r.prefix.to_string(), r.via.to_string());
                cmd::ip_in(&ns, &["route", "add", &dst, "via", &via])?;
            }
        }
        Ok(())
    }

    /// Finds a lab brought up earlier and persisted. The returned value does not tear the lab
    /// down when dropped; call [`Lab::down`] for that.
    pub fn attach(root: &Path, prefix: &str) -> Result<Lab, LabError> {
        let file = root.join(prefix).join("state.json");
        let text = std::fs::read_to_string(&file).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                LabError::NotFound(prefix.to_owned())
            } else {
                LabError::io(format!("cannot read {}", file.display()))(e)
            }
        })?;
        let state: LabState = serde_json::from_str(&text).map_err(|e| LabError::Output {
            what: file.display().to_string(),
            message: e.to_string(),
        })?;
        Ok(Lab {
            state,
            children: HashMap::new(),
            started: HashMap::new(),
            armed: false,
        })
    }

    /// The prefixes of every persisted lab under `root`.
    pub fn list(root: &Path) -> Vec<String> {
        let mut out: Vec<String> = std::fs::read_dir(root)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().join("state.json").is_file())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        out.sort();
        out
    }

    /// Writes the state file and lets the lab outlive this value, for `frr-lab up`.
    pub fn persist(mut self) -> Result<PathBuf, LabError> {
        let file = self.write_state()?;
        self.armed = false;
        // The children keep running; dropping `Child` neither kills nor waits.
        Ok(file)
    }

    fn write_state(&self) -> Result<PathBuf, LabError> {
        let file = self.state.dir.join("state.json");
        let text = serde_json::to_string_pretty(&self.state).map_err(|e| LabError::Output {
            what: "lab state".into(),
            message: e.to_string(),
        })?;
        std::fs::write(&file, text)
            .map_err(LabError::io(format!("cannot write {}", file.display())))?;
        Ok(file)
    }

    /// Tears the lab down and reports anything that could not be removed.
    pub fn down(mut self) -> Result<(), LabError> {
        self.armed = false;
        self.teardown()
    }

    /// The lab's state: prefix, topology, namespaces, processes.
    pub fn state(&self) -> &LabState {
        &self.state
    }

    /// The lab's prefix.
    pub fn prefix(&self) -> &str {
        &self.state.prefix
    }

    /// The topology the lab was built from.
    pub fn topology(&self) -> &Topology {
        &self.state.topology
    }

    /// The namespace of a node.
    pub fn namespace(&self, node: &str) -> String {
        namespace_name(&self.state.prefix, node)
    }

    /// A node's working directory (configuration, logs, sockets), created on first use.
    pub fn node_dir(&self, node: &str) -> Result<PathBuf, LabError> {
        let dir = self.state.dir.join(node);
        std::fs::create_dir_all(&dir)
            .map_err(LabError::io(format!("cannot create {}", dir.display())))?;
        Ok(dir)
    }

    fn require_node(&self, node: &str) -> Result<(), LabError> {
        if self.state.topology.nodes.contains_key(node) {
            Ok(())
        } else {
            Err(LabError::Prerequisite(format!(
                "lab {} has no node {node:?} (nodes: {})",
                self.state.prefix,
                self.state
                    .topology
                    .nodes
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            )))
        }
    }

    /// A command that runs inside a node's namespace (not yet started). On an lbspeaker node
    /// `LBSPEAKER_API` points at the node's own API socket, and the program `lbspeaker` is
    /// the lab's binary, so `lbspeaker bgp peers` asks that node's daemon.
    pub fn command(&self, node: &str, program: &str) -> Result<Command, LabError> {
        self.require_node(node)?;
        let mut c = Command::new("ip");
        let program = match (program, self.lbspeaker_bin()) {
            ("lbspeaker", Some(bin)) => bin.to_string_lossy().into_owned(),
            _ => program.to_owned(),
        };
        c.args(["netns", "exec", &self.namespace(node), &program]);
        let kind = self.state.topology.nodes.get(node).map(|n| n.kind);
        if kind == Some(NodeKind::Lbspeaker) {
            c.env("LBSPEAKER_API", self.api_socket(node));
        }
        Ok(c)
    }

    /// Runs a command in a node and returns its output, whatever its status.
    pub fn exec(&self, node: &str, program: &str, args: &[&str]) -> Result<Output, LabError> {
        self.command(node, program)?
            .args(args)
            .output()
            .map_err(LabError::io(format!("cannot run {program} in {node}")))
    }

    /// Runs a command in a node and returns its standard output, or an error if it fails.
    pub fn exec_ok(&self, node: &str, program: &str, args: &[&str]) -> Result<String, LabError> {
        let out = self.exec(node, program, args)?;
        let ns = self.namespace(node);
        let mut full = vec!["netns", "exec", &ns, program];
        full.extend_from_slice(args);
        cmd::checked("ip", &full, out)
    }

    /// Starts every node's `processes` (topology order), each in the node's directory with its
    /// files, and waits until each listens on its `ready` ports.
    fn start_processes(&mut self) -> Result<(), LabError> {
        let topology = self.state.topology.clone();
        for (node, n) in &topology.nodes {
            for p in &n.processes {
                let dir = self.node_dir(node)?;
                for f in &p.files {
                    let text = topology.files.get(f).ok_or_else(|| {
                        LabError::Prerequisite(format!("process {} of {node}: no file {f}", p.name))
                    })?;
                    let name = Path::new(f).file_name().unwrap_or(f.as_ref());
                    let path = dir.join(name);
                    std::fs::write(&path, text)
                        .map_err(LabError::io(format!("cannot write {}", path.display())))?;
                }
                let Some((program, args)) = p.command.split_first() else {
                    continue;
                };
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                self.spawn_in(node, &p.name, program, &args, Some(&dir))?;
            }
        }
        for (node, n) in &topology.nodes {
            for p in &n.processes {
                for r in &p.ready {
                    let Some((tcp, port)) = topology::parse_ready(r) else {
                        continue;
                    };
                    let filter = format!("sport = :{port}");
                    let flags = if tcp { "-Hltn" } else { "-Hlun" };
                    Lab::wait_for(
                        &format!("process {} of {node} to listen on {r}", p.name),
                        Duration::from_secs(15),
                        |_| {
                            let out = self.exec(node, "ss", &[flags, &filter])?;
                            Ok((!String::from_utf8_lossy(&out.stdout).trim().is_empty())
                                .then_some(()))
                        },
                    )?;
                }
            }
        }
        Ok(())
    }

    /// Starts a long-running process in a node, in its own process group, with its output in
    /// `NODE_DIR/NAME.log`. The lab stops it on teardown.
    pub fn spawn(
        &mut self,
        node: &str,
        name: &str,
        program: &str,
        args: &[&str],
    ) -> Result<u32, LabError> {
        self.spawn_in(node, name, program, args, None)
    }

    /// [`Lab::spawn`] with a working directory.
    pub fn spawn_in(
        &mut self,
        node: &str,
        name: &str,
        program: &str,
        args: &[&str],
        cwd: Option<&Path>,
    ) -> Result<u32, LabError> {
        let log_path = self.node_dir(node)?.join(format!("{name}.log"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(LabError::io(format!("cannot open {}", log_path.display())))?;
        let log2 = log
            .try_clone()
            .map_err(LabError::io("cannot duplicate log handle"))?;
        let mut command = self.command(node, program)?;
        if let Some(dir) = cwd {
            command.current_dir(dir);
        }
        let child = command
            .args(args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .process_group(0)
            .spawn()
            .map_err(LabError::io(format!("cannot start {program} in {node}")))?;
        let pid = child.id();
        self.children.insert(pid, child);
        self.register(node, name, pid);
        Ok(pid)
    }

    /// Records a process (for example a daemon that forked itself) for teardown.
    pub fn register(&mut self, node: &str, name: &str, pid: u32) {
        self.started.insert(pid, Instant::now());
        self.state.processes.push(ProcessRecord {
            node: node.to_owned(),
            name: name.to_owned(),
            pid,
        });
    }

    /// The processes running (or recorded) for a node.
    pub fn processes(&self, node: &str) -> Vec<&ProcessRecord> {
        self.state
            .processes
            .iter()
            .filter(|p| p.node == node)
            .collect()
    }

    /// When the lab started a process (for measuring convergence from a daemon's start).
    pub fn started_at(&self, pid: u32) -> Option<Instant> {
        self.started.get(&pid).copied()
    }

    /// Whether a recorded process is still alive (not a zombie).
    pub fn is_running(&mut self, pid: u32) -> bool {
        if let Some(child) = self.children.get_mut(&pid)
            && let Ok(Some(_)) = child.try_wait()
        {
            self.children.remove(&pid);
            return false;
        }
        pid_alive(pid)
    }

    /// Sends a signal to a process the lab started, and forgets it when the signal ends it.
    pub fn signal(&mut self, pid: u32, signal: Signal) -> Result<(), LabError> {
        let Some(rec) = self.state.processes.iter().find(|p| p.pid == pid).cloned() else {
            return Err(LabError::Prerequisite(format!(
                "process {pid} was not started by this lab"
            )));
        };
        if !self.owns(&rec) {
            return Ok(());
        }
        kill(Pid::from_raw(pid as i32), signal)
            .map_err(|e| LabError::io(format!("cannot signal {pid}"))(e.into()))
    }

    /// Stops a process the lab started (SIGTERM, then SIGKILL after `grace`) and waits for it.
    pub fn stop_process(&mut self, pid: u32, grace: Duration) -> Result<(), LabError> {
        self.signal(pid, Signal::SIGTERM)?;
        let deadline = Instant::now() + grace;
        while self.is_running(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if self.is_running(pid) {
            self.signal(pid, Signal::SIGKILL)?;
            let deadline = Instant::now() + Duration::from_secs(2);
            while self.is_running(pid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(())
    }

    /// Whether a recorded process still runs inside one of this lab's namespaces: the check
    /// that keeps teardown from ever signalling a process the lab did not start.
    fn owns(&self, rec: &ProcessRecord) -> bool {
        let ns = self.namespace(&rec.node);
        pid_alive(rec.pid) && in_namespace(rec.pid, &ns)
    }

    /// Polls `probe` every 100 ms until it returns `Ok(Some(_))` or `timeout` passes. The probe
    /// returns `Ok(None)` for "not yet" and may describe what it saw through `last`.
    pub fn wait_for<T>(
        what: &str,
        timeout: Duration,
        mut probe: impl FnMut(&mut Option<String>) -> Result<Option<T>, LabError>,
    ) -> Result<T, LabError> {
        let start = Instant::now();
        let mut last = None;
        loop {
            match probe(&mut last) {
                Ok(Some(v)) => return Ok(v),
                Ok(None) => {}
                Err(e) => last = Some(e.to_string()),
            }
            if start.elapsed() >= timeout {
                return Err(LabError::Timeout {
                    what: what.to_owned(),
                    after: start.elapsed(),
                    last,
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `vtysh -c CMD` against an FRR node of the lab.
    pub fn vtysh(&self, node: &str, command: &str) -> Result<String, LabError> {
        self.require_node(node)?;
        let socket_dir = self.state.dir.join(node);
        let dir = socket_dir.to_string_lossy();
        cmd::run("vtysh", &["--vty_socket", dir.as_ref(), "-c", command])
    }

    /// `vtysh -c CMD` for a command ending in `json`, parsed.
    pub fn vtysh_json(&self, node: &str, command: &str) -> Result<serde_json::Value, LabError> {
        let text = self.vtysh(node, command)?;
        serde_json::from_str(&text).map_err(|e| LabError::Output {
            what: format!("vtysh -c '{command}'"),
            message: format!("{e}: {}", text.chars().take(200).collect::<String>()),
        })
    }

    /// The BGP state of every neighbor of an FRR node (`Established`, `Active`, ...).
    pub fn frr_neighbor_states(&self, node: &str) -> Result<BTreeMap<String, String>, LabError> {
        let v = self.vtysh_json(node, "show bgp neighbors json")?;
        let map = v.as_object().ok_or_else(|| LabError::Output {
            what: "show bgp neighbors json".into(),
            message: "not an object".into(),
        })?;
        Ok(map
            .iter()
            .filter_map(|(addr, n)| {
                let state = n.get("bgpState")?.as_str()?;
                Some((addr.clone(), state.to_owned()))
            })
            .collect())
    }

    /// A node's kernel routes of one family, optionally only those of one protocol
    /// (`ip -j route show [proto P]`).
    pub fn kernel_routes(
        &self,
        node: &str,
        ipv6: bool,
        protocol: Option<&str>,
    ) -> Result<Vec<KernelRoute>, LabError> {
        self.require_node(node)?;
        let ns = self.namespace(node);
        let mut args = vec![
            "-j",
            if ipv6 { "-6" } else { "-4" },
            "-n",
            &ns,
            "route",
            "show",
        ];
        if let Some(p) = protocol {
            args.extend_from_slice(&["proto", p]);
        }
        let text = cmd::run("ip", &args)?;
        parse_ip_routes(&text)
    }

    fn teardown(&mut self) -> Result<(), LabError> {
        let mut problems = Vec::new();
        // Stop daemons newest first, politely, then firmly.
        let records: Vec<ProcessRecord> = self.state.processes.iter().rev().cloned().collect();
        let mine: Vec<&ProcessRecord> = records.iter().filter(|r| self.owns(r)).collect();
        for r in &mine {
            let _ = kill(Pid::from_raw(r.pid as i32), Signal::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while mine.iter().any(|r| self.is_running(r.pid)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        for r in &mine {
            if self.is_running(r.pid) {
                let _ = kill(Pid::from_raw(r.pid as i32), Signal::SIGKILL);
            }
        }
        // Anything else still inside our namespaces was started there through the lab.
        for ns in &self.state.namespaces {
            if let Ok(pids) = cmd::run("ip", &["netns", "pids", ns]) {
                for pid in pids
                    .split_whitespace()
                    .filter_map(|p| p.parse::<i32>().ok())
                {
                    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                }
            }
        }
        let deadline = Instant::now() + Duration::from_secs(3);
        while records.iter().any(|r| self.is_running(r.pid)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        for r in &records {
            if self.is_running(r.pid) {
                problems.push(format!("{} ({}) pid {} still runs", r.name, r.node, r.pid));
            }
            if daemons::is_frr_daemon(&r.name) {
                // FRR keeps per-process state here and removes it only on a clean exit.
                let _ = std::fs::remove_dir_all(format!("/var/tmp/frr/{}.{}", r.name, r.pid));
            }
        }
        for (_, mut child) in self.children.drain() {
            let _ = child.try_wait();
        }
        for ns in self.state.namespaces.iter().rev() {
            if namespace_exists(ns)
                && let Err(e) = cmd::run("ip", &["netns", "del", ns])
            {
                problems.push(e.to_string());
            }
        }
        // Filesystems mounted for the lab (a node's bpffs) go before its directory.
        for m in mounts_under(&self.state.dir) {
            if let Err(e) = cmd::run("umount", &["-l", &m.to_string_lossy()]) {
                problems.push(e.to_string());
            }
        }
        if self.state.dir.exists()
            && let Err(e) = std::fs::remove_dir_all(&self.state.dir)
        {
            problems.push(format!("cannot remove {}: {e}", self.state.dir.display()));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(LabError::Teardown {
                prefix: self.state.prefix.clone(),
                problems,
            })
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if self.armed {
            self.armed = false;
            if let Err(e) = self.teardown() {
                eprintln!("frr-lab: {e}");
            }
        }
    }
}

/// Removes the namespaces a topology would have under `prefix` when no state file is left
/// (a lab whose `frr-lab up` was killed half-way), ending the processes inside them.
pub fn down_without_state(
    topology: &Topology,
    prefix: &str,
    root: &Path,
) -> Result<Vec<String>, LabError> {
    let namespaces: Vec<String> = topology
        .nodes
        .keys()
        .map(|n| namespace_name(prefix, n))
        .filter(|ns| namespace_exists(ns))
        .collect();
    let mut lab = Lab {
        state: LabState {
            prefix: prefix.to_owned(),
            topology: topology.clone(),
            dir: root.join(prefix),
            namespaces: namespaces.clone(),
            processes: Vec::new(),
            lbspeaker: None,
        },
        children: HashMap::new(),
        started: HashMap::new(),
        armed: false,
    };
    lab.teardown()?;
    Ok(namespaces)
}

/// Mount points at or below `dir`, deepest first (from `/proc/self/mountinfo`; octal escapes
/// of spaces and such decoded).
pub(crate) fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = text
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| PathBuf::from(unescape_mount(m)))
        .filter(|m| m.starts_with(dir))
        .collect();
    out.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
    out.dedup();
    out
}

fn unescape_mount(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && let Some(oct) = s.get(i + 1..i + 4)
            && let Ok(v) = u8::from_str_radix(oct, 8)
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `PREFIX-NODE`.
pub fn namespace_name(prefix: &str, node: &str) -> String {
    format!("{prefix}-{node}")
}

/// Whether `/run/netns/NAME` exists.
pub fn namespace_exists(ns: &str) -> bool {
    Path::new("/run/netns").join(ns).exists()
}

fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state is the first field after the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Whether a process lives in the named network namespace (same nsfs inode).
fn in_namespace(pid: u32, ns: &str) -> bool {
    let proc_ns = std::fs::metadata(format!("/proc/{pid}/ns/net"));
    let named = std::fs::metadata(Path::new("/run/netns").join(ns));
    match (proc_ns, named) {
        (Ok(a), Ok(b)) => a.st_ino() == b.st_ino() && a.st_dev() == b.st_dev(),
        _ => false,
    }
}

fn check_prerequisites(topology: &Topology, daemons: bool) -> Result<(), LabError> {
    if !nix::unistd::geteuid().is_root() {
        return Err(LabError::Prerequisite(
            "frr-lab needs root (network namespaces); run it with sudo or as root".into(),
        ));
    }
    if !cmd::have("ip") {
        return Err(LabError::Prerequisite(
            "`ip` not found: apt-get install iproute2".into(),
        ));
    }
    if !daemons {
        return Ok(());
    }
    for (kind, programs, package) in [
        (
            NodeKind::Frr,
            &["/usr/lib/frr/zebra", "/usr/lib/frr/bgpd", "vtysh"][..],
            "frr",
        ),
        (NodeKind::Gobgpd, &["gobgpd", "gobgp"][..], "gobgpd"),
        (NodeKind::Bird, &["bird", "birdc"][..], "bird2"),
    ] {
        if topology.nodes.values().any(|n| n.kind == kind)
            && let Some(p) = programs.iter().find(|p| !cmd::have(p))
        {
            return Err(LabError::Prerequisite(format!(
                "{p} not found (needed by {kind} nodes): apt-get install {package}"
            )));
        }
    }
    Ok(())
}

/// Parses `ip -j route` output.
pub(crate) fn parse_ip_routes(json: &str) -> Result<Vec<KernelRoute>, LabError> {
    let err = |message: String| LabError::Output {
        what: "ip -j route".into(),
        message,
    };
    let v: serde_json::Value = serde_json::from_str(json).map_err(|e| err(e.to_string()))?;
    let arr = v.as_array().ok_or_else(|| err("not an array".into()))?;
    let gateway = |o: &serde_json::Value| -> Option<IpAddr> {
        o.get("gateway")
            .or_else(|| o.get("via").and_then(|v| v.get("host")))
            .and_then(|g| g.as_str())
            .and_then(|g| g.parse().ok())
    };
    Ok(arr
        .iter()
        .filter_map(|r| {
            let dst = r.get("dst")?.as_str()?.to_owned();
            let mut gateways: Vec<IpAddr> = match r.get("nexthops").and_then(|n| n.as_array()) {
                Some(hops) => hops.iter().filter_map(gateway).collect(),
                None => gateway(r).into_iter().collect(),
            };
            gateways.sort();
            let protocol = match r.get("protocol") {
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => "kernel".into(),
            };
            Some(KernelRoute {
                dst,
                gateways,
                protocol,
            })
        })
        .collect())
}

/// Runs `f` in a new thread that has entered the network namespace `ns` (a name under
/// `/run/netns`) and returns its result; sockets it creates belong to that namespace and can
/// be used from anywhere afterwards. The calling thread's namespace is untouched.
pub fn in_netns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let fd = std::fs::File::open(&path)?;
        nix::sched::setns(&fd, nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(std::io::Error::from)?;
        f()
    })
    .join()
    .map_err(|_| std::io::Error::other("the thread in the namespace panicked"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_routes_parse_single_and_multipath() {
        let json = r#"[
          {"dst":"172.20.0.0/24","nhid":26,"gateway":"192.168.10.100","dev":"eth1","protocol":"bgp","metric":20,"flags":[]},
          {"dst":"172.16.1.1","nhid":133,"protocol":"bgp","metric":20,"flags":[],"nexthops":[
             {"gateway":"192.168.10.101","dev":"eth1","weight":1,"flags":[]},
             {"gateway":"192.168.10.100","dev":"eth1","weight":1,"flags":[]}]},
          {"dst":"192.168.10.0/24","dev":"eth1","protocol":"kernel","scope":"link","prefsrc":"192.168.10.200","flags":[]}
        ]"#;
        let routes = parse_ip_routes(json).unwrap();
        assert_eq!(routes.len(), 3);
        assert_eq!(
            routes[0].gateways,
            vec!["192.168.10.100".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(
            routes[1].gateways,
            vec![
                "192.168.10.100".parse::<IpAddr>().unwrap(),
                "192.168.10.101".parse::<IpAddr>().unwrap()
            ]
        );
        assert_eq!(routes[2].protocol, "kernel");
        assert!(routes[2].gateways.is_empty());
    }

    #[test]
    fn unique_prefixes_differ_and_are_valid_names() {
        let a = unique_prefix("t");
        let b = unique_prefix("t");
        assert_ne!(a, b);
        assert!(topology::valid_name(&a, 24), "{a}");
    }

    #[test]
    fn mount_points_are_unescaped() {
        assert_eq!(
            unescape_mount("/run/frr-lab/a\\040b/x"),
            "/run/frr-lab/a b/x"
        );
        assert_eq!(unescape_mount("/plain"), "/plain");
    }

    #[test]
    fn pid_alive_sees_this_process() {
        assert!(pid_alive(std::process::id()));
        assert!(!pid_alive(u32::MAX));
    }
}
