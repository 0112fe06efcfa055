//! The JSON text of event timestamps (`EventMetadata::timestamp` and
//! `IpcMessage::timestamp`), for `#[serde(with = "astrid_events::timestamp")]`
//! on a field of type `DateTime<Utc>` (types that mirror the event's fields
//! use it to read and write them the same way).
//!
//! The text and the values are chrono's (RFC 3339 in UTC with `Z`, the
//! fraction in 0, 3, 6 or 9 digits, as chrono's `AutoSi` writes it), but the
//! common case skips chrono's general machinery: chrono serializes through
//! `fmt` in a dozen small pieces, each of which serde_json escapes on its
//! own, and parses with its general format parser; together they were a
//! quarter of encoding and decoding a small IPC event.
//!
//! Both directions take the direct path only for the shape the serializer
//! writes (year 0..=9999, no leap second, `Z`, 0..=9 fraction digits) and
//! hand anything else to chrono, so what is accepted, the values and the
//! error messages stay exactly chrono's (tested against chrono below and by
//! the 0.8.0 golden vectors).

use std::fmt;

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, NaiveTime, Timelike, Utc};
use serde::{Deserializer, Serialize, Serializer, de};

/// Longest text of the direct path: `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`.
const MAX_LEN: usize = 30;

/// Serializes like chrono's `impl Serialize for DateTime<Utc>`.
pub fn serialize<S: Serializer>(ts: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    let mut buf = [0u8; MAX_LEN];
    if let Some(n) = write(ts, &mut buf)
        && let Ok(text) = std::str::from_utf8(&buf[..n])
    {
        return s.serialize_str(text);
    }
    ts.serialize(s)
}

/// Deserializes like chrono's `impl Deserialize for DateTime<Utc>`.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    d.deserialize_str(Visitor)
}

struct Visitor;

impl de::Visitor<'_> for Visitor {
    type Value = DateTime<Utc>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // chrono's wording, so type errors read the same.
        f.write_str("an RFC 3339 formatted date and time string")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<DateTime<Utc>, E> {
        match parse(v) {
            Some(ts) => Ok(ts),
            None => v
                .parse::<DateTime<FixedOffset>>()
                .map(|t| t.with_timezone(&Utc))
                .map_err(E::custom),
        }
    }
}

/// Writes `ts` as chrono would into `buf`; `None` outside the direct path
/// (a year outside 0..=9999, a leap second).
fn write(ts: &DateTime<Utc>, buf: &mut [u8; MAX_LEN]) -> Option<usize> {
    let (date, time) = (ts.date_naive(), ts.time());
    let year = u32::try_from(date.year()).ok().filter(|y| *y <= 9999)?;
    let nano = time.nanosecond();
    if nano >= 1_000_000_000 {
        return None;
    }
    let mut two = |at: usize, v: u32| {
        buf[at] = b'0' + (v / 10) as u8;
        buf[at + 1] = b'0' + (v % 10) as u8;
    };
    two(0, year / 100);
    two(2, year % 100);
    two(5, date.month());
    two(8, date.day());
    two(11, time.hour());
    two(14, time.minute());
    two(17, time.second());
    for (at, sep) in [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')] {
        buf[at] = sep;
    }
    let (digits, mut value) = if nano == 0 {
        (0, 0)
    } else if nano % 1_000_000 == 0 {
        (3, nano / 1_000_000)
    } else if nano % 1_000 == 0 {
        (6, nano / 1_000)
    } else {
        (9, nano)
    };
    let mut n = 19;
    if digits > 0 {
        buf[n] = b'.';
        for at in (n + 1..=n + digits).rev() {
            buf[at] = b'0' + (value % 10) as u8;
            value /= 10;
        }
        n += 1 + digits;
    }
    buf[n] = b'Z';
    Some(n + 1)
}

