//! Shared helpers for the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

/// The golden vectors of astrid-events 0.8.0, checked out beside the repo at
/// `../shared/compat/astrid-events-0.8.0/` (relative to the repository root).
pub fn compat_dir() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    // crates/astrid-events -> repo root -> its parent.
    let dir = manifest.join("../../../shared/compat/astrid-events-0.8.0");
    assert!(
        dir.join("README.md").is_file(),
        "golden vectors not found at {}: the repository must be checked out beside `shared/`",
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
