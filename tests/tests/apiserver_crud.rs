//! kube-rs against the in-memory API server, in process: CRUD on built-in types and on a
//! custom resource served from an applied CRD, each patch type, the status subresource,
//! generation, optimistic concurrency, preconditions, finalizers, selectors, pagination and
//! leases.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service, ServicePort, ServiceSpec};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
    Preconditions,
};
use kube::core::GroupVersionKind;
use kube::{CustomResource, CustomResourceExt, Resource, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tests::apiserver::ApiServer;

/// A custom resource shaped like the cilium.io pools, in a group of its own.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "test.lbspeaker.io",
    version = "v1",
    kind = "Pool",
    plural = "pools",
    shortname = "tp",
    status = "PoolStatus"
)]
pub struct PoolSpec {
    pub cidr: String,
    #[serde(default)]
    pub disabled: bool,
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema, Default)]
pub struct PoolStatus {
    pub used: u32,
}

fn api_error(e: kube::Error) -> (u16, String, String) {
    match e {
        kube::Error::Api(s) => (s.code, s.reason.clone(), s.message.clone()),
        other => panic!("expected an API error, got {other}"),
    }
}

fn service(name: &str) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some([("app".to_string(), name.to_string())].into()),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("LoadBalancer".into()),
            ports: Some(vec![ServicePort {
                port: 80,
                name: Some("http".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

async fn with_pool_crd(server: &ApiServer) -> Api<Pool> {
    let crds: Api<CustomResourceDefinition> = Api::all(server.client());
    crds.create(&PostParams::default(), &Pool::crd())
        .await
        .unwrap();
    let established = kube::runtime::wait::await_condition(
        crds,
        "pools.test.lbspeaker.io",
        kube::runtime::wait::conditions::is_crd_established(),
    );
    tokio::time::timeout(Duration::from_secs(5), established)
        .await
        .unwrap()
        .unwrap();
    Api::all(server.client())
}

fn pool(name: &str, cidr: &str) -> Pool {
    Pool::new(
        name,
        PoolSpec {
            cidr: cidr.into(),
            disabled: false,
        },
    )
}

#[tokio::test]
async fn a_service_round_trips_with_the_metadata_and_defaults_a_cluster_gives_it() {
    let server = ApiServer::new();
    let api: Api<Service> = Api::default_namespaced(server.client());
    let created = api
        .create(&PostParams::default(), &service("web"))
        .await
        .unwrap();
    let meta = &created.metadata;
    assert_eq!(meta.namespace.as_deref(), Some("default"));
    assert_eq!(meta.uid.as_ref().map(String::len), Some(36));
    assert!(meta.creation_timestamp.is_some());
    assert!(meta.resource_version.is_some());
    assert_eq!(meta.generation, None, "Services carry no generation");
    let spec = created.spec.clone().unwrap();
    assert_eq!(spec.cluster_ip.as_deref(), Some("10.96.0.2"));
    let port = &spec.ports.unwrap()[0];
    assert_eq!(port.protocol.as_deref(), Some("TCP"));
    assert!(port.node_port.is_some());

    let got = api.get("web").await.unwrap();
    assert_eq!(got, created);
    let list = api.list(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.len(), 1);
    assert!(list.metadata.resource_version.is_some());

    let mut changed = got.clone();
    changed.labels_mut().insert("tier".into(), "front".into());
    let replaced = api
        .replace("web", &PostParams::default(), &changed)
        .await
        .unwrap();
    assert_ne!(replaced.resource_version(), got.resource_version());
    assert_eq!(
        replaced.labels().get("tier").map(String::as_str),
        Some("front")
    );

    api.delete("web", &DeleteParams::default()).await.unwrap();
    let (code, reason, message) = api_error(api.get("web").await.unwrap_err());
    assert_eq!(
        (code, reason.as_str(), message.as_str()),
        (404, "NotFound", "services \"web\" not found")
    );
}

#[tokio::test]
async fn a_replace_with_a_stale_resource_version_is_a_conflict() {
    let server = ApiServer::new();
    let api: Api<Service> = Api::default_namespaced(server.client());
    let v1 = api
        .create(&PostParams::default(), &service("web"))
        .await
        .unwrap();
    let mut first = v1.clone();
    first.labels_mut().insert("by".into(), "first".into());
    api.replace("web", &PostParams::default(), &first)
        .await
        .unwrap();
    let mut second = v1.clone();
    second.labels_mut().insert("by".into(), "second".into());
    let (code, reason, message) = api_error(
        api.replace("web", &PostParams::default(), &second)
            .await
            .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (409, "Conflict"));
    assert!(
        message.contains("the object has been modified"),
        "{message}"
    );
    assert_eq!(api.get("web").await.unwrap().labels()["by"], "first");
}

#[tokio::test]
async fn a_write_naming_another_uid_is_refused_as_a_precondition() {
    let server = ApiServer::new();
    let api: Api<Service> = Api::default_namespaced(server.client());
    let old = api
        .create(&PostParams::default(), &service("web"))
        .await
        .unwrap();
    api.delete("web", &DeleteParams::default()).await.unwrap();
    let new = api
        .create(&PostParams::default(), &service("web"))
        .await
        .unwrap();
    let stale = json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "uid": old.uid().unwrap()},
        "status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.1"}]}}});
    let (code, _, message) = api_error(
        api.patch_status(
            "web",
            &PatchParams::apply("t").force(),
            &Patch::Apply(&stale),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(code, 409);
    assert!(
        message.contains(&format!(
            "Precondition failed: UID in precondition: {}, UID in object meta: {}",
            old.uid().unwrap(),
            new.uid().unwrap()
        )),
        "{message}"
    );
    let mut replace = new.clone();
    replace.metadata.uid = old.uid();
    assert_eq!(
        api_error(
            api.replace("web", &PostParams::default(), &replace)
                .await
                .unwrap_err()
        )
        .0,
        409
    );
    let fresh = json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "uid": new.uid().unwrap()},
        "status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.1"}]}}});
    api.patch_status(
        "web",
        &PatchParams::apply("t").force(),
        &Patch::Apply(&fresh),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn creating_twice_or_in_a_missing_namespace_fails_as_kube_apiserver_does() {
    let server = ApiServer::new();
    let api: Api<Service> = Api::default_namespaced(server.client());
    api.create(&PostParams::default(), &service("web"))
        .await
        .unwrap();
    let (code, reason, _) = api_error(
        api.create(&PostParams::default(), &service("web"))
            .await
            .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (409, "AlreadyExists"));

    let elsewhere: Api<Service> = Api::namespaced(server.client(), "nowhere");
    let (code, _, message) = api_error(
        elsewhere
            .create(&PostParams::default(), &service("web"))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (code, message.as_str()),
        (404, "namespaces \"nowhere\" not found")
    );

    let mut bad = service("Not_A_Name");
    bad.metadata.name = Some("Not_A_Name".into());
    let (code, reason, _) = api_error(api.create(&PostParams::default(), &bad).await.unwrap_err());
    assert_eq!((code, reason.as_str()), (422, "Invalid"));
}

#[tokio::test]
async fn generate_name_gives_each_object_its_own_name() {
    let server = ApiServer::new();
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let cm = ConfigMap {
        metadata: ObjectMeta {
            generate_name: Some("lbspeaker-".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    let a = api.create(&PostParams::default(), &cm).await.unwrap();
    let b = api.create(&PostParams::default(), &cm).await.unwrap();
    assert!(a.name_any().starts_with("lbspeaker-") && a.name_any().len() == "lbspeaker-".len() + 5);
    assert_ne!(a.name_any(), b.name_any());
}

#[tokio::test]
async fn merge_json_and_strategic_patches_change_what_they_say() {
    let server = ApiServer::new();
    let api: Api<Service> = Api::default_namespaced(server.client());
    let mut svc = service("web");
    svc.spec
        .as_mut()
        .unwrap()
        .ports
        .as_mut()
        .unwrap()
        .push(ServicePort {
            port: 443,
            name: Some("https".into()),
            ..Default::default()
        });
    api.create(&PostParams::default(), &svc).await.unwrap();

    let merge = json!({"metadata": {"labels": {"app": null, "tier": "front"}}});
    let s = api
        .patch("web", &PatchParams::default(), &Patch::Merge(&merge))
        .await
        .unwrap();
    assert_eq!(s.labels().len(), 1);
    assert_eq!(s.labels()["tier"], "front");

    let ops: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/metadata/labels/tier", "value": "front"},
        {"op": "replace", "path": "/metadata/labels/tier", "value": "back"}
    ]))
    .unwrap();
    let s = api
        .patch("web", &PatchParams::default(), &Patch::Json::<()>(ops))
        .await
        .unwrap();
    assert_eq!(s.labels()["tier"], "back");
    let failing: json_patch::Patch = serde_json::from_value(
        json!([{"op": "test", "path": "/metadata/labels/tier", "value": "front"}]),
    )
    .unwrap();
    let (code, reason, _) = api_error(
        api.patch("web", &PatchParams::default(), &Patch::Json::<()>(failing))
            .await
            .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (422, "Invalid"));

    // Strategic: ports merge by port, so the https port keeps its name.
    let strategic = json!({"spec": {"ports": [{"port": 80, "targetPort": 8080}]}});
    let s = api
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Strategic(&strategic),
        )
        .await
        .unwrap();
    let ports = s.spec.unwrap().ports.unwrap();
    assert_eq!(ports.len(), 2);
    assert_eq!(
        ports[0].target_port,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(8080))
    );
    assert_eq!(ports[1].name.as_deref(), Some("https"));
}

