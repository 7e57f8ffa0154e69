//! Kernel FIB installation of received routes, opt-in per instance with annotations of the
//! CiliumBGPClusterConfig (the `cilium.io` schemas have no place for it): the pure
//! translation ([`want`]) and [`FibRunner`], which keeps one [`FibInstaller`] per instance in
//! line with it.
//!
//! | annotation | value | default |
//! |---|---|---|
//! | `lbspeaker.io/install-routes` | `true` (every instance), `false`, or instance names, comma-separated | off |
//! | `lbspeaker.io/install-routes-prefixes` | prefix rules, comma-separated: `172.20.0.0/16 le 24, 0.0.0.0/0` | every received route |
//! | `lbspeaker.io/route-table` | kernel table, 1-4294967295 except 255 | 254 (main) |
//!
//! - An annotation that cannot be read is a problem of the reconcile and changes nothing: an
//!   installer already running keeps its configuration.
//! - Lifecycle: an instance that starts installing adopts the routes of ours it finds and
//!   removes the rest once its peers sent End-of-RIB (or after the startup hold). A changed
//!   prefix filter replaces the installer, keeping the routes (the new one adopts what is still
//!   wanted and removes the rest after a short hold: the Loc-RIB is already complete); a
//!   changed table removes the routes from the old table first. Turning it off, or the
//!   instance going away, removes every route of ours. An instance restarted (AS, router ID or
//!   port changed) keeps its routes until its new sessions converge.
//! - Shutdown: the routes stay when the instance has graceful-restart peers (the tor keeps our
//!   routes as well; the next start adopts them), and are removed otherwise.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bgp::fib::{Cleanup, FibConfig, FibInstaller, PrefixRule};
use bgp::speaker::Speaker;
use crds::bgp::CiliumBGPClusterConfig;

/// Turns FIB installation on: `true`, `false`, or the names of the instances that install.
pub const INSTALL_ROUTES: &str = "lbspeaker.io/install-routes";
/// Which received prefixes are installed (prefix rules, comma-separated; unset: all).
pub const INSTALL_ROUTES_PREFIXES: &str = "lbspeaker.io/install-routes-prefixes";
/// The kernel table (default 254, main).
pub const ROUTE_TABLE: &str = "lbspeaker.io/route-table";

/// How long a replaced installer keeps routes no longer wanted before removing them (the
/// Loc-RIB is complete; this covers reading it into the new installer).
const REPLACE_HOLD: Duration = Duration::from_secs(2);

/// What an instance should do with its received routes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum FibWant {
    /// Nothing installed (routes of ours are removed).
    #[default]
    Off,
    /// Installed with this configuration.
    Install(FibConfig),
    /// The annotations cannot be read (reported): leave whatever runs as it is.
    Invalid,
}

fn annotation<'a>(cc: &'a CiliumBGPClusterConfig, key: &str) -> Option<&'a str> {
    cc.metadata.annotations.as_ref()?.get(key).map(|s| s.trim())
}

/// What the ClusterConfig's annotations ask of `instance`; `Err` names the annotation and
/// what is wrong with it.
pub fn want(cc: &CiliumBGPClusterConfig, instance: &str) -> Result<FibWant, String> {
    let on = match annotation(cc, INSTALL_ROUTES) {
        None => false,
        Some(v) if v.is_empty() || v.eq_ignore_ascii_case("false") => false,
        Some(v) if v.eq_ignore_ascii_case("true") => true,
        Some(v) => {
            let names: Vec<&str> = v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect();
            if let Some(bad) = names
                .iter()
                .find(|n| !cc.spec.bgp_instances.iter().any(|i| i.name == **n))
            {
                return Err(format!(
                    "annotation {INSTALL_ROUTES}: {bad:?} is not an instance of this CiliumBGPClusterConfig (write true, false or instance names)"
                ));
            }
            names.contains(&instance)
        }
    };
    if !on {
        return Ok(FibWant::Off);
    }
    let mut config = FibConfig::default();
    if let Some(v) = annotation(cc, INSTALL_ROUTES_PREFIXES) {
        config.accept = v
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.parse::<PrefixRule>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("annotation {INSTALL_ROUTES_PREFIXES}: {e}"))?;
    }
    if let Some(v) = annotation(cc, ROUTE_TABLE) {
        config.table = v.parse().map_err(|_| {
            format!("annotation {ROUTE_TABLE}: {v:?} is not a table number (1-4294967295)")
        })?;
    }
    config
        .validate()
        .map_err(|e| format!("annotation {ROUTE_TABLE}: {e}"))?;
    Ok(FibWant::Install(config))
}

