//! Lookout's DNS filter server: answers DNS over UDP and TCP with the `lookout-dns` engine,
//! forwards allowed names to the configured upstream resolvers, and caches their replies.
//!
//! [`run`] takes already-bound sockets and a shutdown future, so tests bind port 0. Clients are
//! mapped to groups by network; a client outside every network is REFUSED (never an open
//! resolver). An upstream that fails or is silent past the timeout gives SERVFAIL: a query
//! never hangs.

mod cache;

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use lookout_dns::{fit_udp, handle, refuse, Asked, Context, Outcome, Pending, Settings};
use lookout_lists::LiveIndex;
use lookout_policy::{Action, Decision, GroupId, Networks, Policy, Reason};
use lookout_store::{now_ms, Event, EventLog};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;

pub use cache::{Cache, Key};

/// The most bytes in a UDP answer to a client (RFC 1035; EDNS sizes are not negotiated yet).
const UDP_MAX: usize = 512;
/// Queries answered at once; more wait for a slot.
const IN_FLIGHT: usize = 1024;
/// TCP connections served at once; more wait to be accepted.
const TCP_CONNECTIONS: usize = 256;
/// How long a TCP client may stay silent.
const TCP_IDLE: Duration = Duration::from_secs(10);

/// Client networks and their groups; see [`Networks`].
pub type Clients = Networks<GroupId>;

pub use lookout_policy::Clock;

/// Everything the server needs, shared by every query.
pub struct DnsServer {
    /// Every group's rules.
    pub policy: Arc<Policy>,
    /// The compiled lists, replaced whole when they change.
    pub index: LiveIndex,
    /// Block answers and TTLs.
    pub settings: Settings,
    /// Client networks and their groups.
    pub clients: Clients,
    /// Upstream resolvers, tried in order.
    pub upstreams: Vec<SocketAddr>,
    /// How long to wait for each upstream.
    pub timeout: Duration,
    /// Upstream replies by question.
    pub cache: Cache,
    /// The local clock, for schedules.
    pub clock: Clock,
    /// The activity log, if queries are logged.
    pub log: Option<EventLog>,
    /// Log allowed names too (otherwise only blocked ones).
    pub log_allowed: bool,
    /// What it has answered, for metrics.
    pub counters: Counters,
}

/// Queries counted, for metrics (relaxed atomics).
#[derive(Debug, Default)]
pub struct Counters {
    /// Query packets received from anyone.
    pub queries: std::sync::atomic::AtomicU64,
    /// Queries refused: the client is outside every network.
    pub refused: std::sync::atomic::AtomicU64,
    /// Names judged, by action.
    pub decisions: lookout_policy::ActionCounts,
}

impl DnsServer {
    /// The answer to one query packet from `client`, if it deserves one.
    pub async fn answer(&self, packet: &[u8], client: IpAddr) -> Option<Vec<u8>> {
        match self.prepare(packet, client) {
            Step::Answer(a) => Some(a),
            Step::Silent => None,
            Step::Ask(pending) => Some(self.resolve(&pending, client).await),
        }
    }

    /// Everything that needs no waiting: judge (and log) the query, answer blocked names,
    /// malformed packets and cached names at once; otherwise say what to ask upstream.
    pub fn prepare(&self, packet: &[u8], client: IpAddr) -> Step {
        use std::sync::atomic::Ordering::Relaxed;
        self.counters.queries.fetch_add(1, Relaxed);
        let Some(&group) = self.clients.get(client) else {
            self.counters.refused.fetch_add(1, Relaxed);
            return step(refuse(packet));
        };
        let index = self.index.load();
        let ctx = Context {
            policy: &self.policy,
            index: &index,
            group,
            at: (self.clock)(),
            settings: &self.settings,
        };
        match handle(packet, &ctx) {
            Outcome::Forward(pending) => {
                self.record(client, group, &pending.asked, &pending.decision);
                match self.cache.get(&cache_key(&pending)) {
                    Some((reply, age)) => {
                        Step::Answer(self.complete(&pending, &reply, age, client))
                    }
                    None => Step::Ask(pending),
                }
            }
            Outcome::Respond {
                packet,
                decision: Some(decision),
                asked: Some(asked),
            } => {
                self.record(client, group, &asked, &decision);
                step(Outcome::Respond {
                    packet,
                    decision: None,
                    asked: None,
                })
            }
            other => step(other),
        }
    }

    /// Asks the upstreams in order (caching the reply); SERVFAIL when none answers in time.
    pub async fn resolve(&self, pending: &Pending, client: IpAddr) -> Vec<u8> {
        for &upstream in &self.upstreams {
            if let Some(reply) = ask(upstream, pending, self.timeout).await {
                self.cache.put(cache_key(pending), &reply);
                return self.complete(pending, &reply, 0, client);
            }
        }
        pending.servfail()
    }

