//! Open-loop latency for the benchmarks: requests sent at a fixed rate, whatever the answers'
//! speed (`bench/proxy-vs-e2guardian.sh` runs it).
//!
//! wrk keeps its connections busy back to back (a closed loop), so its latency is the
//! machine's queueing at full load. This sends RATE requests a second over CONNECTIONS
//! keep-alive connections on a fixed schedule and times each answer from when its request was
//! due, so a slow answer that delays the next request counts against the server (no
//! coordinated omission): how a college's devices see a gateway at a busy moment.
//!
//! ```text
//! latency_at_rate URL RATE SECONDS CONNECTIONS [PROXY_HOST:PORT]
//! ```
//!
//! Prints `p50_ms p99_ms max_ms sent errors`. With a proxy, requests go to it in proxy form.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn usage() -> ! {
    eprintln!("usage: latency_at_rate URL RATE SECONDS CONNECTIONS [PROXY_HOST:PORT]");
    std::process::exit(2)
}

/// Reads one response with a Content-Length body; its status line and whether the server
/// closes the connection after it.
fn read_response(
    reader: &mut BufReader<TcpStream>,
    line: &mut String,
) -> std::io::Result<(String, bool)> {
    let mut status = String::new();
    let mut length = 0usize;
    let mut close = false;
    loop {
        line.clear();
        if reader.read_line(line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if status.is_empty() {
            status = l.to_owned();
        } else if let Some((name, value)) = l.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().map_err(|_| {
                    std::io::Error::new(std::io::ErrorKind::InvalidData, "bad Content-Length")
                })?;
            } else if name.eq_ignore_ascii_case("connection") {
                close = value.trim().eq_ignore_ascii_case("close");
            }
        }
    }
    std::io::copy(
        &mut reader.by_ref().take(length as u64),
        &mut std::io::sink(),
    )?;
    Ok((status, close))
}

type Conn = (TcpStream, BufReader<TcpStream>);

/// Sends `request` on `conn` (connecting first if there is none) and reads the answer; a
/// kept-alive connection the server had closed meanwhile is replaced once, as browsers do.
fn exchange(
    addr: &str,
    request: &[u8],
    conn: &mut Option<Conn>,
    line: &mut String,
) -> std::io::Result<String> {
    let mut retry = conn.is_some();
    loop {
        if conn.is_none() {
            let stream = TcpStream::connect(addr)?;
            stream.set_nodelay(true)?;
            stream.set_read_timeout(Some(Duration::from_secs(10)))?;
            *conn = Some((stream.try_clone()?, BufReader::new(stream)));
        }
        let (writer, reader) = conn.as_mut().ok_or(std::io::ErrorKind::NotConnected)?;
        let result = writer
            .write_all(request)
            .and_then(|()| read_response(reader, line));
        match result {
            Ok((status, close)) => {
                if close {
                    *conn = None;
                }
                return Ok(status);
            }
            Err(_) if retry => {
                retry = false;
                *conn = None;
            }
            Err(e) => {
                *conn = None;
                return Err(e);
            }
        }
    }
}

/// Sends the request at each due time on one connection (reconnecting when needed);
/// the latencies from due time to full answer, and the errors.
fn connection(addr: &str, request: &[u8], due: &[Instant]) -> (Vec<Duration>, usize) {
    let mut latencies = Vec::with_capacity(due.len());
    let mut errors = 0;
    let mut conn: Option<Conn> = None;
    let mut line = String::new();
    for &at in due {
        if let Some(wait) = at.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        match exchange(addr, request, &mut conn, &mut line) {
            Ok(status) if status.split_whitespace().nth(1) == Some("200") => {
                latencies.push(at.elapsed())
            }
            _ => errors += 1,
        }
    }
    (latencies, errors)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 4 {
        usage();
    }
    let url = &args[0];
    let (Ok(rate), Ok(seconds), Ok(conns)) = (
        args[1].parse::<f64>(),
        args[2].parse::<f64>(),
        args[3].parse::<usize>(),
    ) else {
        usage()
    };
    let Some(rest) = url.strip_prefix("http://") else {
        usage()
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let (addr, target) = match args.get(4) {
        Some(proxy) => (proxy.clone(), url.as_str()),
        None => (authority.to_owned(), path),
    };
    let request = format!(
        "GET {target} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: latency_at_rate\r\n\r\n"
    )
    .into_bytes();
    let total = (rate * seconds) as usize;
    let start = Instant::now() + Duration::from_millis(200);
    let conns = conns.max(1);
    // Request i is due at start + i/rate, on connection i % conns.
    let handles: Vec<_> = (0..conns)
        .map(|c| {
            let due: Vec<Instant> = (c..total)
                .step_by(conns)
                .map(|i| start + Duration::from_secs_f64(i as f64 / rate))
                .collect();
            let (addr, request) = (addr.clone(), request.clone());
            std::thread::spawn(move || connection(&addr, &request, &due))
        })
        .collect();
    let mut all = Vec::with_capacity(total);
    let mut errors = 0;
    for h in handles {
        let (l, e) = h.join().unwrap_or_default();
        all.extend(l);
        errors += e;
    }
    all.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let pick = |q: f64| all.get(((q * all.len() as f64) as usize).min(all.len().saturating_sub(1)));
    match (pick(0.5), pick(0.99), all.last()) {
        (Some(&p50), Some(&p99), Some(&max)) => println!(
            "{:.3} {:.3} {:.3} {total} {errors}",
            ms(p50),
            ms(p99),
            ms(max)
        ),
        _ => println!("nan nan nan {total} {errors}"),
    }
}
