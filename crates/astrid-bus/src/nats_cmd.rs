//! `astrid-bus pub`, `sub` and `keygen`: IPC events across processes through
//! NATS, via the `astrid-events-nats` bridge.
//!
//! Each command runs a local bus with a bridge. `pub` exports the one topic
//! it publishes on; `sub` imports its pattern and prints what arrives.
//!
//! # Signatures
//!
//! `pub --sign-key FILE` signs with a key from `keygen` (unsigned without
//! it). `sub` verifies signed events against its `--trust FILE.pub` keys and
//! drops unsigned ones unless `--allow-unsigned` is given; with neither
//! option every event would be dropped, so that is refused up front.
//!
//! # `sub` readiness and exit
//!
//! Once its NATS subscription is confirmed by the server, `sub` prints
//! `subscribed <PATTERN>` on stderr: events published after that line are
//! received. It exits 0 after `--count` events; at `--timeout-ms` (or on
//! SIGINT or SIGTERM) it exits 0 if `--count` was not given, otherwise it
//! fails, naming how many events of how many arrived and how many the
//! bridge rejected. When the reader of its stdout goes away (`sub ... |
//! head -1`), it stops quietly with exit 0.
//!
//! # Connection
//!
//! `--nats URL` (or `NATS_URL`), `--creds FILE` (a NATS credentials file)
//! and `--tlsca FILE` (trust this root CA and require TLS) go to the
//! bridge's builder unchanged; errors name the URL without its user and
//! password.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use astrid_events::validate::{validate_pattern, validate_principal, validate_topic};
use astrid_events::{AstridEvent, EventBus, EventMetadata, IpcMessage, IpcPayload};
use astrid_events_nats::bridge::DEFAULT_PREFIX;
use astrid_events_nats::{Bridge, BridgeBuilder, BridgeStats};

use crate::nats_args::{AuthArgs, ImportArgs, KeygenArgs, PubArgs, SubArgs};
use crate::signal::StopSignals;
use crate::{keyfile, output, payload};

/// Subscriber label of `sub`'s receiver (its lag metric).
const SUB_LABEL: &str = "astrid-bus-sub";

