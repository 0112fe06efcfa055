//! Wire compatibility of [`AstridEvent`] with `astrid-events` 0.8.0.
//!
//! Replays the golden vectors in `tests/golden/`
//! (`events.jsonl` and the `AstridEvent` lines of `tolerance.jsonl`), which
//! were produced by serializing values of the published 0.8.0 crate.
//!
//! Lines that involve [`AstridEvent::Ipc`] are checked in separate tests,
//! because they also depend on the `IpcMessage`/`IpcPayload` schema.
//! Every test counts the lines it checked and asserts the expected number,
//! so an empty or truncated vector file cannot make it pass.

mod common;

use std::collections::BTreeSet;

use astrid_events::{AstridEvent, EventMetadata, IpcMessage, IpcPayload, ipc_json};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

/// Lines in `events.jsonl`.
const EVENT_LINES: usize = 126;
/// Lines in `events.jsonl` that hold an `Ipc` event.
const IPC_EVENT_LINES: usize = 3;
/// Lines in `tolerance.jsonl` with `"target": "AstridEvent"`.
const TOLERANCE_LINES: usize = 21;
/// Of those, lines whose input is an `ipc` event.
const IPC_TOLERANCE_LINES: usize = 1;
/// Number of `AstridEvent` variants in 0.8.0.
const VARIANTS: usize = 58;

// ---------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------

fn load(file: &str) -> Vec<Value> {
    common::load_jsonl(file)
}

fn str_field<'a>(line: &'a Value, key: &str) -> &'a str {
    line[key]
        .as_str()
        .unwrap_or_else(|| panic!("vector line without string `{key}`: {line}"))
}

