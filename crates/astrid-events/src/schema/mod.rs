//! The schema half of the crate (always built, no tokio): what an event is.
//!
//! The event taxonomy (`event.rs`), the IPC and LLM payload schemas
//! (`ipc.rs`, `llm.rs`, or the Astrid runtime's own with `upstream-types`:
//! `ipc_upstream.rs`), payload helpers (`payload_ext.rs`), the direct IPC JSON
//! reader and writer (`ipc_json.rs`), timestamps in 0.8.0's format
//! (`timestamp.rs`), topic matching (`topic.rs`) and input validation
//! (`validate.rs`). Nothing here moves events; the runtime half (`runtime/`)
//! does.

pub(crate) mod event;
#[cfg(not(feature = "upstream-types"))]
pub mod ipc;
// With `upstream-types`, `ipc` (and, in lib.rs, `llm` and `kernel_api`) are
// the Astrid runtime's own modules, as in 0.8.0.
#[cfg(feature = "upstream-types")]
#[path = "ipc_upstream.rs"]
pub mod ipc;
pub mod ipc_json;
#[cfg(not(feature = "upstream-types"))]
pub mod llm;
pub(crate) mod payload_ext;
pub mod timestamp;
pub(crate) mod topic;
pub mod validate;
