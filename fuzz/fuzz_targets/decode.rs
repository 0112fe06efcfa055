//! JSON decoding of the wire types.
//!
//! For any input text: decoding `AstridEvent`, `IpcMessage` and `IpcPayload`
//! (with `serde_json::from_str`, and for payloads also through
//! `IpcPayload::from_json_value`) never panics, and decode → encode → decode
//! is stable: whenever the first decode and the encode succeed, the second
//! decode succeeds and equals the first.
//!
//! And for any input bytes, `ipc_json` agrees with serde: its reader never
//! reads what serde rejects nor reads it differently, and its writer writes
//! serde's bytes for every IPC event serde reads.
//!
//! Quirks of 0.8.0 that the golden vectors document
//! (`crates/astrid-events/tests/golden/README.md`) and that this target
//! therefore tolerates rather than reports:
//! - a non-object `RawJson` fails to *encode* (not a failure here: the
//!   property only applies when encode succeeds);
//! - NaN encodes as `null` and cannot be read back; JSON text cannot produce
//!   a NaN, so it never arises from a decode;
//! - `to_guest_bytes` and `ipc_size_of` must not panic either.
//!
//! And one quirk of serde_json itself (found by this target): built without
//! its `float_roundtrip` feature (as here and in 0.8.0), it may parse a
//! float one ULP off, so a decimal that the encoder wrote can read back as a
//! neighbouring `f64` (e.g. `4888…882` → `4.88888888888889e+54`). Values
//! are therefore compared with floats equal within a few ULPs.
#![no_main]

use std::sync::Arc;

use astrid_events::{AstridEvent, IpcMessage, IpcPayload, ipc_json, ipc_size_of};
use libfuzzer_sys::fuzz_target;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Equal, or equal as JSON with floats compared within a few ULPs.
fn assert_same<T: Serialize + PartialEq + std::fmt::Debug>(a: &T, b: &T, wire: &str) {
    if a == b {
        return;
    }
    let (Ok(va), Ok(vb)) = (serde_json::to_value(a), serde_json::to_value(b)) else {
        panic!("roundtrip differs and does not encode; wire: {wire}\n{a:?}\n{b:?}");
    };
    assert!(
        approx_eq(&va, &vb),
        "roundtrip changed the value; wire: {wire}\nfirst:  {a:?}\nsecond: {b:?}"
    );
}

fn approx_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            x == y
                || match (x.as_f64(), y.as_f64()) {
                    (Some(x), Some(y)) => {
                        (x - y).abs() <= 4.0 * f64::EPSILON * x.abs().max(y.abs())
                    }
                    _ => false,
                }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| approx_eq(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| approx_eq(v, w)))
        }
        _ => a == b,
    }
}

/// decode → encode → decode; returns the first decode if it succeeded.
fn roundtrip<T>(text: &str) -> Option<T>
where
    T: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug,
{
    let first: T = serde_json::from_str(text).ok()?;
    if let Ok(wire) = serde_json::to_string(&first) {
        let second: T = serde_json::from_str(&wire)
            .unwrap_or_else(|e| panic!("re-decode failed: {e}\nfirst: {first:?}\nwire: {wire}"));
        assert_same(&first, &second, &wire);
    }
    // Through a Value too (the path `from_json_value` callers take).
    if let Ok(value) = serde_json::to_value(&first)
        && let Ok(second) = serde_json::from_value::<T>(value.clone())
    {
        // `to_value` keeps the inner `type` of a RawJson whose content has
        // one (documented), so only compare when the value re-encodes the
        // same way.
        if serde_json::to_value(&second).ok().as_ref() == Some(&value) {
            assert_same(&first, &second, &value.to_string());
        }
    }
    Some(first)
}

/// `ipc_json` against serde on `data` (same parser underneath, so events
/// compare exactly).
fn check_direct_json(data: &[u8]) {
    let serde = serde_json::from_slice::<AstridEvent>(data);
    if let Some(read) = ipc_json::read_ipc_event(data) {
        match &serde {
            Ok(event) => assert!(
                read == *event,
                "ipc_json reads another event\n{read:?}\n{event:?}"
            ),
            Err(e) => panic!("ipc_json reads what serde rejects ({e}): {read:?}"),
        }
    }
    if let Ok(event) = &serde {
        let mut out = Vec::new();
        let wrote = ipc_json::write_ipc_event(event, &mut out);
        match (wrote, serde_json::to_vec(event)) {
            (true, Ok(want)) => assert!(
                out == want,
                "ipc_json writes other bytes\nwant {}\ngot  {}",
                String::from_utf8_lossy(&want),
                String::from_utf8_lossy(&out)
            ),
            (false, Err(_)) => assert!(out.is_empty()),
            (false, Ok(_)) => assert!(
                !matches!(event, AstridEvent::Ipc { .. }),
                "ipc_json declines an IPC event serde writes"
            ),
            (true, Err(e)) => panic!("ipc_json writes what serde cannot ({e})"),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    check_direct_json(data);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(event) = roundtrip::<AstridEvent>(text) {
        let _ = event.event_type();
        let _ = ipc_size_of(&Arc::new(event));
    }
    if let Some(message) = roundtrip::<IpcMessage>(text) {
        let _ = message.payload.to_guest_bytes();
    }
    if let Some(payload) = roundtrip::<IpcPayload>(text) {
        let _ = payload.to_guest_bytes();
    }
    // The lenient path: never panics, never yields `Unknown`, and what it
    // yields re-reads (leniently) as itself.
    if let Ok(value) = serde_json::from_str::<serde_json::Value>(text) {
        let payload = IpcPayload::from_json_value(value.clone());
        assert!(
            !matches!(payload, IpcPayload::Unknown),
            "from_json_value yielded Unknown for {value}"
        );
        if let IpcPayload::Custom { data } = &payload
            && value.get("type").and_then(serde_json::Value::as_str) != Some("custom")
        {
            // Not a known schema: kept whole, nothing lost.
            assert_eq!(data, &value, "Custom must keep the whole input");
        }
        let _ = payload.to_guest_bytes();
        if let Ok(encoded) = serde_json::to_value(&payload) {
            let again = IpcPayload::from_json_value(encoded.clone());
            assert_same(&again, &payload, &encoded.to_string());
            let wire = serde_json::to_string(&payload).expect("to_value worked");
            let strict: IpcPayload = serde_json::from_str(&wire)
                .unwrap_or_else(|e| panic!("strict re-decode failed: {e}; wire: {wire}"));
            assert_same(&strict, &payload, &wire);
        }
    }
});
