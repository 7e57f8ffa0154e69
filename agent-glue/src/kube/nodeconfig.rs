//! The operator's CiliumBGPNodeConfigs: for every Node a ClusterConfig selects, the spec the
//! node's agent will run (the same pure reconcile the agent uses, so both agree), written by
//! server-side apply with the operator's field manager and owned by the Node (so the garbage
//! collector removes it with the Node). The agent writes the status ([`super::sink`]); the
//! BGP conditions loop deletes the configs of nodes nothing selects any more.
//!
//! Only what differs from the stored spec is written, and a write is remembered until the
//! source shows it, so a big cluster sees one write per node per change.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crds::bgp::CiliumBGPNodeConfigSpec;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde_json::json;
use tokio::sync::watch;

use super::OPERATOR_MANAGER;
use crate::bgp::{Input, LocalFacts, reconcile};
use crate::source::{ObjectKey, Snapshot};

/// The spec every selected node should have, by node name. Computed on a copy of the snapshot
/// without services, EndpointSlices or advertisements, which the spec does not depend on, so
/// that a round over thousands of nodes costs no route computation.
pub fn desired_specs(
    snapshot: &Snapshot,
    secrets_namespace: &str,
) -> BTreeMap<String, CiliumBGPNodeConfigSpec> {
    let lean = Snapshot {
        bgp_cluster_configs: snapshot.bgp_cluster_configs.clone(),
        bgp_peer_configs: snapshot.bgp_peer_configs.clone(),
        bgp_node_config_overrides: snapshot.bgp_node_config_overrides.clone(),
        nodes: snapshot.nodes.clone(),
        secrets: snapshot.secrets.clone(),
        synced: snapshot.synced,
        ..Snapshot::default()
    };
    let facts = LocalFacts::default();
    lean.nodes
        .keys()
        .filter_map(|k| {
            let d = reconcile(
                &lean,
                Input {
                    node: &k.name,
                    facts: &facts,
                    secrets_namespace,
                },
            );
            d.spec.map(|s| (k.name.clone(), s))
        })
        .collect()
}

/// The body of the apply: identity, owner, spec; never a status.
pub fn apply_body(
    node: &str,
    node_uid: Option<&str>,
    spec: &CiliumBGPNodeConfigSpec,
) -> serde_json::Value {
    let mut meta = json!({"name": node});
    if let Some(uid) = node_uid {
        meta["ownerReferences"] = json!([{
            "apiVersion": "v1", "kind": "Node", "name": node, "uid": uid,
        }]);
    }
    json!({
        "apiVersion": "cilium.io/v2",
        "kind": "CiliumBGPNodeConfig",
        "metadata": meta,
        "spec": spec,
    })
}

/// Writes the specs that differ. Returns the errors of this round.
#[derive(Debug, Default)]
pub struct NodeConfigWriter {
    pending: BTreeMap<String, CiliumBGPNodeConfigSpec>,
}

impl NodeConfigWriter {
    /// Nothing pending.
    pub fn new() -> Self {
        Self::default()
    }

    /// One round: write every spec the snapshot does not show yet.
    pub async fn round(
        &mut self,
        snapshot: &Snapshot,
        client: &kube::Client,
        secrets_namespace: &str,
    ) -> Vec<String> {
        let want = desired_specs(snapshot, secrets_namespace);
        let shown = |n: &str| {
            snapshot
                .bgp_node_configs
                .get(&ObjectKey::cluster(n))
                .map(|c| c.spec.clone())
        };
        self.pending
            .retain(|n, spec| want.get(n) == Some(spec) && shown(n).as_ref() != Some(spec));
        let api: Api<DynamicObject> = Api::all_with(
            client.clone(),
            &super::convert::api_resource(crate::source::Kind::BgpNodeConfig),
        );
        let mut errors = Vec::new();
        for (node, spec) in want {
            if shown(&node).as_ref() == Some(&spec) || self.pending.get(&node) == Some(&spec) {
                continue;
            }
            let uid = snapshot
                .nodes
                .get(&ObjectKey::cluster(&node))
                .and_then(|n| n.metadata.uid.clone());
            let body = apply_body(&node, uid.as_deref(), &spec);
            let pp = PatchParams::apply(OPERATOR_MANAGER).force();
            match api.patch(&node, &pp, &Patch::Apply(&body)).await {
                Ok(_) => {
                    tracing::info!(node = %node, "CiliumBGPNodeConfig spec written");
                    self.pending.insert(node, spec);
                }
                Err(e) => errors.push(format!("CiliumBGPNodeConfig {node}: {e}")),
            }
        }
        errors
    }
}

/// Runs the writer while this replica leads: a round on every snapshot, again every `retry`
/// while writes fail.
pub async fn run(
    mut snapshots: watch::Receiver<Arc<Snapshot>>,
    mut leading: watch::Receiver<bool>,
    client: kube::Client,
    secrets_namespace: String,
    retry: Duration,
) {
    let mut w = NodeConfigWriter::new();
    let mut last: Vec<String> = Vec::new();
    loop {
        let lead = *leading.borrow_and_update();
        let snap = snapshots.borrow_and_update().clone();
        let mut failing = false;
        if lead && snap.synced {
            let errors = w.round(&snap, &client, &secrets_namespace).await;
            if errors != last {
                for e in &errors {
                    tracing::error!(error = %e, "writing a CiliumBGPNodeConfig failed; retrying");
                }
                last = errors;
            }
            failing = !last.is_empty();
        }
        tokio::select! {
            r = snapshots.changed() => if r.is_err() { return },
            r = leading.changed() => if r.is_err() { return },
            _ = tokio::time::sleep(retry), if failing => {}
        }
    }
}
