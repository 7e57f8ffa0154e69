//! Pools compiled for allocation: their allocatable ranges, their conflicts, the order in which
//! they are tried, and a lookup from an address to the pools holding it.

use crate::count::Count;
use crate::range::{Addr, AddrRange, Family};
use crate::types::{Block, PoolId, PoolSpec};

/// One pool, ready to allocate from.
#[derive(Debug, Clone)]
pub(crate) struct Compiled {
    /// Allocatable ranges (first/last reserved where asked), sorted.
    pub ranges: Vec<AddrRange>,
    /// Size of their union.
    pub total: Count,
    /// Why the pool conflicts, if it does.
    pub conflict: Option<String>,
    /// Whether new addresses may come from it.
    pub accepts_new: bool,
}

/// Every pool of one reconcile.
#[derive(Debug, Clone)]
pub(crate) struct Pools {
    pub list: Vec<Compiled>,
    /// Pools accepting new allocations, in the order they are tried.
    pub choice_order: Vec<PoolId>,
    /// Every allocatable range with its pool, sorted by (family, first).
    index: Vec<(AddrRange, PoolId)>,
    /// `index[..=i]`'s largest `last` per family, to bound the search for containing ranges.
    max_last: Vec<u128>,
    /// Each pool's position in name order: ties between pools are broken by name, never by
    /// the order the caller listed them in.
    name_rank: Vec<usize>,
}

impl Pools {
    pub fn compile(specs: &[PoolSpec]) -> Pools {
        let raw: Vec<Vec<AddrRange>> = specs.iter().map(raw_ranges).collect();
        let conflicts = find_conflicts(specs, &raw);
        let mut list = Vec::with_capacity(specs.len());
        for (i, spec) in specs.iter().enumerate() {
            let mut ranges: Vec<AddrRange> = spec
                .blocks
                .iter()
                .filter_map(|b| allocatable(b, spec.allow_first_last_ips))
                .collect();
            ranges.sort();
            let total = union_len(&ranges);
            let conflict = conflicts[i].clone();
            let accepts_new = !spec.disabled && conflict.is_none() && !spec.selector_broken;
            list.push(Compiled {
                ranges,
                total,
                conflict,
                accepts_new,
            });
        }
        let mut choice_order: Vec<PoolId> =
            (0..specs.len()).filter(|&i| list[i].accepts_new).collect();
        choice_order.sort_by(|&a, &b| {
            (specs[a].catch_all, &specs[a].name).cmp(&(specs[b].catch_all, &specs[b].name))
        });
        let mut index: Vec<(AddrRange, PoolId)> = list
            .iter()
            .enumerate()
            .flat_map(|(p, c)| c.ranges.iter().map(move |r| (*r, p)))
            .collect();
        index.sort();
        let mut max_last = Vec::with_capacity(index.len());
        let mut cur: Option<(Family, u128)> = None;
        for (r, _) in &index {
            let m = match cur {
                Some((f, m)) if f == r.family => m.max(r.last),
                _ => r.last,
            };
            cur = Some((r.family, m));
            max_last.push(m);
        }
        let mut by_name: Vec<usize> = (0..specs.len()).collect();
        by_name.sort_by(|&a, &b| specs[a].name.cmp(&specs[b].name));
        let mut name_rank = vec![0; specs.len()];
        for (rank, &p) in by_name.iter().enumerate() {
            name_rank[p] = rank;
        }
        Pools {
            list,
            choice_order,
            index,
            max_last,
            name_rank,
        }
    }

    /// The pools with an allocatable range holding `a`, in name order.
    pub fn containing(&self, a: Addr) -> Vec<PoolId> {
        let key = (a.family, a.value);
        let end = self
            .index
            .partition_point(|(r, _)| (r.family, r.first) <= key);
        let mut out = Vec::new();
        for i in (0..end).rev() {
            let (r, p) = &self.index[i];
            if r.family != a.family || self.max_last[i] < a.value {
                break;
            }
            if r.contains(a) && !out.contains(p) {
                out.push(*p);
            }
        }
        out.sort_unstable_by_key(|&p| self.name_rank[p]);
        out
    }

    /// Position of pool `p` in name order.
    pub fn name_rank(&self, p: PoolId) -> usize {
        self.name_rank[p]
    }

    /// Whether pool `p` has allocatable addresses of `family`.
    pub fn has_family(&self, p: PoolId, family: Family) -> bool {
        self.list[p].ranges.iter().any(|r| r.family == family)
    }
}

/// Every address a block names (reservation ignored): what conflicts are judged on.
fn raw_ranges(spec: &PoolSpec) -> Vec<AddrRange> {
    spec.blocks
        .iter()
        .filter_map(|b| match *b {
            Block::Cidr(net) => Some(AddrRange::of_cidr(net)),
            Block::Range { start, stop } => AddrRange::new(start, stop),
        })
        .collect()
}

