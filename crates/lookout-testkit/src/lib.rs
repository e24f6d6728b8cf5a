//! Real servers on 127.0.0.1 for integration tests: an SMTP server that accepts every message
//! (RFC 5321's minimal command set, no TLS) and an HTTP server that answers 200 to every POST.
//! Each hands what it received to the test through a channel, with the time it arrived.
//! And a list server: one file over HTTP or HTTPS with ETags, as list publishers serve them.

use std::net::SocketAddr;
use std::time::Instant;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// A loopback TCP port that is free now, for a server a test starts (or starts again) on a port
/// it must name beforehand, such as a central that comes back on the same address. The port
/// lies outside the kernel's ephemeral range (`/proc/sys/net/ipv4/ip_local_port_range`), so
/// that until the server binds it no listener on port 0 is given it and no outgoing connection
/// takes it as its own: a client retrying a connection to a port inside that range while
/// nothing listens there can be given that very port and connect to itself (TCP's
/// simultaneous open), which holds the port and keeps the server from binding it. Never the
/// same port twice in one test process, so that tests running side by side do not share one.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    let ephemeral = ephemeral_ports();
    let outside: Vec<u16> = (FREE_PORTS_FROM..=u16::MAX)
        .filter(|p| !ephemeral.contains(p))
        .collect();
    if outside.is_empty() {
        // A kernel that makes every port ephemeral: a port it gives is the best there is.
        return std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
    }
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    // Processes that start together begin their search at different places.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as usize);
    let start = (std::process::id() as usize).wrapping_mul(2_654_435_761) ^ nanos;
    for i in 0..outside.len() {
        let port = outside[start.wrapping_add(i) % outside.len()];
        if !given.contains(&port) && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            given.insert(port);
            return port;
        }
    }
    panic!(
        "no free loopback port from {FREE_PORTS_FROM} outside the ephemeral range {}-{}",
        ephemeral.start(),
        ephemeral.end()
    );
}

/// The lowest port [`free_port`] gives: above those that system services commonly use.
const FREE_PORTS_FROM: u16 = 15_000;

/// The kernel's ephemeral port range, Linux's default where it cannot be read.
fn ephemeral_ports() -> std::ops::RangeInclusive<u16> {
    let read = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok();
    let mut bounds = read
        .iter()
        .flat_map(|s| s.split_whitespace())
        .map(|p| p.parse::<u16>());
    match (bounds.next(), bounds.next()) {
        (Some(Ok(low)), Some(Ok(high))) if low <= high => low..=high,
        _ => 32_768..=60_999,
    }
}

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
                    let Some((request_line, headers)) = read_head(&mut r).await else {
                        return;
                    };
                    let path = request_line.split(' ').nth(1).unwrap_or("").to_owned();
                    let length = header(&headers, "content-length")
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0usize);
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

/// What the list server answers now.
#[derive(Clone, Debug)]
pub struct ListReply {
    pub status: u16,
    pub body: Vec<u8>,
    pub etag: Option<String>,
}

/// A list publisher on 127.0.0.1: answers every GET with the current [`ListReply`], or `304`
/// when the request's `If-None-Match` is the current ETag. Records each request's
/// `If-None-Match` (or `None`).
#[derive(Clone, Debug)]
pub struct ListServer {
    pub addr: SocketAddr,
    /// The self-signed certificate (PEM) clients trust, when serving HTTPS.
    pub cert_pem: Option<String>,
    state: std::sync::Arc<std::sync::Mutex<(ListReply, Vec<Option<String>>)>>,
}

