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

/// A running `astrid-bus` child whose output lines are read by threads, so
/// a test can wait (bounded) for the line that shows the command is under
/// way before it signals.
struct Running {
    child: std::process::Child,
    stdout: std::sync::mpsc::Receiver<String>,
    stderr: std::sync::mpsc::Receiver<String>,
}

/// Forwards each line of `pipe` to the returned channel until EOF.
fn lines_of(pipe: impl std::io::Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead as _;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

impl Running {
    fn spawn(args: &[&str]) -> Self {
        let mut child = bin()
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("binary runs");
        let stdout = lines_of(child.stdout.take().expect("stdout piped"));
        let stderr = lines_of(child.stderr.take().expect("stderr piped"));
        Self {
            child,
            stdout,
            stderr,
        }
    }

    /// Sends `signal` (a `kill` name: `INT`, `TERM`) to the child.
    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([format!("-{signal}"), self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Waits (bounded) for the exit; returns the status, the stdout lines
    /// not yet taken and all of stderr not yet taken.
    fn finish(mut self) -> (std::process::ExitStatus, Vec<String>, String) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            assert!(Instant::now() < deadline, "did not stop after the signal");
            std::thread::sleep(Duration::from_millis(20));
        };
        // The reader threads end at EOF, now that the child is gone.
        let rest = |rx: &std::sync::mpsc::Receiver<String>| -> Vec<String> {
            std::iter::from_fn(|| rx.recv_timeout(Duration::from_secs(10)).ok()).collect()
        };
        let stdout = rest(&self.stdout);
        let stderr = rest(&self.stderr).join("\n");
        (status, stdout, stderr)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A stop signal in the middle of a long demo still prints the report of
/// what ran, marked as interrupted, with nothing lost without record, and
/// the demo exits 0.
fn demo_stopped_by(signal: &str) {
    let demo = Running::spawn(&["demo", "--seconds", "600", "--json"]);
    // The first progress line: the run is under way (and the handlers are
    // installed before it is printed).
    let started = demo.stderr.recv_timeout(Duration::from_secs(60));
    assert!(started.is_ok(), "the demo printed no progress");
    demo.signal(signal);
    let (exit, stdout, stderr) = demo.finish();
    let stdout = stdout.join("\n");
    assert!(
        exit.success(),
        "exit {exit:?} after SIG{signal}, stdout {stdout}, stderr {stderr}"
    );
    assert!(!stderr.contains("error:"), "{stderr}");
    let r: serde_json::Value = serde_json::from_str(stdout.trim()).expect("JSON report");
    assert_eq!(r["interrupted"], true);
    assert_eq!(r["lost_without_record"], 0);
    assert!(r["publish_seconds"].as_f64().unwrap_or(600.0) < 590.0);
}

/// Ctrl-C (SIGINT).
#[test]
fn sigint_prints_the_report_so_far() {
    demo_stopped_by("INT");
}

/// SIGTERM (`kill`, systemd, container runtimes) is handled like Ctrl-C.
#[test]
fn sigterm_prints_the_report_so_far() {
    demo_stopped_by("TERM");
}

/// `monitor --demo` ends on SIGTERM like at its deadline: the last table is
/// printed and the exit is 0.
#[test]
fn monitor_demo_stops_on_sigterm_with_its_last_table() {
    let monitor = Running::spawn(&["monitor", "--demo", "--seconds", "600"]);
    // The first table: the demo runs.
    let first = monitor.stdout.recv_timeout(Duration::from_secs(60));
    assert!(
        first.as_deref().is_ok_and(|l| l.starts_with("uptime ")),
        "no table: {first:?}"
    );
    monitor.signal("TERM");
    let (exit, stdout, stderr) = monitor.finish();
    assert!(
        exit.success(),
        "exit {exit:?} after SIGTERM, stderr {stderr}"
    );
    // The output ends with a whole table (the final snapshot).
    let last_table = stdout
        .iter()
        .rposition(|l| l.starts_with("uptime "))
        .expect("a table after the first");
    assert!(
        stdout[last_table..]
            .iter()
            .any(|l| l.contains("evictions by capsule")),
        "{stdout:?}"
    );
}
