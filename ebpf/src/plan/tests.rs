use super::*;
use crate::store::{MapStore, MemoryMaps};
use std::net::IpAddr;

const LIMITS: Limits = Limits {
    maglev_m: 251,
    maglev_tables: 4,
};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn web(n_backends: u8) -> Frontend {
    let mut f = Frontend::new(ip("172.16.1.1"), 80, Protocol::Tcp);
    for i in 0..n_backends {
        f = f.backend(ip(&format!("10.0.0.{}", i + 1)), 8080, i % 2 == 0);
    }
    f
}

fn apply(p: &mut Programmer, m: &mut MemoryMaps, d: &DesiredState) -> Vec<Op> {
    let (ops, errors) = p.plan(d);
    assert!(errors.is_empty(), "{errors:?}");
    m.apply(&ops).unwrap();
    ops
}

/// What the maps mean for one frontend scope: flags, active and terminating backends.
type Meaning = BTreeMap<(FrontendKey, u8), (u16, BTreeSet<BackendKey>, BTreeSet<BackendKey>)>;

/// Decodes the maps and checks their integrity: every slot of a frontend exists, refers to an
/// existing backend, and every frontend has its reverse-NAT entry.
fn meaning(m: &MemoryMaps) -> Meaning {
    let mut out = Meaning::new();
    for (k, head) in m.services.iter().filter(|(k, _)| k.slot == 0) {
        let rn = m
            .rev_nat
            .get(&head.rev_nat_id)
            .expect("reverse NAT of a frontend");
        assert_eq!(rn.addr, k.addr);
        assert_eq!(rn.port(), k.port());
        let backend_at = |slot: u16| {
            let v = m.services.get(&k.with_slot(slot)).expect("slot present");
            let b = m.backends.get(&v.backend_id).expect("backend of a slot");
            BackendKey {
                address: b.addr.ip(),
                port: b.port(),
            }
        };
        let n = head.count + head.qcount;
        let act = (1..=head.count).map(backend_at).collect();
        let term = (head.count + 1..=n).map(backend_at).collect();
        assert!(
            !m.services.contains_key(&k.with_slot(n + 1)),
            "no slot beyond count + qcount"
        );
        let fk = FrontendKey {
            address: k.addr.ip(),
            port: k.port(),
            protocol: Protocol::from_number(k.proto).unwrap(),
        };
        out.insert((fk, k.scope), (head.flags, act, term));
    }
    out
}

fn keys(f: &Frontend, pred: impl Fn(&crate::model::Backend) -> bool) -> BTreeSet<BackendKey> {
    f.backends
        .iter()
        .filter(|b| pred(b))
        .map(|b| b.key())
        .collect()
}

#[test]
fn a_new_frontend_costs_its_backends_slots_frontend_and_reverse_nat() {
    let mut p = Programmer::new(LIMITS);
    let mut m = MemoryMaps::new();
    let ops = apply(&mut p, &mut m, &DesiredState::from_frontends([web(2)]));
    // 2 backends, 2 slots, 1 frontend, 1 reverse NAT.
    assert_eq!(ops.len(), 6, "{ops:?}");
    let view = meaning(&m);
    let (flags, act, term) = view.values().next().unwrap();
    assert_eq!(*flags, svc_flags::LOADBALANCER);
    assert_eq!(*act, keys(&web(2), |_| true));
    assert!(term.is_empty());
}

#[test]
fn the_same_state_twice_costs_nothing() {
    let mut p = Programmer::new(LIMITS);
    let mut m = MemoryMaps::new();
    let d = DesiredState::from_frontends([web(3)]);
    apply(&mut p, &mut m, &d);
    assert!(apply(&mut p, &mut m, &d).is_empty());
}

#[test]
fn the_slots_are_written_before_the_frontend_and_deleted_after_it() {
    let mut p = Programmer::new(LIMITS);
    let mut m = MemoryMaps::new();
    let ops = apply(&mut p, &mut m, &DesiredState::from_frontends([web(2)]));
    let head = ops
        .iter()
        .position(|o| matches!(o, Op::PutSvc(k, _) if k.slot == 0))
        .unwrap();
    assert!(
        ops[..head]
            .iter()
            .any(|o| matches!(o, Op::PutSvc(k, _) if k.slot == 2))
    );
    let mut f = web(2);
    f.backends.truncate(1);
    let ops = apply(&mut p, &mut m, &DesiredState::from_frontends([f]));
    let head = ops
        .iter()
        .position(|o| matches!(o, Op::PutSvc(k, _) if k.slot == 0))
        .unwrap();
    let del = ops
        .iter()
        .position(|o| matches!(o, Op::DelSvc(k) if k.slot == 2))
        .unwrap();
    assert!(head < del, "{ops:?}");
}

