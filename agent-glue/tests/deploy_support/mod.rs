//! What the deploy tests share: rendering `deploy/` with kubectl kustomize and the chart with
//! helm (skipped with a message when the tool is missing, unless `KUBECTL_REQUIRED=1` /
//! `HELM_REQUIRED=1`), the documents by kind, and the checks every rendering must pass.

#![allow(dead_code, clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use agent_glue::cli::kube::{AgentArgs, OperatorArgs};
use agent_glue::cli::query::QueryArgs;
use clap::Parser;
use serde_json::Value;

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The chart.
pub fn chart() -> PathBuf {
    root().join("deploy/helm/lbspeaker")
}

/// Whether `tool` runs; when it does not, fails if `required_var=1`, else says it skips.
fn have(tool: &str, version_args: &[&str], required_var: &str) -> bool {
    let found = Command::new(tool)
        .args(version_args)
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var(required_var).as_deref() != Ok("1"),
            "{tool} is required ({required_var}=1) but does not run"
        );
        eprintln!("{tool} is not on PATH: skipping ({required_var}=1 makes this fail)");
    }
    found
}

pub fn have_kubectl() -> bool {
    have("kubectl", &["version", "--client"], "KUBECTL_REQUIRED")
}

pub fn have_helm() -> bool {
    have("helm", &["version", "--short"], "HELM_REQUIRED")
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Parses a multi-document YAML stream.
pub fn documents(text: &str) -> Vec<Value> {
    tests::apiserver::documents(text).unwrap()
}

/// `kubectl kustomize deploy/<dir>`.
pub fn kustomize(dir: &str) -> Vec<Value> {
    let path = root().join("deploy").join(dir);
    documents(&run(Command::new("kubectl").arg("kustomize").arg(path)))
}

/// `helm template lbspeaker deploy/helm/lbspeaker --namespace NS --include-crds ARGS...`.
pub fn helm_template(namespace: &str, args: &[&str]) -> Vec<Value> {
    documents(&run(Command::new("helm")
        .args(["template", "lbspeaker"])
        .arg(chart())
        .args(["--namespace", namespace, "--include-crds"])
        .args(args)))
}

/// `kind/namespace/name` of a document.
pub fn id(d: &Value) -> String {
    format!(
        "{}/{}/{}",
        d["kind"].as_str().unwrap_or(""),
        d["metadata"]["namespace"].as_str().unwrap_or(""),
        d["metadata"]["name"].as_str().unwrap_or("")
    )
}

/// The documents of one kind.
pub fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

/// The one document of a kind and name.
pub fn one<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    let found: Vec<&Value> = docs
        .iter()
        .filter(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .collect();
    assert_eq!(found.len(), 1, "{kind} {name}: {} found", found.len());
    found[0]
}

/// Removes what a serialisation leaves out when empty, so that a document and its round trip
/// through the typed form compare equal exactly when no field was lost or changed.
fn normalise(v: &Value) -> Option<Value> {
    match v {
        Value::Null => None,
        Value::Object(m) => {
            let m: serde_json::Map<String, Value> = m
                .iter()
                .filter_map(|(k, v)| normalise(v).map(|v| (k.clone(), v)))
                .collect();
            (!m.is_empty()).then_some(Value::Object(m))
        }
        Value::Array(a) => Some(Value::Array(a.iter().filter_map(normalise).collect())),
        // JSON Schema bounds are floats in the typed form: 86400 and 86400.0 are one number.
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 9.0e15 => {
                Some(Value::from(f as i64))
            }
            _ => Some(v.clone()),
        },
        other => Some(other.clone()),
    }
}

/// Where two values first differ (a path and both sides), or `None`.
pub fn difference(a: &Value, b: &Value, path: &str) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            keys.into_iter().find_map(|k| match (x.get(k), y.get(k)) {
                (Some(p), Some(q)) => difference(p, q, &format!("{path}.{k}")),
                (p, q) => Some(format!("{path}.{k}: {p:?} / {q:?}")),
            })
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (p, q))| difference(p, q, &format!("{path}[{i}]"))),
        _ => (a != b).then(|| format!("{path}: {a} / {b}")),
    }
}

