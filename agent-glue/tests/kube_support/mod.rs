//! What the Kubernetes end-to-end tests share: an in-memory API server with lbspeaker's CRDs,
//! manifests applied the way `kubectl apply --server-side` applies them, agents and operators
//! as in-process tasks on clients of their own (each with its role's user agent, so the
//! request log tells who sent what), a loopback "tor" speaker, bounded waits, and the RBAC
//! check.

#![allow(dead_code, clippy::unwrap_used)] // each test file uses part of it

pub mod l2;
pub mod rbac;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use agent_glue::kube::ratelimit::RateLimit;
use agent_glue::kube::run::{AgentConfig, OperatorConfig};
use agent_glue::kube::{Role, client};
use bgp::config::{Asn, HoldTime, RouterId};
use bgp::speaker::{GracefulRestartConfig, InstanceConfig, PeerConfig, Speaker};
use bgp::wire::Family;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use l2announce::Timers;
use tests::apiserver::{ApiServer, Config};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// lbspeaker's namespace in the tests (its Leases).
pub const NS: &str = "lbspeaker";

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A file of the seed lab.
pub fn seed(file: &str) -> String {
    std::fs::read_to_string(root().join("frr-lab/topologies/seed").join(file)).unwrap()
}

/// Short leader-election timers: 3 s lease, 2 s renew deadline, 0.5 s retry.
pub fn fast_timers() -> Timers {
    Timers::new(
        Duration::from_secs(3),
        Duration::from_secs(2),
        Duration::from_millis(500),
    )
    .unwrap()
}

/// Polls `f` every 50 ms until it gives a value or `within` passes.
pub async fn eventually<T>(
    what: &str,
    within: Duration,
    mut f: impl AsyncFnMut() -> Option<T>,
) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            start.elapsed() < within,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

struct Running {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<anyhow::Result<()>>,
}

/// An API server with agents and operators running against it.
pub struct Cluster {
    pub server: ApiServer,
    pub dir: tempfile::TempDir,
    kubectl: kube::Client,
    running: BTreeMap<String, Running>,
}

