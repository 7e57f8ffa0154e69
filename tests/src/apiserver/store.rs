//! Storage: every object by group/resource and namespace/name, one global resourceVersion
//! counter (as etcd's revision), a bounded history of changes for watches and consistent
//! lists, and the open watches, all behind the server's one lock so that a watch never misses
//! or reorders an event.

use std::collections::{BTreeMap, HashMap, VecDeque};

use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::registry::{GroupResource, Registry};
use super::selector::{FieldSelector, LabelSelector};

/// `(namespace, name)`; the namespace is "" for cluster-scoped objects.
pub type Key = (String, String);

/// A watch event's type, as sent on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change, kept in the history window.
#[derive(Debug, Clone)]
struct Change {
    rv: u64,
    gr: GroupResource,
    key: Key,
    kind: EventType,
    /// The new object, or the last state of a deleted one (with the deletion's version).
    object: Value,
    /// The object before the change.
    prev: Option<Value>,
}

/// What a watch stream receives from the store.
#[derive(Debug, Clone)]
pub enum WatchMsg {
    Event(EventType, Value),
    /// `BOOKMARK` at this resourceVersion; `true` marks the end of the initial events.
    Bookmark(u64, bool),
    /// An `ERROR` event (410 Expired) after which the stream ends.
    Error(Value),
    /// End the response with a transport error, as a lost connection would.
    Abort,
}

/// Which objects a watch sees.
#[derive(Debug, Clone)]
pub struct WatchFilter {
    pub gr: GroupResource,
    /// `apiVersion` the events are presented in.
    pub api_version: String,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    pub bookmarks: bool,
}

impl WatchFilter {
    fn matches(&self, obj: &Value) -> bool {
        let meta = |k: &str| {
            obj.pointer(&format!("/metadata/{k}"))
                .and_then(Value::as_str)
                .unwrap_or("")
        };
        self.namespace
            .as_deref()
            .is_none_or(|ns| meta("namespace") == ns)
            && self.name.as_deref().is_none_or(|n| meta("name") == n)
            && self.labels.matches(obj)
            && self.fields.matches(obj)
    }

    fn present(&self, obj: &Value) -> Value {
        let mut o = obj.clone();
        o["apiVersion"] = json!(self.api_version);
        o
    }
}

struct Watcher {
    id: u64,
    filter: WatchFilter,
    tx: mpsc::UnboundedSender<WatchMsg>,
}

/// Where a watch starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchStart {
    /// ADDED for every current object first (no resourceVersion, "0", or sendInitialEvents);
    /// with `true`, then a BOOKMARK marking the end of the initial events.
    Current(bool),
    /// Every change after this resourceVersion.
    After(u64),
}

/// A list read at a resourceVersion that history no longer covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooOld {
    pub requested: u64,
    pub oldest: u64,
}

/// The whole server state, behind one lock.
pub struct State {
    pub registry: Registry,
    objects: HashMap<GroupResource, BTreeMap<Key, Value>>,
    rv: u64,
    history: VecDeque<Change>,
    history_limit: usize,
    /// Every change with a version above this one is in `history`.
    floor: u64,
    watchers: Vec<Watcher>,
    next_watcher: u64,
}

impl State {
    pub fn new(registry: Registry, history_limit: usize) -> Self {
        State {
            registry,
            objects: HashMap::new(),
            rv: 0,
            history: VecDeque::new(),
            history_limit,
            floor: 0,
            watchers: Vec::new(),
            next_watcher: 1,
        }
    }

