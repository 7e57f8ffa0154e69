//! Every kind of write lbspeaker makes, pinned on the wire with a tower-test mock: method,
//! path, patch type, field manager, `force`, preconditions, body, user agent, and what the
//! code does with each answer (retries with backoff, a replaced object dropped, conflicts
//! reported to the election, nothing sent when nothing changed).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::sync::Arc;
use std::time::{Duration, Instant};

use agent_glue::kube::events::{EventPublisher, EventSpec, EventType};
use agent_glue::kube::leader::LeaseLeader;
use agent_glue::kube::lease::KubeLeaseBackend;
use agent_glue::kube::nodeconfig::NodeConfigWriter;
use agent_glue::kube::ratelimit::RateLimit;
use agent_glue::kube::sink::{KubeSink, Outcome};
use agent_glue::kube::{AGENT_CONTROLLER, AGENT_MANAGER, OPERATOR_MANAGER, Role, client};
use agent_glue::source::leader::Leadership;
use agent_glue::source::{Kind, Snapshot, StatusUpdate, parse_document};
use crds::manifest::split_documents;
use k8s_openapi::api::core::v1::{ObjectReference, ServiceStatus};
use l2announce::{LeaseBackend, LeaseError, LeaseName, LeaseRecord, ResourceVersion, Timers};
use serde_json::{Value, json};
use tests::apiserver::mock::{self, Captured, Mock};
use tests::apiserver::{ApiError, error::Target};
use tokio::sync::watch;

/// A snapshot of these manifests, each object given a uid (as the API server would).
fn snapshot(yaml: &str) -> watch::Receiver<Arc<Snapshot>> {
    let mut b = agent_glue::source::SnapshotBuilder::new();
    for doc in split_documents(yaml) {
        let mut o = parse_document(&doc).unwrap().unwrap();
        let name = o.meta().name.clone().unwrap();
        o.meta_mut().uid = Some(format!("uid-{name}"));
        b.add(o, "test");
    }
    watch::channel(Arc::new(b.build(1))).1
}

/// A client of `role` over the mock (our user agent, no pacing).
fn mocked(role: Role) -> (kube::Client, Mock) {
    let (svc, mock) = mock::service();
    (
        client::over(svc, "default", role, "test-1", RateLimit::unlimited()),
        mock,
    )
}

const SVC: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: webpod, namespace: default}\nspec: {type: LoadBalancer}\n";

fn ingress(ip: &str, when: &str) -> ServiceStatus {
    serde_json::from_value(json!({
        "loadBalancer": {"ingress": [{"ip": ip}]},
        "conditions": [{"type": "cilium.io/IPAMRequestSatisfied", "status": "True", "reason": "satisfied",
                        "message": format!("{ip} from cilium-pool"), "lastTransitionTime": when}]
    }))
    .unwrap()
}

fn service_update(status: ServiceStatus) -> StatusUpdate {
    StatusUpdate::Service {
        meta: serde_json::from_value(json!({"name": "webpod", "namespace": "default"})).unwrap(),
        status: Some(status),
    }
}

fn assert_apply(req: &Captured, path: &str, manager: &str) {
    assert_eq!((req.method.as_str(), req.path.as_str()), ("PATCH", path));
    assert_eq!(
        req.content_type.as_deref(),
        Some("application/apply-patch+yaml")
    );
    assert_eq!(req.field_manager(), Some(manager));
    assert_eq!(req.query_param("force"), Some("true"));
}

fn conflict(resource: &'static str, name: &'static str) -> ApiError {
    ApiError::conflict(Target {
        group: "",
        resource,
        name,
    })
}

#[tokio::test]
async fn service_status_is_applied_on_the_status_subresource_with_a_uid_precondition() {
    let (client, mut mock) = mocked(Role::Operator);
    let sink = KubeSink::new(client, snapshot(SVC), true, None);
    let st = ingress("172.16.1.1", "2025-01-01T00:00:00Z");
    let write = tokio::spawn(async move { sink.apply(&service_update(st)).await });
    let req = mock.next().await.unwrap();
    assert_apply(
        &req,
        "/api/v1/namespaces/default/services/webpod/status",
        OPERATOR_MANAGER,
    );
    assert!(
        req.user_agent
            .as_deref()
            .unwrap()
            .starts_with("lbspeaker-operator/")
    );
    assert_eq!(
        req.body.clone().unwrap(),
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "webpod", "namespace": "default", "uid": "uid-webpod"},
            "status": {
                "loadBalancer": {"ingress": [{"ip": "172.16.1.1"}]},
                "conditions": [{"type": "cilium.io/IPAMRequestSatisfied", "status": "True", "reason": "satisfied",
                                "message": "172.16.1.1 from cilium-pool", "lastTransitionTime": "2025-01-01T00:00:00Z"}]
            }
        }),
        "the status only, never the spec"
    );
    req.respond_echo(200).unwrap();
    assert_eq!(write.await.unwrap().unwrap(), Outcome::Written);
}

