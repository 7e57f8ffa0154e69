//! `lbspeaker run` and its `--dataplane` modes where the kernel cannot take the programs: a
//! bpffs root that is no bpffs. `on` refuses to start and says what to do; `best-effort` runs
//! without it and says why; `off` (the default) touches no kernel state and `lb list` shows
//! what would be programmed. No lab and no root needed: the manifests hold no BGP peers, so
//! nothing leaves the machine.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_lbspeaker");

fn seed() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../frr-lab/topologies/seed")
}

/// The seed's pool, webpod, Nodes and EndpointSlice: LB-IPAM gives webpod 172.16.1.1; no
/// ClusterConfig, so no BGP session is attempted.
fn manifests() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for f in ["lb-pool.yaml", "webpod.yaml"] {
        std::fs::copy(seed().join(f), d.path().join(f)).unwrap();
    }
    for f in ["nodes.yaml", "webpod-endpoints.yaml"] {
        std::fs::copy(seed().join("cluster").join(f), d.path().join(f)).unwrap();
    }
    d
}

struct Daemon {
    child: Child,
    api: PathBuf,
    log: PathBuf,
}

impl Daemon {
    fn start(dir: &Path, extra: &[&str]) -> Daemon {
        let api = dir.join("api.sock");
        let log = dir.join("lbspeaker.log");
        let mut args = vec![
            "run".to_owned(),
            "--config-dir".to_owned(),
            dir.join("m").display().to_string(),
            "--node".to_owned(),
            "node2".to_owned(),
            "--api".to_owned(),
            api.display().to_string(),
        ];
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        let child = Command::new(BIN)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::options().append(true).open(&log).unwrap())
            .spawn()
            .unwrap();
        Daemon { child, api, log }
    }

    fn ask(&self, args: &[&str]) -> std::process::Output {
        Command::new(BIN)
            .arg("--api")
            .arg(&self.api)
            .args(args)
            .output()
            .unwrap()
    }

    fn json(&self, args: &[&str]) -> Option<Value> {
        let mut all = vec!["-o", "json"];
        all.extend_from_slice(args);
        let out = self.ask(&all);
        out.status
            .success()
            .then(|| serde_json::from_slice(&out.stdout).ok())
            .flatten()
    }

    /// Polls until `f` holds for `lb list -o json`.
    fn wait_list(&self, f: impl Fn(&Value) -> bool) -> Value {
        let start = Instant::now();
        loop {
            if let Some(v) = self.json(&["lb", "list"])
                && f(&v)
            {
                return v;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "lb list never got there; log:\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // Only the child this test started, by its pid.
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
    }
}

fn setup() -> (tempfile::TempDir, PathBuf) {
    let top = tempfile::tempdir().unwrap();
    let m = manifests();
    std::fs::create_dir(top.path().join("m")).unwrap();
    for e in std::fs::read_dir(m.path()).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), top.path().join("m").join(e.file_name())).unwrap();
    }
    // A plain directory: not a bpffs.
    let root = top.path().join("not-bpffs").join("lbspeaker");
    (top, root)
}

fn has_webpod(v: &Value) -> bool {
    v["services"].as_array().is_some_and(|s| {
        s.iter().any(|s| {
            s["address"] == "172.16.1.1" && s["backends"].as_array().map(Vec::len) == Some(3)
        })
    })
}

#[test]
fn dataplane_on_without_a_bpf_filesystem_refuses_to_start_and_says_what_to_do() {
    let (top, root) = setup();
    let root = root.display().to_string();
    let mut d = Daemon::start(top.path(), &["--dataplane", "on", "--bpffs-root", &root]);
    let start = Instant::now();
    let status = loop {
        if let Some(s) = d.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "lbspeaker run --dataplane on kept running without a bpffs"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!status.success());
    let log = std::fs::read_to_string(&d.log).unwrap();
    for want in [
        "the eBPF dataplane cannot be loaded (--dataplane on)",
        "is not on a BPF filesystem",
        "mount -t bpf bpf /sys/fs/bpf",
        "--dataplane best-effort",
    ] {
        assert!(log.contains(want), "{want:?} missing from:\n{log}");
    }
    assert!(!d.api.exists(), "the API socket is removed");
}

#[test]
fn dataplane_best_effort_runs_without_it_and_says_why() {
    let (top, root) = setup();
    let root = root.display().to_string();
    let d = Daemon::start(
        top.path(),
        &["--dataplane", "best-effort", "--bpffs-root", &root],
    );
    let list = d.wait_list(has_webpod);
    assert_eq!(list["mode"], "best-effort");
    assert_eq!(list["kernel"], false);
    assert!(
        list["note"]
            .as_str()
            .unwrap()
            .contains("is not on a BPF filesystem"),
        "{list}"
    );
    let status = d.json(&["status"]).unwrap();
    let roles: Vec<&str> = status["roles"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        roles.contains(&"dataplane best-effort but not loaded (nothing forwards)"),
        "{roles:?}"
    );
    assert!(
        status["problems"].as_array().unwrap().iter().any(|p| p
            .as_str()
            .unwrap()
            .starts_with("dataplane not loaded (--dataplane best-effort)")),
        "{status}"
    );
    assert!(
        !Path::new(&root).exists(),
        "nothing was created under the root"
    );
}

#[test]
fn dataplane_off_touches_nothing_and_lb_list_shows_what_it_would_program() {
    let (top, root) = setup();
    let root_s = root.display().to_string();
    let d = Daemon::start(top.path(), &["--bpffs-root", &root_s]);
    let list = d.wait_list(has_webpod);
    assert_eq!(list["mode"], "off");
    assert_eq!(list["kernel"], false);
    let out = d.ask(&["lb", "list"]);
    assert!(out.status.success());
    let table = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        table,
        "\
SERVICE ADDRESS     BACKEND ADDRESS (REVNAT_ID) (SLOT)
172.16.1.1:80/TCP   0.0.0.0:0 (1) (0) [LoadBalancer]
                    172.20.1.10:80/TCP (1) (1)
                    172.20.2.10:80/TCP (1) (2)
                    172.20.3.10:80/TCP (1) (3)
"
    );
    let note = String::from_utf8_lossy(&out.stderr);
    assert!(
        note.contains("the dataplane is off (--dataplane off)"),
        "{note}"
    );
    let status = d.json(&["status"]).unwrap();
    assert!(
        status["roles"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == "dataplane off (maps in memory, nothing forwards)"),
        "{status}"
    );
    assert_eq!(status["problems"], serde_json::json!([]), "{status}");
    assert!(!root.exists());
}
