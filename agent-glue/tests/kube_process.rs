//! The binaries: `lbspeaker operator` and `lbspeaker agent` as processes with `--kubeconfig`
//! (and `NODE_NAME` from the environment, as the downward API gives it) against the test API
//! server over HTTP, the CLI asking the agent, and SIGTERM ending both cleanly.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod kube_support;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crds::bgp::CiliumBGPNodeConfig;
use kube_support::{Cluster, NS, eventually, free_port, seed_manifests};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const WAIT: Duration = Duration::from_secs(30);

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn lbspeaker() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lbspeaker"))
}

async fn terminate(p: &mut Proc) -> std::process::ExitStatus {
    kill(Pid::from_raw(p.0.id() as i32), Signal::SIGTERM).unwrap();
    eventually("the process to exit", WAIT, async || {
        p.0.try_wait().unwrap()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_and_operator_binaries_run_against_an_api_server_given_by_kubeconfig() {
    let c = Cluster::new();
    // The tor's port is closed: sessions stay Active, which is enough here.
    c.apply(&seed_manifests(free_port())).await;
    let http = c
        .server
        .start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let kc = c.dir.path().join("kubeconfig");
    http.write_kubeconfig(&kc).unwrap();
    let log = |name: &str| std::fs::File::create(c.dir.path().join(format!("{name}.log"))).unwrap();

    let mut operator = Proc(
        lbspeaker()
            .args(["operator", "--kubeconfig"])
            .arg(&kc)
            .args([
                "--leader-election-lease-duration",
                "3s",
                "--leader-election-renew-deadline",
                "2s",
            ])
            .args(["--leader-election-retry-period", "500ms", "--api"])
            .arg(c.api_socket("operator"))
            .env("POD_NAMESPACE", NS)
            .env("POD_NAME", "lbspeaker-operator-7d9f-x2k4q")
            // The user's own arena limit is kept.
            .env("GLIBC_TUNABLES", "glibc.malloc.arena_max=3")
            .stdout(Stdio::null())
            .stderr(log("operator"))
            .spawn()
            .unwrap(),
    );
    let mut agent = Proc(
        lbspeaker()
            .args(["agent", "--kubeconfig"])
            .arg(&kc)
            .arg("--api")
            .arg(c.api_socket("node1"))
            .env("NODE_NAME", "node1")
            .env("POD_NAMESPACE", NS)
            .stdout(Stdio::null())
            .stderr(log("node1"))
            .spawn()
            .unwrap(),
    );

    eventually("webpod's address", WAIT, async || {
        (c.ingress("default", "webpod") == ["172.16.1.1"]).then_some(())
    })
    .await;
    assert_eq!(
        c.holder("lbspeaker-operator").as_deref(),
        Some("lbspeaker-operator-7d9f-x2k4q")
    );
    eventually("node1's node config with its status", WAIT, async || {
        let nc: CiliumBGPNodeConfig = c.server.get("", "node1")?;
        let state = nc
            .status?
            .bgp_instances
            .first()?
            .peers
            .first()?
            .peering_state
            .clone()?;
        (state != "established").then_some(())
    })
    .await;

    // One malloc arena: the agent executed itself again with glibc's tunable (same PID), the
    // operator kept the limit it was given.
    let tunables = |p: &Proc| {
        let env = std::fs::read(format!("/proc/{}/environ", p.0.id())).unwrap();
        env.split(|b| *b == 0)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .find_map(|v| v.strip_prefix("GLIBC_TUNABLES=").map(str::to_owned))
    };
    assert_eq!(
        tunables(&agent).as_deref(),
        Some("glibc.malloc.arena_max=1")
    );
    assert_eq!(
        tunables(&operator).as_deref(),
        Some("glibc.malloc.arena_max=3")
    );

    // Least privilege: every thread of the agent holds CAP_NET_BIND_SERVICE, CAP_NET_ADMIN
    // and CAP_NET_RAW only (BGP and L2 announcements on, no dataplane), the operator nothing.
    if nix::unistd::geteuid().is_root() {
        for (p, want) in [
            (&agent, "0000000000003400"),
            (&operator, "0000000000000000"),
        ] {
            let pid = p.0.id();
            for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
                let tid = task.unwrap().file_name().to_string_lossy().into_owned();
                let status = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/status"))
                    .unwrap_or_default();
                for key in ["CapEff:", "CapPrm:", "CapBnd:"] {
                    if let Some(line) = status.lines().find(|l| l.starts_with(key)) {
                        assert_eq!(line[key.len()..].trim(), want, "{pid}/{tid} {key}");
                    }
                }
            }
        }
    }

    // The CLI asks the agent through its socket.
    let out = lbspeaker()
        .arg("--api")
        .arg(c.api_socket("node1"))
        .arg("status")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("kubernetes (agent, node node1)"), "{text}");
    let out = lbspeaker()
        .arg("--api")
        .arg(c.api_socket("operator"))
        .args(["ipam", "services"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("172.16.1.1"));

    // Requests carry each role's user agent.
    let agents: std::collections::BTreeSet<String> = c
        .server
        .requests()
        .iter()
        .filter_map(|r| r.user_agent.clone())
        .collect();
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        agents.contains(&format!("lbspeaker-agent/{version} (node1)")),
        "{agents:?}"
    );
    assert!(
        agents.contains(&format!(
            "lbspeaker-operator/{version} (lbspeaker-operator-7d9f-x2k4q)"
        )),
        "{agents:?}"
    );

    // SIGTERM: both exit 0, the operator releases its Lease, the agent's socket is gone.
    assert!(terminate(&mut agent).await.success());
    assert!(terminate(&mut operator).await.success());
    assert_eq!(c.holder("lbspeaker-operator"), None);
    assert!(!c.api_socket("node1").exists());
    kube_support::rbac::assert_granted(&c.server.requests());
}

#[tokio::test]
async fn without_a_cluster_or_a_kubeconfig_the_agent_says_what_to_do() {
    let out = lbspeaker()
        .args(["agent", "--node", "node1"])
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("give --kubeconfig FILE"), "{err}");
}