#[test]
fn one_change_among_many_services_costs_a_few_operations() {
    let mut p = Programmer::new(LIMITS);
    let mut m = MemoryMaps::new();
    let mut d = DesiredState::new();
    for i in 0..2000u32 {
        let vip = ip(&format!("172.16.{}.{}", i / 250, i % 250 + 1));
        d.insert(
            Frontend::new(vip, 80, Protocol::Tcp)
                .backend(
                    ip(&format!("10.1.{}.{}", i / 250, i % 250 + 1)),
                    8080,
                    false,
                )
                .backend(
                    ip(&format!("10.2.{}.{}", i / 250, i % 250 + 1)),
                    8080,
                    false,
                ),
        );
    }
    assert_eq!(apply(&mut p, &mut m, &d).len(), 2000 * 6);
    let key = *d.frontends.keys().nth(777).unwrap();
    d.frontends.get_mut(&key).unwrap().backends[0].address = ip("10.9.9.9");
    let ops = apply(&mut p, &mut m, &d);
    // The new backend and its slot; the frontend's counts did not change.
    assert_eq!(ops.len(), 2, "{ops:?}");
    assert_eq!(p.draining().count(), 1, "the replaced backend drains");
}

#[test]
fn a_removed_backend_drains_until_no_flow_uses_it() {
    let mut p = Programmer::new(LIMITS);
    let mut m = MemoryMaps::new();
    apply(&mut p, &mut m, &DesiredState::from_frontends([web(3)]));
    let mut f = web(3);
    let gone = f.backends.remove(0);
    apply(&mut p, &mut m, &DesiredState::from_frontends([f.clone()]));
    let view = meaning(&m);
    assert_eq!(view.values().next().unwrap().1, keys(&f, |_| true));
    let drained: Vec<u32> = p.draining().collect();
    assert_eq!(drained.len(), 1);
    assert_eq!(m.backends[&drained[0]].addr.ip(), gone.address);
    // A flow still uses it: kept. None does: deleted.
    assert!(p.release_drained(&HashSet::from([drained[0]])).is_empty());
    let ops = p.release_drained(&HashSet::new());
    assert_eq!(ops, vec![Op::DelBackend(drained[0])]);
}

#[test]
fn terminating_backends_follow_the_active_ones_and_get_no_new_flows() {
    let mut p = Programmer::new(LIMITS);
    let mut m = MemoryMaps::new();
    let mut f = web(3);
    apply(&mut p, &mut m, &DesiredState::from_frontends([f.clone()]));
    f.backends[1].state = BackendState::Terminating;
    apply(&mut p, &mut m, &DesiredState::from_frontends([f.clone()]));
    let view = meaning(&m);
    let (_, act, term) = view.values().next().unwrap();
    assert_eq!(*act, keys(&f, |b| b.state == BackendState::Active));
    assert_eq!(*term, keys(&f, |b| b.state == BackendState::Terminating));
    let head = m.services.values().find(|v| v.rev_nat_id != 0).unwrap();
    assert_eq!((head.count, head.qcount), (2, 1));
    assert_eq!(
        m.backends
            .values()
            .filter(|b| b.flags & backend_flags::TERMINATING != 0)
            .count(),
        1
    );
}

#[test]
fn local_policy_lists_only_local_backends_and_two_policies_make_two_scopes() {
    let mut p = Programmer::new(LIMITS);
    let mut m = MemoryMaps::new();
    let mut f = web(4);
    f.external_policy = TrafficPolicy::Local;
    apply(&mut p, &mut m, &DesiredState::from_frontends([f.clone()]));
    let view = meaning(&m);
    assert_eq!(view.len(), 2, "external and internal scope");
    let ext = &view[&(f.key, SCOPE_EXT)];
    let int = &view[&(f.key, SCOPE_INT)];
    assert_eq!(ext.1, keys(&f, |b| b.local));
    assert_eq!(int.1, keys(&f, |_| true));
    assert_ne!(ext.0 & svc_flags::LOCAL, 0);
    assert_ne!(ext.0 & svc_flags::TWO_SCOPES, 0);
    // Back to Cluster: the internal scope goes away.
    f.external_policy = TrafficPolicy::Cluster;
    apply(&mut p, &mut m, &DesiredState::from_frontends([f.clone()]));
    let view = meaning(&m);
    assert_eq!(view.len(), 1);
    assert_eq!(view[&(f.key, SCOPE_EXT)].1, keys(&f, |_| true));
}

