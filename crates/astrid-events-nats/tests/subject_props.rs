//! Property and brute-force tests of the topic <-> subject mapping.
#![allow(missing_docs)]

use astrid_events_nats::subject::{
    is_valid_subject, pattern_to_subject, subject_to_topic, topic_to_subject,
};
use proptest::prelude::*;

/// NATS subject matching, written from the protocol's rules: `*` matches one
/// token, a final `>` matches one or more tokens, others match literally.
fn nats_matches(sub: &str, subject: &str) -> bool {
    let s: Vec<&str> = sub.split('.').collect();
    let t: Vec<&str> = subject.split('.').collect();
    for (i, tok) in s.iter().enumerate() {
        if *tok == ">" {
            return i == s.len() - 1 && t.len() > i;
        }
        match t.get(i) {
            None => return false,
            Some(x) if *tok == "*" || tok == x => {}
            Some(_) => return false,
        }
    }
    s.len() == t.len()
}

/// The bus's topic-pattern semantics (as specified for 0.8.0): a trailing
/// `.*` covers one or more remaining segments, any other `*` segment exactly
/// one, everything else literal.
fn spec_matches(pattern: &str, topic: &str) -> bool {
    let t: Vec<&str> = topic.split('.').collect();
    let (body, tail) = match pattern.strip_suffix(".*") {
        Some(b) => (b, true),
        None => (pattern, false),
    };
    let p: Vec<&str> = body.split('.').collect();
    let len_ok = if tail {
        t.len() > p.len()
    } else {
        t.len() == p.len()
    };
    len_ok && p.iter().zip(&t).all(|(p, t)| *p == "*" || p == t)
}

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9_-]{1,6}",
        Just(String::new()),
        Just("*".to_owned()),
        Just(">".to_owned()),
        Just("~61".to_owned()),
        "\\PC{0,6}",
        any::<String>(),
    ]
    .prop_map(|s| s.replace('.', ""))
}

fn topic() -> impl Strategy<Value = String> {
    prop::collection::vec(segment(), 1..6).prop_map(|v| v.join("."))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn topics_round_trip_through_valid_subjects(topic in topic()) {
        let subject = topic_to_subject("astrid.test", &topic).unwrap();
        prop_assert!(is_valid_subject(&subject, false), "invalid subject {subject:?}");
        prop_assert!(subject.is_ascii());
        prop_assert_eq!(subject_to_topic("astrid.test", &subject).unwrap(), topic);
    }

    #[test]
    fn distinct_topics_get_distinct_subjects(a in topic(), b in topic()) {
        let sa = topic_to_subject("astrid", &a).unwrap();
        let sb = topic_to_subject("astrid", &b).unwrap();
        prop_assert_eq!(a == b, sa == sb);
    }

    #[test]
    fn patterns_are_valid_wildcard_subjects(pattern in topic()) {
        let sub = pattern_to_subject("astrid", &pattern).unwrap();
        prop_assert!(is_valid_subject(&sub, true), "invalid subscription {sub:?}");
    }

    #[test]
    fn pattern_subscription_agrees_with_bus(pattern in topic(), topic in topic()) {
        let sub = pattern_to_subject("astrid", &pattern).unwrap();
        let subj = topic_to_subject("astrid", &topic).unwrap();
        let nats = nats_matches(&sub, &subj);
        prop_assert_eq!(nats, spec_matches(&pattern, &topic));
        prop_assert_eq!(nats, astrid_events::topic_pattern_matches(&pattern, &topic));
    }
}

fn all_dotted(alphabet: &[&str], max_len: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut layer: Vec<Vec<&str>> = vec![vec![]];
    for _ in 0..max_len {
        let mut next = Vec::new();
        for v in &layer {
            for s in alphabet {
                let mut w = v.clone();
                w.push(s);
                out.push(w.join("."));
                next.push(w);
            }
        }
        layer = next;
    }
    out
}

#[test]
fn brute_force_nats_subscription_matches_exactly_the_bus_pattern() {
    let topics = all_dotted(&["a", "b", "", "*", "é"], 4);
    let patterns = all_dotted(&["a", "*", "", "é"], 4);
    let mut matched = 0usize;
    for p in &patterns {
        let sub = pattern_to_subject("astrid", p).unwrap();
        for t in &topics {
            let subj = topic_to_subject("astrid", t).unwrap();
            let bus = spec_matches(p, t);
            assert_eq!(
                nats_matches(&sub, &subj),
                bus,
                "pattern {p:?} topic {t:?} sub {sub:?}"
            );
            matched += usize::from(bus);
        }
    }
    // Sanity: the check exercised both outcomes substantially.
    assert!(matched > 1000, "only {matched} matching pairs");
}

#[test]
fn own_matchers_behave_as_documented() {
    assert!(nats_matches("x.*.c", "x.b.c"));
    assert!(!nats_matches("x.*", "x.b.c"));
    assert!(nats_matches("x.>", "x.b.c"));
    assert!(!nats_matches("x.>", "x"));
    assert!(spec_matches("a.*", "a.b.c"));
    assert!(!spec_matches("a.*", "a"));
    assert!(spec_matches("a.*.c", "a.b.c"));
    assert!(!spec_matches("a.*.c", "a.b.d"));
    assert!(spec_matches("*", "a"));
    assert!(!spec_matches("*", "a.b"));
}

#[test]
fn depth_limit_is_the_one_difference_and_is_documented() {
    // NATS has no depth limit; the bus refuses topics deeper than
    // MAX_TOPIC_DEPTH, so the importer must re-check with the bus matcher.
    let depth = astrid_events::TopicMatcher::MAX_TOPIC_DEPTH;
    let topic = vec!["a"; depth + 1].join(".");
    let sub = pattern_to_subject("astrid", "a.*").unwrap();
    let subj = topic_to_subject("astrid", &topic).unwrap();
    assert!(nats_matches(&sub, &subj));
    assert!(!astrid_events::topic_pattern_matches("a.*", &topic));
    let ok = vec!["a"; depth].join(".");
    assert!(astrid_events::topic_pattern_matches("a.*", &ok));
}
