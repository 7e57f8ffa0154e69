//! CiliumBGPAdvertisement: what to announce (PodCIDR, pod IP pools, service addresses,
//! interface addresses) and with which attributes.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::validate::{Errors, Validate};

/// A list of advertisements, selected by CiliumBGPPeerConfig families through its labels.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "cilium.io",
    version = "v2",
    kind = "CiliumBGPAdvertisement",
    shortname = "cbgpadvert",
    category = "cilium",
    category = "ciliumbgp",
    derive = "PartialEq",
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    doc = "CiliumBGPAdvertisement defines which routes are advertised to BGP peers and with which attributes."
)]
#[serde(rename_all = "camelCase")]
pub struct CiliumBGPAdvertisementSpec {
    /// The advertisements.
    pub advertisements: Vec<BgpAdvertisement>,
}

/// One advertisement.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BgpAdvertisement {
    /// What is advertised.
    pub advertisement_type: AdvertisementType,
    /// For `Service`: which addresses, and aggregation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<BgpServiceOptions>,
    /// For `Interface`: the interface whose addresses are advertised.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<BgpInterfaceOptions>,
    /// Selects the services or pod IP pools (with their pseudo-labels); nil = none. Not allowed
    /// for `PodCIDR`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::label_selector")]
    pub selector: Option<LabelSelector>,
    /// Path attributes added to the routes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<BgpAttributes>,
}

/// Advertisement types.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum AdvertisementType {
    /// The node's own PodCIDR(s).
    PodCIDR,
    /// CIDRs of the selected CiliumPodIPPools allocated to the node.
    CiliumPodIPPool,
    /// Addresses of the selected services.
    Service,
    /// Each address on a local interface, as a host route.
    Interface,
}

/// Options of `Service` advertisements.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BgpServiceOptions {
    /// Which of the service's addresses (at least one).
    #[schemars(length(min = 1))]
    pub addresses: Vec<ServiceAddressType>,
    /// Announce IPv4 addresses aggregated to this prefix length (0..31) instead of /32.
    #[serde(
        default,
        rename = "aggregationLengthIPv4",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(range(min = 0, max = 31))]
    pub aggregation_length_ipv4: Option<i16>,
    /// Announce IPv6 addresses aggregated to this prefix length (0..127) instead of /128.
    #[serde(
        default,
        rename = "aggregationLengthIPv6",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(range(min = 0, max = 127))]
    pub aggregation_length_ipv6: Option<i16>,
}

/// Kinds of service address.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum ServiceAddressType {
    /// `status.loadBalancer.ingress[].ip`.
    LoadBalancerIP,
    /// `spec.clusterIPs`.
    ClusterIP,
    /// `spec.externalIPs`.
    ExternalIP,
}

/// Options of `Interface` advertisements.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BgpInterfaceOptions {
    /// Interface name.
    pub name: String,
}

/// Attributes set on advertised routes.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BgpAttributes {
    /// Communities added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub communities: Option<BgpCommunities>,
    /// LOCAL_PREF (iBGP only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_preference: Option<i64>,
}

/// Communities, in three notations.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BgpCommunities {
    /// RFC 1997 communities: a 32-bit decimal `N` or `a:b` with 16-bit halves.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(regex(pattern = r"^([0-9]{1,10}|[0-9]{1,5}:[0-9]{1,5})$")))]
    pub standard: Vec<String>,
    /// Well-known communities by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub well_known: Vec<WellKnownCommunity>,
    /// RFC 8092 large communities `a:b:c`, 32-bit parts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(regex(pattern = r"^[0-9]{1,10}:[0-9]{1,10}:[0-9]{1,10}$")))]
    pub large: Vec<String>,
}

