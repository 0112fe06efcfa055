//! End-to-end tests of the `astrid-bus` binary.

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_astrid-bus"))
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("binary runs")
}

/// Asserts a failed run with a one-line error that mentions `needle`.
fn assert_one_line_error(out: &Output, needle: &str) {
    assert!(
        !out.status.success(),
        "expected failure, got {:?}",
        out.status
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "panicked: {stderr}");
    assert!(
        stderr.to_lowercase().contains(&needle.to_lowercase()),
        "stderr does not mention {needle:?}: {stderr}"
    );
    // clap prints usage hints after its error line; the first line says it all.
    let first = stderr.lines().next().unwrap_or_default();
    assert!(first.starts_with("error:"), "first line: {first}");
}

#[test]
fn demo_json_accounts_for_every_event() {
    let out = run(&["demo", "--seconds", "2", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    assert_eq!(stdout.trim().lines().count(), 1, "one JSON object only");
    let r: serde_json::Value = serde_json::from_str(&stdout).expect("JSON report");
    assert_eq!(r["lost_without_record"], 0);
    assert_eq!(r["unexpected_deliveries"], 0);
    assert!(r["published_total"].as_u64().unwrap_or(0) > 1000);
    assert!(r["routed_subscriptions"].as_u64().unwrap_or(0) >= 3000);
    assert!(r["publish_throughput_per_second"].as_f64().unwrap_or(0.0) > 0.0);
    assert!(r["latency_us"]["p99"].as_f64().unwrap_or(0.0) > 0.0);
    assert_eq!(r["late_joiner"]["got_retained_active_model"], true);
    // The runaway overflowed its route: evictions were reported, not lost.
    assert!(r["evicted_or_rejected_total"].as_u64().unwrap_or(0) > 0);
    let receivers = r["receivers"].as_array().expect("receivers");
    assert!(receivers.iter().all(|g| g["lost_without_record"] == 0));
    let delivered: u64 = receivers
        .iter()
        .filter_map(|g| g["delivered"].as_u64())
        .sum();
    assert_eq!(r["delivered_total"].as_u64(), Some(delivered));
    let jain = r["flooded_route"]["jain_index"]
        .as_f64()
        .expect("jain index");
    assert!(jain > 0.0 && jain <= 1.0 + 1e-9);
}

#[test]
fn plot_writes_an_svg_chart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("demo.svg");
    let out = run(&[
        "demo",
        "--seconds",
        "1",
        "--plot",
        path.to_str().expect("utf-8 path"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let svg = std::fs::read_to_string(&path).expect("svg written");
    assert!(svg.starts_with("<svg") || svg.starts_with("<?xml"));
    assert!(svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains("Publish throughput"));
    assert!(svg.contains("agent.runaway"));
    assert!(svg.matches("<polyline").count() >= 2);
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn scrape(port: u16) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    body.starts_with("HTTP/1.1 200").then_some(body)
}

/// Distinct values of `label` in the exposition text.
fn label_values(text: &str, label: &str) -> std::collections::BTreeSet<String> {
    let key = format!("{label}=\"");
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let start = l.find(&key)? + key.len();
            let end = l[start..].find('"')? + start;
            Some(l[start..end].to_owned())
        })
        .collect()
}

#[test]
fn metrics_endpoint_serves_bounded_bus_metrics() {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut child = bin()
        .args([
            "demo",
            "--seconds",
            "3",
            "--capsules",
            "10",
            "--json",
            "--metrics-addr",
            &addr,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut text = None;
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(300));
        if let Some(body) = scrape(port)
            && body.contains("astrid_capsule_route_byte_evictions_total")
        {
            text = Some(body);
            break;
        }
    }
    let status = child.wait().expect("demo ends");
    let text = text.expect("metrics scraped while the demo ran");
    assert!(status.success());
    for name in [
        "astrid_bus_events_published_total",
        "astrid_capsule_route_byte_evictions_total",
        "astrid_capsule_route_budget_bytes_in_use",
        "astrid_capsule_route_active_principals",
    ] {
        assert!(text.contains(name), "{name} missing");
    }
    let capsules = label_values(&text, "capsule");
    assert!(!capsules.is_empty() && capsules.len() <= 10, "{capsules:?}");
    let classes = label_values(&text, "principal_class");
    assert!(
        classes
            .iter()
            .all(|c| ["system", "agent", "user"].contains(&c.as_str())),
        "{classes:?}"
    );
}

#[test]
fn port_in_use_is_a_one_line_error() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let out = run(&["demo", "--seconds", "1", "--metrics-addr", &addr]);
    assert_one_line_error(&out, &addr);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim().lines().count(),
        1
    );
}

#[test]
fn bad_input_is_a_one_line_error() {
    assert_one_line_error(&run(&["demo", "--seconds", "0"]), "--seconds");
    assert_one_line_error(&run(&["demo", "--capsules", "0"]), "--capsules");
    assert_one_line_error(&run(&["demo", "--principals", "0"]), "--principals");
    assert_one_line_error(&run(&["demo", "--frobnicate"]), "--frobnicate");
    assert_one_line_error(
        &run(&["demo", "--metrics-addr", "nowhere"]),
        "--metrics-addr",
    );
    assert_one_line_error(&run(&["monitor"]), "--demo");
    let out = run(&["demo", "--seconds", "1", "--plot", "/nonexistent-dir/x.svg"]);
    assert_one_line_error(&out, "/nonexistent-dir/x.svg");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim().lines().count(),
        1
    );
    assert!(out.stdout.is_empty(), "nothing ran");
}

#[test]
fn monitor_demo_renders_tables() {
    let out = run(&["monitor", "--demo", "--seconds", "2"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("top topics by rate"));
    assert!(stdout.contains("evictions by capsule"));
    // The flooded topic is the heaviest hitter: always tracked.
    assert!(stdout.contains("chat.v1.lobby.message"));
    // Evictions are recorded under the capsule label of the flooded route.
    assert!(stdout.contains("capsule-2"));
}

/// Ctrl-C (SIGINT) in the middle of a long demo still prints the report of
/// what ran, marked as interrupted, with nothing lost without record.
#[test]
fn interrupt_prints_the_report_so_far() {
    use std::io::BufRead as _;
    let mut child = bin()
        .args(["demo", "--seconds", "600", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary runs");
    // Wait (bounded) for the first progress line: the run is under way.
    let stderr = child.stderr.take().expect("stderr piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let started = rx.recv_timeout(Duration::from_secs(60));
    assert!(started.is_ok(), "the demo printed no progress");
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(60);
    let exit = loop {
        if let Some(exit) = child.try_wait().expect("wait") {
            break exit;
        }
        assert!(Instant::now() < deadline, "demo did not stop after SIGINT");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .expect("stdout piped")
        .read_to_string(&mut stdout)
        .expect("read stdout");
    assert!(exit.success(), "exit {exit:?}, stdout {stdout}");
    let r: serde_json::Value = serde_json::from_str(stdout.trim()).expect("JSON report");
    assert_eq!(r["interrupted"], true);
    assert_eq!(r["lost_without_record"], 0);
    assert!(r["publish_seconds"].as_f64().unwrap_or(600.0) < 590.0);
}
