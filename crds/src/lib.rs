//! The `cilium.io` custom resources lbspeaker is driven by, as kube `CustomResource` types with
//! serde and schemars, plus what every consumer of them needs in exactly one place:
//!
//! - [`bgp`]: CiliumBGPClusterConfig, CiliumBGPPeerConfig, CiliumBGPAdvertisement,
//!   CiliumBGPNodeConfig and CiliumBGPNodeConfigOverride (`cilium.io/v2`);
//! - [`lbpool`]: CiliumLoadBalancerIPPool (`cilium.io/v2`, and `v2alpha1` which converts into it);
//! - [`l2`]: CiliumL2AnnouncementPolicy (`cilium.io/v2alpha1`);
//! - [`podippool`]: CiliumPodIPPool (`cilium.io/v2alpha1`);
//! - [`bfd`]: BFDProfile (`lbspeaker.io/v1alpha1`, our own group: the `cilium.io` schemas
//!   have no place for BFD), named by a CiliumBGPPeerConfig's `lbspeaker.io/bfd-profile`
//!   annotation;
//! - [`selector`]: label-selector evaluation with the Cilium pseudo-labels, shared by the BGP,
//!   L2 and LB-IPAM reconcilers (the core crates never see a selector, only its results);
//! - [`validate`]: the checks the API server and the CRD schemas would make, with messages that
//!   name the object, the field path and the rule;
//! - [`manifest`]: multi-document YAML split per document, errors with file line numbers;
//! - [`crdgen`]: the CustomResourceDefinitions written to `deploy/crds/` by the `crdgen` binary.
//!
//! Field names, defaults, ranges and enums follow Cilium's CRDs so that existing manifests apply
//! unchanged. Defaulted fields stay `Option`s (so an object reads back exactly as written) and
//! have accessors that apply the default.

pub mod bfd;
pub mod bgp;
pub mod conditions;
pub mod crdgen;
pub mod l2;
pub mod lbpool;
pub mod manifest;
pub mod podippool;
pub mod schema;
pub mod selector;
pub mod validate;

/// The API group of every Cilium resource here (BFDProfile is in [`bfd::GROUP`]).
pub const GROUP: &str = "cilium.io";

pub use k8s_openapi;
pub use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
