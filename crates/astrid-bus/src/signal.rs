//! Stop requests: every long-running command ends the same way on SIGINT
//! (Ctrl-C) and on SIGTERM (what `kill`, systemd and container runtimes
//! send): it stops its work, prints what it prints at a normal end (the
//! demo's report, the monitor's last table) and exits with its usual code.
//!
//! The handlers are in place when [`StopSignals::install`] returns, so a
//! command installs them before it announces that it runs (its progress or
//! `subscribed` line): from that line on, a signal never takes the
//! operating system's default (fatal) action.

use std::io;

/// Installed SIGINT and SIGTERM handlers; [`recv`](Self::recv) waits for the
/// next of either.
#[cfg(unix)]
pub(crate) struct StopSignals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

#[cfg(unix)]
impl StopSignals {
    /// Installs both handlers. Needs a tokio runtime.
    ///
    /// # Errors
    /// The error of the handler that could not be installed.
    pub(crate) fn install() -> io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    /// Completes at the next SIGINT or SIGTERM.
    ///
    /// # Cancel safety
    /// Cancel safe: a signal that arrives while nobody waits is kept for the
    /// next call.
    pub(crate) async fn recv(&mut self) {
        tokio::select! {
            Some(()) = self.interrupt.recv() => {}
            Some(()) = self.terminate.recv() => {}
            // Both streams ended (the runtime is shutting down): no signal
            // can arrive any more.
            else => std::future::pending().await,
        }
    }
}

/// Where there is no SIGTERM, Ctrl-C alone.
#[cfg(not(unix))]
pub(crate) struct StopSignals;

#[cfg(not(unix))]
impl StopSignals {
    /// Nothing to install ahead: Ctrl-C is listened to in `recv`.
    pub(crate) fn install() -> io::Result<Self> {
        Ok(Self)
    }

    /// Completes at the next Ctrl-C.
    pub(crate) async fn recv(&mut self) {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
