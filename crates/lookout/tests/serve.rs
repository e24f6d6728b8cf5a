//! `lookout serve`, `lookout user` and `lookout log` as real processes: users added and
//! imported, a client through the proxy and a DNS query, SIGTERM, then the stored events.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};

use common::server::{
    form_field, lookout, risky_search, serve, setup, setup_on_test_store, setup_with_provider,
    signed_in, terminate, text, through, Listening,
};

#[test]
fn users_are_added_imported_and_listed() {
    let (dir, config) = setup();
    let c = config.to_str().unwrap();
    let d = dir.path();
    let o = lookout(
        d,
        &[
            "user",
            "add",
            "Amy",
            "--group",
            "learners",
            "--name",
            "Amy Smith",
            "--password-stdin",
            "-c",
            c,
        ],
        Some("amys-password\n"),
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = lookout(
        d,
        &["user", "add", "amy", "--group", "learners", "-c", c],
        None,
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("a user named `amy` already exists"));
    let o = lookout(
        d,
        &["user", "add", "bob", "--group", "teachers", "-c", c],
        None,
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains("no group is named `teachers`"),
        "{}",
        text(&o)
    );

    std::fs::write(
        d.join("bad.csv"),
        "Username,Full Name,Group\nben,Ben B,learners\ncat,Cat C,wizards\nben,Ben Again,staff\nd e,D,staff\n",
    )
    .unwrap();
    let o = lookout(d, &["user", "import", "bad.csv", "-c", c], None);
    assert_eq!(o.status.code(), Some(2));
    let t = text(&o);
    assert!(t.contains("nothing was imported: 3 problem(s)"), "{t}");
    assert!(t.contains("bad.csv:3: no group is named `wizards`"), "{t}");
    assert!(t.contains("bad.csv:4: `ben` is also on line 2"), "{t}");
    assert!(t.contains("bad.csv:5: user name `d e` is not valid"), "{t}");

    std::fs::write(
        d.join("good.csv"),
        "username,group,name\nben,learners,Ben B\namy,staff,Amy Smith\n",
    )
    .unwrap();
    let o = lookout(d, &["user", "import", "good.csv", "-c", c], None);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("1 user(s) added, 1 updated"),
        "{}",
        text(&o)
    );

    let o = lookout(d, &["user", "disable", "ben", "-c", c], None);
    assert!(o.status.success());
    let o = lookout(d, &["user", "list", "-c", c], None);
    let t = text(&o);
    assert!(
        t.contains("amy") && t.contains("staff") && t.contains("active"),
        "{t}"
    );
    assert!(t.contains("ben") && t.contains("disabled"), "{t}");
    assert!(t.contains("2 user(s)"));
}

