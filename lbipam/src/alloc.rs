//! The allocation itself: one pure pass from pools and services (with the addresses they hold
//! now) to every service's addresses and every pool's counts.
//!
//! Three phases, services oldest first in each:
//! 1. **restore**: each service keeps the addresses it holds that are still valid (inside a
//!    pool that selects it, whatever that pool's state; of a family it wants or among the
//!    addresses it requests; not held incompatibly by an older service);
//! 2. **requested**: services asking for specific addresses get them, all or none;
//! 3. **fill**: the others get an address of each missing family: a compatible shared one for
//!    sharing services, else the lowest free one of the first pool in choice order.
//!
//! State lives only in the services' statuses, so running the pass again on its own output
//! changes nothing, and a restart computes the same answer.

use std::collections::{BTreeMap, HashMap};

use crate::count::Count;
use crate::pools::Pools;
use crate::range::{Addr, Family};
use crate::types::{
    Allocation, Assigned, PoolId, PoolOutcome, PoolSpec, Reason, ServiceOutcome, ServiceRequest,
};

/// Who holds an address.
#[derive(Debug, Clone)]
enum Holders {
    One(u32),
    Many(Vec<u32>),
}

impl Holders {
    fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        let s: &[u32] = match self {
            Holders::One(x) => std::slice::from_ref(x),
            Holders::Many(v) => v,
        };
        s.iter().map(|&x| x as usize)
    }

    fn add(&mut self, s: u32) {
        match self {
            Holders::One(x) => *self = Holders::Many(vec![*x, s]),
            Holders::Many(v) => v.push(s),
        }
    }
}

#[derive(Debug, Clone)]
struct Holding {
    pool: PoolId,
    holders: Holders,
}

type Failure = (Reason, String);

struct State<'a> {
    specs: &'a [PoolSpec],
    pools: Pools,
    services: &'a [ServiceRequest],
    holdings: BTreeMap<Addr, Holding>,
    /// Addresses held by services with a sharing key, per key.
    by_key: HashMap<&'a str, Vec<Addr>>,
    /// Per pool, per allocatable range: no free address below this.
    cursors: Vec<Vec<Option<u128>>>,
    got: Vec<Vec<Assigned>>,
    failure: Vec<Option<Failure>>,
}

/// Allocates addresses to `services` from `pools`. Pure and deterministic: the answer depends
/// only on the inputs, not on their order.
pub fn allocate(pools: &[PoolSpec], services: &[ServiceRequest]) -> Allocation {
    let compiled = Pools::compile(pools);
    let cursors = compiled
        .list
        .iter()
        .map(|c| c.ranges.iter().map(|r| Some(r.first)).collect())
        .collect();
    let mut st = State {
        specs: pools,
        pools: compiled,
        services,
        holdings: BTreeMap::new(),
        by_key: HashMap::new(),
        cursors,
        got: vec![Vec::new(); services.len()],
        failure: vec![None; services.len()],
    };
    let mut order: Vec<usize> = (0..services.len()).collect();
    order.sort_by(|&a, &b| {
        let (x, y) = (&services[a], &services[b]);
        (x.created, &x.namespace, &x.name).cmp(&(y.created, &y.namespace, &y.name))
    });
    for &s in &order {
        st.restore(s);
    }
    for &s in &order {
        if asks_for_addresses(&services[s]) {
            st.request(s);
        }
    }
    for &s in &order {
        if !asks_for_addresses(&services[s]) {
            st.fill(s);
        }
    }
    st.finish()
}

fn asks_for_addresses(s: &ServiceRequest) -> bool {
    !s.requested.is_empty() || !s.invalid_requests.is_empty()
}

fn key(s: &ServiceRequest) -> String {
    format!("{}/{}", s.namespace, s.name)
}

impl<'a> State<'a> {
    fn pool_name(&self, p: PoolId) -> &str {
        &self.specs[p].name
    }

