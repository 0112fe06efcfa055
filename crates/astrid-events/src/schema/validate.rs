//! Typed validation of topics, subscription patterns and principal names.
//!
//! # What this module owns
//! The limits and syntax rules that the bus's checked entry points
//! (`try_publish`, the subscription builder's `try_subscribe`) enforce
//! before a string reaches the topic index: [`validate_topic`] for
//! concrete topics a message is published on, [`validate_pattern`] for
//! subscription patterns, and [`validate_principal`] for principal names. It is pure (no I/O, no tokio,
//! no allocation on success) and available without the `runtime` feature.
//!
//! # Data flow
//! A caller passes a `&str`; the validator checks, in this order, emptiness,
//! byte length, control characters, segment count, then each segment, and
//! returns the first violation as a typed error carrying the offending detail
//! (byte or segment index, counts and limits). Checking the byte length first
//! bounds every later scan to [`MAX_TOPIC_BYTES`] bytes.
//!
//! # Rules (the invariant, stated once and enforced by `check`)
//! A string accepted by [`validate_topic`] or [`validate_pattern`]:
//! - is non-empty and at most [`MAX_TOPIC_BYTES`] bytes long;
//! - contains no control character (`char::is_control`: C0, DEL, C1);
//! - splits on `.` into at most [`MAX_TOPIC_SEGMENTS`] segments, none empty
//!   (so no leading, trailing or doubled dot);
//! - for a **topic**: contains no `*` at all. A topic is a concrete address;
//!   a `*` segment published as a literal would be matched by patterns that
//!   were never meant to see it, so it is refused rather than escaped;
//! - for a **pattern**: contains `*` only as a whole segment (`a.*.c` is
//!   fine, `a*` and `**` are not).
//!
//! A principal name accepted by [`validate_principal`] is non-empty, at most
//! [`MAX_PRINCIPAL_BYTES`] bytes long and free of control characters.
//!
//! Errors never echo more than a short, char-boundary-safe prefix of the
//! input, so a hostile megabyte-long string cannot end up in a log line.

use std::fmt;

/// Maximum length of a topic or pattern, in bytes (UTF-8).
pub const MAX_TOPIC_BYTES: usize = 256;

/// Maximum number of `.`-separated segments in a topic or pattern.
pub const MAX_TOPIC_SEGMENTS: usize = 20;

/// Maximum length of a principal name, in bytes (UTF-8).
///
/// 128 bytes holds any realistic identifier (a UUID is 36, an e-mail address
/// is capped at 254 by RFC 5321 but principals are short local names) while
/// keeping per-principal map keys and log lines small.
pub const MAX_PRINCIPAL_BYTES: usize = 128;

/// Longest prefix of user input, in chars, that an error message repeats.
const MAX_ECHO_CHARS: usize = 32;

/// Why a topic or pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TopicError {
    /// The topic or pattern is the empty string.
    Empty,
    /// The topic or pattern is longer than [`MAX_TOPIC_BYTES`].
    TooLong {
        /// Its length, in bytes.
        len: usize,
        /// The limit, in bytes.
        max: usize,
    },
    /// It contains a control character.
    ControlChar {
        /// Byte offset of the character.
        index: usize,
        /// The character itself.
        ch: char,
    },
    /// It has more than [`MAX_TOPIC_SEGMENTS`] segments.
    TooManySegments {
        /// Number of `.`-separated segments found.
        segments: usize,
        /// The limit.
        max: usize,
    },
    /// A segment is empty (leading, trailing or doubled `.`).
    EmptySegment {
        /// Zero-based index of the empty segment.
        index: usize,
    },
    /// A published topic contains `*`; wildcards belong in patterns only.
    WildcardInTopic {
        /// Zero-based index of the segment holding the `*`.
        index: usize,
    },
    /// A pattern segment mixes `*` with other characters (`a*`, `**`).
    PartialWildcard {
        /// Zero-based index of the offending segment.
        index: usize,
        /// The segment, truncated to a short prefix.
        segment: String,
    },
}