#[tokio::test]
async fn server_side_apply_records_its_manager_and_removes_what_it_stops_applying() {
    let server = ApiServer::new();
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let first = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"},
                       "data": {"a": "1", "b": "2"}});
    let created = api
        .patch(
            "cfg",
            &PatchParams::apply("lbspeaker-operator"),
            &Patch::Apply(&first),
        )
        .await
        .unwrap();
    let mf = created.metadata.managed_fields.clone().unwrap();
    assert_eq!(mf.len(), 1);
    assert_eq!(mf[0].manager.as_deref(), Some("lbspeaker-operator"));
    assert_eq!(mf[0].operation.as_deref(), Some("Apply"));

    // Someone else sets a key; the applier then stops applying "b".
    let merge = json!({"data": {"c": "3"}});
    api.patch(
        "cfg",
        &PatchParams {
            field_manager: Some("kubectl-edit".into()),
            ..Default::default()
        },
        &Patch::Merge(&merge),
    )
    .await
    .unwrap();
    let second = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"a": "1"}});
    let cm = api
        .patch(
            "cfg",
            &PatchParams::apply("lbspeaker-operator").force(),
            &Patch::Apply(&second),
        )
        .await
        .unwrap();
    let data = cm.data.clone().unwrap();
    assert_eq!(data.keys().collect::<Vec<_>>(), vec!["a", "c"]);
    let managers: Vec<(String, String)> = cm
        .metadata
        .managed_fields
        .clone()
        .unwrap()
        .into_iter()
        .map(|m| (m.manager.unwrap(), m.operation.unwrap()))
        .collect();
    assert_eq!(
        managers,
        vec![
            ("lbspeaker-operator".into(), "Apply".into()),
            ("kubectl-edit".into(), "Update".into())
        ]
    );

    // Apply without a field manager is refused; applying the same thing again writes nothing.
    let rv = cm.resource_version();
    let again = api
        .patch(
            "cfg",
            &PatchParams::apply("lbspeaker-operator"),
            &Patch::Apply(&second),
        )
        .await
        .unwrap();
    assert_eq!(
        again.resource_version(),
        rv,
        "a no-op apply keeps the resourceVersion"
    );
    let (code, _, _) = api_error(
        api.patch("cfg", &PatchParams::default(), &Patch::Apply(&second))
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 400);
}