/// `url` with any `user:password@` replaced, for error messages.
pub(crate) fn redact_url(url: &str) -> String {
    url.split(',')
        .map(|one| {
            let (scheme, rest) = one.split_once("://").unwrap_or(("", one));
            let authority_end = rest.find('/').unwrap_or(rest.len());
            let redacted = match rest[..authority_end].rfind('@') {
                Some(at) => format!("***@{}", &rest[at + 1..]),
                None => rest.to_owned(),
            };
            if scheme.is_empty() {
                redacted
            } else {
                format!("{scheme}://{redacted}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// A bridge builder for `url` with the connection options of `auth`.
pub(crate) fn builder(bus: &EventBus, url: &str, auth: &AuthArgs) -> BridgeBuilder {
    let mut builder = Bridge::builder(bus, url);
    if let Some(path) = &auth.creds {
        builder = builder.credentials_file(path);
    }
    if let Some(path) = &auth.tlsca {
        builder = builder.tls_root_ca(path);
    }
    builder
}

/// Starts a bridge importing `patterns` into `bus` under `opts`.
pub(crate) async fn start_import(
    bus: &EventBus,
    url: &str,
    auth: &AuthArgs,
    patterns: &[String],
    opts: &ImportArgs,
) -> anyhow::Result<Bridge> {
    for p in patterns {
        validate_pattern(p).map_err(|e| anyhow!("invalid pattern {p:?}: {e}"))?;
    }
    let trusted = keyfile::read_trusted(&opts.trust)?;
    if trusted.is_empty() && !opts.allow_unsigned {
        bail!(
            "no --trust key and no --allow-unsigned: every event would be rejected; \
             pass --trust FILE.pub or --allow-unsigned"
        );
    }
    let mut builder = builder(bus, url, auth)
        .prefix(opts.prefix.as_deref().unwrap_or(DEFAULT_PREFIX))
        .allow_unsigned(opts.allow_unsigned)
        .trusted_keys(trusted);
    for p in patterns {
        builder = builder.import(p.as_str());
    }
    builder
        .start()
        .await
        .with_context(|| format!("cannot bridge to NATS at {}", redact_url(url)))
}

/// `astrid-bus pub`.
pub(crate) async fn publish(args: PubArgs) -> anyhow::Result<ExitCode> {
    validate_topic(&args.topic).map_err(|e| anyhow!("invalid topic: {e}"))?;
    if let Some(p) = &args.principal {
        validate_principal(p).map_err(|e| anyhow!("invalid --principal: {e}"))?;
    }
    // Read (and bounded) before connecting: a bad payload sends nothing.
    let payload = IpcPayload::from_json_value(payload::read(&args.json)?);
    let signer = args
        .sign_key
        .as_deref()
        .map(keyfile::read_signer)
        .transpose()?;

    let bus = EventBus::new();
    let url = &args.connect.nats;
    let mut builder = builder(&bus, url, &args.connect.auth)
        .prefix(args.prefix.as_deref().unwrap_or(DEFAULT_PREFIX))
        .export(args.topic.as_str());
    if let Some(id) = &args.node_id {
        builder = builder.node_id(id.as_str());
    }
    if let Some(signer) = signer {
        builder = builder.signer(signer);
    }
    let bridge = builder
        .start()
        .await
        .with_context(|| format!("cannot bridge to NATS at {}", redact_url(url)))?;

    // A command-line publisher is no capsule: the source id is nil.
    let mut message = IpcMessage::new(args.topic, payload, uuid::Uuid::nil());
    message.principal = args.principal;
    bus.try_publish(AstridEvent::Ipc {
        metadata: EventMetadata::new("astrid-bus"),
        message,
    })
    .map_err(|e| anyhow!("cannot publish: {e}"))?;

    // Exports what was published, then flushes the connection.
    bridge
        .shutdown()
        .await
        .with_context(|| format!("cannot flush NATS at {}", redact_url(url)))?;
    let stats = bridge.stats();
    if stats.exported != 1 {
        bail!(
            "the event was not sent: {} export errors, {} publish errors, {} dropped (buffer full)",
            stats.export_errors,
            stats.publish_errors,
            stats.dropped_buffer_full
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Why `sub` stopped before `--count` events.
enum Stop {
    Timeout(u64),
    Interrupted,
    BusClosed,
    /// The reader of stdout went away: a quiet end, exit 0.
    StdoutClosed,
}

/// `astrid-bus sub`.
pub(crate) async fn subscribe(args: SubArgs) -> anyhow::Result<ExitCode> {
    validate_pattern(&args.pattern)
        .map_err(|e| anyhow!("invalid pattern {:?}: {e}", args.pattern))?;
    let bus = EventBus::new();
    // Subscribed before the bridge starts, so nothing it imports is missed.
    let mut rx = bus.subscribe_topic_as(args.pattern.as_str(), SUB_LABEL);
    let bridge = start_import(
        &bus,
        &args.connect.nats,
        &args.connect.auth,
        std::slice::from_ref(&args.pattern),
        &args.import,
    )
    .await?;
    // Before the readiness line: see `signal.rs`.
    let mut signals = StopSignals::install().context("cannot install the signal handlers")?;
    output::stderr_line(format_args!("subscribed {}", args.pattern));

    let deadline = args
        .timeout_ms
        .map(|ms| tokio::time::Instant::now() + Duration::from_millis(ms));
    let sleep = async {
        match deadline {
            Some(d) => tokio::time::sleep_until(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(sleep);

    let mut received = 0u64;
    let mut lost = 0u64;
    let stop = loop {
        if args.count.is_some_and(|n| received >= n) {
            break None;
        }
        let event = tokio::select! {
            ev = rx.recv() => ev,
            () = &mut sleep => break Some(Stop::Timeout(args.timeout_ms.unwrap_or_default())),
            () = signals.recv() => break Some(Stop::Interrupted),
        };
        let Some(event) = event else {
            break Some(Stop::BusClosed);
        };
        let line = serde_json::to_string(&*event).context("cannot serialize an event")?;
        match output::stdout_line(&line) {
            Ok(()) => {}
            Err(e) if output::is_stdout_closed(&e) => break Some(Stop::StdoutClosed),
            Err(e) => return Err(e),
        }
        received += 1;
        lost += rx.drain_lagged();
    };
    // `sub` exports nothing, so there is nothing to flush: a failing
    // shutdown (NATS gone) loses no event.
    let _ = bridge.shutdown().await;
    lost += rx.drain_lagged();
    if matches!(stop, Some(Stop::StdoutClosed)) {
        return Ok(ExitCode::SUCCESS);
    }
    if lost > 0 {
        bail!("{lost} events were lost: this subscriber fell behind");
    }
    match (stop, args.count) {
        (None, _) | (Some(Stop::Timeout(_) | Stop::Interrupted | Stop::StdoutClosed), None) => {
            Ok(ExitCode::SUCCESS)
        }
        (Some(stop), Some(n)) => {
            let why = match stop {
                Stop::Timeout(ms) => format!("timed out after {ms} ms"),
                Stop::Interrupted => "interrupted".to_owned(),
                Stop::BusClosed => "the bus closed".to_owned(),
                Stop::StdoutClosed => "stdout was closed".to_owned(),
            };
            bail!(
                "{why}: received {received} of {n} events{}",
                rejections(&bridge.stats())
            )
        }
        (Some(Stop::BusClosed), None) => bail!("the bus closed unexpectedly"),
    }
}

/// `" (…rejected…)"` when the bridge rejected imports, else empty.
fn rejections(s: &BridgeStats) -> String {
    if s.rejected_signature == 0 && s.rejected_malformed == 0 {
        return String::new();
    }
    format!(
        " ({} rejected by the signature policy, {} malformed)",
        s.rejected_signature, s.rejected_malformed
    )
}

/// `astrid-bus keygen`.
pub(crate) fn keygen(args: &KeygenArgs) -> anyhow::Result<ExitCode> {
    let key_id = keyfile::generate(&args.file)?;
    output::stdout_line_or_closed(&key_id)?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn urls_lose_their_credentials() {
        assert_eq!(redact_url("nats://127.0.0.1:4222"), "nats://127.0.0.1:4222");
        assert_eq!(
            redact_url("nats://u:p@h:1,tls://t@k:2/x"),
            "nats://***@h:1,tls://***@k:2/x"
        );
        assert_eq!(redact_url("u:p@h:1"), "***@h:1");
    }
}
