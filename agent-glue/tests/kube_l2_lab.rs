//! L2 announcements on Kubernetes, end to end: frr-lab's `l2` topology (a client and three
//! nodes on one bridge) with `lbspeaker agent --kubeconfig` processes in the node namespaces,
//! the in-memory API server listening on the client's address inside the client's namespace,
//! and LB-IPAM from an operator in the test process. The election goes through
//! `coordination.k8s.io/v1` Leases: one holder answers ARP; a SIGKILLed holder's Lease is
//! taken by another node once it expires (no liveness shortcut on Kubernetes), and the
//! client's neighbour entry moves to it.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod kube_support;

use std::collections::BTreeMap;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use frr_lab::witness::{arping, link_mac, neighbour};
use frr_lab::{Lab, LabOptions, NodeKind, Topology, lab_available, unique_prefix};
use kube_support::{Cluster, NS, eventually, fast_timers, root};
use nix::sched::{CloneFlags, setns};
use nix::sys::signal::Signal;

const NODES: [&str; 3] = ["node1", "node2", "node3"];
const INGRESS_IP: &str = "192.168.10.211";
const INGRESS_LEASE: &str = "cilium-l2announce-kube-system-cilium-ingress";
const WAIT: Duration = Duration::from_secs(30);

fn l2_file(name: &str) -> String {
    std::fs::read_to_string(root().join("frr-lab/topologies/l2").join(name)).unwrap()
}

/// The `l2` topology with plain hosts for nodes: the test starts the agents itself.
fn bare_lab() -> Lab {
    let mut t = Topology::load("l2").unwrap();
    for n in t.nodes.values_mut() {
        if n.kind == NodeKind::Lbspeaker {
            n.kind = NodeKind::Host;
            n.lbspeaker = None;
        }
    }
    t.manifests.clear();
    Lab::up(t, LabOptions::with_prefix(unique_prefix("kl2"))).unwrap()
}

/// A listener on `addr` inside network namespace `ns`: bound from a thread that entered it,
/// so the in-process API server is reachable from the lab and from nowhere else.
fn listen_in(ns: &str, addr: &str) -> tokio::net::TcpListener {
    let path = format!("/run/netns/{ns}");
    let addr = addr.to_string();
    let std_listener = std::thread::spawn(move || {
        let f = std::fs::File::open(&path).unwrap();
        setns(f.as_fd(), CloneFlags::CLONE_NEWNET).unwrap();
        let l = std::net::TcpListener::bind(&addr).unwrap();
        l.set_nonblocking(true).unwrap();
        l
    })
    .join()
    .unwrap();
    tokio::net::TcpListener::from_std(std_listener).unwrap()
}