#[tokio::test]
async fn nothing_is_sent_when_the_object_already_says_so() {
    let with_status = format!(
        "{SVC}status:\n  loadBalancer: {{ingress: [{{ip: 172.16.1.1}}]}}\n  conditions:\n  - {{type: cilium.io/IPAMRequestSatisfied, status: \"True\", reason: satisfied, message: 172.16.1.1 from cilium-pool, lastTransitionTime: \"2024-06-01T00:00:00Z\"}}\n"
    );
    let (client, mut mock) = mocked(Role::Operator);
    let sink = KubeSink::new(client, snapshot(&with_status), true, None);
    // The same status computed again, stamped later: no change.
    let out = sink
        .apply(&service_update(ingress(
            "172.16.1.1",
            "2025-01-01T00:00:00Z",
        )))
        .await;
    assert_eq!(out.unwrap(), Outcome::Unchanged);
    // Status of an object that is gone, and an agent's deletion request: nothing either.
    let gone = StatusUpdate::Conditions {
        kind: Kind::LbIpPool,
        meta: serde_json::from_value(json!({"name": "nope"})).unwrap(),
        conditions: Some(vec![]),
    };
    assert_eq!(sink.apply(&gone).await.unwrap(), Outcome::Gone);
    assert!(mock.is_quiet_for(Duration::from_millis(200)).await);
}

#[tokio::test]
async fn conflicts_and_server_errors_are_retried_with_backoff_and_a_replaced_object_is_dropped() {
    let (client, mut mock) = mocked(Role::Operator);
    let sink = Arc::new(KubeSink::new(client, snapshot(SVC), true, None));
    let s = sink.clone();
    let write = tokio::spawn(async move {
        s.apply(&service_update(ingress(
            "172.16.1.1",
            "2025-01-01T00:00:00Z",
        )))
        .await
    });
    let first = mock.next().await.unwrap();
    let body = first.body.clone();
    let t0 = Instant::now();
    first
        .respond_error(&conflict("services", "webpod"))
        .unwrap();
    let second = mock.next().await.unwrap();
    assert!(
        t0.elapsed() >= Duration::from_millis(100),
        "backoff before the retry"
    );
    assert_eq!(second.body, body, "the same apply again");
    second
        .respond_error(&ApiError::new(503, "ServiceUnavailable", "etcd is busy"))
        .unwrap();
    mock.next().await.unwrap().respond_echo(200).unwrap();
    assert_eq!(write.await.unwrap().unwrap(), Outcome::Written);

    // The Service was deleted and created again since it was read: dropped, not retried.
    let s = sink.clone();
    let write = tokio::spawn(async move {
        s.apply(&service_update(ingress(
            "172.16.1.2",
            "2025-01-01T00:00:00Z",
        )))
        .await
    });
    let t = Target {
        group: "",
        resource: "services",
        name: "webpod",
    };
    mock.next()
        .await
        .unwrap()
        .respond_error(&ApiError::conflict_because(
            t,
            "Precondition failed: UID in precondition: uid-webpod, UID in object meta: uid-other",
        ))
        .unwrap();
    assert_eq!(write.await.unwrap().unwrap(), Outcome::Gone);
    assert!(mock.is_quiet_for(Duration::from_millis(300)).await);

    // Four failures in a row: the reconciler is told (and keeps the update for its next round).
    let s = sink.clone();
    let write = tokio::spawn(async move {
        s.apply(&service_update(ingress(
            "172.16.1.3",
            "2025-01-01T00:00:00Z",
        )))
        .await
    });
    for _ in 0..4 {
        mock.next()
            .await
            .unwrap()
            .respond_error(&ApiError::new(500, "InternalError", "boom"))
            .unwrap();
    }
    let e = write.await.unwrap().unwrap_err();
    assert!(e.to_string().starts_with("Service default/webpod: "), "{e}");
    assert!(mock.is_quiet_for(Duration::from_millis(300)).await);
}