#[tokio::test]
async fn the_status_subresource_alone_changes_status() {
    let server = ApiServer::new();
    let api: Api<Service> = Api::default_namespaced(server.client());
    let mut svc = service("web");
    svc.status = Some(
        serde_json::from_value(json!({"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}))
            .unwrap(),
    );
    let created = api.create(&PostParams::default(), &svc).await.unwrap();
    assert_eq!(
        serde_json::to_value(created.status.unwrap()).unwrap(),
        json!({"loadBalancer": {}}),
        "status sent with a create is dropped"
    );

    let status = json!({"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}]}},
                        "spec": {"type": "ClusterIP"}, "metadata": {"labels": {"x": "y"}}});
    let s = api
        .patch_status(
            "web",
            &PatchParams::apply("lbspeaker"),
            &Patch::Merge(&status),
        )
        .await
        .unwrap();
    assert_eq!(
        s.status
            .clone()
            .unwrap()
            .load_balancer
            .unwrap()
            .ingress
            .unwrap()[0]
            .ip
            .as_deref(),
        Some("192.0.2.10")
    );
    assert_eq!(
        s.spec.clone().unwrap().type_.as_deref(),
        Some("LoadBalancer"),
        "a status write keeps the spec"
    );
    assert!(
        !s.labels().contains_key("x"),
        "a status write keeps the metadata"
    );

    let main =
        json!({"status": {"loadBalancer": {"ingress": []}}, "metadata": {"labels": {"x": "y"}}});
    let s = api
        .patch("web", &PatchParams::default(), &Patch::Merge(&main))
        .await
        .unwrap();
    assert_eq!(s.labels()["x"], "y");
    assert_eq!(
        s.status
            .unwrap()
            .load_balancer
            .unwrap()
            .ingress
            .unwrap()
            .len(),
        1,
        "a main write keeps the status"
    );
}

#[tokio::test]
async fn a_custom_resource_is_served_once_its_crd_is_applied() {
    let server = ApiServer::new();
    let pools = with_pool_crd(&server).await;
    let created = pools
        .create(&PostParams::default(), &pool("blue", "10.0.10.0/24"))
        .await
        .unwrap();
    assert_eq!(created.metadata.generation, Some(1));

    // Status and metadata writes leave generation alone; a spec change bumps it.
    let st = json!({"status": {"used": 3}});
    let s = pools
        .patch_status("blue", &PatchParams::default(), &Patch::Merge(&st))
        .await
        .unwrap();
    assert_eq!(
        (s.metadata.generation, s.status.as_ref().map(|s| s.used)),
        (Some(1), Some(3))
    );
    let label = json!({"metadata": {"labels": {"a": "b"}}});
    let s = pools
        .patch("blue", &PatchParams::default(), &Patch::Merge(&label))
        .await
        .unwrap();
    assert_eq!(s.metadata.generation, Some(1));
    let spec = json!({"spec": {"disabled": true}});
    let s = pools
        .patch("blue", &PatchParams::default(), &Patch::Merge(&spec))
        .await
        .unwrap();
    assert_eq!(s.metadata.generation, Some(2));
    assert_eq!(s.status.unwrap().used, 3);

    // Custom resources refuse strategic merge patch and unconditional replace.
    let (code, _, _) = api_error(
        pools
            .patch("blue", &PatchParams::default(), &Patch::Strategic(&spec))
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 415);
    let mut unconditional = pool("blue", "10.0.11.0/24");
    unconditional.metadata.resource_version = None;
    let (code, _, message) = api_error(
        pools
            .replace("blue", &PostParams::default(), &unconditional)
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 422);
    assert!(message.contains("metadata.resourceVersion"), "{message}");

    // Discovery finds the new group the way kubectl and kube's Discovery do.
    let discovery = kube::Discovery::new(server.client()).run().await.unwrap();
    let (ar, caps) = discovery
        .resolve_gvk(&GroupVersionKind::gvk("test.lbspeaker.io", "v1", "Pool"))
        .expect("the Pool kind is discovered");
    assert_eq!(ar.plural, "pools");
    assert_eq!(caps.scope, kube::discovery::Scope::Cluster);
    assert!(caps.subresources.iter().any(|(s, _)| s.plural == "status"));
}

#[tokio::test]
async fn a_dynamic_object_reads_and_writes_a_custom_resource() {
    let server = ApiServer::new();
    with_pool_crd(&server).await;
    let gvk = GroupVersionKind::gvk("test.lbspeaker.io", "v1", "Pool");
    let (ar, _) = kube::discovery::pinned_kind(&server.client(), &gvk)
        .await
        .unwrap();
    let api: Api<DynamicObject> = Api::all_with(server.client(), &ar);
    let obj: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "test.lbspeaker.io/v1", "kind": "Pool",
        "metadata": {"name": "green"}, "spec": {"cidr": "10.0.20.0/24"}
    }))
    .unwrap();
    let created = api.create(&PostParams::default(), &obj).await.unwrap();
    assert_eq!(created.data["spec"]["cidr"], "10.0.20.0/24");
    let got = api.get("green").await.unwrap();
    assert_eq!(got.types.as_ref().map(|t| t.kind.as_str()), Some("Pool"));
    let typed: Api<Pool> = Api::all(server.client());
    assert_eq!(typed.get("green").await.unwrap().spec.cidr, "10.0.20.0/24");
    let _ = ApiResource::erase::<Pool>(&());
}

