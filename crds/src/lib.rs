//! The `cilium.io` custom resources lbspeaker is driven by (CiliumBGPClusterConfig,
//! CiliumBGPPeerConfig, CiliumBGPAdvertisement, CiliumLoadBalancerIPPool,
//! CiliumL2AnnouncementPolicy, ...), as kube `CustomResource` types, and `crdgen`.
//!
//! Empty for now; the types arrive with the crds/lbipam issue.
