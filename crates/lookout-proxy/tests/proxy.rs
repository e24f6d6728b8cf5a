//! The proxy over real sockets on 127.0.0.1: reqwest and raw TCP clients, local HTTP and
//! HTTPS origins (a test CA), the real list loader and a real SQLite activity log.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use lookout_config::Config;
use lookout_policy::{Destinations, Internal, LocalTime, Networks, Weekday};
use lookout_proxy::{
    run, ClientNet, Identifier, Inspector, Login, PageSink, PortalSettings, Proxy, Resolver,
    Settings,
};
use lookout_store::{
    Event, EventFilter, EventLog, EventWriter, NewUser, Observer, Store, StoredEvent,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const CONFIG: &str = r#"
[[lists.source]]
name = "test-gambling"
path = "gambling.txt"
categories = ["gambling"]

[[lists.source]]
name = "test-chat"
path = "chat.txt"
categories = ["chat"]

[[lists.source]]
name = "test-bank"
path = "bank.txt"
categories = ["banking"]

[groups.learners]
warn = ["chat"]

[groups.it-staff]
block = ["gambling"]
blocked_downloads = []
safe_search = false
youtube_restricted = false
"#;

/// Names the proxy resolves to the local origins.
const NAMES: &[&str] = &[
    "allowed.test",
    "help.test",
    "casino.test",
    "www.casino.test",
    "chat.test",
    "secure.test",
    "www.google.com",
    "www.youtube.com",
    "bank.test",
];

/// An origin that answers by path.
async fn origin_service(
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let path = req.uri().path().to_owned();
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_owned()
    };
    let mut r = Response::builder();
    let body: Bytes = match path.as_str() {
        "/download" => {
            r = r.header("content-type", "application/octet-stream");
            Bytes::from_static(b"MZ\x90\x00\x03\x00\x00\x00\x04\x00program")
        }
        "/minutes.doc" => Bytes::from_static(b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1old word document"),
        "/installer" => Bytes::from_static(b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1installer"),
        "/attachment" => {
            r = r.header("content-disposition", "attachment; filename=\"tool.exe\"");
            Bytes::from_static(b"looks harmless")
        }
        "/report.pdf" => Bytes::from_static(b"%PDF-1.7 a report"),
        "/page.html" | "/page.gz" => {
            let html = b"<html><head><title>Forum</title><script>var x = 'kill';</script></head>\
                <body><p>I just want to <b>kill myself</b> tonight</p></body></html>";
            r = r
                .header("content-type", "text/html; charset=utf-8")
                .header("x-seen-accept-encoding", header("accept-encoding"));
            if path == "/page.gz" && header("accept-encoding").contains("gzip") {
                use std::io::Write;
                let mut gz =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                gz.write_all(html).unwrap();
                r = r.header("content-encoding", "gzip");
                Bytes::from(gz.finish().unwrap())
            } else {
                Bytes::from_static(html)
            }
        }
        "/notes.txt" => {
            r = r.header("content-type", "text/plain; charset=utf-8");
            Bytes::from_static(b"plain notes \xff then more")
        }
        "/big" => Bytes::from(vec![b'x'; 1 << 20]),
        "/tiny" => Bytes::from_static(b"M"),
        _ => Bytes::from(format!(
            "uri={}\nhost={}\nyoutube-restrict={}\nproxy-authorization={}\n",
            req.uri(),
            header("host"),
            header("youtube-restrict"),
            header("proxy-authorization"),
        )),
    };
    Ok(r.body(Full::new(body)).unwrap())
}

async fn http_origin() -> SocketAddr {
    http_origin_at("127.0.0.1:0").await
}

async fn http_origin_at(bind: &str) -> SocketAddr {
    let listener = TcpListener::bind(bind).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(
                TokioIo::new(stream),
                hyper::service::service_fn(origin_service),
            ));
        }
    });
    addr
}

/// An HTTPS origin with a certificate for `secure.test` and `casino.test`; returns its
/// address and the certificate (DER) for clients to trust.
async fn https_origin() -> (SocketAddr, Vec<u8>) {
    let cert = rcgen::generate_simple_self_signed(vec![
        "secure.test".into(),
        "casino.test".into(),
        "allowed.test".into(),
        "www.google.com".into(),
        "bank.test".into(),
    ])
    .unwrap();
    let der = cert.cert.der().to_vec();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.key_pair.serialize_der().into());
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(stream).await {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(
                            TokioIo::new(tls),
                            hyper::service::service_fn(origin_service),
                        )
                        .await;
                }
            });
        }
    });
    (addr, der)
}

struct Harness {
    proxy: SocketAddr,
    server: Arc<Proxy>,
    origin: SocketAddr,
    tls_origin: SocketAddr,
    tls_cert: Vec<u8>,
    store: Store,
    /// Every decision the monitoring would see, logged or not, as it was made.
    decisions: Arc<std::sync::Mutex<Vec<Event>>>,
    writer: Option<EventWriter>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    _dir: tempfile::TempDir,
}

struct Options {
    /// (cidr, group, login)
    networks: Vec<(&'static str, &'static str, Login)>,
    header_timeout: Duration,
    max_connections: usize,
    /// Inspect the learners' HTTPS with a CA made in the test folder.
    inspect: bool,
    /// Where page text goes.
    page_sink: Option<PageSink>,
    /// Internal destinations opened: (cidr, groups (empty: all), ports (empty: all)).
    internal: Vec<(&'static str, Vec<&'static str>, Vec<u16>)>,
    /// Sites open before portal sign-in.
    portal_allow: Vec<&'static str>,
    /// Passwords also checked against this directory.
    directory: Option<lookout_directory::Settings>,
    /// `[log] allowed`: log allowed requests too.
    log_allowed: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            networks: vec![("127.0.0.0/8", "learners", Login::Optional)],
            header_timeout: Duration::from_secs(5),
            max_connections: 64,
            inspect: false,
            page_sink: None,
            // The local origins listen on 127.0.0.1, which the proxy reaches only when told.
            internal: vec![("127.0.0.1/32", vec![], vec![])],
            portal_allow: Vec::new(),
            directory: None,
            log_allowed: true,
        }
    }
}