#[tokio::test]
async fn pool_conditions_are_applied_on_the_cilium_status_subresource() {
    let pool = "apiVersion: cilium.io/v2\nkind: CiliumLoadBalancerIPPool\nmetadata: {name: cilium-pool}\nspec: {blocks: [{cidr: 172.16.1.0/24}]}\n";
    let (client, mut mock) = mocked(Role::Operator);
    let sink = KubeSink::new(client, snapshot(pool), true, None);
    let conditions = serde_json::from_value(
        json!([{"type": "cilium.io/IPsUsed", "status": "Unknown", "reason": "noReason",
        "message": "1", "lastTransitionTime": "2025-01-01T00:00:00Z"}]),
    )
    .unwrap();
    let update = StatusUpdate::Conditions {
        kind: Kind::LbIpPool,
        meta: serde_json::from_value(json!({"name": "cilium-pool"})).unwrap(),
        conditions: Some(conditions),
    };
    let write = tokio::spawn(async move { sink.apply(&update).await });
    let req = mock.next().await.unwrap();
    assert_apply(
        &req,
        "/apis/cilium.io/v2/ciliumloadbalancerippools/cilium-pool/status",
        OPERATOR_MANAGER,
    );
    let body = req.body.clone().unwrap();
    assert_eq!(
        body["metadata"],
        json!({"name": "cilium-pool", "uid": "uid-cilium-pool"})
    );
    assert_eq!(body["status"]["conditions"][0]["message"], "1");
    assert!(body.get("spec").is_none());
    req.respond_echo(200).unwrap();
    assert_eq!(write.await.unwrap().unwrap(), Outcome::Written);
}

const NODE_CONFIG: &str = "apiVersion: cilium.io/v2\nkind: CiliumBGPNodeConfig\nmetadata: {name: node1}\n\
    spec: {bgpInstances: [{name: instance-65001, localASN: 65001, peers: [{name: tor, peerAddress: 192.168.10.200}]}]}\n";

#[tokio::test]
async fn the_agent_applies_its_node_configs_status_and_never_deletes_one() {
    let (client, mut mock) = mocked(Role::Agent);
    let rx = snapshot(NODE_CONFIG);
    let mut o = rx
        .borrow()
        .bgp_node_configs
        .values()
        .next()
        .unwrap()
        .as_ref()
        .clone();
    let sink = Arc::new(KubeSink::new(client, rx, false, None));
    o.status = Some(
        serde_json::from_value(json!({"bgpInstances": [{"name": "instance-65001", "localASN": 65001,
            "peers": [{"name": "tor", "peerAddress": "192.168.10.200", "peerASN": 65000, "peeringState": "established"}]}]}))
        .unwrap(),
    );
    let update = StatusUpdate::BgpNodeConfig {
        name: "node1".into(),
        object: Some(o),
    };
    let s = sink.clone();
    let write = tokio::spawn(async move { s.apply(&update).await });
    let req = mock.next().await.unwrap();
    assert_apply(
        &req,
        "/apis/cilium.io/v2/ciliumbgpnodeconfigs/node1/status",
        AGENT_MANAGER,
    );
    let body = req.body.clone().unwrap();
    assert_eq!(
        body["metadata"],
        json!({"name": "node1", "uid": "uid-node1"})
    );
    assert_eq!(
        body["status"]["bgpInstances"][0]["peers"][0]["peeringState"],
        "established"
    );
    assert!(body.get("spec").is_none(), "the spec is the operator's");
    req.respond_echo(200).unwrap();
    assert_eq!(write.await.unwrap().unwrap(), Outcome::Written);
    let delete = StatusUpdate::BgpNodeConfig {
        name: "node1".into(),
        object: None,
    };
    assert_eq!(sink.apply(&delete).await.unwrap(), Outcome::Unchanged);
    assert!(mock.is_quiet_for(Duration::from_millis(200)).await);
}