/// Asserts two documents are equal after normalising, naming the first difference.
pub fn assert_same(a: &Value, b: &Value, what: &str) {
    let (a, b) = (normalise(a), normalise(b));
    if a != b {
        let d = difference(
            a.as_ref().unwrap_or(&Value::Null),
            b.as_ref().unwrap_or(&Value::Null),
            "",
        );
        panic!("{what}: {}", d.unwrap_or_default());
    }
}

fn round_trip<T: serde::de::DeserializeOwned + serde::Serialize>(doc: &Value) {
    let typed: T = serde_json::from_value(doc.clone())
        .unwrap_or_else(|e| panic!("{} does not parse as its type: {e}", id(doc)));
    let back = serde_json::to_value(&typed).unwrap();
    assert_same(
        &back,
        doc,
        &format!(
            "{}: a field is unknown to the Kubernetes type or has the wrong type (typed / rendered)",
            id(doc)
        ),
    );
}

/// Every document parses into its k8s-openapi type and loses nothing on the way (a misspelt
/// or misplaced field would be dropped); no other kind is rendered.
pub fn assert_kubernetes_types(docs: &[Value]) {
    use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
    use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
    use k8s_openapi::api::policy::v1::PodDisruptionBudget;
    use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    assert!(!docs.is_empty());
    for d in docs {
        match (d["apiVersion"].as_str(), d["kind"].as_str()) {
            (Some("v1"), Some("Namespace")) => round_trip::<Namespace>(d),
            (Some("v1"), Some("ServiceAccount")) => round_trip::<ServiceAccount>(d),
            (Some("rbac.authorization.k8s.io/v1"), Some("ClusterRole")) => {
                round_trip::<ClusterRole>(d)
            }
            (Some("rbac.authorization.k8s.io/v1"), Some("ClusterRoleBinding")) => {
                round_trip::<ClusterRoleBinding>(d)
            }
            (Some("rbac.authorization.k8s.io/v1"), Some("Role")) => round_trip::<Role>(d),
            (Some("rbac.authorization.k8s.io/v1"), Some("RoleBinding")) => {
                round_trip::<RoleBinding>(d)
            }
            (Some("apps/v1"), Some("DaemonSet")) => round_trip::<DaemonSet>(d),
            (Some("apps/v1"), Some("Deployment")) => round_trip::<Deployment>(d),
            (Some("policy/v1"), Some("PodDisruptionBudget")) => {
                round_trip::<PodDisruptionBudget>(d)
            }
            (Some("apiextensions.k8s.io/v1"), Some("CustomResourceDefinition")) => {
                round_trip::<CustomResourceDefinition>(d)
            }
            _ => panic!("unexpected document {} ({})", id(d), d["apiVersion"]),
        }
    }
}

/// The generated CRDs, as JSON.
pub fn generated_crds() -> BTreeMap<String, Value> {
    crds::crdgen::all()
        .unwrap()
        .into_iter()
        .map(|(_, crd)| {
            let v = serde_json::to_value(&crd).unwrap();
            (id(&v), v)
        })
        .collect()
}

/// The rendered CRDs are exactly crdgen's, no more, no fewer.
pub fn assert_generated_crds(docs: &[Value]) {
    let rendered: BTreeMap<String, Value> = of_kind(docs, "CustomResourceDefinition")
        .into_iter()
        .map(|d| (id(d), d.clone()))
        .collect();
    let generated = generated_crds();
    assert_eq!(
        rendered.keys().collect::<Vec<_>>(),
        generated.keys().collect::<Vec<_>>(),
        "the rendered CRDs are not crdgen's (a new CRD must be listed in deploy/crds/Kustomization)"
    );
    for (k, g) in &generated {
        assert_same(
            &rendered[k],
            g,
            &format!("{k} differs from what crdgen generates (rendered / generated)"),
        );
    }
}

