//! The L2 agent's loop: on every snapshot and every change of the node's interfaces, evaluate
//! the policies ([`super::policy::evaluate`]) and hand the whole answer to
//! `l2announce::Runner::set_desired` (level-triggered: the runner elects, answers and
//! announces); at the end, shut the runner down, which stops answering and releases every
//! lease held so another node takes over at its next look.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime};

use l2announce::{AnnouncementState, CountersSnapshot, DesiredAnnouncement, LeaseBackend, Runner};
use tokio::sync::watch;

use super::policy::{Interface, evaluate};
use crate::api::LeaseView;
use crate::source::Snapshot;

/// What the loop publishes after each evaluation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct L2View {
    /// The last evaluation handed to the runner.
    pub desired: Vec<DesiredAnnouncement>,
    /// Policies out of force and similar problems, one line each.
    pub problems: Vec<String>,
    /// The first evaluation of a complete snapshot has been handed to the runner.
    pub ready: bool,
}

/// What the API reads from the runner, whatever its lease backend.
pub(crate) trait RunnerView: Send + Sync {
    fn state(&self) -> Vec<AnnouncementState>;
    fn counters(&self) -> CountersSnapshot;
}

impl<B: LeaseBackend> RunnerView for Runner<B> {
    fn state(&self) -> Vec<AnnouncementState> {
        Runner::state(self)
    }
    fn counters(&self) -> CountersSnapshot {
        Runner::counters(self)
    }
}

/// The API's handle on the running L2 agent.
#[derive(Clone)]
pub struct L2Handle {
    pub(crate) runner: Option<Weak<dyn RunnerView>>,
    /// The latest view.
    pub view: watch::Receiver<L2View>,
    /// Why the agent is not running, if it could not start.
    pub failed: Option<String>,
    /// Problems of the operator role's policy status writes.
    pub operator_problems: watch::Receiver<Vec<String>>,
}

impl std::fmt::Debug for L2Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("L2Handle")
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

/// One runner row as the API shows it (`since_seconds` from `now`).
pub fn lease_view(s: &AnnouncementState, now: SystemTime) -> LeaseView {
    LeaseView {
        address: s.address.to_string(),
        services: s.services.iter().map(ToString::to_string).collect(),
        lease: s.lease.to_string(),
        holder: s.holder.clone(),
        interfaces: s.interfaces.clone(),
        since_seconds: s
            .since
            .map(|t| now.duration_since(t).unwrap_or_default().as_secs()),
        announcing: s.announcing,
        eligible: s.eligible,
    }
}

impl L2Handle {
    /// A handle for an agent that could not start.
    pub fn failed(why: String, operator_problems: watch::Receiver<Vec<String>>) -> L2Handle {
        let (_, view) = watch::channel(L2View::default());
        L2Handle {
            runner: None,
            view,
            failed: Some(why),
            operator_problems,
        }
    }

    fn runner(&self) -> Option<Arc<dyn RunnerView>> {
        self.runner.as_ref().and_then(Weak::upgrade)
    }

    /// Every announced address, its lease and holder (`lbspeaker l2 leases`); `Err` with the
    /// reason when the agent is not running.
    pub fn leases(&self) -> Result<Vec<LeaseView>, String> {
        match self.runner() {
            Some(r) => {
                let now = SystemTime::now();
                Ok(r.state().iter().map(|s| lease_view(s, now)).collect())
            }
            None => Err(self
                .failed
                .clone()
                .unwrap_or_else(|| "L2 announcements have stopped".into())),
        }
    }

    /// The runner's counters, while it runs.
    pub fn counters(&self) -> Option<CountersSnapshot> {
        self.runner().map(|r| r.counters())
    }

    /// Problems to show in `lbspeaker status`.
    pub fn problems(&self) -> Vec<String> {
        let mut v = self.view.borrow().problems.clone();
        v.extend(self.operator_problems.borrow().iter().cloned());
        if let Some(f) = &self.failed {
            v.push(f.clone());
        }
        v
    }
}

/// The interfaces as policies see them, sorted.
fn interfaces(links: &l2announce::responder::link::Links) -> Vec<Interface> {
    let mut v: Vec<Interface> = links.values().map(Interface::from).collect();
    v.sort();
    v
}

/// Runs until `stop` becomes true (or the snapshots end), then shuts the runner down, waiting
/// up to `shutdown_timeout` for the releases.
pub async fn run<B: LeaseBackend>(
    runner: Arc<Runner<B>>,
    mut snapshots: watch::Receiver<Arc<Snapshot>>,
    node: String,
    view: watch::Sender<L2View>,
    mut stop: watch::Receiver<bool>,
    shutdown_timeout: Duration,
) {
    let mut links = runner.subscribe_links();
    let mut last_ifaces: Option<Vec<Interface>> = None;
    let mut last_revision: Option<u64> = None;
    let mut last: Option<Vec<DesiredAnnouncement>> = None;
    loop {
        if *stop.borrow() {
            break;
        }
        let snap = snapshots.borrow_and_update().clone();
        let ifaces = interfaces(&links.borrow_and_update());
        let changed = last_revision != Some(snap.revision) || last_ifaces.as_ref() != Some(&ifaces);
        if snap.synced && changed {
            let span = tracing::info_span!("l2-reconcile", node = %node, revision = snap.revision);
            let _g = span.enter();
            let eval = evaluate(&snap, &node, &ifaces);
            if last.as_ref() != Some(&eval.announcements) {
                let eligible = eval.announcements.iter().filter(|a| a.eligible).count();
                tracing::info!(
                    addresses = eval.announcements.len(),
                    eligible,
                    "L2 announcements changed"
                );
                runner.set_desired(eval.announcements.clone());
                last = Some(eval.announcements.clone());
            }
            let previous = view.borrow().problems.clone();
            for p in eval.problems.iter().filter(|p| !previous.contains(p)) {
                tracing::warn!(problem = %p, "L2 announcement problem");
            }
            view.send_if_modified(|v| {
                let new = L2View {
                    desired: eval.announcements,
                    problems: eval.problems,
                    ready: true,
                };
                let changed = *v != new;
                *v = new;
                changed
            });
            last_revision = Some(snap.revision);
            last_ifaces = Some(ifaces);
        }
        tokio::select! {
            r = snapshots.changed() => if r.is_err() { break },
            r = links.changed() => if r.is_err() { break },
            _ = stop.changed() => {}
        }
    }
    drop(links);
    // The API may hold the runner for the length of a read; then it is ours alone.
    let mut runner = runner;
    let deadline = Instant::now() + Duration::from_secs(1);
    let owned = loop {
        match Arc::try_unwrap(runner) {
            Ok(r) => break Some(r),
            Err(shared) if Instant::now() < deadline => {
                runner = shared;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(_) => break None,
        }
    };
    match owned {
        Some(r) => r.shutdown(shutdown_timeout).await,
        None => tracing::warn!(
            "L2 runner still in use at shutdown; its leases are released in the background"
        ),
    }
    tracing::info!("L2 announcements stopped");
}
