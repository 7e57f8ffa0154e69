//! Elections over [`KubeLeaseBackend`] as the L2 announcer runs them (`l2announce`'s
//! [`Elector`] per lease, a look every retry period), for nodes that answer for nothing: what
//! the tests check is the leases, the backend's requests, and who believes it leads when.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use agent_glue::kube::lease::KubeLeaseBackend;
use agent_glue::kube::ratelimit::RateLimit;
use agent_glue::kube::{AGENT_MANAGER, Role, client};
use l2announce::election::{Decision, Elector, acquired_record};
use l2announce::{LeaseBackend, LeaseName, Timers};
use tests::apiserver::ApiServer;
use tokio::task::JoinHandle;

/// Who leads what, as each node believes: (node, lease) → leading.
pub type Beliefs = Arc<Mutex<BTreeMap<(String, String), bool>>>;

/// One node's elections; dropping it stops them (as a crash: nothing released).
pub struct Node {
    pub name: String,
    pub backend: KubeLeaseBackend,
    task: JoinHandle<()>,
}

impl Drop for Node {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts node `name` electing `leases` in `namespace`, recording its beliefs.
pub fn start(
    server: &ApiServer,
    namespace: &str,
    name: &str,
    leases: &[&str],
    timers: Timers,
    beliefs: Beliefs,
) -> Node {
    let client = client::over(
        server.service(),
        "default",
        Role::Agent,
        name,
        RateLimit::unlimited(),
    );
    let backend = KubeLeaseBackend::start(client, namespace, AGENT_MANAGER);
    let leases: Vec<LeaseName> = leases.iter().map(|l| LeaseName::new(*l).unwrap()).collect();
    let (b, me) = (backend.clone(), name.to_string());
    let task = tokio::spawn(async move {
        let now = Instant::now();
        let mut els: Vec<(LeaseName, Elector)> = leases
            .into_iter()
            .map(|l| (l, Elector::new(&me, timers, now)))
            .collect();
        loop {
            for (lease, el) in &mut els {
                let now = Instant::now();
                match b.get(lease).await {
                    Ok(l) => el.observe(now, l.as_ref()),
                    Err(_) => el.write_failed(now),
                }
                match el.decide(now, true, false) {
                    Decision::Acquire | Decision::Renew => {
                        let started = Instant::now();
                        let prev = el.lease().cloned();
                        let rec = acquired_record(
                            SystemTime::now(),
                            prev.as_ref().map(|l| &l.record),
                            &me,
                            &timers,
                        );
                        let r = match &prev {
                            None => b.create(lease, &rec).await,
                            Some(l) => b.update(lease, &rec, &l.resource_version).await,
                        };
                        match r {
                            Ok(l) => el.written(started, &l),
                            Err(_) => el.write_failed(Instant::now()),
                        }
                    }
                    Decision::StepDown | Decision::Release => el.stop_leading(),
                    Decision::Wait { .. } => {}
                }
                let leading = el.is_leading(Instant::now());
                beliefs
                    .lock()
                    .unwrap()
                    .insert((me.clone(), lease.to_string()), leading);
            }
            tokio::time::sleep(timers.retry_period() / 4).await;
        }
    });
    Node {
        name: name.to_string(),
        backend,
        task,
    }
}

/// The nodes that believe they lead `lease` now.
pub fn leaders(beliefs: &Beliefs, lease: &str) -> Vec<String> {
    beliefs
        .lock()
        .unwrap()
        .iter()
        .filter(|((_, l), lead)| l == lease && **lead)
        .map(|((n, _), _)| n.clone())
        .collect()
}

/// Forgets what a stopped node believed (it believes nothing any more).
pub fn forget(beliefs: &Beliefs, node: &str) {
    beliefs.lock().unwrap().retain(|(n, _), _| n != node);
}