/// The installers of the agent as the API reads them, by instance.
pub type FibHandles = Arc<Mutex<BTreeMap<String, Running>>>;

/// One installer and the configuration it was started with.
#[derive(Debug, Clone)]
pub struct Running {
    /// As the annotations gave it.
    pub config: FibConfig,
    /// The installer.
    pub installer: Arc<FibInstaller>,
}

/// Keeps one [`FibInstaller`] per instance that installs routes.
pub struct FibRunner {
    running: BTreeMap<String, Running>,
    shared: FibHandles,
}

impl std::fmt::Debug for FibRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FibRunner")
            .field("instances", &self.running.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Default for FibRunner {
    fn default() -> Self {
        FibRunner::new()
    }
}

impl FibRunner {
    /// No installer yet.
    pub fn new() -> FibRunner {
        FibRunner {
            running: BTreeMap::new(),
            shared: Arc::new(Mutex::new(BTreeMap::new())),
        }
    }

    /// What the API reads.
    pub fn handles(&self) -> FibHandles {
        self.shared.clone()
    }

    fn publish(&self) {
        if let Ok(mut s) = self.shared.lock() {
            s.clone_from(&self.running);
        }
    }

    async fn stop(&mut self, instance: &str, cleanup: Cleanup, why: &str) -> Option<String> {
        let r = self.running.remove(instance)?;
        match r.installer.stop(cleanup).await {
            Ok(st) => {
                tracing::info!(
                    instance,
                    ?cleanup,
                    routes = st.routes.len(),
                    "{why}: FIB installation stopped"
                );
                None
            }
            Err(e) => Some(format!("instance {instance}: FIB: {e}")),
        }
    }

    /// Brings the installers to `want` (instance to what it wants; instances absent want
    /// nothing). `restarted`: instances the speaker (re)started in this apply, whose Loc-RIB
    /// is new. Returns what failed, one line each (retried at the next apply), and whether
    /// anything changed.
    pub async fn apply(
        &mut self,
        speaker: &Speaker,
        want: &BTreeMap<String, FibWant>,
        restarted: &BTreeSet<String>,
    ) -> (Vec<String>, bool) {
        let mut errors = Vec::new();
        let mut changed = false;
        // Replaced for a new filter, the instance running on: its Loc-RIB is complete.
        let mut replaced = BTreeSet::new();
        let names: Vec<String> = self.running.keys().cloned().collect();
        for name in names {
            let w = want.get(&name).unwrap_or(&FibWant::Off);
            let Some(current) = self.running.get(&name).map(|r| r.config.clone()) else {
                continue;
            };
            let stop = match w {
                FibWant::Invalid => None,
                FibWant::Off => Some((Cleanup::RemoveAll, "turned off or instance removed")),
                FibWant::Install(_) if restarted.contains(&name) => {
                    Some((Cleanup::Keep, "instance restarted"))
                }
                FibWant::Install(c) if *c == current => None,
                FibWant::Install(c)
                    if (c.table, c.protocol, c.metric)
                        != (current.table, current.protocol, current.metric) =>
                {
                    Some((Cleanup::RemoveAll, "table changed"))
                }
                FibWant::Install(_) => {
                    replaced.insert(name.clone());
                    Some((Cleanup::Keep, "prefix filter changed"))
                }
            };
            if let Some((cleanup, why)) = stop {
                changed = true;
                errors.extend(self.stop(&name, cleanup, why).await);
            }
        }
        for (name, w) in want {
            let FibWant::Install(config) = w else {
                continue;
            };
            if self.running.contains_key(name) {
                continue;
            }
            let mut cfg = config.clone();
            if replaced.contains(name) {
                cfg.startup_hold = cfg.startup_hold.min(REPLACE_HOLD);
            }
            match FibInstaller::start(speaker, name, cfg.clone()).await {
                Ok(installer) => {
                    tracing::info!(instance = %name, table = cfg.table, accept = ?cfg.accept.iter().map(ToString::to_string).collect::<Vec<_>>(), "FIB installation started");
                    self.running.insert(
                        name.clone(),
                        Running {
                            config: config.clone(),
                            installer: Arc::new(installer),
                        },
                    );
                    changed = true;
                }
                Err(e) => errors.push(format!("instance {name}: FIB: {e}")),
            }
        }
        if changed {
            self.publish();
        }
        (errors, changed)
    }

    /// Stops every installer: `keep` names the instances whose routes stay (graceful
    /// restart), the others' are removed.
    pub async fn shutdown(&mut self, keep: &BTreeSet<String>) {
        let names: Vec<String> = self.running.keys().cloned().collect();
        for name in names {
            let cleanup = if keep.contains(&name) {
                Cleanup::Keep
            } else {
                Cleanup::RemoveAll
            };
            if let Some(e) = self.stop(&name, cleanup, "shutting down").await {
                tracing::warn!(error = %e, "FIB cleanup failed");
            }
        }
        self.publish();
    }
}

/// `via GATEWAY dev LINK` as `ip route` prints a next hop.
fn next_hop(h: &bgp::fib::NextHop) -> String {
    let dev = nix::net::if_::if_indextoname(h.ifindex)
        .ok()
        .and_then(|n| n.into_string().ok())
        .unwrap_or_else(|| format!("if{}", h.ifindex));
    match h.gateway {
        Some(g) => format!("via {g} dev {dev}"),
        None => format!("dev {dev}"),
    }
}

/// What `lbspeaker fib routes` shows: each installer's status.
pub async fn views(node: &str, handles: &FibHandles) -> Vec<crate::api::FibView> {
    let installers: Vec<(String, Running)> = handles
        .lock()
        .map(|m| m.iter().map(|(n, r)| (n.clone(), r.clone())).collect())
        .unwrap_or_default();
    let mut out = Vec::new();
    for (instance, running) in installers {
        let Ok(st) = running.installer.status().await else {
            continue;
        };
        out.push(crate::api::FibView {
            node: node.to_owned(),
            instance,
            table: st.table,
            protocol: st.protocol,
            metric: st.metric,
            accept: running
                .config
                .accept
                .iter()
                .map(ToString::to_string)
                .collect(),
            converged: st.converged,
            wanted: st.wanted,
            routes: st
                .routes
                .iter()
                .map(|r| crate::api::FibRouteView {
                    prefix: r.dst.to_string(),
                    next_hops: r.next_hops.iter().map(next_hop).collect(),
                })
                .collect(),
            conflicts: st.conflicts.iter().map(ToString::to_string).collect(),
            unresolved: st
                .unresolved
                .iter()
                .map(|(p, why)| match why {
                    bgp::fib::plan::Unresolved::NoRoute { next_hops } => format!(
                        "{p}: no route to its next hop{} {}",
                        if next_hops.len() > 1 { "s" } else { "" },
                        next_hops
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    bgp::fib::plan::Unresolved::NextHopIsLocal { next_hop } => {
                        format!("{p}: its next hop {next_hop} is an address of this node")
                    }
                })
                .collect(),
            found_at_start: st.found_at_start,
            adopted: st.adopted,
            added: st.added,
            replaced: st.replaced,
            deleted: st.deleted,
            last_error: st.last_error,
        });
    }
    out
}