/// The addresses of a block that may be given out.
fn allocatable(b: &Block, allow_first_last: bool) -> Option<AddrRange> {
    match *b {
        Block::Cidr(net) => {
            let r = AddrRange::of_cidr(net);
            if !allow_first_last && r.last - r.first >= 2 {
                Some(AddrRange {
                    first: r.first + 1,
                    last: r.last - 1,
                    ..r
                })
            } else {
                Some(r)
            }
        }
        Block::Range { start, stop } => AddrRange::new(start, stop),
    }
}

/// The number of distinct addresses in `sorted` ranges (which may overlap).
fn union_len(sorted: &[AddrRange]) -> Count {
    let mut total = Count::ZERO;
    let mut cur: Option<AddrRange> = None;
    for r in sorted {
        match &mut cur {
            Some(c) if c.family == r.family && r.first <= c.last.saturating_add(1) => {
                c.last = c.last.max(r.last);
            }
            _ => {
                if let Some(c) = cur {
                    total = total.saturating_add(c.len());
                }
                cur = Some(*r);
            }
        }
    }
    if let Some(c) = cur {
        total = total.saturating_add(c.len());
    }
    total
}

/// Conflicts, judged oldest pool first: a pool conflicts when its own blocks overlap, when a
/// block could not be read or is not a valid range, or when it overlaps an older pool that does
/// not conflict itself (conflicting pools block nobody).
fn find_conflicts(specs: &[PoolSpec], raw: &[Vec<AddrRange>]) -> Vec<Option<String>> {
    let mut order: Vec<usize> = (0..specs.len()).collect();
    order.sort_by(|&a, &b| {
        (specs[a].created, &specs[a].name).cmp(&(specs[b].created, &specs[b].name))
    });
    let mut out = vec![None; specs.len()];
    // Ranges of the pools that do not conflict, with their pool.
    let mut accepted: Vec<(AddrRange, usize)> = Vec::new();
    for p in order {
        let spec = &specs[p];
        let mut problems: Vec<String> = spec.invalid_blocks.clone();
        for b in &spec.blocks {
            if let Block::Range { start, stop } = *b
                && AddrRange::new(start, stop).is_none()
            {
                problems.push(if Family::of(start) == Family::of(stop) {
                    format!("range {start}-{stop} ends before it starts")
                } else {
                    format!("range {start}-{stop} mixes IPv4 and IPv6")
                });
            }
        }
        let mine = &raw[p];
        for (i, a) in mine.iter().enumerate() {
            for b in &mine[i + 1..] {
                if a.overlaps(b) {
                    problems.push(format!("{a} overlaps {b} in the same pool"));
                }
            }
        }
        if problems.is_empty() {
            for a in mine {
                if let Some((b, q)) = accepted.iter().find(|(b, _)| a.overlaps(b)) {
                    problems.push(format!(
                        "{a} overlaps {b} of the older pool {}",
                        specs[*q].name
                    ));
                }
            }
        }
        if problems.is_empty() {
            accepted.extend(mine.iter().map(|r| (*r, p)));
        } else {
            out[p] = Some(problems.join("; "));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    fn cidr(s: &str) -> Block {
        Block::Cidr(s.parse().unwrap())
    }

    fn range(a: &str, b: &str) -> Block {
        Block::Range {
            start: a.parse().unwrap(),
            stop: b.parse().unwrap(),
        }
    }

    fn pool(name: &str, created: i64, blocks: Vec<Block>) -> PoolSpec {
        PoolSpec {
            created,
            ..PoolSpec::new(name, blocks)
        }
    }

    fn addr(s: &str) -> Addr {
        Addr::from(s.parse::<IpAddr>().unwrap())
    }

    #[test]
    fn reserving_first_and_last_shrinks_only_cidrs_larger_than_two() {
        let mut p = pool(
            "p",
            0,
            vec![
                cidr("10.0.0.0/24"),
                cidr("10.0.1.0/31"),
                cidr("10.0.2.1/32"),
                range("10.0.3.0", "10.0.3.255"),
                cidr("fd00::/127"),
                cidr("fd01::/120"),
            ],
        );
        p.allow_first_last_ips = false;
        let c = Pools::compile(&[p]);
        let r: Vec<String> = c.list[0].ranges.iter().map(|r| r.to_string()).collect();
        assert_eq!(
            r,
            [
                "10.0.0.1-10.0.0.254",
                "10.0.1.0/31",
                "10.0.2.1",
                "10.0.3.0/24",
                "fd00::/127",
                "fd01::1-fd01::fe"
            ]
        );
        assert_eq!(
            c.list[0].total.to_string(),
            (254 + 2 + 1 + 256 + 2 + 254).to_string()
        );
    }

    #[test]
    fn the_newer_of_two_overlapping_pools_conflicts_and_names_the_overlap() {
        let c = Pools::compile(&[
            pool("new", 20, vec![cidr("10.0.0.128/25")]),
            pool("old", 10, vec![cidr("10.0.0.0/24")]),
        ]);
        assert_eq!(c.list[1].conflict, None);
        assert_eq!(
            c.list[0].conflict.as_deref(),
            Some("10.0.0.128/25 overlaps 10.0.0.0/24 of the older pool old")
        );
        assert!(!c.list[0].accepts_new && c.list[1].accepts_new);
        assert_eq!(c.choice_order, [1]);
    }

    #[test]
    fn equal_creation_times_are_broken_by_name() {
        let c = Pools::compile(&[
            pool("b", 0, vec![cidr("10.0.0.0/24")]),
            pool("a", 0, vec![cidr("10.0.0.0/24")]),
        ]);
        assert!(c.list[0].conflict.is_some() && c.list[1].conflict.is_none());
    }

    #[test]
    fn a_conflicting_pool_does_not_make_a_third_pool_conflict() {
        let c = Pools::compile(&[
            pool("a", 1, vec![cidr("10.0.0.0/25")]),
            pool("b", 2, vec![cidr("10.0.0.0/24")]),
            pool("c", 3, vec![cidr("10.0.0.128/25")]),
        ]);
        assert!(c.list[0].conflict.is_none());
        assert!(c.list[1].conflict.is_some());
        assert!(c.list[2].conflict.is_none());
    }

    #[test]
    fn overlapping_blocks_inside_one_pool_and_bad_ranges_make_it_conflict() {
        let mut p = pool(
            "p",
            0,
            vec![cidr("10.0.0.0/24"), range("10.0.0.10", "10.0.0.20")],
        );
        p.invalid_blocks
            .push("block 3: cidr \"10.0.0.0/33\" is not a CIDR".into());
        let c = Pools::compile(&[p]);
        assert_eq!(
            c.list[0].conflict.as_deref(),
            Some(
                "block 3: cidr \"10.0.0.0/33\" is not a CIDR; 10.0.0.0/24 overlaps 10.0.0.10-10.0.0.20 in the same pool"
            )
        );
        let c = Pools::compile(&[pool(
            "q",
            0,
            vec![range("10.0.0.9", "10.0.0.1"), range("10.0.0.1", "fd00::1")],
        )]);
        assert_eq!(
            c.list[0].conflict.as_deref(),
            Some(
                "range 10.0.0.9-10.0.0.1 ends before it starts; range 10.0.0.1-fd00::1 mixes IPv4 and IPv6"
            )
        );
    }

    #[test]
    fn pools_with_a_selector_are_tried_before_catch_all_pools_then_by_name() {
        let mut specific_b = pool("b", 0, vec![cidr("10.0.1.0/24")]);
        specific_b.catch_all = false;
        let mut specific_c = pool("c", 0, vec![cidr("10.0.2.0/24")]);
        specific_c.catch_all = false;
        let mut disabled = pool("0", 0, vec![cidr("10.0.3.0/24")]);
        disabled.disabled = true;
        let c = Pools::compile(&[
            pool("a", 0, vec![cidr("10.0.0.0/24")]),
            specific_c,
            specific_b,
            disabled,
        ]);
        assert_eq!(c.choice_order, [2, 1, 0]);
    }

    #[test]
    fn containing_finds_every_pool_even_across_wide_overlaps() {
        let c = Pools::compile(&[
            pool("wide", 1, vec![cidr("10.0.0.0/8")]),
            pool("a", 2, vec![cidr("10.1.0.0/16"), cidr("fd00::/64")]),
            pool("b", 3, vec![cidr("10.200.0.0/16")]),
        ]);
        assert_eq!(
            c.containing(addr("10.200.3.4")),
            [2, 0],
            "name order: b, wide"
        );
        assert_eq!(c.containing(addr("10.1.0.0")), [1, 0]);
        assert_eq!(c.containing(addr("11.0.0.0")), Vec::<PoolId>::new());
        assert_eq!(c.containing(addr("fd00::5")), [1]);
        assert_eq!(c.containing(addr("fd01::5")), Vec::<PoolId>::new());
    }

    #[test]
    fn totals_count_overlapping_blocks_once() {
        let c = Pools::compile(&[pool("p", 0, vec![cidr("::/0"), cidr("fd00::/64")])]);
        assert_eq!(
            c.list[0].total.to_string(),
            "340282366920938463463374607431768211456"
        );
    }
}
