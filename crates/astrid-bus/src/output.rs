//! Writing to stdout and stderr without panicking.
//!
//! A reader of stdout may go away at any time (`astrid-bus sub ... | head
//! -1`). The write then fails with a broken pipe (Rust ignores SIGPIPE), and
//! that is no error of the command: it becomes [`StdoutClosed`], which each
//! command treats as a quiet end and `main` as exit 0. Every other write
//! error stays an error. Stderr is written with a result that is ignored
//! (`eprintln!` would panic on a closed stderr).

use std::fmt;
use std::io::{self, Write as _};

/// The reader of stdout went away.
#[derive(Debug)]
pub(crate) struct StdoutClosed;

impl fmt::Display for StdoutClosed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("stdout was closed by its reader")
    }
}

impl std::error::Error for StdoutClosed {}

/// Whether `error` is (or was caused by) [`StdoutClosed`].
pub(crate) fn is_stdout_closed(error: &anyhow::Error) -> bool {
    error.chain().any(|e| e.is::<StdoutClosed>())
}

/// `result` of a stdout write: a broken pipe becomes [`StdoutClosed`],
/// anything else "cannot write to stdout".
pub(crate) fn stdout_result(result: io::Result<()>) -> anyhow::Result<()> {
    match result {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Err(StdoutClosed.into()),
        Err(e) => Err(anyhow::Error::new(e).context("cannot write to stdout")),
    }
}

/// Writes `text` and a newline to stdout and flushes.
///
/// # Errors
/// [`StdoutClosed`] if the reader went away, else the write error.
pub(crate) fn stdout_line(text: &str) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    stdout_result(writeln!(out, "{text}").and_then(|()| out.flush()))
}

/// [`stdout_line`], where a closed stdout is not an error: for output that
/// is the last thing a command writes.
///
/// # Errors
/// Any write error but a closed stdout.
pub(crate) fn stdout_line_or_closed(text: &str) -> anyhow::Result<()> {
    match stdout_line(text) {
        Err(e) if is_stdout_closed(&e) => Ok(()),
        other => other,
    }
}

/// Writes one line to stderr; a failure is ignored (there is nowhere left
/// to report it).
pub(crate) fn stderr_line(line: fmt::Arguments<'_>) {
    let _ = writeln!(io::stderr(), "{line}");
}
