//! The DNS filter over real sockets on 127.0.0.1, against a fake upstream resolver.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use lookout_dns::{BlockedAnswer, Settings};
use lookout_dns_server::{receivers, run, spawn, Cache, Clients, DnsServer};
use lookout_lists::{
    Category, CategorySet, EntryKind, EntrySink, IndexBuilder, NormUrl, SourceInfo,
};
use lookout_policy::{Group, GroupSpec, LocalTime, Policy, Weekday};
use lookout_store::{EventFilter, EventLog, Store};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

const UPSTREAM_ANSWER: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
const BLOCK_PAGE: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 80);

/// A fake upstream that answers every A question with `UPSTREAM_ANSWER`, or stays silent.
async fn upstream(silent: bool) -> (SocketAddr, Arc<AtomicUsize>) {
    upstream_answering(silent, UPSTREAM_ANSWER).await
}

/// A fake upstream that answers every A question with `answer`, or stays silent.
async fn upstream_answering(silent: bool, answer: Ipv4Addr) -> (SocketAddr, Arc<AtomicUsize>) {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        while let Ok((n, from)) = socket.recv_from(&mut buf).await {
            seen.fetch_add(1, Ordering::SeqCst);
            if silent {
                continue;
            }
            let q = Message::from_vec(&buf[..n]).unwrap();
            let mut r = Message::response(q.metadata.id, OpCode::Query);
            r.add_queries(q.queries.iter().cloned());
            let name = q.queries[0].name().clone();
            r.add_answer(Record::from_rdata(name, 300, RData::A(A(answer))));
            socket.send_to(&r.to_vec().unwrap(), from).await.unwrap();
        }
    });
    (addr, count)
}

struct Running {
    udp: SocketAddr,
    tcp: SocketAddr,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// Starts the filter with `clients` networks → learners and the given upstreams.
async fn start(networks: &[&str], upstreams: Vec<SocketAddr>) -> Running {
    start_logged(networks, upstreams, None).await
}

/// Like `start`, logging every judged query to `log`.
async fn start_logged(
    networks: &[&str],
    upstreams: Vec<SocketAddr>,
    log: Option<EventLog>,
) -> Running {
    let server = filter(networks, upstreams, log);
    let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (udp_addr, tcp_addr) = (udp.local_addr().unwrap(), tcp.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(run(udp, tcp, Arc::new(server), async {
        let _ = stopped.await;
    }));
    Running {
        udp: udp_addr,
        tcp: tcp_addr,
        _stop: stop,
    }
}

/// The filter: `clients` networks → learners (gambling blocked, safe search on), the given
/// upstreams, judged queries logged to `log`.
fn filter(networks: &[&str], upstreams: Vec<SocketAddr>, log: Option<EventLog>) -> DnsServer {
    let mut builder = IndexBuilder::new();
    let labels = CategorySet::one(Category::GAMBLING).bits();
    let id = builder
        .add_source(SourceInfo {
            name: "gambling".into(),
            labels,
        })
        .unwrap();
    let mut sink = EntrySink::new();
    sink.add(
        id,
        EntryKind::Block,
        &NormUrl::parse("casino.example").unwrap(),
    );
    let spec = GroupSpec {
        name: "learners".into(),
        block: CategorySet::one(Category::GAMBLING),
        safe_search: true,
        youtube_restricted: true,
        ..GroupSpec::default()
    };
    let policy = Policy::new(vec![Group::new(spec).unwrap()]).unwrap();
    let learners = policy.group_id("learners").unwrap();
    let clients = Clients::new(
        networks
            .iter()
            .map(|n| (n.parse().unwrap(), learners))
            .collect(),
    );
    DnsServer {
        policy: Arc::new(policy),
        index: builder.build(vec![sink]).into(),
        settings: Settings {
            blocked: BlockedAnswer::BlockPage {
                ipv4: BLOCK_PAGE,
                ipv6: None,
            },
            ttl: 60,
            rebind_protection: true,
            portal: None,
            internal_domains: Vec::new(),
        },
        clients,
        upstreams,
        timeout: Duration::from_millis(400),
        cache: Cache::new(1000),
        clock: Arc::new(|| LocalTime {
            weekday: Weekday::Wed,
            minute: 600,
        }),
        log,
        log_allowed: true,
        counters: Default::default(),
    }
}

fn query(id: u16, name: &str) -> Vec<u8> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
    m.to_vec().unwrap()
}

/// Sends a datagram and waits (at most 5 s) for the answer.
async fn ask_udp(server: SocketAddr, packet: &[u8]) -> Message {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.send_to(packet, server).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), socket.recv_from(&mut buf))
        .await
        .expect("an answer within 5 s")
        .unwrap();
    Message::from_vec(&buf[..n]).unwrap()
}

