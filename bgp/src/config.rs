//! Configuration newtypes validated at the boundary: an AS number, a hold time, a router id.
//!
//! Each has a `new` that refuses what RFC 4271 and RFC 6793 do not allow, and serde
//! (de)serialization that goes through the same check, so a bad value in a configuration file
//! is an error naming the field instead of a session that never comes up.

use std::fmt;
use std::net::Ipv4Addr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A configuration value that RFC 4271 / RFC 6793 do not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// AS 0 is reserved (RFC 7607); as a local AS it is never valid.
    #[error("AS number 0 is reserved")]
    ZeroAsn,
    /// Hold time 1 or 2 (RFC 4271 §4.2: 0 or at least 3).
    #[error("hold time {0} s: must be 0 or at least 3")]
    HoldTime(u16),
    /// Keepalive longer than the hold time, or 0 with a non-zero hold time.
    #[error("keepalive {keepalive} s does not fit hold time {hold} s")]
    Keepalive {
        /// The keepalive interval.
        keepalive: u16,
        /// The hold time.
        hold: u16,
    },
    /// Router id 0.0.0.0 (RFC 6286).
    #[error("router id 0.0.0.0 is not valid")]
    ZeroRouterId,
    /// Anything else, named.
    #[error("{0}")]
    Invalid(String),
}

/// A non-zero AS number (2- or 4-octet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Asn(u32);

impl Asn {
    /// A non-zero AS number.
    pub fn new(asn: u32) -> Result<Asn, ConfigError> {
        if asn == 0 {
            Err(ConfigError::ZeroAsn)
        } else {
            Ok(Asn(asn))
        }
    }

    /// The number.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl fmt::Display for Asn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A hold time in seconds: 0 (no keepalives, no hold timer) or at least 3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HoldTime(u16);

impl HoldTime {
    /// Cilium's and RFC 4271's suggested default, 90 s.
    pub const DEFAULT: HoldTime = HoldTime(90);

    /// A hold time; 1 and 2 are refused.
    pub fn new(seconds: u16) -> Result<HoldTime, ConfigError> {
        if seconds == 1 || seconds == 2 {
            Err(ConfigError::HoldTime(seconds))
        } else {
            Ok(HoldTime(seconds))
        }
    }

    /// Seconds.
    pub fn seconds(self) -> u16 {
        self.0
    }
}

impl Default for HoldTime {
    fn default() -> Self {
        HoldTime::DEFAULT
    }
}

/// A BGP identifier: a non-zero 32-bit value written as an IPv4 address (RFC 6286).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RouterId(Ipv4Addr);

impl RouterId {
    /// A router id; 0.0.0.0 is refused.
    pub fn new(id: Ipv4Addr) -> Result<RouterId, ConfigError> {
        if id.is_unspecified() {
            Err(ConfigError::ZeroRouterId)
        } else {
            Ok(RouterId(id))
        }
    }

    /// The address form.
    pub fn get(self) -> Ipv4Addr {
        self.0
    }
}

impl fmt::Display for RouterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

macro_rules! serde_via {
    ($t:ty, $inner:ty, $get:ident) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                self.$get().serialize(s)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let v = <$inner>::deserialize(d)?;
                <$t>::new(v).map_err(serde::de::Error::custom)
            }
        }
    };
}

serde_via!(Asn, u32, get);
serde_via!(HoldTime, u16, seconds);
serde_via!(RouterId, Ipv4Addr, get);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hold_times_of_one_and_two_seconds_are_refused() {
        assert!(HoldTime::new(0).is_ok());
        assert_eq!(HoldTime::new(2), Err(ConfigError::HoldTime(2)));
        assert_eq!(HoldTime::new(3).unwrap().seconds(), 3);
    }

    #[test]
    fn zero_asn_and_router_id_are_refused_also_when_deserialized() {
        assert!(Asn::new(0).is_err());
        assert!(RouterId::new(Ipv4Addr::UNSPECIFIED).is_err());
        let e = serde_json::from_str::<HoldTime>("1").unwrap_err();
        assert!(e.to_string().contains("at least 3"), "{e}");
        let id: RouterId = serde_json::from_str("\"10.0.0.1\"").unwrap();
        assert_eq!(id.get(), Ipv4Addr::new(10, 0, 0, 1));
    }
}
