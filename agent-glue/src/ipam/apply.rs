//! The thin step after [`super::reconcile`]: write what differs from what the source shows,
//! remember it until the source shows it, retry what failed.

use std::sync::Arc;
use std::time::Duration;

use crds::conditions;
use k8s_openapi::api::core::v1::ServiceStatus;
use k8s_openapi::jiff::Timestamp;
use tokio::sync::watch;

use super::reconcile::{Desired, Pending, reconcile};
use crate::source::{Kind, ObjectKey, Snapshot, StatusError, StatusSink, StatusUpdate};

/// Whether two Service statuses say the same, ignoring condition transition times.
fn same_service_status(a: Option<&ServiceStatus>, b: &ServiceStatus) -> bool {
    let empty = ServiceStatus::default();
    let a = a.unwrap_or(&empty);
    let ingress = |s: &ServiceStatus| {
        s.load_balancer
            .as_ref()
            .and_then(|l| l.ingress.clone())
            .unwrap_or_default()
    };
    ingress(a) == ingress(b)
        && conditions::same_ignoring_time(
            a.conditions.as_deref().unwrap_or_default(),
            b.conditions.as_deref().unwrap_or_default(),
        )
}

/// What one round did.
#[derive(Debug, Default)]
pub struct Round {
    /// What was wanted.
    pub desired: Desired,
    /// Updates written.
    pub written: usize,
    /// Updates that failed, with the object and the error.
    pub failed: Vec<(String, StatusError)>,
}

/// LB-IPAM's state between rounds: only what was written and not yet seen.
#[derive(Debug, Default)]
pub struct IpamController {
    pending: Pending,
}

impl IpamController {
    /// A controller with nothing pending.
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes still unconfirmed (failed, or not yet visible in the source).
    pub fn pending(&self) -> &Pending {
        &self.pending
    }

    /// One round: forget pending writes the snapshot now shows, reconcile, write every
    /// difference, delete status records of objects that are gone.
    pub async fn round(
        &mut self,
        snapshot: &Snapshot,
        sink: &dyn StatusSink,
        now: Timestamp,
    ) -> Round {
        self.pending.services.retain(|k, want| {
            snapshot
                .services
                .get(k)
                .is_some_and(|s| !same_service_status(s.status.as_ref(), want))
        });
        self.pending.pools.retain(|k, want| {
            snapshot
                .lb_ip_pools
                .get(k)
                .is_some_and(|p| !conditions::same_ignoring_time(crds::lbpool::conditions(p), want))
        });
        let desired = reconcile(snapshot, &self.pending, now);
        let mut round = Round::default();
        // Every write of the round in one batch (the directory syncs the files once).
        let mut batch: Vec<(String, StatusUpdate)> = Vec::new();
        for d in &desired.services {
            let shown = snapshot
                .services
                .get(&d.key)
                .and_then(|s| s.status.as_ref());
            if same_service_status(shown, &d.status) {
                continue;
            }
            // Kept whatever the outcome: until the source shows it, this is the truth.
            self.pending
                .services
                .insert(d.key.clone(), d.status.clone());
            batch.push((
                format!("Service {}", d.key),
                StatusUpdate::Service {
                    meta: d.meta.clone(),
                    status: Some(d.status.clone()),
                },
            ));
        }
        for d in &desired.pools {
            let shown = snapshot
                .lb_ip_pools
                .get(&d.key)
                .map(|p| crds::lbpool::conditions(p))
                .unwrap_or_default();
            if conditions::same_ignoring_time(shown, &d.conditions) {
                continue;
            }
            self.pending
                .pools
                .insert(d.key.clone(), d.conditions.clone());
            batch.push((
                format!("CiliumLoadBalancerIPPool {}", d.key),
                StatusUpdate::Conditions {
                    kind: Kind::LbIpPool,
                    meta: d.meta.clone(),
                    conditions: Some(d.conditions.clone()),
                },
            ));
        }
        for (kind, key) in &snapshot.orphan_statuses {
            let update = match kind {
                Kind::Service => StatusUpdate::Service {
                    meta: meta_of(key),
                    status: None,
                },
                Kind::LbIpPool => StatusUpdate::Conditions {
                    kind: *kind,
                    meta: meta_of(key),
                    conditions: None,
                },
                _ => continue,
            };
            batch.push((format!("{kind} {key}"), update));
        }
        let (labels, updates): (Vec<String>, Vec<StatusUpdate>) = batch.into_iter().unzip();
        let results = sink.write_all(&updates).await;
        for (label, r) in labels.into_iter().zip(results) {
            match r {
                Ok(()) => round.written += 1,
                Err(e) => round.failed.push((label, e)),
            }
        }
        round.desired = desired;
        round
    }
}

