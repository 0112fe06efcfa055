//! End-to-end tests of the `astrid-bus` binary.

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The binary, with no `NATS_URL`, `RUST_LOG`, `NO_COLOR` or
/// `CLICOLOR_FORCE` from the caller's environment (a test that wants one
/// sets it).
fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_astrid-bus"));
    for var in ["NATS_URL", "RUST_LOG", "NO_COLOR", "CLICOLOR_FORCE"] {
        cmd.env_remove(var);
    }
    cmd
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
    get(port, "/metrics")
}

/// The whole response to `GET path`, if it is a 200.
fn get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
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
    let health = get(port, "/health");
    let status = child.wait().expect("demo ends");
    let text = text.expect("metrics scraped while the demo ran");
    assert!(status.success());
    // Liveness: 200 and the body `OK`.
    let health = health.expect("/health answered while the demo ran");
    assert!(health.trim_end().ends_with("\r\n\r\nOK"), "{health}");
    // Every metric has a help text (`# HELP`) beside its type.
    let typed: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(typed.len() >= 4, "{text}");
    for name in typed {
        assert!(
            text.lines()
                .any(|l| l.starts_with(&format!("# HELP {name} ")) && l.len() > name.len() + 20),
            "{name} has no # HELP line"
        );
    }
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
    let demo = Running::spawn(&["-v", "demo", "--seconds", "600", "--json"]);
    // The info line that the run is under way (the handlers are installed
    // before it is logged).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match demo.stderr.recv_timeout(left) {
            Ok(line) if line.contains("demo publishing") => break,
            Ok(_) => {}
            Err(e) => panic!("the demo logged no start: {e}"),
        }
    }
    demo.signal(signal);
    let (exit, stdout, stderr) = demo.finish();
    let stdout = stdout.join("\n");
    assert!(
        exit.success(),
        "exit {exit:?} after SIG{signal}, stdout {stdout}, stderr {stderr}"
    );
    assert!(!stderr.contains("error:"), "{stderr}");
    assert!(!stderr.contains("ERROR"), "{stderr}");
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

/// `monitor --demo` without --seconds runs until stopped; SIGTERM ends it
/// like a deadline: the last table is printed and the exit is 0.
#[test]
fn monitor_demo_runs_until_sigterm_then_prints_its_last_table() {
    let monitor = Running::spawn(&["monitor", "--demo"]);
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

/// `--version` names the version and whether the NATS verbs are built in.
#[test]
fn version_names_the_build() {
    let out = run(&["--version"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let expected = format!("astrid-bus {}", env!("CARGO_PKG_VERSION"));
    assert!(text.starts_with(&expected), "{text}");
    let built_in = text.contains("NATS verbs: built in");
    assert_eq!(built_in, cfg!(feature = "nats"), "{text}");
}

/// `--help` documents the exit codes and logging.
#[test]
fn help_documents_exit_codes() {
    let out = run(&["--help"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "Exit codes:",
        "\n  0  ",
        "\n  1  ",
        "\n  2  ",
        "RUST_LOG",
        "NO_COLOR",
    ] {
        assert!(text.contains(needle), "{needle:?} missing: {text}");
    }
}

/// `NO_COLOR` turns colour off even where colour is forced.
#[test]
fn no_color_turns_colour_off() {
    let colored = |no_color: bool| {
        let mut cmd = bin();
        cmd.env("CLICOLOR_FORCE", "1").arg("--help");
        if no_color {
            cmd.env("NO_COLOR", "1");
        }
        let out = cmd.output().expect("binary runs");
        assert!(out.status.success());
        out.stdout.contains(&0x1b)
    };
    // The check can fail: forced colour does colour the help.
    assert!(colored(false), "CLICOLOR_FORCE=1 gave no colour");
    assert!(!colored(true), "NO_COLOR=1 left colour in");
}

/// A reader that goes away before the report ends the demo quietly: exit
/// 0, no error.
#[test]
fn demo_ends_quietly_when_its_reader_goes_away() {
    let mut child = bin()
        .args(["demo", "--seconds", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("demo ends");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {stderr}", out.status);
    assert!(!stderr.contains("error"), "{stderr}");
}

/// `monitor --demo` (which runs until stopped) ends its load once nobody
/// reads its tables: exit 0.
#[test]
fn monitor_ends_when_its_reader_goes_away() {
    let mut child = bin()
        .args(["monitor", "--demo"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    drop(child.stdout.take());
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("monitor kept running after its reader went away");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    if let Some(mut err) = child.stderr.take() {
        err.read_to_string(&mut stderr).expect("read stderr");
    }
    assert!(status.success(), "{status:?}: {stderr}");
    assert!(!stderr.contains("error"), "{stderr}");
}

/// The demo's deliberate overflows are security warnings: left out by
/// default (the report counts them), shown with `RUST_LOG`.
#[test]
fn demo_security_warnings_follow_the_log_filter() {
    let evicted = |stdout: &[u8]| {
        let r: serde_json::Value = serde_json::from_slice(stdout).expect("JSON report");
        r["evicted_or_rejected_total"].as_u64().unwrap_or(0)
    };
    let quiet = run(&["demo", "--seconds", "3", "--json"]);
    assert!(quiet.status.success());
    // There were overflows to warn about...
    assert!(evicted(&quiet.stdout) > 0);
    // ...and no warning by default.
    let stderr = String::from_utf8_lossy(&quiet.stderr);
    assert!(!stderr.contains("astrid_events::security"), "{stderr}");

    let out = bin()
        .env("RUST_LOG", "astrid_events::security=warn")
        .args(["demo", "--seconds", "3", "--json"])
        .output()
        .expect("binary runs");
    assert!(out.status.success());
    assert!(evicted(&out.stdout) > 0);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("WARN astrid_events::security")),
        "{stderr}"
    );
}

/// Without the `nats` feature a NATS verb is a one-line error that says how
/// to build it.
#[cfg(not(feature = "nats"))]
#[test]
fn nats_verbs_say_how_to_build_them() {
    let out = run(&["pub", "--nats", "nats://127.0.0.1:1", "a.b", "{}"]);
    assert_one_line_error(&out, "--features nats");
    let out = run(&["monitor", "--nats", "nats://127.0.0.1:1", "--seconds", "1"]);
    assert_one_line_error(&out, "--features nats");
}