    /// The client's answer from an upstream reply kept `age` seconds; internal addresses
    /// withheld from a public name (rebinding protection) are logged as a refusal.
    fn complete(&self, pending: &Pending, reply: &[u8], age: u32, client: IpAddr) -> Vec<u8> {
        let done = pending.complete_aged(reply, age);
        if !done.withheld.is_empty() {
            let addrs: Vec<String> = done.withheld.iter().map(IpAddr::to_string).collect();
            let decision = Decision {
                action: Action::Block,
                categories: pending.decision.categories,
                reason: Reason::Destination(format!(
                    "{} was answered with internal address(es) {}, not passed on (DNS rebinding protection; a name of the organisation's own goes in `dns.internal_domains`)",
                    pending.asked.host,
                    addrs.join(", ")
                )),
            };
            self.record_always(client, pending.group, &pending.asked, &decision);
        }
        done.packet
    }

    /// Logs a judged query.
    fn record(&self, client: IpAddr, group: GroupId, asked: &Asked, decision: &Decision) {
        self.counters.decisions.count(decision.action);
        if decision.action == Action::Allow && !self.log_allowed {
            return;
        }
        self.record_always(client, group, asked, decision);
    }

    fn record_always(&self, client: IpAddr, group: GroupId, asked: &Asked, decision: &Decision) {
        let Some(log) = &self.log else { return };
        log.record(Event {
            at_ms: now_ms(),
            reference: String::new(),
            service: "dns",
            client_ip: lookout_store::ip_text(client),
            username: None,
            group: self.policy.group(group).name().into(),
            method: <&'static str>::from(asked.qtype).into(),
            url: asked.host.clone(),
            host: asked.host.clone(),
            search_term: None,
            categories: decision.categories.slugs().into(),
            action: decision.action.as_str().into(),
            rule: decision.reason.rule().into(),
            reason: decision.reason.text().into(),
            status: None,
            bytes: 0,
        });
    }
}

/// What [`DnsServer::prepare`] leaves to do.
#[derive(Debug)]
pub enum Step {
    /// Send this answer.
    Answer(Vec<u8>),
    /// Send nothing.
    Silent,
    /// Ask upstream ([`DnsServer::resolve`]).
    Ask(Box<Pending>),
}

fn step(outcome: Outcome) -> Step {
    match outcome {
        Outcome::Respond { packet, .. } if !packet.is_empty() => Step::Answer(packet),
        Outcome::Forward(pending) => Step::Ask(pending),
        _ => Step::Silent,
    }
}

fn cache_key(pending: &Pending) -> Key {
    let (name, qtype) = pending.upstream_question();
    (name.to_lowercase().to_ascii(), u16::from(qtype))
}

/// Asks one upstream over UDP from a fresh socket and id, and again over TCP if the reply was
/// truncated; `None` if it fails or is silent past `timeout`.
async fn ask(upstream: SocketAddr, pending: &Pending, timeout: Duration) -> Option<Vec<u8>> {
    let reply = ask_udp(upstream, pending, timeout).await?;
    // TC: the answer did not fit in a datagram; ask for the whole of it over TCP.
    if reply[2] & 0x02 != 0 {
        return ask_tcp(upstream, pending, timeout).await;
    }
    Some(reply)
}

async fn ask_tcp(upstream: SocketAddr, pending: &Pending, timeout: Duration) -> Option<Vec<u8>> {
    let exchange = async {
        let mut stream = TcpStream::connect(upstream).await.ok()?;
        let id: u16 = rand::random();
        let query = pending.upstream_query(id);
        stream
            .write_all(&u16::try_from(query.len()).ok()?.to_be_bytes())
            .await
            .ok()?;
        stream.write_all(&query).await.ok()?;
        let mut len = [0u8; 2];
        stream.read_exact(&mut len).await.ok()?;
        let mut reply = vec![0u8; u16::from_be_bytes(len) as usize];
        stream.read_exact(&mut reply).await.ok()?;
        (reply.len() >= 12 && u16::from_be_bytes([reply[0], reply[1]]) == id).then_some(reply)
    };
    tokio::time::timeout(timeout, exchange).await.ok().flatten()
}

async fn ask_udp(upstream: SocketAddr, pending: &Pending, timeout: Duration) -> Option<Vec<u8>> {
    let bind: SocketAddr = match upstream {
        SocketAddr::V4(_) => ([0, 0, 0, 0], 0).into(),
        SocketAddr::V6(_) => ([0u16; 8], 0).into(),
    };
    let socket = UdpSocket::bind(bind).await.ok()?;
    socket.connect(upstream).await.ok()?;
    let id: u16 = rand::random();
    socket.send(&pending.upstream_query(id)).await.ok()?;
    let mut buf = vec![0u8; 4096];
    let wait = async {
        loop {
            let n = socket.recv(&mut buf).await.ok()?;
            // Only a reply with our id counts (a connected socket only hears the upstream).
            if n >= 12 && u16::from_be_bytes([buf[0], buf[1]]) == id {
                return Some(buf[..n].to_vec());
            }
        }
    };
    tokio::time::timeout(timeout, wait).await.ok().flatten()
}

