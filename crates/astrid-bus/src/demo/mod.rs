//! The demo load: one in-process bus, a realistic mix of publishers and
//! subscribers, and independent accounting of every delivery.
//!
//! Accounting is independent of the bus: each receiver has a
//! [`Tally`](accounting::Tally), and every publisher adds 1 to the
//! `expected` count of each receiver the event should reach, computed from
//! the demo's own knowledge of who subscribed to what (never from the bus's
//! answer). Consumers count what they receive and what `drain_lagged`
//! reports. At the end, for every receiver, `expected - received - lagged`
//! must be 0: that is "lost without record".
//!
//! Shutdown is the bus's own: publishers stop, the tool host (which also
//! publishes) drains its queue and stops, every bus handle is dropped, and
//! each receiver then hands out what is queued and ends. So the final counts
//! include everything still in flight at the deadline.
//!
//! | file | concept |
//! |---|---|
//! | `config.rs` | what a run is told to do |
//! | `topology.rs` | the bus and every subscription, made before publishing |
//! | `run.rs` | orchestration: start, stop, shut down, account |
//! | `ctx.rs` | state shared by the tasks of a run |
//! | `publishers.rs` | every publishing task |
//! | `consumers.rs` | every consuming task |
//! | `accounting.rs` | tallies per receiver, sums per group |
//! | `classes.rs` | event classes and receiver groups |
//! | `outcome.rs` | what a run measured |
//! | `progress.rs` | throughput samples and the progress bar |

mod accounting;
mod classes;
mod config;
mod consumers;
mod ctx;
mod outcome;
mod progress;
mod publishers;
mod run;
mod topology;

pub(crate) use config::DemoConfig;
pub(crate) use outcome::Outcome;
pub(crate) use topology::{ACTIVE_MODEL_TOPIC, Demo, RUNAWAY};
