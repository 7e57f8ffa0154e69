//! kubectl against the `test-apiserver` binary over HTTP on loopback: apply a CRD and a
//! custom object, get (table and JSON), the three patch types, the status subresource,
//! `get -w` receiving an event, server-side apply, delete. Skipped when kubectl is not on
//! PATH, unless `KUBECTL_REQUIRED=1`. Every command and wait is bounded.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

const BOUND: Duration = Duration::from_secs(30);

const CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: ciliumloadbalancerippools.cilium.io
spec:
  group: cilium.io
  scope: Cluster
  names:
    plural: ciliumloadbalancerippools
    singular: ciliumloadbalancerippool
    kind: CiliumLoadBalancerIPPool
    listKind: CiliumLoadBalancerIPPoolList
    shortNames: [ippools, ippool, lbippool]
    categories: [cilium]
  versions:
  - name: v2alpha1
    served: true
    storage: false
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
  - name: v2
    served: true
    storage: true
    subresources:
      status: {}
    additionalPrinterColumns:
    - {name: Disabled, type: boolean, jsonPath: .spec.disabled}
    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
"#;

const POOL: &str = r#"
apiVersion: cilium.io/v2
kind: CiliumLoadBalancerIPPool
metadata:
  name: blue
spec:
  blocks:
  - cidr: 10.0.10.0/24
  disabled: false
"#;

const SERVICE: &str = r#"
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: default
  labels: {app: web}
spec:
  type: LoadBalancer
  ports:
  - {name: http, port: 80}
  - {name: https, port: 443}
"#;

/// The binary, started on a free loopback port with a kubeconfig; killed when dropped.
struct Server {
    child: Child,
    dir: tempfile::TempDir,
}

impl Server {
    fn start() -> Server {
        Server::start_with(&[])
    }

    fn start_with(extra: &[&str]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_test-apiserver"))
            .args(["--listen", "127.0.0.1:0", "--kubeconfig"])
            .arg(dir.path().join("kubeconfig"))
            .args(["--log-level", "warn"])
            .args(extra)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(BOUND).unwrap();
        assert!(
            line.starts_with("test-apiserver listening on http://127.0.0.1:"),
            "{line}"
        );
        Server { child, dir }
    }

    fn file(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn command(&self) -> Command {
        let mut c = Command::new("kubectl");
        c.arg("--kubeconfig")
            .arg(self.dir.path().join("kubeconfig"));
        c.arg("--cache-dir").arg(self.dir.path().join("cache"));
        c
    }

    /// Runs kubectl to completion (bounded); returns its output.
    fn kubectl(&self, args: &[&str]) -> Output {
        let mut child = self
            .command()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + BOUND;
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("kubectl {args:?} did not finish within {BOUND:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        child.wait_with_output().unwrap()
    }

    /// Runs kubectl and expects success; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {stdout}{stderr}"
        );
        stdout
    }

