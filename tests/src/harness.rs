//! The BGP harness: one process running a `bgp::Speaker` from a JSON file, answering JSON
//! commands on a Unix socket, and the test side that starts it in a lab node and asks it
//! things.
//!
//! ```text
//!  test ──► Lab::spawn(node, bgp-harness --config node.json) ──► Speaker in the namespace
//!    └────── request({"cmd": "loc-rib", ...}) over ROOT/PREFIX/NODE/harness.sock ──┘
//! ```
//!
//! Commands (one JSON object per line, one JSON answer per line, `{"ok": ...}` or
//! `{"error": "..."}`): `peers`, `loc-rib {family}`, `adj-rib-in {peer, family}`,
//! `adj-rib-out {peer, family}`, `announce {routes}`, `withdraw {prefixes}`,
//! `remove-peer {peer, communication}`, `reset-peer {peer}`, `update-peer {peer: PeerConfig}`,
//! `stop {graceful}`; with BFD and FIB installation configured: `bfd` (sessions and receive
//! counters), `set-bfd-peers {peers}`, `fib` (the installer's status), `fib-stop {cleanup:
//! "remove-all" | "keep"}`, and `events` (BFD and BGP peer events with wall-clock times, the
//! last 4096).

use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bgp::bfd::{BfdManagerConfig, BfdPeer};
use bgp::fib::FibConfig;
use bgp::speaker::{InstanceConfig, PeerConfig, Route};
use frr_lab::Lab;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// What the harness runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct HarnessConfig {
    /// The instance.
    pub instance: InstanceConfig,
    /// Its peers.
    #[serde(default)]
    pub peers: Vec<PeerConfig>,
    /// Routes announced at start, before the peers are added.
    #[serde(default)]
    pub routes: Vec<Route>,
    /// The control socket.
    pub control: PathBuf,
    /// BFD: the manager's sockets and the peers that want a session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bfd: Option<HarnessBfd>,
    /// FIB installation of the instance's received best paths.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fib: Option<FibConfig>,
}

/// The harness's BFD.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct HarnessBfd {
    /// Listening sockets.
    #[serde(default)]
    pub manager: BfdManagerConfig,
    /// One session per entry (see `BfdPeer::for_bgp_peer`).
    #[serde(default)]
    pub peers: Vec<BfdPeer>,
}

/// A harness process started in a lab node.
#[derive(Debug)]
pub struct Harness {
    /// The node it runs in.
    pub node: String,
    /// Its pid (recorded by the lab, so teardown ends it).
    pub pid: u32,
    /// The control socket.
    pub socket: PathBuf,
    /// Its configuration file.
    pub config_file: PathBuf,
    exe: PathBuf,
    started: Instant,
}

impl Harness {
    /// Writes the configuration into the node's directory and starts the harness there.
    /// `exe` is the `bgp-harness` binary (`env!("CARGO_BIN_EXE_bgp-harness")` in a test).
    pub fn start(
        lab: &mut Lab,
        exe: &Path,
        node: &str,
        mut config: HarnessConfig,
    ) -> anyhow::Result<Harness> {
        let dir = lab.node_dir(node)?;
        let socket = dir.join("harness.sock");
        config.control = socket.clone();
        let config_file = dir.join("harness.json");
        std::fs::write(&config_file, serde_json::to_vec_pretty(&config)?)?;
        let mut h = Harness {
            node: node.to_owned(),
            pid: 0,
            socket,
            config_file,
            exe: exe.to_owned(),
            started: Instant::now(),
        };
        h.spawn(lab, false)?;
        Ok(h)
    }