#[tokio::test]
async fn deleting_a_crd_removes_its_objects_and_its_resource() {
    let server = ApiServer::new();
    let pools = with_pool_crd(&server).await;
    pools
        .create(&PostParams::default(), &pool("blue", "10.0.10.0/24"))
        .await
        .unwrap();
    let crds: Api<CustomResourceDefinition> = Api::all(server.client());
    crds.delete("pools.test.lbspeaker.io", &DeleteParams::default())
        .await
        .unwrap();
    let (code, _, _) = api_error(pools.list(&ListParams::default()).await.unwrap_err());
    assert_eq!(code, 404);
    assert!(server.objects("test.lbspeaker.io/v1", "Pool").is_empty());
}

#[tokio::test]
async fn label_and_field_selectors_filter_lists() {
    let server = ApiServer::new();
    let api: Api<Service> = Api::default_namespaced(server.client());
    for n in ["a", "b", "c"] {
        api.create(&PostParams::default(), &service(n))
            .await
            .unwrap();
    }
    let names = |l: kube::core::ObjectList<Service>| {
        l.items.iter().map(|s| s.name_any()).collect::<Vec<_>>()
    };
    assert_eq!(
        names(
            api.list(&ListParams::default().labels("app in (a,c)"))
                .await
                .unwrap()
        ),
        vec!["a", "c"]
    );
    assert_eq!(
        names(
            api.list(&ListParams::default().labels("app!=a"))
                .await
                .unwrap()
        ),
        vec!["b", "c"]
    );
    assert_eq!(
        names(
            api.list(&ListParams::default().fields("metadata.name=b"))
                .await
                .unwrap()
        ),
        vec!["b"]
    );
    let all: Api<Service> = Api::all(server.client());
    assert_eq!(
        names(
            all.list(&ListParams::default().fields("metadata.namespace=default"))
                .await
                .unwrap()
        )
        .len(),
        3
    );
    let (code, _, message) = api_error(
        api.list(&ListParams::default().fields("spec.type=LoadBalancer"))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (code, message.as_str()),
        (400, "field label not supported: spec.type")
    );
}

