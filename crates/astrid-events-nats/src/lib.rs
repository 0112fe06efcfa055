//! NATS bridge for the `astrid-events` bus.
//!
//! Exports local IPC events that match export patterns to NATS subjects and
//! imports NATS messages that match import patterns into the local bus, with
//! ed25519 signatures checked against a set of trusted node keys.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod sign;
pub mod subject;
pub mod wire;

mod hex;
