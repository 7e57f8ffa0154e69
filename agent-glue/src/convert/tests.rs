#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use super::*;

/// A BGP setup as MetalLB's documentation and operators write it: two pools, two ToR peers with
/// timers, a password and graceful restart, community aliases, and two advertisements.
const BGP: &str = r#"
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata:
  name: public
  namespace: metallb-system
spec:
  addresses:
  - 203.0.113.0/24
  - 198.51.100.10-198.51.100.20
  avoidBuggyIPs: true
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata:
  name: internal
  namespace: metallb-system
spec:
  addresses: ["10.96.200.0/24"]
  serviceAllocation:
    namespaces: [shop, billing]
    serviceSelectors:
    - matchLabels: {exposure: internal}
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata:
  name: tor-a
  namespace: metallb-system
spec:
  myASN: 64512
  peerASN: 64500
  peerAddress: 192.168.10.1
  holdTime: 9s
  keepaliveTime: 3s
  password: s3cret
  enableGracefulRestart: true
  ebgpMultiHop: true
  bfdProfile: fast
  nodeSelectors:
  - matchLabels: {rack: r1}
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata:
  name: tor-b
  namespace: metallb-system
spec:
  myASN: 64512
  peerASN: 64500
  peerAddress: 192.168.10.2
  peerPort: 1179
  connectTime: 5s
  passwordSecret: {name: tor-b-auth, namespace: metallb-system}
  nodeSelectors:
  - matchLabels: {rack: r1}
---
apiVersion: metallb.io/v1beta1
kind: Community
metadata:
  name: communities
  namespace: metallb-system
spec:
  communities:
  - name: no-export-alias
    value: "65535:65281"
  - name: site
    value: large:64512:1:100
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata:
  name: public-to-all
  namespace: metallb-system
spec:
  ipAddressPools: [public, internal]
  aggregationLength: 32
  communities: ["64512:100", site]
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata:
  name: internal-to-a
  namespace: metallb-system
spec:
  ipAddressPools: [internal]
  aggregationLength: 24
  localPref: 200
  communities: [no-export-alias]
  peers: [tor-a]
---
apiVersion: metallb.io/v1beta1
kind: BFDProfile
metadata:
  name: fast
  namespace: metallb-system
spec:
  receiveInterval: 300
  transmitInterval: 300
  detectMultiplier: 3
  echoInterval: 50
"#;

const L2: &str = r#"
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: lan, namespace: metallb-system}
spec:
  addresses: [192.168.10.211-192.168.10.215]
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: lan, namespace: metallb-system}
spec:
  ipAddressPools: [lan]
  interfaces: [eth1, bond0.100]
  nodeSelectors:
  - matchLabels: {kubernetes.io/hostname: node1}
"#;

fn run(files: &[(&str, &str)]) -> Conversion {
    convert(
        &files
            .iter()
            .map(|(o, t)| Input {
                origin: (*o).to_owned(),
                text: (*t).to_owned(),
            })
            .collect::<Vec<_>>(),
    )
}

fn object<'a>(c: &'a Conversion, kind: &str, name: &str) -> &'a Value {
    c.objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind}/{name} in {:#?}", c.objects))
}

fn warned(c: &Conversion, object: &str, needle: &str) -> bool {
    c.warnings
        .iter()
        .any(|w| w.object == object && w.message.contains(needle))
}

#[test]
fn pools_become_cilium_pools_with_blocks_and_selectors() {
    let c = run(&[("bgp.yaml", BGP)]);
    assert!(c.errors.is_empty(), "{:#?}", c.errors);
    let public = object(&c, "CiliumLoadBalancerIPPool", "public");
    assert_eq!(public["apiVersion"], "cilium.io/v2");
    assert_eq!(public["spec"]["blocks"][0]["cidr"], "203.0.113.0/24");
    assert_eq!(public["spec"]["blocks"][1]["start"], "198.51.100.10");
    assert_eq!(public["spec"]["blocks"][1]["stop"], "198.51.100.20");
    assert_eq!(public["spec"]["allowFirstLastIPs"], "No");
    // avoidBuggyIPs is wider than allowFirstLastIPs for ranges: said so.
    assert!(warned(&c, "IPAddressPool/public", "avoidBuggyIPs"));

    let internal = object(&c, "CiliumLoadBalancerIPPool", "internal");
    let sel = &internal["spec"]["serviceSelector"];
    assert_eq!(sel["matchLabels"]["exposure"], "internal");
    assert_eq!(
        sel["matchExpressions"][0]["key"],
        "io.kubernetes.service.namespace"
    );
    assert_eq!(sel["matchExpressions"][0]["operator"], "In");
    assert_eq!(
        sel["matchExpressions"][0]["values"],
        serde_json::json!(["shop", "billing"])
    );
}