#[tokio::test]
async fn pages_of_a_list_are_one_consistent_snapshot() {
    let server = ApiServer::new();
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    for i in 0..5 {
        let cm = ConfigMap {
            metadata: ObjectMeta {
                name: Some(format!("cm{i}")),
                ..Default::default()
            },
            ..Default::default()
        };
        api.create(&PostParams::default(), &cm).await.unwrap();
    }
    let first = api.list(&ListParams::default().limit(2)).await.unwrap();
    assert_eq!(first.items.len(), 2);
    assert_eq!(first.metadata.remaining_item_count, Some(3));
    // Changes after the first page do not show in the later ones.
    api.delete("cm4", &DeleteParams::default()).await.unwrap();
    let mut token = first.metadata.continue_.clone();
    let mut names: Vec<String> = first.items.iter().map(|c| c.name_any()).collect();
    let mut pages = 1;
    while let Some(t) = token.filter(|t| !t.is_empty()) {
        let page = api
            .list(&ListParams::default().limit(2).continue_token(&t))
            .await
            .unwrap();
        assert_eq!(
            page.metadata.resource_version,
            first.metadata.resource_version
        );
        names.extend(page.items.iter().map(|c| c.name_any()));
        token = page.metadata.continue_;
        pages += 1;
        assert!(pages <= 5, "pagination ends");
    }
    assert_eq!(names, vec!["cm0", "cm1", "cm2", "cm3", "cm4"]);

    // Once history no longer covers the snapshot, the token has expired.
    server.compact();
    let stale = api
        .list(
            &ListParams::default()
                .limit(2)
                .continue_token(first.metadata.continue_.as_deref().unwrap()),
        )
        .await;
    let (code, reason, _) = api_error(stale.unwrap_err());
    assert_eq!((code, reason.as_str()), (410, "Expired"));
}

