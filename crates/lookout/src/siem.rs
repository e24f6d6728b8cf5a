//! `[log.syslog]`: every activity event forwarded, as it is recorded, to the organisation's
//! SIEM or log server by syslog (an RFC 5424 message over UDP, or over TCP with RFC 6587
//! octet counting), as ArcSight CEF or plain `key="value"` text. The gateway never waits for
//! the collector: messages go through a bounded queue, and what does not fit is dropped and
//! counted (`/metrics`: `lookout_syslog_*`). Best effort: a collector that is down loses what
//! is sent meanwhile; the database's activity log stays the record.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use lookout_config::SyslogConfig;
use lookout_store::{Event, Observer};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// What the forwarder has done, for `/metrics`.
#[derive(Debug, Default)]
pub(crate) struct SyslogStats {
    pub(crate) sent: AtomicU64,
    /// Not queued: the queue was full (the collector too slow or unreachable over TCP).
    pub(crate) dropped: AtomicU64,
    /// Queued but not delivered: the socket refused it.
    pub(crate) failed: AtomicU64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Cef,
    Plain,
}

/// The longest message sent: enough for any URL the proxy accepts, and within what syslog
/// collectors take in one UDP datagram.
const MAX_MESSAGE: usize = 8 * 1024;

/// Queues events' messages for the forwarder; cheap to clone, never waits.
#[derive(Clone)]
pub(crate) struct Syslog {
    tx: mpsc::Sender<String>,
    format: Format,
    host: Arc<str>,
    stats: Arc<SyslogStats>,
}

impl Syslog {
    /// Queues `e`'s message, naming `site` when a site gateway forwarded it; a full queue
    /// drops it and counts.
    pub(crate) fn send(&self, site: Option<&str>, e: &Event) {
        if self
            .tx
            .try_send(message(self.format, &self.host, site, e))
            .is_err()
        {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The activity log's observer: this server's own events.
    pub(crate) fn observer(&self) -> Observer {
        let me = self.clone();
        Observer(Arc::new(move |e: &Event| me.send(None, e)))
    }
}

/// Starts the forwarder.
pub(crate) fn start(
    config: &SyslogConfig,
    stop: CancellationToken,
) -> anyhow::Result<(Syslog, Arc<SyslogStats>)> {
    let server = lookout_config::parse_socket_addr(config.server.get_ref(), 514)
        .with_context(|| format!("log.syslog.server `{}`", config.server.get_ref()))?;
    let format = match config.format.get_ref().as_str() {
        "rfc5424" => Format::Plain,
        _ => Format::Cef,
    };
    let tcp = config.protocol.get_ref() == "tcp";
    let host = hostname::get()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty() && h.is_ascii() && !h.contains(' '))
        .unwrap_or_else(|| "lookout".to_owned());
    let stats = Arc::new(SyslogStats::default());
    let (tx, rx) = mpsc::channel::<String>(config.queue.max(1));
    tokio::spawn(send_loop(rx, server, tcp, stats.clone(), stop));
    let syslog = Syslog {
        tx,
        format,
        host: host.into(),
        stats: stats.clone(),
    };
    Ok((syslog, stats))
}

async fn send_loop(
    mut rx: mpsc::Receiver<String>,
    server: SocketAddr,
    tcp: bool,
    stats: Arc<SyslogStats>,
    stop: CancellationToken,
) {
    let udp = if tcp {
        None
    } else {
        let bind: SocketAddr = if server.is_ipv4() {
            "0.0.0.0:0".parse().expect("an address")
        } else {
            "[::]:0".parse().expect("an address")
        };
        match tokio::net::UdpSocket::bind(bind).await {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(
                    "log.syslog: cannot open a UDP socket: {e}; nothing will be forwarded"
                );
                return;
            }
        }
    };
    let mut stream: Option<tokio::net::TcpStream> = None;
    let mut said_down = false;
    loop {
        let msg = tokio::select! {
            m = rx.recv() => match m { Some(m) => m, None => return },
            () = stop.cancelled() => return,
        };
        let sent = match &udp {
            Some(socket) => socket.send_to(msg.as_bytes(), server).await.map(|_| ()),
            None => {
                if stream.is_none() {
                    stream = connect(server).await;
                }
                match &mut stream {
                    Some(s) => {
                        // RFC 6587 octet counting: the length, a space, the message.
                        let framed = format!("{} {msg}", msg.len());
                        let r = s.write_all(framed.as_bytes()).await;
                        if r.is_err() {
                            stream = None; // reconnect for the next message
                        }
                        r
                    }
                    None => Err(std::io::Error::other("not connected")),
                }
            }
        };
        match sent {
            Ok(()) => {
                stats.sent.fetch_add(1, Ordering::Relaxed);
                said_down = false;
            }
            Err(e) => {
                stats.failed.fetch_add(1, Ordering::Relaxed);
                if !said_down {
                    tracing::warn!("log.syslog: cannot send to {server}: {e} (counted; retrying with the next event)");
                    said_down = true;
                }
            }
        }
    }
}

