//! Durable topics: the JetStream stream and consumer behind them.
//!
//! Topic patterns marked durable ([`BridgeBuilder::durable`]) are carried by
//! one JetStream stream (file storage) whose subjects are the patterns'
//! subjects under the bridge's prefix. The bridge ensures the stream at start:
//! it creates it, or adds the subjects it lacks to an existing one (it never
//! removes subjects another node added).
//!
//! * **Export.** A local event that matches an export pattern and a durable
//!   pattern is published with `Nats-Msg-Id` = event id and its publish ack
//!   is awaited. A failed or timed-out ack puts the message back at the front
//!   of the outbound buffer (its bytes stay charged to the buffer until the
//!   ack), to be sent again; the stream drops the re-sent copy if the first
//!   one was stored after all (duplicate window, [`BridgeBuilder::duplicate_window`]).
//! * **Import.** When the bridge both imports and has durable patterns, it
//!   reads the whole stream through a durable pull consumer
//!   ([`BridgeBuilder::durable_consumer`]; explicit acks, delivery from the
//!   start of the stream for a new consumer) and acks each message after it
//!   was published into the local bus (or rejected). Messages whose topic
//!   matches no import pattern are acked and counted in
//!   [`BridgeStats::ignored_not_imported`](crate::BridgeStats). The core
//!   subscriptions skip durable topics, which arrive through the consumer.
//!   A message redelivered after its ack was lost (server restart, ack
//!   timeout) is recognised by the replay guard and not published twice
//!   within a bridge's lifetime (see [`replay`](crate::replay), whose window
//!   on this path is measured from the time the stream stored the message).
//! * **Poison messages.** A stored message this bridge can never import
//!   (malformed, failing the signature policy, or unreadable by the client)
//!   is terminated instead of acked, counted, and optionally republished on
//!   a dead-letter subject ([`BridgeBuilder::dead_letter`], format in
//!   [`dead_letter`]); one the client cannot even read is found by stream
//!   sequence after the pull it cut (see `bridge/poison.rs`). The consumer's
//!   `max_deliver` ([`BridgeBuilder::durable_max_deliver`]) bounds the
//!   deliveries of any message, so none stalls the consumer for good.
//! * **Replicas.** The stream is created with
//!   [`BridgeBuilder::durable_replicas`] replicas (default 1); on a
//!   JetStream cluster, 3 keep it (and the consumer, which inherits the
//!   count) available through the loss of one node.
//!
//! [`BridgeBuilder::durable`]: crate::BridgeBuilder::durable
//! [`BridgeBuilder::duplicate_window`]: crate::BridgeBuilder::duplicate_window
//! [`BridgeBuilder::durable_consumer`]: crate::BridgeBuilder::durable_consumer
//! [`BridgeBuilder::dead_letter`]: crate::BridgeBuilder::dead_letter
//! [`BridgeBuilder::durable_max_deliver`]: crate::BridgeBuilder::durable_max_deliver
//! [`BridgeBuilder::durable_replicas`]: crate::BridgeBuilder::durable_replicas

use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull};
use async_nats::jetstream::context::GetStreamErrorKind;
use async_nats::jetstream::stream::{Config as StreamConfig, StorageType};
use async_nats::jetstream::{self, Context};

/// Default JetStream duplicate window of the stream the bridge creates.
pub const DEFAULT_DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// Default time the server waits for an import ack before redelivering.
pub const DEFAULT_ACK_WAIT: Duration = Duration::from_secs(30);

/// Default time an export waits for its JetStream publish ack.
pub const DEFAULT_PUBLISH_ACK_TIMEOUT: Duration = Duration::from_secs(5);

/// Most messages one pull request asks for.
pub const PULL_BATCH: usize = 256;

/// How long one pull request waits on the server for messages; also the
/// longest a shutdown waits for the pull in progress to finish.
pub const PULL_EXPIRES: Duration = Duration::from_millis(500);

