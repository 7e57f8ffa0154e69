//! Watches against the in-memory API server: events in order from a resourceVersion,
//! bookmarks, timeouts, 410 for compacted versions and kube-runtime's watcher recovering from
//! it by re-listing; then the hooks (dropped watches, outages, injected faults) and the
//! request log. Every wait is bounded.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeSet;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Resource, ResourceExt};
use serde_json::json;
use tests::apiserver::{ApiServer, Config, Fault, OutageMode, Outcome, Verb};

const BOUND: Duration = Duration::from_secs(15);

fn cm(name: &str, app: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some([("app".to_string(), app.to_string())].into()),
            ..Default::default()
        },
        data: Some([("k".to_string(), "v".to_string())].into()),
        ..Default::default()
    }
}

fn fast_bookmarks() -> ApiServer {
    ApiServer::with_config(Config::default().bookmark_interval(Duration::from_millis(100)))
}

/// Polls `f` every 20 ms until it holds or `BOUND` passes.
async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + BOUND;
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn label(e: &WatchEvent<ConfigMap>) -> String {
    match e {
        WatchEvent::Added(o) => format!("ADDED {}", o.name_any()),
        WatchEvent::Modified(o) => format!("MODIFIED {}", o.name_any()),
        WatchEvent::Deleted(o) => format!("DELETED {}", o.name_any()),
        WatchEvent::Bookmark(_) => "BOOKMARK".into(),
        WatchEvent::Error(s) => format!("ERROR {} {}", s.code, s.reason),
    }
}

#[tokio::test]
async fn a_watch_from_a_version_sees_each_later_change_in_order_then_bookmarks() {
    let server = fast_bookmarks();
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let a = api
        .create(&PostParams::default(), &cm("a", "web"))
        .await
        .unwrap();
    let stream = api
        .watch(&WatchParams::default(), &a.resource_version().unwrap())
        .await
        .unwrap();
    let mut stream = Box::pin(stream);
    api.create(&PostParams::default(), &cm("b", "web"))
        .await
        .unwrap();
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "w"}})),
    )
    .await
    .unwrap();
    api.delete("b", &Default::default()).await.unwrap();
    let mut seen = Vec::new();
    let mut bookmark_rv = None;
    tokio::time::timeout(BOUND, async {
        while let Some(e) = stream.try_next().await.unwrap() {
            if let WatchEvent::Bookmark(b) = &e {
                bookmark_rv = Some(b.metadata.resource_version.clone());
                break;
            }
            seen.push(label(&e));
        }
    })
    .await
    .unwrap();
    assert_eq!(seen, vec!["ADDED b", "MODIFIED a", "DELETED b"]);
    assert_eq!(bookmark_rv, Some(server.resource_version().to_string()));
}

#[tokio::test]
async fn a_watch_ends_after_its_timeout() {
    let server = ApiServer::new();
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let stream = api
        .watch(&WatchParams::default().timeout(1).disable_bookmarks(), "0")
        .await
        .unwrap();
    let events: Vec<_> = tokio::time::timeout(BOUND, stream.collect::<Vec<_>>())
        .await
        .unwrap();
    assert!(events.is_empty());
    assert_eq!(server.watch_count(None), 0, "the ended watch is forgotten");
}

#[tokio::test]
async fn a_watch_from_a_compacted_version_gets_410_expired() {
    let server = ApiServer::new();
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let a = api
        .create(&PostParams::default(), &cm("a", "web"))
        .await
        .unwrap();
    api.create(&PostParams::default(), &cm("b", "web"))
        .await
        .unwrap();
    server.compact();
    let stream = api
        .watch(&WatchParams::default(), &a.resource_version().unwrap())
        .await
        .unwrap();
    let events: Vec<String> =
        tokio::time::timeout(BOUND, stream.map(|e| label(&e.unwrap())).collect())
            .await
            .unwrap();
    assert_eq!(events, vec!["ERROR 410 Expired"]);
}

