//! The server over TCP on loopback (what the binary serves): kube-rs through a real
//! connection, watches over it, outages as dropped connections, and the hooks as HTTP
//! endpoints under `/_test/`.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::time::Duration;

use futures::TryStreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams, WatchEvent, WatchParams};
use serde_json::{Value, json};
use tests::apiserver::{ApiServer, ServeError};

const BOUND: Duration = Duration::from_secs(15);

fn cm(name: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": {"k": "v"}})).unwrap()
}

async fn hook(client: &kube::Client, method: &str, path: &str, body: &str) -> Value {
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .body(body.as_bytes().to_vec())
        .unwrap();
    client.request::<Value>(req).await.unwrap()
}

#[tokio::test]
async fn a_kube_client_works_over_tcp_including_watches() {
    let server = ApiServer::new();
    let running = server.start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let client = running.client().unwrap();
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    let a = api.create(&PostParams::default(), &cm("a")).await.unwrap();
    assert_eq!(api.get("a").await.unwrap(), a);

    let stream = api
        .watch(&WatchParams::default().disable_bookmarks(), "0")
        .await
        .unwrap();
    let mut stream = Box::pin(stream);
    let first = tokio::time::timeout(BOUND, stream.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(matches!(first, WatchEvent::Added(ref o) if o.metadata.name.as_deref() == Some("a")));
    api.create(&PostParams::default(), &cm("b")).await.unwrap();
    let second = tokio::time::timeout(BOUND, stream.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(matches!(second, WatchEvent::Added(ref o) if o.metadata.name.as_deref() == Some("b")));

    // An outage cuts the open watch and refuses new requests; then the server is back.
    server.outage(tests::apiserver::OutageMode::Refuse);
    let cut = tokio::time::timeout(BOUND, stream.try_next())
        .await
        .unwrap();
    assert!(!matches!(cut, Ok(Some(_))), "the watch ended: {cut:?}");
    assert!(api.get("a").await.is_err());
    server.end_outage();
    assert_eq!(
        api.get("b").await.unwrap().metadata.name.as_deref(),
        Some("b")
    );
}

#[tokio::test]
async fn the_hooks_answer_over_http() {
    let server = ApiServer::new();
    let running = server.start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let client = running.client().unwrap();
    let api: Api<ConfigMap> = Api::default_namespaced(client.clone());

    let seeded = hook(
        &client,
        "POST",
        "/_test/objects",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: default}\n---\n\
         apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b, namespace: default}\n",
    )
    .await;
    assert_eq!(seeded["items"].as_array().unwrap().len(), 2);

    let fault = json!({"verb": "get", "resource": "configmaps", "response": {"status": {"code": 409, "reason": "Conflict", "message": "scripted"}}});
    assert_eq!(
        hook(&client, "POST", "/_test/faults", &fault.to_string()).await["pending"],
        1
    );
    match api.get("a").await.unwrap_err() {
        kube::Error::Api(s) => assert_eq!((s.code, s.message.as_str()), (409, "scripted")),
        other => panic!("{other}"),
    }

    // A client built from a kubeconfig, as lbspeaker's is, retries 503s (kube's default
    // retry policy honours Retry-After: 1), so a short outage only delays it.
    hook(
        &client,
        "POST",
        "/_test/outage?mode=unavailable&seconds=1",
        "",
    )
    .await;
    assert!(server.in_outage());
    tokio::time::timeout(BOUND, api.get("a"))
        .await
        .unwrap()
        .unwrap();
    assert!(!server.in_outage());

    let log = hook(&client, "GET", "/_test/requests", "").await;
    let paths: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["path"].as_str().unwrap())
        .collect();
    assert!(
        paths
            .iter()
            .all(|p| *p == "/api/v1/namespaces/default/configmaps/a"),
        "hooks are not logged: {paths:?}"
    );
    let outcomes: Vec<(String, u64)> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["outcome"].as_str().unwrap().to_string(),
                r["status"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(outcomes.first(), Some(&("injected".to_string(), 409)));
    assert_eq!(outcomes.get(1), Some(&("injected".to_string(), 503)));
    assert_eq!(outcomes.last(), Some(&("served".to_string(), 200)));
    hook(&client, "DELETE", "/_test/requests", "").await;
    assert!(server.requests().is_empty());
    assert_eq!(hook(&client, "GET", "/_test/watches", "").await["count"], 0);
}

#[tokio::test]
async fn the_server_listens_on_loopback_only() {
    let server = ApiServer::new();
    let e = server
        .start("0.0.0.0:0".parse().unwrap())
        .await
        .unwrap_err();
    assert!(matches!(e, ServeError::NotLoopback(_)), "{e}");
}