/// Most durable exports waiting for their publish ack at once.
pub const MAX_ACKS_IN_FLIGHT: usize = 256;

/// Default `max_deliver` of the consumer the bridge creates: how many times
/// the server delivers one message before it gives up on it.
pub const DEFAULT_MAX_DELIVER: i64 = 10;

/// Default number of replicas of the stream the bridge creates.
pub const DEFAULT_REPLICAS: usize = 1;

/// The dead-letter copy of a poison message: its payload unchanged, with
/// these headers (and none of the original ones, which may be unreadable).
pub mod dead_letter {
    /// Why it was terminated: `headers` (header block unreadable),
    /// `status-line` (header block with a status line), `subject` (not a
    /// bridge subject), `malformed`, `signature`.
    pub const REASON: &str = "Astrid-Dead-Letter-Reason";
    /// Name of the stream it was stored in.
    pub const STREAM: &str = "Astrid-Dead-Letter-Stream";
    /// Its stream sequence (decimal).
    pub const SEQUENCE: &str = "Astrid-Dead-Letter-Sequence";
    /// Its subject as the server reports it; `~` + lowercase hex of the
    /// UTF-8 bytes if that is not printable ASCII (bytes that were not
    /// UTF-8 arrive as U+FFFD).
    pub const SUBJECT: &str = "Astrid-Dead-Letter-Subject";
    /// Its raw header block (`NATS/1.0` line included), standard base64;
    /// absent if it had none.
    pub const HEADERS: &str = "Astrid-Dead-Letter-Headers";
}

/// Durable settings of a bridge.
#[derive(Debug, Clone)]
pub(crate) struct DurableConfig {
    /// Topic patterns carried by the stream.
    pub(crate) patterns: Vec<String>,
    /// Stream name; `None` = [`default_stream_name`].
    pub(crate) stream: Option<String>,
    /// Durable consumer name; `None` = [`default_consumer_name`].
    pub(crate) consumer: Option<String>,
    /// Consumer ack wait.
    pub(crate) ack_wait: Duration,
    /// Stream duplicate window (used when the bridge creates the stream).
    pub(crate) duplicate_window: Duration,
    /// Publish-ack timeout.
    pub(crate) publish_ack_timeout: Duration,
    /// Consumer `max_deliver` (used when the bridge creates the consumer).
    pub(crate) max_deliver: i64,
    /// Stream replicas (used when the bridge creates the stream).
    pub(crate) replicas: usize,
    /// Subject that messages terminated as poison are republished on.
    pub(crate) dead_letter: Option<String>,
}

impl Default for DurableConfig {
    fn default() -> Self {
        Self {
            patterns: Vec::new(),
            stream: None,
            consumer: None,
            ack_wait: DEFAULT_ACK_WAIT,
            duplicate_window: DEFAULT_DUPLICATE_WINDOW,
            publish_ack_timeout: DEFAULT_PUBLISH_ACK_TIMEOUT,
            max_deliver: DEFAULT_MAX_DELIVER,
            replicas: DEFAULT_REPLICAS,
            dead_letter: None,
        }
    }
}

/// Default stream name for a prefix: the prefix with `.` as `_`, then
/// `_durable` (`astrid` -> `astrid_durable`).
pub fn default_stream_name(prefix: &str) -> String {
    format!("{}_durable", prefix.replace('.', "_"))
}

/// Default durable consumer name for a node id: the id with `.` as `_`.
pub fn default_consumer_name(node_id: &str) -> String {
    node_id.replace('.', "_")
}

/// Whether `name` can name a stream or consumer: 1..=255 printable ASCII
/// characters other than `.`, `*`, `>`, `/` and `\`.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'.' | b'*' | b'>' | b'/' | b'\\'))
}

