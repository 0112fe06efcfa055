//! Shared helpers for the integration tests.
#![allow(dead_code)]

pub mod events;
#[cfg(feature = "runtime")]
pub mod routed_model;

use std::path::PathBuf;

/// The golden vectors of astrid-events 0.8.0, kept in this crate at
/// `tests/golden/` (data recorded from the published crate; see its README).
pub fn compat_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    assert!(
        dir.join("README.md").is_file(),
        "golden vectors not found at {}",
        dir.display()
    );
    dir
}

/// Loads one JSON Lines file of the golden vectors.
pub fn load_jsonl(name: &str) -> Vec<serde_json::Value> {
    let path = compat_dir().join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line in {name}: {e}")))
        .collect()
}
