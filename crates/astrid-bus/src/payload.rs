//! `pub`'s payload argument: JSON text, `-` (read stdin) or `@FILE` (read
//! FILE). A command line cannot carry a large payload; stdin and files can.
//!
//! No JSON text is `-` or starts with `@`, so the three forms never clash.
//! At most [`MAX_PAYLOAD_BYTES`] are read: more is refused before anything
//! is sent, instead of being held in memory.

use std::io::Read;
use std::path::Path;

use anyhow::{Context as _, bail};

/// The most a payload may take: 64 MiB, NATS's largest `max_payload` (a
/// server refuses anything above its own, by default 1 MiB).
pub(crate) const MAX_PAYLOAD_BYTES: u64 = 64 * 1024 * 1024;

/// Reads and parses the payload `arg` names.
///
/// # Errors
/// The source cannot be read, holds more than [`MAX_PAYLOAD_BYTES`], or is
/// not JSON.
pub(crate) fn read(arg: &str) -> anyhow::Result<serde_json::Value> {
    let (text, from) = match arg {
        "-" => (
            read_bounded(std::io::stdin().lock()).context("cannot read the payload from stdin")?,
            "stdin".to_owned(),
        ),
        _ => match arg.strip_prefix('@') {
            Some(path) => (read_file(Path::new(path))?, path.to_owned()),
            None => return serde_json::from_str(arg).context("the payload is not valid JSON"),
        },
    };
    serde_json::from_slice(&text)
        .with_context(|| format!("the payload in {from} is not valid JSON"))
}

fn read_file(path: &Path) -> anyhow::Result<Vec<u8>> {
    let file = std::fs::File::open(path)
        .with_context(|| format!("cannot read payload file {}", path.display()))?;
    read_bounded(file).with_context(|| format!("cannot read payload file {}", path.display()))
}

/// All of `source`, if it is at most [`MAX_PAYLOAD_BYTES`].
fn read_bounded(source: impl Read) -> anyhow::Result<Vec<u8>> {
    let mut buf = Vec::new();
    source.take(MAX_PAYLOAD_BYTES + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > MAX_PAYLOAD_BYTES {
        bail!("the payload is larger than {MAX_PAYLOAD_BYTES} bytes");
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_file_and_limits() {
        assert_eq!(read("{\"a\":1}").ok(), Some(serde_json::json!({"a": 1})));
        assert_eq!(read("-5").ok(), Some(serde_json::json!(-5)));
        assert!(read("{").is_err());

        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("p.json");
        std::fs::write(&path, b"[1, 2]").expect("write");
        let arg = format!("@{}", path.display());
        assert_eq!(read(&arg).ok(), Some(serde_json::json!([1, 2])));
        let missing = format!("@{}", dir.path().join("nope").display());
        let err = format!("{:#}", read(&missing).expect_err("missing file"));
        assert!(err.contains("nope"), "{err}");

        let over = std::io::repeat(b' ').take(MAX_PAYLOAD_BYTES + 1);
        let err = format!("{:#}", read_bounded(over).expect_err("too large"));
        assert!(err.contains("larger than"), "{err}");
        let at_limit = std::io::repeat(b' ').take(16);
        assert_eq!(read_bounded(at_limit).map(|b| b.len()).ok(), Some(16));
    }
}