#[tokio::test]
async fn a_history_window_keeps_only_the_latest_changes() {
    let server = ApiServer::with_config(Config::default().history_window(3));
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let first = api
        .create(&PostParams::default(), &cm("a", "web"))
        .await
        .unwrap();
    for n in ["b", "c", "d", "e"] {
        api.create(&PostParams::default(), &cm(n, "web"))
            .await
            .unwrap();
    }
    let old = api
        .watch(&WatchParams::default(), &first.resource_version().unwrap())
        .await
        .unwrap();
    let events: Vec<String> =
        tokio::time::timeout(BOUND, old.map(|e| label(&e.unwrap())).collect())
            .await
            .unwrap();
    assert_eq!(events, vec!["ERROR 410 Expired"]);
    let rv = server.resource_version() - 2;
    let recent = api
        .watch(&WatchParams::default().disable_bookmarks(), &rv.to_string())
        .await
        .unwrap();
    let events: Vec<String> =
        tokio::time::timeout(BOUND, recent.take(2).map(|e| label(&e.unwrap())).collect())
            .await
            .unwrap();
    assert_eq!(events, vec!["ADDED d", "ADDED e"]);
}

#[tokio::test]
async fn a_label_selected_watch_sees_an_object_leave_as_a_delete() {
    let server = ApiServer::new();
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    api.create(&PostParams::default(), &cm("a", "web"))
        .await
        .unwrap();
    let stream = api
        .watch(
            &WatchParams::default().labels("app=web").disable_bookmarks(),
            "0",
        )
        .await
        .unwrap();
    let mut stream = Box::pin(stream);
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "db"}}})),
    )
    .await
    .unwrap();
    api.create(&PostParams::default(), &cm("b", "db"))
        .await
        .unwrap();
    api.patch(
        "b",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "web"}}})),
    )
    .await
    .unwrap();
    let mut seen = Vec::new();
    tokio::time::timeout(BOUND, async {
        while seen.len() < 3 {
            seen.push(label(&stream.try_next().await.unwrap().unwrap()));
        }
    })
    .await
    .unwrap();
    assert_eq!(seen, vec!["ADDED a", "DELETED a", "ADDED b"]);
}

/// Runs a reflector over config maps in the background; returns its store.
fn reflect(
    server: &ApiServer,
    config: watcher::Config,
) -> (reflector::Store<ConfigMap>, tokio::task::JoinHandle<()>) {
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let (reader, writer) = reflector::store();
    let stream = reflector::reflector(writer, watcher(api, config))
        .default_backoff()
        .applied_objects();
    let task = tokio::spawn(async move {
        let mut s = Box::pin(stream);
        while s.next().await.is_some() {}
    });
    (reader, task)
}

fn names(store: &reflector::Store<ConfigMap>) -> BTreeSet<String> {
    store.state().iter().map(|c| c.name_any()).collect()
}

fn lists(server: &ApiServer) -> usize {
    server
        .requests()
        .iter()
        .filter(|r| r.verb == Some(Verb::List) && r.outcome == Outcome::Served)
        .count()
}

#[tokio::test]
async fn a_reflector_relists_after_an_outage_outlives_the_history_and_converges() {
    let server = fast_bookmarks();
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    for n in ["a", "b"] {
        api.create(&PostParams::default(), &cm(n, "web"))
            .await
            .unwrap();
    }
    let (store, task) = reflect(&server, watcher::Config::default());
    eventually("the first list", || names(&store).len() == 2).await;
    eventually("the watch", || {
        server.watch_count(Some(("", "configmaps"))) == 1
    })
    .await;
    assert_eq!(lists(&server), 1);

    // While the server is away, things change and history is compacted past the watcher.
    server.outage(OutageMode::Refuse);
    server
        .insert(
            serde_json::to_value(cm("c", "web"))
                .unwrap()
                .tap_ns("default"),
        )
        .unwrap();
    server.remove("v1", "ConfigMap", "default", "b").unwrap();
    server.compact();
    server.end_outage();

    eventually("the store to converge", || {
        names(&store) == BTreeSet::from(["a".into(), "c".into()])
    })
    .await;
    assert_eq!(lists(&server), 2, "the 410 made the watcher list again");
    task.abort();
}

