//! The IPC schemas of the Astrid runtime itself (`upstream-types` feature).
//!
//! With `upstream-types`, `astrid_events::ipc` is what it was in 0.8.0: a
//! re-export of `astrid_types::ipc` 0.8.0, so `IpcMessage` and `IpcPayload`
//! here *are* the runtime's types and values built by runtime crates go onto
//! this bus unchanged. This crate's own schema module (`ipc.rs`, used without
//! the feature) is wire-identical to it; the golden vectors pin both.
//!
//! Given up with foreign types: `IpcMessage`'s `Debug` is the runtime's
//! derived one, which prints payload content and signature bytes (this
//! crate's own type prints the payload tag and signature length only).
pub use astrid_types::ipc::*;

#[cfg(feature = "runtime")]
pub use crate::rate_limiter::IpcRateLimiter;
pub use crate::schema::payload_ext::IpcPayloadExt;
