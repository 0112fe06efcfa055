//! Loss accounting for core (non-durable) NATS traffic.
//!
//! Core NATS is at-most-once: a message written to a connection that dies, or
//! published while a subscriber is reconnecting, is gone without an error on
//! either side. To keep that loss visible, the exporter stamps every core
//! message with the header [`LINK`] = `<session>:<seq>`, where `seq` counts
//! the messages this exporter sent on that subject (from 1) and `session` is
//! random per exporter (and renewed when its table of subjects is reset). The
//! importer remembers the last `seq` per (origin node, subject) and counts the
//! sequence numbers it skipped as lost in transit.
//!
//! What this does and does not see:
//!
//! * A loss is counted when the next message of the same subject from the same
//!   origin arrives; a loss at the tail of a subject's traffic stays unseen
//!   until then.
//! * The first message the importer sees of a (origin, subject, session) only
//!   starts tracking: losses before it are not counted.
//! * The exporter stamps (and signs) the messages it sends together before
//!   sending them. One whose publish call then fails (counted in
//!   `publish_errors`) gives its number back only if no later message of the
//!   batch took one on its subject; otherwise importers also count it in
//!   `lost_in_transit`. Messages not handed to NATS because the connection
//!   dropped give theirs back and go back to the buffer unsigned.
//! * The header is signed with the rest of the message (see
//!   [`sign`](crate::sign)), and the importer observes it only once the
//!   message passed every import check: a malformed, rejected or replayed
//!   message never changes the table. Gaps between messages that verified
//!   under a trusted key are counted exactly. Unsigned messages (accepted
//!   only with `allow_unsigned`) are tracked apart from signed ones (so they
//!   cannot disturb those) and one of them adds at most
//!   [`MAX_UNVERIFIED_GAP`]: a forged sequence jump moves the counter by
//!   that much at most, and a real gap larger than that between unsigned
//!   messages is undercounted.
//! * Both tables are bounded ([`LINK_KEYS_CAPACITY`]); when one is full it is
//!   cleared, which (on the exporter) starts a new session. The importer's
//!   entries have a fixed size (a keyed hash of origin and subject, a hash of
//!   the session, the last sequence number): it keeps no header bytes.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};

use uuid::Uuid;

/// Header carrying `<session>:<seq>` on core messages.
pub const LINK: &str = "Astrid-Link";

/// Most losses one unsigned (unverified) message can add.
pub const MAX_UNVERIFIED_GAP: u64 = 4_096;

/// Most subjects (exporter) or (origin, subject) pairs (importer) tracked.
pub const LINK_KEYS_CAPACITY: usize = 65_536;

/// Exporter side: next sequence number per subject.
pub(crate) struct LinkStamper {
    /// Random per table generation; 32 lowercase hex characters.
    session: String,
    /// Last sequence number handed out per subject.
    last: HashMap<String, u64>,
}

impl LinkStamper {
    pub(crate) fn new() -> Self {
        Self {
            session: Uuid::new_v4().simple().to_string(),
            last: HashMap::new(),
        }
    }

    /// The header value for the next message on `subject`. Call
    /// [`unstamp`](Self::unstamp) if the message is then not sent.
    pub(crate) fn stamp(&mut self, subject: &str) -> String {
        let seq = match self.last.get_mut(subject) {
            Some(seq) => {
                *seq += 1;
                *seq
            }
            None => {
                if self.last.len() >= LINK_KEYS_CAPACITY {
                    *self = Self::new();
                }
                self.last.insert(subject.to_owned(), 1);
                1
            }
        };
        let mut v = String::with_capacity(self.session.len() + 21);
        v.push_str(&self.session);
        v.push(':');
        v.push_str(crate::hex::decimal(seq, &mut [0; 20]));
        v
    }

    /// Gives back the sequence number of the last [`stamp`](Self::stamp) on
    /// `subject` (the message was not sent), so no gap appears for it.
    pub(crate) fn unstamp(&mut self, subject: &str) {
        if let Some(seq) = self.last.get_mut(subject) {
            *seq = seq.saturating_sub(1);
        }
    }
}