/// Sends one length-prefixed query on a TCP stream and reads the answer.
async fn ask_tcp(stream: &mut TcpStream, packet: &[u8]) -> Message {
    stream
        .write_all(&(packet.len() as u16).to_be_bytes())
        .await
        .unwrap();
    stream.write_all(packet).await.unwrap();
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).await.unwrap();
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    stream.read_exact(&mut buf).await.unwrap();
    Message::from_vec(&buf).unwrap()
}

fn summary(m: &Message) -> String {
    let mut out = format!("{:?}", m.metadata.response_code);
    for a in &m.answers {
        out.push_str(&format!(" {}={}", a.name, a.data));
    }
    out
}

#[tokio::test]
async fn allowed_names_are_forwarded_once_then_cached() {
    let (up, count) = upstream(false).await;
    let dns = start(&["127.0.0.0/8"], vec![up]).await;
    let first = ask_udp(dns.udp, &query(1, "bbc.co.uk.")).await;
    assert_eq!(summary(&first), "NoError bbc.co.uk.=203.0.113.1");
    assert_eq!(first.metadata.id, 1);
    let second = ask_udp(dns.udp, &query(2, "BBC.co.uk.")).await;
    // Names are case-insensitive: the cached answer keeps the first asker's spelling, the
    // question section echoes this asker's.
    assert_eq!(summary(&second), "NoError bbc.co.uk.=203.0.113.1");
    assert_eq!(second.queries[0].name().to_ascii(), "BBC.co.uk.");
    assert_eq!(second.metadata.id, 2);
    assert_eq!(
        count.load(Ordering::SeqCst),
        1,
        "the second answer came from the cache"
    );
}

/// A cached answer's TTL counts down: asked again a second later, the client is told it may
/// keep the answer a second less (the upstream said 300), not the full TTL again. (Up to ten
/// less: a slow machine may take longer between the two questions.)
#[tokio::test]
async fn cached_answers_count_their_ttl_down() {
    let (up, count) = upstream(false).await;
    let dns = start(&["127.0.0.0/8"], vec![up]).await;
    let first = ask_udp(dns.udp, &query(1, "ttl.example.")).await;
    assert_eq!(first.answers[0].ttl, 300);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let second = ask_udp(dns.udp, &query(2, "ttl.example.")).await;
    assert_eq!(
        count.load(Ordering::SeqCst),
        1,
        "the second came from the cache"
    );
    let ttl = second.answers[0].ttl;
    assert!(
        (290..=299).contains(&ttl),
        "TTL {ttl} after a second in the cache"
    );
}

