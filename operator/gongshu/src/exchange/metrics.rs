//! The exchange's Prometheus metrics (docs/metrics.md, "Exchange"), on one registry whose
//! names all start with `gongshu_`: requests by mode, consumer department and status code,
//! their latency to the response head, and the audit log's metrics
//! ([`crate::audit::AuditMetrics`]).
//!
//! Every label is bounded: `mode` by the routes, `code` by the statuses the handlers return,
//! `department` by the department namespaces platform engineers create. The department comes
//! from the grant the exchange resolved in its cache ([`Department`]), never from the URL, so
//! an unauthenticated caller cannot mint series by inventing paths.

use std::{sync::Arc, time::Instant};

use axum::{
    extract::{MatchedPath, Request, State},
    middleware::Next,
    response::Response,
};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};

use crate::audit::AuditMetrics;

/// Request duration buckets, in seconds, 0.5 ms … 10 s (the contract's): a cached lookup
/// answers in about a millisecond, a page or a verification against a slow source in seconds.
pub const REQUEST_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The `department` of a request that names no grant the exchange serves (or that was refused
/// before the grant was looked up, e.g. without a token).
pub const UNKNOWN_DEPARTMENT: &str = "unknown";

/// The `mode` label: which kind of route answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `GET /v1/grants/{ns}/{name}`: the grant's terms.
    Terms,
    /// Keyed lookups and pages (`/records…`).
    Api,
    /// Downloads.
    File,
    /// Match yes/no.
    Verify,
    /// Anything else: the OpenAPI document, health, unknown paths.
    Other,
}

impl Mode {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Terms => "terms",
            Self::Api => "api",
            Self::File => "file",
            Self::Verify => "verify",
            Self::Other => "other",
        }
    }

    /// The mode of the route pattern the router matched (`None` for the fallback).
    pub fn of_route(route: Option<&str>) -> Self {
        match route {
            Some("/v1/grants/{namespace}/{name}") => Self::Terms,
            Some(
                "/v1/grants/{namespace}/{name}/records"
                | "/v1/grants/{namespace}/{name}/records/{key}",
            ) => Self::Api,
            Some("/v1/grants/{namespace}/{name}/download") => Self::File,
            Some("/v1/grants/{namespace}/{name}/verify") => Self::Verify,
            _ => Self::Other,
        }
    }
}

/// A response extension: the consumer department of the grant the handler resolved (the
/// `gongshu.io/department` label of the grant's namespace, from the exchange's cache).
#[derive(Clone, Debug)]
pub struct Department(pub Arc<str>);

/// The exchange's metrics. Cloning shares them.
#[derive(Clone, Debug)]
pub struct ExchangeMetrics {
    registry: Registry,
    requests: IntCounterVec,
    duration: HistogramVec,
    /// The audit log's metrics, on the same registry.
    pub audit: AuditMetrics,
}

