//! The installation in `deploy/` against the code: `kubectl kustomize` of the base and the
//! overlays and `helm template` of the chart parse into the Kubernetes types without losing a
//! field; every flag and environment variable they give `lbspeaker agent` / `operator` exists
//! and parses (the real binary and the Args types); the RBAC is `deploy/rbac` (which
//! `kube_cluster.rs` checks against every request the code makes); the CRDs are crdgen's; the
//! image, the Dockerfile and the versions agree. Without kubectl or helm the tests that need
//! them say so and pass, unless `KUBECTL_REQUIRED=1` / `HELM_REQUIRED=1` (as
//! `scripts/test.sh` sets).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod deploy_support;

use std::collections::BTreeSet;

use deploy_support::*;
use serde_json::Value;

const VERSION: &str = env!("CARGO_PKG_VERSION");

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// What every rendering must satisfy, whatever its values.
fn assert_installation(docs: &[Value], namespace: &str, secrets_namespace: &str) {
    assert_kubernetes_types(docs);
    assert_generated_crds(docs);
    assert_rbac_is_deploys(docs, namespace, secrets_namespace);
    assert_eq!(
        images(docs),
        set(&[&format!("ghcr.io/lbspeaker/lbspeaker:{VERSION}")]),
        "one image, tagged with lbspeaker's version"
    );
    for d in docs {
        if d["metadata"].get("namespace").is_some() {
            let ns = d["metadata"]["namespace"].as_str().unwrap();
            assert!(
                ns == namespace || (ns == secrets_namespace && d["kind"] != "DaemonSet"),
                "{} in {ns}",
                id(d)
            );
        }
    }

    let ds = one(docs, "DaemonSet", "lbspeaker-agent");
    let pod = &ds["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "lbspeaker-agent");
    assert_eq!(pod["hostNetwork"], true);
    assert_eq!(ds["spec"]["updateStrategy"]["type"], "RollingUpdate");
    assert_eq!(
        ds["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"],
        1
    );
    // Shorter than any sensible graceful restart time (CiliumBGPPeerConfig default 120 s):
    // the peers' restart timer runs while the old pod stops and the new one starts.
    assert!(pod["terminationGracePeriodSeconds"].as_u64().unwrap() <= 30);
    let agent = container(ds, "agent");
    let inv = invocation(agent);
    assert_invocation(&inv, "agent");
    assert!(
        inv.env
            .contains(&("NODE_NAME".into(), Some("spec.nodeName".into())))
    );
    assert!(
        inv.env
            .contains(&("POD_NAMESPACE".into(), Some("metadata.namespace".into())))
    );
    assert!(
        inv.args
            .contains(&format!("--bgp-secrets-namespace={secrets_namespace}"))
    );
    assert_probes(agent, metrics_port(&inv));
    let sc = &agent["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(
        sc["runAsUser"], 0,
        "capabilities need root (no ambient ones)"
    );
    assert_api_socket_volume(agent, pod);

    let dep = one(docs, "Deployment", "lbspeaker-operator");
    let pod = &dep["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "lbspeaker-operator");
    assert!(pod.get("hostNetwork").is_none_or(|h| h == false));
    assert_eq!(dep["spec"]["replicas"], 2);
    let op = container(dep, "operator");
    let inv = invocation(op);
    assert_invocation(&inv, "operator");
    assert!(
        inv.env
            .contains(&("POD_NAME".into(), Some("metadata.name".into())))
    );
    assert!(
        inv.env
            .contains(&("POD_NAMESPACE".into(), Some("metadata.namespace".into())))
    );
    assert_probes(op, metrics_port(&inv));
    assert_eq!(capabilities(op), (BTreeSet::new(), true), "no capability");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(op["securityContext"]["readOnlyRootFilesystem"], true);
    assert_api_socket_volume(op, pod);

    let pdb = one(docs, "PodDisruptionBudget", "lbspeaker-operator");
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    assert_eq!(
        pdb["spec"]["selector"]["matchLabels"],
        dep["spec"]["selector"]["matchLabels"]
    );
}

fn assert_probes(c: &Value, port: u64) {
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["readinessProbe"]["httpGet"]["port"], port);
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["livenessProbe"]["httpGet"]["port"], port);
}

