//! The BGP agent's loop: reconcile and apply whenever the snapshot or the machine's facts
//! change (and again while the speaker refuses something), and keep the node's
//! CiliumBGPNodeConfig up to date as sessions come and go.
//!
//! A Kubernetes source (reflectors) publishes the same snapshots as the directory source, so
//! this loop serves both unchanged; the L2 and dataplane reconcilers run beside it on the same
//! snapshot channel.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::jiff::Timestamp;
use tokio::sync::{broadcast, watch};
use tracing::Instrument as _;

use super::apply::BgpAgent;
use super::desired::NodeDesired;
use super::facts::LocalFacts;
use super::reconcile::{Input, reconcile};
use super::status::{RouteAges, node_config, same_node_config};
use crate::source::{ObjectKey, Snapshot, StatusSink, StatusUpdate};
use bgp::speaker::Speaker;

/// How the agent runs.
#[derive(Debug, Clone)]
pub struct AgentOptions {
    /// The node this process speaks for.
    pub node: String,
    /// Where `authSecretRef` Secrets live.
    pub secrets_namespace: String,
    /// How often interfaces and default routes are read again.
    pub facts_interval: Duration,
    /// How often the CiliumBGPNodeConfig status is refreshed (route counts change without
    /// a session event); it is written only when it changed.
    pub status_interval: Duration,
    /// Write the CiliumBGPNodeConfig at all (Cilium lets large clusters turn it off).
    pub status_report: bool,
    /// Retry interval while the speaker refuses something or a status write fails.
    pub retry: Duration,
}

impl AgentOptions {
    /// Defaults for `node`.
    pub fn new(node: impl Into<String>) -> AgentOptions {
        AgentOptions {
            node: node.into(),
            secrets_namespace: super::DEFAULT_SECRETS_NAMESPACE.into(),
            facts_interval: Duration::from_secs(5),
            status_interval: Duration::from_secs(5),
            status_report: true,
            retry: Duration::from_secs(2),
        }
    }
}

/// What the agent publishes for the local API after each apply.
#[derive(Debug, Clone, Default)]
pub struct AgentView {
    /// The last reconcile's answer.
    pub desired: Arc<NodeDesired>,
    /// Problems of the configuration and refusals of the speaker, one line each.
    pub errors: Vec<String>,
    /// The first complete reconcile has been applied.
    pub ready: bool,
    /// Applies done.
    pub applies: u64,
}

/// Handles the API needs while the agent runs.
#[derive(Clone)]
pub struct AgentHandle {
    /// The speaker.
    pub speaker: Speaker,
    /// Route ages.
    pub ages: RouteAges,
    /// The latest view.
    pub view: watch::Receiver<AgentView>,
}

/// Runs the agent until `stop` becomes true, then shuts the speaker down the way graceful
/// restart wants (see [`BgpAgent::shutdown`]).
pub async fn run(
    mut agent: BgpAgent,
    mut snapshots: watch::Receiver<Arc<Snapshot>>,
    sink: Arc<dyn StatusSink>,
    opts: AgentOptions,
    view: watch::Sender<AgentView>,
    mut stop: watch::Receiver<bool>,
) {
    let mut facts = LocalFacts::gather();
    let mut events = agent.speaker().subscribe_events();
    let mut facts_tick = tokio::time::interval(opts.facts_interval);
    facts_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut status_tick = tokio::time::interval(opts.status_interval);
    status_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut dirty = true;
    let mut status_dirty = true;
    let mut retry = false;
    let mut last_errors: Vec<String> = Vec::new();
    let mut applies = 0u64;
    let mut desired = Arc::new(NodeDesired::default());
    let mut errors: Vec<String> = Vec::new();
    let mut last_write: Option<(Option<crds::bgp::CiliumBGPNodeConfig>, Instant)> = None;
    let mut snap = snapshots.borrow_and_update().clone();
    loop {
        if *stop.borrow() {
            break;
        }
        if dirty {
            dirty = false;
            snap = snapshots.borrow_and_update().clone();
            let span =
                tracing::info_span!("bgp-reconcile", node = %opts.node, revision = snap.revision);
            let d = span.in_scope(|| {
                reconcile(
                    &snap,
                    Input {
                        node: &opts.node,
                        facts: &facts,
                        secrets_namespace: &opts.secrets_namespace,
                    },
                )
            });
            let report = agent.apply(&d, snap.synced).instrument(span).await;
            applies += 1;
            errors = d.errors.clone();
            errors.extend(report.errors.iter().cloned());
            if errors != last_errors {
                for e in errors.iter().filter(|e| !last_errors.contains(e)) {
                    tracing::warn!(node = %opts.node, problem = %e, "BGP configuration problem");
                }
                last_errors = errors.clone();
            }
            retry = !report.errors.is_empty();
            desired = Arc::new(d);
            view.send_replace(AgentView {
                desired: desired.clone(),
                errors: errors.clone(),
                ready: agent.first_complete(),
                applies,
            });
            status_dirty = true;
        }
        if status_dirty && opts.status_report {
            status_dirty = false;
            if let Err(failed) = write_status(
                &snap,
                &desired,
                &errors,
                agent.speaker(),
                sink.as_ref(),
                &opts,
                &mut last_write,
            )
            .await
            {
                tracing::error!(node = %opts.node, error = %failed, "writing the CiliumBGPNodeConfig failed; retrying");
                retry = true;
            }
        }
        tokio::select! {
            r = snapshots.changed() => {
                if r.is_err() { break }
                dirty = true;
            }
            _ = facts_tick.tick() => {
                let f = LocalFacts::gather();
                if f != facts {
                    tracing::debug!("interfaces or default routes changed");
                    facts = f;
                    dirty = true;
                }
            }
            ev = events.recv() => match ev {
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => status_dirty = true,
                Err(broadcast::error::RecvError::Closed) => {}
            },
            _ = status_tick.tick() => status_dirty = true,
            _ = tokio::time::sleep(opts.retry), if retry => {
                dirty = true;
            }
            r = stop.changed() => if r.is_err() { break },
        }
    }
    agent.shutdown().await;
}

