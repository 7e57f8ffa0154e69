//! The translation kept up to date service by service: a snapshot in which one service or
//! one EndpointSlice changed yields the frontends of that service only, so that the
//! dataplane receives one `upsert` or `remove` per changed frontend instead of a full
//! desired state. The result always equals [`translate`](super::translate::translate) of
//! the same snapshot (a test checks it over random edit sequences).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use ebpf::{DesiredState, Frontend, FrontendKey};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

use super::translate::{
    ServiceFrontends, ServiceOrder, TranslateOptions, conflict_problem, service_frontends,
    service_order,
};
use crate::bgp::adverts::SERVICE_NAME_LABEL;
use crate::source::{ObjectKey, Snapshot};

/// What changed since the previous snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delta {
    /// Frontends that are new or differ.
    pub upsert: Vec<Frontend>,
    /// Frontends that are gone.
    pub remove: Vec<FrontendKey>,
    /// Services whose translation was computed again.
    pub services_translated: usize,
}

impl Delta {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.upsert.is_empty() && self.remove.is_empty()
    }
}

#[derive(Debug)]
struct Cached {
    service: Arc<Service>,
    slices: Vec<Arc<EndpointSlice>>,
    order: ServiceOrder,
    result: ServiceFrontends,
    /// The update that last saw the service (the others are gone).
    seen: u64,
}

fn same<T: PartialEq>(a: &Arc<T>, b: &Arc<T>) -> bool {
    Arc::ptr_eq(a, b) || a == b
}

/// The incremental translator of one node.
#[derive(Debug)]
pub struct Translator {
    opts: TranslateOptions,
    services: HashMap<ObjectKey, Cached>,
    /// Who claims each frontend, oldest first.
    claims: BTreeMap<FrontendKey, BTreeSet<ServiceOrder>>,
    desired: DesiredState,
    conflicts: BTreeMap<FrontendKey, Vec<String>>,
    updates: u64,
}

impl Translator {
    /// An empty translator (nothing desired yet).
    pub fn new(opts: TranslateOptions) -> Translator {
        Translator {
            opts,
            services: HashMap::new(),
            claims: BTreeMap::new(),
            desired: DesiredState::new(),
            conflicts: BTreeMap::new(),
            updates: 0,
        }
    }

    /// The whole desired state as of the last update.
    pub fn desired(&self) -> &DesiredState {
        &self.desired
    }

    /// Every problem as of the last update, sorted.
    pub fn problems(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .services
            .values()
            .flat_map(|c| c.result.problems.iter().cloned())
            .chain(self.conflicts.values().flatten().cloned())
            .collect();
        v.sort();
        v
    }

    /// Brings the translation to `snapshot`; returns what changed.
    pub fn update(&mut self, snapshot: &Snapshot) -> Delta {
        self.updates += 1;
        let now = self.updates;
        // Slices by (namespace, service name), borrowed: nothing is allocated per object.
        type ByService<'a> = HashMap<(Option<&'a str>, &'a str), Vec<&'a Arc<EndpointSlice>>>;
        let mut slices: ByService<'_> = HashMap::new();
        for (key, slice) in &snapshot.endpoint_slices {
            if let Some(service) = slice
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(SERVICE_NAME_LABEL))
            {
                slices
                    .entry((key.namespace.as_deref(), service.as_str()))
                    .or_default()
                    .push(slice);
            }
        }
        let mut dirty: BTreeSet<FrontendKey> = BTreeSet::new();
        let mut translated = 0;
        for (key, svc) in &snapshot.services {
            let sl = slices
                .remove(&(key.namespace.as_deref(), key.name.as_str()))
                .unwrap_or_default();
            if let Some(c) = self.services.get_mut(key)
                && same(&c.service, svc)
                && c.slices.len() == sl.len()
                && c.slices.iter().zip(&sl).all(|(a, b)| same(a, *b))
            {
                c.seen = now;
                continue;
            }
            translated += 1;
            let refs: Vec<&EndpointSlice> = sl.iter().map(|s| s.as_ref()).collect();
            let result = service_frontends(key, svc, &refs, &self.opts);
            let order = service_order(key, svc);
            if let Some(old) = self.services.remove(key) {
                self.release(&old, &mut dirty);
            }
            for k in result.frontends.keys() {
                self.claims.entry(*k).or_default().insert(order.clone());
                dirty.insert(*k);
            }
            self.services.insert(
                key.clone(),
                Cached {
                    service: svc.clone(),
                    slices: sl.into_iter().cloned().collect(),
                    order,
                    result,
                    seen: now,
                },
            );
        }
        // What this snapshot did not list is gone.
        let gone: Vec<ObjectKey> = self
            .services
            .iter()
            .filter(|(_, c)| c.seen != now)
            .map(|(k, _)| k.clone())
            .collect();
        for key in gone {
            if let Some(old) = self.services.remove(&key) {
                self.release(&old, &mut dirty);
            }
        }
        let mut delta = Delta {
            services_translated: translated,
            ..Delta::default()
        };
        for k in dirty {
            let winner = self.claims.get(&k).and_then(|c| {
                let mut it = c.iter();
                let w = it.next()?;
                let losers: Vec<String> = it.map(|l| conflict_problem(&k, &l.1, &w.1)).collect();
                Some((w.1.clone(), losers))
            });
            let want = match winner {
                Some((w, losers)) => {
                    if losers.is_empty() {
                        self.conflicts.remove(&k);
                    } else {
                        self.conflicts.insert(k, losers);
                    }
                    self.services
                        .get(&w)
                        .and_then(|c| c.result.frontends.get(&k))
                        .cloned()
                }
                None => {
                    self.conflicts.remove(&k);
                    None
                }
            };
            match want {
                Some(f) => {
                    if self.desired.frontends.get(&k) != Some(&f) {
                        self.desired.insert(f.clone());
                        delta.upsert.push(f);
                    }
                }
                None => {
                    if self.desired.frontends.remove(&k).is_some() {
                        delta.remove.push(k);
                    }
                }
            }
        }
        delta
    }

    /// Drops a service's claims, marking its frontends for a new decision.
    fn release(&mut self, old: &Cached, dirty: &mut BTreeSet<FrontendKey>) {
        for k in old.result.frontends.keys() {
            if let Some(c) = self.claims.get_mut(k) {
                c.remove(&old.order);
                if c.is_empty() {
                    self.claims.remove(k);
                }
            }
            dirty.insert(*k);
        }
    }
}