impl ExchangeMetrics {
    /// Registers every metric on a new `gongshu_`-prefixed registry.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(Some("gongshu".into()), None)?;
        let requests = IntCounterVec::new(
            Opts::new(
                "exchange_requests_total",
                "HTTP requests the exchange answered, by mode, consumer department and status code, counted when the response head is written.",
            ),
            &["mode", "department", "code"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "exchange_request_duration_seconds",
                "Time from a request's arrival to its response head (authentication, authorisation, the source's first rows, the audit append), by mode; a download's transfer is not in it.",
            )
            .buckets(REQUEST_BUCKETS.to_vec()),
            &["mode"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        let audit = AuditMetrics::new(&registry)?;
        Ok(Self {
            registry,
            requests,
            duration,
            audit,
        })
    }

    /// Counts one answered request and its time to the response head.
    pub fn observe(&self, mode: Mode, department: &str, code: u16, seconds: f64) {
        let mode = mode.as_str();
        let digits = code_digits(code);
        let code = std::str::from_utf8(&digits).unwrap_or("000");
        self.requests
            .with_label_values(&[mode, department, code])
            .inc();
        self.duration.with_label_values(&[mode]).observe(seconds);
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> Result<String, prometheus::Error> {
        let mut buffer = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buffer)?;
        Ok(String::from_utf8_lossy(&buffer).into_owned())
    }
}

/// The status as its three digits (`StatusCode` holds 100–999 only), without allocating.
fn code_digits(code: u16) -> [u8; 3] {
    let digit = |n: u16| b'0' + (n % 10) as u8;
    [digit(code / 100), digit(code / 10), digit(code)]
}

/// Middleware around every route: counts the response by mode (from the matched route),
/// department (from the handler's [`Department`], `unknown` without one) and code, and observes
/// the time to the response head. A streamed body is still being sent when this returns.
pub async fn track(
    State(metrics): State<ExchangeMetrics>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let mode = Mode::of_route(
        request
            .extensions()
            .get::<MatchedPath>()
            .map(MatchedPath::as_str),
    );
    let response = next.run(request).await;
    let department = response
        .extensions()
        .get::<Department>()
        .map_or(UNKNOWN_DEPARTMENT, |d| &*d.0);
    metrics.observe(
        mode,
        department,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use axum::{
        Router, body::Body, http::StatusCode, middleware, response::IntoResponse, routing::get,
    };
    use tower::ServiceExt;

    use super::*;

    #[test]
    fn every_route_has_its_mode_and_the_rest_is_other() {
        let source = include_str!("handlers.rs");
        let routes: Vec<&str> = source
            .lines()
            .filter_map(|l| l.trim().strip_prefix(".route(\""))
            .filter_map(|l| l.split('"').next())
            .collect();
        assert!(routes.len() >= 8, "{routes:?}");
        for route in routes {
            let want = if route == "/v1/grants/{namespace}/{name}" {
                Mode::Terms
            } else if route.contains("/records") {
                Mode::Api
            } else if route.ends_with("/download") {
                Mode::File
            } else if route.ends_with("/verify") {
                Mode::Verify
            } else {
                Mode::Other
            };
            assert_eq!(Mode::of_route(Some(route)), want, "{route}");
        }
        assert_eq!(Mode::of_route(None), Mode::Other);
    }

    #[test]
    fn the_duration_buckets_span_half_a_millisecond_to_ten_seconds() {
        assert_eq!(REQUEST_BUCKETS.first(), Some(&0.0005));
        assert_eq!(REQUEST_BUCKETS.last(), Some(&10.0));
        assert!(REQUEST_BUCKETS.windows(2).all(|w| w[0] < w[1]));
        let metrics = ExchangeMetrics::new().unwrap();
        metrics.observe(Mode::Api, "tax", 200, 0.002);
        let text = metrics.render().unwrap();
        for le in ["0.0005", "0.001", "0.0025", "10", "+Inf"] {
            let line = format!(
                "gongshu_exchange_request_duration_seconds_bucket{{mode=\"api\",le=\"{le}\"}}"
            );
            assert!(text.contains(&line), "{line} in\n{text}");
        }
        assert!(text.contains("# TYPE gongshu_exchange_request_duration_seconds histogram"));
        assert!(text.contains("# TYPE gongshu_exchange_requests_total counter"));
        assert!(text.contains("gongshu_audit_chain_intact 1"));
    }

    #[test]
    fn codes_are_three_digits() {
        for code in [200, 401, 403, 418, 503, 599] {
            assert_eq!(code_digits(code), code.to_string().as_bytes());
        }
    }

    async fn call(router: Router, uri: &str) -> StatusCode {
        router
            .oneshot(Request::get(uri).body(Body::empty()).unwrap())
            .await
            .unwrap()
            .status()
    }

    #[tokio::test]
    async fn the_middleware_counts_by_route_mode_and_the_handlers_department() {
        let metrics = ExchangeMetrics::new().unwrap();
        let router = Router::new()
            .route(
                "/v1/grants/{namespace}/{name}/records/{key}",
                get(|| async {
                    let mut response = "{}".into_response();
                    response
                        .extensions_mut()
                        .insert(Department(Arc::from("civil-affairs")));
                    response
                }),
            )
            .route(
                "/v1/grants/{namespace}/{name}",
                get(|| async { StatusCode::UNAUTHORIZED }),
            )
            .fallback(|| async { StatusCode::NOT_FOUND })
            .layer(middleware::from_fn_with_state(metrics.clone(), track));
        let ok = call(router.clone(), "/v1/grants/ns/g/records/1").await;
        assert_eq!(ok, StatusCode::OK);
        call(router.clone(), "/v1/grants/ns/g").await;
        // An invented path is `other`/`unknown`: the URL never becomes a label.
        call(router, "/v1/grants/ns/g/invented/x").await;
        let text = metrics.render().unwrap();
        for line in [
            "gongshu_exchange_requests_total{code=\"200\",department=\"civil-affairs\",mode=\"api\"} 1",
            "gongshu_exchange_requests_total{code=\"401\",department=\"unknown\",mode=\"terms\"} 1",
            "gongshu_exchange_requests_total{code=\"404\",department=\"unknown\",mode=\"other\"} 1",
            "gongshu_exchange_request_duration_seconds_count{mode=\"api\"} 1",
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
        assert!(!text.contains("invented"));
    }
}