/// Importer side: last sequence number seen per (origin, subject).
#[derive(Default)]
pub(crate) struct LinkTracker {
    /// Keyed hash of (origin, subject) -> (hash of the session, last seq).
    /// A collision of two 64-bit keyed hashes would only mix two subjects'
    /// counts.
    last: HashMap<u64, (u64, u64)>,
    /// Random key of the hashes, per tracker.
    hasher: RandomState,
}

/// Parses a [`LINK`] header value.
fn parse(value: &str) -> Option<(&str, u64)> {
    let (session, seq) = value.split_once(':')?;
    if session.is_empty() || session.len() > 64 {
        return None;
    }
    let seq = seq.parse::<u64>().ok()?;
    (seq > 0).then_some((session, seq))
}

impl LinkTracker {
    /// Records one received message that passed the import checks
    /// (`verified`: under a trusted key); returns how many messages of this
    /// (origin, subject, session) were skipped since the previous one (at
    /// most [`MAX_UNVERIFIED_GAP`] if not `verified`).
    pub(crate) fn observe(
        &mut self,
        origin: &str,
        subject: &str,
        value: &str,
        verified: bool,
    ) -> u64 {
        let Some((session, seq)) = parse(value) else {
            return 0;
        };
        let key = self.hasher.hash_one((origin, subject, verified));
        let session = self.hasher.hash_one(session);
        if let Some((s, last)) = self.last.get_mut(&key) {
            if *s == session {
                let lost = seq.saturating_sub(*last + 1);
                if seq > *last {
                    *last = seq;
                }
                return if verified {
                    lost
                } else {
                    lost.min(MAX_UNVERIFIED_GAP)
                };
            }
            *s = session;
            *last = seq;
            return 0;
        }
        if self.last.len() >= LINK_KEYS_CAPACITY {
            self.last.clear();
        }
        self.last.insert(key, (session, seq));
        0
    }

    /// (origin, subject) pairs tracked now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.last.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_are_counted_per_origin_and_subject() {
        let mut st = LinkStamper::new();
        let mut tr = LinkTracker::default();
        let a1 = st.stamp("s.a");
        let b1 = st.stamp("s.b");
        let a2 = st.stamp("s.a");
        let a3 = st.stamp("s.a");
        let a4 = st.stamp("s.a");
        assert_eq!(tr.observe("n", "s.a", &a1, true), 0);
        assert_eq!(tr.observe("n", "s.b", &b1, true), 0);
        // a2 and a3 lost.
        assert_eq!(tr.observe("n", "s.a", &a4, true), 2);
        // Late or duplicate: not a gap, does not move back.
        assert_eq!(tr.observe("n", "s.a", &a2, true), 0);
        assert_eq!(tr.observe("n", "s.a", &a3, true), 0);
        // Another origin is tracked on its own.
        assert_eq!(tr.observe("m", "s.a", &a4, true), 0);
        // Unstamped message leaves no gap.
        let _ = st.stamp("s.a");
        st.unstamp("s.a");
        let a5 = st.stamp("s.a");
        assert_eq!(tr.observe("n", "s.a", &a5, true), 0);
        // A new session restarts tracking.
        let mut st2 = LinkStamper::new();
        let _ = st2.stamp("s.a");
        let x2 = st2.stamp("s.a");
        assert_eq!(tr.observe("n", "s.a", &x2, true), 0);
    }

    #[test]
    fn malformed_headers_are_ignored() {
        let mut tr = LinkTracker::default();
        for v in ["", ":", "x:", ":1", "x:0", "x:-1", "x:1:2", &"y".repeat(65)] {
            let v = if *v == *"y".repeat(65) {
                format!("{v}:1")
            } else {
                v.to_owned()
            };
            assert_eq!(tr.observe("n", "s", &v, true), 0, "{v}");
        }
    }
}