#[tokio::test]
async fn the_operator_applies_node_config_specs_owned_by_the_node_and_deletes_stale_ones_by_uid() {
    let manifests = format!(
        "apiVersion: v1\nkind: Node\nmetadata: {{name: node1, labels: {{bgp: \"yes\"}}}}\nstatus: {{addresses: [{{type: InternalIP, address: 10.0.0.1}}]}}\n---\n\
         apiVersion: cilium.io/v2\nkind: CiliumBGPClusterConfig\nmetadata: {{name: c}}\n\
         spec: {{nodeSelector: {{matchLabels: {{bgp: \"yes\"}}}}, bgpInstances: [{{name: i, localASN: 65001, peers: [{{name: tor, peerASN: 65000, peerAddress: 10.0.0.254}}]}}]}}\n---\n\
         {}",
        NODE_CONFIG.replace("node1", "node9")
    );
    let rx = snapshot(&manifests);
    let (client, mut mock) = mocked(Role::Operator);
    let snap = rx.borrow().clone();
    let c2 = client.clone();
    let round = tokio::spawn(async move {
        let mut w = NodeConfigWriter::new();
        let first = w.round(&snap, &c2, "kube-system").await;
        let second = w.round(&snap, &c2, "kube-system").await;
        (first, second)
    });
    let req = mock.next().await.unwrap();
    assert_apply(
        &req,
        "/apis/cilium.io/v2/ciliumbgpnodeconfigs/node1",
        OPERATOR_MANAGER,
    );
    assert_eq!(
        req.body.clone().unwrap(),
        json!({
            "apiVersion": "cilium.io/v2", "kind": "CiliumBGPNodeConfig",
            "metadata": {"name": "node1", "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": "node1", "uid": "uid-node1"}]},
            "spec": {"bgpInstances": [{"name": "i", "localASN": 65001, "routerID": "10.0.0.1",
                                       "peers": [{"name": "tor", "peerAddress": "10.0.0.254", "peerASN": 65000}]}]}
        }),
        "the spec only, never a status"
    );
    req.respond_echo(201).unwrap();
    let (first, second) = round.await.unwrap();
    assert!(first.is_empty() && second.is_empty());
    assert!(
        mock.is_quiet_for(Duration::from_millis(200)).await,
        "written once: remembered until seen"
    );

    // node9's config: no ClusterConfig selects a node9; the operator's sink deletes it, on
    // condition that it is still the object it saw.
    let sink = KubeSink::new(client, rx, true, None);
    let del = tokio::spawn(async move {
        sink.apply(&StatusUpdate::BgpNodeConfig {
            name: "node9".into(),
            object: None,
        })
        .await
    });
    let req = mock.next().await.unwrap();
    assert_eq!(
        (req.method.as_str(), req.path.as_str()),
        ("DELETE", "/apis/cilium.io/v2/ciliumbgpnodeconfigs/node9")
    );
    assert_eq!(
        req.body.clone().unwrap()["preconditions"],
        json!({"uid": "uid-node9"})
    );
    req.respond_json(
        200,
        &json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}),
    )
    .unwrap();
    assert_eq!(del.await.unwrap().unwrap(), Outcome::Written);
}

/// Answers the Lease watcher's first list (empty, at resourceVersion 1) and holds its watch.
async fn lease_watch(mock: &mut Mock) -> Captured {
    let list = mock.next().await.unwrap();
    assert_eq!(
        (list.method.as_str(), list.path.as_str()),
        (
            "GET",
            "/apis/coordination.k8s.io/v1/namespaces/lbspeaker/leases"
        )
    );
    assert_eq!(list.query_param("watch"), None);
    list.respond_json(
        200,
        &json!({"apiVersion": "coordination.k8s.io/v1", "kind": "LeaseList", "metadata": {"resourceVersion": "1"}, "items": []}),
    )
    .unwrap();
    let watch = mock.next().await.unwrap();
    assert_eq!(watch.query_param("watch"), Some("true"));
    assert_eq!(watch.query_param("resourceVersion"), Some("1"));
    watch
}

/// The request's body, stored at `rv`.
fn stored(req: &Captured, rv: &str) -> Value {
    let mut v = req.body.clone().unwrap();
    v["metadata"]["resourceVersion"] = json!(rv);
    v
}

fn record(holder: Option<&str>) -> LeaseRecord {
    let t = std::time::SystemTime::UNIX_EPOCH + Duration::from_micros(1_735_689_600_123_456);
    LeaseRecord {
        holder: holder.map(String::from),
        duration: Duration::from_secs(15),
        acquire_time: Some(t),
        renew_time: Some(t),
        transitions: 0,
    }
}

