//! Operator leadership through a Lease: [`LeaseLeader`] runs `l2announce`'s election (client-go
//! `leaderelection` semantics) over [`KubeLeaseBackend`] for one Lease, `lbspeaker-operator`,
//! and says through [`Leadership`] whether this replica leads.
//!
//! A replica leads from a successful acquire or renew until it renews again, and stops
//! leading a renew deadline after its last successful renewal even if it cannot reach the API
//! server to find out whether someone else took over (which nobody can before the lease
//! duration has passed). A replica that stops cleanly releases the Lease, so the next one takes
//! over at its next look (a retry period) instead of a lease duration later.

use std::time::{Instant, SystemTime};

use k8s_openapi::api::core::v1::ObjectReference;
use l2announce::election::{Decision, Elector, acquired_record};
use l2announce::{LeaseBackend, LeaseName, Timers};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use super::events::{EventPublisher, EventSpec, EventType};
use super::lease::KubeLeaseBackend;
use crate::source::leader::Leadership;

/// A running election for one Lease.
#[derive(Debug)]
pub struct LeaseLeader {
    rx: watch::Receiver<bool>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Leadership for LeaseLeader {
    fn subscribe(&self) -> watch::Receiver<bool> {
        self.rx.clone()
    }
}

impl Drop for LeaseLeader {
    fn drop(&mut self) {
        if let Some(t) = &self.task {
            t.abort();
        }
    }
}

impl LeaseLeader {
    /// Starts contending for `lease` as `identity` (the pod's name).
    pub fn spawn(
        backend: KubeLeaseBackend,
        lease: LeaseName,
        identity: String,
        timers: Timers,
        events: Option<EventPublisher>,
    ) -> LeaseLeader {
        let (tx, rx) = watch::channel(false);
        let (stop_tx, stop_rx) = oneshot::channel();
        let task = tokio::spawn(run(backend, lease, identity, timers, tx, stop_rx, events));
        LeaseLeader {
            rx,
            stop: Some(stop_tx),
            task: Some(task),
        }
    }

    /// Stops contending and, if leading, releases the Lease (holder cleared) so another
    /// replica takes over at once.
    pub async fn release(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

async fn run(
    backend: KubeLeaseBackend,
    name: LeaseName,
    me: String,
    timers: Timers,
    tx: watch::Sender<bool>,
    mut stop: oneshot::Receiver<()>,
    events: Option<EventPublisher>,
) {
    let mut el = Elector::new(&me, timers, Instant::now());
    let mut last_error: Option<String> = None;
    loop {
        let now = Instant::now();
        match backend.get(&name).await {
            Ok(l) => el.observe(now, l.as_ref()),
            Err(e) => {
                let msg = e.to_string();
                if last_error.as_ref() != Some(&msg) {
                    tracing::warn!(lease = %name, error = %msg, "reading the operator Lease failed");
                    last_error = Some(msg);
                }
            }
        }
        let decision = el.decide(now, true, false);
        match decision {
            Decision::Acquire | Decision::Renew => {
                let started = Instant::now();
                let prev = el.lease().cloned();
                let record = acquired_record(
                    SystemTime::now(),
                    prev.as_ref().map(|l| &l.record),
                    &me,
                    &timers,
                );
                let r = match &prev {
                    None => backend.create(&name, &record).await,
                    Some(l) => backend.update(&name, &record, &l.resource_version).await,
                };
                match r {
                    Ok(l) => {
                        el.written(started, &l);
                        last_error = None;
                        if decision == Decision::Acquire && !*tx.borrow() {
                            tracing::info!(lease = %name, identity = %me, "became the operator leader");
                            if let Some(ev) = &events {
                                ev.publish(EventSpec {
                                    regarding: ObjectReference {
                                        api_version: Some("coordination.k8s.io/v1".into()),
                                        kind: Some("Lease".into()),
                                        name: Some(name.to_string()),
                                        namespace: Some(backend.namespace().to_owned()),
                                        ..ObjectReference::default()
                                    },
                                    type_: EventType::Normal,
                                    reason: "LeaderElection".into(),
                                    action: "Elect".into(),
                                    note: format!("{me} became leader"),
                                });
                            }
                        }
                    }
                    Err(e) => {
                        el.write_failed(Instant::now());
                        let msg = e.to_string();
                        if !e.is_conflict() && last_error.as_ref() != Some(&msg) {
                            tracing::warn!(lease = %name, error = %msg, "writing the operator Lease failed");
                            last_error = Some(msg);
                        }
                    }
                }
            }
            Decision::StepDown | Decision::Release => el.stop_leading(),
            Decision::Wait { .. } => {}
        }
        let leading = el.is_leading(Instant::now());
        if *tx.borrow() != leading {
            if !leading {
                tracing::warn!(lease = %name, identity = %me, "no longer the operator leader");
            }
            tx.send_replace(leading);
        }
        let until = match el.decide(Instant::now(), true, false) {
            Decision::Wait { until } => until,
            _ => Instant::now() + timers.retry_period(),
        };
        tokio::select! {
            _ = tokio::time::sleep_until(until.into()) => {}
            _ = &mut stop => break,
        }
    }
    // Stopping: hand the Lease over if we hold it.
    if el.is_leading(Instant::now())
        && let Some(l) = el.lease().cloned()
    {
        tx.send_replace(false);
        match backend.release(&l, SystemTime::now()).await {
            Ok(_) => tracing::info!(lease = %name, "operator Lease released"),
            Err(e) => {
                tracing::warn!(lease = %name, error = %e, "releasing the operator Lease failed")
            }
        }
    }
    tx.send_replace(false);
}