impl ListServer {
    /// Starts serving `reply`; over HTTPS (certificate for `localhost` and 127.0.0.1) if `tls`.
    pub async fn start(reply: ListReply, tls: bool) -> ListServer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind list server");
        let addr = listener.local_addr().expect("address");
        let state = std::sync::Arc::new(std::sync::Mutex::new((reply, Vec::new())));
        let (acceptor, cert_pem) = if tls {
            let cert = rcgen::generate_simple_self_signed(vec![
                "localhost".to_owned(),
                "127.0.0.1".to_owned(),
            ])
            .expect("certificate");
            let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.key_pair.serialize_der().into());
            let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(vec![cert.cert.der().clone()], key)
            .expect("TLS config");
            (
                Some(tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config))),
                Some(cert.cert.pem()),
            )
        } else {
            (None, None)
        };
        let shared = state.clone();
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let state = shared.clone();
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    match acceptor {
                        Some(a) => {
                            if let Ok(tls) = a.accept(sock).await {
                                answer_list(tls, &state).await;
                            }
                        }
                        None => answer_list(sock, &state).await,
                    }
                });
            }
        });
        ListServer {
            addr,
            cert_pem,
            state,
        }
    }

    /// Answers `reply` from now on.
    pub fn set(&self, reply: ListReply) {
        self.state.lock().expect("list server state").0 = reply;
    }

    /// Each request's `If-None-Match` so far, in order.
    pub fn requests(&self) -> Vec<Option<String>> {
        self.state.lock().expect("list server state").1.clone()
    }
}

type ListState = std::sync::Mutex<(ListReply, Vec<Option<String>>)>;

/// One request on `stream`, answered, then the connection closed.
async fn answer_list<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    stream: S,
    state: &ListState,
) {
    let (r, mut w) = tokio::io::split(stream);
    let Some((_, headers)) = read_head(&mut BufReader::new(r)).await else {
        return;
    };
    let if_none_match = header(&headers, "if-none-match").map(str::to_owned);
    let reply = {
        let mut s = state.lock().expect("list server state");
        s.1.push(if_none_match.clone());
        s.0.clone()
    };
    let etag = reply
        .etag
        .as_ref()
        .map(|e| format!("etag: {e}\r\n"))
        .unwrap_or_default();
    let head = if if_none_match.is_some() && if_none_match == reply.etag {
        format!("HTTP/1.1 304 Not Modified\r\n{etag}connection: close\r\n\r\n")
    } else {
        format!(
            "HTTP/1.1 {} X\r\ncontent-length: {}\r\n{etag}connection: close\r\n\r\n",
            reply.status,
            reply.body.len()
        )
    };
    let _ = w.write_all(head.as_bytes()).await;
    if !head.starts_with("HTTP/1.1 304") {
        let _ = w.write_all(&reply.body).await;
    }
    let _ = w.shutdown().await;
}

/// A request's first line and its header lines (up to the blank line), or `None` if the
/// connection ends first.
async fn read_head<R: tokio::io::AsyncBufRead + Unpin>(r: &mut R) -> Option<(String, String)> {
    let mut request_line = String::new();
    if r.read_line(&mut request_line).await.unwrap_or(0) == 0 {
        return None;
    }
    let mut headers = String::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).await.unwrap_or(0) == 0 {
            return None;
        }
        if h == "\r\n" {
            return Some((request_line, headers));
        }
        headers.push_str(&h);
    }
}

