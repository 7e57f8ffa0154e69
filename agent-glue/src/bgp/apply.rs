//! The thin step after [`super::reconcile`]: bring the running [`Speaker`] to a
//! [`NodeDesired`] by changing only what differs.
//!
//! - An instance whose own settings (AS, router ID, port) changed is restarted: every one of
//!   its sessions must carry the new OPEN. Anything else is done peer by peer.
//! - Per instance, in this order: the originated routes are replaced (the union of the
//!   peers' routes), peers that are gone are removed (Cease with a shutdown communication),
//!   changed peers are updated (`Speaker::update_peer` resets a session only when its OPEN or
//!   transport changes; a new export policy applies in place), new peers are added.
//! - Graceful restart: instances started before the first complete reconcile of this process
//!   set the R bit and hold End-of-RIB back until that reconcile has been applied
//!   (`Speaker::table_complete`), so peers keeping our routes stale never sweep them early.
//! - Then BFD ([`BfdRunner`]: the sessions of the peers now configured) and FIB installation
//!   ([`FibRunner`]: an installer per instance that asks for it), each changing only what
//!   differs.
//! - [`BgpAgent::shutdown`]: BFD AdminDown first (a peer must not take our going away for a
//!   path failure), FIB routes removed (kept for instances with graceful-restart peers), then
//!   Cease with a shutdown communication to peers without graceful restart, and just closing
//!   the sessions of the others, which keep our routes.

use std::collections::{BTreeMap, BTreeSet};

use bgp::bfd::{BfdManagerConfig, BfdPeer};
use bgp::speaker::{InstanceConfig, PeerConfig, Route, Speaker, StopMode};

use super::bfd::{BfdHandle, BfdRunner};
use super::desired::NodeDesired;
use super::fib::{FibHandles, FibRunner, FibWant};
use super::status::RouteAges;

/// What the speaker runs for one instance, as this agent configured it.
#[derive(Debug, Clone)]
struct Applied {
    /// As desired (`restarting` and `defer_end_of_rib` cleared), for comparison.
    config: InstanceConfig,
    peers: BTreeMap<String, PeerConfig>,
    routes: Vec<Route>,
    /// End-of-RIB is held back until the first complete reconcile.
    deferred: bool,
}

/// What one apply did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// What the speaker refused, one line each (retried at the next apply).
    pub errors: Vec<String>,
    /// Changes made (instances started or stopped, peers added, updated or removed, route
    /// sets replaced).
    pub changes: usize,
    /// Sessions reset by a change of their own configuration.
    pub resets: Vec<String>,
}

/// The BGP agent's hold on the speaker.
pub struct BgpAgent {
    speaker: Speaker,
    applied: BTreeMap<String, Applied>,
    first_complete: bool,
    ages: RouteAges,
    bfd: BfdRunner,
    fib: FibRunner,
}

impl std::fmt::Debug for BgpAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BgpAgent")
            .field("instances", &self.applied.keys().collect::<Vec<_>>())
            .field("first_complete", &self.first_complete)
            .finish_non_exhaustive()
    }
}

impl BgpAgent {
    /// An agent driving `speaker`, which must have no instance yet; BFD on the standard port.
    pub fn new(speaker: Speaker) -> BgpAgent {
        BgpAgent::with_bfd(speaker, BfdManagerConfig::default())
    }

    /// The same with BFD listening as `bfd` says (tests on one loopback use other ports).
    pub fn with_bfd(speaker: Speaker, bfd: BfdManagerConfig) -> BgpAgent {
        BgpAgent {
            ages: RouteAges::new(speaker.clone()),
            speaker,
            applied: BTreeMap::new(),
            first_complete: false,
            bfd: BfdRunner::new(bfd),
            fib: FibRunner::new(),
        }
    }

    /// The BFD manager, while one runs (for the API).
    pub fn bfd_handle(&self) -> BfdHandle {
        self.bfd.handle()
    }

    /// The FIB installers by instance (for the API).
    pub fn fib_handles(&self) -> FibHandles {
        self.fib.handles()
    }

    /// The speaker.
    pub fn speaker(&self) -> &Speaker {
        &self.speaker
    }

    /// When each route of the Loc-RIB was first seen (for `bgp routes`).
    pub fn ages(&self) -> RouteAges {
        self.ages.clone()
    }