#[tokio::test]
async fn a_reflector_rewatches_from_where_it_was_when_watches_are_dropped() {
    let server = fast_bookmarks();
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    api.create(&PostParams::default(), &cm("a", "web"))
        .await
        .unwrap();
    let (store, task) = reflect(&server, watcher::Config::default());
    eventually("the first list", || names(&store).len() == 1).await;
    eventually("the watch", || server.watch_count(None) == 1).await;
    assert_eq!(server.drop_watches(), 1);
    api.create(&PostParams::default(), &cm("b", "web"))
        .await
        .unwrap();
    eventually("the new object", || names(&store).len() == 2).await;
    let watches = server
        .requests()
        .iter()
        .filter(|r| r.verb == Some(Verb::Watch))
        .count();
    assert!(watches >= 2, "it watched again");
    assert_eq!(lists(&server), 1, "without listing again");

    // An expired watch, though, makes it list again.
    eventually("the watch again", || server.watch_count(None) == 1).await;
    assert_eq!(server.expire_watches(), 1);
    eventually("a second list", || lists(&server) == 2).await;
    task.abort();
}

#[tokio::test]
async fn a_streaming_list_watcher_gets_initial_events_and_their_end_marker() {
    let server = ApiServer::new();
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    for n in ["a", "b"] {
        api.create(&PostParams::default(), &cm(n, "web"))
            .await
            .unwrap();
    }
    let (store, task) = reflect(&server, watcher::Config::default().streaming_lists());
    eventually("the initial events", || names(&store).len() == 2).await;
    api.create(&PostParams::default(), &cm("c", "web"))
        .await
        .unwrap();
    eventually("a later event", || names(&store).len() == 3).await;
    let reqs = server.requests();
    let first_watch = reqs.iter().find(|r| r.verb == Some(Verb::Watch)).unwrap();
    assert_eq!(first_watch.query_param("sendInitialEvents"), Some("true"));
    assert_eq!(lists(&server), 0, "no list at all");
    task.abort();
}

#[tokio::test]
async fn injected_faults_answer_the_requests_they_match() {
    let server = ApiServer::new();
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    api.create(&PostParams::default(), &cm("a", "web"))
        .await
        .unwrap();
    server.inject(
        Fault::status(500)
            .verb(Verb::Patch)
            .resource("configmaps")
            .times(2),
    );
    server.inject(Fault::status(429).verb(Verb::Get).name("a"));
    server.inject(Fault::reset().verb(Verb::List));
    let p = Patch::Merge(json!({"data": {"k": "x"}}));
    for _ in 0..2 {
        match api
            .patch("a", &PatchParams::default(), &p)
            .await
            .unwrap_err()
        {
            kube::Error::Api(s) => assert_eq!((s.code, s.reason.as_str()), (500, "InternalError")),
            other => panic!("{other}"),
        }
    }
    api.patch("a", &PatchParams::default(), &p).await.unwrap();
    match api.get("a").await.unwrap_err() {
        kube::Error::Api(s) => {
            assert_eq!((s.code, s.reason.as_str()), (429, "TooManyRequests"));
            assert_eq!(s.details.unwrap().retry_after_seconds, 1);
        }
        other => panic!("{other}"),
    }
    let e = api.list(&ListParams::default()).await.unwrap_err();
    assert!(
        !matches!(e, kube::Error::Api(_)),
        "a reset is a transport error: {e}"
    );
    assert_eq!(server.pending_faults(), 0);
    assert_eq!(api.get("a").await.unwrap().data.unwrap()["k"], "x");
}