fn meta_of(key: &ObjectKey) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
    k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
        name: Some(key.name.clone()),
        namespace: key.namespace.clone(),
        ..Default::default()
    }
}

/// Runs LB-IPAM for as long as the task lives: a round whenever the snapshot changes while
/// this process leads (and the source has synced), again every `retry` while writes fail.
/// The latest round's views go to `views` (for the local API).
pub async fn run(
    mut snapshots: watch::Receiver<Arc<Snapshot>>,
    mut leader: watch::Receiver<bool>,
    sink: Arc<dyn StatusSink>,
    retry: Duration,
    views: Option<watch::Sender<Desired>>,
) {
    let mut ctl = IpamController::new();
    let mut last_errors: Vec<String> = Vec::new();
    loop {
        let leading = *leader.borrow_and_update();
        let snap = snapshots.borrow_and_update().clone();
        let mut failing = false;
        if leading && snap.synced {
            let span = tracing::info_span!("lbipam", revision = snap.revision);
            let _e = span.enter();
            let round = ctl.round(&snap, sink.as_ref(), Timestamp::now()).await;
            let errors: Vec<String> = round
                .failed
                .iter()
                .map(|(o, e)| format!("{o}: {e}"))
                .collect();
            if errors != last_errors {
                for e in &errors {
                    tracing::error!(error = %e, "writing LB-IPAM status failed; kept in memory, retrying");
                }
                last_errors = errors;
            }
            failing = !round.failed.is_empty();
            if round.written > 0 {
                tracing::info!(written = round.written, "LB-IPAM status written");
            }
            if let Some(v) = &views {
                v.send_replace(round.desired);
            }
        }
        tokio::select! {
            r = snapshots.changed() => if r.is_err() { return },
            r = leader.changed() => if r.is_err() { return },
            _ = tokio::time::sleep(retry), if failing => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::memory::MemoryStore;
    use crds::conditions::IPAM_REQUEST_SATISFIED;

    const SEED: &str = "apiVersion: cilium.io/v2\nkind: CiliumLoadBalancerIPPool\nmetadata: {name: cilium-pool}\n\
        spec:\n  allowFirstLastIPs: \"No\"\n  blocks: [{cidr: 172.16.1.0/24}]\n---\n\
        apiVersion: v1\nkind: Service\nmetadata: {name: webpod, namespace: default, labels: {app: webpod}}\n\
        spec:\n  selector: {app: webpod}\n  ports: [{protocol: TCP, port: 80, targetPort: 80}]\n  type: LoadBalancer\n";

    fn key(name: &str) -> ObjectKey {
        ObjectKey::namespaced("default", name)
    }

    fn ips(snap: &Snapshot, name: &str) -> Vec<String> {
        super::super::translate::ingress_ips(snap.services[&key(name)].status.as_ref())
            .iter()
            .map(|a| a.to_string())
            .collect()
    }

    fn condition(snap: &Snapshot, name: &str) -> (String, String, String) {
        let st = snap.services[&key(name)].status.as_ref().unwrap();
        let c =
            conditions::find(st.conditions.as_deref().unwrap(), IPAM_REQUEST_SATISFIED).unwrap();
        (c.status.clone(), c.reason.clone(), c.message.clone())
    }

    fn now() -> Timestamp {
        Timestamp::from_second(1_800_000_000).unwrap()
    }

    #[tokio::test]
    async fn webpod_gets_172_16_1_1_and_a_second_round_writes_nothing() {
        let store = MemoryStore::new();
        assert!(store.apply_yaml(SEED).is_empty());
        let mut ctl = IpamController::new();
        let r = ctl.round(&store.snapshot(), &store, now()).await;
        assert!(r.failed.is_empty());
        assert_eq!(r.written, 2, "the service and the pool");
        let snap = store.snapshot();
        assert_eq!(ips(&snap, "webpod"), ["172.16.1.1"]);
        assert_eq!(
            condition(&snap, "webpod"),
            (
                "True".into(),
                "satisfied".into(),
                "172.16.1.1 from cilium-pool".into()
            )
        );
        let pool = &snap.lb_ip_pools[&ObjectKey::cluster("cilium-pool")];
        let c = crds::lbpool::conditions(pool);
        let msg = |t: &str| conditions::find(c, t).unwrap().message.clone();
        assert_eq!(msg(conditions::IPS_TOTAL), "254");
        assert_eq!(msg(conditions::IPS_AVAILABLE), "253");
        assert_eq!(msg(conditions::IPS_USED), "1");
        assert_eq!(
            conditions::find(c, conditions::POOL_CONFLICT)
                .unwrap()
                .status,
            "False"
        );
        assert_eq!(r.desired.pool_views[0].ips_available, "253");
        assert_eq!(r.desired.service_views[0].addresses, ["172.16.1.1"]);
        let again = ctl.round(&store.snapshot(), &store, now()).await;
        assert_eq!(again.written, 0);
        assert!(ctl.pending().services.is_empty() && ctl.pending().pools.is_empty());
    }

    #[tokio::test]
    async fn a_failed_write_keeps_the_allocation_in_memory_until_it_succeeds() {
        let store = MemoryStore::new();
        store.apply_yaml(SEED);
        store.fail_writes(Some("No space left on device"));
        let mut ctl = IpamController::new();
        let r = ctl.round(&store.snapshot(), &store, now()).await;
        assert_eq!(r.failed.len(), 2);
        assert_eq!(
            r.failed[0].0.clone() + ": " + &r.failed[0].1.to_string(),
            "Service default/webpod: memory: No space left on device"
        );
        // Meanwhile an older service (served first by age) asks for an address: it must not
        // get the one webpod was given but could not be written.
        store.apply_yaml(
            "apiVersion: v1\nkind: Service\nmetadata: {name: older, creationTimestamp: \"2020-01-01T00:00:00Z\"}\n\
             spec: {type: LoadBalancer, ports: [{port: 443}]}\n",
        );
        let r = ctl.round(&store.snapshot(), &store, now()).await;
        assert_eq!(r.failed.len(), 3);
        store.fail_writes(None);
        let r = ctl.round(&store.snapshot(), &store, now()).await;
        assert!(r.failed.is_empty());
        let snap = store.snapshot();
        assert_eq!(ips(&snap, "webpod"), ["172.16.1.1"]);
        assert_eq!(ips(&snap, "older"), ["172.16.1.2"]);
    }

    #[tokio::test]
    async fn a_service_leaving_load_balancer_loses_its_address_and_condition() {
        let store = MemoryStore::new();
        store.apply_yaml(SEED);
        let mut ctl = IpamController::new();
        ctl.round(&store.snapshot(), &store, now()).await;
        store.apply_yaml(&SEED.replace("type: LoadBalancer", "type: ClusterIP"));
        let r = ctl.round(&store.snapshot(), &store, now()).await;
        assert_eq!(r.written, 2, "the service cleared and the pool's counts");
        let snap = store.snapshot();
        let st = snap.services[&key("webpod")].status.as_ref().unwrap();
        assert!(st.conditions.is_none());
        assert!(st.load_balancer.as_ref().unwrap().ingress.is_none());
        let pool = &snap.lb_ip_pools[&ObjectKey::cluster("cilium-pool")];
        let used = conditions::find(crds::lbpool::conditions(pool), conditions::IPS_USED).unwrap();
        assert_eq!(used.message, "0");
        assert_eq!(ctl.round(&store.snapshot(), &store, now()).await.written, 0);
    }

    #[tokio::test]
    async fn services_of_other_classes_are_left_alone() {
        let store = MemoryStore::new();
        store.apply_yaml(SEED);
        store.apply_yaml(
            "apiVersion: v1\nkind: Service\nmetadata: {name: metal}\n\
             spec: {type: LoadBalancer, loadBalancerClass: metallb.io/metallb}\n",
        );
        let mut ctl = IpamController::new();
        ctl.round(&store.snapshot(), &store, now()).await;
        assert!(store.snapshot().services[&key("metal")].status.is_none());
    }

    #[tokio::test]
    async fn unchanged_conditions_keep_their_transition_time() {
        let store = MemoryStore::new();
        store.apply_yaml(SEED);
        let mut ctl = IpamController::new();
        ctl.round(&store.snapshot(), &store, now()).await;
        // Something else makes the pool's counts change; webpod's condition stays as it was.
        store.apply_yaml(
            "apiVersion: v1\nkind: Service\nmetadata: {name: zz}\nspec: {type: LoadBalancer}\n",
        );
        let later = Timestamp::from_second(1_900_000_000).unwrap();
        ctl.round(&store.snapshot(), &store, later).await;
        let snap = store.snapshot();
        let st = snap.services[&key("webpod")].status.as_ref().unwrap();
        let c =
            conditions::find(st.conditions.as_deref().unwrap(), IPAM_REQUEST_SATISFIED).unwrap();
        assert_eq!(c.last_transition_time.0, now());
    }

    #[tokio::test]
    async fn a_pool_with_a_bad_selector_reports_it_as_a_condition() {
        let store = MemoryStore::new();
        store.apply_yaml(
            "apiVersion: cilium.io/v2\nkind: CiliumLoadBalancerIPPool\nmetadata: {name: p}\n\
             spec:\n  blocks: [{cidr: 10.0.0.0/24}]\n  serviceSelector: {matchExpressions: [{key: a, operator: Exists, values: [x]}]}\n",
        );
        let mut ctl = IpamController::new();
        ctl.round(&store.snapshot(), &store, now()).await;
        let snap = store.snapshot();
        let c = crds::lbpool::conditions(&snap.lb_ip_pools[&ObjectKey::cluster("p")]);
        let bad = conditions::find(c, conditions::BAD_SERVICE_SELECTOR).unwrap();
        assert_eq!(bad.status, "True");
        assert_eq!(
            bad.message,
            "spec.serviceSelector.matchExpressions[0].values: must be empty for operator Exists"
        );
    }

    #[tokio::test]
    async fn the_run_loop_allocates_only_while_leading() {
        let store = MemoryStore::new();
        store.apply_yaml(SEED);
        let (lead_tx, lead_rx) = watch::channel(false);
        let sink: Arc<dyn StatusSink> = Arc::new(store.clone());
        let task = tokio::spawn(run(
            crate::source::Source::subscribe(&store),
            lead_rx,
            sink,
            Duration::from_millis(20),
            None,
        ));
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(store.writes(), 0, "not the leader");
        lead_tx.send(true).unwrap();
        let mut rx = crate::source::Source::subscribe(&store);
        tokio::time::timeout(
            Duration::from_secs(5),
            rx.wait_for(|s| {
                !super::super::translate::ingress_ips(s.services[&key("webpod")].status.as_ref())
                    .is_empty()
            }),
        )
        .await
        .unwrap()
        .unwrap();
        task.abort();
    }
}
