//! Test support: publishing bytes async-nats would not send, over a plain
//! TCP connection speaking the NATS client protocol.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Publishes one message with a raw header block (`NATS/1.0\r\n...\r\n\r\n`,
/// any bytes) and payload on `subject`, then waits for the server's `PONG`
/// to a `PING` sent after it, so the server has processed the publish.
pub fn hpub(port: u16, subject: &[u8], header_block: &[u8], payload: &[u8]) {
    let mut conn = RawConn::connect(port, None);
    conn.hpub(subject, header_block, payload);
    let errors = conn.sync();
    assert!(errors.is_empty(), "{errors:?}");
}

/// A header block: `version_line`, the lines of `headers`, then the raw
/// `extra` line if not empty (both may hold any bytes).
pub fn header_block(version_line: &[u8], headers: &async_nats::HeaderMap, extra: &[u8]) -> Vec<u8> {
    let mut block = version_line.to_vec();
    block.extend_from_slice(b"\r\n");
    for (name, values) in headers.iter() {
        for v in values {
            block.extend_from_slice(format!("{name}: {v}\r\n").as_bytes());
        }
    }
    if !extra.is_empty() {
        block.extend_from_slice(extra);
        block.extend_from_slice(b"\r\n");
    }
    block.extend_from_slice(b"\r\n");
    block
}

/// Like [`hpub`], as `user`/`pass`, `count` times on one connection; returns
/// the `-ERR` lines the server answered (a permission violation leaves the
/// connection open).
pub fn hpub_as(
    port: u16,
    (user, pass): (&str, &str),
    subject: &[u8],
    header_block: &[u8],
    payload: &[u8],
    count: usize,
) -> Vec<String> {
    let mut conn = RawConn::connect(port, Some((user, pass)));
    for _ in 0..count {
        conn.hpub(subject, header_block, payload);
    }
    conn.sync()
}

/// One client connection speaking the protocol by hand, for sending many
/// messages (of any bytes) without building a message object per send.
pub struct RawConn {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
    /// One message's protocol bytes, reused.
    out: Vec<u8>,
}

impl RawConn {
    /// Connects (as `user`/`pass` if given) and reads the server's `INFO`.
    pub fn connect(port: u16, auth: Option<(&str, &str)>) -> Self {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("read timeout");
        let mut reader = BufReader::new(stream.try_clone().expect("clone"));
        let mut line = Vec::new();
        reader.read_until(b'\n', &mut line).expect("INFO");
        assert!(
            line.starts_with(b"INFO "),
            "{:?}",
            String::from_utf8_lossy(&line)
        );
        let auth = auth.map_or_else(String::new, |(user, pass)| {
            format!(",\"user\":{user:?},\"pass\":{pass:?}")
        });
        let connect =
            format!("CONNECT {{\"verbose\":false,\"pedantic\":false,\"headers\":true{auth}}}\r\n");
        (&stream).write_all(connect.as_bytes()).expect("write");
        stream.set_nodelay(true).expect("nodelay");
        Self {
            stream,
            reader,
            out: Vec::new(),
        }
    }

    /// Sends one `HPUB` (not waiting for the server).
    pub fn hpub(&mut self, subject: &[u8], header_block: &[u8], payload: &[u8]) {
        let out = &mut self.out;
        out.clear();
        out.extend_from_slice(b"HPUB ");
        out.extend_from_slice(subject);
        let total = header_block.len() + payload.len();
        out.extend_from_slice(format!(" {} {total}\r\n", header_block.len()).as_bytes());
        out.extend_from_slice(header_block);
        out.extend_from_slice(payload);
        out.extend_from_slice(b"\r\n");
        (&self.stream).write_all(out).expect("write");
    }

    /// Sends a `PING` and reads up to its `PONG`, so the server has processed
    /// everything sent before; returns the `-ERR` lines it answered meanwhile
    /// (panics if it closed the connection).
    pub fn sync(&mut self) -> Vec<String> {
        (&self.stream).write_all(b"PING\r\n").expect("write");
        let mut errors = Vec::new();
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = self.reader.read_until(b'\n', &mut line).expect("read");
            assert!(n > 0, "server closed the connection: {errors:?}");
            if line.starts_with(b"-ERR") {
                errors.push(String::from_utf8_lossy(&line).trim().to_owned());
            }
            if line.starts_with(b"PONG") {
                return errors;
            }
        }
    }
}