    /// The latest resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    pub fn get(&self, gr: &GroupResource, key: &Key) -> Option<&Value> {
        self.objects.get(gr).and_then(|m| m.get(key))
    }

    /// Current objects of a type, in a namespace or all, ordered by namespace then name.
    pub fn list(&self, gr: &GroupResource, namespace: Option<&str>) -> Vec<Value> {
        self.objects
            .get(gr)
            .into_iter()
            .flat_map(|m| m.iter())
            .filter(|((ns, _), _)| namespace.is_none_or(|want| ns == want))
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// The objects of a type as they were at `rv`, rebuilt by undoing newer changes.
    pub fn snapshot_at(&self, gr: &GroupResource, rv: u64) -> Result<BTreeMap<Key, Value>, TooOld> {
        let mut objs = self.objects.get(gr).cloned().unwrap_or_default();
        if rv >= self.rv {
            return Ok(objs);
        }
        if rv < self.floor {
            return Err(TooOld {
                requested: rv,
                oldest: self.floor,
            });
        }
        for c in self.history.iter().rev().take_while(|c| c.rv > rv) {
            if &c.gr != gr {
                continue;
            }
            match (&c.kind, &c.prev) {
                (EventType::Added, _) => {
                    objs.remove(&c.key);
                }
                (_, Some(prev)) => {
                    objs.insert(c.key.clone(), prev.clone());
                }
                (_, None) => {}
            }
        }
        Ok(objs)
    }

    pub fn namespace_exists(&self, ns: &str) -> bool {
        self.get(
            &(String::new(), "namespaces".into()),
            &(String::new(), ns.to_string()),
        )
        .is_some()
    }

    /// Stores a created or changed object under a new resourceVersion, records the change
    /// and tells the watches. Returns the stored object.
    pub fn put(&mut self, gr: &GroupResource, key: &Key, mut obj: Value) -> Value {
        self.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        let prev = self
            .objects
            .entry(gr.clone())
            .or_default()
            .insert(key.clone(), obj.clone());
        let kind = if prev.is_some() {
            EventType::Modified
        } else {
            EventType::Added
        };
        self.record(Change {
            rv: self.rv,
            gr: gr.clone(),
            key: key.clone(),
            kind,
            object: obj.clone(),
            prev,
        });
        obj
    }

    /// Removes an object; the returned last state carries the deletion's resourceVersion.
    pub fn remove(&mut self, gr: &GroupResource, key: &Key) -> Option<Value> {
        let prev = self.objects.get_mut(gr)?.remove(key)?;
        self.rv += 1;
        let mut last = prev.clone();
        last["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.record(Change {
            rv: self.rv,
            gr: gr.clone(),
            key: key.clone(),
            kind: EventType::Deleted,
            object: last.clone(),
            prev: Some(prev),
        });
        Some(last)
    }

    fn record(&mut self, c: Change) {
        self.watchers.retain(|w| {
            if w.filter.gr != c.gr {
                return true;
            }
            match event_for(&w.filter, c.kind, &c.object, c.prev.as_ref()) {
                Some((t, o)) => w.tx.send(WatchMsg::Event(t, o)).is_ok(),
                None => !w.tx.is_closed(),
            }
        });
        self.history.push_back(c);
        while self.history.len() > self.history_limit {
            if let Some(old) = self.history.pop_front() {
                self.floor = old.rv;
            }
        }
    }

    /// Forgets all history: any earlier resourceVersion is now too old (410).
    pub fn compact(&mut self) {
        self.history.clear();
        self.floor = self.rv;
    }

    pub fn set_history_limit(&mut self, limit: usize) {
        self.history_limit = limit;
        while self.history.len() > limit {
            if let Some(old) = self.history.pop_front() {
                self.floor = old.rv;
            }
        }
    }

    /// Opens a watch. A start older than the history gets one `ERROR` 410 event and an
    /// ended stream, which is how kube-apiserver tells a client to re-list.
    pub fn watch(
        &mut self,
        filter: WatchFilter,
        start: WatchStart,
    ) -> (u64, mpsc::UnboundedReceiver<WatchMsg>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let id = self.next_watcher;
        self.next_watcher += 1;
        match start {
            WatchStart::After(rv) if rv < self.floor => {
                let e = super::error::ApiError::expired(format!(
                    "too old resource version: {rv} ({})",
                    self.floor + 1
                ));
                let _ = tx.send(WatchMsg::Error(e.to_status()));
                return (id, rx);
            }
            WatchStart::After(rv) => {
                for c in self
                    .history
                    .iter()
                    .filter(|c| c.rv > rv && c.gr == filter.gr)
                {
                    if let Some((t, o)) = event_for(&filter, c.kind, &c.object, c.prev.as_ref()) {
                        let _ = tx.send(WatchMsg::Event(t, o));
                    }
                }
            }
            WatchStart::Current(end_marker) => {
                for o in self
                    .objects
                    .get(&filter.gr)
                    .into_iter()
                    .flat_map(|m| m.values())
                {
                    if filter.matches(o) {
                        let _ = tx.send(WatchMsg::Event(EventType::Added, filter.present(o)));
                    }
                }
                if end_marker {
                    let _ = tx.send(WatchMsg::Bookmark(self.rv, true));
                }
            }
        }
        self.watchers.push(Watcher { id, filter, tx });
        (id, rx)
    }

    /// Sends a BOOKMARK at the current version to one watch (its periodic bookmark) or to
    /// every watch that asked for bookmarks.
    pub fn bookmark(&mut self, id: Option<u64>) {
        let rv = self.rv;
        self.watchers.retain(|w| {
            if id.is_some_and(|id| id != w.id) || !w.filter.bookmarks {
                return true;
            }
            w.tx.send(WatchMsg::Bookmark(rv, false)).is_ok()
        });
    }

    /// Ends watches (all, or those of one type): cleanly, with a 410 ERROR event, or as a
    /// lost connection. Returns how many were open.
    pub fn end_watches(&mut self, gr: Option<&GroupResource>, how: EndWatch) -> usize {
        let mut n = 0;
        let rv = self.rv;
        self.watchers.retain(|w| {
            if gr.is_some_and(|gr| *gr != w.filter.gr) {
                return true;
            }
            n += usize::from(!w.tx.is_closed());
            let _ = match how {
                EndWatch::Close => Ok(()),
                EndWatch::Expire => {
                    let e = super::error::ApiError::expired(format!(
                        "too old resource version: {rv} ({})",
                        rv + 1
                    ));
                    w.tx.send(WatchMsg::Error(e.to_status()))
                }
                EndWatch::Abort => w.tx.send(WatchMsg::Abort),
            };
            false
        });
        n
    }

    /// Open watches, optionally of one type.
    pub fn watch_count(&mut self, gr: Option<&GroupResource>) -> usize {
        self.watchers.retain(|w| !w.tx.is_closed());
        self.watchers
            .iter()
            .filter(|w| gr.is_none_or(|gr| *gr == w.filter.gr))
            .count()
    }

    pub fn forget_watch(&mut self, id: u64) {
        self.watchers.retain(|w| w.id != id);
    }
}

