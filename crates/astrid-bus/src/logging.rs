//! The log subscriber: `tracing` events of the bus, the bridge and this
//! binary go to stderr, one line each, without colour.
//!
//! The filter is chosen once, at start: `-v` (info), `-vv` (debug), `-vvv`
//! (trace) when given; otherwise `RUST_LOG` when set, in the `target=level`
//! list form (`warn`, `astrid_events=debug,info`); otherwise warnings. So
//! by default the security warnings of the library and the bridge (target
//! [`SECURITY_TARGET`]: dropped events, rejected signatures) are seen. A
//! `RUST_LOG` this parser does not understand (span or field filters) is an
//! error, not silently ignored.
//!
//! One exception to the default: the demo load (`demo`, `monitor --demo`)
//! overflows its flooded route on purpose, about ten times a second, and
//! accounts for every dropped event in its report; its default leaves out
//! the security target's warnings so they do not bury the progress and the
//! report. `-v` or `RUST_LOG=warn` shows them.

use std::env::VarError;

use anyhow::{anyhow, bail};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// Target of the library's (and the bridge's) security events.
const SECURITY_TARGET: &str = "astrid_events::security";

/// Installs the subscriber for the process; `demo_load` selects the demo's
/// default (see the module docs).
///
/// # Errors
/// `RUST_LOG` is not a valid filter, or a subscriber is already installed.
pub(crate) fn install(verbose: u8, demo_load: bool) -> anyhow::Result<()> {
    let filter = match verbose {
        0 => from_env()?.unwrap_or_else(|| {
            let warnings = Targets::new().with_default(LevelFilter::WARN);
            if demo_load {
                warnings.with_target(SECURITY_TARGET, LevelFilter::ERROR)
            } else {
                warnings
            }
        }),
        1 => Targets::new().with_default(LevelFilter::INFO),
        2 => Targets::new().with_default(LevelFilter::DEBUG),
        _ => Targets::new().with_default(LevelFilter::TRACE),
    };
    let lines = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(false);
    tracing_subscriber::registry()
        .with(lines)
        .with(filter)
        .try_init()
        .map_err(|e| anyhow!("cannot install the log subscriber: {e}"))
}

/// The filter `RUST_LOG` asks for; `None` if it is unset or empty.
fn from_env() -> anyhow::Result<Option<Targets>> {
    match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.trim().is_empty() => {
            spec.trim().parse::<Targets>().map(Some).map_err(|e| {
                anyhow!(
                    "RUST_LOG={spec:?} is not a log filter ({e}); \
                 use levels and `target=level` pairs, e.g. `info,astrid_events=debug`"
                )
            })
        }
        Ok(_) | Err(VarError::NotPresent) => Ok(None),
        Err(VarError::NotUnicode(_)) => bail!("RUST_LOG is not valid UTF-8"),
    }
}