#[test]
fn a_local_frontend_without_local_backends_has_no_active_slot() {
    let mut p = Programmer::new(LIMITS);
    let mut m = MemoryMaps::new();
    let mut f =
        Frontend::new(ip("172.16.1.1"), 80, Protocol::Tcp).backend(ip("10.0.0.1"), 80, false);
    f.external_policy = TrafficPolicy::Local;
    f.internal_policy = TrafficPolicy::Local;
    apply(&mut p, &mut m, &DesiredState::from_frontends([f.clone()]));
    let view = meaning(&m);
    assert!(view[&(f.key, SCOPE_EXT)].1.is_empty());
}

#[test]
fn maglev_writes_its_table_then_only_the_entries_that_change() {
    let mut p = Programmer::new(LIMITS);
    let mut m = MemoryMaps::new();
    let mut f = web(5);
    f.algorithm = Algorithm::Maglev;
    let ops = apply(&mut p, &mut m, &DesiredState::from_frontends([f.clone()]));
    let writes = |ops: &[Op]| {
        ops.iter()
            .filter(|o| matches!(o, Op::PutMaglev(..)))
            .count()
    };
    assert_eq!(writes(&ops), 251);
    let head = *m.services.values().find(|v| v.rev_nat_id != 0).unwrap();
    let table = m.maglev_table(head.maglev_slot, 251).unwrap();
    assert!(table.iter().all(|id| m.backends.contains_key(id)));
    f.backends.pop();
    let ops = apply(&mut p, &mut m, &DesiredState::from_frontends([f.clone()]));
    let n = writes(&ops);
    assert!(n > 0 && n < 251 / 2, "{n} entries rewritten");
    // Its table is freed with it.
    apply(&mut p, &mut m, &DesiredState::new());
    assert!(m.services.is_empty() && m.rev_nat.is_empty());
}

#[test]
fn maglev_tables_run_out_with_a_clear_error_and_others_are_still_programmed() {
    let mut p = Programmer::new(Limits {
        maglev_m: 251,
        maglev_tables: 1,
    });
    let mut m = MemoryMaps::new();
    let mut a = web(2);
    a.algorithm = Algorithm::Maglev;
    let mut b = a.clone();
    b.key.port = 81;
    let (ops, errors) = p.plan(&DesiredState::from_frontends([a, b]));
    m.apply(&ops).unwrap();
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].to_string().contains("Maglev table"),
        "{}",
        errors[0]
    );
    assert_eq!(meaning(&m).len(), 1);
}

#[test]
fn removing_a_frontend_deletes_all_its_entries() {
    let mut p = Programmer::new(LIMITS);
    let mut m = MemoryMaps::new();
    let mut f = web(2);
    f.external_policy = TrafficPolicy::Local;
    apply(&mut p, &mut m, &DesiredState::from_frontends([f]));
    apply(&mut p, &mut m, &DesiredState::new());
    assert!(m.services.is_empty());
    assert!(m.rev_nat.is_empty());
    assert_eq!(m.backends.len(), 2, "backends drain");
    m.apply(&p.release_drained(&HashSet::new())).unwrap();
    assert!(m.backends.is_empty());
}

#[test]
fn adopting_the_maps_after_a_restart_makes_the_same_state_a_no_op() {
    let mut p = Programmer::new(LIMITS);
    let mut m = MemoryMaps::new();
    let mut mag = web(3);
    mag.key.port = 443;
    mag.algorithm = Algorithm::Maglev;
    let mut local = web(4);
    local.key.port = 8443;
    local.external_policy = TrafficPolicy::Local;
    local.backends[3].state = BackendState::Terminating;
    let d = DesiredState::from_frontends([web(2), mag, local]);
    apply(&mut p, &mut m, &d);
    let snap = m.snapshot().unwrap();
    let mut q = Programmer::adopt(LIMITS, &snap, |slot| m.maglev_table(slot, 251).ok());
    let (ops, errors) = q.plan(&d);
    assert!(errors.is_empty());
    assert!(ops.is_empty(), "{ops:?}");
    // And it keeps programming correctly from there.
    let mut d2 = d.clone();
    d2.frontends.values_mut().for_each(|f| {
        f.backends.pop();
    });
    let (ops, _) = q.plan(&d2);
    m.apply(&ops).unwrap();
    let view = meaning(&m);
    for f in d2.frontends.values() {
        let ext = &view[&(f.key, SCOPE_EXT)];
        let want = keys(f, |b| {
            b.state == BackendState::Active
                && (f.external_policy == TrafficPolicy::Cluster || b.local)
        });
        assert_eq!(ext.1, want, "{}", f.key);
    }
}