/// Parses the direct-path shape `YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z`; `None` for
/// anything else (including invalid dates), which chrono then decides.
fn parse(v: &str) -> Option<DateTime<Utc>> {
    let b = v.as_bytes();
    let (head, rest) = b.split_at_checked(19)?;
    let frac = rest.strip_suffix(b"Z")?;
    let num = |from: usize, len: usize| -> Option<u32> {
        head.get(from..from + len)?
            .iter()
            .try_fold(0u32, |acc, &c| {
                c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
            })
    };
    let seps = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
    if seps.iter().any(|&(at, sep)| head[at] != sep) {
        return None;
    }
    let nano = match frac {
        [] => 0,
        [b'.', digits @ ..] if (1..=9).contains(&digits.len()) => {
            let value = digits.iter().try_fold(0u32, |acc, &c| {
                c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
            })?;
            value * 10u32.pow(9 - digits.len() as u32)
        }
        _ => return None,
    };
    let second = num(17, 2)?;
    if second > 59 {
        // A leap second: chrono's rules.
        return None;
    }
    let date = NaiveDate::from_ymd_opt(num(0, 4)? as i32, num(5, 2)?, num(8, 2)?)?;
    let time = NaiveTime::from_hms_nano_opt(num(11, 2)?, num(14, 2)?, second, nano)?;
    Some(date.and_time(time).and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// chrono's own serde text and value.
    fn chrono_text(ts: &DateTime<Utc>) -> String {
        serde_json::to_string(ts).expect("serializes")
    }

    fn ours_text(ts: &DateTime<Utc>) -> String {
        let mut out = Vec::new();
        serialize(ts, &mut serde_json::Serializer::new(&mut out)).expect("serializes");
        String::from_utf8(out).expect("utf-8")
    }

    fn ours_parse(json: &str) -> Result<DateTime<Utc>, String> {
        deserialize(&mut serde_json::Deserializer::from_str(json)).map_err(|e| e.to_string())
    }

    fn chrono_parse(json: &str) -> Result<DateTime<Utc>, String> {
        serde_json::from_str::<DateTime<Utc>>(json).map_err(|e| e.to_string())
    }

    /// A timestamp anywhere chrono can represent, with fractions of every
    /// width and leap-second nanoseconds.
    fn any_timestamp() -> impl Strategy<Value = DateTime<Utc>> {
        let secs = prop_oneof![
            // Years 0..=9999.
            -62_167_219_200i64..253_402_300_800,
            // Around now.
            1_700_000_000i64..1_900_000_000,
            // Outside 0..=9999 (written with a sign by chrono).
            -8_000_000_000_000i64..8_000_000_000_000,
        ];
        let nanos = prop_oneof![
            Just(0u32),
            (0u32..1_000).prop_map(|ms| ms * 1_000_000),
            (0u32..1_000_000).prop_map(|us| us * 1_000),
            0u32..1_000_000_000,
            // Leap second representation.
            1_000_000_000u32..2_000_000_000,
        ];
        (secs, nanos).prop_filter_map("representable", |(s, n)| {
            let ts = DateTime::<Utc>::from_timestamp(s, n)?;
            // A leap nanosecond is only valid at second 59.
            (n < 1_000_000_000 || ts.second() == 59).then_some(ts)
        })
    }

    proptest! {
        #[test]
        fn text_and_value_are_chronos(ts in any_timestamp()) {
            let text = chrono_text(&ts);
            prop_assert_eq!(ours_text(&ts), text.clone());
            prop_assert_eq!(ours_parse(&text), chrono_parse(&text));
        }

        /// Strings near the direct path's shape, valid or not: same value,
        /// same error.
        #[test]
        fn parse_agrees_with_chrono(
            y in 0u32..10_000, mo in 0u32..14, d in 0u32..33, h in 0u32..26,
            mi in 0u32..62, s in 0u32..62, frac in "(\\.[0-9]{0,11})?",
            zone in "(Z|z|\\+00:00|-01:30|)", sep in "[T t]",
        ) {
            let json = format!("\"{y:04}-{mo:02}-{d:02}{sep}{h:02}:{mi:02}:{s:02}{frac}{zone}\"");
            prop_assert_eq!(ours_parse(&json), chrono_parse(&json));
        }

        /// The direct path's own shape: same value as chrono.
        #[test]
        fn direct_shape_agrees_with_chrono(
            y in 0u32..10_000, mo in 1u32..=12, d in 1u32..=31, h in 0u32..24,
            mi in 0u32..60, s in 0u32..60, frac in "(\\.[0-9]{1,9})?",
        ) {
            let json = format!("\"{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}{frac}Z\"");
            prop_assert_eq!(ours_parse(&json), chrono_parse(&json));
        }

        #[test]
        fn arbitrary_strings_agree(s in "\\PC{0,40}") {
            let json = serde_json::to_string(&s).expect("string");
            prop_assert_eq!(ours_parse(&json), chrono_parse(&json));
        }
    }

    #[test]
    fn non_strings_fail_like_chrono() {
        for json in ["12", "null", "{}", "[\"2026-01-01T00:00:00Z\"]", "true"] {
            let (ours, theirs) = (ours_parse(json), chrono_parse(json));
            assert!(ours.is_err(), "{json}");
            assert_eq!(ours, theirs, "{json}");
        }
    }

    #[test]
    fn fraction_widths_match_autosi() {
        let base = DateTime::<Utc>::from_timestamp(1_764_341_000, 0).expect("valid");
        for (nanos, want) in [
            (0, "2025-11-28T14:43:20Z"),
            (120_000_000, "2025-11-28T14:43:20.120Z"),
            (123_400_000, "2025-11-28T14:43:20.123400Z"),
            (123_456_780, "2025-11-28T14:43:20.123456780Z"),
        ] {
            let ts = base.with_nanosecond(nanos).expect("valid");
            assert_eq!(ours_text(&ts), format!("\"{want}\""));
            assert_eq!(ours_text(&ts), chrono_text(&ts));
        }
    }
}
