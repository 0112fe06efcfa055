//! Test support: a real `nats-server` on a free loopback port.
//!
//! The binary is `$NATS_SERVER_BIN` or `nats-server` on `PATH` (install it with
//! `.ci/install-nats`). A missing binary fails the test loudly; it is never
//! skipped silently.
#![allow(dead_code, missing_docs)]

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

pub mod cluster;
pub mod events;
pub mod raw;

/// How long a server gets to start accepting connections.
const READY_DEADLINE: Duration = Duration::from_secs(15);

/// A running `nats-server`, killed on drop.
pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    jetstream: bool,
    dir: TempDir,
    starts: u32,
    extra: Vec<String>,
}

pub(crate) fn free_loopback_port() -> u16 {
    let l = TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

pub(crate) fn binary() -> PathBuf {
    std::env::var_os("NATS_SERVER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("nats-server"))
}

impl NatsServer {
    /// Core NATS server.
    pub fn start() -> Self {
        Self::start_with(false)
    }

    /// Server with JetStream, storing in a temporary directory that survives
    /// restarts of this server.
    pub fn start_jetstream() -> Self {
        Self::start_with(true)
    }

    /// Core NATS server with extra command-line arguments (e.g. `--auth`).
    pub fn start_with_args(args: &[&str]) -> Self {
        Self::start_full(false, args.iter().map(|a| (*a).to_owned()).collect())
    }

    /// Server with JetStream (as [`start_jetstream`](Self::start_jetstream))
    /// and extra command-line arguments (e.g. `-c <config>`).
    pub fn start_jetstream_with_args(args: &[&str]) -> Self {
        Self::start_full(true, args.iter().map(|a| (*a).to_owned()).collect())
    }

    fn start_with(jetstream: bool) -> Self {
        Self::start_full(jetstream, Vec::new())
    }

    fn start_full(jetstream: bool, extra: Vec<String>) -> Self {
        let mut dir = tempfile::tempdir().expect("tempdir");
        let mut last_err = String::new();
        // The port is free when picked but may be taken before the server
        // binds it; retry a few times with a fresh port.
        for _ in 0..5 {
            let mut s = Self {
                child: None,
                port: free_loopback_port(),
                jetstream,
                dir,
                starts: 0,
                extra: extra.clone(),
            };
            match s.spawn() {
                Ok(()) => return s,
                Err(e) => {
                    last_err = e;
                    dir = s.take_dir();
                }
            }
        }
        panic!("nats-server did not start: {last_err}");
    }

    fn take_dir(mut self) -> TempDir {
        self.kill();
        std::mem::replace(&mut self.dir, tempfile::tempdir().expect("tempdir"))
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join(format!("server-{}.log", self.starts))
    }

    fn spawn(&mut self) -> Result<(), String> {
        self.starts += 1;
        let log = File::create(self.log_path()).map_err(|e| e.to_string())?;
        let mut cmd = Command::new(binary());
        cmd.args(["-a", "127.0.0.1", "-p", &self.port.to_string()]);
        cmd.args(&self.extra);
        if self.jetstream {
            cmd.arg("-js").arg("-sd").arg(self.dir.path().join("js"));
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log));
        let child = cmd
            .spawn()
            .map_err(|e| format!("spawning {:?} (run .ci/install-nats): {e}", binary()))?;
        self.child = Some(child);
        self.wait_ready()
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let addr = SocketAddrV4::new(Ipv4Addr::LOCALHOST, self.port).into();
        let deadline = Instant::now() + READY_DEADLINE;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
                return Err(format!("exited with {status}: {log}"));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                self.kill();
                return Err(format!("not accepting on port {} in time", self.port));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The loopback port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server (kill and reap); the port and store dir are kept.
    pub fn stop(&mut self) {
        self.kill();
    }

    /// Whether the server process is running.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Starts the server again on the same port and store dir; stops it
    /// first if it is running.
    pub fn restart(&mut self) {
        self.kill();
        // The same port was just released by our own process; a short bounded
        // retry covers the kernel releasing the listening socket.
        let deadline = Instant::now() + READY_DEADLINE;
        loop {
            match self.spawn() {
                Ok(()) => return,
                Err(e) if Instant::now() >= deadline => panic!("restart failed: {e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls `cond` every 10 ms until it holds or `timeout` passes.
pub async fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