/// The RBAC documents of deploy/rbac, with `lbspeaker` and `kube-system` namespaces replaced.
pub fn rbac_of_deploy(namespace: &str, secrets_namespace: &str) -> BTreeMap<String, Value> {
    fn rename(v: &mut Value, ns: &str, secrets: &str) {
        match v {
            Value::Object(m) => {
                for (k, x) in m.iter_mut() {
                    if k == "namespace" && x == "lbspeaker" {
                        *x = Value::from(ns);
                    } else if k == "namespace" && x == "kube-system" {
                        *x = Value::from(secrets);
                    } else {
                        rename(x, ns, secrets);
                    }
                }
            }
            Value::Array(a) => a.iter_mut().for_each(|x| rename(x, ns, secrets)),
            _ => {}
        }
    }
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(root().join("deploy/rbac")).unwrap() {
        let path = e.unwrap().path();
        if path.file_name().unwrap() == "kustomization.yaml" {
            continue;
        }
        for mut d in documents(&std::fs::read_to_string(&path).unwrap()) {
            rename(&mut d, namespace, secrets_namespace);
            out.insert(id(&d), d);
        }
    }
    out
}

pub const RBAC_KINDS: [&str; 5] = [
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
];

/// The rendered RBAC is deploy/rbac's (with its namespaces as given), document for document.
pub fn assert_rbac_is_deploys(docs: &[Value], namespace: &str, secrets_namespace: &str) {
    let rendered: BTreeMap<String, Value> = docs
        .iter()
        .filter(|d| RBAC_KINDS.contains(&d["kind"].as_str().unwrap_or("")))
        .map(|d| (id(d), d.clone()))
        .collect();
    let expected = rbac_of_deploy(namespace, secrets_namespace);
    assert_eq!(
        rendered.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "the rendered RBAC objects are not deploy/rbac's"
    );
    for (k, e) in &expected {
        assert_same(
            &rendered[k],
            e,
            &format!("{k} differs from deploy/rbac (rendered / deploy)"),
        );
    }
}

/// The clap side of `lbspeaker`, as main.rs builds it, for the two roles.
#[derive(Debug, Parser)]
#[command(name = "lbspeaker")]
struct Cli {
    #[command(flatten)]
    _query: QueryArgs,
    #[command(subcommand)]
    role: Role,
}

#[derive(Debug, clap::Subcommand)]
enum Role {
    Agent(Box<AgentArgs>),
    Operator(Box<OperatorArgs>),
}

/// What one container of lbspeaker is given.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub command: Vec<String>,
    pub args: Vec<String>,
    /// Name and, for the downward API, the field path (`None`: a literal or another source).
    pub env: Vec<(String, Option<String>)>,
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().map(|s| s.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

/// The lbspeaker container of a workload (DaemonSet or Deployment).
pub fn container<'a>(workload: &'a Value, name: &str) -> &'a Value {
    workload["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no container {name} in {}", id(workload)))
}