/// The well-known community names Cilium accepts and their values (RFC 1997, 7999, 8326,
/// 7611, 9494 and the IANA registry).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "kebab-case")]
#[allow(missing_docs)]
pub enum WellKnownCommunity {
    Internet,
    PlannedShut,
    AcceptOwn,
    #[serde(rename = "route-filter-translated-v4")]
    RouteFilterTranslatedV4,
    #[serde(rename = "route-filter-v4")]
    RouteFilterV4,
    #[serde(rename = "route-filter-translated-v6")]
    RouteFilterTranslatedV6,
    #[serde(rename = "route-filter-v6")]
    RouteFilterV6,
    LlgrStale,
    NoLlgr,
    Blackhole,
    NoExport,
    NoAdvertise,
    NoExportSubconfed,
    NoPeer,
}

impl WellKnownCommunity {
    /// The 32-bit community value.
    pub fn value(self) -> u32 {
        use WellKnownCommunity::*;
        match self {
            Internet => 0,
            PlannedShut => 0xffff_0000,
            AcceptOwn => 0xffff_0001,
            RouteFilterTranslatedV4 => 0xffff_0002,
            RouteFilterV4 => 0xffff_0003,
            RouteFilterTranslatedV6 => 0xffff_0004,
            RouteFilterV6 => 0xffff_0005,
            LlgrStale => 0xffff_0006,
            NoLlgr => 0xffff_0007,
            Blackhole => 0xffff_029a,
            NoExport => 0xffff_ff01,
            NoAdvertise => 0xffff_ff02,
            NoExportSubconfed => 0xffff_ff03,
            NoPeer => 0xffff_ff04,
        }
    }
}

/// Parses a standard community: `N` (0..4294967295) or `a:b` (each 0..65535).
pub fn parse_standard_community(s: &str) -> Option<u32> {
    match s.split_once(':') {
        Some((a, b)) => {
            let a: u16 = parse_decimal(a)?;
            let b: u16 = parse_decimal(b)?;
            Some((u32::from(a) << 16) | u32::from(b))
        }
        None => parse_decimal(s),
    }
}

/// Parses a large community `a:b:c` (each 0..4294967295).
pub fn parse_large_community(s: &str) -> Option<(u32, u32, u32)> {
    let mut it = s.split(':');
    let a = parse_decimal(it.next()?)?;
    let b = parse_decimal(it.next()?)?;
    let c = parse_decimal(it.next()?)?;
    it.next().is_none().then_some((a, b, c))
}

/// Plain decimal digits only (no sign, no spaces), as the CRD patterns require.
fn parse_decimal<T: std::str::FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

