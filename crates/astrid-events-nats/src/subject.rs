//! Mapping between bus topics / topic patterns and NATS subjects.
//!
//! # Encoding
//!
//! A bus topic `a.b.c` is carried on the NATS subject `<prefix>.a.b.c`. Each
//! topic segment becomes exactly one NATS token:
//!
//! * a segment that is non-empty and made only of the conservative safe set
//!   `[A-Za-z0-9_-]` is carried literally;
//! * every other segment (empty, containing `*`, `>`, whitespace, non-ASCII,
//!   punctuation, ...) is carried as `~` followed by the lowercase hex of its
//!   UTF-8 bytes (the empty segment becomes the token `~`).
//!
//! `~` is outside the safe set, so a literal token never starts with it and a
//! segment that itself starts with `~` is always encoded: decoding is
//! unambiguous. Decoding additionally rejects non-canonical tokens (uppercase
//! hex, or an encoded segment that would have been carried literally), so the
//! mapping is a bijection between topics and the subjects it produces.
//!
//! # Patterns
//!
//! A bus pattern segment `*` becomes the NATS single-token wildcard `*`, and a
//! trailing `.*` (one or more remaining segments) becomes `>`. Every other
//! pattern segment is encoded like a topic segment. A bus pattern that is
//! exactly `*` matches one-segment topics and maps to `<prefix>.*`.

use std::borrow::Cow;
use std::fmt;

/// Marker that starts an encoded token.
const MARKER: char = '~';

/// Errors from mapping topics, patterns and prefixes to subjects and back.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SubjectError {
    /// The subject prefix is empty or has a token outside `[A-Za-z0-9_-]`.
    InvalidPrefix,
    /// The subject does not start with `<prefix>.`.
    NotUnderPrefix,
    /// The subject has an empty token (e.g. `a..b` or a trailing dot).
    EmptyToken,
    /// A token contains a character NATS does not allow in a literal token,
    /// or one outside the safe set that is not marker-encoded.
    InvalidToken,
    /// A marker-encoded token is not valid lowercase hex.
    BadEncoding,
    /// A marker-encoded token does not decode to UTF-8.
    NotUtf8,
    /// A marker-encoded token encodes a segment that would be carried
    /// literally (decoding is kept bijective).
    NonCanonical,
}

impl fmt::Display for SubjectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Self::InvalidPrefix => "invalid subject prefix",
            Self::NotUnderPrefix => "subject is not under the configured prefix",
            Self::EmptyToken => "subject has an empty token",
            Self::InvalidToken => "subject token has characters outside the safe set",
            Self::BadEncoding => "encoded subject token is not lowercase hex",
            Self::NotUtf8 => "encoded subject token is not UTF-8",
            Self::NonCanonical => "encoded subject token is not in canonical form",
        };
        f.write_str(s)
    }
}

impl std::error::Error for SubjectError {}

fn is_safe_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// Whether a segment is carried literally (non-empty, all in the safe set).
fn is_literal_segment(segment: &str) -> bool {
    !segment.is_empty() && segment.bytes().all(is_safe_byte)
}

/// Checks that `prefix` is one or more dot-separated safe tokens.
pub fn validate_prefix(prefix: &str) -> Result<(), SubjectError> {
    if prefix.split('.').all(is_literal_segment) {
        Ok(())
    } else {
        Err(SubjectError::InvalidPrefix)
    }
}

/// Appends the NATS token for one topic segment.
fn push_segment(out: &mut String, segment: &str) {
    if is_literal_segment(segment) {
        out.push_str(segment);
    } else {
        out.push(MARKER);
        crate::hex::push_hex(out, segment.as_bytes());
    }
}

/// Decodes one NATS token back into a topic segment.
fn decode_token(token: &str) -> Result<Cow<'_, str>, SubjectError> {
    if token.is_empty() {
        return Err(SubjectError::EmptyToken);
    }
    let Some(hex) = token.strip_prefix(MARKER) else {
        return if is_literal_segment(token) {
            Ok(Cow::Borrowed(token))
        } else {
            Err(SubjectError::InvalidToken)
        };
    };
    let bytes = crate::hex::from_hex(hex).ok_or(SubjectError::BadEncoding)?;
    let segment = String::from_utf8(bytes).map_err(|_| SubjectError::NotUtf8)?;
    if is_literal_segment(&segment) {
        return Err(SubjectError::NonCanonical);
    }
    Ok(Cow::Owned(segment))
}

/// Maps a concrete bus topic to the NATS subject `<prefix>.<encoded segments>`.
///
/// Every topic (any Unicode, empty segments included) maps to a valid NATS
/// subject with no wildcard tokens.
pub fn topic_to_subject(prefix: &str, topic: &str) -> Result<String, SubjectError> {
    validate_prefix(prefix)?;
    let mut out = String::with_capacity(prefix.len() + 1 + topic.len() * 2);
    out.push_str(prefix);
    for segment in topic.split('.') {
        out.push('.');
        push_segment(&mut out, segment);
    }
    Ok(out)
}

