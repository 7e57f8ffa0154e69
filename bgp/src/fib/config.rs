//! What FIB installation is told: the table, our protocol number, the metric, and which
//! prefixes may be installed.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Our routing protocol number (`proto 212` in `ip route`). Every route with this number in
/// our table is ours, and no other route is ever touched. Not used by the kernel (0-4),
/// iproute2's list (8-18, 42, 99, 186-192) or FRR (186-198); `echo "212 lbspeaker" >
/// /etc/iproute2/rt_protos.d/lbspeaker.conf` makes `ip route` print the name.
pub const DEFAULT_PROTOCOL: u8 = 212;

/// The main routing table.
pub const MAIN_TABLE: u32 = 254;

/// The metric (priority) of our routes: FRR's zebra uses 20 for BGP too, so a connected or
/// static route of the same prefix (metric 0) stays preferred.
pub const DEFAULT_METRIC: u32 = 20;

/// Protocol numbers that belong to someone else.
const TAKEN_PROTOCOLS: &[(u8, u8, &str)] = &[
    (0, 4, "the kernel"),
    (8, 18, "iproute2's list"),
    (42, 42, "babel"),
    (99, 99, "openr"),
    (186, 198, "FRR"),
];

/// A configuration FIB installation refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FibConfigError {
    /// Table 0 (unspecified) or 255 (local).
    #[error("table {0} cannot hold our routes (0 is unspecified, 255 is the kernel's local table)")]
    Table(u32),
    /// A protocol number someone else uses.
    #[error("protocol {number} is used by {owner}; choose one of ours (default 212)")]
    Protocol {
        /// The number.
        number: u8,
        /// Whose it is.
        owner: &'static str,
    },
    /// A prefix rule that does not parse or whose lengths do not fit.
    #[error("prefix rule {rule:?}: {message}")]
    Rule {
        /// The rule as written.
        rule: String,
        /// What is wrong.
        message: String,
    },
}

/// One rule of the prefix filter, as in a prefix list: `172.20.0.0/16 le 24` (every prefix
/// inside 172.20.0.0/16 of length 16 to 24), `0.0.0.0/0` (the default route only),
/// `10.0.0.0/8 ge 24` (lengths 24 to 32), `10.0.0.0/8 ge 24 le 28`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PrefixRule {
    /// The covering prefix.
    pub prefix: IpNet,
    /// Shortest length matched (the prefix's own length when absent).
    pub ge: Option<u8>,
    /// Longest length matched (the prefix's own length when neither is given; the family's
    /// maximum when only `ge` is).
    pub le: Option<u8>,
}

impl PrefixRule {
    /// The exact prefix only.
    pub fn exact(prefix: IpNet) -> PrefixRule {
        PrefixRule {
            prefix: prefix.trunc(),
            ge: None,
            le: None,
        }
    }

    /// The prefix and everything inside it.
    pub fn or_longer(prefix: IpNet) -> PrefixRule {
        PrefixRule {
            prefix: prefix.trunc(),
            ge: None,
            le: Some(prefix.max_prefix_len()),
        }
    }

    fn range(&self) -> (u8, u8) {
        let own = self.prefix.prefix_len();
        let lo = self.ge.unwrap_or(own);
        let hi = match (self.ge, self.le) {
            (_, Some(le)) => le,
            (Some(_), None) => self.prefix.max_prefix_len(),
            (None, None) => own,
        };
        (lo, hi)
    }

    /// Whether `p` is inside the rule's prefix with a length in its range.
    pub fn matches(&self, p: &IpNet) -> bool {
        let (lo, hi) = self.range();
        let len = p.prefix_len();
        len >= lo && len <= hi && self.prefix.contains(p)
    }
}

impl FromStr for PrefixRule {
    type Err = FibConfigError;