impl Validate for CiliumBGPAdvertisement {
    fn validate_into(&self, e: &mut Errors) {
        for (i, a) in self.spec.advertisements.iter().enumerate() {
            let p = format!("spec.advertisements[{i}]");
            let t = a.advertisement_type;
            match (t, &a.service) {
                (AdvertisementType::Service, None) => e.push(
                    format!("{p}.service"),
                    None,
                    "is required for advertisementType Service",
                ),
                (AdvertisementType::Service, Some(s)) => {
                    if s.addresses.is_empty() {
                        e.push(
                            format!("{p}.service.addresses"),
                            None,
                            "must list at least one address type",
                        );
                    }
                    e.range(
                        format_args!("{p}.service.aggregationLengthIPv4"),
                        s.aggregation_length_ipv4,
                        0,
                        31,
                    );
                    e.range(
                        format_args!("{p}.service.aggregationLengthIPv6"),
                        s.aggregation_length_ipv6,
                        0,
                        127,
                    );
                }
                (_, Some(_)) => e.push(
                    format!("{p}.service"),
                    None,
                    format!("is not allowed for advertisementType {t:?}"),
                ),
                _ => {}
            }
            match (t, &a.interface) {
                (AdvertisementType::Interface, None) => e.push(
                    format!("{p}.interface"),
                    None,
                    "is required for advertisementType Interface",
                ),
                (AdvertisementType::Interface, Some(iface)) => e.length(
                    format_args!("{p}.interface.name"),
                    &iface.name,
                    1,
                    usize::MAX,
                ),
                (_, Some(_)) => e.push(
                    format!("{p}.interface"),
                    None,
                    format!("is not allowed for advertisementType {t:?}"),
                ),
                _ => {}
            }
            if t == AdvertisementType::PodCIDR && a.selector.is_some() {
                e.push(
                    format!("{p}.selector"),
                    None,
                    "is not allowed for advertisementType PodCIDR",
                );
            }
            let Some(attrs) = &a.attributes else { continue };
            e.range(
                format_args!("{p}.attributes.localPreference"),
                attrs.local_preference,
                0,
                4294967295,
            );
            let Some(c) = &attrs.communities else {
                continue;
            };
            for (j, s) in c.standard.iter().enumerate() {
                if parse_standard_community(s).is_none() {
                    e.push(
                        format!("{p}.attributes.communities.standard[{j}]"),
                        Some(format!("{s:?}")),
                        "must be a 32-bit decimal or two 16-bit decimals as a:b",
                    );
                }
            }
            for (j, s) in c.large.iter().enumerate() {
                if parse_large_community(s).is_none() {
                    e.push(
                        format!("{p}.attributes.communities.large[{j}]"),
                        Some(format!("{s:?}")),
                        "must be three 32-bit decimals as a:b:c",
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_communities_parse_in_both_notations_and_ranges_hold() {
        assert_eq!(parse_standard_community("65000:100"), Some(0xfde8_0064));
        assert_eq!(parse_standard_community("4294967295"), Some(u32::MAX));
        assert_eq!(parse_standard_community("65536:1"), None);
        assert_eq!(parse_standard_community("4294967296"), None);
        assert_eq!(parse_standard_community("+1"), None);
        assert_eq!(parse_standard_community("1:"), None);
        assert_eq!(parse_large_community("65000:1:2"), Some((65000, 1, 2)));
        assert_eq!(parse_large_community("1:2"), None);
        assert_eq!(parse_large_community("1:2:3:4"), None);
        assert_eq!(WellKnownCommunity::NoExport.value(), 0xffff_ff01);
        assert_eq!(WellKnownCommunity::Blackhole.value(), 0xffff_029a);
    }

    fn advert(a: BgpAdvertisement) -> CiliumBGPAdvertisement {
        CiliumBGPAdvertisement::new(
            "adv",
            CiliumBGPAdvertisementSpec {
                advertisements: vec![a],
            },
        )
    }

    fn bare(t: AdvertisementType) -> BgpAdvertisement {
        BgpAdvertisement {
            advertisement_type: t,
            service: None,
            interface: None,
            selector: None,
            attributes: None,
        }
    }

    #[test]
    fn type_specific_fields_are_required_and_exclusive() {
        let e = advert(bare(AdvertisementType::Service))
            .validate()
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "CiliumBGPAdvertisement adv: spec.advertisements[0].service is required for advertisementType Service"
        );
        let mut pod = bare(AdvertisementType::PodCIDR);
        pod.selector = Some(LabelSelector::default());
        pod.interface = Some(BgpInterfaceOptions {
            name: "eth0".into(),
        });
        let e = advert(pod).validate().unwrap_err();
        assert_eq!(e.errors.len(), 2);
        assert!(
            advert(bare(AdvertisementType::Interface))
                .validate()
                .is_err()
        );
        assert!(advert(bare(AdvertisementType::PodCIDR)).validate().is_ok());
    }

    #[test]
    fn aggregation_lengths_and_communities_are_checked() {
        let mut a = bare(AdvertisementType::Service);
        a.service = Some(BgpServiceOptions {
            addresses: vec![ServiceAddressType::LoadBalancerIP],
            aggregation_length_ipv4: Some(32),
            aggregation_length_ipv6: Some(127),
        });
        a.attributes = Some(BgpAttributes {
            communities: Some(BgpCommunities {
                standard: vec!["65000:1".into(), "70000:1".into()],
                well_known: vec![WellKnownCommunity::NoExport],
                large: vec!["1:2:3".into(), "x".into()],
            }),
            local_preference: Some(200),
        });
        let e = advert(a).validate().unwrap_err();
        let paths: Vec<&str> = e.errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "spec.advertisements[0].service.aggregationLengthIPv4",
                "spec.advertisements[0].attributes.communities.standard[1]",
                "spec.advertisements[0].attributes.communities.large[1]",
            ]
        );
    }
}
