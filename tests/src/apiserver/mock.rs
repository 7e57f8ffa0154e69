//! A `tower-test` mock behind a kube client, for tests that pin the exact request a piece of
//! code sends (method, path, query, patch type, field manager, body) and script the answer.
//!
//! ```no_run
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! use tests::apiserver::mock;
//! let (client, mut mock) = mock::client();
//! let write = tokio::spawn(async move { /* code under test, using `client` */ });
//! let req = mock.next().await?;
//! assert_eq!(req.path, "/api/v1/namespaces/default/services/web/status");
//! assert_eq!(req.content_type.as_deref(), Some("application/apply-patch+yaml"));
//! req.respond_echo(200)?;
//! write.await?;
//! # Ok(()) }
//! ```

use std::time::Duration;

use kube::client::Body;
use serde_json::Value;

type Handle = tower_test::mock::Handle<http::Request<Body>, http::Response<Body>>;

/// Why a mocked exchange failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MockError {
    #[error("no request came within {0:?}")]
    Timeout(Duration),
    #[error("the client went away without sending a request")]
    Closed,
    #[error("reading the request body: {0}")]
    Body(#[source] kube::Error),
    #[error("building the response: {0}")]
    Response(#[source] http::Error),
}

/// The mocked HTTP service itself, for code that builds its own client around it (with
/// layers of its own, such as a user agent or a rate limit).
pub type Service = tower_test::mock::Mock<http::Request<Body>, http::Response<Body>>;

/// A kube client whose every request goes to the returned [`Mock`].
pub fn client() -> (kube::Client, Mock) {
    let (service, mock) = service();
    (kube::Client::new(service, "default"), mock)
}

/// An HTTP service whose every request goes to the returned [`Mock`].
pub fn service() -> (Service, Mock) {
    let (service, handle) = tower_test::mock::pair::<http::Request<Body>, http::Response<Body>>();
    (
        service,
        Mock {
            handle,
            wait: Duration::from_secs(10),
        },
    )
}

/// The other end of a mocked client.
pub struct Mock {
    handle: Handle,
    wait: Duration,
}

impl std::fmt::Debug for Mock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mock").field("wait", &self.wait).finish()
    }
}

impl Mock {
    /// How long [`Mock::next`] waits for a request (10 s by default).
    pub fn wait(mut self, d: Duration) -> Self {
        self.wait = d;
        self
    }

    /// The next request the client sends.
    pub async fn next(&mut self) -> Result<Captured, MockError> {
        let (req, respond) = tokio::time::timeout(self.wait, self.handle.next_request())
            .await
            .map_err(|_| MockError::Timeout(self.wait))?
            .ok_or(MockError::Closed)?;
        let (parts, body) = req.into_parts();
        let bytes = body.collect_bytes().await.map_err(MockError::Body)?;
        let header = |h: http::header::HeaderName| {
            parts
                .headers
                .get(h)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        Ok(Captured {
            method: parts.method.to_string(),
            path: parts.uri.path().to_string(),
            query: form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
            content_type: header(http::header::CONTENT_TYPE),
            user_agent: header(http::header::USER_AGENT),
            body: if bytes.is_empty() {
                None
            } else {
                super::patch::parse_body(&bytes).ok()
            },
            respond,
        })
    }

    /// Whether the client sent nothing more within `d` (or went away without sending).
    pub async fn is_quiet_for(&mut self, d: Duration) -> bool {
        !matches!(
            tokio::time::timeout(d, self.handle.next_request()).await,
            Ok(Some(_))
        )
    }
}

/// One request the client sent, and the means to answer it.
pub struct Captured {
    pub method: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub content_type: Option<String>,
    pub user_agent: Option<String>,
    /// The body, parsed as JSON (or YAML); `None` when empty.
    pub body: Option<Value>,
    respond: tower_test::mock::SendResponse<http::Response<Body>>,
}

impl std::fmt::Debug for Captured {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Captured")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("query", &self.query)
            .field("content_type", &self.content_type)
            .field("body", &self.body)
            .finish()
    }
}

impl Captured {
    pub fn query_param(&self, k: &str) -> Option<&str> {
        self.query
            .iter()
            .rev()
            .find(|(q, _)| q == k)
            .map(|(_, v)| v.as_str())
    }

    /// `?fieldManager=`.
    pub fn field_manager(&self) -> Option<&str> {
        self.query_param("fieldManager")
    }

    /// Answers with a JSON document.
    pub fn respond_json(self, code: u16, v: &Value) -> Result<(), MockError> {
        let r = http::Response::builder()
            .status(code)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Body::from(v.to_string().into_bytes()))
            .map_err(MockError::Response)?;
        self.respond.send_response(r);
        Ok(())
    }

    /// Answers with the request's own body as the resulting object (what a server would
    /// return for a create, replace or apply that changes nothing else).
    pub fn respond_echo(self, code: u16) -> Result<(), MockError> {
        let v = self.body.clone().unwrap_or(Value::Null);
        self.respond_json(code, &v)
    }

    /// Answers with an error `Status`, e.g. a 409 conflict.
    pub fn respond_error(self, e: &super::ApiError) -> Result<(), MockError> {
        self.respond_json(e.code, &e.to_status())
    }
}