#[tokio::test]
async fn lease_writes_are_conditional_and_reads_come_from_the_watch() {
    let (client, mut mock) = mocked(Role::Agent);
    let backend = KubeLeaseBackend::start(client, "lbspeaker", AGENT_MANAGER);
    let _watch = lease_watch(&mut mock).await;
    let name = LeaseName::new("cilium-l2announce-default-webpod").unwrap();
    assert_eq!(
        backend.get(&name).await.unwrap(),
        None,
        "from the watch: no request"
    );

    // Create: a POST; someone was first (409): a conflict for the election.
    let b = backend.clone();
    let n = name.clone();
    let create = tokio::spawn(async move { b.create(&n, &record(Some("node1"))).await });
    let req = mock.next().await.unwrap();
    assert_eq!(
        (req.method.as_str(), req.path.as_str()),
        (
            "POST",
            "/apis/coordination.k8s.io/v1/namespaces/lbspeaker/leases"
        )
    );
    assert_eq!(req.field_manager(), Some(AGENT_MANAGER));
    assert_eq!(
        req.body.clone().unwrap(),
        json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "cilium-l2announce-default-webpod", "namespace": "lbspeaker",
                         "labels": {"app.kubernetes.io/managed-by": "lbspeaker"}},
            "spec": {"holderIdentity": "node1", "leaseDurationSeconds": 15, "leaseTransitions": 0,
                     "acquireTime": "2025-01-01T00:00:00.123456Z", "renewTime": "2025-01-01T00:00:00.123456Z"}
        })
    );
    req.respond_error(&ApiError::new(
        409,
        "AlreadyExists",
        "leases.coordination.k8s.io \"cilium-l2announce-default-webpod\" already exists",
    ))
    .unwrap();
    assert!(matches!(
        create.await.unwrap(),
        Err(LeaseError::Conflict { .. })
    ));

    // Created; then read back at once, before the watch shows it.
    let b = backend.clone();
    let n = name.clone();
    let create = tokio::spawn(async move { b.create(&n, &record(Some("node1"))).await });
    let req = mock.next().await.unwrap();
    let body = stored(&req, "7");
    req.respond_json(201, &body).unwrap();
    let lease = create.await.unwrap().unwrap();
    assert_eq!(lease.resource_version, ResourceVersion("7".into()));
    assert_eq!(
        backend
            .get(&name)
            .await
            .unwrap()
            .unwrap()
            .resource_version
            .0,
        "7"
    );

    // Update: a PUT at the version read; a conflict; then accepted.
    for answer in [409, 200] {
        let b = backend.clone();
        let n = name.clone();
        let update = tokio::spawn(async move {
            b.update(&n, &record(Some("node1")), &ResourceVersion("7".into()))
                .await
        });
        let req = mock.next().await.unwrap();
        assert_eq!(
            (req.method.as_str(), req.path.as_str()),
            (
                "PUT",
                "/apis/coordination.k8s.io/v1/namespaces/lbspeaker/leases/cilium-l2announce-default-webpod"
            )
        );
        assert_eq!(req.field_manager(), Some(AGENT_MANAGER));
        assert_eq!(
            req.body.as_ref().unwrap()["metadata"]["resourceVersion"],
            "7",
            "the precondition"
        );
        assert_eq!(
            req.body.as_ref().unwrap()["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            "lbspeaker"
        );
        if answer == 409 {
            req.respond_error(&ApiError::conflict(Target {
                group: "coordination.k8s.io",
                resource: "leases",
                name: "cilium-l2announce-default-webpod",
            }))
            .unwrap();
            assert!(update.await.unwrap().unwrap_err().is_conflict());
        } else {
            let body = stored(&req, "8");
            req.respond_json(200, &body).unwrap();
            assert_eq!(update.await.unwrap().unwrap().resource_version.0, "8");
        }
    }

    // Delete, on condition of the version.
    let b = backend.clone();
    let n = name.clone();
    let delete = tokio::spawn(async move { b.delete(&n, &ResourceVersion("8".into())).await });
    let req = mock.next().await.unwrap();
    assert_eq!(req.method, "DELETE");
    assert_eq!(
        req.body.clone().unwrap()["preconditions"],
        json!({"resourceVersion": "8"})
    );
    req.respond_json(
        200,
        &json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}),
    )
    .unwrap();
    delete.await.unwrap().unwrap();
    assert_eq!(backend.get(&name).await.unwrap(), None);
    assert!(mock.is_quiet_for(Duration::from_millis(200)).await);
}