    /// Runs kubectl and expects failure; returns stderr.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            !out.status.success(),
            "kubectl {args:?} succeeded: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).to_string()
    }

    /// Waits until the server has `n` open watches (its `/_test/watches` hook).
    fn wait_for_watches(&self, n: u64) {
        let deadline = Instant::now() + BOUND;
        loop {
            let v: Value =
                serde_json::from_str(&self.ok(&["get", "--raw", "/_test/watches"])).unwrap();
            if v["count"].as_u64() >= Some(n) {
                return;
            }
            assert!(Instant::now() < deadline, "no {n} watches within {BOUND:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(&a)).unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `kubectl get -w`, its JSON documents arriving on a channel.
struct Watch {
    child: Child,
    events: mpsc::Receiver<Value>,
}

impl Watch {
    fn start(server: &Server, args: &[&str]) -> Watch {
        let mut child = server
            .command()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, events) = mpsc::channel();
        std::thread::spawn(move || {
            for v in serde_json::Deserializer::from_reader(stdout).into_iter::<Value>() {
                let Ok(v) = v else { break };
                if tx.send(v).is_err() {
                    break;
                }
            }
        });
        Watch { child, events }
    }

    /// The next document, within `BOUND`.
    fn next(&self) -> Value {
        self.events.recv_timeout(BOUND).unwrap()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn have_kubectl() -> bool {
    let found = Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("KUBECTL_REQUIRED").as_deref() != Ok("1"),
            "kubectl is required but not on PATH"
        );
        eprintln!("kubectl is not on PATH: skipping (KUBECTL_REQUIRED=1 makes this fail)");
    }
    found
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn kubectl_applies_a_crd_then_gets_patches_watches_and_deletes_a_custom_object() {
    if !have_kubectl() {
        return;
    }
    let s = Server::start();
    let v = s.json(&["version"]);
    assert_eq!(v["serverVersion"]["gitVersion"], "v1.32.0");

    let crd = s.file("crd.yaml", CRD);
    let pool = s.file("pool.yaml", POOL);
    assert!(s.ok(&["apply", "-f", path_str(&crd)]).contains(
        "customresourcedefinition.apiextensions.k8s.io/ciliumloadbalancerippools.cilium.io created"
    ));
    assert!(
        s.ok(&["api-resources", "--api-group", "cilium.io"])
            .contains("ciliumloadbalancerippools")
    );
    let crd_name = "crd/ciliumloadbalancerippools.cilium.io";
    assert!(
        s.ok(&[
            "wait",
            "--for=condition=Established",
            crd_name,
            "--timeout=20s"
        ])
        .contains("condition met")
    );
    assert!(
        s.ok(&["apply", "-f", path_str(&pool)])
            .contains("ciliumloadbalancerippool.cilium.io/blue created")
    );
    assert!(
        s.ok(&["apply", "-f", path_str(&pool)])
            .contains("unchanged")
    );

    let got = s.json(&["get", "ippool", "blue"]);
    assert_eq!(got["spec"]["blocks"][0]["cidr"], "10.0.10.0/24");
    assert_eq!(got["metadata"]["generation"], 1);
    let table = s.ok(&["get", "ippools"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, vec!["NAME", "DISABLED", "AGE"]);
    assert!(table.lines().nth(1).unwrap().starts_with("blue"));

    // A re-apply with a change is a (merge) patch for a custom resource.
    s.file(
        "pool.yaml",
        &POOL.replace("disabled: false", "disabled: true"),
    );
    assert!(
        s.ok(&["apply", "-f", path_str(&pool)])
            .contains("configured")
    );
    assert_eq!(s.json(&["get", "ippool", "blue"])["spec"]["disabled"], true);

    s.ok(&[
        "patch",
        "ippool",
        "blue",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"disabled":false}}"#,
    ]);
    s.ok(&["patch", "ippool", "blue", "--type", "json", "-p",
           r#"[{"op":"test","path":"/spec/disabled","value":false},{"op":"add","path":"/spec/blocks/-","value":{"cidr":"10.0.11.0/24"}}]"#]);
    let failed = s.fails(&[
        "patch",
        "ippool",
        "blue",
        "--type",
        "json",
        "-p",
        r#"[{"op":"test","path":"/spec/disabled","value":true}]"#,
    ]);
    assert!(
        failed.contains("the server rejected our request"),
        "{failed}"
    );
    let strategic = s.fails(&[
        "patch",
        "ippool",
        "blue",
        "-p",
        r#"{"spec":{"disabled":true}}"#,
    ]);
    assert!(
        strategic.contains("application/strategic-merge-patch+json is not supported"),
        "{strategic}"
    );
    s.ok(&[
        "patch",
        "ippool",
        "blue",
        "--subresource",
        "status",
        "--type",
        "merge",
        "-p",
        r#"{"status":{"conditions":[{"type":"cilium.io/PoolConflict","status":"False"}]}}"#,
    ]);
    let got = s.json(&["get", "ippool", "blue"]);
    assert_eq!(got["spec"]["blocks"].as_array().unwrap().len(), 2);
    assert_eq!(got["status"]["conditions"][0]["status"], "False");
    assert_eq!(
        got["metadata"]["generation"], 4,
        "three spec changes, none from status"
    );

    // get -w: the current object, then the change made while watching.
    let w = Watch::start(
        &s,
        &[
            "get",
            "ippools",
            "--watch",
            "--output-watch-events",
            "-o",
            "json",
        ],
    );
    let first = w.next();
    assert_eq!(
        (
            first["type"].as_str(),
            first["object"]["metadata"]["name"].as_str()
        ),
        (Some("ADDED"), Some("blue"))
    );
    s.ok(&["label", "ippool", "blue", "color=blue"]);
    let change = w.next();
    assert_eq!(change["type"], "MODIFIED");
    assert_eq!(change["object"]["metadata"]["labels"]["color"], "blue");
    drop(w);

    let w = Watch::start(
        &s,
        &[
            "get",
            "ippools",
            "--watch-only",
            "--output-watch-events",
            "-o",
            "json",
        ],
    );
    s.wait_for_watches(1);
    assert!(
        s.ok(&["delete", "-f", path_str(&pool)])
            .contains("ciliumloadbalancerippool.cilium.io \"blue\" deleted")
    );
    assert_eq!(w.next()["type"], "DELETED");
    drop(w);
    assert!(s.fails(&["get", "ippool", "blue"]).contains("NotFound"));
    s.ok(&["delete", "-f", path_str(&crd)]);
    assert!(
        !s.ok(&["api-resources"])
            .contains("ciliumloadbalancerippools")
    );
}

#[test]
fn kubectl_manages_a_service_and_its_status() {
    if !have_kubectl() {
        return;
    }
    let s = Server::start();
    let svc = s.file("svc.yaml", SERVICE);
    assert!(
        s.ok(&["apply", "-f", path_str(&svc)])
            .contains("service/web created")
    );
    let table = s.ok(&["get", "svc", "web"]);
    assert!(
        table.contains("LoadBalancer")
            && table.contains("<pending>")
            && table.contains("80:30000/TCP"),
        "{table}"
    );

    // Client-side apply of a built-in type sends a strategic merge patch; the other port stays.
    s.file(
        "svc.yaml",
        &SERVICE.replace("name: https, port: 443", "name: tls, port: 443"),
    );
    assert!(
        s.ok(&["apply", "-f", path_str(&svc)])
            .contains("configured")
    );
    let got = s.json(&["get", "svc", "web"]);
    let names: Vec<&str> = got["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["http", "tls"]);
    assert_eq!(
        got["spec"]["ports"][0]["nodePort"], 30000,
        "allocated values survive the patch"
    );

    s.ok(&[
        "patch",
        "svc",
        "web",
        "-p",
        r#"{"spec":{"ports":[{"port":80,"targetPort":8080}]}}"#,
    ]);
    assert_eq!(
        s.json(&["get", "svc", "web"])["spec"]["ports"][0]["targetPort"],
        8080
    );
    s.ok(&[
        "patch",
        "svc",
        "web",
        "--subresource",
        "status",
        "--type",
        "merge",
        "-p",
        r#"{"status":{"loadBalancer":{"ingress":[{"ip":"10.0.10.1"}]}}}"#,
    ]);
    assert!(s.ok(&["get", "svc", "web"]).contains("10.0.10.1"));

    assert!(
        s.ok(&[
            "apply",
            "--server-side",
            "--field-manager",
            "ops",
            "-f",
            path_str(&svc)
        ])
        .contains("serverside-applied")
    );
    let managers: Vec<String> = s.json(&["get", "svc", "web", "--show-managed-fields"])["metadata"]
        ["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            format!(
                "{} {}",
                m["manager"].as_str().unwrap(),
                m["operation"].as_str().unwrap()
            )
        })
        .collect();
    assert!(managers.contains(&"ops Apply".to_string()), "{managers:?}");
    assert!(
        managers.contains(&"kubectl-patch Update".to_string()),
        "{managers:?}"
    );

    // kubectl's typed generators send protobuf; Namespaces, ConfigMaps and Secrets are read.
    assert!(
        s.ok(&["create", "namespace", "bgp"])
            .contains("namespace/bgp created")
    );
    let out = s.ok(&[
        "create",
        "secret",
        "generic",
        "bgp-auth",
        "-n",
        "bgp",
        "--from-literal=password=s3cret",
    ]);
    assert!(out.contains("secret/bgp-auth created"), "{out}");
    let secret = s.json(&["get", "secret", "bgp-auth", "-n", "bgp"]);
    assert_eq!(
        (secret["data"]["password"].as_str(), secret["type"].as_str()),
        (Some("czNjcmV0"), Some("Opaque"))
    );
    s.ok(&["create", "configmap", "cfg", "--from-literal=a=1"]);
    assert_eq!(s.json(&["get", "cm", "cfg"])["data"]["a"], "1");
    let ns = s.file(
        "ns.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: other}\n",
    );
    assert!(
        s.ok(&["create", "-f", path_str(&ns)])
            .contains("namespace/other created")
    );

    assert!(
        s.ok(&["replace", "-f", path_str(&svc)])
            .contains("service/web replaced")
    );
    let all_ns = s.ok(&["get", "svc", "-A"]);
    assert!(
        all_ns.starts_with("NAMESPACE") && all_ns.contains("default"),
        "{all_ns}"
    );
    assert!(s.ok(&["get", "all"]).contains("web"));
    let described = s.ok(&["describe", "svc", "web"]);
    assert!(
        described.contains("LoadBalancer Ingress:") && described.contains("10.0.10.1"),
        "{described}"
    );

    assert!(
        s.ok(&["delete", "svc", "web"])
            .contains("service \"web\" deleted")
    );
    assert!(s.ok(&["get", "svc"]).is_empty());
}

#[tokio::test]
async fn the_binary_serves_seeded_objects_to_a_kube_client_from_its_kubeconfig() {
    let dir = tempfile::tempdir().unwrap();
    let seed = dir.path().join("seed.yaml");
    let objects =
        format!("{CRD}---{POOL}---\napiVersion: v1\nkind: Node\nmetadata: {{name: node1}}\n");
    std::fs::write(&seed, objects).unwrap();
    let s = Server::start_with(&["--seed", path_str(&seed)]);
    let kc = kube::config::Kubeconfig::read_from(s.dir.path().join("kubeconfig")).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    assert_eq!(config.default_namespace, "default");
    let client = kube::Client::try_from(config).unwrap();
    let nodes: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(client.clone());
    assert_eq!(
        nodes.list(&Default::default()).await.unwrap().items.len(),
        1
    );
    let gvk = kube::core::GroupVersionKind::gvk("cilium.io", "v2", "CiliumLoadBalancerIPPool");
    let (ar, _) = kube::discovery::pinned_kind(&client, &gvk).await.unwrap();
    let pools: kube::Api<kube::api::DynamicObject> = kube::Api::all_with(client, &ar);
    assert_eq!(
        pools.get("blue").await.unwrap().data["spec"]["blocks"][0]["cidr"],
        "10.0.10.0/24"
    );
}

/// A minimal CRD for a cilium.io kind (no schema: the server validates none).
fn cilium_crd(kind: &str, plural: &str, versions: &[&str]) -> String {
    let vs: String = versions
        .iter()
        .enumerate()
        .map(|(i, v)| {
            format!(
                "  - name: {v}\n    served: true\n    storage: {}\n    subresources: {{status: {{}}}}\n    schema:\n      openAPIV3Schema: {{type: object, x-kubernetes-preserve-unknown-fields: true}}\n",
                i == 0
            )
        })
        .collect();
    format!(
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: {plural}.cilium.io\n\
         spec:\n  group: cilium.io\n  scope: Cluster\n  names:\n    plural: {plural}\n    singular: {}\n    kind: {kind}\n  versions:\n{vs}",
        kind.to_ascii_lowercase()
    )
}

#[test]
fn the_seed_lab_manifests_apply_unchanged() {
    if !have_kubectl() {
        return;
    }
    let s = Server::start();
    let crds = [
        cilium_crd(
            "CiliumBGPClusterConfig",
            "ciliumbgpclusterconfigs",
            &["v2", "v2alpha1"],
        ),
        cilium_crd(
            "CiliumBGPPeerConfig",
            "ciliumbgppeerconfigs",
            &["v2", "v2alpha1"],
        ),
        cilium_crd(
            "CiliumBGPAdvertisement",
            "ciliumbgpadvertisements",
            &["v2", "v2alpha1"],
        ),
        cilium_crd(
            "CiliumL2AnnouncementPolicy",
            "ciliuml2announcementpolicies",
            &["v2alpha1"],
        ),
        cilium_crd(
            "CiliumLoadBalancerIPPool",
            "ciliumloadbalancerippools",
            &["v2", "v2alpha1"],
        ),
    ]
    .join("---\n");
    let crds = s.file("cilium-crds.yaml", &crds);
    s.ok(&["apply", "-f", path_str(&crds)]);
    s.ok(&[
        "wait",
        "--for=condition=Established",
        "crd",
        "--all",
        "--timeout=20s",
    ]);

    let seed = Path::new(env!("CARGO_MANIFEST_DIR")).join("../frr-lab/topologies/seed");
    let mut args = vec!["apply".to_string()];
    for f in [
        "bgp.yaml",
        "l2.yaml",
        "lb-advertisement.yaml",
        "lb-pool.yaml",
        "webpod.yaml",
        "cluster",
    ] {
        args.push("-f".into());
        args.push(seed.join(f).to_str().unwrap().to_string());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = s.ok(&args);
    // 7 cilium.io objects, the Service, 4 Nodes and the EndpointSlice.
    assert_eq!(
        out.lines().filter(|l| l.ends_with(" created")).count(),
        13,
        "{out}"
    );

    let nodes = s.json(&["get", "nodes"]);
    assert_eq!(nodes["items"].as_array().unwrap().len(), 4);
    assert_eq!(
        nodes["items"][0]["status"]["addresses"][0]["address"], "192.168.10.100",
        "Node status kept"
    );
    let svc = s.json(&["get", "svc", "-A"]);
    assert_eq!(svc["items"][0]["spec"]["type"], "LoadBalancer");
    assert_eq!(
        s.json(&["get", "ciliumloadbalancerippools"])["items"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let slices = s.json(&["get", "endpointslices", "-A"]);
    assert_eq!(slices["items"][0]["metadata"]["generation"], 1);
    assert!(
        s.ok(&["apply", "-f", seed.join("lb-pool.yaml").to_str().unwrap()])
            .contains("unchanged")
    );
}