    fn spawn(&mut self, lab: &mut Lab, restarting: bool) -> anyhow::Result<()> {
        let _ = std::fs::remove_file(&self.socket);
        let cfg = self.config_file.to_string_lossy().into_owned();
        let exe = self.exe.to_string_lossy().into_owned();
        let mut args = vec!["--config", cfg.as_str()];
        if restarting {
            args.push("--restarting");
        }
        self.pid = lab.spawn(&self.node, "bgp-harness", &exe, &args)?;
        self.started = Instant::now();
        let deadline = Instant::now() + Duration::from_secs(10);
        while UnixStream::connect(&self.socket).is_err() {
            anyhow::ensure!(
                Instant::now() < deadline,
                "harness on {} did not open its socket",
                self.node
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// When the current process started.
    pub fn started_at(&self) -> Instant {
        self.started
    }

    /// Kills the process with SIGKILL (no NOTIFICATION, no FIN handshake of BGP's own).
    pub fn kill(&mut self, lab: &mut Lab) -> anyhow::Result<()> {
        lab.signal(self.pid, nix::sys::signal::Signal::SIGKILL)?;
        let deadline = Instant::now() + Duration::from_secs(5);
        while lab.is_running(self.pid) {
            anyhow::ensure!(
                Instant::now() < deadline,
                "harness {} survived SIGKILL",
                self.pid
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    /// Starts the process again from the same configuration; `restarting` sets the R bit.
    pub fn restart(&mut self, lab: &mut Lab, restarting: bool) -> anyhow::Result<()> {
        self.spawn(lab, restarting)
    }

    /// Sends one command, returns the `ok` value.
    pub fn request(&self, cmd: Value) -> anyhow::Result<Value> {
        let mut s = UnixStream::connect(&self.socket)?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut line = serde_json::to_vec(&cmd)?;
        line.push(b'\n');
        s.write_all(&line)?;
        let mut answer = String::new();
        BufReader::new(s).read_line(&mut answer)?;
        let v: Value = serde_json::from_str(&answer)?;
        match v.get("ok") {
            Some(ok) => Ok(ok.clone()),
            None => anyhow::bail!("harness on {}: {}", self.node, v["error"]),
        }
    }

    /// The state of one peer (`PeerState` as JSON).
    pub fn peer(&self, name: &str) -> anyhow::Result<Value> {
        let peers = self.request(json!({"cmd": "peers"}))?;
        peers
            .as_array()
            .and_then(|a| a.iter().find(|p| p["name"] == name))
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("no peer {name}"))
    }

    /// The Loc-RIB of a family (`ipv4-unicast`, `ipv6-unicast`).
    pub fn loc_rib(&self, family: &str) -> anyhow::Result<Vec<Value>> {
        let v = self.request(json!({"cmd": "loc-rib", "family": family}))?;
        Ok(v.as_array().cloned().unwrap_or_default())
    }

    /// A peer's Adj-RIB-In.
    pub fn adj_rib_in(&self, peer: &str, family: &str) -> anyhow::Result<Vec<Value>> {
        let v = self.request(json!({"cmd": "adj-rib-in", "peer": peer, "family": family}))?;
        Ok(v.as_array().cloned().unwrap_or_default())
    }

    /// The BFD sessions (`BfdSessionInfo` as JSON).
    pub fn bfd_sessions(&self) -> anyhow::Result<Vec<Value>> {
        let v = self.request(json!({"cmd": "bfd"}))?;
        Ok(v["sessions"].as_array().cloned().unwrap_or_default())
    }

    /// The BFD session toward `remote`.
    pub fn bfd_session(&self, remote: &str) -> anyhow::Result<Value> {
        self.bfd_sessions()?
            .into_iter()
            .find(|s| s["remote"] == remote)
            .ok_or_else(|| anyhow::anyhow!("{}: no BFD session toward {remote}", self.node))
    }

    /// The FIB installer's status (`FibStatus` as JSON).
    pub fn fib(&self) -> anyhow::Result<Value> {
        self.request(json!({"cmd": "fib"}))
    }

    /// Recorded events: `{"at": unix seconds (float), "source": "bfd" | "bgp", "event": ...}`.
    pub fn events(&self) -> anyhow::Result<Vec<Value>> {
        let v = self.request(json!({"cmd": "events"}))?;
        Ok(v.as_array().cloned().unwrap_or_default())
    }

    /// Waits until a peer is Established; returns how long after the process start.
    pub fn wait_established(&self, peer: &str, timeout: Duration) -> anyhow::Result<Duration> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(p) = self.peer(peer)
                && p["state"] == "established"
            {
                return Ok(self.started.elapsed());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "{}: peer {peer} not Established after {timeout:?}: {:?}",
                self.node,
                self.peer(peer).ok()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