impl Cluster {
    /// A server with lbspeaker's namespace and the generated CRDs installed.
    pub fn new() -> Cluster {
        let server =
            ApiServer::with_config(Config::default().bookmark_interval(Duration::from_millis(500)));
        server
            .insert(serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}))
            .unwrap();
        for e in std::fs::read_dir(root().join("deploy/crds")).unwrap() {
            // crdgen's *.yaml (not the kustomization beside them).
            let path = e.unwrap().path();
            if path.extension().is_none_or(|x| x != "yaml") {
                continue;
            }
            let text = std::fs::read_to_string(path).unwrap();
            for doc in tests::apiserver::documents(&text).unwrap() {
                server.insert(doc).unwrap();
            }
        }
        // The test's own writes carry no lbspeaker user agent, so the RBAC check ignores them.
        let kubectl = server.client();
        Cluster {
            server,
            dir: tempfile::tempdir().unwrap(),
            kubectl,
            running: BTreeMap::new(),
        }
    }

    /// Applies every document of `text` by server-side apply (manager `kubectl`), as
    /// `kubectl apply --server-side` does. Nodes are stored as given (a kubelet creates its
    /// Node with its status).
    pub async fn apply(&self, text: &str) {
        for doc in tests::apiserver::documents(text).unwrap() {
            let kind = doc["kind"].as_str().unwrap().to_string();
            if kind == "Node" {
                let name = doc["metadata"]["name"].as_str().unwrap().to_string();
                match self.server.object("v1", "Node", "", &name) {
                    None => drop(self.server.insert(doc).unwrap()),
                    Some(_) => {
                        let api: Api<k8s_openapi::api::core::v1::Node> =
                            Api::all(self.kubectl.clone());
                        api.patch(
                            &name,
                            &PatchParams::apply("kubectl").force(),
                            &Patch::Apply(&doc),
                        )
                        .await
                        .unwrap();
                    }
                }
                continue;
            }
            let (group, version) = match doc["apiVersion"].as_str().unwrap().split_once('/') {
                Some((g, v)) => (g.to_string(), v.to_string()),
                None => (
                    String::new(),
                    doc["apiVersion"].as_str().unwrap().to_string(),
                ),
            };
            let gvk = GroupVersionKind::gvk(&group, &version, &kind);
            let (ar, caps) = kube::discovery::pinned_kind(&self.kubectl, &gvk)
                .await
                .unwrap();
            let name = doc["metadata"]["name"].as_str().unwrap().to_string();
            let api: Api<DynamicObject> = match caps.scope {
                kube::discovery::Scope::Namespaced => Api::namespaced_with(
                    self.kubectl.clone(),
                    doc["metadata"]["namespace"].as_str().unwrap_or("default"),
                    &ar,
                ),
                kube::discovery::Scope::Cluster => Api::all_with(self.kubectl.clone(), &ar),
            };
            api.patch(
                &name,
                &PatchParams::apply("kubectl").force(),
                &Patch::Apply(&doc),
            )
            .await
            .unwrap_or_else(|e| panic!("applying {kind} {name}: {e}"));
        }
    }

    /// Starts `lbspeaker agent` for `node` on a client of its own.
    pub fn start_agent(&mut self, node: &str, status_report: bool) {
        self.start_agent_with(node, status_report, true);
    }

    /// Starts `lbspeaker agent` for `node`, with or without the BGP control plane.
    pub fn start_agent_with(&mut self, node: &str, status_report: bool, bgp: bool) {
        let client = client::over(
            self.server.service(),
            "default",
            Role::Agent,
            node,
            RateLimit::unlimited(),
        );
        let config = AgentConfig {
            node: node.into(),
            namespace: NS.into(),
            secrets_namespace: "kube-system".into(),
            bgp,
            bgp_status_report: status_report,
            api: self.dir.path().join(format!("{node}.sock")),
            api_listener: Default::default(),
            metrics_addr: None,
            // No ARP/NDP on the host's interfaces, no eBPF: the API side only.
            l2: None,
            dataplane: Default::default(),
        };
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(agent_glue::kube::run::agent_with(
            client,
            RateLimit::unlimited(),
            config,
            async move {
                let _ = rx.await;
            },
        ));
        self.running.insert(
            node.into(),
            Running {
                stop: Some(tx),
                task,
            },
        );
    }

    /// Starts `lbspeaker operator` as `identity`.
    pub fn start_operator(&mut self, identity: &str, timers: Timers) {
        self.start_operator_with(identity, timers, true);
    }

    /// Starts `lbspeaker operator` as `identity`, with or without its BGP share.
    pub fn start_operator_with(&mut self, identity: &str, timers: Timers, bgp: bool) {
        let client = client::over(
            self.server.service(),
            "default",
            Role::Operator,
            identity,
            RateLimit::unlimited(),
        );
        let config = OperatorConfig {
            identity: identity.into(),
            namespace: NS.into(),
            secrets_namespace: "kube-system".into(),
            leader_timers: timers,
            bgp,
            l2_policy_conditions: true,
            api: self.dir.path().join(format!("{identity}.sock")),
            api_listener: Default::default(),
            metrics_addr: None,
        };
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(agent_glue::kube::run::operator_with(
            client,
            RateLimit::unlimited(),
            config,
            async move {
                let _ = rx.await;
            },
        ));
        self.running.insert(
            identity.into(),
            Running {
                stop: Some(tx),
                task,
            },
        );
    }

    /// Stops one as SIGTERM would (an operator releases its Lease); returns its result.
    pub async fn stop(&mut self, name: &str) {
        let mut r = self.running.remove(name).unwrap();
        if let Some(s) = r.stop.take() {
            let _ = s.send(());
        }
        tokio::time::timeout(Duration::from_secs(20), r.task)
            .await
            .unwrap_or_else(|_| panic!("{name} did not stop"))
            .unwrap()
            .unwrap();
    }

    /// Ends one at once, as SIGKILL would: no release, no goodbye.
    pub fn kill(&mut self, name: &str) {
        let r = self.running.remove(name).unwrap();
        r.task.abort();
    }

    /// Stops everything still running.
    pub async fn stop_all(&mut self) {
        let names: Vec<String> = self.running.keys().cloned().collect();
        for n in names {
            self.stop(&n).await;
        }
    }

    /// The API socket of an agent or operator.
    pub fn api_socket(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.sock"))
    }

    /// The addresses in a Service's status.
    pub fn ingress(&self, ns: &str, name: &str) -> Vec<String> {
        self.server
            .get::<Service>(ns, name)
            .and_then(|s| s.status?.load_balancer?.ingress)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|i| i.ip)
            .collect()
    }

    /// The holder of a Lease in lbspeaker's namespace.
    pub fn holder(&self, lease: &str) -> Option<String> {
        self.server
            .get::<k8s_openapi::api::coordination::v1::Lease>(NS, lease)?
            .spec?
            .holder_identity
    }
}

