//! Test support: a 3-node `nats-server` cluster with JetStream on free
//! loopback ports (client and route listeners), each node storing in its own
//! temporary directory.

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::{binary, free_loopback_port};

/// How long the cluster gets to accept connections and elect a JetStream
/// meta leader able to place a 3-replica stream.
const READY_DEADLINE: Duration = Duration::from_secs(30);

/// Name of the cluster (`--cluster_name`).
const CLUSTER_NAME: &str = "astrid-test";

struct Node {
    name: String,
    client_port: u16,
    child: Option<Child>,
}

/// A running 3-node cluster; every node is killed on drop.
pub struct NatsCluster {
    nodes: Vec<Node>,
    dir: TempDir,
}

impl NatsCluster {
    /// Starts 3 routed JetStream nodes (`n1`..`n3`) and waits until a
    /// 3-replica stream can be created (meta leader elected, every peer
    /// known).
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let client_ports: Vec<u16> = (0..3).map(|_| free_loopback_port()).collect();
        let route_ports: Vec<u16> = (0..3).map(|_| free_loopback_port()).collect();
        let routes = route_ports
            .iter()
            .map(|p| format!("nats://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut nodes = Vec::new();
        for i in 0..3 {
            let name = format!("n{}", i + 1);
            let log = File::create(dir.path().join(format!("{name}.log"))).expect("log file");
            let child = Command::new(binary())
                .args(["-a", "127.0.0.1", "-p", &client_ports[i].to_string()])
                .args(["--server_name", &name])
                .arg("-js")
                .arg("-sd")
                .arg(dir.path().join(&name))
                .args(["--cluster_name", CLUSTER_NAME])
                .args(["--cluster", &format!("nats://127.0.0.1:{}", route_ports[i])])
                .args(["--routes", &routes])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::from(log))
                .spawn()
                .unwrap_or_else(|e| panic!("spawning {:?} (run .ci/install-nats): {e}", binary()));
            nodes.push(Node {
                name,
                client_port: client_ports[i],
                child: Some(child),
            });
        }
        let cluster = Self { nodes, dir };
        cluster.wait_ready().await;
        cluster
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + READY_DEADLINE;
        for n in &self.nodes {
            let addr = SocketAddrV4::new(Ipv4Addr::LOCALHOST, n.client_port).into();
            while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
                assert!(
                    Instant::now() < deadline,
                    "{} not accepting: {}",
                    n.name,
                    self.logs()
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        let client = async_nats::connect(self.url(0)).await.expect("connect");
        // Short request timeouts: a request made before the meta leader is
        // elected gets no answer.
        let js = async_nats::jetstream::ContextBuilder::new()
            .timeout(Duration::from_millis(500))
            .build(client);
        let probe = async_nats::jetstream::stream::Config {
            name: "READY_PROBE".into(),
            subjects: vec!["_ready_probe.>".into()],
            num_replicas: 3,
            ..Default::default()
        };
        loop {
            match js.create_stream(probe.clone()).await {
                Ok(_) => break,
                Err(e) => assert!(
                    Instant::now() < deadline,
                    "no 3-replica placement in time: {e}\n{}",
                    self.logs()
                ),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // A timed-out attempt may have deleted it already (404).
        while let Err(e) = js.delete_stream("READY_PROBE").await {
            if e.to_string().contains("10059") {
                break;
            }
            assert!(Instant::now() < deadline, "deleting the probe: {e}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `nats://127.0.0.1:<port>` of node `i` (0-based).
    pub fn url(&self, i: usize) -> String {
        format!("nats://127.0.0.1:{}", self.nodes[i].client_port)
    }

    /// Index of the node whose server name is `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == name)
    }

    /// Kills (SIGKILL) node `i` and reaps it.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Whether node `i` is running.
    pub fn is_running(&self, i: usize) -> bool {
        self.nodes[i].child.is_some()
    }

    /// The nodes' logs, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for n in &self.nodes {
            let log = std::fs::read_to_string(self.dir.path().join(format!("{}.log", n.name)))
                .unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(15).collect();
            out.push_str(&format!("--- {} (last lines)\n", n.name));
            for l in tail.into_iter().rev() {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
    }
}