/// Whether `subject` can be the dead-letter subject of a bridge with
/// `prefix`: a literal subject (dot-separated non-empty tokens of printable
/// ASCII, no `*` or `>`) that is not `prefix` or under it, so the copies
/// never land in the durable stream.
pub fn is_valid_dead_letter_subject(prefix: &str, subject: &str) -> bool {
    let literal = !subject.is_empty()
        && subject.split('.').all(|t| {
            !t.is_empty() && t != "*" && t != ">" && t.bytes().all(|b| b.is_ascii_graphic())
        });
    let inside = subject == prefix
        || subject
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('.'));
    literal && !inside
}

/// A JetStream context whose publish acks time out after `ack_timeout`.
pub(crate) fn context(client: async_nats::Client, ack_timeout: Duration) -> Context {
    jetstream::ContextBuilder::new()
        .timeout(ack_timeout)
        .build(client)
}

/// Creates the stream `name` with `subjects`, or adds the subjects it lacks.
pub(crate) async fn ensure_stream(
    js: &Context,
    name: &str,
    subjects: &[String],
    duplicate_window: Duration,
    replicas: usize,
) -> Result<(), async_nats::Error> {
    // Another node may create the stream between our look-up and our create;
    // the next attempt then finds it.
    let mut last_err = None;
    for _ in 0..3 {
        match js.get_stream(name).await {
            Ok(stream) => {
                let mut config = stream.cached_info().config.clone();
                let missing: Vec<String> = subjects
                    .iter()
                    .filter(|s| !config.subjects.contains(s))
                    .cloned()
                    .collect();
                if missing.is_empty() {
                    return Ok(());
                }
                config.subjects.extend(missing);
                match js.update_stream(&config).await {
                    Ok(_) => return Ok(()),
                    Err(e) => last_err = Some(e.into()),
                }
            }
            Err(e) if matches!(e.kind(), GetStreamErrorKind::JetStream(je) if je.code() == 404) => {
                let config = StreamConfig {
                    name: name.to_owned(),
                    subjects: subjects.to_vec(),
                    storage: StorageType::File,
                    duplicate_window,
                    num_replicas: replicas,
                    ..Default::default()
                };
                match js.create_stream(config).await {
                    Ok(_) => return Ok(()),
                    Err(e) => last_err = Some(e.into()),
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(last_err.unwrap_or_else(|| "stream set-up failed".into()))
}

/// Looks up or creates the durable pull consumer `name` on stream `stream`.
pub(crate) async fn ensure_consumer(
    js: &Context,
    stream: &str,
    name: &str,
    ack_wait: Duration,
    max_deliver: i64,
) -> Result<PullConsumer, async_nats::Error> {
    let stream = js.get_stream(stream).await?;
    let config = pull::Config {
        durable_name: Some(name.to_owned()),
        ack_policy: AckPolicy::Explicit,
        deliver_policy: DeliverPolicy::All,
        ack_wait,
        max_deliver,
        ..Default::default()
    };
    Ok(stream.get_or_create_consumer(name, config).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_names_are_valid() {
        assert_eq!(default_stream_name("astrid"), "astrid_durable");
        assert_eq!(default_stream_name("a.b"), "a_b_durable");
        assert_eq!(default_consumer_name("node.1"), "node_1");
        assert!(is_valid_name(&default_stream_name("a.b-c")));
        assert!(is_valid_name(&default_consumer_name("n.o-d_e")));
        for bad in ["", "a.b", "a*", "a>", "a b", "a/b", "é", &"x".repeat(256)] {
            assert!(!is_valid_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn dead_letter_subjects_are_literal_and_outside_the_prefix() {
        for ok in ["dlq", "ops.dlq.astrid", "astridx.dlq", "a.astrid.b"] {
            assert!(is_valid_dead_letter_subject("astrid", ok), "{ok:?}");
        }
        for bad in [
            "",
            "astrid",
            "astrid.dlq",
            "a..b",
            ".a",
            "a.",
            "a.*",
            "a.>",
            "a b",
            "é",
        ] {
            assert!(!is_valid_dead_letter_subject("astrid", bad), "{bad:?}");
        }
    }
}
