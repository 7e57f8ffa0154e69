//! `seed.clab.yml` (containerlab, for people with Docker) stays equivalent to the namespace
//! topology `seed`: same nodes, links, addresses, routes, FRR file and gobgpd configuration.

use std::collections::BTreeSet;
use std::path::Path;

use frr_lab::{NodeKind, Topology, render};
use serde_json::Value;

fn clab() -> Value {
    let text = include_str!("../seed.clab.yml");
    serde_saphyr::from_str(text).expect("seed.clab.yml parses")
}

#[test]
fn clab_topology_has_the_same_nodes_and_links() {
    let seed = Topology::load("seed-gobgpd").unwrap();
    let clab = clab();
    let nodes = clab["topology"]["nodes"].as_object().unwrap();
    let names: BTreeSet<&str> = nodes.keys().map(String::as_str).collect();
    let seed_names: BTreeSet<&str> = seed.nodes.keys().map(String::as_str).collect();
    assert_eq!(names, seed_names);
    for (name, node) in &seed.nodes {
        let kind = nodes[name]["kind"].as_str().unwrap();
        let expected = if node.kind == NodeKind::Bridge {
            "bridge"
        } else {
            "linux"
        };
        assert_eq!(kind, expected, "{name}");
    }
    let links: Vec<[String; 2]> = clab["topology"]["links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let e = l["endpoints"].as_array().unwrap();
            [
                e[0].as_str().unwrap().to_owned(),
                e[1].as_str().unwrap().to_owned(),
            ]
        })
        .collect();
    let seed_links: Vec<[String; 2]> = seed
        .links
        .iter()
        .map(|l| [l.endpoints[0].to_string(), l.endpoints[1].to_string()])
        .collect();
    assert_eq!(links, seed_links);
}

#[test]
fn clab_nodes_get_the_same_addresses_routes_and_daemon_configuration() {
    let seed = Topology::load("seed-gobgpd").unwrap();
    let clab = clab();
    let nodes = clab["topology"]["nodes"].as_object().unwrap();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (name, node) in &seed.nodes {
        let c = &nodes[name];
        for bind in c["binds"].as_array().into_iter().flatten() {
            let host = bind.as_str().unwrap().split(':').next().unwrap();
            assert!(dir.join(host).is_file(), "{name}: {host} missing");
        }
        match node.kind {
            NodeKind::Frr => {
                let exec: Vec<&str> = c["exec"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap())
                    .collect();
                for (ifname, addrs) in &node.interfaces {
                    for a in addrs {
                        let line = format!("ip addr add {a} dev {ifname}");
                        assert!(exec.contains(&line.as_str()), "{name}: {line}");
                    }
                }
                let conf = c["binds"][0].as_str().unwrap().split(':').next().unwrap();
                assert_eq!(
                    std::fs::read_to_string(dir.join(conf)).unwrap(),
                    seed.config_text(name).unwrap()
                );
            }
            NodeKind::Gobgpd => {
                let env = &c["env"];
                assert_eq!(
                    env["ADDRESS"].as_str().unwrap(),
                    node.interfaces["eth1"][0].to_string(),
                    "{name}"
                );
                assert_eq!(
                    env["ROUTE"].as_str().unwrap(),
                    node.routes[0].to_string(),
                    "{name}"
                );
                let bgp = node.bgp.as_ref().unwrap();
                assert_eq!(
                    env["ANNOUNCE"].as_str().unwrap(),
                    bgp.announce[0].to_string(),
                    "{name}"
                );
                let toml = dir.join(format!("topologies/seed/clab/{name}-gobgpd.toml"));
                assert_eq!(
                    std::fs::read_to_string(&toml).unwrap(),
                    render::gobgpd_toml(bgp),
                    "{} is stale: regenerate with `frr-lab config seed {name}`",
                    toml.display()
                );
            }
            NodeKind::Bridge => {}
            other => panic!("{name}: unexpected kind {other}"),
        }
    }
}