async fn connect(server: SocketAddr) -> Option<tokio::net::TcpStream> {
    match tokio::time::timeout(
        Duration::from_secs(2),
        tokio::net::TcpStream::connect(server),
    )
    .await
    {
        Ok(Ok(s)) => {
            let _ = s.set_nodelay(true);
            Some(s)
        }
        _ => None,
    }
}

/// The syslog message for one event: RFC 5424 header (facility local0, severity by action),
/// then CEF or `key="value"` text; `site`: the site gateway that forwarded it.
fn message(format: Format, host: &str, site: Option<&str>, e: &Event) -> String {
    let severity = match e.action.as_str() {
        "block" => 4,             // warning
        "warn" | "continue" => 5, // notice
        _ => 6,                   // informational
    };
    let time = chrono::DateTime::from_timestamp_millis(e.at_ms).map_or_else(
        || "-".to_owned(),
        |t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    );
    let mut m = format!(
        "<{}>1 {time} {host} lookout - {} - ",
        16 * 8 + severity,
        e.service
    );
    match format {
        Format::Cef => cef(&mut m, site, e),
        Format::Plain => plain(&mut m, site, e),
    }
    if m.len() > MAX_MESSAGE {
        let mut end = MAX_MESSAGE;
        while !m.is_char_boundary(end) {
            end -= 1;
        }
        m.truncate(end);
    }
    m
}

/// ArcSight Common Event Format: `CEF:0|vendor|product|version|signature|name|severity|ext`.
fn cef(m: &mut String, site: Option<&str>, e: &Event) {
    let (name, severity) = match (e.action.as_str(), e.rule.as_str()) {
        ("block", "illegal") => ("blocked: illegal content", 10),
        ("block", _) => ("blocked", 7),
        ("warn", _) => ("warned", 4),
        ("continue", _) => ("warning clicked through", 4),
        _ => ("allowed", 1),
    };
    let what = if e.service == "dns" {
        "DNS query"
    } else {
        "Web request"
    };
    m.push_str(concat!(
        "CEF:0|Lookout|Lookout|",
        env!("CARGO_PKG_VERSION"),
        "|"
    ));
    header(m, e.service);
    m.push('-');
    header(m, &e.action);
    m.push_str(&format!("|{what} {name}|{severity}|"));
    let mut ext = |key: &str, value: &str| {
        if !value.is_empty() {
            if !m.ends_with('|') {
                m.push(' ');
            }
            m.push_str(key);
            m.push('=');
            extension(m, value);
        }
    };
    ext("rt", &e.at_ms.to_string());
    ext("src", &e.client_ip);
    ext("suser", e.username.as_deref().unwrap_or(""));
    ext("requestMethod", &e.method);
    ext("request", &e.url);
    ext("dhost", &e.host);
    ext("act", &e.action);
    ext("cat", &e.rule);
    ext("reason", &e.reason);
    ext("cs1Label", "group");
    ext("cs1", &e.group);
    ext("cs2Label", "categories");
    ext("cs2", &e.categories);
    if let Some(q) = &e.search_term {
        ext("cs3Label", "searchTerm");
        ext("cs3", q);
    }
    if !e.reference.is_empty() {
        ext("cs4Label", "reference");
        ext("cs4", &e.reference);
    }
    if let Some(status) = e.status {
        ext("cn1Label", "httpStatus");
        ext("cn1", &status.to_string());
    }
    if let Some(site) = site {
        ext("cs5Label", "site");
        ext("cs5", site);
    }
}

/// Appends a CEF header field: `\` and `|` escaped, line breaks as spaces.
fn header(m: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '\\' => m.push_str("\\\\"),
            '|' => m.push_str("\\|"),
            '\r' | '\n' => m.push(' '),
            c => m.push(c),
        }
    }
}