/// Maps a NATS subject produced by [`topic_to_subject`] back to the topic.
///
/// For tools that read the bus's NATS traffic without a
/// [`Bridge`](crate::Bridge), and for the importer itself.
///
/// ```
/// use astrid_events_nats::subject::{subject_to_topic, topic_to_subject};
///
/// let subject = topic_to_subject("astrid", "tool.v1.read")?;
/// assert_eq!(subject, "astrid.tool.v1.read");
/// assert_eq!(subject_to_topic("astrid", &subject)?, "tool.v1.read");
/// // Segments NATS cannot carry as tokens travel hex-encoded, reversibly.
/// let odd = topic_to_subject("astrid", "a.b c")?;
/// assert_eq!(subject_to_topic("astrid", &odd)?, "a.b c");
/// # Ok::<(), astrid_events_nats::subject::SubjectError>(())
/// ```
pub fn subject_to_topic(prefix: &str, subject: &str) -> Result<String, SubjectError> {
    subject_to_topic_cow(prefix, subject).map(Cow::into_owned)
}

/// [`subject_to_topic`], borrowing from `subject` when every token is carried
/// literally (the common case: then the topic is the rest of the subject as
/// is, and nothing is allocated).
pub(crate) fn subject_to_topic_cow<'a>(
    prefix: &str,
    subject: &'a str,
) -> Result<Cow<'a, str>, SubjectError> {
    validate_prefix(prefix)?;
    let rest = subject
        .strip_prefix(prefix)
        .and_then(|r| r.strip_prefix('.'))
        .ok_or(SubjectError::NotUnderPrefix)?;
    // Literal tokens hold no `.` or `~`, so they decode to themselves.
    if rest.split('.').all(is_literal_segment) {
        return Ok(Cow::Borrowed(rest));
    }
    let mut topic = String::with_capacity(rest.len());
    for (i, token) in rest.split('.').enumerate() {
        if i > 0 {
            topic.push('.');
        }
        topic.push_str(&decode_token(token)?);
    }
    Ok(Cow::Owned(topic))
}

/// Maps a bus topic pattern to a NATS subscription subject.
///
/// `*` segments become the NATS `*` wildcard; a trailing `.*` becomes `>`;
/// other segments are encoded as in [`topic_to_subject`]. The NATS
/// subscription then receives exactly the subjects of the topics that
/// `astrid_events::topic_pattern_matches(pattern, topic)` accepts (up to the
/// bus's own topic depth limit, which the importer re-checks).
pub fn pattern_to_subject(prefix: &str, pattern: &str) -> Result<String, SubjectError> {
    validate_prefix(prefix)?;
    let (body, tail) = match pattern.strip_suffix(".*") {
        Some(body) => (body, true),
        None => (pattern, false),
    };
    let mut out = String::with_capacity(prefix.len() + 3 + pattern.len() * 2);
    out.push_str(prefix);
    for segment in body.split('.') {
        out.push('.');
        if segment == "*" {
            out.push('*');
        } else {
            push_segment(&mut out, segment);
        }
    }
    if tail {
        out.push_str(".>");
    }
    Ok(out)
}

/// Token that starts the subjects of exported lifecycle (non-IPC) events.
///
/// It is not a canonical encoded token, so no topic ever maps under it and
/// [`subject_to_topic`] rejects it.
pub const LIFECYCLE_TOKEN: &str = "~lifecycle";

/// Subject of an exported lifecycle event: `<prefix>.~lifecycle.<event type>`
/// with the event type's segments encoded as topic segments.
pub fn lifecycle_subject(prefix: &str, event_type: &str) -> Result<String, SubjectError> {
    validate_prefix(prefix)?;
    let mut out = format!("{prefix}.{LIFECYCLE_TOKEN}");
    for segment in event_type.split('.') {
        out.push('.');
        push_segment(&mut out, segment);
    }
    Ok(out)
}

/// Whether `subject` is a lifecycle subject under `prefix`.
pub fn is_lifecycle_subject(prefix: &str, subject: &str) -> bool {
    subject
        .strip_prefix(prefix)
        .and_then(|r| r.strip_prefix('.'))
        .and_then(|r| r.strip_prefix(LIFECYCLE_TOKEN))
        .is_some_and(|r| r.starts_with('.'))
}

