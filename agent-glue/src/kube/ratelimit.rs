//! A client-side rate limit for the API server, as client-go's `QPS`/`Burst`, whose rate
//! follows the cluster: every L2-announced service costs its holder one Lease renewal per
//! retry period, so a fixed limit that suits ten services starves a thousand (renewals queue
//! behind each other, holders miss their renew deadline and step down). The limit is
//! `base + services × per_service` requests per second (burst likewise), capped so that a
//! huge cluster cannot make lbspeaker hammer its API server.
//!
//! [`RateLimitLayer`] puts it in front of a kube client's HTTP stack (and sets our
//! `User-Agent`); a watch costs one token when it starts, not per event.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::HeaderValue;

/// Requests per second never exceed this, however many services there are.
pub const MAX_QPS: f64 = 1000.0;

#[derive(Debug)]
struct Bucket {
    base_qps: f64,
    base_burst: f64,
    per_service: f64,
    qps: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
    services: usize,
}

impl Bucket {
    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + dt * self.qps).min(self.burst);
        self.last = now;
    }
}

/// A token bucket shared by every clone (one per client).
#[derive(Debug, Clone)]
pub struct RateLimit {
    bucket: Arc<Mutex<Bucket>>,
}

impl RateLimit {
    /// `qps` requests per second on average, `burst` at once, plus `per_service` requests per
    /// second for each service (see [`RateLimit::scale_to`]).
    pub fn new(qps: f64, burst: u32, per_service: f64) -> RateLimit {
        let qps = qps.clamp(0.1, MAX_QPS);
        let burst = f64::from(burst.max(1));
        RateLimit {
            bucket: Arc::new(Mutex::new(Bucket {
                base_qps: qps,
                base_burst: burst,
                per_service: per_service.max(0.0),
                qps,
                burst,
                tokens: burst,
                last: Instant::now(),
                services: 0,
            })),
        }
    }

    /// No limit worth the name (for tests that count requests rather than pace them).
    pub fn unlimited() -> RateLimit {
        RateLimit::new(MAX_QPS, 100_000, 0.0)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Bucket> {
        self.bucket.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets the rate for `services` services: `base + services × per_service` per second,
    /// the burst growing by the same amount. Returns whether it changed.
    pub fn scale_to(&self, services: usize) -> bool {
        let mut b = self.lock();
        if b.services == services {
            return false;
        }
        b.refill(Instant::now());
        let extra = services as f64 * b.per_service;
        b.qps = (b.base_qps + extra).min(MAX_QPS);
        b.burst = (b.base_burst + extra.ceil()).min(MAX_QPS * 2.0);
        b.tokens = b.tokens.min(b.burst);
        b.services = services;
        true
    }

    /// The current rate and burst.
    pub fn current(&self) -> (f64, f64) {
        let b = self.lock();
        (b.qps, b.burst)
    }

    /// Takes a token now, or says how long until one is there.
    pub fn try_take(&self, now: Instant) -> Result<(), Duration> {
        let mut b = self.lock();
        b.refill(now);
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / b.qps))
        }
    }
}

/// Puts a [`RateLimit`] (and our `User-Agent`) in front of an HTTP service.
#[derive(Debug, Clone)]
pub struct RateLimitLayer {
    limit: RateLimit,
    user_agent: Option<HeaderValue>,
}

impl RateLimitLayer {
    /// The layer; `user_agent` is set on requests that have none.
    pub fn new(limit: RateLimit, user_agent: Option<&str>) -> RateLimitLayer {
        RateLimitLayer {
            limit,
            user_agent: user_agent.and_then(|u| HeaderValue::from_str(u).ok()),
        }
    }
}

impl<S> tower::Layer<S> for RateLimitLayer {
    type Service = Limited<S>;

    fn layer(&self, inner: S) -> Limited<S> {
        Limited {
            inner,
            limit: self.limit.clone(),
            user_agent: self.user_agent.clone(),
            sleep: None,
            permit: false,
        }
    }
}

/// The service [`RateLimitLayer`] makes: `poll_ready` waits for a token, so the kube client's
/// buffer holds requests back while the bucket is empty.
pub struct Limited<S> {
    inner: S,
    limit: RateLimit,
    user_agent: Option<HeaderValue>,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    permit: bool,
}

impl<S, B> tower::Service<http::Request<B>> for Limited<S>
where
    S: tower::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        while !self.permit {
            if let Some(s) = self.sleep.as_mut() {
                match s.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(()) => self.sleep = None,
                }
            }
            match self.limit.try_take(Instant::now()) {
                Ok(()) => self.permit = true,
                Err(wait) => self.sleep = Some(Box::pin(tokio::time::sleep(wait))),
            }
        }
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        self.permit = false;
        if let Some(ua) = &self.user_agent {
            req.headers_mut()
                .entry(http::header::USER_AGENT)
                .or_insert_with(|| ua.clone());
        }
        self.inner.call(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_bucket_gives_its_burst_then_paces_at_the_rate() {
        let l = RateLimit::new(10.0, 3, 0.0);
        let t = Instant::now();
        for _ in 0..3 {
            assert!(l.try_take(t).is_ok());
        }
        let wait = l.try_take(t).unwrap_err();
        assert!(wait <= Duration::from_millis(100) && wait > Duration::from_millis(90));
        assert!(l.try_take(t + Duration::from_millis(100)).is_ok());
    }

    #[test]
    fn the_rate_grows_with_the_services_and_stops_at_the_cap() {
        let l = RateLimit::new(10.0, 20, 0.5);
        assert!(l.scale_to(100));
        assert_eq!(l.current(), (60.0, 70.0));
        assert!(!l.scale_to(100), "same count: nothing to do");
        l.scale_to(1_000_000);
        assert_eq!(l.current().0, MAX_QPS);
        l.scale_to(0);
        assert_eq!(l.current(), (10.0, 20.0));
    }

    #[tokio::test]
    async fn requests_wait_for_a_token_and_carry_our_user_agent() {
        use tower::{Layer, Service, ServiceExt};
        let seen = Arc::new(Mutex::new(Vec::<(Instant, String)>::new()));
        let s2 = seen.clone();
        let inner = tower::service_fn(move |req: http::Request<()>| {
            let ua = req
                .headers()
                .get(http::header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            s2.lock().unwrap().push((Instant::now(), ua));
            async { Ok::<_, std::convert::Infallible>(()) }
        });
        let mut svc = RateLimitLayer::new(RateLimit::new(20.0, 1, 0.0), Some("lbspeaker-agent/x"))
            .layer(inner);
        let start = Instant::now();
        for _ in 0..3 {
            svc.ready()
                .await
                .unwrap()
                .call(http::Request::new(()))
                .await
                .unwrap();
        }
        let seen = seen.lock().unwrap();
        assert!(seen.iter().all(|(_, ua)| ua == "lbspeaker-agent/x"));
        // One at once, then one every 50 ms.
        assert!(seen[2].0.duration_since(start) >= Duration::from_millis(95));
    }
}
