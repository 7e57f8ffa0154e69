//! Maglev consistent hashing (Eisenbud et al., NSDI 2016): a lookup table of `M` entries
//! (M prime) in which every backend owns about `M / N` entries, filled from per-backend
//! permutations so that adding or removing one backend moves few entries. Each node computes
//! the same table from the same backends, and the programs pick `table[hash(tuple) % M]`, so
//! every node sends a flow to the same backend.
//!
//! The hashes are fixed here (FNV-1a, 64 bits, two seeds) rather than std's, whose algorithm
//! may change between Rust releases: nodes running different builds must agree.

use crate::model::BackendKey;

/// Cilium's default table size.
pub const DEFAULT_M: u32 = 16381;

/// Table sizes that may be configured: primes, as the permutation needs, from Cilium's list.
pub const SUPPORTED_M: [u32; 10] = [
    251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071,
];

fn fnv1a(seed: u64, bytes: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // A final avalanche so that nearby names spread over the table.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h
}

fn name(b: &BackendKey) -> Vec<u8> {
    format!("{}:{}", b.address, b.port).into_bytes()
}

/// The table for `backends` (each with its id), `m` entries of backend ids. Backends are taken
/// in address order, so the table does not depend on the order they are given in. An empty
/// list gives an empty table.
pub fn table(backends: &[(BackendKey, u32)], m: u32) -> Vec<u32> {
    if backends.is_empty() || m < 2 {
        return Vec::new();
    }
    let mut sorted: Vec<&(BackendKey, u32)> = backends.iter().collect();
    sorted.sort_by_key(|(k, _)| *k);
    let m64 = u64::from(m);
    let perms: Vec<(u64, u64)> = sorted
        .iter()
        .map(|(k, _)| {
            let n = name(k);
            let offset = fnv1a(0x5eed_0001, &n) % m64;
            let skip = fnv1a(0x5eed_0002, &n) % (m64 - 1) + 1;
            (offset, skip)
        })
        .collect();
    let mut next = vec![0u64; sorted.len()];
    let mut entry: Vec<Option<u32>> = vec![None; m as usize];
    let mut filled = 0u64;
    'fill: loop {
        for (i, (offset, skip)) in perms.iter().enumerate() {
            let mut c = ((offset + next[i] * skip) % m64) as usize;
            while entry.get(c).is_some_and(Option::is_some) {
                next[i] += 1;
                c = ((offset + next[i] * skip) % m64) as usize;
            }
            if let Some(slot) = entry.get_mut(c) {
                *slot = Some(sorted[i].1);
            }
            next[i] += 1;
            filled += 1;
            if filled == m64 {
                break 'fill;
            }
        }
    }
    entry.into_iter().map(|e| e.unwrap_or(0)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn keys(n: u32) -> Vec<(BackendKey, u32)> {
        (0..n)
            .map(|i| {
                (
                    BackendKey {
                        address: format!("10.0.{}.{}", i / 250, i % 250 + 1).parse().unwrap(),
                        port: 8080,
                    },
                    i + 1,
                )
            })
            .collect()
    }

    #[test]
    fn every_entry_is_filled_and_backends_share_the_table_evenly() {
        let t = table(&keys(7), 1021);
        assert_eq!(t.len(), 1021);
        let mut counts: HashMap<u32, usize> = HashMap::new();
        for id in &t {
            *counts.entry(*id).or_default() += 1;
        }
        assert_eq!(counts.len(), 7);
        assert!(
            counts.values().all(|c| (140..=152).contains(c)),
            "{counts:?}"
        );
    }

    #[test]
    fn the_table_does_not_depend_on_input_order() {
        let mut k = keys(5);
        let a = table(&k, 251);
        k.reverse();
        assert_eq!(a, table(&k, 251));
    }

    #[test]
    fn removing_one_of_ten_backends_moves_few_other_entries() {
        let k = keys(10);
        let before = table(&k, DEFAULT_M);
        let after = table(&k[1..], DEFAULT_M);
        let removed = k[0].1;
        let moved = before
            .iter()
            .zip(&after)
            .filter(|(b, a)| **b != removed && b != a)
            .count();
        // Entries of surviving backends that changed owner: a small fraction.
        assert!(moved < DEFAULT_M as usize / 20, "{moved} entries moved");
    }

    #[test]
    fn no_backends_give_an_empty_table() {
        assert!(table(&[], DEFAULT_M).is_empty());
    }
}