#[tokio::test]
async fn blocked_names_never_reach_upstream() {
    let (up, count) = upstream(false).await;
    let dns = start(&["127.0.0.0/8"], vec![up]).await;
    let answer = ask_udp(dns.udp, &query(3, "www.casino.example.")).await;
    assert_eq!(summary(&answer), "NoError www.casino.example.=192.0.2.80");
    assert_eq!(count.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn safe_search_answers_with_the_cname_chain() {
    let (up, _) = upstream(false).await;
    let dns = start(&["127.0.0.0/8"], vec![up]).await;
    let answer = ask_udp(dns.udp, &query(4, "www.google.com.")).await;
    assert_eq!(
        summary(&answer),
        "NoError www.google.com.=forcesafesearch.google.com. forcesafesearch.google.com.=203.0.113.1"
    );
}

#[tokio::test]
async fn upstream_failure_is_a_quick_servfail() {
    // A silent upstream: SERVFAIL after the timeout, not a hang.
    let (silent, _) = upstream(true).await;
    let dns = start(&["127.0.0.0/8"], vec![silent]).await;
    let started = Instant::now();
    let answer = ask_udp(dns.udp, &query(5, "slow.example.")).await;
    assert_eq!(summary(&answer), "ServFail");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );

    // A closed port: SERVFAIL at once; a second upstream that works is tried first.
    let closed = UdpSocket::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let (up, _) = upstream(false).await;
    let dns = start(&["127.0.0.0/8"], vec![closed, up]).await;
    let answer = ask_udp(dns.udp, &query(6, "ok.example.")).await;
    assert_eq!(summary(&answer), "NoError ok.example.=203.0.113.1");
}

#[tokio::test]
async fn clients_outside_every_network_are_refused() {
    let (up, count) = upstream(false).await;
    let dns = start(&["10.0.0.0/8"], vec![up]).await;
    let answer = ask_udp(dns.udp, &query(7, "bbc.co.uk.")).await;
    assert_eq!(summary(&answer), "Refused");
    assert_eq!(count.load(Ordering::SeqCst), 0, "not an open resolver");
}

#[tokio::test]
async fn tcp_queries_are_answered_on_one_connection() {
    let (up, _) = upstream(false).await;
    let dns = start(&["127.0.0.0/8"], vec![up]).await;
    let mut stream = TcpStream::connect(dns.tcp).await.unwrap();
    for (id, name, want) in [
        (8, "casino.example.", "NoError casino.example.=192.0.2.80"),
        (9, "ok.example.", "NoError ok.example.=203.0.113.1"),
    ] {
        let m = ask_tcp(&mut stream, &query(id, name)).await;
        assert_eq!((m.metadata.id, summary(&m).as_str()), (id, want));
    }
}

#[tokio::test]
async fn hostile_packets_do_not_stop_the_server() {
    let (up, _) = upstream(false).await;
    let dns = start(&["127.0.0.0/8"], vec![up]).await;
    let mut garbage = query(10, "ok.example.");
    garbage.truncate(15);
    let answer = ask_udp(dns.udp, &garbage).await;
    assert_eq!(summary(&answer), "FormErr");
    // Tiny and empty datagrams get no answer; the server goes on answering others.
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.send_to(&[1, 2, 3], dns.udp).await.unwrap();
    socket.send_to(&[], dns.udp).await.unwrap();
    // A TCP client that sends half a length prefix and goes quiet does not block others.
    let mut stalled = TcpStream::connect(dns.tcp).await.unwrap();
    stalled.write_all(&[0]).await.unwrap();
    let answer = ask_udp(dns.udp, &query(11, "ok.example.")).await;
    assert_eq!(summary(&answer), "NoError ok.example.=203.0.113.1");
}

/// A fake upstream that truncates every UDP reply (TC, no answers) and answers in full over
/// TCP on the same port.
async fn truncating_upstream() -> SocketAddr {
    // The same port for UDP and TCP: a free UDP port's TCP twin may be taken by another
    // test's socket, so try again with another port until both bind.
    let mut tries = 0;
    let (udp, tcp, addr) = loop {
        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = udp.local_addr().unwrap();
        match TcpListener::bind(addr).await {
            Ok(tcp) => break (udp, tcp, addr),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && tries < 50 => tries += 1,
            Err(e) => panic!("no port free for both UDP and TCP: {e}"),
        }
    };
    let reply = |query: &[u8], truncated: bool| {
        let q = Message::from_vec(query).unwrap();
        let mut r = Message::response(q.metadata.id, OpCode::Query);
        r.add_queries(q.queries.iter().cloned());
        r.metadata.truncation = truncated;
        if !truncated {
            for i in 0..40 {
                let ip = Ipv4Addr::new(198, 51, 100, i);
                r.add_answer(Record::from_rdata(
                    q.queries[0].name().clone(),
                    300,
                    RData::A(A(ip)),
                ));
            }
        }
        r.to_vec().unwrap()
    };
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        while let Ok((n, from)) = udp.recv_from(&mut buf).await {
            udp.send_to(&reply(&buf[..n], true), from).await.unwrap();
        }
    });
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = tcp.accept().await {
            let mut len = [0u8; 2];
            stream.read_exact(&mut len).await.unwrap();
            let mut q = vec![0u8; u16::from_be_bytes(len) as usize];
            stream.read_exact(&mut q).await.unwrap();
            let r = reply(&q, false);
            stream
                .write_all(&(r.len() as u16).to_be_bytes())
                .await
                .unwrap();
            stream.write_all(&r).await.unwrap();
        }
    });
    addr
}

#[tokio::test]
async fn truncated_upstream_replies_are_fetched_over_tcp() {
    let dns = start(&["127.0.0.0/8"], vec![truncating_upstream().await]).await;
    // Over TCP the client gets all 40 addresses.
    let mut stream = TcpStream::connect(dns.tcp).await.unwrap();
    let m = ask_tcp(&mut stream, &query(12, "big.example.")).await;
    assert_eq!(m.answers.len(), 40);
    // Over UDP (512 bytes) the client is told to ask over TCP, never given an empty answer.
    let m = ask_udp(dns.udp, &query(13, "big.example.")).await;
    assert!(m.metadata.truncation, "{}", summary(&m));
}

