//! `--metrics-addr ADDR`: a Prometheus scrape endpoint.
//!
//! - `GET /health` answers `200` with the body `OK` while the process runs
//!   (liveness only: it says nothing about the bus).
//! - `GET` of any other path (`/metrics` by convention) answers the text
//!   exposition of every metric the process has touched, each with `# HELP`
//!   and `# TYPE` lines: the bus's (`astrid_events::metrics`) and, in a
//!   build with the `nats` feature, the bridge's
//!   (`astrid_events_nats::metrics`).
//!
//! The recorder is `metrics-exporter-prometheus`'s; the HTTP side is this
//! file's few lines of HTTP/1.1 (one request per connection) instead of the
//! exporter's hyper server, which alone took about a tenth of the CLI's
//! build. Requests come from the network, so each is bounded: at most
//! [`MAX_REQUEST_BYTES`] read, [`REQUEST_TIMEOUT`] to arrive, and
//! [`MAX_CONNECTIONS`] answered at once (more wait in the listen queue).
//! Anything malformed gets a `400` and the connection is closed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// Largest request head read; a longer one is refused.
const MAX_REQUEST_BYTES: usize = 8 * 1024;
/// Time a client has to send its request head.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections answered at once.
const MAX_CONNECTIONS: usize = 32;

/// Binds `addr`, installs the recorder, describes every metric and serves
/// scrapes in the background (must run inside the runtime, before the bus
/// or a bridge is built).
///
/// # Errors
/// The address cannot be bound, or a recorder is already installed.
pub(crate) fn install(addr: SocketAddr) -> anyhow::Result<()> {
    let listener = std::net::TcpListener::bind(addr)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .and_then(TcpListener::from_std)
        .with_context(|| format!("cannot serve metrics on {addr}"))?;
    let handle = PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| anyhow!("cannot install the metrics recorder: {e}"))?;
    astrid_events::metrics::describe();
    #[cfg(feature = "nats")]
    astrid_events_nats::metrics::describe();
    tokio::spawn(serve(listener, handle));
    Ok(())
}

/// Accepts connections until the runtime ends.
async fn serve(listener: TcpListener, handle: PrometheusHandle) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        match listener.accept().await {
            Ok((stream, _)) => {
                let handle = handle.clone();
                tokio::spawn(async move {
                    let _ = answer(stream, &handle).await;
                    drop(permit);
                });
            }
            // Out of file descriptors and the like: wait instead of spinning.
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Reads one request head and writes the response.
async fn answer(mut stream: TcpStream, handle: &PrometheusHandle) -> std::io::Result<()> {
    let head = tokio::time::timeout(REQUEST_TIMEOUT, read_head(&mut stream)).await;
    let (status, body) = match head {
        Ok(Ok(Some(head))) => match request_path(&head) {
            Some("/health") => ("200 OK", "OK".to_owned()),
            Some(_) => {
                handle.run_upkeep();
                ("200 OK", handle.render())
            }
            None => ("400 Bad Request", String::new()),
        },
        Ok(Ok(None)) => ("400 Bad Request", String::new()),
        Ok(Err(e)) => return Err(e),
        Err(_) => ("408 Request Timeout", String::new()),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

/// The request head (through the blank line), or `None` if the client
/// closed first or it exceeds [`MAX_REQUEST_BYTES`].
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Option<Vec<u8>>> {
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        head.extend_from_slice(&chunk[..n]);
        if head.windows(4).any(|w| w == b"\r\n\r\n") {
            return Ok(Some(head));
        }
        if head.len() > MAX_REQUEST_BYTES {
            return Ok(None);
        }
    }
}

/// The path of a `GET` request line (`GET /path HTTP/1.x`), query removed.
fn request_path(head: &[u8]) -> Option<&str> {
    let line = head.split(|b| *b == b'\r').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    if method != "GET" || !version.starts_with("HTTP/1.") || parts.next().is_some() {
        return None;
    }
    Some(target.split('?').next().unwrap_or(target))
}

#[cfg(test)]
mod tests {
    use super::request_path;

    #[test]
    fn request_lines() {
        let path = |s: &str| request_path(s.as_bytes()).map(str::to_owned);
        assert_eq!(
            path("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").as_deref(),
            Some("/metrics")
        );
        assert_eq!(
            path("GET /health?x=1 HTTP/1.0\r\n\r\n").as_deref(),
            Some("/health")
        );
        for bad in [
            "POST /metrics HTTP/1.1\r\n\r\n",
            "GET /metrics\r\n\r\n",
            "GET  HTTP/1.1 x\r\n",
            "\u{0}\r\n",
        ] {
            assert_eq!(path(bad), None, "{bad:?}");
        }
        assert_eq!(request_path(&[0xff, b' ', b'/', b' ', b'H']), None);
    }
}