/// How [`State::end_watches`] ends a watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndWatch {
    Close,
    Expire,
    Abort,
}

/// The event a filtered watch sees for a change: an object that starts matching is ADDED,
/// one that stops matching is DELETED, as kube-apiserver's watch cache reports them.
fn event_for(
    f: &WatchFilter,
    kind: EventType,
    obj: &Value,
    prev: Option<&Value>,
) -> Option<(EventType, Value)> {
    let now = f.matches(obj);
    let before = prev.is_some_and(|p| f.matches(p));
    let t = match kind {
        EventType::Added if now => EventType::Added,
        EventType::Modified if now && before => EventType::Modified,
        EventType::Modified if now => EventType::Added,
        EventType::Modified if before => EventType::Deleted,
        EventType::Deleted if before || now => EventType::Deleted,
        _ => return None,
    };
    Some((t, f.present(obj)))
}

/// The current time as Kubernetes writes timestamps (RFC 3339, seconds, UTC).
pub fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gr() -> GroupResource {
        (String::new(), "services".into())
    }

    fn key(n: &str) -> Key {
        ("default".into(), n.into())
    }

    fn svc(n: &str, app: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": n, "namespace": "default", "labels": {"app": app}}})
    }

    fn filter(labels: &str) -> WatchFilter {
        WatchFilter {
            gr: gr(),
            api_version: "v1".into(),
            namespace: None,
            name: None,
            labels: LabelSelector::parse(labels).unwrap(),
            fields: FieldSelector::default(),
            bookmarks: true,
        }
    }

    fn drain(rx: &mut mpsc::UnboundedReceiver<WatchMsg>) -> Vec<String> {
        let mut out = Vec::new();
        while let Ok(m) = rx.try_recv() {
            out.push(match m {
                WatchMsg::Event(t, o) => {
                    format!("{} {}", t.as_str(), o["metadata"]["name"].as_str().unwrap())
                }
                WatchMsg::Bookmark(rv, end) => format!("BOOKMARK {rv} {end}"),
                WatchMsg::Error(s) => format!("ERROR {}", s["code"]),
                WatchMsg::Abort => "ABORT".into(),
            });
        }
        out
    }

    #[test]
    fn every_write_gets_the_next_resource_version() {
        let mut s = State::new(Registry::builtin(), 10);
        let a = s.put(&gr(), &key("a"), svc("a", "x"));
        let b = s.put(&gr(), &key("a"), svc("a", "y"));
        let c = s.remove(&gr(), &key("a")).unwrap();
        assert_eq!(a["metadata"]["resourceVersion"], "1");
        assert_eq!(b["metadata"]["resourceVersion"], "2");
        assert_eq!(c["metadata"]["resourceVersion"], "3");
    }

    #[test]
    fn a_watch_from_a_version_replays_what_came_after_it() {
        let mut s = State::new(Registry::builtin(), 10);
        s.put(&gr(), &key("a"), svc("a", "x"));
        s.put(&gr(), &key("b"), svc("b", "x"));
        let (_, mut rx) = s.watch(filter(""), WatchStart::After(1));
        s.remove(&gr(), &key("a"));
        assert_eq!(drain(&mut rx), vec!["ADDED b", "DELETED a"]);
    }

    #[test]
    fn a_watch_older_than_the_history_gets_410_and_no_events() {
        let mut s = State::new(Registry::builtin(), 2);
        for n in ["a", "b", "c", "d"] {
            s.put(&gr(), &key(n), svc(n, "x"));
        }
        let (_, mut rx) = s.watch(filter(""), WatchStart::After(1));
        s.put(&gr(), &key("e"), svc("e", "x"));
        assert_eq!(drain(&mut rx), vec!["ERROR 410"]);
        let (_, mut ok) = s.watch(filter(""), WatchStart::After(3));
        assert_eq!(drain(&mut ok), vec!["ADDED d", "ADDED e"]);
    }

    #[test]
    fn leaving_a_label_selector_is_a_delete_and_entering_it_an_add() {
        let mut s = State::new(Registry::builtin(), 10);
        s.put(&gr(), &key("a"), svc("a", "web"));
        let (_, mut rx) = s.watch(filter("app=web"), WatchStart::Current(true));
        s.put(&gr(), &key("a"), svc("a", "db"));
        s.put(&gr(), &key("a"), svc("a", "web"));
        s.put(&gr(), &key("b"), svc("b", "db"));
        assert_eq!(
            drain(&mut rx),
            vec!["ADDED a", "BOOKMARK 1 true", "DELETED a", "ADDED a"]
        );
    }

    #[test]
    fn a_snapshot_undoes_later_changes() {
        let mut s = State::new(Registry::builtin(), 10);
        s.put(&gr(), &key("a"), svc("a", "x"));
        s.put(&gr(), &key("b"), svc("b", "x"));
        s.put(&gr(), &key("a"), svc("a", "y"));
        s.remove(&gr(), &key("b"));
        s.put(&gr(), &key("c"), svc("c", "x"));
        let at2 = s.snapshot_at(&gr(), 2).unwrap();
        let names: Vec<&str> = at2.keys().map(|k| k.1.as_str()).collect();
        assert_eq!(names, vec!["a", "b"]);
        assert_eq!(at2[&key("a")]["metadata"]["labels"]["app"], "x");
        s.compact();
        assert_eq!(
            s.snapshot_at(&gr(), 2).unwrap_err(),
            TooOld {
                requested: 2,
                oldest: 5
            }
        );
    }

    #[test]
    fn bookmarks_go_only_to_watches_that_asked() {
        let mut s = State::new(Registry::builtin(), 10);
        let (_, mut yes) = s.watch(filter(""), WatchStart::After(0));
        let mut f = filter("");
        f.bookmarks = false;
        let (_, mut no) = s.watch(f, WatchStart::After(0));
        s.put(&gr(), &key("a"), svc("a", "x"));
        s.bookmark(None);
        assert_eq!(drain(&mut yes), vec!["ADDED a", "BOOKMARK 1 false"]);
        assert_eq!(drain(&mut no), vec!["ADDED a"]);
    }
}
