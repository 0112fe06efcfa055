//! The command line of the NATS verbs (`pub`, `sub`, `keygen`,
//! `monitor --nats`), in every build.
//!
//! The options parse the same with or without the `nats` cargo feature, so
//! `--help` and a command line mean the same in both; only running a verb
//! needs the feature (`nats_cmd`). Without it, running one is an error that
//! says how to build it.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

/// Environment variable read when `--nats` is not given.
pub(crate) const NATS_URL_ENV: &str = "NATS_URL";

/// How to reach the NATS server; shared by `pub` and `sub`.
#[derive(Debug, Args)]
pub(crate) struct ConnectArgs {
    /// NATS server URL, e.g. nats://127.0.0.1:4222 (several: comma
    /// separated).
    #[arg(long, value_name = "URL", env = NATS_URL_ENV, hide_env_values = true)]
    pub(crate) nats: String,
    #[command(flatten)]
    pub(crate) auth: AuthArgs,
}

/// `monitor`'s server: optional, since `--demo` needs none. `NATS_URL` is
/// read by `monitor` itself, only when neither `--demo` nor `--nats` is
/// given (clap would count it as a `--nats` that conflicts with `--demo`).
#[derive(Debug, Args)]
pub(crate) struct MonitorConnectArgs {
    /// Monitor the IPC traffic of this NATS server (see --pattern). Without
    /// --demo or --nats, the server in NATS_URL if set.
    #[arg(long, value_name = "URL")]
    pub(crate) nats: Option<String>,
    #[command(flatten)]
    pub(crate) auth: AuthArgs,
}

/// Credentials and TLS of the connection.
#[derive(Debug, Args)]
pub(crate) struct AuthArgs {
    /// Authenticate with this NATS credentials file (.creds: user JWT and
    /// nkey seed).
    #[arg(long, value_name = "FILE")]
    pub(crate) creds: Option<PathBuf>,
    /// Require TLS and trust this root CA certificate (PEM file).
    #[arg(long, value_name = "FILE")]
    pub(crate) tlsca: Option<PathBuf>,
}

/// Options of `astrid-bus pub`.
#[derive(Debug, Args)]
pub(crate) struct PubArgs {
    #[command(flatten)]
    pub(crate) connect: ConnectArgs,
    /// Principal the event is published for.
    #[arg(long)]
    pub(crate) principal: Option<String>,
    /// Subject prefix shared by the nodes.
    #[cfg_attr(feature = "nats", arg(long, default_value = astrid_events_nats::bridge::DEFAULT_PREFIX))]
    #[cfg_attr(not(feature = "nats"), arg(long))]
    pub(crate) prefix: Option<String>,
    /// Node id sent with the event (default: a random UUID).
    #[arg(long, value_name = "ID")]
    pub(crate) node_id: Option<String>,
    /// Sign with this secret key file (from `astrid-bus keygen`). Without
    /// it the event is unsigned and only subscribers run with
    /// --allow-unsigned accept it.
    #[arg(long, value_name = "FILE")]
    pub(crate) sign_key: Option<PathBuf>,
    /// Topic to publish on, e.g. tool.v1.run (no wildcards).
    pub(crate) topic: String,
    /// Payload: JSON text, `-` to read it from stdin, or `@FILE` to read it
    /// from FILE. An object whose "type" is a known payload tag becomes
    /// that typed payload; anything else is sent as a custom payload.
    #[arg(value_name = "JSON|-|@FILE", allow_hyphen_values = true)]
    pub(crate) json: String,
}

/// How imported events are checked; shared by `sub` and `monitor --nats`.
#[derive(Debug, Args)]
pub(crate) struct ImportArgs {
    /// Subject prefix shared by the nodes.
    #[cfg_attr(feature = "nats", arg(long, default_value = astrid_events_nats::bridge::DEFAULT_PREFIX))]
    #[cfg_attr(not(feature = "nats"), arg(long))]
    pub(crate) prefix: Option<String>,
    /// Accept unsigned events (signed ones are still verified). Required
    /// when no --trust key is given.
    #[arg(long)]
    pub(crate) allow_unsigned: bool,
    /// Accept events signed by this public key file (FILE.pub from
    /// `astrid-bus keygen`); repeat the option for several keys.
    #[arg(long, value_name = "KEYFILE")]
    pub(crate) trust: Vec<PathBuf>,
}

/// Options of `astrid-bus sub`.
#[derive(Debug, Args)]
pub(crate) struct SubArgs {
    #[command(flatten)]
    pub(crate) connect: ConnectArgs,
    /// Exit 0 after this many events (and fail on timeout before that).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) count: Option<u64>,
    /// Stop after this many milliseconds (default: run until --count,
    /// Ctrl-C or SIGTERM).
    #[arg(long, value_name = "T", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) timeout_ms: Option<u64>,
    #[command(flatten)]
    pub(crate) import: ImportArgs,
    /// Topic pattern to receive, e.g. tool.v1.* (a trailing * matches one or
    /// more segments).
    pub(crate) pattern: String,
}

/// Options of `astrid-bus keygen`.
#[derive(Debug, Args)]
pub(crate) struct KeygenArgs {
    /// Secret key file to create; the public key goes to FILE.pub. Neither
    /// is overwritten.
    #[arg(value_name = "FILE")]
    pub(crate) file: PathBuf,
}

/// `astrid-bus pub`.
pub(crate) async fn publish(args: PubArgs) -> anyhow::Result<ExitCode> {
    #[cfg(feature = "nats")]
    return crate::nats_cmd::publish(args).await;
    #[cfg(not(feature = "nats"))]
    {
        let _ = args;
        not_built("pub")
    }
}

/// `astrid-bus sub`.
pub(crate) async fn subscribe(args: SubArgs) -> anyhow::Result<ExitCode> {
    #[cfg(feature = "nats")]
    return crate::nats_cmd::subscribe(args).await;
    #[cfg(not(feature = "nats"))]
    {
        let _ = args;
        not_built("sub")
    }
}

/// `astrid-bus keygen`.
pub(crate) fn keygen(args: &KeygenArgs) -> anyhow::Result<ExitCode> {
    #[cfg(feature = "nats")]
    return crate::nats_cmd::keygen(args);
    #[cfg(not(feature = "nats"))]
    {
        let _ = args;
        not_built("keygen")
    }
}

/// The error of a NATS verb in a build without the `nats` feature.
#[cfg(not(feature = "nats"))]
pub(crate) fn not_built<T>(verb: &str) -> anyhow::Result<T> {
    anyhow::bail!(
        "`{verb}` needs the NATS verbs, which this build leaves out: \
         build with the `nats` feature, e.g. `cargo run --release -p astrid-bus --features nats -- {verb} ...`"
    )
}