/// The value of header `name` (any case) among `headers`' lines.
fn header<'a>(headers: &'a str, name: &str) -> Option<&'a str> {
    headers.lines().find_map(|h| {
        let (n, v) = h.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Whether a server a test needs is here (`present`); if not, the test says it skips, except
/// under `CI`, where a missing server is a broken set-up and panics.
fn installed(present: bool, what: &str, how: &str) -> bool {
    if !present {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but {what} is not installed ({how})"
        );
        eprintln!("SKIPPED: {what} is not installed ({how})");
    }
    present
}

/// A real OpenLDAP server (`slapd`, Debian package `slapd`) on a loopback port with an
/// in-folder database, loaded from LDIF before it starts; stopped when dropped.
#[derive(Debug)]
pub struct Slapd {
    /// `ldap://127.0.0.1:<port>`.
    pub url: String,
    child: std::process::Child,
    dir: std::path::PathBuf,
}

impl Slapd {
    /// Starts `slapd` for `suffix` (its manager is `cn=admin,<suffix>`, password `admin`)
    /// holding `ldif`. `None` when slapd is not installed, except under `CI`, where that is a
    /// broken set-up and panics.
    pub fn start(suffix: &str, ldif: &str) -> Option<Slapd> {
        let slapd = std::path::Path::new("/usr/sbin/slapd");
        if !installed(slapd.exists(), "slapd", "apt-get install slapd") {
            return None;
        }
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "lookout-slapd-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("db")).expect("slapd folder");
        let conf = dir.join("slapd.conf");
        std::fs::write(
            &conf,
            format!(
                "include /etc/ldap/schema/core.schema\ninclude /etc/ldap/schema/cosine.schema\ninclude /etc/ldap/schema/inetorgperson.schema\nmodulepath /usr/lib/ldap\nmoduleload back_mdb\npidfile {dir}/slapd.pid\ndatabase mdb\nsuffix \"{suffix}\"\nrootdn \"cn=admin,{suffix}\"\nrootpw admin\ndirectory {dir}/db\nmaxsize 10485760\n",
                dir = dir.display()
            ),
        )
        .expect("slapd.conf");
        let data = dir.join("data.ldif");
        std::fs::write(&data, ldif).expect("data.ldif");
        let loaded = std::process::Command::new("/usr/sbin/slapadd")
            .arg("-f")
            .arg(&conf)
            .arg("-l")
            .arg(&data)
            .output()
            .expect("run slapadd");
        assert!(
            loaded.status.success(),
            "slapadd: {}",
            String::from_utf8_lossy(&loaded.stderr)
        );
        let port = free_port();
        let url = format!("ldap://127.0.0.1:{port}");
        let child = std::process::Command::new(slapd)
            .arg("-f")
            .arg(&conf)
            .arg("-h")
            .arg(format!("{url}/"))
            .args(["-d", "0"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start slapd");
        let deadline = Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "slapd did not start on {url}");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Some(Slapd { url, child, dir })
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A real Squid proxy (Debian package `squid`) on a loopback port with `helper` as its
/// URL-rewrite program (`concurrency` channels per helper, so lines carry channel IDs), no
/// cache and no access log; stopped when dropped.
#[derive(Debug)]
pub struct Squid {
    pub port: u16,
    child: std::process::Child,
    dir: std::path::PathBuf,
}

impl Squid {
    /// Starts Squid. `None` when it is not installed, except under `CI`, where that is a
    /// broken set-up and panics.
    pub fn start(helper: &str, concurrency: u32) -> Option<Squid> {
        let squid = std::path::Path::new("/usr/sbin/squid");
        if !installed(squid.exists(), "Squid", "apt-get install squid") {
            return None;
        }
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "lookout-squid-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("squid folder");
        // Run as root, Squid drops to its own user, which must write its log and pid here.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        let port = free_port();
        let conf = dir.join("squid.conf");
        std::fs::write(
            &conf,
            format!(
                "http_port 127.0.0.1:{port}\n\
                 http_access allow localhost\n\
                 http_access deny all\n\
                 url_rewrite_program {helper}\n\
                 url_rewrite_children 1 startup=1 idle=1 concurrency={concurrency}\n\
                 cache deny all\n\
                 access_log none\n\
                 cache_log {dir}/cache.log\n\
                 pid_filename {dir}/squid.pid\n\
                 coredump_dir {dir}\n\
                 shutdown_lifetime 0 seconds\n\
                 dns_nameservers 127.0.0.1\n",
                dir = dir.display()
            ),
        )
        .expect("squid.conf");
        let child = std::process::Command::new(squid)
            .arg("-N")
            .arg("-f")
            .arg(&conf)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start squid");
        let deadline = Instant::now() + std::time::Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "Squid did not start on port {port}: {}",
                std::fs::read_to_string(dir.join("cache.log")).unwrap_or_default()
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Some(Squid { port, child, dir })
    }

    /// Squid's own log, for a failing test's message.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("cache.log")).unwrap_or_default()
    }
}

impl Drop for Squid {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A real OpenID Provider (panva's `oidc-provider` from npm, run by Node.js from
/// `crates/lookout-testkit/idp/`) on a loopback port, knowing `users` and one client; stopped
/// when dropped. Its sign-in page is a plain form that [`OidcProvider::sign_in`] fills in.
#[derive(Debug)]
pub struct OidcProvider {
    /// `http://127.0.0.1:<port>`.
    pub issuer: String,
    child: std::process::Child,
}

/// Where the browser ended up after the provider's sign-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdpOutcome {
    /// Sent back to the client: the whole URL (`...?code=..&state=..` or `?error=..`).
    Back(String),
    /// The provider showed its page again with this status (wrong password).
    Refused(u16),
}

impl OidcProvider {
    /// Starts the provider. `users`: `{"name": {"password": "..", "claims": {..}}}`;
    /// `client`: `{"client_id", "client_secret", "redirect_uris": [..]}`. `None` when Node.js or
    /// the provider's packages are missing (`npm ci --prefix crates/lookout-testkit/idp`),
    /// except under `CI`, where that is a broken set-up and panics.
    pub fn start(users: &serde_json::Value, client: &serde_json::Value) -> Option<OidcProvider> {
        use std::io::BufRead;
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("idp");
        let ready = dir.join("node_modules/oidc-provider").exists()
            && std::process::Command::new("node")
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success());
        if !installed(
            ready,
            "the test OpenID Provider",
            "npm ci --prefix crates/lookout-testkit/idp",
        ) {
            return None;
        }
        let mut child = std::process::Command::new("node")
            .arg(dir.join("idp.mjs"))
            .env("IDP_USERS", users.to_string())
            .env("IDP_CLIENT", client.to_string())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("start the test OpenID Provider");
        let stdout = child.stdout.take().expect("its stdout");
        let mut line = String::new();
        let mut reader = std::io::BufReader::new(stdout);
        reader
            .read_line(&mut line)
            .expect("read the provider's first line");
        // Whatever it prints later is read and dropped (a closed pipe would kill it).
        std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
        let Some(issuer) = line.trim().strip_prefix("listening ") else {
            let _ = child.kill();
            panic!("the test OpenID Provider did not start: {line:?}");
        };
        Some(OidcProvider {
            issuer: issuer.to_owned(),
            child,
        })
    }

    /// Plays a browser at the provider: opens `auth_url`, follows the provider's own
    /// redirects, fills in the sign-in form (`mfa`: tick "second factor"; `cancel`: press
    /// Cancel instead), and stops at the first redirect off the provider.
    pub async fn sign_in(
        &self,
        auth_url: &str,
        login: &str,
        password: &str,
        mfa: bool,
        cancel: bool,
    ) -> IdpOutcome {
        let http = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        let mut url = auth_url.to_owned();
        let mut posted = false;
        for _ in 0..20 {
            let r = if !posted && url.contains("/interaction/") {
                posted = true;
                let mut form = vec![("login", login), ("password", password)];
                if mfa {
                    form.push(("mfa", "1"));
                }
                let to = if cancel {
                    format!("{url}/abort")
                } else {
                    format!("{url}/login")
                };
                http.post(to).form(&form).send().await
            } else {
                http.get(&url).send().await
            }
            .expect("the provider answers");
            let status = r.status();
            if status.is_redirection() {
                let location = r
                    .headers()
                    .get("location")
                    .and_then(|l| l.to_str().ok())
                    .expect("a redirect has a location")
                    .to_owned();
                let next = if location.starts_with('/') {
                    format!("{}{location}", self.issuer)
                } else {
                    location
                };
                if !next.starts_with(&self.issuer) {
                    return IdpOutcome::Back(next);
                }
                url = next;
                continue;
            }
            if !status.is_success() {
                return IdpOutcome::Refused(status.as_u16());
            }
            panic!(
                "the provider showed a page at {url}: {}",
                r.text().await.unwrap_or_default()
            );
        }
        panic!("the provider redirected 20 times");
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
