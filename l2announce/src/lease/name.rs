//! Lease names: which lease an announced address is elected with.
//!
//! One lease per announced address, and services that share an address share its lease (so
//! exactly one node answers for it). Addresses whose set of services is the same share one
//! lease too, so a dual-stack service has one lease for its IPv4 and IPv6 addresses, as in
//! Cilium. The name is a pure function of the announced services, identical on every node:
//!
//! | what the lease covers | name |
//! |---|---|
//! | one service | `cilium-l2announce-<namespace>-<service>` (Cilium's name) |
//! | one service whose Cilium name another announced service also gets | `cilium-l2announce-<namespace>.<service>` |
//! | several services (a shared IPv4 address) | `cilium-l2announce-192.168.10.211` |
//! | several services (a shared IPv6 address) | `cilium-l2announce-fd00.10.0.0.0.0.0.211` |
//!
//! Cilium's `cilium-l2announce-<namespace>-<service>` is not injective: `foo`/`bar-baz` and
//! `foo-bar`/`baz` both give `cilium-l2announce-foo-bar-baz`, and Cilium then elects the two
//! services with one lease (cilium/cilium#48084). [`LeaseNamer`] keeps Cilium's name, which
//! users and their tooling know, for every service it does not collide for, and names the
//! services of a collision `<namespace>.<service>` instead: a `.` appears in neither a
//! namespace (an RFC 1123 label) nor a service name (an RFC 1035 label), so that form is
//! injective and never equals a Cilium name (which has no `.`). Shared leases are named after
//! the smallest address they cover, written with `.` between IPv4 octets or between the eight
//! IPv6 groups (hexadecimal, no leading zeros): three or seven dots, where the other names
//! have none or one. So different sets of services never get the same name.
//!
//! The namer must see the same services on every node: the daemon hands the runner every
//! announced address, marking those this node may not answer for as not eligible, rather
//! than leaving them out.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// Prefix of every lease this crate names (Cilium's).
pub const LEASE_PREFIX: &str = "cilium-l2announce-";

/// A name that is not a valid Kubernetes object name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// Not an RFC 1123 label (namespaces), an RFC 1035 label (services) or an RFC 1123
    /// subdomain (lease names).
    #[error("{what} {value:?} is not valid: {why}")]
    Invalid {
        /// What kind of name.
        what: &'static str,
        /// The name.
        value: String,
        /// The rule it breaks.
        why: &'static str,
    },
}

fn check_label(what: &'static str, value: &str, letter_first: bool) -> Result<(), NameError> {
    let bad = |why| {
        Err(NameError::Invalid {
            what,
            value: value.to_owned(),
            why,
        })
    };
    if value.is_empty() || value.len() > 63 {
        return bad("1 to 63 characters");
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return bad("only a-z, 0-9 and '-'");
    }
    if value.starts_with('-') || value.ends_with('-') {
        return bad("must start and end with a letter or digit");
    }
    if letter_first && !value.starts_with(|c: char| c.is_ascii_lowercase()) {
        return bad("must start with a letter");
    }
    Ok(())
}

/// A service: namespace and name, both validated as Kubernetes requires.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceKey {
    namespace: String,
    name: String,
}

impl ServiceKey {
    /// A service key; the namespace must be an RFC 1123 label, the name an RFC 1035 label.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Result<Self, NameError> {
        let (namespace, name) = (namespace.into(), name.into());
        check_label("namespace", &namespace, false)?;
        check_label("service name", &name, true)?;
        Ok(ServiceKey { namespace, name })
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The service's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

impl FromStr for ServiceKey {
    type Err = NameError;

    /// `namespace/name`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('/') {
            Some((ns, name)) => ServiceKey::new(ns, name),
            None => Err(NameError::Invalid {
                what: "service key",
                value: s.to_owned(),
                why: "expected namespace/name",
            }),
        }
    }
}

impl serde::Serialize for ServiceKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for ServiceKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// A lease's name: an RFC 1123 subdomain (what Kubernetes accepts as `metadata.name`), which
/// is also safe as a file name (no `/`, no `..`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LeaseName(String);

impl LeaseName {
    /// Validates a name.
    pub fn new(name: impl Into<String>) -> Result<Self, NameError> {
        let name = name.into();
        if name.len() > 253 {
            return Err(NameError::Invalid {
                what: "lease name",
                value: name,
                why: "at most 253 characters",
            });
        }
        for part in name.split('.') {
            if let Err(NameError::Invalid { why, .. }) = check_label("lease name", part, false) {
                return Err(NameError::Invalid {
                    what: "lease name",
                    value: name,
                    why,
                });
            }
        }
        Ok(LeaseName(name))
    }