impl fmt::Display for TopicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str(
                "topic is empty; use dot-separated segments such as `agent.tool.called`",
            ),
            Self::TooLong { len, max } => write!(
                f,
                "topic is {len} bytes long; at most {max} bytes are allowed"
            ),
            Self::ControlChar { index, ch } => write!(
                f,
                "topic contains control character U+{:04X} at byte {index}; remove it",
                u32::from(*ch)
            ),
            Self::TooManySegments { segments, max } => write!(
                f,
                "topic has {segments} segments; at most {max} dot-separated segments are allowed"
            ),
            Self::EmptySegment { index } => write!(
                f,
                "topic segment {index} is empty; remove the leading, trailing or doubled `.`"
            ),
            Self::WildcardInTopic { index } => write!(
                f,
                "topic segment {index} contains `*`; a published topic must be concrete \
                 (wildcards are only for subscription patterns)"
            ),
            Self::PartialWildcard { index, segment } => write!(
                f,
                "pattern segment {index} ({segment:?}) mixes `*` with other characters; \
                 `*` must be a whole segment, as in `a.*.c`"
            ),
        }
    }
}

impl std::error::Error for TopicError {}

/// Why a principal name was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PrincipalError {
    /// The principal name is the empty string.
    Empty,
    /// The principal name is longer than [`MAX_PRINCIPAL_BYTES`].
    TooLong {
        /// Its length, in bytes.
        len: usize,
        /// The limit, in bytes.
        max: usize,
    },
    /// It contains a control character.
    ControlChar {
        /// Byte offset of the character.
        index: usize,
        /// The character itself.
        ch: char,
    },
}

impl fmt::Display for PrincipalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("principal name is empty"),
            Self::TooLong { len, max } => write!(
                f,
                "principal name is {len} bytes long; at most {max} bytes are allowed"
            ),
            Self::ControlChar { index, ch } => write!(
                f,
                "principal name contains control character U+{:04X} at byte {index}; remove it",
                u32::from(*ch)
            ),
        }
    }
}

impl std::error::Error for PrincipalError {}

/// Validates a concrete topic that a message is published on.
///
/// # Errors
/// The first rule of the [module docs](self) that `topic` breaks; a `*`
/// anywhere yields [`TopicError::WildcardInTopic`].
///
/// # Example
/// ```
/// use astrid_events::validate::{validate_topic, TopicError};
///
/// assert_eq!(validate_topic("capsule.fs.write"), Ok(()));
/// assert_eq!(validate_topic("capsule..write"), Err(TopicError::EmptySegment { index: 1 }));
/// assert_eq!(validate_topic("capsule.*"), Err(TopicError::WildcardInTopic { index: 1 }));
/// ```
pub fn validate_topic(topic: &str) -> Result<(), TopicError> {
    check(topic, Kind::Topic)
}

/// Validates a subscription pattern: a topic whose segments may be `*`.
///
/// # Errors
/// The first rule of the [module docs](self) that `pattern` breaks; a `*`
/// that is not a whole segment yields [`TopicError::PartialWildcard`].
///
/// # Example
/// ```
/// use astrid_events::validate::{validate_pattern, TopicError};
///
/// assert_eq!(validate_pattern("capsule.*.write"), Ok(()));
/// assert!(matches!(
///     validate_pattern("capsule.fs*"),
///     Err(TopicError::PartialWildcard { index: 1, .. })
/// ));
/// ```
pub fn validate_pattern(pattern: &str) -> Result<(), TopicError> {
    check(pattern, Kind::Pattern)
}

