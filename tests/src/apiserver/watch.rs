//! A watch response: newline-delimited JSON events (`{"type": "ADDED", "object": ...}`),
//! periodic BOOKMARKs for clients that asked, an end after `timeoutSeconds`, and the
//! store's registration removed when the client goes away.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use hyper::body::Frame;
use serde_json::{Value, json};
use tokio::time::{Instant, Interval, interval_at, sleep_until};

use super::BoxError;
use super::Inner;
use super::ops::WatchSetup;
use super::store::WatchMsg;
use super::table;

struct Watch {
    inner: Arc<Inner>,
    setup: WatchSetup,
    deadline: Option<Instant>,
    tick: Option<Interval>,
    kind: String,
    first_table: bool,
    done: bool,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.inner.state().forget_watch(self.setup.id);
    }
}

/// The response body of a watch.
pub fn stream(
    inner: Arc<Inner>,
    setup: WatchSetup,
    kind: String,
) -> impl Stream<Item = Result<Frame<Bytes>, BoxError>> + Send + 'static {
    let now = Instant::now();
    let period = inner.config.bookmark_interval;
    let w = Watch {
        deadline: setup.timeout.map(|t| now + t),
        tick: (setup.bookmarks && !period.is_zero()).then(|| interval_at(now + period, period)),
        inner,
        setup,
        kind,
        first_table: true,
        done: false,
    };
    futures::stream::unfold(w, |mut w| async move {
        let item = next(&mut w).await?;
        Some((item, w))
    })
}

async fn next(w: &mut Watch) -> Option<Result<Frame<Bytes>, BoxError>> {
    loop {
        if w.done {
            return None;
        }
        let far = Instant::now() + Duration::from_secs(86_400 * 365);
        let deadline = w.deadline.unwrap_or(far);
        let msg = tokio::select! {
            m = w.setup.rx.recv() => m,
            _ = sleep_until(deadline) => return None,
            _ = tick(&mut w.tick) => {
                w.inner.state().bookmark(Some(w.setup.id));
                continue;
            }
        };
        let line = match msg? {
            WatchMsg::Event(t, obj) => event(w, t.as_str(), obj),
            WatchMsg::Bookmark(rv, initial_end) => {
                let mut meta = json!({"resourceVersion": rv.to_string()});
                if initial_end {
                    meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
                }
                json!({"type": "BOOKMARK", "object": {"kind": w.kind, "apiVersion": w.setup.api_version, "metadata": meta}})
            }
            WatchMsg::Error(status) => {
                w.done = true;
                json!({"type": "ERROR", "object": status})
            }
            WatchMsg::Abort => {
                w.done = true;
                return Some(Err("watch aborted: the API server went away".into()));
            }
        };
        let mut bytes = line.to_string().into_bytes();
        bytes.push(b'\n');
        return Some(Ok(Frame::data(Bytes::from(bytes))));
    }
}

fn event(w: &mut Watch, t: &str, obj: Value) -> Value {
    let object = match &w.setup.table {
        None if w.setup.metadata_only => table::partial_metadata(&obj),
        None => obj,
        Some((cols, include)) => {
            let meta = json!({"resourceVersion": obj.pointer("/metadata/resourceVersion").cloned().unwrap_or(Value::Null)});
            let first = std::mem::replace(&mut w.first_table, false);
            table::table(cols, &[obj], *include, meta, first)
        }
    };
    json!({"type": t, "object": object})
}

async fn tick(t: &mut Option<Interval>) {
    match t {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending::<()>().await,
    }
}