#[tokio::test]
async fn outages_refuse_answer_503_or_hang_until_they_end() {
    let server = ApiServer::new();
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    server.outage(OutageMode::Refuse);
    let e = api.get_opt("a").await.unwrap_err();
    assert!(!matches!(e, kube::Error::Api(_)), "refused: {e}");
    server.outage(OutageMode::Unavailable);
    match api.get_opt("a").await.unwrap_err() {
        kube::Error::Api(s) => assert_eq!(s.code, 503),
        other => panic!("{other}"),
    }
    server.outage_for(OutageMode::Hang, Duration::from_millis(300));
    let answered = tokio::time::timeout(BOUND, api.get_opt("a"))
        .await
        .unwrap()
        .unwrap();
    assert!(answered.is_none());
    assert!(!server.in_outage());
    let outcomes: Vec<(Outcome, u16)> = server
        .requests()
        .iter()
        .map(|r| (r.outcome, r.status))
        .collect();
    assert_eq!(
        outcomes,
        vec![
            (Outcome::Refused, 0),
            (Outcome::Injected, 503),
            (Outcome::Served, 404)
        ]
    );
}

#[tokio::test]
async fn the_request_log_shows_exactly_what_a_client_sent() {
    let server = ApiServer::new();
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let applied = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"a": "1"}});
    api.patch(
        "cfg",
        &PatchParams::apply("lbspeaker-agent").force(),
        &Patch::Apply(&applied),
    )
    .await
    .unwrap();
    let reqs = server.take_requests();
    let [r] = reqs.as_slice() else {
        panic!("one request: {reqs:?}")
    };
    assert_eq!(r.method, "PATCH");
    assert_eq!(r.path, "/api/v1/namespaces/default/configmaps/cfg");
    assert_eq!(r.verb, Some(Verb::Patch));
    assert_eq!(
        r.content_type.as_deref(),
        Some("application/apply-patch+yaml")
    );
    assert_eq!(r.field_manager.as_deref(), Some("lbspeaker-agent"));
    assert_eq!(r.query_param("force"), Some("true"));
    assert_eq!(r.body.as_ref(), Some(&applied));
    assert_eq!((r.status, r.outcome), (201, Outcome::Served));
    assert!(server.requests().is_empty());
    let _ = ConfigMap::kind(&());
}

/// Puts a namespace into a serialised object.
trait TapNs {
    fn tap_ns(self, ns: &str) -> Self;
}

impl TapNs for serde_json::Value {
    fn tap_ns(mut self, ns: &str) -> Self {
        self["metadata"]["namespace"] = json!(ns);
        self["apiVersion"] = json!("v1");
        self["kind"] = json!("ConfigMap");
        self
    }
}

#[tokio::test]
async fn a_retrying_client_rides_out_throttling_as_a_cluster_client_would() {
    let server = ApiServer::new();
    server.inject(Fault::status(429).retry_after(0).verb(Verb::List).times(2));
    let api: Api<ConfigMap> = Api::default_namespaced(server.retrying_client());
    let list = tokio::time::timeout(BOUND, api.list(&ListParams::default()))
        .await
        .unwrap()
        .unwrap();
    assert!(list.items.is_empty());
    let statuses: Vec<u16> = server.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![429, 429, 200]);
}

#[tokio::test]
async fn metadata_reads_and_a_metadata_watcher_get_partial_object_metadata() {
    let server = ApiServer::new();
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    api.create(&PostParams::default(), &cm("a", "web"))
        .await
        .unwrap();
    let meta = api.get_metadata("a").await.unwrap();
    assert_eq!(
        meta.types.as_ref().map(|t| t.kind.as_str()),
        Some("PartialObjectMetadata")
    );
    assert_eq!(meta.metadata.labels.unwrap()["app"], "web");
    let list = api.list_metadata(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.len(), 1);

    let meta_api: Api<kube::core::PartialObjectMeta<ConfigMap>> =
        Api::default_namespaced(server.client());
    let stream = watcher(meta_api, watcher::Config::default()).touched_objects();
    let mut stream = Box::pin(stream);
    let first = tokio::time::timeout(BOUND, stream.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first.metadata.name.as_deref(), Some("a"));
    api.create(&PostParams::default(), &cm("b", "web"))
        .await
        .unwrap();
    let second = tokio::time::timeout(BOUND, stream.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(second.metadata.name.as_deref(), Some("b"));
    let watch = server
        .requests()
        .into_iter()
        .rfind(|r| r.verb == Some(Verb::Watch))
        .unwrap();
    assert!(watch.accept.unwrap().contains("as=PartialObjectMetadata"));
}