#[test]
fn peers_become_one_cluster_config_and_a_peer_config_each() {
    let c = run(&[("bgp.yaml", BGP)]);
    let cluster = object(&c, "CiliumBGPClusterConfig", CLUSTER_CONFIG_NAME);
    assert_eq!(cluster["spec"]["nodeSelector"]["matchLabels"]["rack"], "r1");
    let inst = &cluster["spec"]["bgpInstances"][0];
    assert_eq!(inst["name"], "instance-64512");
    assert_eq!(inst["localASN"], 64512);
    assert_eq!(inst["peers"][0]["name"], "tor-a");
    assert_eq!(inst["peers"][0]["peerAddress"], "192.168.10.1");
    assert_eq!(inst["peers"][0]["peerASN"], 64500);
    assert_eq!(inst["peers"][0]["peerConfigRef"]["name"], "tor-a");
    assert_eq!(inst["peers"][1]["name"], "tor-b");

    let a = object(&c, "CiliumBGPPeerConfig", "tor-a");
    assert_eq!(a["spec"]["timers"]["holdTimeSeconds"], 9);
    assert_eq!(a["spec"]["timers"]["keepAliveTimeSeconds"], 3);
    assert_eq!(a["spec"]["gracefulRestart"]["enabled"], true);
    assert_eq!(a["spec"]["ebgpMultihop"], 255);
    assert_eq!(a["spec"]["authSecretRef"], "tor-a-bgp-password");
    assert_eq!(a["metadata"]["annotations"][BFD_PROFILE_ANNOTATION], "fast");
    let secret = object(&c, "Secret", "tor-a-bgp-password");
    assert_eq!(secret["metadata"]["namespace"], "kube-system");
    assert_eq!(secret["stringData"]["password"], "s3cret");

    let b = object(&c, "CiliumBGPPeerConfig", "tor-b");
    assert_eq!(b["spec"]["transport"]["peerPort"], 1179);
    assert_eq!(b["spec"]["timers"]["connectRetryTimeSeconds"], 5);
    assert_eq!(b["spec"]["authSecretRef"], "tor-b-auth");
    assert!(warned(
        &c,
        "BGPPeer/tor-b",
        "copy that Secret into kube-system"
    ));
}

#[test]
fn each_peer_config_selects_exactly_the_advertisements_of_its_peer() {
    let c = run(&[("bgp.yaml", BGP)]);
    let values = |peer: &str| {
        let p = object(&c, "CiliumBGPPeerConfig", peer);
        let fams = p["spec"]["families"].as_array().unwrap().clone();
        assert_eq!(fams.len(), 2);
        fams[0]["advertisements"]["matchExpressions"][0]["values"].clone()
    };
    assert_eq!(
        values("tor-a"),
        serde_json::json!(["public-to-all", "internal-to-a"])
    );
    assert_eq!(values("tor-b"), serde_json::json!(["public-to-all"]));
    let ad = object(&c, "CiliumBGPAdvertisement", "internal-to-a");
    assert_eq!(
        ad["metadata"]["labels"][ADVERTISEMENT_LABEL],
        "internal-to-a"
    );
}

#[test]
fn advertisements_carry_aggregation_local_preference_and_resolved_communities() {
    let c = run(&[("bgp.yaml", BGP)]);
    let all = object(&c, "CiliumBGPAdvertisement", "public-to-all");
    let a = &all["spec"]["advertisements"][0];
    assert_eq!(a["advertisementType"], "Service");
    assert_eq!(
        a["service"]["addresses"],
        serde_json::json!(["LoadBalancerIP"])
    );
    assert!(
        a["service"].get("aggregationLengthIPv4").is_none(),
        "/32 is the default"
    );
    assert_eq!(a["selector"], serde_json::json!({}));
    assert_eq!(
        a["attributes"]["communities"]["standard"],
        serde_json::json!(["64512:100"])
    );
    assert_eq!(
        a["attributes"]["communities"]["large"],
        serde_json::json!(["64512:1:100"])
    );
    let internal = object(&c, "CiliumBGPAdvertisement", "internal-to-a");
    let a = &internal["spec"]["advertisements"][0];
    assert_eq!(a["service"]["aggregationLengthIPv4"], 24);
    assert_eq!(a["attributes"]["localPreference"], 200);
    assert_eq!(
        a["attributes"]["communities"]["wellKnown"],
        serde_json::json!(["no-export"])
    );
    // Limited to one of two pools: services cannot be selected by pool, and the user is told.
    assert!(warned(
        &c,
        "BGPAdvertisement/internal-to-a",
        "narrow its selector"
    ));
    assert!(!warned(
        &c,
        "BGPAdvertisement/public-to-all",
        "narrow its selector"
    ));
    assert!(warned(&c, "BFDProfile/fast", "spec.echoInterval"));
    let bfd = object(&c, "BFDProfile", "fast");
    assert_eq!(bfd["apiVersion"], "lbspeaker.io/v1alpha1");
    assert_eq!(bfd["spec"]["transmitInterval"], 300);
    assert_eq!(bfd["spec"]["receiveInterval"], 300);
    assert_eq!(bfd["spec"]["detectMultiplier"], 3);
}

