//! Test support: publishing bytes async-nats would not send, over a plain
//! TCP connection speaking the NATS client protocol.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Publishes one message with a raw header block (`NATS/1.0\r\n...\r\n\r\n`,
/// any bytes) and payload on `subject`, then waits for the server's `PONG`
/// to a `PING` sent after it, so the server has processed the publish.
pub fn hpub(port: u16, subject: &[u8], header_block: &[u8], payload: &[u8]) {
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
    let mut out = Vec::new();
    out.extend_from_slice(b"CONNECT {\"verbose\":false,\"pedantic\":false,\"headers\":true}\r\n");
    out.extend_from_slice(b"HPUB ");
    out.extend_from_slice(subject);
    out.extend_from_slice(
        format!(
            " {} {}\r\n",
            header_block.len(),
            header_block.len() + payload.len()
        )
        .as_bytes(),
    );
    out.extend_from_slice(header_block);
    out.extend_from_slice(payload);
    out.extend_from_slice(b"\r\nPING\r\n");
    (&stream).write_all(&out).expect("write");
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line).expect("read");
        assert!(n > 0, "server closed the connection");
        assert!(
            !line.starts_with(b"-ERR"),
            "{:?}",
            String::from_utf8_lossy(&line)
        );
        if line.starts_with(b"PONG") {
            return;
        }
    }
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
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut line = Vec::new();
    reader.read_until(b'\n', &mut line).expect("INFO");
    let mut out = format!(
        "CONNECT {{\"verbose\":false,\"pedantic\":false,\"headers\":true,\"user\":{user:?},\"pass\":{pass:?}}}\r\n"
    )
    .into_bytes();
    for _ in 0..count {
        out.extend_from_slice(b"HPUB ");
        out.extend_from_slice(subject);
        out.extend_from_slice(
            format!(
                " {} {}\r\n",
                header_block.len(),
                header_block.len() + payload.len()
            )
            .as_bytes(),
        );
        out.extend_from_slice(header_block);
        out.extend_from_slice(payload);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"PING\r\n");
    (&stream).write_all(&out).expect("write");
    let mut errors = Vec::new();
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line).expect("read");
        assert!(n > 0, "server closed the connection");
        if line.starts_with(b"-ERR") {
            errors.push(String::from_utf8_lossy(&line).trim().to_owned());
        }
        if line.starts_with(b"PONG") {
            return errors;
        }
    }
}