/// A CEF extension value: `\` and `=` escaped, line breaks as `\n` / `\r`.
fn extension(m: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '\\' => m.push_str("\\\\"),
            '=' => m.push_str("\\="),
            '\n' => m.push_str("\\n"),
            '\r' => m.push_str("\\r"),
            c if c.is_control() => m.push(' '),
            c => m.push(c),
        }
    }
}

/// `key="value"` pairs, `"` and `\` escaped, control characters as spaces.
fn plain(m: &mut String, site: Option<&str>, e: &Event) {
    let fields: [(&str, &str); 14] = [
        ("site", site.unwrap_or("")),
        ("service", e.service),
        ("action", &e.action),
        ("client", &e.client_ip),
        ("user", e.username.as_deref().unwrap_or("")),
        ("group", &e.group),
        ("method", &e.method),
        ("host", &e.host),
        ("url", &e.url),
        ("search", e.search_term.as_deref().unwrap_or("")),
        ("categories", &e.categories),
        ("rule", &e.rule),
        ("reason", &e.reason),
        ("reference", &e.reference),
    ];
    let mut first = true;
    for (key, value) in fields.into_iter().filter(|(_, v)| !v.is_empty()) {
        if !first {
            m.push(' ');
        }
        first = false;
        m.push_str(key);
        m.push_str("=\"");
        for c in value.chars() {
            match c {
                '"' => m.push_str("\\\""),
                '\\' => m.push_str("\\\\"),
                c if c.is_control() => m.push(' '),
                c => m.push(c),
            }
        }
        m.push('"');
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a test that fails to set up should stop there
pub(crate) mod tests {
    use super::*;

    /// A blocked request by amy, for tests.
    pub(crate) fn event() -> Event {
        Event {
            at_ms: 1_796_342_400_123,
            reference: "LK-7Q2M-X9KD".into(),
            service: "proxy",
            client_ip: "10.0.5.17".into(),
            username: Some("amy".into()),
            group: "learners-u18".into(),
            method: "GET".into(),
            url: "http://casino.test/a=b|c\\d".into(),
            host: "casino.test".into(),
            search_term: None,
            categories: "gambling".into(),
            action: "block".into(),
            rule: "category".into(),
            reason: "category gambling\r\nis blocked".into(),
            status: Some(403),
            bytes: 0,
        }
    }

    #[test]
    fn messages_in_each_format_escape_what_they_must() {
        let e = event();
        let table = [
            (
                Format::Cef,
                concat!(
                    "<132>1 2026-12-04T00:00:00.123Z gw lookout - proxy - ",
                    "CEF:0|Lookout|Lookout|", env!("CARGO_PKG_VERSION"),
                    "|proxy-block|Web request blocked|7|rt=1796342400123 src=10.0.5.17 suser=amy ",
                    "requestMethod=GET request=http://casino.test/a\\=b|c\\\\d dhost=casino.test ",
                    "act=block cat=category reason=category gambling\\r\\nis blocked cs1Label=group ",
                    "cs1=learners-u18 cs2Label=categories cs2=gambling cs4Label=reference ",
                    "cs4=LK-7Q2M-X9KD cn1Label=httpStatus cn1=403"
                ),
            ),
            (
                Format::Plain,
                concat!(
                    "<132>1 2026-12-04T00:00:00.123Z gw lookout - proxy - ",
                    "service=\"proxy\" action=\"block\" client=\"10.0.5.17\" user=\"amy\" ",
                    "group=\"learners-u18\" method=\"GET\" host=\"casino.test\" ",
                    "url=\"http://casino.test/a=b|c\\\\d\" categories=\"gambling\" rule=\"category\" ",
                    "reason=\"category gambling  is blocked\" reference=\"LK-7Q2M-X9KD\""
                ),
            ),
        ];
        for (format, want) in table {
            assert_eq!(message(format, "gw", None, &e), want, "{format:?}");
        }
        // A site gateway's event names its site.
        assert!(message(Format::Cef, "gw", Some("north"), &e)
            .ends_with("cn1=403 cs5Label=site cs5=north"));
        assert!(message(Format::Plain, "gw", Some("north"), &e)
            .contains(" - site=\"north\" service=\"proxy\""));
        // Severity follows the action; illegal content is CEF's highest.
        let mut illegal = event();
        illegal.rule = "illegal".into();
        assert!(message(Format::Cef, "gw", None, &illegal)
            .contains("|Web request blocked: illegal content|10|"));
        let mut allowed = event();
        allowed.action = "allow".into();
        allowed.service = "dns";
        let m = message(Format::Cef, "gw", None, &allowed);
        assert!(
            m.starts_with("<134>1 ") && m.contains("|dns-allow|DNS query allowed|1|"),
            "{m}"
        );
        // A pipe in a header field is escaped.
        let mut field = String::new();
        header(&mut field, "a|b\\c\nd");
        assert_eq!(field, "a\\|b\\\\c d");
        // Long URLs are cut to the message limit, on a character boundary.
        let mut long = event();
        long.url = format!("http://x.test/{}", "é".repeat(10_000));
        let m = message(Format::Cef, "gw", None, &long);
        assert!(m.len() <= MAX_MESSAGE && m.len() > MAX_MESSAGE - 4);
    }

    /// A forwarder to `server`; cancel the token to stop it.
    fn forwarder(
        server: SocketAddr,
        protocol: &str,
        queue: usize,
    ) -> (Observer, Arc<SyslogStats>, CancellationToken) {
        let config: SyslogConfig = toml::from_str(&format!(
            "server = \"{server}\"\nprotocol = \"{protocol}\"\nqueue = {queue}\n"
        ))
        .unwrap();
        let stop = CancellationToken::new();
        let (syslog, stats) = start(&config, stop.clone()).unwrap();
        (syslog.observer(), stats, stop)
    }

    #[tokio::test]
    async fn events_reach_a_collector_over_udp() {
        let collector = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let (observer, stats, stop) = forwarder(collector.local_addr().unwrap(), "udp", 100);
        (observer.0)(&event());
        let mut buf = vec![0; 65_536];
        let n = tokio::time::timeout(Duration::from_secs(5), collector.recv(&mut buf))
            .await
            .expect("a datagram")
            .unwrap();
        let got = String::from_utf8_lossy(&buf[..n]);
        assert!(
            got.contains("|proxy-block|") && got.contains("suser=amy"),
            "{got}"
        );
        assert_eq!(stats.sent.load(Ordering::Relaxed), 1);
        stop.cancel();
    }

    /// One RFC 6587 octet-counted message.
    async fn read_one(conn: &mut tokio::net::TcpStream) -> String {
        use tokio::io::AsyncReadExt;
        let mut len = String::new();
        loop {
            let b = conn.read_u8().await.unwrap();
            if b == b' ' {
                break;
            }
            len.push(b as char);
        }
        let mut msg = vec![0; len.parse().unwrap()];
        conn.read_exact(&mut msg).await.unwrap();
        String::from_utf8(msg).unwrap()
    }

    #[tokio::test]
    async fn tcp_frames_each_message_and_reconnects_after_the_collector_drops_it() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (observer, stats, stop) = forwarder(listener.local_addr().unwrap(), "tcp", 100);
        (observer.0)(&event());
        (observer.0)(&event());
        let (mut conn, _) = listener.accept().await.unwrap();
        for _ in 0..2 {
            let m = read_one(&mut conn).await;
            assert!(m.starts_with("<132>1 ") && m.ends_with("cn1=403"), "{m}");
        }
        // The collector restarts: the forwarder notices on a send and connects again.
        drop(conn);
        let mut again = None;
        for _ in 0..50 {
            (observer.0)(&event());
            if let Ok(Ok((c, _))) =
                tokio::time::timeout(Duration::from_millis(100), listener.accept()).await
            {
                again = Some(c);
                break;
            }
        }
        let mut conn = again.expect("the forwarder reconnected");
        (observer.0)(&event());
        let m = read_one(&mut conn).await;
        assert!(m.contains("CEF:0|Lookout|"), "{m}");
        assert!(stats.sent.load(Ordering::Relaxed) >= 3);
        stop.cancel();
    }

    #[tokio::test]
    async fn a_full_queue_drops_and_counts_without_waiting() {
        // On this test's one thread the sender cannot run until the test awaits: the queue
        // of two fills and the rest are dropped, each call returning at once.
        let collector = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let (observer, stats, stop) = forwarder(collector.local_addr().unwrap(), "udp", 2);
        for _ in 0..100 {
            (observer.0)(&event());
        }
        assert_eq!(stats.dropped.load(Ordering::Relaxed), 98);
        let mut buf = vec![0; 65_536];
        for _ in 0..2 {
            tokio::time::timeout(Duration::from_secs(5), collector.recv(&mut buf))
                .await
                .expect("the two queued messages")
                .unwrap();
        }
        stop.cancel();
    }
}