fn dns_query(server: SocketAddr, name: &str) -> Message {
    let mut m = Message::new(7, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    socket.send_to(&m.to_vec().unwrap(), server).unwrap();
    let mut buf = [0u8; 4096];
    let (n, _) = socket.recv_from(&mut buf).unwrap();
    Message::from_vec(&buf[..n]).unwrap()
}

#[test]
fn serve_filters_logs_and_stops_gracefully() {
    let (dir, config) = setup();
    let d = dir.path();
    // Enough hosts for the index to keep a host cache (4,096 or more), so that /metrics has
    // its counts to show.
    let filler: String = (0..4_100).map(|i| format!("filler{i}.test\n")).collect();
    std::fs::write(d.join("gambling.txt"), format!("casino.test\n{filler}")).unwrap();
    let c = config.to_str().unwrap();
    let o = lookout(
        d,
        &[
            "user",
            "add",
            "amy",
            "--group",
            "staff",
            "--password-stdin",
            "-c",
            c,
        ],
        Some("amys-password\n"),
    );
    assert!(o.status.success(), "{}", text(&o));
    // A SIEM's syslog collector on loopback: every logged event is forwarded to it as CEF.
    let siem = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    siem.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut toml = std::fs::read_to_string(&config).unwrap();
    // A host cache of its own size (the default is 65,536), rounded up to a power of two.
    toml.push_str(&format!(
        "[lists]\nhost_cache = 1000\n\n[log.syslog]\nserver = \"{}\"\n",
        siem.local_addr().unwrap()
    ));
    std::fs::write(&config, toml).unwrap();

    let (
        child,
        Listening {
            proxy,
            dns,
            console,
            ..
        },
    ) = serve(d, &config);

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = |login: Option<(&str, &str)>| signed_in(proxy, login);
        let r = client(None)
            .get("http://www.casino.test/")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 403);
        let body = r.text().await.unwrap();
        assert!(
            body.contains("This page is blocked") && body.contains("learners-u18"),
            "{body}"
        );
        let r = client(Some(("amy", "amys-password")))
            .get("http://casino.test/?q=1")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 403);
        assert!(r.text().await.unwrap().contains("amy (staff)"));
        // The status page: through the proxy by its reserved name, or asked of it directly
        // (through the proxy by its address would be the proxy reaching itself: refused).
        for r in [
            client(None).get("http://lookout.invalid/status"),
            reqwest::Client::new().get(format!("http://{proxy}/status")),
        ] {
            let body = r.send().await.unwrap().text().await.unwrap();
            let status: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(status["log"]["enabled"], true, "{body}");
            assert_eq!(status["log"]["failing"], serde_json::Value::Null, "{body}");
        }
    });

    let answer = dns_query(dns, "casino.test.");
    assert_eq!(answer.metadata.response_code, ResponseCode::NXDomain);
    // The upstream (port 9, discard) never answers: SERVFAIL, quickly.
    let answer = dns_query(dns, "allowed.test.");
    assert_eq!(answer.metadata.response_code, ResponseCode::ServFail);

    // Prometheus metrics (from this machine, the default): the decisions just made, counted.
    let metrics = runtime.block_on(async {
        let r = reqwest::get(format!("http://{console}/metrics"))
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        assert!(r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text"));
        r.text().await.unwrap()
    });
    let value = |name: &str| -> f64 {
        let line = metrics
            .lines()
            .find(|l| l.split(' ').next() == Some(name))
            .unwrap_or_else(|| panic!("no {name} in {metrics}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert_eq!(
        value("lookout_proxy_decisions_total{action=\"block\"}"),
        2.0,
        "{metrics}"
    );
    assert_eq!(
        value("lookout_proxy_decisions_total{action=\"allow\"}"),
        0.0,
        "{metrics}"
    );
    assert_eq!(value("lookout_dns_queries_total"), 2.0, "{metrics}");
    assert_eq!(
        value("lookout_dns_decisions_total{action=\"block\"}"),
        1.0,
        "{metrics}"
    );
    assert_eq!(
        value("lookout_dns_decisions_total{action=\"allow\"}"),
        1.0,
        "{metrics}"
    );
    // The host cache: `casino.test` probed when the proxy first asked (a miss), then
    // answered from the cache when asked again (the DNS query for it).
    assert_eq!(value("lookout_host_cache_entries"), 1024.0, "{metrics}");
    assert!(value("lookout_host_cache_hits_total") >= 1.0, "{metrics}");
    assert!(value("lookout_host_cache_misses_total") >= 1.0, "{metrics}");
    assert!(value("lookout_log_events_queued_total") >= 3.0, "{metrics}");
    assert_eq!(value("lookout_log_events_dropped_total"), 0.0, "{metrics}");
    assert_eq!(value("lookout_log_failing"), 0.0, "{metrics}");
    assert_eq!(value("lookout_deliveries_pending"), 0.0, "{metrics}");
    // The first daily purge runs a minute after the start: none yet.
    assert_eq!(value("lookout_retention_purges_total"), 0.0, "{metrics}");
    assert!(metrics.ends_with("# EOF\n"), "{metrics}");
    // Counts only: no person, address or name.
    for secret in ["amy", "casino", "127.0.0.1"] {
        assert!(!metrics.contains(secret), "{secret} in {metrics}");
    }
    // The SIEM got the blocked requests and the blocked name (allowed ones too: logged).
    let mut forwarded = Vec::new();
    let mut buf = vec![0; 65_536];
    while forwarded.len() < 3 {
        let n = siem.recv(&mut buf).expect("syslog messages");
        forwarded.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    let all = forwarded.join("\n");
    assert!(
        all.contains("|proxy-block|Web request blocked|7|") && all.contains("suser=amy"),
        "{all}"
    );
    assert!(all.contains("|dns-block|DNS query blocked|7|"), "{all}");
    assert_eq!(value("lookout_syslog_dropped_total"), 0.0, "{metrics}");

    // A backup while the server runs is a consistent, checked copy; restoring over the
    // running server's database is refused.
    let o = lookout(d, &["backup", "--out", "while-serving.db", "-c", c], None);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("audit log intact"), "{}", text(&o));
    let o = lookout(
        d,
        &["restore", "while-serving.db", "--replace", "-c", c],
        None,
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("`lookout serve` is running"),
        "{}",
        text(&o)
    );

    terminate(child);

    let o = lookout(
        d,
        &["log", "search", "--action", "block", "--json", "-c", c],
        None,
    );
    assert!(o.status.success(), "{}", text(&o));
    let events: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let summary: Vec<(String, String, String)> = events
        .iter()
        .map(|e| {
            (
                e["service"].as_str().unwrap().to_owned(),
                e["host"].as_str().unwrap().to_owned(),
                e["user"].as_str().unwrap_or("-").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("dns".to_owned(), "casino.test".to_owned(), "-".to_owned()),
            (
                "proxy".to_owned(),
                "casino.test".to_owned(),
                "amy".to_owned()
            ),
            (
                "proxy".to_owned(),
                "www.casino.test".to_owned(),
                "-".to_owned()
            ),
        ]
    );
    assert_eq!(events[1]["categories"][0], "gambling");

    let o = lookout(d, &["log", "tail", "-n", "4", "-c", c], None);
    let t = text(&o);
    assert!(
        t.contains("block") && t.contains("casino.test") && t.contains("LK-"),
        "{t}"
    );
    let o = lookout(d, &["log", "search", "--since", "yesterday", "-c", c], None);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("--since `yesterday`"), "{}", text(&o));
}

/// `kill -9`: the next start serves again, records the unclean stop as a gap in the activity
/// log, and nothing already written is lost. (`scripts/crash-test` does this 20 times under load.)
#[test]
fn a_killed_server_restarts_and_records_the_gap() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (dir, config, db) = runtime.block_on(setup_on_test_store());
    let (mut child, Listening { proxy, .. }) = serve(dir.path(), &config);
    let client = through(proxy);
    let blocked = runtime.block_on(async {
        client
            .get("http://casino.test/")
            .send()
            .await
            .unwrap()
            .status()
    });
    assert_eq!(blocked.as_u16(), 403);
    // Let the heartbeat and the log writer run, then kill without warning.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    child.kill().unwrap();
    child.wait().unwrap();
    let (child, Listening { proxy, .. }) = serve(dir.path(), &config);
    let status = runtime.block_on(async {
        reqwest::Client::new()
            .get(format!("http://{proxy}/status"))
            .send()
            .await
            .map(|r| r.status().as_u16())
    });
    assert_eq!(status.ok(), Some(200), "serving again");
    terminate(child);
    runtime.block_on(async {
        let store = db.open().await.unwrap();
        let gaps = store.log_gaps().await.unwrap();
        assert_eq!(gaps.len(), 1, "{gaps:?}");
        assert!(
            gaps[0].cause.contains("no clean stop on record"),
            "{gaps:?}"
        );
        let events = store
            .events(&lookout_store::EventFilter::default())
            .await
            .unwrap();
        assert!(
            events.iter().any(|e| e.event.host == "casino.test"),
            "{events:?}"
        );
    });
}

/// The database refusing writes (its events table taken away by another connection, then
/// locked exclusively): the gateway keeps filtering, blocked stays blocked and answers stay
/// quick, `/status` says what is failing and what was lost, and once the database takes writes
/// again logging resumes and the gap is on record, without a restart.
#[test]
fn a_failing_or_locked_database_does_not_stop_filtering() {
    let (dir, config) = setup();
    let (child, Listening { proxy, .. }) = serve(dir.path(), &config);
    let db = dir.path().join("data").join("lookout.db");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        use sqlx::{Connection, Executor};
        let client = through(proxy);
        let blocked = || async {
            let start = std::time::Instant::now();
            let r = client.get("http://casino.test/").send().await.unwrap();
            (r.status().as_u16(), start.elapsed())
        };
        let status = || async {
            let body = reqwest::Client::new()
                .get(format!("http://{proxy}/status"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            serde_json::from_str::<serde_json::Value>(&body).unwrap()
        };
        let mut other = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        other
            .execute("ALTER TABLE event_rows RENAME TO events_away")
            .await
            .unwrap();
        let mut failing = serde_json::Value::Null;
        for _ in 0..100 {
            let (code, took) = blocked().await;
            assert_eq!(code, 403, "blocked stays blocked");
            assert!(took < Duration::from_secs(1), "{took:?}");
            failing = status().await["log"]["failing"].clone();
            if failing["lost"].as_u64().unwrap_or(0) >= 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            failing["error"]
                .as_str()
                .unwrap_or("")
                .contains("event_rows"),
            "{failing}"
        );
        other
            .execute("ALTER TABLE events_away RENAME TO event_rows")
            .await
            .unwrap();
        // Locked by another writer for 1.5 s: answers stay quick, events wait and are written.
        other.execute("BEGIN EXCLUSIVE").await.unwrap();
        for _ in 0..10 {
            let (code, took) = blocked().await;
            assert_eq!(code, 403);
            assert!(took < Duration::from_millis(500), "{took:?}");
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        other.execute("COMMIT").await.unwrap();
        let mut recovered = false;
        for _ in 0..100 {
            blocked().await;
            if status().await["log"]["failing"].is_null() {
                recovered = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(recovered, "logging resumed without a restart");
    });
    terminate(child);
    runtime.block_on(async {
        let store = lookout_store::Store::open(&db).await.unwrap();
        let gaps = store.log_gaps().await.unwrap();
        assert!(
            gaps.iter()
                .any(|g| g.cause.starts_with("database error from") && g.dropped >= 2),
            "{gaps:?}"
        );
        let events = store
            .events(&lookout_store::EventFilter {
                host: Some("casino.test".into()),
                limit: Some(1000),
                ..Default::default()
            })
            .await
            .unwrap();
        // The ten requests made while the database was locked were all written.
        assert!(events.len() >= 11, "{}", events.len());
    });
}

/// The issue's own reproduction: `curl -x http://127.0.0.1:3128 http://127.0.0.1:8080/alerts`
/// reached the console through the proxy. The tests' config opens 127.0.0.1 for their
/// origins, and still none of Lookout's own listeners is reached.
#[test]
fn the_proxy_never_reaches_the_gateways_own_services() {
    let (dir, config) = setup();
    // Metrics readable from one address only (the monitoring server's).
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replacen(
            "[console]\n",
            "[console]\nmetrics_allow = [\"127.0.0.2\"]\n",
            1,
        ),
    )
    .unwrap();
    let (
        child,
        Listening {
            proxy,
            dns,
            console,
            ..
        },
    ) = serve(dir.path(), &config);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = through(proxy);
        for url in [
            format!("http://{console}/alerts"),
            format!("http://localhost:{}/alerts", console.port()),
            format!("http://{dns}/"),
            // The proxy itself, by address rather than by its own page name.
            format!("http://{proxy}/status"),
            // Loopback that was not opened.
            format!("http://127.0.0.2:{}/alerts", console.port()),
        ] {
            let r = client.get(&url).send().await.unwrap();
            let status = r.status().as_u16();
            let body = r.text().await.unwrap();
            assert_eq!(status, 403, "{url}: {body}");
            assert!(body.contains("destination refused"), "{url}: {body}");
            assert!(
                !body.contains("Sign in"),
                "{url} reached the console: {body}"
            );
        }
        // `/metrics` directly: refused from an address not in `metrics_allow`, read from one.
        let r = reqwest::get(format!("http://{console}/metrics"))
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 403);
        let body = r.text().await.unwrap();
        assert!(
            body.contains("127.0.0.1 may not read /metrics") && body.contains("metrics_allow"),
            "{body}"
        );
        let from_allowed = reqwest::Client::builder()
            .local_address("127.0.0.2".parse::<std::net::IpAddr>().unwrap())
            .build()
            .unwrap();
        let r = from_allowed
            .get(format!("http://{console}/metrics"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        assert!(r
            .text()
            .await
            .unwrap()
            .contains("lookout_proxy_requests_total"));
    });
    terminate(child);
}

/// Devices that look the gateway up by name: the DNS filter answers `lookout.invalid` and WPAD
/// names with the configured address, and the portal's plain-HTTP listener serves the PAC file
/// (naming the proxy's port) and the portal; the proxy never reaches that listener either.
#[test]
fn wpad_and_the_portal_name_lead_devices_to_the_proxy() {
    let (dir, config) = setup();
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("\n[portal]\nlisten = \"127.0.0.1:0\"\naddress = \"10.0.0.1\"\n");
    std::fs::write(&config, text).unwrap();
    let (child, l) = serve(dir.path(), &config);
    let portal = l.portal.expect("the portal listener");
    for name in ["lookout.invalid.", "wpad.college.lan.", "wpad."] {
        let m = dns_query(l.dns, name);
        let answers: Vec<String> = m.answers.iter().map(|a| a.data.to_string()).collect();
        assert_eq!(answers, ["10.0.0.1"], "{name}");
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let direct = reqwest::Client::builder().no_proxy().build().unwrap();
        for path in ["/wpad.dat", "/proxy.pac"] {
            let r = direct
                .get(format!("http://{portal}{path}"))
                .header("host", "wpad.college.lan")
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 200, "{path}");
            assert_eq!(
                r.headers()["content-type"],
                "application/x-ns-proxy-autoconfig"
            );
            let pac = r.text().await.unwrap();
            assert!(
                pac.contains(&format!("return \"PROXY 127.0.0.1:{}\";", l.proxy.port())),
                "the proxy's port, not the portal's: {pac}"
            );
        }
        let r = direct
            .get(format!("http://{portal}/portal"))
            .header("host", "lookout.invalid")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let page = r.text().await.unwrap();
        assert!(page.contains("Sign in"), "{page}");
        // Through the proxy, the portal listener is one of Lookout's own: refused.
        let r = through(l.proxy)
            .get(format!("http://{portal}/wpad.dat"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 403);
    });
    terminate(child);
}

#[test]
fn a_search_through_the_proxy_alerts_the_dsl_team_live_and_by_email() {
    let (dir, config) = setup();
    let d = dir.path();
    let c = config.to_str().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (smtp, mut mails) = runtime.block_on(lookout_testkit::smtp_sink());
    let (origin, _requests) = runtime.block_on(lookout_testkit::http_sink());
    let mut text_config = std::fs::read_to_string(&config).unwrap();
    text_config.push_str(&format!(
        r#"
[proxy.hosts]
"www.google.com" = "127.0.0.1"

[alerts.email]
server = "127.0.0.1:{}"
tls = "none"
from = "Lookout <lookout@college.test>"
to = ["dsl-team@college.test"]
"#,
        smtp.port()
    ));
    std::fs::write(&config, text_config).unwrap();
    let o = lookout(
        d,
        &["token", "add", "dsl-tool", "--scope", "alerts", "-c", c],
        None,
    );
    assert!(o.status.success(), "{}", text(&o));
    let dsl = String::from_utf8_lossy(&o.stdout).trim().to_owned();
    let o = lookout(
        d,
        &[
            "token",
            "add",
            "laptop-7",
            "--scope",
            "ingest",
            "--group",
            "learners-u18",
            "-c",
            c,
        ],
        None,
    );
    let agent = String::from_utf8_lossy(&o.stdout).trim().to_owned();
    let o = lookout(
        d,
        &[
            "token", "add", "laptop-8", "--scope", "ingest", "--group", "nobody", "-c", c,
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains("--group: no group `nobody`"),
        "{}",
        text(&o)
    );

    let (child, at) = serve(d, &config);
    runtime.block_on(async {
        let http = reqwest::Client::new();
        let stream = http
            .get(format!("http://{}/api/v1/alerts/stream", at.console))
            .bearer_auth(&dsl)
            .send()
            .await
            .unwrap();
        assert_eq!(stream.status(), 200);
        let mut live = lookout_testkit::sse_events(stream);
        assert_eq!(live.recv().await.unwrap().0, "ready");

        // A learner searches through the proxy.
        let sent = std::time::Instant::now();
        risky_search(at.proxy, origin.port()).await;

        let (event, alert) = tokio::time::timeout(Duration::from_secs(20), live.recv()).await.unwrap().unwrap();
        let on_stream = sent.elapsed();
        assert_eq!(event, "alert");
        assert_eq!(alert["category"], "suicide");
        assert_eq!(alert["severity"], "danger");
        assert_eq!(alert["source"], "search");
        assert_eq!(alert["client_ip"], "127.0.0.1");
        assert_eq!(alert["group"], "learners-u18");
        assert!(alert["evidence"].as_str().unwrap().contains("paracetamol"), "{alert}");

        let mail = tokio::time::timeout(Duration::from_secs(20), mails.recv()).await.unwrap().unwrap();
        let by_email = mail.received - sent;
        assert!(mail.data.contains("Suicide") && !mail.data.contains("paracetamol"), "{}", mail.data);
        eprintln!("search → alert on the stream {on_stream:?}, email at the SMTP server {by_email:?}");

        // The detail shows the search in the surrounding activity, once the activity log has
        // written it (within `[log] flush_ms`, 200 ms by default; the alert comes sooner).
        let id = alert["id"].as_i64().unwrap();
        let mut detail = serde_json::Value::Null;
        for _ in 0..100 {
            detail = http
                .get(format!("http://{}/api/v1/alerts/{id}", at.console))
                .bearer_auth(&dsl)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if detail["activity"][0].is_object() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(detail["activity"][0]["search_term"], "how many paracetamol to die");

        // A monitoring agent's chat message, through the ingest API.
        let r = http
            .post(format!("http://{}/api/v1/ingest", at.console))
            .bearer_auth(&agent)
            .json(&serde_json::json!({ "items": [{ "kind": "chat", "text": "dont tell your parents, its our little secret", "user": "zoe" }] }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        let (_, alert) = tokio::time::timeout(Duration::from_secs(20), live.recv()).await.unwrap().unwrap();
        assert_eq!((alert["category"].as_str(), alert["device"].as_str()), (Some("grooming"), Some("laptop-7")));
    });
    terminate(child);
    let o = lookout(d, &["alerts", "list", "--json", "-c", c], None);
    let listed: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(listed.len(), 2, "{}", text(&o));
    // The digest can be sent on demand.
    runtime.block_on(async {
        let o = lookout(d, &["alerts", "digest", "-c", c], None);
        assert!(o.status.success(), "{}", text(&o));
        // (The grooming alert's own email comes first.)
        let mail = loop {
            let m = tokio::time::timeout(Duration::from_secs(20), mails.recv())
                .await
                .unwrap()
                .unwrap();
            if m.data.contains("Subject: Lookout digest") {
                break m;
            }
        };
        assert!(
            mail.data.contains("Lookout digest: 2 alert(s)"),
            "{}",
            mail.data
        );
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn first_run_admin_signs_in_to_the_console_and_the_audit_log_verifies() {
    let (dir, config) = setup();
    let d = dir.path();
    let (child, listening) = serve(d, &config);
    // The one-time password is printed once, on standard output.
    let mut password = None;
    for _ in 0..100 {
        let out = listening.stdout.lock().unwrap().clone();
        if let Some(i) = out.find("one-time password") {
            password = out[i..]
                .lines()
                .map(str::trim)
                .find(|l| l.len() == 16)
                .map(str::to_owned);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let password = password.expect("a first-run password on standard output");
    let base = format!("http://{}", listening.console);
    let c = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let get = |path: &str| c.get(format!("{base}{path}")).send();
    let page = get("/sign-in").await.unwrap().text().await.unwrap();
    let csrf = form_field(&page, "csrf");
    let r = c
        .post(format!("{base}/sign-in"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("username", "admin"),
            ("password", &password),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["location"], "/sign-in/continue");
    let r = get("/sign-in/continue").await.unwrap();
    assert_eq!(r.headers()["location"], "/sign-in/new-password");
    let page = get("/sign-in/new-password")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = form_field(&page, "csrf");
    let mine = "the admin's own password";
    let r = c
        .post(format!("{base}/sign-in/new-password"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("password", mine),
            ("confirm", mine),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let r = get("/sign-in/continue").await.unwrap();
    assert_eq!(r.headers()["location"], "/sign-in/setup");
    let page = get("/sign-in/setup").await.unwrap().text().await.unwrap();
    let marker = "id=\"totp-secret\">";
    let secret = page[page.find(marker).unwrap() + marker.len()..]
        .split('<')
        .next()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let code = lookout_auth::Totp::from_base32(secret)
        .unwrap()
        .code_at(now);
    let r = c
        .post(format!("{base}/sign-in/setup"))
        .form(&[
            ("csrf", form_field(&page, "csrf").as_str()),
            ("code", &code),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["location"], "/");
    let audit = get("/audit").await.unwrap().text().await.unwrap();
    for action in [
        "user.first-admin",
        "sign-in.password-ok",
        "password.changed",
        "two-factor.set-up",
        "sign-in.ok",
    ] {
        assert!(audit.contains(action), "{action} on the audit page");
    }
    terminate(child);
    let o = lookout(
        d,
        &["audit", "verify", "--config", config.to_str().unwrap()],
        None,
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("audit log intact"), "{}", text(&o));
    let o = lookout(
        d,
        &["user", "list", "--config", config.to_str().unwrap()],
        None,
    );
    assert!(text(&o).contains("it-admin"), "{}", text(&o));
    // A second start finds the admin and prints no new password; the changed configuration
    // is on the audit log.
    let mut changed = std::fs::read_to_string(&config).unwrap();
    changed.push_str("\n# edited by the IT admin\n");
    std::fs::write(&config, changed).unwrap();
    let (child, listening) = serve(d, &config);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!listening
        .stdout
        .lock()
        .unwrap()
        .contains("one-time password"));
    terminate(child);
    let o = lookout(
        d,
        &[
            "audit",
            "list",
            "--action",
            "config.",
            "--config",
            config.to_str().unwrap(),
        ],
        None,
    );
    let listed = text(&o);
    assert_eq!(listed.matches("config.loaded").count(), 1, "{listed}");
    assert_eq!(listed.matches("config.changed").count(), 1, "{listed}");
}

/// `serve --log-format json`: every message on standard error, from start to stop, is one JSON
/// object with a time, a level and the message, as log shippers want.
#[test]
fn serve_writes_json_lines_when_asked() {
    use std::io::BufRead;
    let (dir, config) = setup();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_lookout"))
        .args(["serve", "--log-format", "json", "--config"])
        .arg(&config)
        .current_dir(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let v: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: not JSON: {line}"));
        let message = v["message"].as_str().unwrap_or_default().to_owned();
        assert!(
            v["timestamp"].is_string() && ["INFO", "WARN"].contains(&v["level"].as_str().unwrap()),
            "{line}"
        );
        seen.push(message.clone());
        if message.starts_with("Lookout is running") {
            break;
        }
    }
    assert!(
        seen.iter()
            .any(|m| m.starts_with("proxy: listening on 127.0.0.1:")),
        "{seen:?}"
    );
    let killed = std::process::Command::new("sh")
        .args(["-c", &format!("kill -TERM {}", child.id())])
        .status()
        .unwrap();
    assert!(killed.success());
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    assert!(child.wait().unwrap().success());
    for line in &rest {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: not JSON: {line}"));
        assert!(v["message"].is_string(), "{line}");
    }
    assert!(
        rest.iter().any(|l| l.contains("\"message\":\"stopped.\"")),
        "{rest:?}"
    );
}

/// The proxy's `/status`, asked of it directly.
async fn proxy_status(proxy: SocketAddr) -> serde_json::Value {
    let body = reqwest::get(format!("http://{proxy}/status"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    serde_json::from_str(&body).unwrap()
}

fn hangup(child: &std::process::Child) {
    let sent = std::process::Command::new("sh")
        .args(["-c", &format!("kill -HUP {}", child.id())])
        .status()
        .unwrap();
    assert!(sent.success());
}

/// Polls `/status` until `done` holds (10 s at most).
async fn wait_for_status(
    proxy: SocketAddr,
    what: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let s = proxy_status(proxy).await;
        if done(&s) {
            return s;
        }
        assert!(std::time::Instant::now() < deadline, "{what}: {s}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn a_list_subscription_is_downloaded_refreshed_and_swapped_in_while_serving() {
    use lookout_testkit::{ListReply, ListServer};
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let v1 = ListReply {
        status: 200,
        body: b"roulette.test\nslots.test\n".to_vec(),
        etag: Some("\"v1\"".into()),
    };
    let publisher = runtime.block_on(ListServer::start(v1, false));
    let (dir, config) = setup();
    let d = dir.path();
    let mut toml = std::fs::read_to_string(&config).unwrap();
    toml = toml.replacen(
        "[serve]",
        &format!(
            "[[lists.source]]\nname = \"published\"\nurl = \"http://{}/gambling.txt\"\ncategories = [\"gambling\"]\n\n[serve]",
            publisher.addr
        ),
        1,
    );
    std::fs::write(&config, toml).unwrap();
    // `config check` before the first download (as the systemd unit runs it): fine, noted.
    let o = lookout(d, &["config", "check", config.to_str().unwrap()], None);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("`published` has not been downloaded yet"),
        "{}",
        text(&o)
    );

    let (child, Listening { proxy, console, .. }) = serve(d, &config);
    // Downloaded before serving, into the data folder.
    let copy = d.join("data/lists/published");
    assert_eq!(
        std::fs::read_to_string(&copy).unwrap(),
        "roulette.test\nslots.test\n"
    );
    assert_eq!(publisher.requests(), vec![None]);
    runtime.block_on(async {
        let device = through(proxy);
        let blocked = |host: &'static str| {
            let device = device.clone();
            async move {
                device
                    .get(format!("http://{host}/"))
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            }
        };
        assert_eq!(blocked("roulette.test").await, 403);
        // Not listed yet: the proxy goes to the origin, which does not exist (502).
        assert_ne!(blocked("poker.test").await, 403);
        let s = proxy_status(proxy).await;
        assert_eq!(s["lists"]["version"], 1, "{s}");
        assert_eq!(s["lists"]["subscriptions"][0]["name"], "published", "{s}");
        assert_eq!(s["lists"]["subscriptions"][0]["entries"], 2, "{s}");

        // Devices keep browsing while the list changes: every request is answered, blocked.
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut load = Vec::new();
        for _ in 0..4 {
            let (device, stop) = (device.clone(), stop.clone());
            load.push(tokio::spawn(async move {
                let mut n = 0u32;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let r = device.get("http://slots.test/").send().await;
                    assert_eq!(r.map(|r| r.status().as_u16()).ok(), Some(403));
                    n += 1;
                }
                n
            }));
        }
        publisher.set(ListReply {
            status: 200,
            body: b"roulette.test\nslots.test\npoker.test\n".to_vec(),
            etag: Some("\"v2\"".into()),
        });
        hangup(&child);
        let s = wait_for_status(proxy, "the new list in use", |s| s["lists"]["version"] == 2).await;
        assert_eq!(s["lists"]["subscriptions"][0]["entries"], 3, "{s}");
        assert_eq!(blocked("poker.test").await, 403);
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut answered = 0;
        for t in load {
            answered += t.await.unwrap();
        }
        assert!(answered > 0);
        // The second request asked with the first copy's ETag.
        assert_eq!(publisher.requests()[1].as_deref(), Some("\"v1\""));

        // Unchanged: one small request (304), the copy stays.
        hangup(&child);
        wait_for_status(proxy, "the reload after an unchanged check", |s| s["lists"]["version"] == 3).await;
        assert_eq!(publisher.requests()[2].as_deref(), Some("\"v2\""));

        // A bad download (an error page with 200) is refused: the copy in use stays, the
        // status and the console say so.
        publisher.set(ListReply {
            status: 200,
            body: b"<html><body><h1>Service unavailable</h1>\n<p>Try again later.</p>\n</body></html>\n".to_vec(),
            etag: Some("\"oops\"".into()),
        });
        hangup(&child);
        let s = wait_for_status(proxy, "the failure shown", |s| {
            !s["lists"]["subscriptions"][0]["failing_since_ms"].is_null()
        })
        .await;
        assert_eq!(s["lists"]["subscriptions"][0]["entries"], 3, "{s}");
        assert_eq!(blocked("poker.test").await, 403);
        assert_eq!(
            std::fs::read_to_string(&copy).unwrap(),
            "roulette.test\nslots.test\npoker.test\n"
        );
        // Counted for Prometheus (updated: the first download and v2).
        let metrics = reqwest::get(format!("http://{console}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        for line in [
            "lookout_list_checks_updated_total 2",
            "lookout_list_checks_unchanged_total 1",
            "lookout_list_checks_failed_total 1",
            "lookout_list_subscriptions_failing 1",
        ] {
            assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
        }
        // The publisher recovers: the next check clears the failure.
        publisher.set(ListReply {
            status: 200,
            body: b"roulette.test\nslots.test\npoker.test\nblackjack.test\n".to_vec(),
            etag: Some("\"v3\"".into()),
        });
        hangup(&child);
        let s = wait_for_status(proxy, "recovered", |s| {
            s["lists"]["subscriptions"][0]["failing_since_ms"].is_null()
                && s["lists"]["subscriptions"][0]["entries"] == 4
        })
        .await;
        assert!(s["lists"]["version"].as_u64().unwrap() >= 5, "{s}");
        assert_eq!(blocked("blackjack.test").await, 403);
    });
    terminate(child);
}

#[test]
fn a_strict_list_that_cannot_be_downloaded_stops_the_start() {
    let (dir, config) = setup();
    let d = dir.path();
    // Nothing listens on port 9 (discard) on loopback: the download fails at once.
    let toml = std::fs::read_to_string(&config).unwrap().replacen(
        "[serve]",
        "[[lists.source]]\nname = \"iwf\"\nurl = \"http://127.0.0.1:9/iwf.txt\"\ncategories = [\"illegal-child-abuse\"]\nstrict = true\n\n[serve]",
        1,
    );
    std::fs::write(&config, toml).unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_lookout"))
        .args(["serve", "--config", config.to_str().unwrap()])
        .current_dir(d)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("`iwf` is a strict or illegal-content list and could not be downloaded"),
        "{err}"
    );
}

/// Proxy sign-in against the organisation's directory (a real OpenLDAP): a teacher signs in
/// with her directory password and gets the staff policy; her local record is created and
/// on the audit log; a wrong password or an unknown name is asked again (407).
#[test]
fn proxy_sign_in_checks_passwords_against_the_directory() {
    let ldif = "dn: dc=college,dc=test\nobjectClass: dcObject\nobjectClass: organization\no: College\ndc: college\n\ndn: uid=tess,dc=college,dc=test\nobjectClass: inetOrgPerson\nuid: tess\ncn: Tess Teacher\nsn: Teacher\nuserPassword: tess-password\n\ndn: cn=Staff,dc=college,dc=test\nobjectClass: groupOfNames\ncn: Staff\nmember: uid=tess,dc=college,dc=test\n";
    let Some(slapd) = lookout_testkit::Slapd::start("dc=college,dc=test", ldif) else {
        return;
    };
    let (dir, config) = setup();
    let d = dir.path();
    std::fs::write(d.join("ldap-password"), "admin\n").unwrap();
    let mut toml = std::fs::read_to_string(&config).unwrap();
    toml.push_str(&format!(
        "\n[[networks]]\ncidr = \"127.0.0.1/32\"\ngroup = \"learners-u18\"\nlogin = \"required\"\n\n[ldap]\nurl = \"{}\"\nbase_dn = \"dc=college,dc=test\"\nbind_dn = \"cn=admin,dc=college,dc=test\"\nbind_password_file = \"ldap-password\"\nuser_filter = \"(uid={{username}})\"\n[[ldap.group]]\ndn = \"cn=Staff,dc=college,dc=test\"\ngroup = \"staff\"\n",
        slapd.url
    ));
    std::fs::write(&config, toml).unwrap();
    let (child, Listening { proxy, .. }) = serve(d, &config);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let device = |login: Option<(&str, &str)>| signed_in(proxy, login);
        let r = device(Some(("tess", "tess-password")))
            .get("http://casino.test/")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 403);
        let body = r.text().await.unwrap();
        assert!(body.contains("tess (staff)"), "{body}");
        for login in [
            None,
            Some(("tess", "wrong")),
            Some(("nobody", "tess-password")),
        ] {
            let r = device(login)
                .get("http://casino.test/")
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 407, "{login:?}");
        }
    });
    terminate(child);
    let c = config.to_str().unwrap();
    let o = lookout(d, &["user", "list", "-c", c], None);
    assert!(o.status.success(), "{}", text(&o));
    let line = text(&o)
        .lines()
        .find(|l| l.starts_with("tess"))
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("{}", text(&o)));
    assert!(
        line.contains("staff") && line.contains("Tess Teacher"),
        "{line}"
    );
    let o = lookout(d, &["audit", "list", "-c", c], None);
    assert!(text(&o).contains("user.directory-add"), "{}", text(&o));
}

/// The portal offers the organisation's sign-in provider (`[oidc] portal = true`): the device
/// follows the portal's link to the console, signs in at a real OpenID Provider, comes back to
/// the console, which hands who they are back to the portal; the portal signs in the device's
/// own address (its ticket was issued to that address), once. Another device cannot use the
/// hand-off, nor can it be used twice.
#[tokio::test]
async fn the_portal_signs_devices_in_through_the_provider() {
    use lookout_testkit::IdpOutcome;
    let Some((dir, config, idp, console)) = setup_with_provider(
        "127.0.0.1",
        &serde_json::json!({"leo": {"password": "pw", "claims": {
            "preferred_username": "leo@college.test", "name": "Leo Learner", "groups": ["g-learners"]}}}),
        "portal = true\n[[oidc.role]]\nvalue = \"g-dsl\"\nrole = \"dsl\"\n\
         [[oidc.group]]\nvalue = \"g-learners\"\ngroup = \"learners-u18\"\n\
         [[networks]]\ncidr = \"127.0.0.0/8\"\ngroup = \"staff\"\nlogin = \"portal\"\n",
    ) else {
        return;
    };
    let d = dir.path();
    let (child, at) = serve(d, &config);
    // A device set up by the PAC file: the web through the proxy, the console (and, here, the
    // provider, both on this machine) directly. `local` is the device's own address.
    let device = |local: &str| {
        let proxy = format!("http://{}", at.proxy);
        reqwest::Client::builder()
            .proxy(reqwest::Proxy::custom(move |url| {
                (url.host_str() != Some("127.0.0.1")).then(|| proxy.clone())
            }))
            .local_address(local.parse::<std::net::IpAddr>().unwrap())
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
    };
    // Through the portal's link to the provider and back to the console: the console's page
    // that moves the browser on to the portal.
    let via_provider = |c: reqwest::Client| {
        let idp = &idp;
        let console = &console;
        async move {
            let page = c
                .get("http://lookout.invalid/portal?to=http://casino.test/")
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            let link = page
                .split("id=\"sign-in-provider\" href=\"")
                .nth(1)
                .and_then(|s| s.split('"').next())
                .unwrap_or_else(|| panic!("no provider link in {page}"))
                .replace("&amp;", "&");
            assert!(
                link.starts_with(&format!("{console}/portal/oidc?ticket=")),
                "{link}"
            );
            let r = c.get(&link).send().await.unwrap();
            assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
            let to_idp = r.headers()["location"].to_str().unwrap().to_owned();
            let IdpOutcome::Back(back) = idp.sign_in(&to_idp, "leo", "pw", false, false).await
            else {
                panic!("refused at the provider")
            };
            let page = c.get(&back).send().await.unwrap().text().await.unwrap();
            page.split("url=")
                .nth(1)
                .and_then(|s| s.split('"').next())
                .unwrap_or_else(|| panic!("no way on in {page}"))
                .replace("&amp;", "&")
        }
    };

    // Before signing in, the provider's own host opens through the proxy (its sign-in pages
    // must), while anything else is sent to the portal.
    let fresh = reqwest::Client::builder()
        .proxy(reqwest::Proxy::all(format!("http://{}", at.proxy)).unwrap())
        .local_address("127.0.0.3".parse::<std::net::IpAddr>().unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let discovery = format!("{}/.well-known/openid-configuration", idp.issuer);
    let r = fresh.get(&discovery).send().await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let r = fresh.get("http://casino.test/").send().await.unwrap();
    assert!(
        r.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("http://lookout.invalid/portal"),
        "{:?}",
        r.headers()
    );

    let leo = device("127.0.0.1");
    let onward = via_provider(leo.clone()).await;
    assert!(
        onward.starts_with("http://lookout.invalid/portal/provider?ticket="),
        "{onward}"
    );
    // Another device cannot use this device's hand-off.
    let other = device("127.0.0.2");
    let r = other.get(&onward).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("started on another device"));
    // Its own device can: signed in, in the group the provider's claims give.
    let r = leo.get(&onward).send().await.unwrap();
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    assert_eq!(r.headers()["location"], "http://casino.test/");
    let page = leo
        .get("http://casino.test/")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("leo@college.test (learners-u18)"), "{page}");
    // Once only.
    let r = leo.get(&onward).send().await.unwrap();
    assert_eq!(r.status(), 400);
    // The second device's own way through works for it.
    let onward = via_provider(other.clone()).await;
    let r = other.get(&onward).send().await.unwrap();
    assert_eq!(r.status(), 303);
    terminate(child);
    let audit = text(&lookout(
        d,
        &["audit", "-c", config.to_str().unwrap(), "list"],
        None,
    ));
    assert!(
        audit.contains("portal.sign-in.ok") && audit.contains("through the sign-in provider"),
        "{audit}"
    );
    assert!(audit.contains("user.directory-add"), "{audit}");
}