#[tokio::test]
async fn delete_preconditions_and_finalizers_hold_as_kube_apiserver_holds_them() {
    let server = ApiServer::new();
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some("cfg".into()),
            finalizers: Some(vec!["lbspeaker.io/cleanup".into()]),
            ..Default::default()
        },
        ..Default::default()
    };
    let created = api.create(&PostParams::default(), &cm).await.unwrap();
    let wrong_uid = DeleteParams {
        preconditions: Some(Preconditions {
            uid: Some("not-it".into()),
            resource_version: None,
        }),
        ..Default::default()
    };
    let (code, _, message) = api_error(api.delete("cfg", &wrong_uid).await.unwrap_err());
    assert_eq!(code, 409);
    assert!(
        message.contains("Precondition failed: UID in precondition: not-it"),
        "{message}"
    );
    let stale_rv = DeleteParams {
        preconditions: Some(Preconditions {
            uid: None,
            resource_version: Some("1".into()),
        }),
        ..Default::default()
    };
    assert_eq!(
        api_error(api.delete("cfg", &stale_rv).await.unwrap_err()).0,
        409
    );

    // With a finalizer, delete only marks the object; removing the finalizer deletes it.
    let right = DeleteParams {
        preconditions: Some(Preconditions {
            uid: created.metadata.uid.clone(),
            resource_version: created.metadata.resource_version.clone(),
        }),
        ..Default::default()
    };
    api.delete("cfg", &right).await.unwrap();
    let marked = api.get("cfg").await.unwrap();
    assert!(marked.metadata.deletion_timestamp.is_some());
    let clear = json!({"metadata": {"finalizers": null}});
    api.patch("cfg", &PatchParams::default(), &Patch::Merge(&clear))
        .await
        .unwrap();
    assert_eq!(api_error(api.get("cfg").await.unwrap_err()).0, 404);
}

#[tokio::test]
async fn a_dry_run_changes_nothing() {
    let server = ApiServer::new();
    let api: Api<Service> = Api::default_namespaced(server.client());
    api.create(
        &PostParams {
            dry_run: true,
            ..Default::default()
        },
        &service("web"),
    )
    .await
    .unwrap();
    assert!(api.get_opt("web").await.unwrap().is_none());
    let rv = server.resource_version();
    api.create(&PostParams::default(), &service("web"))
        .await
        .unwrap();
    api.delete(
        "web",
        &DeleteParams {
            dry_run: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(api.get_opt("web").await.unwrap().is_some());
    assert_eq!(server.resource_version(), rv + 1);
}

#[tokio::test]
async fn deleting_a_namespace_deletes_what_is_in_it() {
    let server = ApiServer::new();
    let nss: Api<Namespace> = Api::all(server.client());
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some("bgp".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    let created = nss.create(&PostParams::default(), &ns).await.unwrap();
    assert_eq!(created.status.unwrap().phase.as_deref(), Some("Active"));
    let api: Api<Service> = Api::namespaced(server.client(), "bgp");
    api.create(&PostParams::default(), &service("web"))
        .await
        .unwrap();
    nss.delete("bgp", &DeleteParams::default()).await.unwrap();
    assert!(server.objects("v1", "Service").is_empty());
    assert_eq!(
        api_error(
            api.create(&PostParams::default(), &service("web"))
                .await
                .unwrap_err()
        )
        .0,
        404
    );
}

fn lease(holder: &str) -> Lease {
    Lease {
        metadata: ObjectMeta {
            name: Some("lbspeaker-operator".into()),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(15),
            ..Default::default()
        }),
    }
}

#[tokio::test]
async fn a_lease_has_one_holder_when_two_contend_with_preconditions() {
    let server = ApiServer::new();
    let a: Api<Lease> = Api::namespaced(server.client(), "kube-system");
    let b: Api<Lease> = Api::namespaced(server.client(), "kube-system");
    a.create(&PostParams::default(), &lease("")).await.unwrap();

    // Both read the free lease, both try to take it at that resourceVersion: one wins.
    let seen_a = a.get("lbspeaker-operator").await.unwrap();
    let seen_b = b.get("lbspeaker-operator").await.unwrap();
    let mut take_a = lease("node-a");
    take_a.metadata.resource_version = seen_a.metadata.resource_version.clone();
    let mut take_b = lease("node-b");
    take_b.metadata.resource_version = seen_b.metadata.resource_version.clone();
    let won = a
        .replace("lbspeaker-operator", &PostParams::default(), &take_a)
        .await
        .unwrap();
    let (code, reason, _) = api_error(
        b.replace("lbspeaker-operator", &PostParams::default(), &take_b)
            .await
            .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (409, "Conflict"));

    // The holder renews at the version it holds; b's JSON patch guarded by a test op fails.
    let renew = json!({"metadata": {"resourceVersion": won.metadata.resource_version}, "spec": {"leaseDurationSeconds": 20}});
    let renewed = a
        .patch(
            "lbspeaker-operator",
            &PatchParams::default(),
            &Patch::Merge(&renew),
        )
        .await
        .unwrap();
    assert_eq!(
        renewed.spec.as_ref().unwrap().lease_duration_seconds,
        Some(20)
    );
    let steal: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/spec/holderIdentity", "value": ""},
        {"op": "replace", "path": "/spec/holderIdentity", "value": "node-b"}
    ]))
    .unwrap();
    assert_eq!(
        api_error(
            b.patch(
                "lbspeaker-operator",
                &PatchParams::default(),
                &Patch::Json::<()>(steal)
            )
            .await
            .unwrap_err()
        )
        .0,
        422
    );
    let stale = json!({"metadata": {"resourceVersion": won.metadata.resource_version}, "spec": {"holderIdentity": "node-b"}});
    assert_eq!(
        api_error(
            b.patch(
                "lbspeaker-operator",
                &PatchParams::default(),
                &Patch::Merge(&stale)
            )
            .await
            .unwrap_err()
        )
        .0,
        409
    );
    let held = server
        .get::<Lease>("kube-system", "lbspeaker-operator")
        .unwrap();
    assert_eq!(
        held.spec.unwrap().holder_identity.as_deref(),
        Some("node-a")
    );
}