/// How many tasks receive on the UDP socket at once: one a core, two to four.
pub fn receivers() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().clamp(1, 4))
}

/// Serves DNS like [`run`], on a runtime of its own: [`receivers`] worker threads named
/// `lookout-dns`, with the sockets moved onto them. The gateway's runtime can then leave a core
/// to other threads (from three cores up: see `gateway_workers` in `lookout serve`) without the
/// DNS filter losing its parallel receivers. The returned future ends with [`run`]'s result, once `shutdown` has
/// completed and the runtime is gone.
pub fn spawn(
    udp: UdpSocket,
    tcp: TcpListener,
    server: Arc<DnsServer>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<impl Future<Output = std::io::Result<()>>> {
    let (udp, tcp) = (udp.into_std()?, tcp.into_std()?);
    let (done, result) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("lookout-dns".into())
        .spawn(move || {
            let served = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(receivers())
                .thread_name("lookout-dns")
                .enable_all()
                .build()
                .and_then(|runtime| {
                    runtime.block_on(async {
                        let udp = UdpSocket::from_std(udp)?;
                        let tcp = TcpListener::from_std(tcp)?;
                        run(udp, tcp, server, shutdown).await
                    })
                });
            let _ = done.send(served);
        })?;
    Ok(async move {
        result
            .await
            .unwrap_or_else(|_| Err(std::io::Error::other("the DNS filter's thread stopped")))
    })
}

/// Serves DNS on `udp` and `tcp` until `shutdown` completes.
pub async fn run(
    udp: UdpSocket,
    tcp: TcpListener,
    server: Arc<DnsServer>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let udp = Arc::new(udp);
    let in_flight = Arc::new(Semaphore::new(IN_FLIGHT));
    let connections = Arc::new(Semaphore::new(TCP_CONNECTIONS));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    // Several receivers on the one socket: each answers what needs no waiting itself (blocked
    // names, cached names, errors) and hands only upstream questions to a task.
    let mut udp_tasks = Vec::new();
    for _ in 0..receivers() {
        let (udp, server, in_flight) = (udp.clone(), server.clone(), in_flight.clone());
        let mut stopped = stopped.clone();
        udp_tasks.push(tokio::spawn(async move {
            let mut buf = vec![0u8; 65_535];
            loop {
                let (n, client) = tokio::select! {
                    _ = stopped.changed() => return,
                    // A bad datagram (e.g. an ICMP error surfacing) must not stop the server.
                    received = udp.recv_from(&mut buf) => match received {
                        Ok(r) => r,
                        Err(_) => continue,
                    },
                };
                match server.prepare(&buf[..n], client.ip()) {
                    Step::Answer(answer) => {
                        let _ = udp.send_to(&fit_udp(answer, UDP_MAX), client).await;
                    }
                    Step::Silent => {}
                    Step::Ask(pending) => {
                        let Ok(permit) = in_flight.clone().acquire_owned().await else {
                            return;
                        };
                        let (udp, server) = (udp.clone(), server.clone());
                        tokio::spawn(async move {
                            let answer = server.resolve(&pending, client.ip()).await;
                            let _ = udp.send_to(&fit_udp(answer, UDP_MAX), client).await;
                            drop(permit);
                        });
                    }
                }
            }
        }));
    }
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = tcp.accept() => {
                let Ok((stream, client)) = accepted else { continue };
                let Ok(permit) = connections.clone().acquire_owned().await else { break };
                let server = server.clone();
                tokio::spawn(async move {
                    let _ = serve_tcp(stream, client.ip(), &server).await;
                    drop(permit);
                });
            }
        }
    }
    let _ = stop.send(true);
    for t in udp_tasks {
        let _ = t.await;
    }
    Ok(())
}

/// Answers length-prefixed queries on one TCP connection until the client stops or idles.
async fn serve_tcp(
    mut stream: TcpStream,
    client: IpAddr,
    server: &DnsServer,
) -> std::io::Result<()> {
    let mut packet = Vec::new();
    loop {
        let mut len = [0u8; 2];
        match tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut len)).await {
            Ok(Ok(_)) => {}
            _ => return Ok(()),
        }
        packet.resize(u16::from_be_bytes(len) as usize, 0);
        match tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut packet)).await {
            Ok(Ok(_)) => {}
            _ => return Ok(()),
        }
        let Some(answer) = server.answer(&packet, client).await else {
            return Ok(()); // nothing to say to this stream
        };
        let Ok(len) = u16::try_from(answer.len()) else {
            return Ok(());
        };
        stream.write_all(&len.to_be_bytes()).await?;
        stream.write_all(&answer).await?;
    }
}