/// The local API socket's directory is writable (the root filesystem is not).
fn assert_api_socket_volume(c: &Value, pod: &Value) {
    let mount = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["mountPath"] == "/run/lbspeaker")
        .expect("a volume at /run/lbspeaker, where the API socket is");
    let vol = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == mount["name"])
        .unwrap();
    assert!(vol.get("emptyDir").is_some());
}

fn agent_capabilities(docs: &[Value]) -> (BTreeSet<String>, bool) {
    capabilities(container(
        one(docs, "DaemonSet", "lbspeaker-agent"),
        "agent",
    ))
}

fn bpffs_mount(docs: &[Value]) -> Option<(Value, Value)> {
    let ds = one(docs, "DaemonSet", "lbspeaker-agent");
    let c = container(ds, "agent");
    let m = c["volumeMounts"]
        .as_array()?
        .iter()
        .find(|m| m["mountPath"] == "/sys/fs/bpf")?
        .clone();
    let v = ds["spec"]["template"]["spec"]["volumes"]
        .as_array()?
        .iter()
        .find(|v| v["name"] == m["name"])?
        .clone();
    Some((m, v))
}

fn agent_args(docs: &[Value]) -> Vec<String> {
    invocation(container(
        one(docs, "DaemonSet", "lbspeaker-agent"),
        "agent",
    ))
    .args
}

fn operator_args(docs: &[Value]) -> Vec<String> {
    invocation(container(
        one(docs, "Deployment", "lbspeaker-operator"),
        "operator",
    ))
    .args
}

#[test]
fn kubectl_kustomize_renders_the_default_installation_the_code_can_run() {
    if !have_kubectl() {
        return;
    }
    let docs = kustomize("");
    assert_installation(&docs, "lbspeaker", "kube-system");
    assert_eq!(docs, kustomize("base"), "deploy/ is the base as it is");
    let ns = one(&docs, "Namespace", "lbspeaker");
    assert_eq!(
        ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "privileged"
    );
    // BGP and L2 on, no dataplane: raw sockets for ARP/NDP and a port below 1024, nothing
    // else; no bpffs.
    assert_eq!(
        agent_capabilities(&docs),
        (set(&["NET_RAW", "NET_BIND_SERVICE"]), true)
    );
    assert!(bpffs_mount(&docs).is_none());
    assert!(
        !agent_args(&docs)
            .iter()
            .any(|a| a.starts_with("--dataplane"))
    );
}

#[test]
fn the_dataplane_overlay_adds_the_dataplane_flag_its_capabilities_and_the_bpffs() {
    if !have_kubectl() {
        return;
    }
    let docs = kustomize("overlays/dataplane");
    assert_installation(&docs, "lbspeaker", "kube-system");
    assert!(agent_args(&docs).contains(&"--dataplane=on".to_string()));
    assert_eq!(
        agent_capabilities(&docs),
        (
            set(&["NET_RAW", "NET_BIND_SERVICE", "NET_ADMIN", "BPF", "PERFMON"]),
            true
        )
    );
    let (mount, vol) = bpffs_mount(&docs).expect("the host's bpffs");
    assert_eq!(mount["mountPropagation"], "HostToContainer");
    assert_eq!(vol["hostPath"]["path"], "/sys/fs/bpf");
    // Pinned under the bpffs mount (the default --bpffs-root).
    assert!(ebpf::config::DEFAULT_BPFFS_ROOT.starts_with("/sys/fs/bpf/"));
}

