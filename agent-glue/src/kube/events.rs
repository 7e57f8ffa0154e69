//! Kubernetes Events (`events.k8s.io/v1`) for the transitions people look for with
//! `kubectl describe` and `kubectl get events`: an address assigned, changed or released, an
//! allocation that failed, a BGP session established or lost, a pool conflict, a missing peer
//! config or Secret, a new operator leader.
//!
//! Events are best effort: they are queued (at most 256) and created by a task of their own,
//! so a slow or absent API server never holds up a status write; a failed creation is
//! logged and dropped. The same event (object, reason, note) is not repeated within ten
//! minutes. Only `create` is used (no event series), which is all the RBAC grants.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use tokio::sync::mpsc;

/// How long the same event is not repeated.
const QUIET: Duration = Duration::from_secs(600);

/// `type` of an Event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    /// Something happened as it should.
    Normal,
    /// Something needs a look.
    Warning,
}

/// One Event to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct EventSpec {
    /// The object it is about.
    pub regarding: ObjectReference,
    /// Normal or Warning.
    pub type_: EventType,
    /// `AddressAssigned`, `BGPSessionEstablished`, ... (PascalCase).
    pub reason: String,
    /// What lbspeaker did: `Allocate`, `Peer`, `Elect`.
    pub action: String,
    /// For people.
    pub note: String,
}

/// Queues Events for the publishing task. Cheap to clone.
#[derive(Debug, Clone)]
pub struct EventPublisher {
    tx: mpsc::Sender<EventSpec>,
}

impl EventPublisher {
    /// Starts the publishing task; `controller` is our `reportingController`
    /// (`lbspeaker.io/agent`), `instance` the node or pod.
    pub fn start(client: kube::Client, controller: &str, instance: &str) -> EventPublisher {
        let (tx, rx) = mpsc::channel(256);
        tokio::spawn(publish_loop(
            client,
            controller.to_owned(),
            instance.to_owned(),
            rx,
        ));
        EventPublisher { tx }
    }

    /// Queues an event; dropped (with a debug line) when the queue is full.
    pub fn publish(&self, ev: EventSpec) {
        if let Err(e) = self.tx.try_send(ev) {
            tracing::debug!(error = %e, "event queue full: event dropped");
        }
    }
}

async fn publish_loop(
    client: kube::Client,
    controller: String,
    instance: String,
    mut rx: mpsc::Receiver<EventSpec>,
) {
    let mut recent: HashMap<String, Instant> = HashMap::new();
    while let Some(ev) = rx.recv().await {
        let now = Instant::now();
        recent.retain(|_, at| now.duration_since(*at) < QUIET);
        let r = &ev.regarding;
        let key = format!(
            "{:?}/{:?}/{:?}/{:?}/{:?}/{}/{}",
            r.api_version, r.kind, r.namespace, r.name, ev.type_, ev.reason, ev.note
        );
        if recent.contains_key(&key) {
            continue;
        }
        recent.insert(key, now);
        let namespace = ev
            .regarding
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_string());
        let stamp = Timestamp::now();
        let event = Event {
            metadata: ObjectMeta {
                name: Some(format!(
                    "{}.{:x}",
                    ev.regarding.name.as_deref().unwrap_or("lbspeaker"),
                    stamp.as_nanosecond()
                )),
                namespace: Some(namespace.clone()),
                ..ObjectMeta::default()
            },
            action: Some(ev.action.clone()),
            reason: Some(ev.reason.clone()),
            note: Some(ev.note.chars().take(1024).collect()),
            type_: Some(
                match ev.type_ {
                    EventType::Normal => "Normal",
                    EventType::Warning => "Warning",
                }
                .to_string(),
            ),
            event_time: Some(MicroTime(stamp)),
            regarding: Some(ev.regarding.clone()),
            reporting_controller: Some(controller.clone()),
            reporting_instance: Some(instance.clone()),
            ..Event::default()
        };
        let api: Api<Event> = Api::namespaced(client.clone(), &namespace);
        match api.create(&PostParams::default(), &event).await {
            Ok(_) => tracing::debug!(reason = %ev.reason, "event created"),
            Err(e) => tracing::debug!(reason = %ev.reason, error = %e, "event not created"),
        }
    }
}
