//! The tower-test pattern for pinning lbspeaker's writes on the wire: a kube client backed by
//! a mock, the code under test in a task, and each request it sends checked (method, path,
//! query, patch type, field manager, preconditions, body) and answered by the test. The
//! writes here stand in for lbspeaker's: Service status by server-side apply, a Lease renewal
//! with a resourceVersion precondition and a retry on conflict, an Event, and no write when
//! nothing changed.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use tests::apiserver::mock;
use tests::apiserver::{ApiError, error::Target};

const MANAGER: &str = "lbspeaker-operator";

/// Stand-in for lbspeaker's status writer: server-side apply of the ingress on /status.
async fn publish_ingress(api: &Api<Service>, name: &str, ip: &str) -> kube::Result<Service> {
    let patch = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "status": {"loadBalancer": {"ingress": [{"ip": ip, "ipMode": "VIP"}]}},
    });
    api.patch_status(
        name,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
}

/// Stand-in for a lease renewal: read, write back at that version, once more on conflict.
async fn renew(api: &Api<Lease>, name: &str, holder: &str, now: &str) -> kube::Result<Lease> {
    let mut tries = 0;
    loop {
        let mut lease = api.get(name).await?;
        let spec = lease.spec.get_or_insert_with(Default::default);
        spec.holder_identity = Some(holder.into());
        spec.renew_time =
            Some(serde_json::from_value(json!(now)).map_err(kube::Error::SerdeError)?);
        match api
            .replace(
                name,
                &PostParams {
                    field_manager: Some(MANAGER.into()),
                    ..Default::default()
                },
                &lease,
            )
            .await
        {
            Err(kube::Error::Api(s)) if s.code == 409 && tries < 1 => tries += 1,
            other => return other,
        }
    }
}

/// Stand-in for a reconciler's last step: write only when the desired status differs.
async fn reconcile(api: &Api<Service>, name: &str, ip: &str) -> kube::Result<bool> {
    let current = api.get_status(name).await?;
    let has = current
        .status
        .and_then(|s| s.load_balancer)
        .and_then(|lb| lb.ingress)
        .is_some_and(|i| i.iter().any(|x| x.ip.as_deref() == Some(ip)));
    if has {
        return Ok(false);
    }
    publish_ingress(api, name, ip).await?;
    Ok(true)
}

fn lease_at(rv: &str) -> Value {
    json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
           "metadata": {"name": "l2-web", "namespace": "default", "resourceVersion": rv},
           "spec": {"holderIdentity": "node-a", "leaseDurationSeconds": 15}})
}

#[tokio::test]
async fn service_status_is_written_by_server_side_apply_on_the_status_subresource() {
    let (client, mut mock) = mock::client();
    let api: Api<Service> = Api::default_namespaced(client);
    let write = tokio::spawn(async move { publish_ingress(&api, "web", "10.0.10.1").await });

    let req = mock.next().await.unwrap();
    assert_eq!(req.method, "PATCH");
    assert_eq!(req.path, "/api/v1/namespaces/default/services/web/status");
    assert_eq!(
        req.content_type.as_deref(),
        Some("application/apply-patch+yaml")
    );
    assert_eq!(req.field_manager(), Some(MANAGER));
    assert_eq!(req.query_param("force"), Some("true"));
    assert_eq!(
        req.body.as_ref().unwrap()["status"],
        json!({"loadBalancer": {"ingress": [{"ip": "10.0.10.1", "ipMode": "VIP"}]}})
    );
    assert!(
        req.body.as_ref().unwrap().get("spec").is_none(),
        "a status write carries no spec"
    );
    req.respond_echo(200).unwrap();
    write.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_lease_renewal_writes_at_the_version_it_read_and_retries_a_conflict_once() {
    let (client, mut mock) = mock::client();
    let api: Api<Lease> = Api::default_namespaced(client);
    let renewal = tokio::spawn(async move {
        renew(&api, "l2-web", "node-a", "2025-01-01T00:00:00.000000Z").await
    });

    let get = mock.next().await.unwrap();
    assert_eq!(
        (get.method.as_str(), get.path.as_str()),
        (
            "GET",
            "/apis/coordination.k8s.io/v1/namespaces/default/leases/l2-web"
        )
    );
    get.respond_json(200, &lease_at("5")).unwrap();

    let put = mock.next().await.unwrap();
    assert_eq!(put.method, "PUT");
    assert_eq!(put.field_manager(), Some(MANAGER));
    assert_eq!(
        put.body.as_ref().unwrap()["metadata"]["resourceVersion"],
        "5",
        "the precondition"
    );
    assert_eq!(
        put.body.as_ref().unwrap()["spec"]["renewTime"],
        "2025-01-01T00:00:00.000000Z"
    );
    put.respond_error(&ApiError::conflict(Target {
        group: "coordination.k8s.io",
        resource: "leases",
        name: "l2-web",
    }))
    .unwrap();

    let again = mock.next().await.unwrap();
    assert_eq!(again.method, "GET");
    again.respond_json(200, &lease_at("6")).unwrap();
    let put = mock.next().await.unwrap();
    assert_eq!(
        put.body.as_ref().unwrap()["metadata"]["resourceVersion"],
        "6",
        "the fresh version"
    );
    put.respond_echo(200).unwrap();
    renewal.await.unwrap().unwrap();
}

#[tokio::test]
async fn an_event_is_created_in_the_object_namespace() {
    let (client, mut mock) = mock::client();
    let api: Api<Event> = Api::default_namespaced(client);
    let event: Event = serde_json::from_value(json!({
        "metadata": {"generateName": "web."},
        "regarding": {"apiVersion": "v1", "kind": "Service", "namespace": "default", "name": "web"},
        "reason": "IPAllocated", "note": "10.0.10.1 from pool blue", "type": "Normal", "action": "Allocate",
        "reportingController": "lbspeaker.io/operator", "reportingInstance": "lbspeaker-operator-0",
        "eventTime": "2025-01-01T00:00:00.000000Z"
    }))
    .unwrap();
    let create = tokio::spawn(async move { api.create(&PostParams::default(), &event).await });
    let req = mock.next().await.unwrap();
    assert_eq!(
        (req.method.as_str(), req.path.as_str()),
        ("POST", "/apis/events.k8s.io/v1/namespaces/default/events")
    );
    assert_eq!(req.content_type.as_deref(), Some("application/json"));
    let body = req.body.clone().unwrap();
    assert_eq!(
        (body["reason"].as_str(), body["regarding"]["name"].as_str()),
        (Some("IPAllocated"), Some("web"))
    );
    req.respond_echo(201).unwrap();
    create.await.unwrap().unwrap();
}

#[tokio::test]
async fn nothing_is_written_when_the_status_is_already_right() {
    let (client, mut mock) = mock::client();
    let api: Api<Service> = Api::default_namespaced(client);
    let run = tokio::spawn(async move { reconcile(&api, "web", "10.0.10.1").await });
    let get = mock.next().await.unwrap();
    assert_eq!(get.path, "/api/v1/namespaces/default/services/web/status");
    get.respond_json(
        200,
        &json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"},
                "status": {"loadBalancer": {"ingress": [{"ip": "10.0.10.1"}]}}}),
    )
    .unwrap();
    assert!(!run.await.unwrap().unwrap(), "reported no write");
    assert!(
        mock.is_quiet_for(Duration::from_millis(100)).await,
        "and sent none"
    );
}