#[test]
fn the_l2_only_overlay_turns_bgp_off_in_both_roles_and_drops_the_bgp_port_capability() {
    if !have_kubectl() {
        return;
    }
    let docs = kustomize("overlays/l2-only");
    assert_installation(&docs, "lbspeaker", "kube-system");
    assert!(agent_args(&docs).contains(&"--bgp-control-plane=false".to_string()));
    assert!(operator_args(&docs).contains(&"--bgp-control-plane=false".to_string()));
    assert_eq!(agent_capabilities(&docs), (set(&["NET_RAW"]), true));
}

/// The chart, rendered with `args`, has the same workloads as the kustomize directory `dir`.
fn assert_chart_matches_kustomize(args: &[&str], dir: &str) {
    let chart = helm_template("lbspeaker", args);
    assert_installation(&chart, "lbspeaker", "kube-system");
    let kust = kustomize(dir);
    for (kind, name) in [
        ("DaemonSet", "lbspeaker-agent"),
        ("Deployment", "lbspeaker-operator"),
        ("PodDisruptionBudget", "lbspeaker-operator"),
    ] {
        assert_same(
            &workload_spec(one(&chart, kind, name)),
            &workload_spec(one(&kust, kind, name)),
            &format!(
                "{kind} {name}: helm template {args:?} differs from deploy/{dir} (helm / kustomize)"
            ),
        );
    }
    let ids = |docs: &[Value]| -> BTreeSet<String> {
        docs.iter()
            .filter(|d| d["kind"] != "Namespace")
            .map(id)
            .collect()
    };
    assert_eq!(
        ids(&chart),
        ids(&kust),
        "the same objects (helm makes the namespace)"
    );
}

#[test]
fn the_helm_chart_with_its_defaults_renders_what_kustomize_renders() {
    if !have_helm() || !have_kubectl() {
        return;
    }
    assert_chart_matches_kustomize(&[], "");
}

#[test]
fn the_charts_cilium_named_switches_render_what_the_overlays_render() {
    if !have_helm() || !have_kubectl() {
        return;
    }
    assert_chart_matches_kustomize(
        &["--set", "loadBalancer.dataplane=on"],
        "overlays/dataplane",
    );
    // Unquoted in a values file, YAML 1.1 reads `on` as true.
    assert_chart_matches_kustomize(
        &["--set", "loadBalancer.dataplane=true"],
        "overlays/dataplane",
    );
    assert_chart_matches_kustomize(
        &["--set", "bgpControlPlane.enabled=false"],
        "overlays/l2-only",
    );
}

