//! End-to-end tests of `astrid-bus pub`, `sub`, `keygen` and
//! `monitor --nats`: separate processes talking through a real `nats-server`
//! on a free loopback port.
//!
//! The server binary is `$NATS_SERVER_BIN` or `nats-server` on `PATH`; a
//! missing one fails the tests (install it with `.ci/install-nats`). The TLS
//! test makes its certificates with the `openssl` command.

use std::io::{BufRead as _, BufReader, Read as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use astrid_events::{AstridEvent, IpcMessage, IpcPayload};

/// Bound of every wait in these tests.
const DEADLINE: Duration = Duration::from_secs(15);

/// A `nats-server` child on a free loopback port, killed on drop.
struct Server {
    child: Child,
    port: u16,
}

fn free_loopback_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl Server {
    fn start() -> Self {
        Self::start_with(&[])
    }

    /// A server with `extra` command-line options.
    fn start_with(extra: &[&str]) -> Self {
        let bin = std::env::var_os("NATS_SERVER_BIN").unwrap_or_else(|| "nats-server".into());
        let mut last = String::new();
        // A port free when picked can be taken before the server binds it:
        // a few fresh ports.
        for _ in 0..3 {
            let port = free_loopback_port();
            let child = Command::new(&bin)
                .args(["-a", "127.0.0.1", "-p", &port.to_string()])
                .args(extra)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| {
                    panic!("cannot run {bin:?} ({e}): install it with .ci/install-nats")
                });
            let mut server = Self { child, port };
            match server.wait_accepting() {
                Ok(()) => return server,
                Err(e) => last = e,
            }
        }
        panic!("nats-server did not start: {last}");
    }

    fn wait_accepting(&mut self) -> Result<(), String> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let deadline = Instant::now() + DEADLINE;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("exited with {status} on port {}", self.port));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(format!("not accepting on port {} in time", self.port))
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The binary, with no `NATS_URL` or `RUST_LOG` from the caller's
/// environment (a test that wants one sets it).
fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_astrid-bus"));
    cmd.env_remove("NATS_URL").env_remove("RUST_LOG");
    cmd
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("astrid-bus runs")
}

