//! Exact address counts. A /64 holds 2^64 addresses and `::/0` holds 2^128, one more than a
//! `u128` can count, and a pool may hold several such blocks: counts are 192-bit integers,
//! printed as exact decimals.

use std::cmp::Ordering;
use std::fmt;

/// A non-negative integer below 2^192.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Count {
    /// Little-endian 64-bit limbs.
    limbs: [u64; 3],
}

impl Count {
    /// Zero.
    pub const ZERO: Count = Count { limbs: [0; 3] };

    /// `n`.
    pub fn from_u128(n: u128) -> Self {
        Count {
            limbs: [n as u64, (n >> 64) as u64, 0],
        }
    }

    /// The number of addresses from `first` to `last` inclusive (`last - first + 1`, which is
    /// 2^128 for the whole IPv6 space). `last < first` counts as zero.
    pub fn inclusive(first: u128, last: u128) -> Self {
        if last < first {
            return Count::ZERO;
        }
        Count::from_u128(last - first).saturating_add(Count::from_u128(1))
    }

    /// The value, when it fits in 128 bits.
    pub fn to_u128(self) -> Option<u128> {
        (self.limbs[2] == 0).then(|| (u128::from(self.limbs[1]) << 64) | u128::from(self.limbs[0]))
    }

    /// `self + other`, saturating at 2^192 - 1 (unreachable for address counts).
    pub fn saturating_add(self, other: Count) -> Count {
        let mut out = [0u64; 3];
        let mut carry = false;
        for (i, o) in out.iter_mut().enumerate() {
            let (s1, c1) = self.limbs[i].overflowing_add(other.limbs[i]);
            let (s2, c2) = s1.overflowing_add(u64::from(carry));
            *o = s2;
            carry = c1 || c2;
        }
        if carry {
            Count {
                limbs: [u64::MAX; 3],
            }
        } else {
            Count { limbs: out }
        }
    }

    /// `self - other`, or zero when `other` is larger.
    pub fn saturating_sub(self, other: Count) -> Count {
        if other >= self {
            return Count::ZERO;
        }
        let mut out = [0u64; 3];
        let mut borrow = false;
        for (i, o) in out.iter_mut().enumerate() {
            let (d1, b1) = self.limbs[i].overflowing_sub(other.limbs[i]);
            let (d2, b2) = d1.overflowing_sub(u64::from(borrow));
            *o = d2;
            borrow = b1 || b2;
        }
        Count { limbs: out }
    }

    /// Divides by `d` in place, returning the remainder.
    fn div_rem_small(&mut self, d: u64) -> u64 {
        let mut rem: u128 = 0;
        for limb in self.limbs.iter_mut().rev() {
            let cur = (rem << 64) | u128::from(*limb);
            *limb = (cur / u128::from(d)) as u64;
            rem = cur % u128::from(d);
        }
        rem as u64
    }

    fn is_zero(&self) -> bool {
        self.limbs == [0; 3]
    }
}

impl From<u64> for Count {
    fn from(n: u64) -> Self {
        Count::from_u128(u128::from(n))
    }
}

impl Ord for Count {
    fn cmp(&self, other: &Self) -> Ordering {
        self.limbs.iter().rev().cmp(other.limbs.iter().rev())
    }
}

impl PartialOrd for Count {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Count {
    /// Exact decimal.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(n) = self.to_u128() {
            return write!(f, "{n}");
        }
        // Peel off 19 decimal digits at a time (10^19 < 2^64).
        const CHUNK: u64 = 10_000_000_000_000_000_000;
        let mut n = *self;
        let mut chunks = Vec::new();
        while !n.is_zero() {
            chunks.push(n.div_rem_small(CHUNK));
        }
        let mut it = chunks.iter().rev();
        if let Some(first) = it.next() {
            write!(f, "{first}")?;
        }
        for c in it {
            write!(f, "{c:019}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_whole_ipv6_space_counts_exactly() {
        let all = Count::inclusive(0, u128::MAX);
        assert_eq!(all.to_string(), "340282366920938463463374607431768211456");
        assert_eq!(all.to_u128(), None);
        assert_eq!(
            all.saturating_add(all).to_string(),
            "680564733841876926926749214863536422912"
        );
        assert_eq!(
            all.saturating_sub(Count::from_u128(1)).to_u128(),
            Some(u128::MAX)
        );
    }

    #[test]
    fn a_slash_64_is_two_to_the_sixty_four() {
        let n = Count::inclusive(1 << 64, (2 << 64) - 1);
        assert_eq!(n.to_string(), "18446744073709551616");
        assert_eq!(
            n.saturating_add(Count::from_u128(254)).to_string(),
            "18446744073709551870"
        );
    }

    #[test]
    fn subtraction_saturates_and_ordering_is_numeric() {
        let a = Count::from_u128(5);
        let b = Count::inclusive(0, u128::MAX);
        assert_eq!(a.saturating_sub(b), Count::ZERO);
        assert!(b > a);
        assert_eq!(b.saturating_sub(b), Count::ZERO);
        assert_eq!(Count::inclusive(9, 3), Count::ZERO);
        assert_eq!(Count::ZERO.to_string(), "0");
    }

    #[test]
    fn decimal_printing_keeps_inner_zeros() {
        // 2^128 * 3 + 7: limbs [7, 0, 3].
        let n = Count { limbs: [7, 0, 3] };
        let three_times = Count::inclusive(0, u128::MAX)
            .saturating_add(Count::inclusive(0, u128::MAX))
            .saturating_add(Count::inclusive(0, u128::MAX))
            .saturating_add(Count::from_u128(7));
        assert_eq!(n, three_times);
        assert_eq!(n.to_string(), "1020847100762815390390123822295304634375");
    }
}