/// Writes the node's CiliumBGPNodeConfig when it differs from what the source shows (and
/// from what was just written and is not visible yet).
async fn write_status(
    snap: &Snapshot,
    desired: &NodeDesired,
    errors: &[String],
    speaker: &Speaker,
    sink: &dyn StatusSink,
    opts: &AgentOptions,
    last_write: &mut Option<(Option<crds::bgp::CiliumBGPNodeConfig>, Instant)>,
) -> Result<(), String> {
    let shown = snap.bgp_node_configs.get(&ObjectKey::cluster(&opts.node));
    let want = node_config(
        desired,
        errors,
        speaker,
        shown.and_then(|s| s.metadata.creation_timestamp.clone()),
        Timestamp::now(),
        shown.map(|s| s.as_ref()),
    )
    .await;
    let same = |a: Option<&crds::bgp::CiliumBGPNodeConfig>,
                b: Option<&crds::bgp::CiliumBGPNodeConfig>| match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => same_node_config(a, b),
        _ => false,
    };
    if same(shown.map(|s| s.as_ref()), want.as_ref()) {
        *last_write = None;
        return Ok(());
    }
    // Written a moment ago and not yet read back: do not write it again.
    if let Some((w, at)) = last_write
        && at.elapsed() < Duration::from_secs(2)
        && same(w.as_ref(), want.as_ref())
    {
        return Ok(());
    }
    let update = StatusUpdate::BgpNodeConfig {
        name: opts.node.clone(),
        object: want.clone(),
    };
    match sink.write(&update).await {
        Ok(()) => {
            *last_write = Some((want, Instant::now()));
            Ok(())
        }
        Err(e) => Err(format!("CiliumBGPNodeConfig {}: {e}", opts.node)),
    }
}

/// Starts the agent on a tokio task; returns what the API reads and the task.
pub fn spawn(
    snapshots: watch::Receiver<Arc<Snapshot>>,
    sink: Arc<dyn StatusSink>,
    opts: AgentOptions,
    stop: watch::Receiver<bool>,
) -> (AgentHandle, tokio::task::JoinHandle<()>) {
    let speaker = Speaker::new();
    let agent = BgpAgent::new(speaker.clone());
    let (tx, rx) = watch::channel(AgentView::default());
    let handle = AgentHandle {
        speaker,
        ages: agent.ages(),
        view: rx,
    };
    let task = tokio::spawn(run(agent, snapshots, sink, opts, tx, stop));
    (handle, task)
}

/// The handle of a process that runs no BGP agent (`lbspeaker operator`): a speaker with no
/// instance, so the API answers with no peers, and a view that is ready at once.
pub fn idle() -> AgentHandle {
    let speaker = Speaker::new();
    let (_, rx) = watch::channel(AgentView {
        ready: true,
        ..AgentView::default()
    });
    AgentHandle {
        ages: super::status::RouteAges::new(speaker.clone()),
        speaker,
        view: rx,
    }
}