#[test]
fn adoption_deletes_entries_that_belong_to_nothing() {
    let mut p = Programmer::new(LIMITS);
    let mut m = MemoryMaps::new();
    apply(&mut p, &mut m, &DesiredState::from_frontends([web(2)]));
    // A slot without a frontend and a reverse-NAT entry without one.
    let stray = SvcKey::new(LbAddr::from(ip("172.16.9.9")), 80, 6, SCOPE_EXT, 1);
    m.services.insert(stray, SvcVal::default());
    m.rev_nat.insert(999, RevNatVal::new(LbAddr::ZERO, 1));
    let mut q = Programmer::adopt(LIMITS, &m.snapshot().unwrap(), |_| None);
    let (ops, _) = q.plan(&DesiredState::from_frontends([web(2)]));
    assert_eq!(ops, vec![Op::DelSvc(stray), Op::DelRevNat(999)]);
}

#[test]
fn invalid_frontends_are_reported_and_skipped() {
    let mut p = Programmer::new(LIMITS);
    let bad = Frontend::new(ip("172.16.1.2"), 80, Protocol::Tcp).backend(ip("fd00::1"), 80, true);
    let (ops, errors) = p.plan(&DesiredState::from_frontends([web(1), bad]));
    assert_eq!(errors.len(), 1);
    assert_eq!(ops.len(), 4);
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    fn frontend_strategy() -> impl Strategy<Value = Frontend> {
        (
            0u8..3,
            prop::collection::vec((0u8..6, any::<bool>(), any::<bool>()), 0..6),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(|(vip, bes, local_policy, maglev)| {
                let mut f = Frontend::new(ip(&format!("172.16.0.{}", vip + 1)), 80, Protocol::Tcp);
                for (b, local, term) in bes {
                    if f.backends
                        .iter()
                        .any(|x| x.address == ip(&format!("10.0.0.{}", b + 1)))
                    {
                        continue;
                    }
                    f = f.backend(ip(&format!("10.0.0.{}", b + 1)), 8080, local);
                    if term && let Some(last) = f.backends.last_mut() {
                        last.state = BackendState::Terminating;
                    }
                }
                if local_policy {
                    f.external_policy = TrafficPolicy::Local;
                }
                if maglev {
                    f.algorithm = Algorithm::Maglev;
                }
                f
            })
    }

    proptest! {
        #[test]
        fn any_sequence_of_states_leaves_maps_that_mean_the_last_one(
            states in prop::collection::vec(prop::collection::vec(frontend_strategy(), 0..4), 1..6)
        ) {
            let mut p = Programmer::new(Limits { maglev_m: 251, maglev_tables: 8 });
            let mut m = MemoryMaps::new();
            let mut last = DesiredState::new();
            for s in states {
                last = DesiredState::from_frontends(s);
                let (ops, errors) = p.plan(&last);
                prop_assert!(errors.is_empty());
                m.apply(&ops).unwrap();
            }
            let view = meaning(&m);
            for f in last.frontends.values() {
                let ext = &view[&(f.key, SCOPE_EXT)];
                let elig = |b: &crate::model::Backend| f.external_policy == TrafficPolicy::Cluster || b.local;
                prop_assert_eq!(&ext.1, &keys(f, |b| elig(b) && b.state == BackendState::Active));
                prop_assert_eq!(&ext.2, &keys(f, |b| elig(b) && b.state == BackendState::Terminating));
                if f.algorithm == Algorithm::Maglev && !ext.1.is_empty() {
                    let head = m.services[&svc_key(&f.key, SCOPE_EXT, 0)];
                    let t = m.maglev_table(head.maglev_slot, 251).unwrap();
                    let owners: BTreeSet<BackendKey> = t.iter().map(|id| {
                        let b = m.backends[id];
                        BackendKey { address: b.addr.ip(), port: b.port() }
                    }).collect();
                    prop_assert_eq!(&owners, &ext.1);
                }
            }
            prop_assert_eq!(view.keys().filter(|(_, s)| *s == SCOPE_EXT).count(), last.frontends.len());
        }
    }
}