    /// Whether the first complete reconcile has been applied (End-of-RIB released).
    pub fn first_complete(&self) -> bool {
        self.first_complete
    }

    /// Whether a peer now running has graceful restart configured.
    pub fn graceful_restart(&self) -> bool {
        self.applied
            .values()
            .flat_map(|a| a.peers.values())
            .any(|p| p.graceful_restart.is_some())
    }

    /// Brings the speaker to `desired`. `complete`: the snapshot it came from is complete (the
    /// source has seen everything once), so End-of-RIB may go.
    pub async fn apply(&mut self, desired: &NodeDesired, complete: bool) -> ApplyReport {
        let mut r = ApplyReport::default();
        // Instances (re)started in this apply: a new Loc-RIB for FIB installation.
        let mut started: BTreeSet<String> = BTreeSet::new();
        let gone: Vec<String> = self
            .applied
            .keys()
            .filter(|k| !desired.instances.contains_key(*k))
            .cloned()
            .collect();
        for name in gone {
            let mode = StopMode::Shutdown {
                communication: Some("BGP instance removed from the configuration".into()),
            };
            if let Err(e) = self.speaker.stop_instance(&name, mode).await {
                r.errors.push(format!("instance {name}: {e}"));
            }
            self.applied.remove(&name);
            self.ages.forget(&name);
            tracing::info!(instance = %name, "BGP instance stopped");
            r.changes += 1;
        }
        for (name, want) in &desired.instances {
            let restart = self
                .applied
                .get(name)
                .is_some_and(|a| a.config != want.config);
            if restart {
                tracing::info!(instance = %name, "instance settings changed (AS, router ID or port): restarting it");
                let mode = StopMode::Shutdown {
                    communication: Some("BGP instance configuration changed".into()),
                };
                if let Err(e) = self.speaker.stop_instance(name, mode).await {
                    r.errors.push(format!("instance {name}: {e}"));
                }
                self.applied.remove(name);
                self.ages.forget(name);
                r.changes += 1;
                r.resets
                    .extend(want.peers.keys().map(|p| format!("{name}/{p}")));
            }
            if !self.applied.contains_key(name) {
                let gr = want.peers.values().any(|p| p.graceful_restart.is_some());
                let mut cfg = want.config.clone();
                // Before the first complete reconcile this process is (possibly) restarting:
                // peers that kept our routes must wait for the whole table.
                let deferred = gr && !self.first_complete;
                cfg.restarting = deferred;
                cfg.defer_end_of_rib = deferred;
                match self.speaker.start_instance(cfg).await {
                    Ok(()) => {
                        tracing::info!(instance = %name, asn = want.config.local_as.get(), router_id = %want.config.router_id, restarting = deferred, "BGP instance started");
                        self.applied.insert(
                            name.clone(),
                            Applied {
                                config: want.config.clone(),
                                peers: BTreeMap::new(),
                                routes: Vec::new(),
                                deferred,
                            },
                        );
                        self.ages.watch(name).await;
                        started.insert(name.clone());
                        r.changes += 1;
                    }
                    Err(e) => {
                        r.errors.push(format!("instance {name}: {e}"));
                        continue;
                    }
                }
            }
            let Some(applied) = self.applied.get_mut(name) else {
                continue;
            };
            if applied.routes != want.routes {
                match self.speaker.replace_routes(name, want.routes.clone()).await {
                    Ok(()) => {
                        applied.routes = want.routes.clone();
                        r.changes += 1;
                    }
                    Err(e) => r.errors.push(format!("instance {name}: routes: {e}")),
                }
            }
            let removed: Vec<String> = applied
                .peers
                .keys()
                .filter(|p| !want.peers.contains_key(*p))
                .cloned()
                .collect();
            for p in removed {
                match self
                    .speaker
                    .remove_peer(name, &p, Some("peer removed from the BGP configuration"))
                    .await
                {
                    Ok(()) => {
                        tracing::info!(instance = %name, peer = %p, "peer removed");
                        applied.peers.remove(&p);
                        r.changes += 1;
                    }
                    Err(e) => r.errors.push(format!("instance {name}: peer {p}: {e}")),
                }
            }
            for (p, cfg) in &want.peers {
                match applied.peers.get(p) {
                    Some(old) if old == cfg => {}
                    Some(_) => match self.speaker.update_peer(name, cfg.clone()).await {
                        Ok(reset) => {
                            if reset {
                                tracing::info!(instance = %name, peer = %p, "peer settings changed: its session was reset");
                                r.resets.push(format!("{name}/{p}"));
                            } else {
                                tracing::debug!(instance = %name, peer = %p, "peer export changed in place");
                            }
                            applied.peers.insert(p.clone(), cfg.clone());
                            r.changes += 1;
                        }
                        Err(e) => r.errors.push(format!("instance {name}: peer {p}: {e}")),
                    },
                    None => match self.speaker.add_peer(name, cfg.clone()).await {
                        Ok(()) => {
                            tracing::info!(instance = %name, peer = %p, address = %cfg.address, asn = cfg.peer_as, "peer added");
                            applied.peers.insert(p.clone(), cfg.clone());
                            r.changes += 1;
                        }
                        Err(e) => r.errors.push(format!("instance {name}: peer {p}: {e}")),
                    },
                }
            }
        }
        self.apply_bfd_fib(desired, &started, &mut r).await;
        if complete && !self.first_complete {
            self.first_complete = true;
            for (name, a) in self.applied.iter_mut().filter(|(_, a)| a.deferred) {
                a.deferred = false;
                if let Err(e) = self.speaker.table_complete(name).await {
                    r.errors.push(format!("instance {name}: {e}"));
                } else {
                    tracing::info!(instance = %name, "table complete: End-of-RIB released");
                }
            }
        }
        r
    }