/// The seed's manifests for the tests: the tor is a speaker on 127.0.0.1:`port` instead of
/// 192.168.10.200 (traffic stays on loopback), connect retry 1 s, and each node dials from
/// its own loopback address (an override per node), so that one tor sees four sessions.
pub fn seed_manifests(port: u16) -> String {
    let bgp = seed("bgp.yaml");
    let bgp = replace_once(
        &bgp,
        "peerAddress: 192.168.10.200",
        "peerAddress: 127.0.0.1",
    );
    let bgp = replace_once(
        &bgp,
        "  timers:\n    holdTimeSeconds: 9\n",
        &format!(
            "  transport:\n    peerPort: {port}\n  timers:\n    connectRetryTimeSeconds: 1\n    holdTimeSeconds: 9\n"
        ),
    );
    let mut overrides = String::new();
    for n in 1..=4 {
        overrides.push_str(&format!(
            "---\napiVersion: cilium.io/v2\nkind: CiliumBGPNodeConfigOverride\nmetadata: {{name: node{n}}}\n\
             spec:\n  bgpInstances:\n  - name: instance-65001\n    peers:\n    - {{name: tor-switch, localAddress: {}}}\n",
            node_address(n)
        ));
    }
    [
        seed("cluster/nodes.yaml"),
        bgp,
        seed("lb-pool.yaml"),
        seed("webpod.yaml"),
        seed("lb-advertisement.yaml"),
        seed("cluster/webpod-endpoints.yaml"),
        overrides,
    ]
    .join("\n---\n")
}

fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert_eq!(
        text.matches(from).count(),
        1,
        "the seed lab changed: {from:?}"
    );
    text.replacen(from, to, 1)
}

/// node N's loopback address for its session with the tor.
pub fn node_address(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, 10 + n)
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The seed's tor (AS 65000) on 127.0.0.1:`port`, waiting for nodes 1..=`nodes` (AS 65001)
/// with the seed's timers and graceful restart.
pub async fn tor(port: u16, nodes: u8) -> Speaker {
    let s = Speaker::new();
    let mut i = InstanceConfig::new(
        "tor",
        Asn::new(65000).unwrap(),
        RouterId::new(Ipv4Addr::new(10, 0, 0, 200)).unwrap(),
    );
    i.listen_port = Some(port);
    i.listen_addresses = vec![IpAddr::V4(Ipv4Addr::LOCALHOST)];
    s.start_instance(i).await.unwrap();
    for n in 1..=nodes {
        let mut p = PeerConfig::new(format!("node{n}"), IpAddr::V4(node_address(n)), 65001);
        p.passive = true;
        p.hold_time = HoldTime::new(9).unwrap();
        p.keepalive = Some(3);
        p.ebgp_multihop = Some(2);
        p.graceful_restart = Some(GracefulRestartConfig {
            restart_time: 15,
            notification: true,
        });
        s.add_peer("tor", p).await.unwrap();
    }
    s
}

/// What the tor has: each prefix with the nodes that sent it (their Adj-RIBs-In, stale
/// paths included: a reset shows as a path gone).
pub async fn tor_rib(t: &Speaker) -> BTreeMap<String, Vec<String>> {
    let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for p in t.peer_states("tor").await.unwrap() {
        for r in t
            .adj_rib_in("tor", &p.name, Family::IPV4_UNICAST)
            .await
            .unwrap()
        {
            m.entry(r.prefix.to_string())
                .or_default()
                .push(p.name.clone());
        }
    }
    for v in m.values_mut() {
        v.sort();
    }
    m
}

/// The tor's sessions: name, state, and how long established (to see a reset).
pub async fn tor_sessions(t: &Speaker) -> Vec<(String, String, Option<Duration>)> {
    t.peer_states("tor")
        .await
        .unwrap()
        .into_iter()
        .map(|p| (p.name.clone(), p.state.name().to_string(), p.uptime))
        .collect()
}