fn start_agent(lab: &mut Lab, c: &Cluster, node: &str, kubeconfig: &str) -> u32 {
    let bin = env!("CARGO_BIN_EXE_lbspeaker");
    let api = c.api_socket(node);
    let args = [
        "--api",
        api.to_str().unwrap(),
        "agent",
        "--kubeconfig",
        kubeconfig,
        "--node",
        node,
        "--namespace",
        NS,
        "--l2-lease-duration",
        "2s",
        "--l2-lease-renew-deadline",
        "1s",
        "--l2-lease-retry-period",
        "250ms",
        "--l2-announce-count",
        "3",
        "--l2-announce-interval",
        "300ms",
    ];
    lab.spawn(node, "lbspeaker", bin, &args).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_elect_one_arp_responder_through_kubernetes_leases_and_fail_over_when_it_dies() {
    if !lab_available() {
        return;
    }
    let mut lab = bare_lab();
    let mut c = Cluster::new();
    for f in ["l2.yaml", "cluster/nodes.yaml", "cluster/ingress.yaml"] {
        c.apply(&l2_file(f)).await;
    }
    // The API server on 192.168.10.200 in the client's namespace, for the agents.
    let listener = listen_in(&lab.namespace("client"), "192.168.10.200:0");
    let port = listener.local_addr().unwrap().port();
    let server = c.server.clone();
    let serving = tokio::spawn(async move { server.serve(listener).await });
    let kubeconfig = c.dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        tests::apiserver::kubeconfig(&format!("http://192.168.10.200:{port}")),
    )
    .unwrap();
    let kubeconfig = kubeconfig.to_str().unwrap().to_string();

    // LB-IPAM and the policies' conditions from an operator; the agents in the lab.
    c.start_operator("lbspeaker-operator-0", fast_timers());
    eventually("the ingress address", WAIT, async || {
        (c.ingress("kube-system", "cilium-ingress") == [INGRESS_IP]).then_some(())
    })
    .await;
    let macs: BTreeMap<String, String> = NODES
        .iter()
        .map(|n| (n.to_string(), link_mac(&lab, n, "eth1").unwrap()))
        .collect();
    let mut pids = BTreeMap::new();
    for n in NODES {
        pids.insert(n, start_agent(&mut lab, &c, n, &kubeconfig));
    }

    // One Lease, one holder, one responder.
    let holder = eventually("a holder of the ingress Lease", WAIT, async || {
        c.holder(INGRESS_LEASE)
    })
    .await;
    assert!(NODES.contains(&holder.as_str()), "{holder}");
    let holder_mac = macs[&holder].clone();
    let answers = eventually("the holder's ARP answers", WAIT, async || {
        let a = arping(&lab, "client", "eth1", INGRESS_IP, 3).unwrap();
        (!a.is_empty()).then_some(a)
    })
    .await;
    assert!(answers.iter().all(|m| *m == holder_mac), "{answers:?}");
    assert!(answers.len() <= 3, "one answer per request: {answers:?}");
    let leases: Vec<String> = c
        .server
        .objects("coordination.k8s.io/v1", "Lease")
        .iter()
        .filter(|l| l["metadata"]["namespace"] == NS)
        .filter_map(|l| l["metadata"]["name"].as_str().map(str::to_string))
        .filter(|n| n.starts_with("cilium-l2announce-"))
        .collect();
    assert_eq!(leases, [INGRESS_LEASE], "one Lease per announced address");
    // Every agent shows the same row.
    for n in NODES {
        let out = lab
            .exec_ok(
                n,
                env!("CARGO_BIN_EXE_lbspeaker"),
                &["--api", c.api_socket(n).to_str().unwrap(), "l2", "leases"],
            )
            .unwrap();
        assert!(
            out.contains(INGRESS_LEASE) && out.contains(&holder),
            "{n}: {out}"
        );
    }

    // SIGKILL of the holder: no release, so the others wait for the Lease to expire (2 s).
    let _ = lab.exec("client", "ping", &["-c", "1", "-W", "1", INGRESS_IP]);
    assert_eq!(
        neighbour(&lab, "client", "eth1", INGRESS_IP).as_deref(),
        Some(holder_mac.as_str())
    );
    let killed = Instant::now();
    lab.signal(pids[holder.as_str()], Signal::SIGKILL).unwrap();
    let new = eventually("another holder", WAIT, async || {
        c.holder(INGRESS_LEASE).filter(|h| *h != holder)
    })
    .await;
    let took = killed.elapsed();
    let new_mac = macs[&new].clone();
    eventually("the client's entry to move", WAIT, async || {
        (neighbour(&lab, "client", "eth1", INGRESS_IP).as_deref() == Some(new_mac.as_str()))
            .then_some(())
    })
    .await;
    let moved = killed.elapsed();
    println!(
        "Kubernetes Lease failover after SIGKILL: new holder {new} after {:.2} s, client's entry moved after {:.2} s",
        took.as_secs_f64(),
        moved.as_secs_f64()
    );
    assert!(
        took >= Duration::from_millis(1500),
        "the Lease was taken before it could have expired ({took:?}): two holders"
    );
    let answers = arping(&lab, "client", "eth1", INGRESS_IP, 3).unwrap();
    assert!(
        !answers.is_empty() && answers.iter().all(|m| *m == new_mac),
        "{answers:?}"
    );

    // SIGTERM of the new holder releases the Lease: the last node takes it within a few
    // retry periods, well before the lease duration.
    let last = NODES
        .iter()
        .find(|n| **n != holder && **n != new)
        .unwrap()
        .to_string();
    let stopped = Instant::now();
    lab.signal(pids[new.as_str()], Signal::SIGTERM).unwrap();
    eventually("the last node to hold the Lease", WAIT, async || {
        (c.holder(INGRESS_LEASE).as_deref() == Some(last.as_str())).then_some(())
    })
    .await;
    println!(
        "after SIGTERM (release): {last} holds the Lease after {:.2} s",
        stopped.elapsed().as_secs_f64()
    );
    let answers = arping(&lab, "client", "eth1", INGRESS_IP, 2).unwrap();
    assert!(
        !answers.is_empty() && answers.iter().all(|m| *m == macs[&last]),
        "{answers:?}"
    );

    c.stop_all().await;
    serving.abort();
    lab.down().unwrap();
}