    fn eligible(&self, s: usize, p: PoolId) -> bool {
        self.services[s].pools.contains(&p)
    }

    fn has(&self, s: usize, a: Addr) -> bool {
        self.got[s].iter().any(|g| Addr::from(g.ip) == a)
    }

    /// Why `s` may not join the current holders of `a`, if it may not.
    fn share_problem(&self, s: usize, h: &Holding) -> Option<(usize, &'static str)> {
        let me = &self.services[s];
        h.holders.iter().find_map(|o| {
            me.can_share_with(&self.services[o])
                .err()
                .map(|why| (o, why))
        })
    }

    fn take(&mut self, s: usize, a: Addr, pool: PoolId) {
        match self.holdings.get_mut(&a) {
            Some(h) => h.holders.add(s as u32),
            None => {
                self.holdings.insert(
                    a,
                    Holding {
                        pool,
                        holders: Holders::One(s as u32),
                    },
                );
                if let Some(k) = self.services[s].sharing_key.as_deref() {
                    self.by_key.entry(k).or_default().push(a);
                }
            }
        }
        let pool = self.holdings.get(&a).map_or(pool, |h| h.pool);
        let got = &mut self.got[s];
        // Most services hold one address: do not let the first push reserve four.
        got.reserve_exact(1);
        got.push(Assigned { ip: a.ip(), pool });
    }

    /// Phase 1: keep what is still valid.
    fn restore(&mut self, s: usize) {
        let svc = &self.services[s];
        for &ip in &svc.current {
            let a = Addr::from(ip);
            if self.has(s, a) {
                continue;
            }
            if svc.requested.is_empty() {
                let wanted = match a.family {
                    Family::V4 => svc.families.ipv4,
                    Family::V6 => svc.families.ipv6,
                };
                let have_family = self.got[s].iter().any(|g| Family::of(g.ip) == a.family);
                if !wanted || have_family {
                    continue;
                }
            } else if !svc.requested.contains(&ip) {
                continue;
            }
            // Any pool that selects the service, whatever its state; prefer one that
            // does not conflict and still allocates.
            let mut pools: Vec<PoolId> = self
                .pools
                .containing(a)
                .into_iter()
                .filter(|&p| self.eligible(s, p))
                .collect();
            pools.sort_by_key(|&p| {
                let c = &self.pools.list[p];
                (
                    c.conflict.is_some(),
                    !c.accepts_new,
                    self.pools.name_rank(p),
                )
            });
            let Some(&pool) = pools.first() else { continue };
            // Joining holders: only when compatible with all of them and eligible for the pool
            // the address counts against.
            if let Some(h) = self.holdings.get(&a)
                && (self.share_problem(s, h).is_some() || !self.eligible(s, h.pool))
            {
                continue;
            }
            self.take(s, a, pool);
        }
    }

    /// Phase 2: specific addresses, all or none.
    fn request(&mut self, s: usize) {
        let svc = &self.services[s];
        if let Some(bad) = svc.invalid_requests.first() {
            self.failure[s] = Some((
                Reason::NoPool,
                format!("requested address {bad:?} is not an IP address"),
            ));
            return;
        }
        let mut plan: Vec<(Addr, PoolId)> = Vec::new();
        for &ip in &svc.requested {
            let a = Addr::from(ip);
            if self.has(s, a) || plan.iter().any(|(x, _)| *x == a) {
                continue;
            }
            match self.plan_requested(s, a) {
                Ok(p) => plan.push((a, p)),
                Err(f) => {
                    self.failure[s] = Some(f);
                    return;
                }
            }
        }
        for (a, p) in plan {
            self.take(s, a, p);
        }
    }

