//! `--metrics-addr ADDR`: the Prometheus exporter's HTTP listener.
//!
//! - `GET /health` answers `200 OK` with the body `OK` while the process
//!   runs (liveness only: it says nothing about the bus).
//! - Any other path (`/metrics` by convention) answers the text exposition
//!   of every metric the process has touched, each with `# HELP` and
//!   `# TYPE` lines: the bus's (`astrid_events::metrics`) and, in a build
//!   with the `nats` feature, the bridge's (`astrid_events_nats::metrics`).

use std::net::SocketAddr;

use anyhow::Context as _;

/// Installs the exporter on `addr` and describes every metric (must run
/// inside the runtime, before the bus or a bridge is built).
///
/// # Errors
/// The address cannot be bound, or a recorder is already installed.
pub(crate) fn install(addr: SocketAddr) -> anyhow::Result<()> {
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .with_http_listener(addr)
        .install()
        .with_context(|| format!("cannot serve metrics on {addr}"))?;
    astrid_events::metrics::describe();
    #[cfg(feature = "nats")]
    astrid_events_nats::metrics::describe();
    Ok(())
}