/// `"sub_agent_spawned"` -> `"SubAgentSpawned"`.
fn pascal_case(snake: &str) -> String {
    snake
        .split('_')
        .map(|word| {
            let mut chars = word.chars();
            chars
                .next()
                .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// Rust variant name of an event, derived from its serde tag.
fn variant_name(event: &AstridEvent) -> String {
    let value = serde_json::to_value(event).expect("event serializes");
    pascal_case(value["type"].as_str().expect("event has a string tag"))
}

/// Collects mismatches so one run reports all of them, then fails once.
#[derive(Default)]
struct Report {
    checked: usize,
    failures: Vec<String>,
}

impl Report {
    fn check(&mut self, name: &str, ok: bool, detail: impl FnOnce() -> String) {
        if !ok {
            self.failures.push(format!("{name}: {}", detail()));
        }
    }

    fn finish(self, what: &str, expected: usize) {
        assert!(
            self.failures.is_empty(),
            "{} {what} mismatch(es):\n{}",
            self.failures.len(),
            self.failures.join("\n")
        );
        assert_eq!(self.checked, expected, "number of {what} checked");
    }
}

// ---------------------------------------------------------------------------
// events.jsonl
// ---------------------------------------------------------------------------

fn is_ipc_line(line: &Value) -> bool {
    str_field(line, "event_type") == "ipc"
}

fn check_event_line(report: &mut Report, line: &Value) {
    let name = str_field(line, "name");
    report.checked += 1;

    if let Some(error) = line.get("error") {
        check_unserializable(report, name, line, error);
        return;
    }

    let wire = str_field(line, "wire");
    let json = &line["json"];
    match line["roundtrip"].as_bool() {
        Some(true) => check_roundtrip(report, name, line, wire, json),
        Some(false) => check_no_roundtrip(report, name, line, wire, json),
        None => report.failures.push(format!("{name}: no `roundtrip` flag")),
    }
}

/// A line that reads back: wire -> event -> wire is byte-identical and the
/// event agrees with every recorded property.
fn check_roundtrip(report: &mut Report, name: &str, line: &Value, wire: &str, json: &Value) {
    let event: AstridEvent = match serde_json::from_str(wire) {
        Ok(event) => event,
        Err(e) => {
            report
                .failures
                .push(format!("{name}: wire does not decode: {e}"));
            return;
        }
    };

    let rewire = serde_json::to_string(&event).expect("decoded event serializes");
    report.check(name, rewire == wire, || {
        format!("re-serialized wire differs\n  want {wire}\n  got  {rewire}")
    });

    let value = serde_json::to_value(&event).expect("decoded event serializes");
    report.check(name, &value == json, || {
        format!("to_value differs\n  want {json}\n  got  {value}")
    });

    match serde_json::from_value::<AstridEvent>(json.clone()) {
        Ok(from_json) => report.check(name, from_json == event, || {
            "decoding `json` and `wire` give different events".to_owned()
        }),
        Err(e) => report
            .failures
            .push(format!("{name}: json does not decode: {e}")),
    }

    check_direct_json(report, name, wire, Some(&event));
    check_accessors(report, name, line, &event);
    let variant = name.split('/').next().unwrap_or(name);
    let actual = variant_name(&event);
    report.check(name, actual == variant, || {
        format!("decoded as variant {actual}")
    });
}

/// `ipc_json` agrees with serde on `wire`: the reader reads serde's own
/// layout of an IPC event (and declines or agrees on anything else), the
/// writer writes serde's bytes.
fn check_direct_json(report: &mut Report, name: &str, wire: &str, serde: Option<&AstridEvent>) {
    let read = ipc_json::read_ipc_event(wire.as_bytes());
    let is_ipc = matches!(serde, Some(AstridEvent::Ipc { .. }));
    match (&read, serde) {
        (Some(read), Some(event)) => report.check(name, read == event, || {
            "ipc_json reads a different event than serde".to_owned()
        }),
        (Some(_), None) => report
            .failures
            .push(format!("{name}: ipc_json reads what serde rejects")),
        (None, _) => {}
    }
    if let Some(event) = serde {
        let canonical = serde_json::to_string(event).expect("serializes") == wire;
        if is_ipc && canonical {
            report.check(name, read.is_some(), || {
                "ipc_json declines serde's own layout".to_owned()
            });
        }
        let mut out = Vec::new();
        let wrote = ipc_json::write_ipc_event(event, &mut out);
        report.check(name, wrote == is_ipc, || {
            format!("write_ipc_event returned {wrote}")
        });
        if wrote {
            let want = serde_json::to_vec(event).expect("serializes");
            report.check(name, out == want, || {
                format!(
                    "ipc_json writes other bytes than serde\n  want {}\n  got  {}",
                    String::from_utf8_lossy(&want),
                    String::from_utf8_lossy(&out)
                )
            });
        }
    }
}

/// `event_type()` and `metadata()` agree with the vector.
fn check_accessors(report: &mut Report, name: &str, line: &Value, event: &AstridEvent) {
    let want_type = str_field(line, "event_type");
    report.check(name, event.event_type() == want_type, || {
        format!(
            "event_type() = {:?}, want {want_type:?}",
            event.event_type()
        )
    });

    if let Some(want_meta) = line["json"].get("metadata") {
        let meta = serde_json::to_value(event.metadata()).expect("metadata serializes");
        report.check(name, &meta == want_meta, || {
            format!("metadata() = {meta}, want {want_meta}")
        });
        let decoded: EventMetadata =
            serde_json::from_value(want_meta.clone()).expect("recorded metadata decodes");
        report.check(name, event.metadata() == &decoded, || {
            "metadata() differs from the decoded recorded metadata".to_owned()
        });
    }
}

/// A line whose wire cannot be read back (NaN written as `null`).
fn check_no_roundtrip(report: &mut Report, name: &str, line: &Value, wire: &str, json: &Value) {
    let want_err = str_field(line, "roundtrip_error");
    match serde_json::from_value::<AstridEvent>(json.clone()) {
        Ok(event) => report
            .failures
            .push(format!("{name}: expected `{want_err}`, decoded {event:?}")),
        Err(e) => report.check(name, e.to_string() == want_err, || {
            format!("error `{e}`, want `{want_err}`")
        }),
    }
    report.check(
        name,
        serde_json::from_str::<AstridEvent>(wire).is_err(),
        || "wire decoded although the vector says it does not".to_owned(),
    );

    // Rebuild the original value and check it serializes to the recorded wire.
    let event = match name {
        "BudgetWarning/nan" => {
            let mut finite = json.clone();
            finite["percent_used"] = json!(0.0);
            let mut event: AstridEvent =
                serde_json::from_value(finite).expect("finite BudgetWarning decodes");
            if let AstridEvent::BudgetWarning { percent_used, .. } = &mut event {
                *percent_used = f64::NAN;
            }
            event
        }
        other => panic!("{other}: no rebuild rule for this non-roundtrip line; add one"),
    };
    let rewire = serde_json::to_string(&event).expect("NaN event serializes");
    report.check(name, rewire == wire, || {
        format!("serialized wire differs\n  want {wire}\n  got  {rewire}")
    });
    check_accessors(report, name, line, &event);
}

/// A line whose value fails to serialize: only the error is recorded, so the
/// value is rebuilt here from its description.
fn check_unserializable(report: &mut Report, name: &str, line: &Value, error: &Value) {
    let want_err = error.as_str().expect("`error` is a string");
    let payload = match name {
        "Ipc/raw_json_number_payload" => IpcPayload::RawJson(json!(42)),
        other => panic!("{other}: no rebuild rule for this unserializable line; add one"),
    };
    let source_id = Uuid::from_u128(0x1a);
    let event = AstridEvent::Ipc {
        metadata: EventMetadata::new("golden-gen"),
        message: IpcMessage::new("plugin.v1.raw", payload, source_id),
    };
    report.check(
        name,
        event.event_type() == str_field(line, "event_type"),
        || format!("event_type() = {:?}", event.event_type()),
    );
    match serde_json::to_string(&event) {
        Ok(wire) => report
            .failures
            .push(format!("{name}: expected `{want_err}`, serialized {wire}")),
        Err(e) => report.check(name, e.to_string() == want_err, || {
            format!("error `{e}`, want `{want_err}`")
        }),
    }
}

#[test]
fn events_file_covers_every_variant() {
    let lines = load("events.jsonl");
    assert_eq!(lines.len(), EVENT_LINES, "lines in events.jsonl");
    let variants: BTreeSet<&str> = lines
        .iter()
        .map(|line| {
            str_field(line, "name")
                .split('/')
                .next()
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(
        variants.len(),
        VARIANTS,
        "distinct variants in events.jsonl"
    );
    // Every variant has an all-`Some` line and an all-`None` line.
    for variant in &variants {
        for name in [variant.to_string(), format!("{variant}/none")] {
            assert!(
                lines.iter().any(|line| str_field(line, "name") == name),
                "events.jsonl has no line `{name}`"
            );
        }
    }
}

#[test]
fn events_match_golden_vectors() {
    let mut report = Report::default();
    for line in load("events.jsonl").iter().filter(|l| !is_ipc_line(l)) {
        check_event_line(&mut report, line);
    }
    report.finish("non-IPC event lines", EVENT_LINES - IPC_EVENT_LINES);
}

#[test]
fn ipc_events_match_golden_vectors() {
    let mut report = Report::default();
    for line in load("events.jsonl").iter().filter(|l| is_ipc_line(l)) {
        check_event_line(&mut report, line);
    }
    report.finish("IPC event lines", IPC_EVENT_LINES);
}

// ---------------------------------------------------------------------------
// tolerance.jsonl
// ---------------------------------------------------------------------------

/// Equality where an expected `"<now>"` accepts any timestamp within a few
/// minutes of the current time.
fn loosely_equal(want: &Value, got: &Value) -> bool {
    match (want, got) {
        (Value::String(w), Value::String(g)) if w == "<now>" => g
            .parse::<DateTime<Utc>>()
            .is_ok_and(|t| (Utc::now() - t).num_seconds().abs() < 300),
        (Value::Object(w), Value::Object(g)) => {
            w.len() == g.len()
                && w.iter()
                    .all(|(k, wv)| g.get(k).is_some_and(|gv| loosely_equal(wv, gv)))
        }
        (Value::Array(w), Value::Array(g)) => {
            w.len() == g.len() && w.iter().zip(g).all(|(wv, gv)| loosely_equal(wv, gv))
        }
        _ => want == got,
    }
}

/// Compares a decode result with a recorded outcome: `{"error": msg}` or the
/// re-serialized value, plus the expected variant name.
fn check_decoded(
    report: &mut Report,
    name: &str,
    result: Result<AstridEvent, serde_json::Error>,
    want: &Value,
    want_variant: &Value,
) {
    match (result, want.get("error").and_then(Value::as_str)) {
        (Err(e), Some(want_err)) => report.check(name, e.to_string() == want_err, || {
            format!("error `{e}`, want `{want_err}`")
        }),
        (Ok(event), Some(want_err)) => report
            .failures
            .push(format!("{name}: expected `{want_err}`, decoded {event:?}")),
        (Err(e), None) => report
            .failures
            .push(format!("{name}: expected {want}, got error `{e}`")),
        (Ok(event), None) => {
            let got = serde_json::to_value(&event).expect("decoded event serializes");
            report.check(name, loosely_equal(want, &got), || {
                format!("decoded to {got}, want {want}")
            });
            let variant = variant_name(&event);
            report.check(
                name,
                want_variant.as_str() == Some(variant.as_str()),
                || format!("variant {variant}, want {want_variant}"),
            );
        }
    }
}

fn tolerance_lines(ipc: bool) -> Vec<Value> {
    load("tolerance.jsonl")
        .into_iter()
        .filter(|line| line["target"] == "AstridEvent")
        .filter(|line| (line["input"]["type"] == "ipc") == ipc)
        .collect()
}

fn check_tolerance_line(report: &mut Report, line: &Value) {
    let name = str_field(line, "name");
    report.checked += 1;
    let result = serde_json::from_value::<AstridEvent>(line["input"].clone());
    check_decoded(
        report,
        name,
        result,
        &line["from_value"],
        &line["from_value_variant"],
    );
    if let Some(text) = line.get("input_str").and_then(Value::as_str) {
        let result = serde_json::from_str::<AstridEvent>(text);
        check_direct_json(report, name, text, result.as_ref().ok());
        check_decoded(
            report,
            &format!("{name} (from_str)"),
            result,
            &line["from_str"],
            &line["from_str_variant"],
        );
    }
}

#[test]
fn tolerance_lines_decode_as_recorded() {
    let mut report = Report::default();
    for line in &tolerance_lines(false) {
        check_tolerance_line(&mut report, line);
    }
    report.finish(
        "non-IPC AstridEvent tolerance lines",
        TOLERANCE_LINES - IPC_TOLERANCE_LINES,
    );
}

#[test]
fn ipc_tolerance_lines_decode_as_recorded() {
    let mut report = Report::default();
    for line in &tolerance_lines(true) {
        check_tolerance_line(&mut report, line);
    }
    report.finish("IPC AstridEvent tolerance lines", IPC_TOLERANCE_LINES);
}