#[test]
fn every_value_of_the_chart_becomes_a_flag_lbspeaker_accepts() {
    if !have_helm() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let values = dir.path().join("values.yaml");
    std::fs::write(
        &values,
        "image: {repository: registry.example/lbspeaker, tag: \"1.2.3\"}\n\
         bgpControlPlane: {enabled: true, statusReport: {enabled: false}, secretsNamespace: {name: bgp-secrets, create: true}}\n\
         l2announcements: {enabled: false, leaseDuration: 20s, leaseRenewDeadline: 8s, leaseRetryPeriod: 1s}\n\
         loadBalancer: {dataplane: best-effort, algorithm: maglev, dataplaneInterfaces: [eth0, eth1], dataplaneBackendInterfaces: [cni0]}\n\
         bpf: {root: /run/bpffs, lbMapMax: 131072, ctTcpMax: 524288, ctAnyMax: 262144, sysAdmin: true}\n\
         maglev: {tableSize: 65521}\n\
         k8sClientRateLimit: {qps: 20, burst: 40, operator: {qps: 80, burst: 160}}\n\
         debug: {enabled: true}\n\
         logFormat: json\n\
         prometheus: {port: 19962, listenAddress: \"::\"}\n\
         extraArgs: [--l2-announce-count=3, --conntrack-gc-interval=1m]\n\
         extraEnv: []\n\
         operator:\n\
         \x20 replicas: 3\n\
         \x20 leaderElection: {leaseDuration: 30s, renewDeadline: 20s, retryPeriod: 4s}\n\
         \x20 prometheus: {port: 19963}\n\
         \x20 podDisruptionBudget: {enabled: true, minAvailable: 2}\n\
         \x20 extraArgs: [--api=/run/lbspeaker/operator.sock]\n",
    )
    .unwrap();
    let docs = helm_template("lb", &["-f", values.to_str().unwrap()]);
    assert_kubernetes_types(&docs);
    assert_generated_crds(&docs);
    assert_rbac_is_deploys(&docs, "lb", "bgp-secrets");
    one(&docs, "Namespace", "bgp-secrets");
    assert_eq!(images(&docs), set(&["registry.example/lbspeaker:1.2.3"]));

    let ds = one(&docs, "DaemonSet", "lbspeaker-agent");
    let agent = invocation(container(ds, "agent"));
    assert_invocation(&agent, "agent");
    for want in [
        "--metrics-addr=[::]:19962",
        "--bgp-secrets-namespace=bgp-secrets",
        "--bgp-status-report=false",
        "--l2-announcements=false",
        "--l2-lease-duration=20s",
        "--l2-lease-renew-deadline=8s",
        "--l2-lease-retry-period=1s",
        "--dataplane=best-effort",
        "--bpffs-root=/run/bpffs/lbspeaker",
        "--dataplane-interfaces=eth0,eth1",
        "--dataplane-backend-interfaces=cni0",
        "--bpf-lb-algorithm=maglev",
        "--bpf-lb-map-max=131072",
        "--bpf-ct-global-tcp-max=524288",
        "--bpf-ct-global-any-max=262144",
        "--bpf-lb-maglev-table-size=65521",
        "--k8s-client-qps=20",
        "--k8s-client-burst=40",
        "--log-level=debug",
        "--log-format=json",
        "--l2-announce-count=3",
        "--conntrack-gc-interval=1m",
    ] {
        assert!(
            agent.args.contains(&want.to_string()),
            "{want}: {:?}",
            agent.args
        );
    }
    assert_eq!(
        agent_capabilities(&docs),
        (
            set(&["NET_RAW", "NET_BIND_SERVICE", "NET_ADMIN", "SYS_ADMIN"]),
            true
        )
    );
    let c = container(ds, "agent");
    assert!(
        c["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["mountPath"] == "/run/bpffs")
    );
    assert_probes(c, 19962);

    let dep = one(&docs, "Deployment", "lbspeaker-operator");
    assert_eq!(dep["spec"]["replicas"], 3);
    let op = invocation(container(dep, "operator"));
    assert_invocation(&op, "operator");
    for want in [
        "--metrics-addr=0.0.0.0:19963",
        "--bgp-secrets-namespace=bgp-secrets",
        "--l2-announcements=false",
        "--leader-election-lease-duration=30s",
        "--leader-election-renew-deadline=20s",
        "--leader-election-retry-period=4s",
        "--k8s-client-qps=80",
        "--k8s-client-burst=160",
        "--log-level=debug",
        "--log-format=json",
        "--api=/run/lbspeaker/operator.sock",
    ] {
        assert!(op.args.contains(&want.to_string()), "{want}: {:?}", op.args);
    }
    assert_eq!(
        one(&docs, "PodDisruptionBudget", "lbspeaker-operator")["spec"]["minAvailable"],
        2
    );
}

#[test]
fn the_chart_refuses_a_dataplane_mode_lbspeaker_does_not_have() {
    if !have_helm() {
        return;
    }
    let out = std::process::Command::new("helm")
        .args(["template", "lbspeaker"])
        .arg(chart())
        .args(["--set", "loadBalancer.dataplane=maybe"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("loadBalancer.dataplane must be off, on or best-effort"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `.Values.a.b` paths in the templates.
fn value_paths(template: &str) -> BTreeSet<String> {
    let re = regex::Regex::new(r"\.Values\.([A-Za-z0-9_.]+)").unwrap();
    re.captures_iter(template)
        .map(|c| c[1].trim_end_matches('.').to_string())
        .collect()
}

#[test]
fn every_value_the_templates_read_is_in_values_yaml_and_every_value_is_read() {
    // Needs no helm: the chart's own files.
    let values: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(chart().join("values.yaml")).unwrap())
            .unwrap();
    let mut used = BTreeSet::new();
    for e in std::fs::read_dir(chart().join("templates")).unwrap() {
        let text = std::fs::read_to_string(e.unwrap().path()).unwrap();
        used.extend(value_paths(&text));
    }
    for path in &used {
        let mut v = &values;
        for part in path.split('.') {
            v = v.get(part).unwrap_or_else(|| {
                panic!("the templates read .Values.{path}, which values.yaml does not have")
            });
        }
    }
    // Every leaf of values.yaml is read by a template (itself or a parent map, as toYaml
    // does); `with .Values.operator.leaderElection` reads its keys relatively.
    fn leaves(v: &Value, prefix: &str, out: &mut Vec<String>) {
        match v.as_object() {
            Some(m) if !m.is_empty() => {
                for (k, x) in m {
                    let p = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    leaves(x, &p, out);
                }
            }
            _ => out.push(prefix.to_string()),
        }
    }
    let mut all = Vec::new();
    leaves(&values, "", &mut all);
    for leaf in all {
        let read = used
            .iter()
            .any(|u| leaf == *u || leaf.starts_with(&format!("{u}.")));
        assert!(read, "values.yaml has {leaf}, which no template reads");
    }
}

#[test]
fn the_chart_and_the_image_carry_lbspeakers_version() {
    let chart: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(chart().join("Chart.yaml")).unwrap())
            .unwrap();
    assert_eq!(chart["version"], VERSION);
    assert_eq!(chart["appVersion"], VERSION);
    for f in ["base/agent-daemonset.yaml", "base/operator-deployment.yaml"] {
        let text = std::fs::read_to_string(root().join("deploy").join(f)).unwrap();
        assert!(
            text.contains(&format!("image: ghcr.io/lbspeaker/lbspeaker:{VERSION}\n")),
            "{f}"
        );
    }
}

#[test]
fn the_dockerfile_installs_the_binary_the_manifests_run_as_the_user_they_expect() {
    let text = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    let stages: Vec<&str> = text.split("\nFROM ").collect();
    assert!(stages.len() >= 3, "a build stage and a runtime stage");
    let runtime = stages.last().unwrap();
    assert!(
        runtime.contains("COPY --from=build /out/lbspeaker /usr/bin/lbspeaker\n"),
        "the binary at the path the manifests' command names"
    );
    assert!(runtime.contains("ENTRYPOINT [\"/usr/bin/lbspeaker\"]\n"));
    assert!(
        runtime.contains("/usr/lib/lbspeaker/bpf/lb.bpf.o"),
        "the BPF object beside it"
    );
    assert!(runtime.contains("\nUSER 65532:65532\n"));
    assert!(
        !runtime.contains("RUN "),
        "nothing runs in the runtime stage"
    );
    let build = stages[1];
    assert!(
        build.contains("clang") && build.contains("libbpf-dev"),
        "ebpf/build.rs needs them"
    );
    assert!(build.contains("cargo build --release --locked -p agent-glue --bin lbspeaker"));
    // The operator runs as the image's user; the agent as root for its capabilities.
    let op = std::fs::read_to_string(root().join("deploy/base/operator-deployment.yaml")).unwrap();
    assert!(op.contains("runAsUser: 65532\n"));
    let agent = std::fs::read_to_string(root().join("deploy/base/agent-daemonset.yaml")).unwrap();
    assert!(agent.contains("runAsUser: 0\n"));
    // The toolchain the image builds with is the workspace's.
    let ws = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let rust = ws
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = \""))
        .unwrap()
        .trim_end_matches('"');
    assert!(
        build.starts_with(&format!("rust:{rust}-")),
        "{}",
        &build[..40]
    );
}