    fn plan_requested(&self, s: usize, a: Addr) -> Result<PoolId, Failure> {
        let containing = self.pools.containing(a);
        if containing.is_empty() {
            return Err((
                Reason::NoPool,
                format!("requested address {a} is in no CiliumLoadBalancerIPPool"),
            ));
        }
        let eligible: Vec<PoolId> = containing
            .iter()
            .copied()
            .filter(|&p| self.eligible(s, p))
            .collect();
        let Some(&first) = eligible.first() else {
            return Err((
                Reason::PoolSelectorMismatch,
                format!(
                    "requested address {a} is in pool {}, whose serviceSelector does not select this service",
                    self.pool_name(containing[0])
                ),
            ));
        };
        let usable = self
            .pools
            .choice_order
            .iter()
            .copied()
            .find(|p| eligible.contains(p));
        let Some(pool) = usable else {
            return Err((
                Reason::NoPool,
                format!(
                    "requested address {a} is in pool {}, which {}",
                    self.pool_name(first),
                    self.why_closed(first)
                ),
            ));
        };
        if let Some(h) = self.holdings.get(&a)
            && let Some((other, why)) = self.share_problem(s, h).or_else(|| {
                (!self.eligible(s, h.pool)).then(|| {
                    (
                        h.holders.iter().next().unwrap_or(s),
                        "holds it from a pool that does not select this service",
                    )
                })
            })
        {
            let svc = &self.services[s];
            let other_key = key(&self.services[other]);
            return Err(if svc.sharing_key.is_some() {
                (
                    Reason::AlreadyAllocatedIncompatibleService,
                    format!("requested address {a} is allocated to {other_key}, which {why}"),
                )
            } else {
                (
                    Reason::AlreadyAllocated,
                    format!("requested address {a} is already allocated to {other_key}"),
                )
            });
        }
        Ok(pool)
    }

    fn why_closed(&self, p: PoolId) -> String {
        let c = &self.pools.list[p];
        if let Some(conflict) = &c.conflict {
            format!("conflicts ({conflict})")
        } else if self.specs[p].disabled {
            "is disabled".to_string()
        } else {
            "has a serviceSelector that cannot be evaluated".to_string()
        }
    }

    /// Phase 3: one address per missing family.
    fn fill(&mut self, s: usize) {
        let f = self.services[s].families;
        let mut missing = Vec::new();
        for (fam, wanted) in [(Family::V4, f.ipv4), (Family::V6, f.ipv6)] {
            if wanted && !self.got[s].iter().any(|g| Family::of(g.ip) == fam) {
                missing.push(fam);
            }
        }
        let mut plans = Vec::new();
        let mut failures = Vec::new();
        for fam in missing {
            match self.plan_family(s, fam) {
                Ok(p) => plans.push(p),
                Err(e) => failures.push(e),
            }
        }
        // Report the structural failure (no pool) before exhaustion, so that the message
        // does not depend on what other services happen to hold.
        failures.sort_by_key(|(r, _)| *r != Reason::NoPool);
        if f.require_all && !failures.is_empty() {
            self.failure[s] = failures.into_iter().next();
            return;
        }
        for (a, p) in plans {
            self.take(s, a, p);
        }
        if self.got[s].is_empty() {
            self.failure[s] = failures.into_iter().next();
        } else if let Some((_, why)) = failures.into_iter().next() {
            // PreferDualStack with one family served: satisfied, and say what is missing.
            self.failure[s] = Some((Reason::Satisfied, why));
        }
    }