    /// BFD for the peers now configured, FIB installation for the instances now running.
    async fn apply_bfd_fib(
        &mut self,
        desired: &NodeDesired,
        started: &BTreeSet<String>,
        r: &mut ApplyReport,
    ) {
        let bfd: Vec<BfdPeer> = desired
            .instances
            .iter()
            .filter_map(|(name, want)| Some((want, self.applied.get(name)?)))
            .flat_map(|(want, applied)| {
                want.bfd
                    .iter()
                    .filter(|(peer, _)| applied.peers.contains_key(*peer))
                    .map(|(_, b)| b.clone())
            })
            .collect();
        match self.bfd.apply(&self.speaker, bfd).await {
            Ok(true) => r.changes += 1,
            Ok(false) => {}
            Err(e) => r.errors.push(e),
        }
        let fib: BTreeMap<String, FibWant> = desired
            .instances
            .iter()
            .filter(|(name, _)| self.applied.contains_key(*name))
            .map(|(name, want)| (name.clone(), want.fib.clone()))
            .collect();
        let (errors, changed) = self.fib.apply(&self.speaker, &fib, started).await;
        r.errors.extend(errors);
        if changed {
            r.changes += 1;
        }
    }

    /// Stops every instance as a node going down should: BFD AdminDown, FIB routes removed
    /// (kept for instances with graceful-restart peers, which the next start adopts), Cease
    /// (with a shutdown communication) to peers without graceful restart, just closing the
    /// sessions of peers with it, so that they keep our routes until we are back.
    pub async fn shutdown(&mut self) {
        let keep: BTreeSet<String> = self
            .applied
            .iter()
            .filter(|(_, a)| a.peers.values().any(|p| p.graceful_restart.is_some()))
            .map(|(n, _)| n.clone())
            .collect();
        self.fib.shutdown(&keep).await;
        for (name, a) in &self.applied {
            for (p, cfg) in &a.peers {
                if cfg.graceful_restart.is_none() {
                    let _ = self
                        .speaker
                        .remove_peer(name, p, Some("lbspeaker is shutting down"))
                        .await;
                }
            }
        }
        let gr = self.graceful_restart();
        tracing::info!(
            graceful_restart = gr,
            "stopping BGP: {}",
            if gr {
                "closing graceful-restart sessions without Cease, peers keep our routes"
            } else {
                "Cease to every peer"
            }
        );
        self.speaker.shutdown(StopMode::GracefulRestart).await;
        // BFD last: a peer that takes AdminDown for a failure (FRR 8.4 does) then finds the
        // BGP session already closed (in graceful-restart helper mode, or after our Cease).
        self.bfd.shutdown().await;
        self.applied.clear();
    }

    /// Instance name to the peers configured on it (for status and views).
    pub fn applied_peers(&self) -> BTreeMap<String, Vec<String>> {
        self.applied
            .iter()
            .map(|(n, a)| (n.clone(), a.peers.keys().cloned().collect()))
            .collect()
    }
}