    /// Cilium's lease name for a single service, `cilium-l2announce-<namespace>-<service>`.
    /// Not injective on its own: use a [`LeaseNamer`] to name a set of leases.
    pub fn for_service(service: &ServiceKey) -> LeaseName {
        LeaseName(format!(
            "{LEASE_PREFIX}{}-{}",
            service.namespace, service.name
        ))
    }

    /// The injective name of a single service, `cilium-l2announce-<namespace>.<service>`, for
    /// services whose Cilium name collides with another's.
    pub fn for_service_disambiguated(service: &ServiceKey) -> LeaseName {
        LeaseName(format!(
            "{LEASE_PREFIX}{}.{}",
            service.namespace, service.name
        ))
    }

    /// The lease of an address shared by several services.
    pub fn for_shared_address(address: IpAddr) -> LeaseName {
        let text = match address {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => v6
                .segments()
                .iter()
                .map(|s| format!("{s:x}"))
                .collect::<Vec<_>>()
                .join("."),
        };
        LeaseName(format!("{LEASE_PREFIX}{text}"))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Names the leases of one set of announced services (see the module documentation): Cilium's
/// name for each service unless another service of the set gets the same one.
#[derive(Debug, Clone, Default)]
pub struct LeaseNamer {
    colliding: BTreeSet<LeaseName>,
}

impl LeaseNamer {
    /// A namer for these services: every service that has a lease of its own.
    pub fn new<'a>(services: impl IntoIterator<Item = &'a ServiceKey>) -> LeaseNamer {
        let mut seen: BTreeMap<LeaseName, &ServiceKey> = BTreeMap::new();
        let mut colliding = BTreeSet::new();
        for s in services {
            let name = LeaseName::for_service(s);
            match seen.get(&name) {
                Some(other) if *other != s => {
                    colliding.insert(name);
                }
                Some(_) => {}
                None => {
                    seen.insert(name, s);
                }
            }
        }
        LeaseNamer { colliding }
    }

    /// The lease of a single service.
    pub fn for_service(&self, service: &ServiceKey) -> LeaseName {
        let name = LeaseName::for_service(service);
        if self.colliding.contains(&name) {
            LeaseName::for_service_disambiguated(service)
        } else {
            name
        }
    }

    /// The lease for addresses used by exactly `services`: the service's lease for one
    /// service, else the shared lease of the smallest address. `None` without services or
    /// addresses.
    pub fn for_group(
        &self,
        services: &BTreeSet<ServiceKey>,
        addresses: &BTreeSet<IpAddr>,
    ) -> Option<LeaseName> {
        let mut it = services.iter();
        match (it.next(), it.next()) {
            (None, _) => None,
            (Some(one), None) => Some(self.for_service(one)),
            (Some(_), Some(_)) => addresses.first().map(|a| LeaseName::for_shared_address(*a)),
        }
    }
}

impl fmt::Display for LeaseName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl serde::Serialize for LeaseName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for LeaseName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        LeaseName::new(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn svc(ns: &str, name: &str) -> ServiceKey {
        ServiceKey::new(ns, name).unwrap()
    }

    #[test]
    fn a_service_keeps_ciliums_name_dashes_and_all() {
        let namer = LeaseNamer::new(&[
            svc("default", "webpod"),
            svc("kube-system", "cilium-ingress"),
        ]);
        assert_eq!(
            namer.for_service(&svc("default", "webpod")).as_str(),
            "cilium-l2announce-default-webpod"
        );
        assert_eq!(
            namer
                .for_service(&svc("kube-system", "cilium-ingress"))
                .as_str(),
            "cilium-l2announce-kube-system-cilium-ingress"
        );
    }

    #[test]
    fn services_whose_cilium_names_collide_get_distinct_names_so_48084_cannot_happen() {
        let (a, b) = (svc("foo", "bar-baz"), svc("foo-bar", "baz"));
        assert_eq!(LeaseName::for_service(&a), LeaseName::for_service(&b));
        let namer = LeaseNamer::new([&a, &b]);
        assert_eq!(
            namer.for_service(&a).as_str(),
            "cilium-l2announce-foo.bar-baz"
        );
        assert_eq!(
            namer.for_service(&b).as_str(),
            "cilium-l2announce-foo-bar.baz"
        );
        // Alone, each keeps Cilium's name.
        let alone = LeaseNamer::new([&a]);
        assert_eq!(
            alone.for_service(&a).as_str(),
            "cilium-l2announce-foo-bar-baz"
        );
        // A service named twice is not a collision.
        let twice = LeaseNamer::new([&a, &a]);
        assert_eq!(
            twice.for_service(&a).as_str(),
            "cilium-l2announce-foo-bar-baz"
        );
    }

    #[test]
    fn shared_addresses_are_named_after_the_address() {
        assert_eq!(
            LeaseName::for_shared_address("192.168.10.211".parse().unwrap()).as_str(),
            "cilium-l2announce-192.168.10.211"
        );
        assert_eq!(
            LeaseName::for_shared_address("fd00:10::211".parse().unwrap()).as_str(),
            "cilium-l2announce-fd00.10.0.0.0.0.0.211"
        );
        let two: BTreeSet<_> = [svc("default", "a"), svc("default", "b")].into();
        let addrs: BTreeSet<IpAddr> = [
            "fd00:10::211".parse().unwrap(),
            "192.168.10.211".parse().unwrap(),
        ]
        .into();
        let namer = LeaseNamer::default();
        assert_eq!(
            namer.for_group(&two, &addrs).unwrap().as_str(),
            "cilium-l2announce-192.168.10.211"
        );
        let one: BTreeSet<_> = [svc("default", "a")].into();
        assert_eq!(
            namer.for_group(&one, &addrs).unwrap().as_str(),
            "cilium-l2announce-default-a"
        );
        assert_eq!(namer.for_group(&BTreeSet::new(), &addrs), None);
    }

    #[test]
    fn every_name_made_is_a_valid_lease_name() {
        for n in [
            LeaseName::for_service(&svc("default", "webpod")),
            LeaseName::for_service(&svc("kube-system", "cilium-ingress")),
            LeaseName::for_service_disambiguated(&svc("kube-system", "cilium-ingress")),
            LeaseName::for_shared_address("192.168.10.211".parse().unwrap()),
            LeaseName::for_shared_address("::".parse().unwrap()),
        ] {
            assert_eq!(LeaseName::new(n.as_str()).unwrap(), n);
        }
    }

    #[test]
    fn invalid_names_are_refused_with_the_rule() {
        assert!(ServiceKey::new("Default", "web").is_err());
        assert!(ServiceKey::new("default", "1web").is_err());
        assert!(ServiceKey::new("-ns", "web").is_err());
        assert!(ServiceKey::new("ns", "web.x").is_err());
        assert!(ServiceKey::new("ns", "x".repeat(64)).is_err());
        assert!("default".parse::<ServiceKey>().is_err());
        assert_eq!(
            "default/webpod".parse::<ServiceKey>().unwrap(),
            svc("default", "webpod")
        );
        for bad in ["", "../x", "a/b", "a..b", ".a", "A", &"a".repeat(254)] {
            assert!(LeaseName::new(bad).is_err(), "{bad:?}");
        }
    }

    fn label(letter_first: bool) -> impl Strategy<Value = String> {
        let re = if letter_first {
            "[a-z]([a-z0-9-]{0,8}[a-z0-9])?"
        } else {
            "[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?"
        };
        proptest::string::string_regex(re).unwrap()
    }

    fn key() -> impl Strategy<Value = ServiceKey> {
        (label(false), label(true)).prop_map(|(ns, n)| ServiceKey::new(ns, n).unwrap())
    }

    proptest! {
        #[test]
        fn different_services_get_different_leases(keys in proptest::collection::vec(key(), 1..12)) {
            let namer = LeaseNamer::new(&keys);
            let distinct: BTreeSet<&ServiceKey> = keys.iter().collect();
            let names: BTreeSet<LeaseName> = distinct.iter().map(|k| namer.for_service(k)).collect();
            prop_assert_eq!(names.len(), distinct.len());
        }

        #[test]
        fn a_collision_exists_wherever_the_namer_disambiguates(a in key(), b in key()) {
            prop_assume!(a != b);
            let namer = LeaseNamer::new([&a, &b]);
            let collide = LeaseName::for_service(&a) == LeaseName::for_service(&b);
            prop_assert_eq!(namer.for_service(&a) != LeaseName::for_service(&a), collide);
        }

        #[test]
        fn a_shared_lease_never_takes_a_services_name(k in key(), addr in any::<u128>(), v4 in any::<u32>()) {
            for s in [LeaseName::for_service(&k), LeaseName::for_service_disambiguated(&k)] {
                prop_assert_ne!(&s, &LeaseName::for_shared_address(IpAddr::V6(addr.into())));
                prop_assert_ne!(&s, &LeaseName::for_shared_address(IpAddr::V4(v4.into())));
            }
        }

        #[test]
        fn shared_leases_of_different_addresses_differ(a in any::<u128>(), b in any::<u128>(), c in any::<u32>()) {
            prop_assume!(a != b);
            prop_assert_ne!(LeaseName::for_shared_address(IpAddr::V6(a.into())), LeaseName::for_shared_address(IpAddr::V6(b.into())));
            prop_assert_ne!(LeaseName::for_shared_address(IpAddr::V6(a.into())), LeaseName::for_shared_address(IpAddr::V4(c.into())));
        }
    }
}