#[tokio::test]
async fn judged_queries_are_logged() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("lookout.db")).await.unwrap();
    let (log, writer) = EventLog::start(store.clone(), 100, 10, std::time::Duration::ZERO);
    let (up, _) = upstream(false).await;
    let dns = start_logged(&["127.0.0.0/8"], vec![up], Some(log)).await;
    ask_udp(dns.udp, &query(1, "www.casino.example.")).await;
    ask_udp(dns.udp, &query(2, "bbc.co.uk.")).await;
    // A malformed packet is answered FORMERR and judged nothing.
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.send_to(&[0, 9, 1, 0, 0, 1], dns.udp).await.unwrap();
    drop(dns);
    writer.finish().await;
    let mut events = store.events(&EventFilter::default()).await.unwrap();
    events.reverse();
    let got: Vec<(&str, &str, &str, &str, &str)> = events
        .iter()
        .map(|e| {
            let e = &e.event;
            (
                e.service,
                e.method.as_str(),
                e.host.as_str(),
                e.action.as_str(),
                e.categories.as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("dns", "A", "www.casino.example", "block", "gambling"),
            ("dns", "A", "bbc.co.uk", "allow", ""),
        ]
    );
    assert_eq!(events[0].event.client_ip, "127.0.0.1");
    assert_eq!(events[0].event.group, "learners");
}

/// A public name the upstream answers with a loopback address (a rebinding attack's second
/// answer) reaches the client without it, and the refusal is logged; the cached reply is
/// checked the same way.
#[tokio::test]
async fn public_names_never_get_internal_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("lookout.db")).await.unwrap();
    let (log, writer) = EventLog::start(store.clone(), 100, 10, std::time::Duration::ZERO);
    let (up, count) = upstream_answering(false, Ipv4Addr::new(127, 0, 0, 5)).await;
    let dns = start_logged(&["127.0.0.0/8"], vec![up], Some(log)).await;
    for id in [1, 2] {
        let m = ask_udp(dns.udp, &query(id, "www.rebind.test.")).await;
        assert_eq!(summary(&m), "NoError", "query {id}");
    }
    assert_eq!(
        count.load(Ordering::SeqCst),
        1,
        "the second answer came from the cache"
    );
    let m = ask_udp(dns.udp, &query(3, "printer.home.arpa.")).await;
    assert_eq!(summary(&m), "NoError printer.home.arpa.=127.0.0.5");
    drop(dns);
    writer.finish().await;
    let events = store.events(&EventFilter::default()).await.unwrap();
    let refused: Vec<_> = events
        .iter()
        .filter(|e| e.event.rule == "destination")
        .collect();
    assert_eq!(refused.len(), 2, "{events:#?}");
    for e in refused {
        assert_eq!(e.event.action, "block");
        assert_eq!(e.event.host, "www.rebind.test");
        assert!(
            e.event.reason.contains("127.0.0.5") && e.event.reason.contains("rebinding"),
            "{}",
            e.event.reason
        );
    }
}

/// This process's threads named `lookout-dns` (Linux: /proc/self/task/*/comm).
fn dns_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim_end() == "lookout-dns")
        .count()
}

/// `spawn` serves on a runtime of its own: blocked, forwarded and TCP questions are answered
/// on its `lookout-dns` threads (one a receiver, and the thread that runs the runtime), and
/// once the shutdown future completes its result comes back and the threads are gone.
#[tokio::test]
async fn spawned_filter_serves_on_threads_of_its_own_until_stopped() {
    let (up, count) = upstream(false).await;
    let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (udp_addr, tcp_addr) = (udp.local_addr().unwrap(), tcp.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    assert_eq!(dns_threads(), 0);
    let server = Arc::new(filter(&["127.0.0.0/8"], vec![up], None));
    let served = tokio::spawn(
        spawn(udp, tcp, server, async {
            let _ = stopped.await;
        })
        .expect("started"),
    );

    let blocked = ask_udp(udp_addr, &query(20, "casino.example.")).await;
    assert_eq!(summary(&blocked), "NoError casino.example.=192.0.2.80");
    let forwarded = ask_udp(udp_addr, &query(21, "ok.example.")).await;
    assert_eq!(summary(&forwarded), "NoError ok.example.=203.0.113.1");
    assert_eq!(count.load(Ordering::SeqCst), 1);
    let mut stream = TcpStream::connect(tcp_addr).await.unwrap();
    let m = ask_tcp(&mut stream, &query(22, "ok.example.")).await;
    assert_eq!(summary(&m), "NoError ok.example.=203.0.113.1");
    assert_eq!(dns_threads(), receivers() + 1);

    drop(stop);
    let result = tokio::time::timeout(Duration::from_secs(5), served)
        .await
        .expect("stopped within 5 s")
        .expect("not panicked");
    assert!(result.is_ok(), "{result:?}");
    // The thread that ran the runtime ends just after handing the result back.
    let gone = Instant::now();
    while dns_threads() > 0 && gone.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(dns_threads(), 0);
}
