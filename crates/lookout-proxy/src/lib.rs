//! Lookout's HTTP/HTTPS forward proxy.
//!
//! [`run`] serves an already-bound listener until a shutdown future completes. Each connection
//! is checked against the client networks first: Lookout is never an open proxy. HTTP requests
//! are decided on their full URL (block and warning pages, safe search, search terms,
//! downloads judged by URL, `Content-Disposition` and the first bytes of the body); `CONNECT`
//! tunnels are decided on the host, then on the TLS ClientHello's server name, which must
//! match it (no domain fronting) and must be TLS at all.
//!
//! Every decision becomes an [`lookout_store::Event`] on the [`EventLog`]; the request path
//! never waits for the database.

mod body;
mod connect;
mod handler;
mod identify;
mod inspect;
mod page;
mod portal;
mod resolve;
mod tunnel;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::server::conn::http1;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use lookout_lists::CategorySet;
use lookout_lists::LiveIndex;
use lookout_policy::{Clock, Destinations, GroupId, Policy};
use lookout_store::EventLog;
use rustls::pki_types::CertificateDer;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use identify::{ClientNet, Identifier, Login, Refusal, Who};
pub use inspect::{CaError, Inspector};
pub use page::{PageCapture, PageSink};
pub use portal::{PortalProvider, PortalSettings};
pub use resolve::Resolver;

/// The reserved host name of the proxy's own pages (`.invalid` never resolves, RFC 2606).
pub const LOCAL_HOST: &str = "lookout.invalid";

/// Limits and links.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Client connections served at once; more are answered 503.
    pub max_connections: usize,
    /// Most bytes of request line and headers (at least 8192).
    pub max_header_bytes: usize,
    /// Time a client has to send a request's headers.
    pub header_timeout: Duration,
    /// Time a tunnel may carry nothing either way.
    pub idle_timeout: Duration,
    /// Time to connect to an origin and get its response headers.
    pub upstream_timeout: Duration,
    /// Ports `CONNECT` may reach.
    pub connect_ports: Vec<u16>,
    /// Base of the safeguarding console's links; empty for the proxy's own pages.
    pub console_url: String,
    /// Log allowed requests too.
    pub log_allowed: bool,
    /// Origin names resolved before (and instead of) the system resolver.
    pub resolver: Resolver,
    /// Where the proxy may connect on each group's behalf (never the gateway itself or what
    /// is behind it, unless opened).
    pub destinations: Destinations,
    /// Groups whose HTTPS is inspected (when an [`Inspector`] is given).
    pub inspect_groups: Vec<GroupId>,
    /// Categories never inspected.
    pub never_inspect: CategorySet,
    /// CA certificates trusted for origin servers besides the system's.
    pub extra_roots: Vec<CertificateDer<'static>>,
    /// Where the text of HTML and plain-text pages goes (the monitoring), if anywhere.
    pub page_sink: Option<PageSink>,
    /// Bytes of each page copied for its text.
    pub page_bytes: usize,
    /// Browser sign-in for networks with `login = "portal"`, and the PAC file.
    pub portal: PortalSettings,
    /// More for `/status`, under `"central"`: a site gateway's link to its central (policy
    /// version, the last good copy in use, events still to send).
    pub status_extra: Option<StatusExtra>,
}

/// A part of `/status` the server fills in; must not block.
#[derive(Clone)]
pub struct StatusExtra(pub Arc<dyn Fn() -> serde_json::Value + Send + Sync>);

impl std::fmt::Debug for StatusExtra {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StatusExtra")
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            max_connections: 4096,
            max_header_bytes: 32 * 1024,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            upstream_timeout: Duration::from_secs(15),
            connect_ports: vec![443],
            console_url: String::new(),
            log_allowed: true,
            resolver: Resolver::default(),
            destinations: Destinations::default(),
            inspect_groups: Vec::new(),
            never_inspect: CategorySet::EMPTY,
            extra_roots: Vec::new(),
            page_sink: None,
            page_bytes: 256 * 1024,
            portal: PortalSettings {
                hours: 8,
                ..PortalSettings::default()
            },
            status_extra: None,
        }
    }
}

/// A proxy that cannot be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    /// The TLS client for origin servers.
    #[error("TLS setup: {0}")]
    Tls(String),
}

/// Counters for the status page.
#[derive(Debug, Default)]
pub struct Counters {
    /// Connections accepted and served.
    pub connections: AtomicU64,
    /// Connections refused: client outside every network.
    pub refused_clients: AtomicU64,
    /// Connections refused: connection limit reached.
    pub refused_busy: AtomicU64,
    /// Requests decided.
    pub requests: AtomicU64,
    /// Decisions by action (a CONNECT judged again by its TLS name counts twice).
    pub decisions: lookout_policy::ActionCounts,
}