#[test]
fn l2_advertisements_become_l2_policies_with_anchored_interfaces() {
    let c = run(&[("l2.yaml", L2)]);
    assert!(c.errors.is_empty(), "{:#?}", c.errors);
    let p = object(&c, "CiliumL2AnnouncementPolicy", "lan");
    assert_eq!(p["apiVersion"], "cilium.io/v2alpha1");
    assert_eq!(p["spec"]["loadBalancerIPs"], true);
    assert_eq!(
        p["spec"]["interfaces"],
        serde_json::json!(["^eth1$", "^bond0\\.100$"])
    );
    assert_eq!(
        p["spec"]["nodeSelector"]["matchLabels"]["kubernetes.io/hostname"],
        "node1"
    );
    // The only pool is named: nothing to narrow.
    assert!(c.warnings.is_empty(), "{:#?}", c.warnings);
}

#[test]
fn what_does_not_map_is_reported_and_the_rest_still_converts() {
    let text = r#"
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: odd}
spec:
  myASN: 64512
  dynamicASN: external
  peerAddress: 10.0.0.1
  routerID: 10.0.0.9
  vrf: red
  holdTime: 9500ms
---
apiVersion: v1
kind: ConfigMap
metadata: {name: config, namespace: metallb-system}
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: broken}
spec: {addresses: 12
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: controller}
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: ok}
spec:
  addresses: [10.1.0.0/28]
  autoAssign: false
"#;
    let c = run(&[("mixed.yaml", text)]);
    assert_eq!(c.errors.len(), 1, "{:#?}", c.errors);
    assert!(c.errors[0].to_string().starts_with("mixed.yaml"));
    object(&c, "CiliumLoadBalancerIPPool", "ok");
    let odd = object(&c, "CiliumBGPPeerConfig", "odd");
    assert_eq!(odd["spec"]["timers"]["holdTimeSeconds"], 10);
    assert_eq!(odd["spec"]["timers"]["keepAliveTimeSeconds"], 3);
    let cluster = object(&c, "CiliumBGPClusterConfig", CLUSTER_CONFIG_NAME);
    assert_eq!(cluster["spec"]["bgpInstances"][0]["peers"][0]["peerASN"], 0);
    for (object, needle) in [
        ("BGPPeer/odd", "dynamicASN"),
        ("BGPPeer/odd", "CiliumBGPNodeConfigOverride"),
        ("BGPPeer/odd", "spec.vrf"),
        ("BGPPeer/odd", "rounded up to 10 s"),
        ("BGPPeer/odd", "sent nothing"),
        ("IPAddressPool/ok", "autoAssign"),
    ] {
        assert!(
            warned(&c, object, needle),
            "{object}: {needle}: {:#?}",
            c.warnings
        );
    }
    assert!(c.warnings.iter().any(|w| w.message.contains("ConfigMap")));
    assert!(
        c.warnings
            .iter()
            .any(|w| w.message.contains("apps/v1 Deployment"))
    );
}

#[test]
fn an_invalid_result_is_left_out_with_the_reason() {
    let text = r#"
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: slow}
spec: {myASN: 64512, peerASN: 64500, peerAddress: 10.0.0.1, holdTime: 3s, keepaliveTime: 9s}
"#;
    let c = run(&[("p.yaml", text)]);
    assert!(
        c.errors.iter().any(|e| e
            .message
            .contains("keepAliveTimeSeconds (9) must not exceed")),
        "{:#?}",
        c.errors
    );
}

#[tokio::test]
async fn the_output_is_read_by_the_manifest_directory_without_a_problem() {
    use crate::source::Source as _;
    use crate::source::directory::{DirectoryOptions, DirectorySource};
    let c = run(&[("bgp.yaml", BGP), ("l2.yaml", L2)]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("converted.yaml"), c.to_yaml()).unwrap();
    let source = DirectorySource::open(dir.path(), DirectoryOptions::default())
        .await
        .unwrap();
    let snap = source.subscribe().borrow().clone();
    assert!(snap.problems.is_empty(), "{:#?}", snap.problems);
    assert_eq!(snap.lb_ip_pools.len(), 3);
    assert_eq!(snap.bgp_peer_configs.len(), 2);
    assert_eq!(snap.bgp_cluster_configs.len(), 1);
    assert_eq!(snap.bgp_advertisements.len(), 2);
    assert_eq!(snap.l2_announcement_policies.len(), 1);
    assert_eq!(snap.secrets.len(), 1);
}