    fn from_str(s: &str) -> Result<PrefixRule, FibConfigError> {
        let bad = |message: String| FibConfigError::Rule {
            rule: s.to_owned(),
            message,
        };
        let mut words = s.split_whitespace();
        let prefix: IpNet = words
            .next()
            .ok_or_else(|| bad("empty".into()))?
            .parse()
            .map_err(|_| bad("not a prefix (ADDRESS/LENGTH)".into()))?;
        if prefix.trunc() != prefix {
            return Err(bad(format!(
                "{prefix} has host bits set (did you mean {}?)",
                prefix.trunc()
            )));
        }
        let mut rule = PrefixRule {
            prefix,
            ge: None,
            le: None,
        };
        while let Some(w) = words.next() {
            let n: u8 = words
                .next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| bad(format!("{w} needs a length")))?;
            match w {
                "ge" if rule.ge.is_none() => rule.ge = Some(n),
                "le" if rule.le.is_none() => rule.le = Some(n),
                _ => return Err(bad(format!("{w:?}: expected `ge N` or `le N`, once each"))),
            }
        }
        let (lo, hi) = rule.range();
        let max = prefix.max_prefix_len();
        if lo < prefix.prefix_len() || lo > hi || hi > max {
            return Err(bad(format!(
                "lengths must satisfy {} <= ge <= le <= {max}",
                prefix.prefix_len()
            )));
        }
        Ok(rule)
    }
}

impl fmt::Display for PrefixRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.prefix)?;
        if let Some(ge) = self.ge {
            write!(f, " ge {ge}")?;
        }
        if let Some(le) = self.le {
            write!(f, " le {le}")?;
        }
        Ok(())
    }
}

impl Serialize for PrefixRule {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PrefixRule {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<PrefixRule, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// FIB installation for one speaker instance (opt-in: no config, no routes installed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct FibConfig {
    /// The kernel table (254, main, by default). Another table needs an `ip rule` to be used.
    pub table: u32,
    /// Our protocol number: ownership of routes (see [`DEFAULT_PROTOCOL`]).
    pub protocol: u8,
    /// The metric of our routes.
    pub metric: u32,
    /// Prefixes that may be installed; empty: every received best path.
    pub accept: Vec<PrefixRule>,
    /// Resolve next hops through a default route too (off, as FRR's `ip nht
    /// resolve-via-default` is).
    pub resolve_via_default: bool,
    /// Routes of ours found in the kernel at start are kept (adopted) until every peer of
    /// the instance sent End-of-RIB, or this long at most, before those no longer wanted go.
    #[serde(with = "crate::bfd::millis")]
    pub startup_hold: Duration,
    /// The kernel is compared with what we want at least this often (notifications from the
    /// kernel trigger it too).
    #[serde(with = "crate::bfd::millis")]
    pub resync_interval: Duration,
}

impl Default for FibConfig {
    fn default() -> FibConfig {
        FibConfig {
            table: MAIN_TABLE,
            protocol: DEFAULT_PROTOCOL,
            metric: DEFAULT_METRIC,
            accept: Vec::new(),
            resolve_via_default: false,
            startup_hold: Duration::from_secs(30),
            resync_interval: Duration::from_secs(60),
        }
    }
}

impl FibConfig {
    /// Refuses tables and protocol numbers that are not ours to use.
    pub fn validate(&self) -> Result<(), FibConfigError> {
        if self.table == 0 || self.table == 255 {
            return Err(FibConfigError::Table(self.table));
        }
        if let Some((_, _, owner)) = TAKEN_PROTOCOLS
            .iter()
            .find(|(lo, hi, _)| (*lo..=*hi).contains(&self.protocol))
        {
            return Err(FibConfigError::Protocol {
                number: self.protocol,
                owner,
            });
        }
        Ok(())
    }