/// Whether `subject` is a valid NATS subject; with `allow_wildcards`, `*`
/// tokens and a final `>` token are allowed.
///
/// Tokens must be non-empty and free of whitespace; without wildcards no
/// token may contain `*` or `>`, with wildcards they may only appear as
/// whole tokens.
pub fn is_valid_subject(subject: &str, allow_wildcards: bool) -> bool {
    if subject.is_empty() {
        return false;
    }
    let tokens: Vec<&str> = subject.split('.').collect();
    let last = tokens.len() - 1;
    tokens.iter().enumerate().all(|(i, t)| {
        if t.is_empty() || t.chars().any(char::is_whitespace) {
            return false;
        }
        if allow_wildcards && (*t == "*" || (*t == ">" && i == last)) {
            return true;
        }
        !t.contains(['*', '>'])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_topics_are_literal() {
        assert_eq!(
            topic_to_subject("astrid", "agent.tool-call.v1_x").unwrap(),
            "astrid.agent.tool-call.v1_x"
        );
    }

    #[test]
    fn unsafe_segments_are_encoded() {
        assert_eq!(
            topic_to_subject("astrid", "a..*.> .é.~x").unwrap(),
            "astrid.a.~.~2a.~3e20.~c3a9.~7e78"
        );
    }

    #[test]
    fn decode_rejects_malformed_subjects() {
        let p = "astrid";
        assert_eq!(
            subject_to_topic(p, "other.a"),
            Err(SubjectError::NotUnderPrefix)
        );
        assert_eq!(
            subject_to_topic(p, "astridx.a"),
            Err(SubjectError::NotUnderPrefix)
        );
        assert_eq!(
            subject_to_topic(p, "astrid"),
            Err(SubjectError::NotUnderPrefix)
        );
        assert_eq!(
            subject_to_topic(p, "astrid.a..b"),
            Err(SubjectError::EmptyToken)
        );
        assert_eq!(
            subject_to_topic(p, "astrid.a.*"),
            Err(SubjectError::InvalidToken)
        );
        assert_eq!(
            subject_to_topic(p, "astrid.~2A"),
            Err(SubjectError::BadEncoding)
        );
        assert_eq!(
            subject_to_topic(p, "astrid.~2"),
            Err(SubjectError::BadEncoding)
        );
        assert_eq!(
            subject_to_topic(p, "astrid.~ff"),
            Err(SubjectError::NotUtf8)
        );
        assert_eq!(
            subject_to_topic(p, "astrid.~61"),
            Err(SubjectError::NonCanonical)
        );
        assert_eq!(
            subject_to_topic(p, "astrid.~lifecycle"),
            Err(SubjectError::BadEncoding)
        );
    }

    #[test]
    fn prefix_is_validated() {
        assert_eq!(topic_to_subject("", "a"), Err(SubjectError::InvalidPrefix));
        assert_eq!(
            topic_to_subject("a..b", "a"),
            Err(SubjectError::InvalidPrefix)
        );
        assert_eq!(
            topic_to_subject("a b", "a"),
            Err(SubjectError::InvalidPrefix)
        );
        assert_eq!(
            topic_to_subject("a.*", "a"),
            Err(SubjectError::InvalidPrefix)
        );
        assert_eq!(topic_to_subject("org.astrid", "a").unwrap(), "org.astrid.a");
    }

    #[test]
    fn patterns_map_to_wildcards() {
        let p = "astrid";
        assert_eq!(pattern_to_subject(p, "a.*.c").unwrap(), "astrid.a.*.c");
        assert_eq!(pattern_to_subject(p, "a.*").unwrap(), "astrid.a.>");
        assert_eq!(pattern_to_subject(p, "*").unwrap(), "astrid.*");
        assert_eq!(pattern_to_subject(p, "*.*").unwrap(), "astrid.*.>");
        assert_eq!(pattern_to_subject(p, "a.b").unwrap(), "astrid.a.b");
        assert_eq!(pattern_to_subject(p, "a.x*").unwrap(), "astrid.a.~782a");
    }

    #[test]
    fn lifecycle_subjects_are_apart_from_topics() {
        let s = lifecycle_subject("astrid", "astrid.v1.lifecycle.runtime_started").unwrap();
        assert_eq!(s, "astrid.~lifecycle.astrid.v1.lifecycle.runtime_started");
        assert!(is_valid_subject(&s, false));
        assert!(is_lifecycle_subject("astrid", &s));
        assert!(subject_to_topic("astrid", &s).is_err());
        let t = topic_to_subject("astrid", "~lifecycle.x").unwrap();
        assert!(!is_lifecycle_subject("astrid", &t));
    }

    #[test]
    fn subject_validity() {
        assert!(is_valid_subject("a.b", false));
        assert!(!is_valid_subject("a..b", false));
        assert!(!is_valid_subject("a.*", false));
        assert!(is_valid_subject("a.*", true));
        assert!(is_valid_subject("a.>", true));
        assert!(!is_valid_subject("a.>.b", true));
        assert!(!is_valid_subject("a.b*", true));
        assert!(!is_valid_subject("a.b c", false));
        assert!(!is_valid_subject("", false));
    }
}
