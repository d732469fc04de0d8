//! The admin HTTP server: `/metrics` for Prometheus, `/healthz` for liveness, `/readyz` for
//! readiness. Plain HTTP; it listens on loopback unless told otherwise. The operator and the
//! exchange each serve one, each with what it has to tell ([`Admin`]).

use std::{future::Future, sync::Arc};

use axum::{
    Router,
    extract::State,
    http::{StatusCode, header},
    response::IntoResponse,
    routing::get,
};
use tokio::net::TcpListener;

use crate::{health::Health, metrics::Metrics};

/// What the handlers read.
#[derive(Clone, Debug)]
pub struct AdminState {
    /// The metrics to expose.
    pub metrics: Metrics,
    /// The health to report.
    pub health: Arc<Health>,
}

/// What a process's admin server answers with.
pub trait Admin: Send + Sync + 'static {
    /// The Prometheus text exposition of the process's registry.
    fn render_metrics(&self) -> Result<String, prometheus::Error>;
    /// Whether `/readyz` answers 200, and why (or why not).
    fn readiness(&self) -> (bool, &'static str);
}

impl Admin for AdminState {
    fn render_metrics(&self) -> Result<String, prometheus::Error> {
        self.metrics.render()
    }

    fn readiness(&self) -> (bool, &'static str) {
        self.health.readiness()
    }
}

type Shared = Arc<dyn Admin>;

/// The admin routes.
pub fn router(state: impl Admin) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(Arc::new(state) as Shared)
}

/// Serves the admin routes on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    state: impl Admin,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn metrics(State(state): State<Shared>) -> impl IntoResponse {
    match state.render_metrics() {
        Ok(text) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        ),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("cannot encode metrics: {e}\n"),
        ),
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<Shared>) -> impl IntoResponse {
    let (ready, why) = state.readiness();
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, format!("{why}\n"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::health::Role;

    async fn get(addr: std::net::SocketAddr, path: &str) -> String {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        response
    }

    #[tokio::test]
    async fn the_admin_server_answers_health_readiness_and_metrics() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = AdminState {
            metrics: Metrics::new().unwrap(),
            health: Arc::new(Health::default()),
        };
        let health = state.health.clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, state, async {
            rx.await.ok();
        }));

        assert!(get(addr, "/healthz").await.starts_with("HTTP/1.1 200"));
        let starting = get(addr, "/readyz").await;
        assert!(starting.starts_with("HTTP/1.1 503"), "{starting}");
        health.set_role(Role::Standby);
        health.set_apiserver_ok(true);
        assert!(get(addr, "/readyz").await.starts_with("HTTP/1.1 200"));
        let metrics = get(addr, "/metrics").await;
        assert!(metrics.contains("gongshu_leader 0"), "{metrics}");

        tx.send(()).unwrap();
        server.await.unwrap().unwrap();
    }
}