fn assert_success(out: &Output) {
    assert!(
        out.status.success(),
        "{:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Asserts a failure reported as exactly one `error:` line mentioning
/// `needle`.
fn assert_one_line_error(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "expected failure: {stderr}");
    assert!(!stderr.contains("panicked"), "panicked: {stderr}");
    let lines: Vec<&str> = stderr.trim().lines().collect();
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    assert!(
        lines[0].to_lowercase().contains(&needle.to_lowercase()),
        "{needle:?} not in {stderr}"
    );
}

/// A running `astrid-bus sub` (or `monitor`), killed on drop.
struct Running {
    child: Child,
    stderr: mpsc::Receiver<String>,
    stdout: Option<ChildStdout>,
}

impl Running {
    /// Spawns `astrid-bus args` and waits (bounded) for its `subscribed`
    /// line on stderr.
    fn spawn_subscribed(args: &[&str]) -> Self {
        Self::spawn_subscribed_with(bin().args(args))
    }

    /// [`spawn_subscribed`](Self::spawn_subscribed) of a prepared command.
    fn spawn_subscribed_with(cmd: &mut Command) -> Self {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn astrid-bus");
        let (tx, stderr) = mpsc::channel();
        let err = child.stderr.take().expect("stderr piped");
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stdout = child.stdout.take();
        let running = Self {
            child,
            stderr,
            stdout,
        };
        // Warnings (a log line, e.g. a connection hiccup) may come first.
        let deadline = Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match running.stderr.recv_timeout(left) {
                Ok(line) if line.starts_with("subscribed ") => return running,
                Ok(line) if line.contains(" WARN ") => {}
                Ok(line) => panic!("unexpected stderr before subscribing: {line}"),
                Err(e) => panic!("no `subscribed` line in {DEADLINE:?}: {e}"),
            }
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

    /// Waits (bounded) for the exit; returns success, stdout and the rest of
    /// stderr.
    fn finish(mut self) -> (bool, String, String) {
        let deadline = Instant::now() + DEADLINE;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            assert!(Instant::now() < deadline, "did not exit in {DEADLINE:?}");
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut stdout = String::new();
        if let Some(mut out) = self.stdout.take() {
            out.read_to_string(&mut stdout).expect("read stdout");
        }
        // The reader thread ends at EOF, now that the child is gone.
        let stderr: Vec<String> =
            std::iter::from_fn(|| self.stderr.recv_timeout(DEADLINE).ok()).collect();
        (status.success(), stdout, stderr.join("\n"))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The IPC message of each JSON line of `stdout`.
fn messages(stdout: &str) -> Vec<IpcMessage> {
    stdout
        .lines()
        .map(|line| match serde_json::from_str::<AstridEvent>(line) {
            Ok(AstridEvent::Ipc { message, .. }) => message,
            Ok(other) => panic!("not IPC: {}", other.event_type()),
            Err(e) => panic!("not an AstridEvent ({e}): {line}"),
        })
        .collect()
}

fn payload_of(json: &str) -> IpcPayload {
    IpcPayload::from_json_value(serde_json::from_str(json).expect("test JSON"))
}

#[test]
fn sub_receives_what_two_pub_processes_send() {
    let server = Server::start();
    let url = server.url();
    let sub = Running::spawn_subscribed(&[
        "sub",
        "--nats",
        &url,
        "--allow-unsigned",
        "--count",
        "2",
        "--timeout-ms",
        "10000",
        "tool.v1.*",
    ]);
    let custom = r#"{"type":"custom","data":{"n":1}}"#;
    let typed = r#"{"type":"user_input","text":"hi","session_id":"s1"}"#;
    let untagged = r#"[1, "two", {"x": null}]"#;
    let sends = [
        // Not under tool.v1: never imported, so it cannot be one of the two.
        ("carol", "chat.v1.lobby", untagged),
        ("alice", "tool.v1.run", custom),
        ("bob", "tool.v1.fs.read", typed),
    ];
    for (principal, topic, json) in sends {
        let out = run(&["pub", "--nats", &url, "--principal", principal, topic, json]);
        assert_success(&out);
        assert!(out.stdout.is_empty() && out.stderr.is_empty());
    }
    let (ok, stdout, stderr) = sub.finish();
    assert!(ok, "sub failed: {stderr}");
    let got = messages(&stdout);
    assert_eq!(got.len(), 2, "{stdout}");
    for (principal, topic, json) in &sends[1..] {
        let m = got
            .iter()
            .find(|m| m.principal.as_deref() == Some(principal))
            .unwrap_or_else(|| panic!("nothing from {principal}: {stdout}"));
        assert_eq!(m.topic, *topic);
        assert_eq!(m.payload, payload_of(json));
        assert_eq!(m.signature, None, "pub without --sign-key is unsigned");
    }
    // A known tag became its typed payload.
    assert!(
        got.iter()
            .any(|m| matches!(&m.payload, IpcPayload::UserInput { text, .. } if text == "hi"))
    );
}

#[test]
fn signed_events_from_trusted_keys_only() {
    let server = Server::start();
    let url = server.url();
    let dir = tempfile::tempdir().expect("tempdir");
    let key = |name: &str| -> (String, String) {
        let path = dir.path().join(name);
        let out = run(&["keygen", path.to_str().expect("utf-8 path")]);
        assert_success(&out);
        let key_id = String::from_utf8(out.stdout).expect("utf-8");
        assert_eq!(key_id.trim().len(), 64, "public key hex: {key_id}");
        let secret = path.to_str().expect("utf-8").to_owned();
        (secret.clone(), format!("{secret}.pub"))
    };
    let (trusted_secret, trusted_public) = key("trusted");
    let (stranger_secret, _) = key("stranger");

    let sub = Running::spawn_subscribed(&[
        "sub",
        "--nats",
        &url,
        "--trust",
        &trusted_public,
        "--count",
        "1",
        "--timeout-ms",
        "10000",
        "tool.v1.*",
    ]);
    let json = r#"{"type":"custom","data":{"n":2}}"#;
    let pubs: [(&str, &[&str]); 3] = [
        ("mallory", &["--sign-key", &stranger_secret]),
        ("eve", &[]),
        (
            "alice",
            &["--sign-key", &trusted_secret, "--node-id", "cli-a"],
        ),
    ];
    for (principal, extra) in pubs {
        let mut args = vec!["pub", "--nats", &url, "--principal", principal];
        args.extend_from_slice(extra);
        args.extend(["tool.v1.run", json]);
        assert_success(&run(&args));
    }
    let (ok, stdout, stderr) = sub.finish();
    assert!(ok, "sub failed: {stderr}");
    let got = messages(&stdout);
    assert_eq!(got.len(), 1, "{stdout}");
    assert_eq!(got[0].principal.as_deref(), Some("alice"));
    assert_eq!(got[0].payload, payload_of(json));
    assert_eq!(got[0].signature.as_ref().map(Vec::len), Some(64));
}

#[test]
fn sub_times_out_naming_what_it_received() {
    let server = Server::start();
    let url = server.url();
    let base = [
        "sub",
        "--nats",
        &url,
        "--allow-unsigned",
        "--timeout-ms",
        "300",
    ];

    // Without --count a timeout is the normal end.
    let sub = Running::spawn_subscribed(&[&base[..], &["tool.v1.*"]].concat());
    let (ok, stdout, stderr) = sub.finish();
    assert!(ok, "{stderr}");
    assert!(stdout.is_empty());

    // With --count it is a failure that says how far it got.
    let sub = Running::spawn_subscribed(&[&base[..], &["--count", "3", "tool.v1.*"]].concat());
    let (ok, stdout, stderr) = sub.finish();
    assert!(!ok);
    assert!(stdout.is_empty());
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: timed out after 300 ms: received 0 of 3 events"),
        "{stderr}"
    );
}

#[test]
fn monitor_renders_remote_traffic() {
    let server = Server::start();
    let url = server.url();
    let monitor = Running::spawn_subscribed(&[
        "monitor",
        "--nats",
        &url,
        "--allow-unsigned",
        "--seconds",
        "2",
    ]);
    for topic in ["tool.v1.run", "tool.v1.run", "solo"] {
        assert_success(&run(&["pub", "--nats", &url, topic, "{}"]));
    }
    let (ok, stdout, stderr) = monitor.finish();
    assert!(ok, "{stderr}");
    assert!(stdout.contains("top topics by rate"), "{stdout}");
    // Both a one-segment and a deeper topic are imported by default.
    assert!(stdout.contains("tool.v1.run"), "{stdout}");
    assert!(stdout.contains("solo"), "{stdout}");
    let last = stdout.lines().last().unwrap_or_default();
    assert!(last.starts_with("nats: imported 3 "), "{last}");
}

/// `sub` without `--count` and `monitor --nats` end on SIGTERM as on
/// Ctrl-C: exit 0, with what they print at a normal end.
#[test]
fn sub_and_monitor_stop_cleanly_on_sigterm() {
    let server = Server::start();
    let url = server.url();
    let sub = Running::spawn_subscribed(&["sub", "--nats", &url, "--allow-unsigned", "tool.v1.*"]);
    let monitor = Running::spawn_subscribed(&[
        "monitor",
        "--nats",
        &url,
        "--allow-unsigned",
        "--seconds",
        "600",
    ]);
    sub.signal("TERM");
    let (ok, stdout, stderr) = sub.finish();
    assert!(ok, "sub after SIGTERM: {stderr}");
    assert!(!stderr.contains("error:"), "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    monitor.signal("TERM");
    let (ok, stdout, stderr) = monitor.finish();
    assert!(ok, "monitor after SIGTERM: {stderr}");
    // The final table and bridge line are printed on the way out.
    let last = stdout.lines().last().unwrap_or_default();
    assert!(last.starts_with("nats: imported 0 "), "{last}");
}

/// A loopback port with nothing listening.
fn closed_port_url() -> String {
    format!("nats://127.0.0.1:{}", free_loopback_port())
}

#[test]
fn bad_input_is_a_one_line_error() {
    let url = closed_port_url();
    let publish = |args: &[&str]| run(&[&["pub", "--nats", &url][..], args].concat());
    assert_one_line_error(&publish(&["tool.v1.run", "{not json"]), "not valid JSON");
    assert_one_line_error(&publish(&["tool..run", "{}"]), "invalid topic");
    assert_one_line_error(&publish(&["tool.*", "{}"]), "invalid topic");
    assert_one_line_error(
        &publish(&["--principal", "al\u{7}ice", "tool.v1.run", "{}"]),
        "--principal",
    );
    assert_one_line_error(&publish(&["tool.v1.run", "{}"]), "cannot bridge to NATS");
    assert_one_line_error(
        &publish(&["--sign-key", "/nonexistent/key", "tool.v1.run", "{}"]),
        "/nonexistent/key",
    );
    let sub = |args: &[&str]| run(&[&["sub", "--nats", &url, "--count", "1"][..], args].concat());
    assert_one_line_error(&sub(&["tool.v1.*"]), "--allow-unsigned");
    assert_one_line_error(&sub(&["--allow-unsigned", "tool.*x"]), "invalid pattern");
    assert_one_line_error(&sub(&["--allow-unsigned", "tool.v1.*"]), "cannot bridge");
    assert_one_line_error(
        &run(&[
            "monitor",
            "--nats",
            &url,
            "--allow-unsigned",
            "--seconds",
            "1",
        ]),
        "cannot bridge",
    );
}

#[test]
fn key_files_are_checked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("k");
    let secret = path.to_str().expect("utf-8");
    assert_success(&run(&["keygen", secret]));
    assert_one_line_error(&run(&["keygen", secret]), "already exists");
    let url = closed_port_url();
    // A secret key handed to --trust is refused before connecting.
    assert_one_line_error(
        &run(&["sub", "--nats", &url, "--trust", secret, "x"]),
        "is a secret key",
    );
    let public = format!("{secret}.pub");
    assert_one_line_error(
        &run(&["pub", "--nats", &url, "--sign-key", &public, "x", "{}"]),
        "is a public key",
    );
    assert!(Path::new(&public).exists());
}

/// `pub` takes its payload from argv, from stdin (`-`) and from a file
/// (`@FILE`); all three arrive as the same typed payload.
#[test]
fn pub_reads_the_payload_from_stdin_and_files() {
    let server = Server::start();
    let url = server.url();
    let mut sub = Running::spawn_subscribed(&[
        "sub",
        "--nats",
        &url,
        "--allow-unsigned",
        "--count",
        "2",
        "--timeout-ms",
        "10000",
        "tool.v1.*",
    ]);
    // Read while it runs: its lines are larger than a pipe's buffer.
    let mut pipe = sub.stdout.take().expect("stdout piped");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        pipe.read_to_string(&mut text).map(|_| text)
    });
    // Larger than one command-line argument may be (128 KiB on Linux), and
    // typed.
    let text = "x".repeat(200_000);
    let json = serde_json::json!({"type": "user_input", "text": text, "session_id": "s"});
    let json = json.to_string();

    let mut child = bin()
        .args([
            "pub",
            "--nats",
            &url,
            "--principal",
            "stdin",
            "tool.v1.in",
            "-",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn pub");
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().expect("stdin piped");
        stdin.write_all(json.as_bytes()).expect("write stdin");
    }
    let out = child.wait_with_output().expect("pub ends");
    assert_success(&out);

    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("payload.json");
    std::fs::write(&file, &json).expect("write payload file");
    let at_file = format!("@{}", file.display());
    assert_success(&run(&[
        "pub",
        "--nats",
        &url,
        "--principal",
        "file",
        "tool.v1.in",
        &at_file,
    ]));

    let (ok, _, stderr) = sub.finish();
    assert!(ok, "sub failed: {stderr}");
    let stdout = reader.join().expect("reader thread").expect("read stdout");
    let got = messages(&stdout);
    assert_eq!(got.len(), 2, "{stderr}");
    for principal in ["stdin", "file"] {
        let m = got
            .iter()
            .find(|m| m.principal.as_deref() == Some(principal))
            .unwrap_or_else(|| panic!("nothing from {principal}"));
        assert_eq!(m.payload, payload_of(&json), "from {principal}");
    }

    // Bad sources are one-line errors, before anything is sent.
    let missing = format!("@{}", dir.path().join("missing.json").display());
    assert_one_line_error(
        &run(&["pub", "--nats", &url, "tool.v1.in", &missing]),
        "missing.json",
    );
    std::fs::write(&file, "{not json").expect("write bad payload");
    assert_one_line_error(
        &run(&["pub", "--nats", &url, "tool.v1.in", &at_file]),
        "not valid JSON",
    );
}

/// `NATS_URL` stands in for `--nats` in `pub`, `sub` and `monitor`.
#[test]
fn nats_url_comes_from_the_environment() {
    let server = Server::start();
    let url = server.url();
    let sub = Running::spawn_subscribed_with(bin().env("NATS_URL", &url).args([
        "sub",
        "--allow-unsigned",
        "--count",
        "1",
        "--timeout-ms",
        "10000",
        "env.*",
    ]));
    let monitor = Running::spawn_subscribed_with(bin().env("NATS_URL", &url).args([
        "monitor",
        "--allow-unsigned",
        "--pattern",
        "env.*",
    ]));
    let out = bin()
        .env("NATS_URL", &url)
        .args(["pub", "env.v1", r#"{"n":1}"#])
        .output()
        .expect("pub runs");
    assert_success(&out);
    let (ok, stdout, stderr) = sub.finish();
    assert!(ok, "sub failed: {stderr}");
    assert_eq!(messages(&stdout).len(), 1, "{stdout}");
    monitor.signal("TERM");
    let (ok, stdout, stderr) = monitor.finish();
    assert!(ok, "monitor failed: {stderr}");
    let last = stdout.lines().last().unwrap_or_default();
    assert!(last.starts_with("nats: imported 1 "), "{last}");

    // --nats wins over the environment.
    let out = bin()
        .env("NATS_URL", &url)
        .args(["pub", "--nats", &closed_port_url(), "env.v1", "{}"])
        .output()
        .expect("pub runs");
    assert_one_line_error(&out, "cannot bridge");
    // The URL (and any password in it) is not printed in --help.
    let secret_url = format!("nats://user:hunter2@127.0.0.1:{}", server.port);
    let help = bin()
        .env("NATS_URL", &secret_url)
        .args(["sub", "--help"])
        .output()
        .expect("help runs");
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("NATS_URL"), "{help}");
    assert!(!help.contains("hunter2"), "{help}");
}

/// A reader that goes away (`sub ... | head -1`) ends `sub` quietly: exit
/// 0, no error.
#[test]
fn sub_ends_quietly_when_its_reader_goes_away() {
    let server = Server::start();
    let url = server.url();
    let mut sub = Running::spawn_subscribed(&["sub", "--nats", &url, "--allow-unsigned", "pipe.*"]);
    // Close the read end of its stdout: the next line it writes fails.
    drop(sub.stdout.take());
    assert_success(&run(&["pub", "--nats", &url, "pipe.v1", "{}"]));
    let (ok, _, stderr) = sub.finish();
    assert!(ok, "exit after a closed pipe: {stderr}");
    assert!(!stderr.contains("error"), "{stderr}");
}

/// A signature rejection is a warning on stderr under the library's
/// security target, seen without any logging option.
#[test]
fn signature_rejections_are_security_warnings() {
    let server = Server::start();
    let url = server.url();
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("k");
    let key = key.to_str().expect("utf-8 path");
    assert_success(&run(&["keygen", key]));
    let public = format!("{key}.pub");
    let sub = Running::spawn_subscribed(&["sub", "--nats", &url, "--trust", &public, "sec.*"]);
    // Unsigned, so rejected.
    assert_success(&run(&["pub", "--nats", &url, "sec.v1", "{}"]));
    let deadline = Instant::now() + DEADLINE;
    let warning = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match sub.stderr.recv_timeout(left) {
            Ok(line) if line.contains("astrid_events::security") => break line,
            Ok(_) => {}
            Err(e) => panic!("no security warning in {DEADLINE:?}: {e}"),
        }
    };
    assert!(warning.contains("WARN"), "{warning}");
    assert!(warning.contains("signature policy"), "{warning}");
    sub.signal("TERM");
    let (ok, stdout, stderr) = sub.finish();
    assert!(ok, "{stderr}");
    assert!(stdout.is_empty(), "nothing delivered: {stdout}");
}

/// Runs `openssl args` in `dir`; the test fails if it cannot.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run openssl ({e}): install it"));
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `--tlsca` trusts a private CA: against a TLS-only server, `pub` and
/// `sub` with it work; without it the connection is refused as untrusted.
/// `--creds` with a missing file is a one-line error naming it.
#[test]
fn tlsca_trusts_a_private_ca() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    openssl(
        d,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "1",
            "-subj",
            "/CN=astrid-test-ca",
        ],
    );
    openssl(
        d,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(d.join("ext.cnf"), "subjectAltName=IP:127.0.0.1\n").expect("write ext");
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "1",
            "-extfile",
            "ext.cnf",
        ],
    );
    let path = |f: &str| d.join(f).to_str().expect("utf-8 path").to_owned();
    let (cert, key, ca) = (path("server.pem"), path("server.key"), path("ca.pem"));
    let server = Server::start_with(&["--tls", "--tlscert", &cert, "--tlskey", &key]);
    let url = server.url();

    let sub = Running::spawn_subscribed(&[
        "sub",
        "--nats",
        &url,
        "--tlsca",
        &ca,
        "--allow-unsigned",
        "--count",
        "1",
        "--timeout-ms",
        "10000",
        "tls.*",
    ]);
    assert_success(&run(&[
        "pub",
        "--nats",
        &url,
        "--tlsca",
        &ca,
        "tls.v1",
        r#"{"n":1}"#,
    ]));
    let (ok, stdout, stderr) = sub.finish();
    assert!(ok, "sub over TLS: {stderr}");
    assert_eq!(messages(&stdout).len(), 1, "{stdout}");

    // Without the CA the server's certificate is not trusted.
    assert_one_line_error(
        &run(&["pub", "--nats", &url, "tls.v1", "{}"]),
        "certificate",
    );
    assert_one_line_error(
        &run(&[
            "pub",
            "--nats",
            &url,
            "--creds",
            "/nonexistent/x.creds",
            "tls.v1",
            "{}",
        ]),
        "/nonexistent/x.creds",
    );
}