/// Idle connections kept open to one origin (per group's client, for 30 s at most). Enough for
/// a busy origin's connections at a college's peak to be used again rather than closed and
/// opened anew: with 32, 10,000 clients on one origin (`bench/scale-curves`) got 12.3k
/// requests/s, p99 3.0 s, the kernel busy searching ports among closed connections; with
/// 1,024, 22.1k requests/s, p99 1.4 s, at the same memory. The pool never holds more
/// connections than were in use at once a moment before.
const ORIGIN_IDLE_PER_HOST: usize = 1024;

/// Everything the proxy shares between connections.
pub struct Proxy {
    /// Every group's rules.
    pub policy: Arc<Policy>,
    /// The compiled lists, replaced whole when they change.
    pub index: LiveIndex,
    /// Who is asking.
    pub identifier: Identifier,
    /// The activity log, if events are kept.
    pub log: Option<EventLog>,
    /// The local clock, for schedules.
    pub clock: Clock,
    /// Limits and links.
    pub settings: Settings,
    /// Counters.
    pub counters: Counters,
    /// One HTTP client per group, so that a pooled connection to a destination one group
    /// may reach never serves another.
    clients: Vec<(GroupId, OriginClient)>,
    /// The organisation CA, when HTTPS inspection is on.
    inspector: Option<Arc<Inspector>>,
    /// (who, host) → when a warning was clicked through.
    continues: Mutex<HashMap<(String, String), Instant>>,
    /// The portal's form tickets and attempt counts.
    portal: portal::Portal,
    /// Connections and tunnels, to wait for on shutdown.
    tasks: TaskTracker,
    /// Cancelled on shutdown: idle connections close, tunnels end.
    stopping: CancellationToken,
}

type OriginClient = Client<HttpsConnector<connect::OriginConnector>, hyper::body::Incoming>;

/// Refusals (403 outsider, 503 busy) being answered at once.
const REFUSALS: usize = 256;
/// Time to read a refused client's request and answer it.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a clicked-through warning lasts for that person and host.
const CONTINUE_FOR: Duration = Duration::from_secs(60 * 60);

impl Proxy {
    /// Decides on a request's URL (a malformed one is blocked) for `group` now, and counts
    /// the decision.
    pub(crate) fn decide(
        &self,
        group: GroupId,
        url: &Result<lookout_lists::NormUrl, lookout_lists::UrlError>,
    ) -> lookout_policy::Decision {
        let decision = match url {
            Ok(u) => self
                .policy
                .decide(&self.index.load(), group, u, (self.clock)()),
            Err(e) => Policy::decide_invalid(e.clone()),
        };
        self.counters.decisions.count(decision.action);
        decision
    }