async fn start(opts: Options) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("gambling.txt"), "casino.test\n").unwrap();
    std::fs::write(dir.path().join("chat.txt"), "chat.test\n").unwrap();
    std::fs::write(dir.path().join("bank.txt"), "bank.test\n").unwrap();
    let mut config = Config::from_toml(CONFIG).unwrap();
    config.resolve_paths(dir.path());
    let policy = Arc::new(config.policy().unwrap());
    let index = lookout_lists::LiveIndex::from(lookout_loader::load(&config.lists).unwrap().index);
    let store = Store::open(&dir.path().join("lookout.db")).await.unwrap();
    let (log, writer) = EventLog::start(store.clone(), 10_000, 100, std::time::Duration::ZERO);
    let decisions = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = decisions.clone();
    let log = log.with_decision_observer(Observer(Arc::new(move |e: &Event| {
        seen.lock().expect("not poisoned").push(e.clone());
    })));
    let networks = Networks::new(
        opts.networks
            .iter()
            .map(|(cidr, group, login)| {
                let group = policy.group_id(group).unwrap();
                (
                    cidr.parse().unwrap(),
                    ClientNet {
                        group,
                        login: *login,
                    },
                )
            })
            .collect(),
    );
    let origin = http_origin().await;
    let (tls_origin, tls_cert) = https_origin().await;
    let mut hosts: HashMap<String, IpAddr> = NAMES
        .iter()
        .map(|n| (n.to_string(), "127.0.0.1".parse().unwrap()))
        .collect();
    // A public-looking name that resolves to an internal address (DNS rebinding).
    hosts.insert("www.rebind.test".into(), "127.0.0.5".parse().unwrap());
    let destinations = Destinations::new(
        opts.internal
            .iter()
            .map(|(net, groups, ports)| Internal {
                net: net.parse().unwrap(),
                groups: groups.iter().map(|g| policy.group_id(g).unwrap()).collect(),
                ports: ports.clone(),
            })
            .collect(),
        Vec::new(),
    );
    let settings = Settings {
        max_connections: opts.max_connections,
        header_timeout: opts.header_timeout,
        idle_timeout: Duration::from_secs(5),
        upstream_timeout: Duration::from_secs(5),
        connect_ports: vec![443, tls_origin.port()],
        resolver: Resolver::new(hosts),
        destinations: destinations.clone(),
        inspect_groups: vec![policy.group_id("learners").unwrap()],
        never_inspect: lookout_config::never_inspected(&config.proxy.inspect),
        extra_roots: vec![rustls::pki_types::CertificateDer::from(tls_cert.clone())],
        page_sink: opts.page_sink.clone(),
        portal: PortalSettings {
            allow: opts.portal_allow.iter().map(|s| s.to_string()).collect(),
            hours: 8,
            pac_direct: vec!["console.college.test".into()],
            pac_port: None,
            provider: None,
        },
        log_allowed: opts.log_allowed,
        ..Settings::default()
    };
    let mut proxy = Proxy::new(
        policy,
        index,
        match opts.directory {
            Some(d) => Identifier::new(networks, Some(store.clone()))
                .with_directory(lookout_directory::Directory::new(d).unwrap()),
            None => Identifier::new(networks, Some(store.clone())),
        },
        Some(log),
        Arc::new(|| LocalTime {
            weekday: Weekday::Wed,
            minute: 600,
        }),
        settings,
    )
    .unwrap();
    if opts.inspect {
        let ca = Inspector::load_or_create(&dir.path().join("ca")).unwrap();
        proxy = proxy.with_inspector(Arc::new(ca));
    }
    let proxy = Arc::new(proxy);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    destinations.add_listener(addr);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = proxy.clone();
    let task = tokio::spawn(run(listener, proxy, async {
        let _ = stopped.await;
    }));
    Harness {
        proxy: addr,
        server,
        origin,
        tls_origin,
        tls_cert,
        store,
        decisions,
        writer: Some(writer),
        stop: Some(stop),
        task: Some(task),
        _dir: dir,
    }
}

impl Harness {
    async fn add_user(&self, username: &str, group: &str, password: &str) {
        self.store
            .add_user(&NewUser {
                username: username.into(),
                display_name: format!("{username} full name"),
                group: group.into(),
                password: Some(password.into()),
                role: None,
                email: None,
                team: None,
            })
            .await
            .unwrap();
    }

    fn client(&self) -> reqwest::Client {
        self.client_as(None)
    }

    fn client_as(&self, login: Option<(&str, &str)>) -> reqwest::Client {
        self.client_from(login, "127.0.0.1")
    }

    /// A client whose connections come from `source` (an address on 127.0.0.0/8).
    fn client_from(&self, login: Option<(&str, &str)>, source: &str) -> reqwest::Client {
        let mut proxy = reqwest::Proxy::all(format!("http://{}", self.proxy)).unwrap();
        if let Some((u, p)) = login {
            proxy = proxy.basic_auth(u, p);
        }
        reqwest::Client::builder()
            .proxy(proxy)
            .redirect(reqwest::redirect::Policy::none())
            .add_root_certificate(reqwest::Certificate::from_der(&self.tls_cert).unwrap())
            .local_address(source.parse::<IpAddr>().unwrap())
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap()
    }

    fn url(&self, host: &str, path: &str) -> String {
        format!("http://{host}:{}{path}", self.origin.port())
    }

    /// Stops the proxy, flushes the log, and returns every event, oldest first.
    async fn events(&mut self) -> Vec<StoredEvent> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
        if let Some(w) = self.writer.take() {
            w.finish().await;
        }
        let mut all = self
            .store
            .events(&EventFilter {
                limit: Some(10_000),
                ..EventFilter::default()
            })
            .await
            .unwrap();
        all.reverse();
        all
    }
}