/// Validates a principal name.
///
/// # Errors
/// [`PrincipalError::Empty`], [`PrincipalError::TooLong`] (over
/// [`MAX_PRINCIPAL_BYTES`]) or [`PrincipalError::ControlChar`].
///
/// # Example
/// ```
/// use astrid_events::validate::{validate_principal, PrincipalError};
///
/// assert_eq!(validate_principal("alice"), Ok(()));
/// assert_eq!(validate_principal(""), Err(PrincipalError::Empty));
/// assert_eq!(
///     validate_principal("al\nice"),
///     Err(PrincipalError::ControlChar { index: 2, ch: '\n' })
/// );
/// ```
pub fn validate_principal(principal: &str) -> Result<(), PrincipalError> {
    if principal.is_empty() {
        return Err(PrincipalError::Empty);
    }
    if principal.len() > MAX_PRINCIPAL_BYTES {
        return Err(PrincipalError::TooLong {
            len: principal.len(),
            max: MAX_PRINCIPAL_BYTES,
        });
    }
    if let Some((index, ch)) = first_control(principal) {
        return Err(PrincipalError::ControlChar { index, ch });
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Topic,
    Pattern,
}

/// The single place the topic/pattern rules are enforced.
fn check(s: &str, kind: Kind) -> Result<(), TopicError> {
    if s.is_empty() {
        return Err(TopicError::Empty);
    }
    if s.len() > MAX_TOPIC_BYTES {
        return Err(TopicError::TooLong {
            len: s.len(),
            max: MAX_TOPIC_BYTES,
        });
    }
    if let Some((index, ch)) = first_control(s) {
        return Err(TopicError::ControlChar { index, ch });
    }
    let segments = s.bytes().filter(|&b| b == b'.').count() + 1;
    if segments > MAX_TOPIC_SEGMENTS {
        return Err(TopicError::TooManySegments {
            segments,
            max: MAX_TOPIC_SEGMENTS,
        });
    }
    for (index, segment) in s.split('.').enumerate() {
        if segment.is_empty() {
            return Err(TopicError::EmptySegment { index });
        }
        if !segment.contains('*') {
            continue;
        }
        match kind {
            Kind::Topic => return Err(TopicError::WildcardInTopic { index }),
            Kind::Pattern if segment == "*" => {}
            Kind::Pattern => {
                return Err(TopicError::PartialWildcard {
                    index,
                    segment: truncate(segment),
                });
            }
        }
    }
    Ok(())
}

fn first_control(s: &str) -> Option<(usize, char)> {
    s.char_indices().find(|(_, c)| c.is_control())
}

/// At most [`MAX_ECHO_CHARS`] chars of `s`, with `…` appended if cut.
fn truncate(s: &str) -> String {
    match s.char_indices().nth(MAX_ECHO_CHARS) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_ordinary_topics_and_patterns() {
        for t in ["a", "a.b.c", "capsule.fs.write", "ünïcødé.ok", "a-b_c.9"] {
            assert_eq!(validate_topic(t), Ok(()), "{t}");
            assert_eq!(validate_pattern(t), Ok(()), "{t}");
        }
        for p in ["*", "a.*", "*.b", "a.*.c", "*.*.*"] {
            assert_eq!(validate_pattern(p), Ok(()), "{p}");
        }
    }

    #[test]
    fn empty_is_rejected() {
        assert_eq!(validate_topic(""), Err(TopicError::Empty));
        assert_eq!(validate_pattern(""), Err(TopicError::Empty));
    }

    #[test]
    fn empty_segments_are_rejected_with_their_index() {
        assert_eq!(
            validate_topic(".a"),
            Err(TopicError::EmptySegment { index: 0 })
        );
        assert_eq!(
            validate_topic("a..b"),
            Err(TopicError::EmptySegment { index: 1 })
        );
        assert_eq!(
            validate_pattern("a.b."),
            Err(TopicError::EmptySegment { index: 2 })
        );
        assert_eq!(
            validate_topic("."),
            Err(TopicError::EmptySegment { index: 0 })
        );
    }

    #[test]
    fn segment_limit_is_inclusive() {
        let at = vec!["s"; MAX_TOPIC_SEGMENTS].join(".");
        assert_eq!(validate_topic(&at), Ok(()));
        let over = vec!["s"; MAX_TOPIC_SEGMENTS + 1].join(".");
        assert_eq!(
            validate_topic(&over),
            Err(TopicError::TooManySegments {
                segments: 21,
                max: 20
            })
        );
        let over_pattern = vec!["*"; MAX_TOPIC_SEGMENTS + 1].join(".");
        assert!(matches!(
            validate_pattern(&over_pattern),
            Err(TopicError::TooManySegments { .. })
        ));
    }

    #[test]
    fn byte_limit_is_inclusive_and_counts_bytes_not_chars() {
        let at = "a".repeat(MAX_TOPIC_BYTES);
        assert_eq!(validate_topic(&at), Ok(()));
        let over = "a".repeat(MAX_TOPIC_BYTES + 1);
        assert_eq!(
            validate_topic(&over),
            Err(TopicError::TooLong { len: 257, max: 256 })
        );
        // 129 two-byte chars: 129 chars but 258 bytes.
        let wide = "é".repeat(129);
        assert_eq!(
            validate_topic(&wide),
            Err(TopicError::TooLong { len: 258, max: 256 })
        );
    }

    #[test]
    fn control_characters_are_rejected_with_byte_offset() {
        assert_eq!(
            validate_topic("a.b\0c"),
            Err(TopicError::ControlChar { index: 3, ch: '\0' })
        );
        assert_eq!(
            validate_pattern("é\u{7f}"),
            Err(TopicError::ControlChar {
                index: 2,
                ch: '\u{7f}'
            })
        );
        // C1 controls count too.
        assert!(matches!(
            validate_topic("a\u{85}"),
            Err(TopicError::ControlChar { index: 1, .. })
        ));
    }

    #[test]
    fn topics_refuse_any_wildcard() {
        assert_eq!(
            validate_topic("*"),
            Err(TopicError::WildcardInTopic { index: 0 })
        );
        assert_eq!(
            validate_topic("a.b.*"),
            Err(TopicError::WildcardInTopic { index: 2 })
        );
        assert_eq!(
            validate_topic("a.b*"),
            Err(TopicError::WildcardInTopic { index: 1 })
        );
    }

    #[test]
    fn patterns_refuse_partial_wildcards() {
        assert_eq!(
            validate_pattern("a*"),
            Err(TopicError::PartialWildcard {
                index: 0,
                segment: "a*".into()
            })
        );
        assert_eq!(
            validate_pattern("x.**"),
            Err(TopicError::PartialWildcard {
                index: 1,
                segment: "**".into()
            })
        );
        assert!(matches!(
            validate_pattern("x.*y.z"),
            Err(TopicError::PartialWildcard { index: 1, .. })
        ));
    }

    #[test]
    fn errors_never_echo_long_input() {
        let long = format!("{}*", "é".repeat(100));
        let Err(err) = validate_pattern(&long) else {
            panic!("expected an error");
        };
        let TopicError::PartialWildcard { segment, .. } = &err else {
            panic!("expected PartialWildcard, got {err:?}");
        };
        assert_eq!(segment.chars().count(), MAX_ECHO_CHARS + 1);
        assert!(segment.ends_with('…'));
        assert!(err.to_string().len() < 300);
        // A huge input is reported by size only.
        let huge = "a".repeat(1 << 20);
        assert!(validate_topic(&huge).unwrap_err().to_string().len() < 100);
    }

    #[test]
    fn messages_name_the_fix() {
        let msg = TopicError::TooManySegments {
            segments: 25,
            max: 20,
        }
        .to_string();
        assert_eq!(
            msg,
            "topic has 25 segments; at most 20 dot-separated segments are allowed"
        );
        let msg = TopicError::ControlChar { index: 4, ch: '\n' }.to_string();
        assert_eq!(
            msg,
            "topic contains control character U+000A at byte 4; remove it"
        );
        assert!(
            TopicError::WildcardInTopic { index: 0 }
                .to_string()
                .contains("subscription patterns")
        );
        let _: &dyn std::error::Error = &TopicError::Empty;
        let _: &dyn std::error::Error = &PrincipalError::Empty;
    }

    #[test]
    fn principal_rules() {
        assert_eq!(validate_principal("alice"), Ok(()));
        assert_eq!(validate_principal(""), Err(PrincipalError::Empty));
        let at = "p".repeat(MAX_PRINCIPAL_BYTES);
        assert_eq!(validate_principal(&at), Ok(()));
        let over = "p".repeat(MAX_PRINCIPAL_BYTES + 1);
        assert_eq!(
            validate_principal(&over),
            Err(PrincipalError::TooLong { len: 129, max: 128 })
        );
        assert_eq!(
            validate_principal("bob\u{1b}[31m"),
            Err(PrincipalError::ControlChar {
                index: 3,
                ch: '\u{1b}'
            })
        );
        assert_eq!(
            PrincipalError::TooLong { len: 200, max: 128 }.to_string(),
            "principal name is 200 bytes long; at most 128 bytes are allowed"
        );
    }

    #[test]
    fn truncate_is_char_boundary_safe() {
        assert_eq!(truncate("short"), "short");
        let s = "ß".repeat(40);
        let t = truncate(&s);
        assert_eq!(t, format!("{}…", "ß".repeat(MAX_ECHO_CHARS)));
    }

    /// Independent restatement of the rules, for the property tests.
    fn satisfies_rules(s: &str, allow_wildcard: bool) -> bool {
        let segments: Vec<&str> = s.split('.').collect();
        !s.is_empty()
            && s.len() <= MAX_TOPIC_BYTES
            && !s.chars().any(char::is_control)
            && segments.len() <= MAX_TOPIC_SEGMENTS
            && segments.iter().all(|seg| {
                !seg.is_empty() && (!seg.contains('*') || (allow_wildcard && *seg == "*"))
            })
    }

    proptest! {
        #[test]
        fn arbitrary_strings_never_panic_and_acceptance_implies_rules(s in any::<String>()) {
            let topic = validate_topic(&s);
            let pattern = validate_pattern(&s);
            let _ = validate_principal(&s);
            prop_assert_eq!(topic.is_ok(), satisfies_rules(&s, false));
            prop_assert_eq!(pattern.is_ok(), satisfies_rules(&s, true));
        }

        #[test]
        fn topic_like_strings_agree_with_the_rules(
            s in "[a-z*.\u{0}é]{0,300}",
        ) {
            prop_assert_eq!(validate_topic(&s).is_ok(), satisfies_rules(&s, false));
            prop_assert_eq!(validate_pattern(&s).is_ok(), satisfies_rules(&s, true));
        }

        #[test]
        fn well_formed_topics_are_accepted(
            s in "[a-z0-9_-]{1,8}(\\.[a-z0-9_-]{1,8}){0,19}",
        ) {
            prop_assert_eq!(validate_topic(&s), Ok(()));
            prop_assert_eq!(validate_pattern(&s), Ok(()));
        }

        #[test]
        fn wildcard_segments_are_patterns_not_topics(
            s in "([a-z]{1,4}|\\*)(\\.([a-z]{1,4}|\\*)){0,19}",
        ) {
            prop_assert_eq!(validate_pattern(&s), Ok(()));
            prop_assert_eq!(validate_topic(&s).is_ok(), !s.contains('*'));
        }

        #[test]
        fn principal_acceptance_implies_rules(s in any::<String>()) {
            let ok = validate_principal(&s).is_ok();
            let rules = !s.is_empty()
                && s.len() <= MAX_PRINCIPAL_BYTES
                && !s.chars().any(char::is_control);
            prop_assert_eq!(ok, rules);
        }
    }
}
