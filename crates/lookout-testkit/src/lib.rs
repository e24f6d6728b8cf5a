//! Real servers on 127.0.0.1 for integration tests: an SMTP server that accepts every message
//! (RFC 5321's minimal command set, no TLS) and an HTTP server that answers 200 to every POST.
//! Each hands what it received to the test through a channel, with the time it arrived.

use std::net::SocketAddr;
use std::time::Instant;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// A message the SMTP sink accepted.
#[derive(Clone, Debug)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    /// Headers and body as sent (dot-stuffing undone).
    pub data: String,
    pub received: Instant,
}

/// Starts an SMTP sink; returns its address and the messages it accepts.
pub async fn smtp_sink() -> (SocketAddr, mpsc::UnboundedReceiver<Mail>) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind SMTP sink");
    let addr = listener.local_addr().expect("address");
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let (r, mut w) = sock.into_split();
                let mut r = BufReader::new(r);
                let _ = w.write_all(b"220 sink.test ESMTP\r\n").await;
                let (mut from, mut to) = (String::new(), Vec::new());
                let mut line = String::new();
                loop {
                    line.clear();
                    if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let cmd = line.trim_end().to_ascii_uppercase();
                    let reply: &[u8] = if cmd.starts_with("EHLO") {
                        b"250-sink.test\r\n250 8BITMIME\r\n"
                    } else if cmd.starts_with("HELO")
                        || cmd.starts_with("RSET")
                        || cmd.starts_with("NOOP")
                    {
                        b"250 OK\r\n"
                    } else if cmd.starts_with("MAIL FROM:") {
                        from = line.trim_end()[10..].trim().to_owned();
                        b"250 OK\r\n"
                    } else if cmd.starts_with("RCPT TO:") {
                        to.push(line.trim_end()[8..].trim().to_owned());
                        b"250 OK\r\n"
                    } else if cmd == "DATA" {
                        let _ = w.write_all(b"354 go ahead\r\n").await;
                        let mut data = String::new();
                        loop {
                            line.clear();
                            if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                                return;
                            }
                            if line == ".\r\n" || line == ".\n" {
                                break;
                            }
                            data.push_str(line.strip_prefix('.').unwrap_or(&line));
                        }
                        let _ = tx.send(Mail {
                            from: std::mem::take(&mut from),
                            to: std::mem::take(&mut to),
                            data,
                            received: Instant::now(),
                        });
                        b"250 OK queued\r\n"
                    } else if cmd == "QUIT" {
                        let _ = w.write_all(b"221 bye\r\n").await;
                        return;
                    } else {
                        b"502 not implemented\r\n"
                    };
                    if w.write_all(reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, rx)
}

/// A request the HTTP sink received.
#[derive(Clone, Debug)]
pub struct Posted {
    pub path: String,
    pub headers: String,
    pub body: String,
    pub received: Instant,
}

/// Starts an HTTP/1.1 sink answering `204` to everything; returns its address and requests.
pub async fn http_sink() -> (SocketAddr, mpsc::UnboundedReceiver<Posted>) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind HTTP sink");
    let addr = listener.local_addr().expect("address");
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let (r, mut w) = sock.into_split();
                let mut r = BufReader::new(r);
                loop {
                    let mut request_line = String::new();
                    if r.read_line(&mut request_line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let path = request_line.split(' ').nth(1).unwrap_or("").to_owned();
                    let mut headers = String::new();
                    let mut length = 0usize;
                    loop {
                        let mut h = String::new();
                        if r.read_line(&mut h).await.unwrap_or(0) == 0 {
                            return;
                        }
                        if h == "\r\n" {
                            break;
                        }
                        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap_or(0);
                        }
                        headers.push_str(&h);
                    }
                    let mut body = vec![0; length];
                    if r.read_exact(&mut body).await.is_err() {
                        return;
                    }
                    let _ = tx.send(Posted {
                        path,
                        headers,
                        body: String::from_utf8_lossy(&body).into_owned(),
                        received: Instant::now(),
                    });
                    if w.write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    (addr, rx)
}

/// Reads a Server-Sent Events response into a channel of (event name, data as JSON, or as a
/// JSON string when it is not JSON).
pub fn sse_events(
    mut resp: reqwest::Response,
) -> mpsc::UnboundedReceiver<(String, serde_json::Value)> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut buf = String::new();
        while let Ok(Some(chunk)) = resp.chunk().await {
            buf.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buf.find("\n\n") {
                let block: String = buf.drain(..end + 2).collect();
                let (mut event, mut data) = (String::new(), String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        event = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim());
                    }
                }
                // JSON when it parses, else the text itself (HTML fragments).
                let data = serde_json::from_str(&data).unwrap_or(serde_json::Value::String(data));
                if !event.is_empty() && tx.send((event, data)).is_err() {
                    return;
                }
            }
        }
    });
    rx
}