async fn get(client: &reqwest::Client, url: &str) -> (u16, String) {
    let r = client
        .get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{url}: {e:?}"));
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_block_and_the_log() {
    let mut h = start(Options::default()).await;
    let c = h.client();
    let (status, body) = get(&c, &h.url("allowed.test", "/page?x=1")).await;
    assert_eq!(status, 200);
    assert!(body.contains("uri=/page?x=1"), "{body}");
    assert!(
        body.contains(&format!("host=allowed.test:{}", h.origin.port())),
        "{body}"
    );
    assert!(body.contains("proxy-authorization=-"), "{body}");

    let (status, body) = get(&c, &h.url("www.casino.test", "/")).await;
    assert_eq!(status, 403);
    assert!(body.contains("This page is blocked"), "{body}");
    assert!(body.contains("Gambling"));
    assert!(body.contains("Report a concern") && body.contains("This should not be blocked"));
    let reference = body
        .split("<dt>Reference</dt><dd>")
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap()
        .to_owned();
    assert!(
        reference.starts_with("LK-") && reference.len() == 12,
        "{reference}"
    );

    // A forged Host header does not reach a blocked site through an allowed URL.
    let r = c
        .get(h.url("allowed.test", "/"))
        .header("host", "casino.test")
        .send()
        .await
        .unwrap();
    let body = r.text().await.unwrap();
    assert!(
        body.contains(&format!("host=allowed.test:{}", h.origin.port())),
        "{body}"
    );

    // A big body streams through and its bytes are logged.
    let r = c.get(h.url("allowed.test", "/big")).send().await.unwrap();
    assert_eq!(r.bytes().await.unwrap().len(), 1 << 20);

    let events = h.events().await;
    let actions: Vec<(&str, &str)> = events
        .iter()
        .map(|e| (e.event.action.as_str(), e.event.host.as_str()))
        .collect();
    assert_eq!(
        actions,
        [
            ("allow", "allowed.test"),
            ("block", "www.casino.test"),
            ("allow", "allowed.test"),
            ("allow", "allowed.test")
        ]
    );
    let blocked = &events[1].event;
    assert_eq!(blocked.reference, reference);
    assert_eq!(blocked.categories, "gambling");
    assert_eq!(blocked.rule, "category");
    assert_eq!(blocked.group, "learners");
    assert_eq!(blocked.client_ip, "127.0.0.1");
    assert_eq!(blocked.status, Some(403));
    assert!(blocked.reason.contains("casino.test"), "{}", blocked.reason);
    assert_eq!(events[3].event.bytes, 1 << 20);
    assert_eq!(events[0].event.method, "GET");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warnings_click_through_and_are_logged() {
    let mut h = start(Options::default()).await;
    let c = h.client();
    let url = h.url("chat.test", "/room");
    let (status, body) = get(&c, &url).await;
    assert_eq!(status, 403);
    assert!(
        body.contains("Are you sure you want to continue?"),
        "{body}"
    );
    let href = body
        .split("class=\"primary\" href=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .replace("&amp;", "&");
    assert!(
        href.starts_with("http://lookout.invalid/continue?"),
        "{href}"
    );

    let r = c.get(&href).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 303);
    assert_eq!(r.headers()["location"].to_str().unwrap(), url);
    let (status, body) = get(&c, &url).await;
    assert_eq!(status, 200, "{body}");

    // A block cannot be clicked through by crafting the link.
    let forged = format!(
        "http://lookout.invalid/continue?url={}",
        lookout_http::encode_param(&h.url("casino.test", "/"))
    );
    let (status, body) = get(&c, &forged).await;
    assert_eq!(status, 403);
    assert!(body.contains("This page is blocked"));
    assert_eq!(get(&c, &h.url("casino.test", "/")).await.0, 403);

    let events = h.events().await;
    let actions: Vec<&str> = events.iter().map(|e| e.event.action.as_str()).collect();
    assert_eq!(actions, ["warn", "continue", "continue", "block", "block"]);
    assert!(
        events[1]
            .event
            .reason
            .contains("clicked through warning LK-"),
        "{}",
        events[1].event.reason
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downloads_are_blocked_by_name_header_and_content_except_for_it_staff() {
    let mut h = start(Options {
        networks: vec![("127.0.0.0/8", "learners", Login::Optional)],
        ..Options::default()
    })
    .await;
    h.add_user("tech", "it-staff", "technician-pass").await;
    let learner = h.client();
    let it = h.client_as(Some(("tech", "technician-pass")));
    for (path, learner_status) in [
        ("/setup.exe", 403),
        ("/download", 403),
        ("/attachment", 403),
        ("/installer", 403),
        ("/minutes.doc", 200),
        ("/report.pdf", 200),
        ("/tiny", 200),
    ] {
        let (status, body) = get(&learner, &h.url("allowed.test", path)).await;
        assert_eq!(status, learner_status, "learner {path}: {body}");
        if status == 403 {
            assert!(
                body.contains("files is not allowed for this group"),
                "{body}"
            );
        }
        let (status, _) = get(&it, &h.url("allowed.test", path)).await;
        assert_eq!(status, 200, "it-staff {path}");
    }
    let events = h.events().await;
    let blocked: Vec<(String, String)> = events
        .iter()
        .filter(|e| e.event.action == "block")
        .map(|e| (e.event.rule.to_string(), e.event.reason.to_string()))
        .collect();
    assert_eq!(blocked.len(), 4, "{blocked:?}");
    assert!(blocked.iter().all(|(rule, _)| rule == "download"));
    assert!(blocked[1].1.contains(".exe"), "{blocked:?}");
    assert!(blocked[3].1.contains(".msi"), "{blocked:?}");
    assert!(
        events
            .iter()
            .filter(|e| e.event.username.as_deref() == Some("tech"))
            .count()
            == 7
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn safe_search_is_forced_and_search_terms_are_logged() {
    let mut h = start(Options::default()).await;
    let c = h.client();
    let (_, body) = get(
        &c,
        &h.url("www.google.com", "/search?q=how+to+vape&safe=off"),
    )
    .await;
    assert!(
        body.contains("uri=/search?q=how+to+vape&safe=active"),
        "{body}"
    );
    let (_, body) = get(&c, &h.url("www.youtube.com", "/results?search_query=drill")).await;
    assert!(body.contains("youtube-restrict=Strict"), "{body}");
    let events = h.events().await;
    let terms: Vec<Option<&str>> = events
        .iter()
        .map(|e| e.event.search_term.as_deref())
        .collect();
    assert_eq!(terms, [Some("how to vape"), Some("drill")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_allowed_requests_unlogged_monitoring_still_sees_them() {
    let mut h = start(Options {
        log_allowed: false,
        ..Options::default()
    })
    .await;
    let c = h.client();
    let (status, _) = get(&c, &h.url("www.google.com", "/search?q=how+to+vape")).await;
    assert_eq!(status, 200);
    let (status, _) = get(&c, &h.url("allowed.test", "/some/page")).await;
    assert_eq!(status, 200);
    let (status, _) = get(&c, &h.url("casino.test", "/")).await;
    assert_eq!(status, 403);
    let port = h.tls_origin.port();
    let (status, _) = get(&c, &format!("https://secure.test:{port}/hello")).await;
    assert_eq!(status, 200);
    let events = h.events().await;
    let logged: Vec<(&str, &str)> = events
        .iter()
        .map(|e| (e.event.action.as_str(), e.event.host.as_str()))
        .collect();
    assert_eq!(logged, [("block", "casino.test")]);
    let seen: Vec<(String, String, Option<String>)> = h
        .decisions
        .lock()
        .expect("not poisoned")
        .iter()
        .map(|e| (e.action.to_string(), e.host.clone(), e.search_term.clone()))
        .collect();
    let allow = |host: &str, term: Option<&str>| {
        ("allow".to_owned(), host.to_owned(), term.map(str::to_owned))
    };
    assert_eq!(
        seen,
        [
            allow("www.google.com", Some("how to vape")),
            allow("allowed.test", None),
            ("block".to_owned(), "casino.test".to_owned(), None),
            allow("secure.test", None),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_tunnels_are_decided_on_host_and_server_name() {
    let mut h = start(Options::default()).await;
    let c = h.client();
    let port = h.tls_origin.port();
    let (status, body) = get(&c, &format!("https://secure.test:{port}/hello")).await;
    assert_eq!(status, 200);
    assert!(body.contains("uri=/hello"), "{body}");

    let err = c
        .get(format!("https://casino.test:{port}/"))
        .send()
        .await
        .unwrap_err();
    assert!(format!("{err:?}").contains("TunnelUnsuccessful"), "{err:?}");

    // Raw CONNECTs: a blocked host, a port that is not allowed, domain fronting, not TLS.
    let (head, _) = raw_connect(h.proxy, &format!("casino.test:{port}")).await;
    assert_eq!(head, "HTTP/1.1 403");
    let (head, _) = raw_connect(h.proxy, "allowed.test:22").await;
    assert_eq!(head, "HTTP/1.1 403");

    let (head, mut s) = raw_connect(h.proxy, &format!("allowed.test:{port}")).await;
    assert_eq!(head, "HTTP/1.1 200");
    let mut rest = vec![0u8; 64];
    let _ = tokio::time::timeout(Duration::from_millis(200), s.read(&mut rest)).await;
    // A real TLS client asking for casino.test inside a tunnel to allowed.test.
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(h.tls_cert.clone()))
        .unwrap();
    let tls = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls));
    let name = rustls::pki_types::ServerName::try_from("casino.test").unwrap();
    assert!(
        connector.connect(name, s).await.is_err(),
        "domain fronting must fail"
    );

    let (head, mut s) = raw_connect(h.proxy, &format!("allowed.test:{port}")).await;
    assert_eq!(head, "HTTP/1.1 200");
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;

    let events = h.events().await;
    let rules: Vec<(&str, &str)> = events
        .iter()
        .map(|e| (e.event.action.as_str(), e.event.rule.as_str()))
        .collect();
    assert_eq!(
        rules,
        [
            ("block", "category"),
            ("block", "category"),
            ("block", "port"),
            ("block", "sni-mismatch"),
            ("block", "not-tls"),
            // An allowed tunnel is logged when it ends, with its bytes: here, at shutdown.
            ("allow", "default"),
        ]
    );
    assert!(events[5].event.bytes > 0);
    assert_eq!(events[5].event.method, "CONNECT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_outside_the_networks_are_refused() {
    let mut h = start(Options {
        networks: vec![("10.0.0.0/8", "learners", Login::Optional)],
        ..Options::default()
    })
    .await;
    let (status, body) = get(&h.client(), &h.url("allowed.test", "/")).await;
    assert_eq!(status, 403);
    assert!(body.contains("serves only the networks"), "{body}");
    assert!(
        h.events().await.is_empty(),
        "nothing was forwarded or decided"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_required_networks_ask_for_credentials() {
    let mut h = start(Options {
        networks: vec![("127.0.0.0/8", "learners", Login::Required)],
        ..Options::default()
    })
    .await;
    h.add_user("Amy", "learners", "amys-password").await;
    let r = h
        .client()
        .get(h.url("allowed.test", "/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 407);
    assert!(r.headers()["proxy-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Basic"));
    let (status, _) = get(
        &h.client_as(Some(("amy", "wrong-password"))),
        &h.url("allowed.test", "/"),
    )
    .await;
    assert_eq!(status, 407);
    let amy = h.client_as(Some(("AMY", "amys-password")));
    let (status, body) = get(&amy, &h.url("allowed.test", "/")).await;
    assert_eq!(status, 200);
    assert!(
        body.contains("proxy-authorization=-"),
        "credentials must not reach the origin: {body}"
    );
    let (status, body) = get(&amy, &h.url("casino.test", "/")).await;
    assert_eq!(status, 403);
    assert!(body.contains("amy (learners)"), "{body}");
    // An address with a signed-in user (as the captive portal will record) needs no
    // credentials; the user's own group applies.
    h.store
        .sign_in_address(
            "127.0.0.1".parse().unwrap(),
            "amy",
            lookout_store::now_ms() + 60_000,
        )
        .await
        .unwrap();
    h.server
        .identifier
        .forget_address("127.0.0.1".parse().unwrap());
    let (status, body) = get(&h.client(), &h.url("casino.test", "/")).await;
    assert_eq!(status, 403);
    assert!(body.contains("amy (learners)"), "{body}");
    let events = h.events().await;
    assert_eq!(events.len(), 3);
    assert!(events
        .iter()
        .all(|e| e.event.username.as_deref() == Some("amy")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_clients_get_clear_errors_and_others_are_unaffected() {
    let h = start(Options {
        header_timeout: Duration::from_secs(1),
        ..Options::default()
    })
    .await;
    // A slow client holding a connection open with half a request.
    let mut slow = TcpStream::connect(h.proxy).await.unwrap();
    slow.write_all(b"GET http://allowed.test/ HTTP/1.1\r\nHost: allo")
        .await
        .unwrap();

    // Oversized headers.
    let mut big = TcpStream::connect(h.proxy).await.unwrap();
    let huge = format!(
        "GET {} HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n",
        h.url("allowed.test", "/"),
        "a".repeat(100_000)
    );
    let _ = big.write_all(huge.as_bytes()).await;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), big.read_to_end(&mut buf)).await;
    let head = String::from_utf8_lossy(&buf);
    assert!(head.starts_with("HTTP/1.1 431"), "{head}");

    // Garbage.
    for junk in [
        &b"\x00\x01\x02 nonsense\r\n\r\n"[..],
        b"GET\r\n\r\n",
        b"GET http://[::1 HTTP/1.1\r\n\r\n",
    ] {
        let mut s = TcpStream::connect(h.proxy).await.unwrap();
        s.write_all(junk).await.unwrap();
        let mut buf = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
        let head = String::from_utf8_lossy(&buf);
        assert!(head.starts_with("HTTP/1.1 400"), "{junk:?}: {head}");
    }

    // Meanwhile a normal client is served.
    let (status, _) = get(&h.client(), &h.url("allowed.test", "/")).await;
    assert_eq!(status, 200);

    // The slow client is cut off after the header timeout.
    let mut buf = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut buf)).await;
    assert!(closed.is_ok(), "slow client still connected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_proxy_answers_busy() {
    let h = start(Options {
        max_connections: 1,
        ..Options::default()
    })
    .await;
    let mut first = TcpStream::connect(h.proxy).await.unwrap();
    first.write_all(b"GET ").await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut second = TcpStream::connect(h.proxy).await.unwrap();
    second
        .write_all(b"GET http://allowed.test/ HTTP/1.1\r\nHost: allowed.test\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), second.read_to_end(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 503"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspected_https_is_judged_per_url_except_never_inspected_categories() {
    let (tx, mut pages) = tokio::sync::mpsc::unbounded_channel();
    let mut h = start(Options {
        inspect: true,
        page_sink: Some(PageSink(Arc::new(move |p| {
            let _ = tx.send(p);
        }))),
        ..Options::default()
    })
    .await;
    let port = h.tls_origin.port();
    // The device fetches the filter's CA through the proxy, and trusts only it.
    let plain = reqwest::Client::builder()
        .proxy(reqwest::Proxy::all(format!("http://{}", h.proxy)).unwrap())
        .build()
        .unwrap();
    let r = plain
        .get("http://lookout.invalid/ca.crt")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let pem = r.text().await.unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
    let (status, body) = get(&plain, "http://lookout.invalid/ca").await;
    assert_eq!(status, 200);
    assert!(
        body.contains("Trusted Root Certification Authorities"),
        "{body}"
    );

    let device = reqwest::Client::builder()
        .proxy(reqwest::Proxy::all(format!("http://{}", h.proxy)).unwrap())
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let (status, body) = get(&device, &format!("https://secure.test:{port}/hello")).await;
    assert_eq!(status, 200);
    assert!(body.contains("uri=/hello"), "{body}");
    // Inspected pages' text reaches the monitoring too.
    let (status, _) = get(&device, &format!("https://secure.test:{port}/page.html")).await;
    assert_eq!(status, 200);
    let page = tokio::time::timeout(Duration::from_secs(10), pages.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(page.url, format!("https://secure.test:{port}/page.html"));
    assert_eq!(page.text, "I just want to kill myself tonight");
    // Path-level rules, downloads, pages and safe search now work for HTTPS.
    let (status, body) = get(&device, &format!("https://secure.test:{port}/setup.exe")).await;
    assert_eq!(status, 403);
    assert!(body.contains("files is not allowed"), "{body}");
    let (status, body) = get(&device, &format!("https://casino.test:{port}/")).await;
    assert_eq!(status, 403);
    assert!(body.contains("This page is blocked"), "{body}");
    let (_, body) = get(
        &device,
        &format!("https://www.google.com:{port}/search?q=knife+crime"),
    )
    .await;
    assert!(
        body.contains("uri=/search?q=knife+crime&safe=active"),
        "{body}"
    );

    // Banking is never inspected: the device sees the bank's own certificate, which this
    // test device does not trust, so the connection fails; a device trusting it gets through.
    let err = device
        .get(format!("https://bank.test:{port}/"))
        .send()
        .await
        .unwrap_err();
    assert!(
        format!("{err:?}").contains("certificate") || format!("{err:?}").contains("Certificate"),
        "{err:?}"
    );
    let (status, _) = get(&h.client(), &format!("https://bank.test:{port}/")).await;
    assert_eq!(status, 200);
    drop(device);

    let events = h.events().await;
    let urls: Vec<(&str, &str)> = events
        .iter()
        .map(|e| (e.event.action.as_str(), e.event.url.as_str()))
        .collect();
    let expect_https = |path: &str| format!("https://secure.test:{port}{path}");
    assert!(
        urls.contains(&("allow", expect_https("/hello").as_str())),
        "{urls:?}"
    );
    assert!(
        urls.contains(&("block", expect_https("/setup.exe").as_str())),
        "{urls:?}"
    );
    let search = events
        .iter()
        .find(|e| e.event.host == "www.google.com")
        .unwrap();
    assert_eq!(search.event.search_term.as_deref(), Some("knife crime"));
    let bank: Vec<&str> = events
        .iter()
        .filter(|e| e.event.host == "bank.test")
        .map(|e| e.event.method.as_str())
        .collect();
    assert_eq!(
        bank,
        ["CONNECT", "CONNECT"],
        "bank tunnels logged as tunnels, not requests"
    );
}

/// The next page text the proxy copied, within 10 s.
async fn next_page<T>(pages: &mut tokio::sync::mpsc::UnboundedReceiver<T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), pages.recv())
        .await
        .expect("a page copied within 10 s")
        .expect("the sink is open")
}

#[tokio::test]
async fn page_text_is_copied_for_the_monitoring_plain_or_gzip() {
    let (tx, mut pages) = tokio::sync::mpsc::unbounded_channel();
    let sink = PageSink(Arc::new(move |p| {
        let _ = tx.send(p);
    }));
    let mut h = start(Options {
        page_sink: Some(sink),
        ..Options::default()
    })
    .await;
    let c = h.client();
    let r = c
        .get(h.url("allowed.test", "/page.html"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.text().await.unwrap().contains("<b>kill myself</b>"),
        "the page itself is untouched"
    );
    let p = next_page(&mut pages).await;
    assert_eq!(p.title, "Forum");
    assert_eq!(p.text, "I just want to kill myself tonight");
    assert_eq!(
        (p.group.as_str(), p.client_ip.as_str()),
        ("learners", "127.0.0.1")
    );
    assert!(p.url.ends_with("/page.html"));

    // A browser offering brotli too is asked for gzip only, and the gzip body is read.
    let r = c
        .get(h.url("allowed.test", "/page.gz"))
        .header("accept-encoding", "gzip, deflate, br, zstd")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-seen-accept-encoding"], "gzip");
    assert_eq!(r.headers()["content-encoding"], "gzip");
    let _ = r.bytes().await.unwrap();
    let p = next_page(&mut pages).await;
    assert_eq!(p.text, "I just want to kill myself tonight");

    // Plain text is copied as it is, a byte that is not UTF-8 replaced.
    let r = c
        .get(h.url("allowed.test", "/notes.txt"))
        .send()
        .await
        .unwrap();
    let _ = r.bytes().await.unwrap();
    let p = next_page(&mut pages).await;
    assert_eq!(
        (p.title.as_str(), p.text.as_str()),
        ("", "plain notes \u{FFFD} then more")
    );

    // Not a page: nothing copied.
    let r = c
        .get(h.url("allowed.test", "/report.pdf"))
        .send()
        .await
        .unwrap();
    let _ = r.bytes().await.unwrap();
    h.events().await;
    assert!(pages.try_recv().is_err());
}

/// A raw `CONNECT` through the proxy: the status line's first 12 bytes and the stream.
async fn raw_connect(proxy: SocketAddr, target: &str) -> (String, TcpStream) {
    let mut s = TcpStream::connect(proxy).await.unwrap();
    s.write_all(format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut head = vec![0u8; 12];
    s.read_exact(&mut head).await.unwrap();
    (String::from_utf8_lossy(&head).into_owned(), s)
}

/// An origin at `bind` that counts the connections it accepts and otherwise answers as
/// `origin_service` does, except that with `gather`, no request for `/gather` is answered
/// until that many are waiting (so that they are at the origin at once).
async fn counting_origin(
    bind: &str,
    gather: Option<usize>,
) -> (SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
    let listener = TcpListener::bind(bind).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = seen.clone();
    let barrier = gather.map(|n| Arc::new(tokio::sync::Barrier::new(n)));
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let barrier = barrier.clone();
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let barrier = barrier.clone();
                async move {
                    match barrier {
                        Some(b) if req.uri().path() == "/gather" => {
                            b.wait().await;
                            Ok(Response::new(Full::new(Bytes::from_static(b"together"))))
                        }
                        _ => origin_service(req).await,
                    }
                }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
    (addr, seen)
}

/// A burst of requests to one origin leaves its connections open for the next burst: the
/// second burst of as many requests at once opens no new connection (a pool keeping only a
/// few idle connections per origin closes most and opens them again, which at a college's
/// peak costs the proxy half its throughput).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_to_one_origin_reuses_the_connections_of_the_last() {
    const AT_ONCE: usize = 100;
    let h = start(Options {
        max_connections: 4 * AT_ONCE,
        ..Options::default()
    })
    .await;
    let (origin, accepted) = counting_origin("127.0.0.1:0", Some(AT_ONCE)).await;
    let c = h.client();
    let url = format!("http://allowed.test:{}/gather", origin.port());
    for burst in 1..=2 {
        let mut requests = tokio::task::JoinSet::new();
        for _ in 0..AT_ONCE {
            let (c, url) = (c.clone(), url.clone());
            requests.spawn(async move { get(&c, &url).await });
        }
        while let Some(answer) = requests.join_next().await {
            let (status, body) = answer.unwrap();
            assert_eq!((status, body.as_str()), (200, "together"), "burst {burst}");
        }
        assert_eq!(
            accepted.load(std::sync::atomic::Ordering::SeqCst),
            AT_ONCE,
            "connections the origin accepted after burst {burst}"
        );
        // The proxy hands a connection back to its pool once the response has gone through.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_and_internal_networks_are_not_reachable_through_the_proxy() {
    let mut h = start(Options {
        networks: vec![
            ("127.0.0.1/32", "learners", Login::Optional),
            ("127.0.0.2/32", "it-staff", Login::Optional),
        ],
        internal: vec![
            ("127.0.0.1/32", vec![], vec![]),
            // The "intranet" on 127.0.0.5 is opened to IT staff only.
            ("127.0.0.5/32", vec!["it-staff"], vec![]),
        ],
        ..Options::default()
    })
    .await;
    let (intranet, seen) = counting_origin("127.0.0.5:0", None).await;
    let port = intranet.port();
    let learner = h.client();
    let proxy_port = h.proxy.port();
    // (URL, what the refusal must say)
    let refused = [
        (format!("http://127.0.0.5:{port}/"), "loopback"),
        // A public-looking name resolving to an internal address (rebinding).
        (format!("http://www.rebind.test:{port}/"), "loopback"),
        (format!("http://[::ffff:127.0.0.5]:{port}/"), "loopback"),
        (format!("http://[64:ff9b::7f00:5]:{port}/"), "loopback"),
        (format!("http://[::1]:{port}/"), "loopback"),
        (
            "http://169.254.169.254/latest/meta-data/".into(),
            "link-local",
        ),
        (format!("http://0.0.0.0:{port}/"), "unspecified"),
        (format!("http://0:{port}/"), "unspecified"),
        (format!("http://2130706437:{port}/"), "loopback"),
        (format!("http://10.1.2.3:{port}/"), "private network"),
        // The proxy itself, though 127.0.0.1 is opened for the origins.
        (format!("http://127.0.0.1:{proxy_port}/"), "own services"),
    ];
    for (url, why) in &refused {
        let (status, body) = get(&learner, url).await;
        assert_eq!(status, 403, "{url}: {body}");
        assert!(body.contains("This page is blocked"), "{url}: {body}");
        assert!(body.contains("destination refused"), "{url}: {body}");
        assert!(body.contains(why), "{url} should say {why}: {body}");
    }
    // Tunnels are refused before they are agreed to, by address and by resolved name.
    for target in [
        format!("127.0.0.5:{}", h.tls_origin.port()),
        format!("www.rebind.test:{}", h.tls_origin.port()),
        "[::1]:443".to_string(),
        "169.254.169.254:443".to_string(),
    ] {
        let (head, _) = raw_connect(h.proxy, &target).await;
        assert_eq!(head, "HTTP/1.1 403", "CONNECT {target}");
    }
    assert_eq!(
        seen.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "nothing reached the intranet"
    );

    // IT staff may reach the intranet; learners still may not, even with a pooled
    // connection to it open.
    let staff = reqwest::Client::builder()
        .proxy(reqwest::Proxy::all(format!("http://{}", h.proxy)).unwrap())
        .local_address("127.0.0.2".parse::<IpAddr>().unwrap())
        .build()
        .unwrap();
    let (status, body) = get(&staff, &format!("http://www.rebind.test:{port}/intranet")).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("uri=/intranet"), "{body}");
    let (status, _) = get(&learner, &format!("http://www.rebind.test:{port}/intranet")).await;
    assert_eq!(status, 403);
    assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 1);
    // The allowed origin on 127.0.0.1 still works for learners.
    let (status, _) = get(&learner, &h.url("allowed.test", "/")).await;
    assert_eq!(status, 200);

    let events = h.events().await;
    let refusals: Vec<_> = events
        .iter()
        .filter(|e| e.event.rule == "destination")
        .collect();
    assert_eq!(refusals.len(), refused.len() + 4 + 1, "{events:#?}");
    for e in &refusals {
        assert_eq!(e.event.action, "block");
        assert_eq!(e.event.group, "learners");
        assert_eq!(e.event.status, Some(403));
        assert!(
            e.event.reason.starts_with("destination refused: "),
            "{}",
            e.event.reason
        );
    }
    assert!(
        refusals[1].event.host == "www.rebind.test"
            && refusals[1].event.reason.contains("127.0.0.5")
    );
}

/// The hidden `token` field of a portal page.
fn token(page: &str) -> String {
    let at = page.find("name=\"token\" value=\"").expect("a token field") + 20;
    page[at..at + 32].to_owned()
}

async fn post_form(
    client: &reqwest::Client,
    url: &str,
    fields: &[(&str, &str)],
) -> (u16, Option<String>, String) {
    let r = client.post(url).form(fields).send().await.unwrap();
    let location = r
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_owned());
    (r.status().as_u16(), location, r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_portal_signs_a_device_in_after_the_briefing_is_accepted() {
    let mut h = start(Options {
        networks: vec![("127.0.0.0/8", "learners", Login::Portal)],
        portal_allow: vec!["help.test"],
        ..Options::default()
    })
    .await;
    h.add_user("amy", "learners", "amys-password").await;
    let device = h.client();
    let page = h.url("allowed.test", "/page");
    let portal = "http://lookout.invalid/portal";

    // Before sign-in: page loads go to the portal, HTTPS is refused with a page that says
    // where to go, the allow list is open (and still filtered).
    let r = device.get(&page).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 302);
    let to_portal = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        to_portal.starts_with(&format!("{portal}?to=http%3A%2F%2Fallowed.test")),
        "{to_portal}"
    );
    let (head, _) = raw_connect(h.proxy, "allowed.test:443").await;
    assert!(head.starts_with("HTTP/1.1 511"), "{head}");
    assert_eq!(get(&device, &h.url("help.test", "/")).await.0, 200);
    assert_eq!(get(&device, &h.url("casino.test", "/")).await.0, 302);
    // The PAC file, fetched directly (a device not yet using the proxy) or through it.
    let direct = reqwest::Client::builder().no_proxy().build().unwrap();
    for url in [
        format!("http://{}/proxy.pac", h.proxy),
        format!("http://{}/wpad.dat", h.proxy),
    ] {
        let pac = get(&direct, &url).await.1;
        assert!(
            pac.contains(&format!("return \"PROXY {}\";", h.proxy)),
            "{pac}"
        );
        assert!(pac.contains("host == \"console.college.test\""), "{pac}");
    }
    let pac = get(&device, "http://lookout.invalid/proxy.pac").await.1;
    assert!(pac.contains("FindProxyForURL"), "{pac}");

    // The sign-in form: a ticket for this address only, used once; a wrong password.
    let (status, form) = get(&device, &to_portal).await;
    assert_eq!(status, 200);
    assert!(
        form.contains("help.test"),
        "the allow list is shown: {form}"
    );
    let other_device = h.client_from(None, "127.0.0.2");
    let (status, _, body) = post_form(
        &other_device,
        &format!("{portal}/sign-in"),
        &[
            ("token", &token(&form)),
            ("username", "amy"),
            ("password", "amys-password"),
        ],
    )
    .await;
    assert_eq!(status, 400, "a ticket is for the address it was given to");
    assert!(body.contains("not opened on this device"), "{body}");
    let (_, form) = get(&device, &to_portal).await;
    let (status, _, form) = post_form(
        &device,
        &format!("{portal}/sign-in"),
        &[
            ("token", &token(&form)),
            ("username", "amy"),
            ("password", "wrong"),
        ],
    )
    .await;
    assert_eq!(status, 403);
    assert!(form.contains("not accepted"), "{form}");
    let (status, _, _) = post_form(
        &device,
        &format!("{portal}/sign-in"),
        &[("username", "amy"), ("password", "amys-password")],
    )
    .await;
    assert_eq!(
        status, 400,
        "no ticket, no sign-in (a page elsewhere cannot sign a device in)"
    );

    // A briefing for the learners: read and accepted before the internet.
    h.store
        .publish_briefing(
            &lookout_store::NewBriefing {
                group: Some("learners"),
                title: "Staying safe online",
                briefing:
                    "# Be kind\n\nTell **someone** if anything worries you.<script>x</script>",
                terms: "- I will not share my password.",
            },
            &lookout_store::AuditEntry::new("it", "briefing.publish", ""),
        )
        .await
        .unwrap();
    let (_, form) = get(&device, &to_portal).await;
    let (status, _, briefing) = post_form(
        &device,
        &format!("{portal}/sign-in"),
        &[
            ("token", &token(&form)),
            ("username", "AMY"),
            ("password", "amys-password"),
            ("to", "http://allowed.test/page"),
        ],
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        briefing.contains("<h1>Staying safe online</h1>"),
        "{briefing}"
    );
    assert!(briefing.contains("<strong>someone</strong>"), "{briefing}");
    assert!(briefing.contains("&lt;script&gt;"), "{briefing}");
    assert!(
        briefing.contains("I will not share my password."),
        "{briefing}"
    );
    assert_eq!(get(&device, &page).await.0, 302, "not before accepting");
    let (status, _, again) = post_form(
        &device,
        &format!("{portal}/accept"),
        &[
            ("token", &token(&briefing)),
            ("to", "http://allowed.test/page"),
        ],
    )
    .await;
    assert_eq!(status, 400, "the box must be ticked");
    assert!(again.contains("Tick the box"), "{again}");
    let version = h
        .store
        .current_briefing("learners")
        .await
        .unwrap()
        .unwrap()
        .id
        .to_string();
    let (status, location, _) = post_form(
        &device,
        &format!("{portal}/accept"),
        &[
            ("token", &token(&again)),
            ("accept", "yes"),
            ("version", &version),
            ("to", "http://allowed.test/page"),
        ],
    )
    .await;
    assert_eq!(
        (status, location.as_deref()),
        (303, Some("http://allowed.test/page"))
    );
    assert_eq!(get(&device, &page).await.0, 200);
    assert_eq!(
        get(&device, &h.url("casino.test", "/")).await.0,
        403,
        "still filtered"
    );
    let accepted = h
        .store
        .acceptances(Some(version.parse().unwrap()))
        .await
        .unwrap();
    assert_eq!(accepted.len(), 1);
    assert_eq!(
        (
            accepted[0].username.as_str(),
            accepted[0].client_ip.as_str()
        ),
        ("amy", "127.0.0.1")
    );
    // Another device on the network is not signed in by this one.
    assert_eq!(get(&other_device, &page).await.0, 302);

    // A new version is due again.
    h.store
        .publish_briefing(
            &lookout_store::NewBriefing {
                group: Some("learners"),
                title: "Staying safe online (2027)",
                briefing: "New text.",
                terms: "Same terms.",
            },
            &lookout_store::AuditEntry::new("it", "briefing.publish", ""),
        )
        .await
        .unwrap();
    // The gateway in the same process asks at once (else within its one-minute cache).
    assert_eq!(get(&device, &page).await.0, 302);
    // Proxy credentials on a portal network do not skip the briefing either.
    assert_eq!(
        get(&h.client_as(Some(("amy", "amys-password"))), &page)
            .await
            .0,
        302
    );
    let (status, briefing) = get(&device, portal).await;
    assert_eq!(status, 200);
    assert!(
        briefing.contains("Staying safe online (2027)"),
        "{briefing}"
    );

    // Signing out.
    let (status, _, out) = post_form(
        &device,
        &format!("{portal}/sign-out"),
        &[("token", &token(&briefing))],
    )
    .await;
    assert_eq!(status, 200);
    assert!(out.contains("You are signed out"), "{out}");
    assert_eq!(get(&device, &page).await.0, 302);

    let events = h.events().await;
    let amy_pages = events
        .iter()
        .filter(|e| e.event.username.as_deref() == Some("amy"))
        .count();
    assert_eq!(
        amy_pages, 2,
        "the allowed page and the gambling block, as amy"
    );
}

/// A learner signs in at the portal with the college directory's password (no local
/// account); with the directory down, the portal says so instead of "wrong password".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_portal_signs_in_directory_users() {
    let ldif = "dn: dc=college,dc=test\nobjectClass: dcObject\nobjectClass: organization\no: College\ndc: college\n\ndn: uid=leo,dc=college,dc=test\nobjectClass: inetOrgPerson\nuid: leo\ncn: Leo Learner\nsn: Learner\nuserPassword: leos-password\n\ndn: cn=Learners,dc=college,dc=test\nobjectClass: groupOfNames\ncn: Learners\nmember: uid=leo,dc=college,dc=test\n";
    let Some(slapd) = lookout_testkit::Slapd::start("dc=college,dc=test", ldif) else {
        return;
    };
    let h = start(Options {
        networks: vec![("127.0.0.0/8", "it-staff", Login::Portal)],
        directory: Some(lookout_directory::Settings {
            url: slapd.url.clone(),
            starttls: false,
            bind_dn: None,
            bind_password: None,
            base_dn: "dc=college,dc=test".into(),
            user_filter: "(uid={username})".into(),
            groups: vec![("cn=Learners,dc=college,dc=test".into(), "learners".into())],
            default_group: None,
            timeout: Duration::from_secs(5),
        }),
        ..Options::default()
    })
    .await;
    let device = h.client();
    let portal = "http://lookout.invalid/portal";
    let (_, form) = get(&device, portal).await;
    let (status, _, body) = post_form(
        &device,
        &format!("{portal}/sign-in"),
        &[
            ("token", &token(&form)),
            ("username", "leo"),
            ("password", "leos-password"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("leo"), "{body}");
    // Signed in at this address, as a learner (the group the directory gave).
    let (status, page) = get(&device, &h.url("casino.test", "/")).await;
    assert_eq!(status, 403);
    assert!(page.contains("leo (learners)"), "{page}");
    let leo = h.store.user("leo").await.unwrap().expect("a local record");
    assert!(!leo.has_password);
    // The directory down: the portal says the directory cannot be reached.
    drop(slapd);
    let other = h.client_from(None, "127.0.0.2");
    let (_, form) = get(&other, portal).await;
    let (status, _, body) = post_form(
        &other,
        &format!("{portal}/sign-in"),
        &[
            ("token", &token(&form)),
            ("username", "leo"),
            ("password", "leos-password"),
        ],
    )
    .await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("cannot be reached"), "{body}");
}