#[tokio::test]
async fn the_operator_creates_renews_and_releases_its_lease() {
    let (client, mut mock) = mocked(Role::Operator);
    let backend = KubeLeaseBackend::start(client, "lbspeaker", OPERATOR_MANAGER);
    let _watch = lease_watch(&mut mock).await;
    let timers = Timers::new(
        Duration::from_secs(3),
        Duration::from_secs(2),
        Duration::from_millis(200),
    )
    .unwrap();
    let leader = LeaseLeader::spawn(
        backend,
        LeaseName::new("lbspeaker-operator").unwrap(),
        "op-a".into(),
        timers,
        None,
    );
    let mut leading = leader.subscribe();
    let req = mock.next().await.unwrap();
    assert_eq!(
        (req.method.as_str(), req.path.as_str()),
        (
            "POST",
            "/apis/coordination.k8s.io/v1/namespaces/lbspeaker/leases"
        )
    );
    assert_eq!(req.field_manager(), Some(OPERATOR_MANAGER));
    let spec = req.body.as_ref().unwrap()["spec"].clone();
    assert_eq!(
        (
            spec["holderIdentity"].as_str(),
            spec["leaseDurationSeconds"].as_i64()
        ),
        (Some("op-a"), Some(3))
    );
    let acquired = spec["acquireTime"].clone();
    let body = stored(&req, "2");
    req.respond_json(201, &body).unwrap();
    tokio::time::timeout(Duration::from_secs(5), leading.wait_for(|l| *l))
        .await
        .unwrap()
        .unwrap();

    // A retry period later: a renewal at the version it wrote, same acquire time.
    let req = mock.next().await.unwrap();
    assert_eq!(req.method, "PUT");
    let b = req.body.clone().unwrap();
    assert_eq!(b["metadata"]["resourceVersion"], "2");
    assert_eq!(
        (
            b["spec"]["holderIdentity"].as_str(),
            &b["spec"]["acquireTime"]
        ),
        (Some("op-a"), &acquired)
    );
    assert_ne!(b["spec"]["renewTime"], acquired);
    let body = stored(&req, "3");
    req.respond_json(200, &body).unwrap();

    // Stopping: the Lease handed over (no holder, one second).
    let release = tokio::spawn(leader.release());
    let mut req = mock.next().await.unwrap();
    while req.body.as_ref().unwrap()["spec"]
        .get("holderIdentity")
        .is_some()
    {
        // A renewal raced with the stop: answer it, the release follows.
        let rv = (req.body.as_ref().unwrap()["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse::<u32>()
            .unwrap()
            + 1)
        .to_string();
        let body = stored(&req, &rv);
        req.respond_json(200, &body).unwrap();
        req = mock.next().await.unwrap();
    }
    assert_eq!(req.method, "PUT");
    assert_eq!(
        req.body.as_ref().unwrap()["spec"]["leaseDurationSeconds"],
        1
    );
    let body = stored(&req, "9");
    req.respond_json(200, &body).unwrap();
    release.await.unwrap();
}

#[tokio::test]
async fn events_are_created_once_with_our_reporting_controller() {
    let (client, mut mock) = mocked(Role::Agent);
    let events = EventPublisher::start(client, AGENT_CONTROLLER, "node1");
    let ev = EventSpec {
        regarding: ObjectReference {
            api_version: Some("cilium.io/v2".into()),
            kind: Some("CiliumBGPNodeConfig".into()),
            name: Some("node1".into()),
            ..ObjectReference::default()
        },
        type_: EventType::Normal,
        reason: "BGPSessionEstablished".into(),
        action: "Peer".into(),
        note: "instance i peer tor (10.0.0.254, AS 65000): established".into(),
    };
    events.publish(ev.clone());
    let req = mock.next().await.unwrap();
    assert_eq!(
        (req.method.as_str(), req.path.as_str()),
        ("POST", "/apis/events.k8s.io/v1/namespaces/default/events")
    );
    let b = req.body.clone().unwrap();
    assert_eq!(b["reportingController"], AGENT_CONTROLLER);
    assert_eq!(b["reportingInstance"], "node1");
    assert_eq!(
        (b["reason"].as_str(), b["type"].as_str()),
        (Some("BGPSessionEstablished"), Some("Normal"))
    );
    assert_eq!(b["regarding"]["name"], "node1");
    assert!(
        b["metadata"]["name"]
            .as_str()
            .unwrap()
            .starts_with("node1.")
    );
    req.respond_echo(201).unwrap();
    events.publish(ev);
    assert!(
        mock.is_quiet_for(Duration::from_millis(300)).await,
        "the same event is not repeated"
    );
}