    fn plan_family(&mut self, s: usize, fam: Family) -> Result<(Addr, PoolId), Failure> {
        let svc = &self.services[s];
        let candidates: Vec<PoolId> = self
            .pools
            .choice_order
            .iter()
            .copied()
            .filter(|&p| self.eligible(s, p) && self.pools.has_family(p, fam))
            .collect();
        if candidates.is_empty() {
            let closed: Vec<&str> = svc
                .pools
                .iter()
                .filter(|&&p| self.pools.has_family(p, fam))
                .map(|&p| self.pool_name(p))
                .collect();
            let msg = if closed.is_empty() {
                format!(
                    "no CiliumLoadBalancerIPPool selecting this service has {} addresses",
                    fam.name()
                )
            } else {
                format!(
                    "no enabled CiliumLoadBalancerIPPool selecting this service has {} addresses (not allocating: {})",
                    fam.name(),
                    closed.join(", ")
                )
            };
            return Err((Reason::NoPool, msg));
        }
        if let Some(k) = svc.sharing_key.as_deref()
            && let Some(list) = self.by_key.get(k)
        {
            let best = list
                .iter()
                .filter(|a| a.family == fam)
                .filter(|a| {
                    self.holdings.get(a).is_some_and(|h| {
                        candidates.contains(&h.pool) && self.share_problem(s, h).is_none()
                    })
                })
                .min();
            if let Some(&a) = best {
                let pool = self.holdings.get(&a).map_or(candidates[0], |h| h.pool);
                return Ok((a, pool));
            }
        }
        for &p in &candidates {
            if let Some(a) = self.next_free(p, fam) {
                return Ok((a, p));
            }
        }
        let names: Vec<&str> = candidates.iter().map(|&p| self.pool_name(p)).collect();
        Err((
            Reason::OutOfIps,
            format!(
                "no free {} address in {} {}",
                fam.name(),
                if names.len() == 1 { "pool" } else { "pools" },
                names.join(", ")
            ),
        ))
    }

    /// The lowest free address of `fam` in pool `p`, without taking it.
    fn next_free(&mut self, p: PoolId, fam: Family) -> Option<Addr> {
        let ranges = &self.pools.list[p].ranges;
        for (i, r) in ranges.iter().enumerate() {
            if r.family != fam {
                continue;
            }
            let Some(mut cand) = self.cursors[p][i] else {
                continue;
            };
            let lo = Addr {
                family: fam,
                value: cand,
            };
            let hi = Addr {
                family: fam,
                value: r.last,
            };
            let mut exhausted = false;
            for (held, _) in self.holdings.range(lo..=hi) {
                if held.value != cand {
                    break;
                }
                match cand.checked_add(1) {
                    Some(n) if n <= r.last => cand = n,
                    _ => {
                        exhausted = true;
                        break;
                    }
                }
            }
            if exhausted {
                self.cursors[p][i] = None;
                continue;
            }
            self.cursors[p][i] = Some(cand);
            return Some(Addr {
                family: fam,
                value: cand,
            });
        }
        None
    }

    fn finish(self) -> Allocation {
        let mut used = vec![Count::ZERO; self.specs.len()];
        for h in self.holdings.values() {
            used[h.pool] = used[h.pool].saturating_add(Count::from_u128(1));
        }
        let pools = self
            .pools
            .list
            .iter()
            .enumerate()
            .map(|(i, c)| PoolOutcome {
                pool: i,
                total: c.total,
                used: used[i],
                available: c.total.saturating_sub(used[i]),
                conflict: c.conflict.clone(),
            })
            .collect();
        let specs = self.specs;
        let services = self
            .got
            .into_iter()
            .zip(self.failure)
            .enumerate()
            .map(|(i, (mut addresses, failure))| {
                addresses.sort_by_key(|a| Addr::from(a.ip));
                let (reason, message) = match failure {
                    Some((Reason::Satisfied, why)) => (
                        Reason::Satisfied,
                        format!("{}; {why}", describe(&addresses, specs)),
                    ),
                    Some(f) => f,
                    None => (Reason::Satisfied, describe(&addresses, specs)),
                };
                ServiceOutcome {
                    service: i,
                    addresses,
                    reason,
                    message,
                }
            })
            .collect();
        Allocation { services, pools }
    }
}

/// `172.16.1.1 from cilium-pool, fd00::1 from v6`.
fn describe(addresses: &[Assigned], specs: &[PoolSpec]) -> String {
    addresses
        .iter()
        .map(|a| format!("{} from {}", a.ip, specs[a.pool].name))
        .collect::<Vec<_>>()
        .join(", ")
}