    /// A proxy over a policy and lists.
    pub fn new(
        policy: Arc<Policy>,
        index: LiveIndex,
        identifier: Identifier,
        log: Option<EventLog>,
        clock: Clock,
        settings: Settings,
    ) -> Result<Proxy, ProxyError> {
        let mut roots = rustls::RootCertStore::empty();
        // Unreadable system certificates are skipped; the origin's TLS error names the problem.
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
        for cert in &settings.extra_roots {
            roots
                .add(cert.clone())
                .map_err(|e| ProxyError::Tls(format!("an extra CA certificate: {e}")))?;
        }
        let tls = rustls::ClientConfig::builder_with_provider(inspect::provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| ProxyError::Tls(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let clients = policy
            .groups()
            .iter()
            .filter_map(|g| policy.group_id(g.name()))
            .map(|group| {
                let connector = connect::OriginConnector {
                    resolver: settings.resolver.clone(),
                    destinations: settings.destinations.clone(),
                    group,
                    timeout: settings.upstream_timeout,
                };
                let connector = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_tls_config(tls.clone())
                    .https_or_http()
                    .enable_http1()
                    .wrap_connector(connector);
                let client = Client::builder(TokioExecutor::new())
                    .pool_idle_timeout(Duration::from_secs(30))
                    .pool_max_idle_per_host(ORIGIN_IDLE_PER_HOST)
                    .timer(TokioTimer::new())
                    .pool_timer(TokioTimer::new())
                    .build(connector);
                (group, client)
            })
            .collect();
        Ok(Proxy {
            policy,
            index,
            identifier,
            log,
            clock,
            settings,
            counters: Counters::default(),
            clients,
            continues: Mutex::new(HashMap::new()),
            portal: portal::Portal::default(),
            tasks: TaskTracker::new(),
            stopping: CancellationToken::new(),
            inspector: None,
        })
    }

    /// Turns HTTPS inspection on for `settings.inspect_groups` with this CA.
    pub fn with_inspector(mut self, inspector: Arc<Inspector>) -> Proxy {
        self.inspector = Some(inspector);
        self
    }

    /// The HTTP client for `group`'s requests.
    fn client(&self, group: GroupId) -> &OriginClient {
        let found = self.clients.iter().find(|(g, _)| *g == group);
        // Every group of the policy has one; the policy does not change under a proxy.
        &found.unwrap_or(&self.clients[0]).1
    }

    /// Whether a tunnel for `who` to a host with `categories` is decrypted.
    fn inspects(&self, who: &Who, categories: CategorySet) -> bool {
        self.inspector.is_some()
            && self.settings.inspect_groups.contains(&who.group)
            && categories
                .intersection(self.settings.never_inspect)
                .is_empty()
    }

    fn continued(&self, who: &Who, host: &str) -> bool {
        let key = (continue_key(who), host.to_owned());
        let map = self.continues.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&key).is_some_and(|at| at.elapsed() < CONTINUE_FOR)
    }

    fn allow_continue(&self, who: &Who, host: &str) {
        let mut map = self.continues.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() > 100_000 {
            map.retain(|_, at| at.elapsed() < CONTINUE_FOR);
        }
        map.insert((continue_key(who), host.to_owned()), Instant::now());
    }
}

fn continue_key(who: &Who) -> String {
    match &who.user {
        Some(u) => format!("user:{u}"),
        None => format!("ip:{}", who.ip),
    }
}

/// Serves proxy clients on `listener` until `shutdown` completes, then waits (up to the
/// header timeout) for requests in progress to finish.
pub async fn run(
    listener: TcpListener,
    proxy: Arc<Proxy>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(proxy.settings.max_connections));
    // Refusals are answered properly, but only so many at once.
    let refusals = Arc::new(Semaphore::new(REFUSALS));
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                // Out of file descriptors and the like: wait, do not spin or stop.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        if proxy.identifier.network(peer.ip()).is_none() {
            proxy
                .counters
                .refused_clients
                .fetch_add(1, Ordering::Relaxed);
            spawn_refusal(
                &refusals,
                stream,
                403,
                "This proxy serves only the networks it is configured for.\n",
            );
            continue;
        }
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            proxy.counters.refused_busy.fetch_add(1, Ordering::Relaxed);
            spawn_refusal(
                &refusals,
                stream,
                503,
                "The filter is busy; try again in a moment.\n",
            );
            continue;
        };
        proxy.counters.connections.fetch_add(1, Ordering::Relaxed);
        let proxy2 = proxy.clone();
        proxy.tasks.spawn(async move {
            serve_connection(stream, peer, proxy2).await;
            drop(permit);
        });
    }
    // Idle connections close and tunnels end; requests in flight get the header timeout to
    // finish, so that their events are logged.
    proxy.stopping.cancel();
    proxy.tasks.close();
    let _ = tokio::time::timeout(proxy.settings.header_timeout, proxy.tasks.wait()).await;
    Ok(())
}

/// Answers the client's request with `status` and `message` on a spare refusal slot (if
/// none is free, the socket is just closed).
fn spawn_refusal(slots: &Arc<Semaphore>, stream: TcpStream, status: u16, message: &'static str) {
    let Ok(permit) = slots.clone().try_acquire_owned() else {
        return;
    };
    tokio::spawn(async move {
        refuse(stream, status, message).await;
        drop(permit);
    });
}

/// Answers every request on `stream` with `status` and `message`, then closes it.
async fn refuse(stream: TcpStream, status: u16, message: &'static str) {
    let service = hyper::service::service_fn(move |_req| async move {
        let mut r = hyper::Response::new(body::full(message));
        *r.status_mut() =
            hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::FORBIDDEN);
        r.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        Ok::<_, std::convert::Infallible>(r)
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(REFUSAL_TIMEOUT)
        .keep_alive(false)
        .serve_connection(TokioIo::new(stream), service);
    let _ = tokio::time::timeout(REFUSAL_TIMEOUT, conn).await;
}

async fn serve_connection(stream: TcpStream, peer: SocketAddr, proxy: Arc<Proxy>) {
    let _ = stream.set_nodelay(true);
    let Ok(local) = stream.local_addr() else {
        return;
    };
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(proxy.settings.header_timeout)
        .max_buf_size(proxy.settings.max_header_bytes.max(8192))
        .keep_alive(true);
    let stopping = proxy.stopping.clone();
    let service = hyper::service::service_fn(move |req| {
        let proxy = proxy.clone();
        async move { Ok::<_, std::convert::Infallible>(handler::handle(proxy, peer, local, req).await) }
    });
    let conn = builder
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => return,
        () = stopping.cancelled() => {}
    }
    conn.as_mut().graceful_shutdown();
    let _ = conn.await;
}