#[tokio::test]
async fn seeded_objects_are_read_back_through_the_api() {
    let server = ApiServer::new();
    server
        .insert(json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node1"},
                       "status": {"addresses": [{"type": "InternalIP", "address": "192.168.10.11"}]}}))
        .unwrap();
    server
        .insert(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "bgp-auth", "namespace": "bgp-secrets"},
                       "stringData": {"password": "s3cret"}}))
        .unwrap();
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(server.client());
    let n = nodes.get("node1").await.unwrap();
    assert_eq!(
        n.status.unwrap().addresses.unwrap()[0].address,
        "192.168.10.11",
        "seeding keeps status"
    );
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(server.client(), "bgp-secrets");
    assert_eq!(
        secrets
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        1,
        "the namespace was created"
    );
}

#[tokio::test]
async fn kube_runtime_event_recorder_creates_then_updates_a_series() {
    use kube::runtime::events::{Event as KEvent, EventType, Recorder, Reporter};
    let server = ApiServer::new();
    let api: Api<Service> = Api::default_namespaced(server.client());
    let svc = api
        .create(&PostParams::default(), &service("web"))
        .await
        .unwrap();
    let reporter = Reporter {
        controller: "lbspeaker-operator".into(),
        instance: Some("op-0".into()),
    };
    let recorder = Recorder::new(server.client(), reporter);
    let ev = KEvent {
        type_: EventType::Normal,
        reason: "IPAllocated".into(),
        note: Some("10.0.10.1 from pool blue".into()),
        action: "Allocate".into(),
        secondary: None,
    };
    recorder.publish(&ev, &svc.object_ref(&())).await.unwrap();
    recorder.publish(&ev, &svc.object_ref(&())).await.unwrap();
    let events = server.objects("events.k8s.io/v1", "Event");
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["regarding"]["name"], "web");
    assert_eq!(events[0]["series"]["count"], 2);
}

#[tokio::test]
async fn an_exact_list_reads_the_past_and_a_future_version_is_too_large() {
    let server = ApiServer::new();
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let cm = |n: &str| ConfigMap {
        metadata: ObjectMeta {
            name: Some(n.into()),
            ..Default::default()
        },
        ..Default::default()
    };
    let a = api.create(&PostParams::default(), &cm("a")).await.unwrap();
    api.create(&PostParams::default(), &cm("b")).await.unwrap();
    let rv = a.resource_version().unwrap();
    let then = api
        .list(
            &ListParams::default()
                .at(&rv)
                .matching(kube::api::VersionMatch::Exact),
        )
        .await
        .unwrap();
    assert_eq!(
        then.items.iter().map(|c| c.name_any()).collect::<Vec<_>>(),
        vec!["a"]
    );
    assert_eq!(then.metadata.resource_version.as_deref(), Some(rv.as_str()));
    let future = (server.resource_version() + 10).to_string();
    let (code, reason, _) = api_error(
        api.list(&ListParams::default().at(&future))
            .await
            .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (504, "Timeout"));
}