pub fn invocation(container: &Value) -> Invocation {
    let env = container["env"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| {
                    (
                        e["name"].as_str().unwrap().to_string(),
                        e["valueFrom"]["fieldRef"]["fieldPath"]
                            .as_str()
                            .map(String::from),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    Invocation {
        command: strings(&container["command"]),
        args: strings(&container["args"]),
        env,
    }
}

/// `lbspeaker SUBCOMMAND --help` of the real binary.
pub fn help(subcommand: &str) -> String {
    run(Command::new(env!("CARGO_BIN_EXE_lbspeaker")).args([subcommand, "--help"]))
}

/// The flag each environment variable stands for, from `--help` (`--node <NAME> ...
/// [env: NODE_NAME=]`).
pub fn env_flags(help: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut flag: Option<String> = None;
    for line in help.lines() {
        let t = line.trim_start();
        if let Some(rest) = t.strip_prefix("--").or_else(|| {
            t.strip_prefix('-')
                .and_then(|r| r.split_once(", --").map(|(_, l)| l))
        }) {
            flag = rest.split([' ', '=']).next().map(|f| format!("--{f}"));
        }
        if let Some(i) = t.find("[env: ") {
            let var = t[i + 6..].split('=').next().unwrap().to_string();
            out.insert(var, flag.clone().unwrap());
        }
    }
    out
}

/// A value the downward API would give for a field path.
fn downward_value(path: &str) -> &'static str {
    match path {
        "spec.nodeName" => "node1",
        "metadata.namespace" => "lbspeaker",
        "metadata.name" => "lbspeaker-operator-5d9c7-abcde",
        other => panic!("unexpected downward API field {other}"),
    }
}

/// The container runs `/usr/bin/lbspeaker ROLE ...` with only flags and environment variables
/// that `lbspeaker ROLE` knows, with valid values and nothing required missing, as both the
/// real binary (its `--help` after the arguments) and the Args types parse them.
pub fn assert_invocation(inv: &Invocation, role: &str) {
    assert_eq!(inv.command, ["/usr/bin/lbspeaker"], "the image's binary");
    assert_eq!(inv.args.first().map(String::as_str), Some(role));
    let help = help(role);
    let env_flags = env_flags(&help);
    let mut argv = vec!["lbspeaker".to_string()];
    argv.extend(inv.args.iter().cloned());
    for (name, path) in &inv.env {
        let flag = env_flags.get(name).unwrap_or_else(|| {
            panic!("{name} is not an environment variable `lbspeaker {role}` reads ({env_flags:?})")
        });
        let path = path
            .as_deref()
            .unwrap_or_else(|| panic!("{name}: expected from the downward API"));
        argv.push(format!("{flag}={}", downward_value(path)));
    }
    // The Args types, with the variables as the flags they stand for.
    let cli = Cli::try_parse_from(&argv).unwrap_or_else(|e| panic!("{argv:?}:\n{e}"));
    match (&cli.role, role) {
        (Role::Agent(_), "agent") | (Role::Operator(_), "operator") => {}
        _ => panic!("{argv:?} is not {role}"),
    }
    // The real binary: every argument known and valid (help comes after them).
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lbspeaker"));
    cmd.args(&inv.args).arg("--help").env_clear();
    for (name, path) in &inv.env {
        cmd.env(name, downward_value(path.as_deref().unwrap()));
    }
    run(&mut cmd);
    for a in &inv.args[1..] {
        let flag = a.split('=').next().unwrap();
        assert!(
            help.contains(&format!("{flag} ")) || help.contains(&format!("{flag}\n")),
            "{flag} is not in `lbspeaker {role} --help`"
        );
    }
}

/// The port of `--metrics-addr=HOST:PORT`.
pub fn metrics_port(inv: &Invocation) -> u64 {
    let addr = inv
        .args
        .iter()
        .find_map(|a| a.strip_prefix("--metrics-addr="))
        .expect("--metrics-addr, for the probes");
    addr.rsplit(':').next().unwrap().parse().unwrap()
}

/// The capabilities a container adds, and whether it drops every other one.
pub fn capabilities(container: &Value) -> (BTreeSet<String>, bool) {
    let caps = &container["securityContext"]["capabilities"];
    let add = strings(&caps["add"]).into_iter().collect();
    (add, strings(&caps["drop"]) == ["ALL"])
}

/// The image the workloads run.
pub fn images(docs: &[Value]) -> BTreeSet<String> {
    docs.iter()
        .filter(|d| d["kind"] == "DaemonSet" || d["kind"] == "Deployment")
        .flat_map(|d| {
            d["spec"]["template"]["spec"]["containers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["image"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The parts of a workload that must not differ between kustomize and the chart: its spec
/// without the pod template's metadata (the chart adds release labels there).
pub fn workload_spec(workload: &Value) -> Value {
    let mut spec = workload["spec"].clone();
    if let Some(t) = spec.get_mut("template").and_then(Value::as_object_mut) {
        t.remove("metadata");
    }
    spec
}
