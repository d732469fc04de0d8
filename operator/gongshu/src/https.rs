//! The HTTPS listeners of the admission webhook and the exchange.

use std::net::SocketAddr;

use axum_server::{
    Server,
    accept::NoDelayAcceptor,
    tls_rustls::{RustlsAcceptor, RustlsConfig},
};

/// A TLS server on `addr` whose connections send each write at once (`TCP_NODELAY`).
///
/// With Nagle's algorithm on, the last small TLS record of an answer (an h2 DATA frame after
/// its HEADERS, a denial after its status line) waits until the peer acknowledges the one
/// before, and peers delay their ACKs by up to 40 ms: the benchmarks saw 40–50 ms stalls on
/// the webhook's denials and at the exchange's p99 (`bench/results/`).
pub fn bind(
    addr: SocketAddr,
    tls: RustlsConfig,
) -> Server<SocketAddr, RustlsAcceptor<NoDelayAcceptor>> {
    axum_server::bind_rustls(addr, tls).map(|acceptor| acceptor.acceptor(NoDelayAcceptor::new()))
}