    /// Whether a received prefix may be installed.
    pub fn accepts(&self, p: &IpNet) -> bool {
        self.accept.is_empty() || self.accept.iter().any(|r| r.matches(p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn a_rule_with_le_matches_every_length_between_the_prefix_and_le() {
        let r: PrefixRule = "172.20.0.0/16 le 24".parse().unwrap();
        assert!(r.matches(&net("172.20.0.0/16")));
        assert!(r.matches(&net("172.20.3.0/24")));
        assert!(!r.matches(&net("172.20.3.128/25")));
        assert!(!r.matches(&net("172.21.0.0/24")));
        assert!(!r.matches(&net("172.0.0.0/8")));
        assert_eq!(r.to_string(), "172.20.0.0/16 le 24");
    }

    #[test]
    fn a_bare_prefix_matches_itself_only_and_the_default_route_rule_only_the_default() {
        let d: PrefixRule = "0.0.0.0/0".parse().unwrap();
        assert!(d.matches(&net("0.0.0.0/0")));
        assert!(!d.matches(&net("10.0.0.0/8")));
        let v6: PrefixRule = "::/0".parse().unwrap();
        assert!(v6.matches(&net("::/0")));
        assert!(!v6.matches(&net("0.0.0.0/0")), "families never mix");
    }

    #[test]
    fn ge_alone_runs_to_the_longest_length() {
        let r: PrefixRule = "10.0.0.0/8 ge 24".parse().unwrap();
        assert!(r.matches(&net("10.1.2.3/32")));
        assert!(r.matches(&net("10.1.2.0/24")));
        assert!(!r.matches(&net("10.1.0.0/16")));
        let r: PrefixRule = "fd00::/8 ge 48 le 64".parse().unwrap();
        assert!(r.matches(&net("fd00:1::/64")));
        assert!(!r.matches(&net("fd00:1::/80")));
    }

    #[test]
    fn malformed_rules_are_refused_with_the_reason() {
        for (text, why) in [
            ("", "empty"),
            ("172.20.0.0", "not a prefix"),
            ("172.20.0.1/16", "host bits"),
            ("10.0.0.0/8 le", "needs a length"),
            ("10.0.0.0/8 le 4", "lengths must satisfy"),
            ("10.0.0.0/8 ge 30 le 24", "lengths must satisfy"),
            ("10.0.0.0/8 le 33", "lengths must satisfy"),
            ("10.0.0.0/8 le 24 le 25", "once each"),
            ("10.0.0.0/8 eq 24", "expected"),
        ] {
            let e = text.parse::<PrefixRule>().unwrap_err().to_string();
            assert!(e.contains(why), "{text:?}: {e}");
        }
    }

    #[test]
    fn an_empty_filter_accepts_everything_and_rules_are_ored() {
        let mut c = FibConfig::default();
        assert!(c.accepts(&net("192.0.2.0/24")));
        c.accept = vec![
            "172.20.0.0/16 le 24".parse().unwrap(),
            "0.0.0.0/0".parse().unwrap(),
        ];
        assert!(c.accepts(&net("0.0.0.0/0")));
        assert!(c.accepts(&net("172.20.1.0/24")));
        assert!(!c.accepts(&net("10.10.1.0/24")));
    }

    #[test]
    fn tables_and_protocols_of_others_are_refused() {
        let mut c = FibConfig::default();
        assert_eq!(c.validate(), Ok(()));
        c.table = 255;
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("local table")
        );
        c.table = 100;
        for taken in [0u8, 2, 4, 11, 12, 16, 42, 186, 196, 198] {
            c.protocol = taken;
            assert!(c.validate().is_err(), "{taken}");
        }
        c.protocol = 199;
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn a_configuration_reads_from_json_with_rules_as_text() {
        let c: FibConfig = serde_json::from_str(
            r#"{"table": 100, "accept": ["172.20.0.0/16 le 24", "0.0.0.0/0"], "startup-hold": 5000}"#,
        )
        .unwrap();
        assert_eq!(c.table, 100);
        assert_eq!(c.protocol, DEFAULT_PROTOCOL);
        assert_eq!(c.accept[0], "172.20.0.0/16 le 24".parse().unwrap());
        assert_eq!(c.startup_hold, Duration::from_secs(5));
        let back = serde_json::to_value(&c).unwrap();
        assert_eq!(back["accept"][0], "172.20.0.0/16 le 24");
        assert!(serde_json::from_str::<FibConfig>(r#"{"accept": ["10.0.0.1/8"]}"#).is_err());
        assert!(serde_json::from_str::<FibConfig>(r#"{"colour": 1}"#).is_err());
    }
}
