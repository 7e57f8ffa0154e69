//! The committed `deploy/crds/*.yaml` are exactly what `crdgen` generates, and they say what
//! SPEC.md says (names, short names, scope, versions, printer columns).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/crds")
}

#[test]
fn committed_crds_match_what_crdgen_generates() {
    let generated = crds::crdgen::all().unwrap();
    let mut expected_files = BTreeSet::new();
    for (file, crd) in &generated {
        expected_files.insert(file.clone());
        let path = deploy_dir().join(file);
        let committed = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; run `cargo run -p crds --bin crdgen`",
                path.display()
            )
        });
        let fresh = crds::crdgen::render(crd).unwrap();
        assert!(
            committed == fresh,
            "{} differs from what crdgen generates; run `cargo run -p crds --bin crdgen`",
            path.display()
        );
    }
    let on_disk: BTreeSet<String> = std::fs::read_dir(deploy_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    assert_eq!(
        on_disk, expected_files,
        "stale or missing files in deploy/crds"
    );
}

fn by_kind(kind: &str) -> CustomResourceDefinition {
    crds::crdgen::all()
        .unwrap()
        .into_iter()
        .map(|(_, c)| c)
        .find(|c| c.spec.names.kind == kind)
        .unwrap()
}

#[test]
fn every_crd_is_cluster_scoped_with_the_short_names_users_type() {
    let cases: &[(&str, &[&str], &[&str])] = &[
        ("CiliumBGPClusterConfig", &["cbgpcluster"], &["v2"]),
        ("CiliumBGPPeerConfig", &["cbgppeer"], &["v2"]),
        ("CiliumBGPAdvertisement", &["cbgpadvert"], &["v2"]),
        ("CiliumBGPNodeConfig", &["cbgpnode"], &["v2"]),
        (
            "CiliumBGPNodeConfigOverride",
            &["cbgpnodeoverride"],
            &["v2"],
        ),
        (
            "CiliumLoadBalancerIPPool",
            &["ippools", "ippool", "lbippool", "lbippools"],
            &["v2", "v2alpha1"],
        ),
        (
            "CiliumL2AnnouncementPolicy",
            &["l2announcement"],
            &["v2alpha1"],
        ),
        ("CiliumPodIPPool", &["cpip"], &["v2alpha1"]),
    ];
    for (kind, short, versions) in cases {
        let c = by_kind(kind);
        assert_eq!(c.spec.group, "cilium.io");
        assert_eq!(c.spec.scope, "Cluster", "{kind}");
        assert_eq!(
            c.spec.names.short_names.as_deref().unwrap_or_default(),
            short.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            "{kind}"
        );
        let v: Vec<&str> = c.spec.versions.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(&v, versions, "{kind}");
    }
}

#[test]
fn the_pool_crd_stores_v2_and_shows_disabled_conflicting_available_age() {
    let c = by_kind("CiliumLoadBalancerIPPool");
    let v2 = c.spec.versions.iter().find(|v| v.name == "v2").unwrap();
    let old = c
        .spec
        .versions
        .iter()
        .find(|v| v.name == "v2alpha1")
        .unwrap();
    assert!(v2.storage && !old.storage);
    assert_eq!(old.deprecated, Some(true));
    let cols: Vec<&str> = v2
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(cols, ["Disabled", "Conflicting", "IPs Available", "Age"]);
    assert!(v2.subresources.as_ref().unwrap().status.is_some());
}

#[test]
fn schemas_carry_cilium_defaults_and_ranges() {
    let c = by_kind("CiliumBGPPeerConfig");
    let json = serde_json::to_value(&c.spec.versions[0].schema).unwrap();
    let timers =
        &json["openAPIV3Schema"]["properties"]["spec"]["properties"]["timers"]["properties"];
    assert_eq!(timers["holdTimeSeconds"]["default"], 90);
    assert_eq!(timers["holdTimeSeconds"]["minimum"], 3.0);
    assert_eq!(timers["keepAliveTimeSeconds"]["default"], 30);
    assert_eq!(timers["connectRetryTimeSeconds"]["default"], 120);
    let spec = &json["openAPIV3Schema"]["properties"]["spec"]["properties"];
    assert_eq!(spec["ebgpMultihop"]["default"], 1);
    assert_eq!(spec["ebgpMultihop"]["maximum"], 255.0);
    assert_eq!(spec["transport"]["properties"]["peerPort"]["default"], 179);
    let gr = &spec["gracefulRestart"]["properties"]["restartTimeSeconds"];
    assert_eq!(
        (gr["default"].clone(), gr["maximum"].clone()),
        (120.into(), 4095.0.into())
    );
    let op = &spec["families"]["items"]["properties"]["advertisements"]["properties"]["matchExpressions"]
        ["items"]["properties"]["operator"]["enum"];
    assert_eq!(
        op,
        &serde_json::json!(["In", "NotIn", "Exists", "DoesNotExist"])
    );
}

#[test]
fn the_bfd_profile_crd_is_cluster_scoped_in_our_own_group_with_its_timers_shown() {
    let c = by_kind("BFDProfile");
    assert_eq!(c.spec.group, "lbspeaker.io");
    assert_eq!(c.spec.scope, "Cluster");
    assert_eq!(c.metadata.name.as_deref(), Some("bfdprofiles.lbspeaker.io"));
    assert_eq!(
        c.spec.names.short_names.as_deref().unwrap_or_default(),
        ["bfdprofile"]
    );
    let v = &c.spec.versions[0];
    assert_eq!(v.name, "v1alpha1");
    let cols: Vec<&str> = v
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(cols, ["TX ms", "RX ms", "Multiplier", "Age"]);
    let json = serde_json::to_value(&v.schema).unwrap();
    let spec = &json["openAPIV3Schema"]["properties"]["spec"]["properties"];
    assert_eq!(spec["transmitInterval"]["default"], 300);
    assert_eq!(spec["transmitInterval"]["minimum"], 10.0);
    assert_eq!(spec["receiveInterval"]["maximum"], 60000.0);
    assert_eq!(spec["detectMultiplier"]["default"], 3);
    assert_eq!(spec["detectMultiplier"]["minimum"], 2.0);
    assert_eq!(spec["echoMode"]["default"], false);
    assert_eq!(
        spec["damping"]["properties"]["maxHoldSeconds"]["default"],
        120
    );
}
