//! The monitoring pipeline end to end over real sockets: agents' ingest API → scanning →
//! alert stored in SQLite → live SSE stream, email at a real SMTP listener, Teams webhook at a
//! real HTTP listener; grouping, auth, bad input, and deliveries resumed after a restart.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use lookout_monitor::{
    router, serve_api, ApiState, Email, EmailTls, Monitor, MonitorTasks, Settings, Webhook,
};
use lookout_scan::{Library, Severity};
use lookout_store::{Event, Store, TokenScope};
use lookout_testkit::{http_sink, smtp_sink, Mail, Posted};
use serde_json::{json, Value};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(20);

struct Harness {
    _dir: tempfile::TempDir,
    db: std::path::PathBuf,
    store: Store,
    monitor: Monitor,
    tasks: MonitorTasks,
    shutdown: CancellationToken,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    base: String,
    client: reqwest::Client,
}

fn settings(smtp_port: u16, hook: &str) -> Settings {
    Settings {
        thresholds: HashMap::from([
            ("staff".to_owned(), Some(Severity::Danger)),
            ("guests".to_owned(), None),
        ]),
        default_threshold: Some(Severity::Caution),
        window: Duration::from_secs(30 * 60),
        queue: 64,
        email: Some(
            Email::new(
                "127.0.0.1",
                smtp_port,
                EmailTls::None,
                None,
                "Lookout <lookout@college.test>",
                &["dsl-team@college.test".to_owned()],
            )
            .unwrap(),
        ),
        webhook: Some(Webhook::new(hook.to_owned()).unwrap()),
        console_url: "https://lookout.college.test/".into(),
        retry: Duration::from_millis(200),
    }
}

async fn start(dir: tempfile::TempDir, settings: Settings) -> Harness {
    start_with(dir, settings, None).await
}

async fn start_with(
    dir: tempfile::TempDir,
    settings: Settings,
    model: Option<lookout_monitor::ModelStage>,
) -> Harness {
    start_full(dir, settings, model, None).await
}

/// As `start_with`, scanning with `scan` when given (the real libraries otherwise).
async fn start_full(
    dir: tempfile::TempDir,
    settings: Settings,
    model: Option<lookout_monitor::ModelStage>,
    scan: Option<lookout_monitor::ScanFn>,
) -> Harness {
    let db = dir.path().join("lookout.db");
    let store = lookout_store::testing::open_in(dir.path()).await.unwrap();
    let scanner = Arc::new(Library::builtin().compile().unwrap());
    let (monitor, tasks) = match scan {
        Some(scan) => Monitor::start_scanning_with(scan, store.clone(), settings, model),
        None => Monitor::start(scanner, store.clone(), settings, model),
    };
    let shutdown = CancellationToken::new();
    let app = router(
        ApiState {
            monitor: monitor.clone(),
            shutdown: shutdown.clone(),
        },
        1024 * 1024,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(serve_api(listener, app, shutdown.clone()));
    Harness {
        _dir: dir,
        db,
        store,
        monitor,
        tasks,
        shutdown,
        server,
        base,
        client: reqwest::Client::new(),
    }
}

impl Harness {
    async fn stop(self) -> tempfile::TempDir {
        self.shutdown.cancel();
        let _ = self.server.await;
        drop(self.monitor);
        self.tasks.finish().await;
        self.store.close().await;
        self._dir
    }

    /// An ingest token for ben's laptop (group learners-u18).
    async fn bens_laptop(&self) -> String {
        self.store
            .add_token(
                "laptop",
                TokenScope::Ingest,
                Some("ben"),
                Some("learners-u18"),
            )
            .await
            .unwrap()
            .1
    }

    async fn ingest(&self, token: &str, body: Value) -> (u16, Value) {
        let r = self
            .client
            .post(format!("{}/api/v1/ingest", self.base))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Subscribes to the live stream and waits for its `ready` event.
    async fn stream(&self, token: &str) -> UnboundedReceiver<(String, Value)> {
        let resp = self
            .client
            .get(format!("{}/api/v1/alerts/stream", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let mut rx = lookout_testkit::sse_events(resp);
        let (event, _) = timeout(WAIT, rx.recv()).await.unwrap().unwrap();
        assert_eq!(event, "ready");
        rx
    }
}

async fn next_alert(rx: &mut UnboundedReceiver<(String, Value)>) -> Value {
    loop {
        let (event, data) = timeout(WAIT, rx.recv())
            .await
            .expect("an alert in time")
            .unwrap();
        if event == "alert" {
            return data;
        }
    }
}

async fn next<T>(rx: &mut UnboundedReceiver<T>) -> T {
    timeout(WAIT, rx.recv()).await.expect("in time").unwrap()
}

#[tokio::test]
async fn agent_text_becomes_a_streamed_emailed_and_posted_alert() {
    let (smtp, mut mails) = smtp_sink().await;
    let (hook, mut hooks) = http_sink().await;
    let h = start(
        tempfile::tempdir().unwrap(),
        settings(smtp.port(), &format!("http://{hook}/teams")),
    )
    .await;
    let (_, agent) = h
        .store
        .add_token(
            "laptop-12",
            TokenScope::Ingest,
            Some("amy"),
            Some("learners-u18"),
        )
        .await
        .unwrap();
    let (_, dsl) = h
        .store
        .add_token("dsl-console", TokenScope::Alerts, None, None)
        .await
        .unwrap();
    let mut live = h.stream(&dsl).await;

    let (status, body) = h
        .ingest(&agent, json!({ "items": [
            { "kind": "chat", "text": "honestly i just want to die tonight", "app": "WhatsApp" },
            { "kind": "typed", "text": "see you at football later" },
        ]}))
        .await;
    assert_eq!(
        (status, &body),
        (202, &json!({ "accepted": 2, "dropped": 0 }))
    );

    let alert = next_alert(&mut live).await;
    assert_eq!(alert["change"], "created");
    assert_eq!(alert["category"], "suicide");
    assert_eq!(alert["severity"], "danger");
    assert_eq!(alert["username"], "amy");
    assert_eq!(alert["device"], "laptop-12");
    assert_eq!(alert["source"], "chat");
    assert_eq!(alert["location"], "WhatsApp");
    assert!(
        alert["evidence"].as_str().unwrap().contains("want to die"),
        "{alert}"
    );

    // Email: the category and a link, never the text or the name.
    let mail: Mail = next(&mut mails).await;
    assert_eq!(mail.to, ["<dsl-team@college.test>"]);
    assert!(
        mail.data
            .contains("Subject: Lookout: danger alert, Suicide (LK-"),
        "{}",
        mail.data
    );
    let id = alert["id"].as_i64().unwrap();
    assert!(
        mail.data
            .contains(&format!("https://lookout.college.test/alerts/{id}")),
        "{}",
        mail.data
    );
    for secret in ["die", "amy", "WhatsApp", "laptop"] {
        assert!(
            !mail.data.to_lowercase().contains(&secret.to_lowercase()),
            "{secret} in {}",
            mail.data
        );
    }
    // Webhook: a Teams MessageCard with the same restraint.
    let posted: Posted = next(&mut hooks).await;
    assert_eq!(posted.path, "/teams");
    let card: Value = serde_json::from_str(&posted.body).unwrap();
    assert_eq!(card["@type"], "MessageCard");
    assert_eq!(card["title"], "Danger alert: Suicide");
    assert!(
        !posted.body.contains("die") && !posted.body.contains("amy"),
        "{}",
        posted.body
    );

    // The same person again within the window: grouped, announced, not emailed again.
    let (status, _) = h
        .ingest(&agent, json!({ "items": [{ "kind": "typed", "text": "nobody would even notice if i was gone, i want to kill myself" }]}))
        .await;
    assert_eq!(status, 202);
    let grouped = next_alert(&mut live).await;
    assert_eq!(
        (
            grouped["change"].as_str(),
            grouped["id"].as_i64(),
            grouped["findings"].as_i64()
        ),
        (Some("grouped"), Some(id), Some(2))
    );
    assert!(
        timeout(Duration::from_millis(700), mails.recv())
            .await
            .is_err(),
        "a grouped finding is not emailed again"
    );

    // Detail: findings and the surrounding activity from the log.
    h.store
        .insert_events(&[activity(
            "amy",
            lookout_store::now_ms() - 60_000,
            "https://www.google.com/search?q=paracetamol",
        )])
        .await
        .unwrap();
    let detail: Value = h
        .client
        .get(format!("{}/api/v1/alerts/{id}", h.base))
        .bearer_auth(&dsl)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(detail["findings"].as_array().unwrap().len(), 2);
    assert_eq!(detail["findings"][0]["rules"][0]["severity"], "danger");
    assert_eq!(
        detail["activity"][0]["url"],
        "https://www.google.com/search?q=paracetamol"
    );
    let list: Value = h
        .client
        .get(format!("{}/api/v1/alerts", h.base))
        .bearer_auth(&dsl)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["alerts"].as_array().unwrap().len(), 1);
    h.stop().await;
}

fn activity(user: &str, at_ms: i64, url: &str) -> Event {
    Event {
        at_ms,
        reference: String::new(),
        service: "proxy",
        client_ip: "10.0.0.7".into(),
        username: Some(user.into()),
        group: "learners-u18".into(),
        method: "GET".into(),
        url: url.into(),
        host: "www.google.com".into(),
        search_term: Some("paracetamol".into()),
        categories: "".into(),
        action: "allow".into(),
        rule: "".into(),
        reason: "".into(),
        status: Some(200),
        bytes: 10,
    }
}

#[tokio::test]
async fn thresholds_follow_the_group() {
    let (smtp, _mails) = smtp_sink().await;
    let (hook, _hooks) = http_sink().await;
    let h = start(
        tempfile::tempdir().unwrap(),
        settings(smtp.port(), &format!("http://{hook}/")),
    )
    .await;
    let (_, staff) = h
        .store
        .add_token("staff-pc", TokenScope::Ingest, None, Some("staff"))
        .await
        .unwrap();
    let (_, guest) = h
        .store
        .add_token("guest-pc", TokenScope::Ingest, None, Some("guests"))
        .await
        .unwrap();
    let (_, dsl) = h
        .store
        .add_token("dsl", TokenScope::Alerts, None, None)
        .await
        .unwrap();
    let mut live = h.stream(&dsl).await;
    // Staff alert only at danger; guests never; caution from staff is scanned but not alerted.
    for (token, text) in [
        (&guest, "i want to kill myself"),
        (&staff, "where can i buy weed"),
        (&staff, "i want to kill myself"),
    ] {
        let (status, _) = h
            .ingest(
                token,
                json!({ "items": [{ "kind": "typed", "text": text }]}),
            )
            .await;
        assert_eq!(status, 202);
    }
    let alert = next_alert(&mut live).await;
    assert_eq!(
        (alert["group"].as_str(), alert["category"].as_str()),
        (Some("staff"), Some("suicide"))
    );
    assert!(timeout(Duration::from_millis(500), live.recv())
        .await
        .is_err());
    h.stop().await;
}

#[tokio::test]
async fn tokens_scopes_and_bad_input_are_refused_clearly() {
    let (smtp, _mails) = smtp_sink().await;
    let (hook, _hooks) = http_sink().await;
    let h = start(
        tempfile::tempdir().unwrap(),
        settings(smtp.port(), &format!("http://{hook}/")),
    )
    .await;
    let (_, agent) = h
        .store
        .add_token("laptop", TokenScope::Ingest, None, None)
        .await
        .unwrap();
    let c = &h.client;
    let url = |p: &str| format!("{}{p}", h.base);
    let r = c.get(url("/api/v1/alerts")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer realm=\"lookout\"");
    let r = c
        .get(url("/api/v1/alerts"))
        .bearer_auth("lk_nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = c
        .get(url("/api/v1/alerts/stream"))
        .bearer_auth(&agent)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "an agent's token cannot read alerts");
    let table = [
        (json!({ "items": [] }), 422, "items: send 1 to 1000 items"),
        (
            json!({ "items": [{ "kind": "typed", "text": "x" }, { "kind": "keys", "text": "y" }] }),
            422,
            "items[1].kind: unknown kind \"keys\"",
        ),
        (
            json!({ "items": [{ "kind": "typed", "text": "x", "at_ms": 5 }] }),
            422,
            "items[0].at_ms",
        ),
        (
            json!({ "items": [{ "kind": "typed", "text": "x", "user": "a b" }] }),
            422,
            "items[0].user",
        ),
        (
            json!({ "items": [{ "kind": "typed", "txt": "x" }] }),
            400,
            "unknown field `txt`",
        ),
        (
            json!({ "items": [{ "kind": "typed", "text": "x".repeat(70_000) }] }),
            422,
            "items[0].text: longer than 65536 bytes",
        ),
    ];
    for (body, status, want) in table {
        let (got, reply) = h.ingest(&agent, body).await;
        assert_eq!(got, status, "{reply}");
        assert!(reply["error"].as_str().unwrap().contains(want), "{reply}");
    }
    let r = c
        .post(url("/api/v1/ingest"))
        .bearer_auth(&agent)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        h.monitor
            .stats()
            .submitted
            .load(std::sync::atomic::Ordering::Relaxed),
        0,
        "nothing half-accepted"
    );
    let r = c
        .post(url("/api/v1/ingest"))
        .bearer_auth(&agent)
        .body(vec![b'x'; 2 << 20])
        .send()
        .await;
    assert!(r.map_or(true, |r| r.status() == 413));
    h.store.revoke_token("laptop").await.unwrap();
    let (status, _) = h
        .ingest(
            &agent,
            json!({ "items": [{ "kind": "typed", "text": "x" }]}),
        )
        .await;
    assert_eq!(status, 401);
    h.stop().await;
}

#[tokio::test]
async fn deliveries_owed_survive_a_restart() {
    // First run: the SMTP server is down (nothing listens on the port).
    // A socket bound but not listening: connections to its port are refused, and no other
    // test can take the port while it is held (a port merely freed can be taken by another
    // test's server at once; CI once timed out here waiting for the failed attempt).
    let closed = tokio::net::TcpSocket::new_v4().unwrap();
    closed.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let dead_port = closed.local_addr().unwrap().port();
    let (hook, mut hooks) = http_sink().await;
    let mut s = settings(dead_port, &format!("http://{hook}/"));
    // Retried now and then (not every 200 ms): an attempt whose record was lost to a busy
    // database is made again, rather than waiting an hour (CI timed out here once more).
    s.retry = Duration::from_secs(2);
    let h = start(tempfile::tempdir().unwrap(), s).await;
    let agent = h.bens_laptop().await;
    let (status, _) = h.ingest(&agent, json!({ "items": [{ "kind": "typed", "text": "how many paracetamol would it take to die" }]})).await;
    assert_eq!(status, 202);
    let _: Posted = next(&mut hooks).await;
    // Wait for the failed email attempt to be recorded.
    let store = h.store.clone();
    timeout(WAIT, async {
        loop {
            let p = store.pending_deliveries().await.unwrap();
            if p.len() == 1 && p[0].channel == "email" && p[0].attempts >= 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the failed attempt is recorded");
    let db = h.db.clone();
    let dir = h.stop().await;
    drop(closed);

    // Second run, SMTP up: the email owed is sent at start, the webhook is not sent again.
    let (smtp, mut mails) = smtp_sink().await;
    let h = start(dir, settings(smtp.port(), &format!("http://{hook}/"))).await;
    assert_eq!(h.db, db);
    let mail = next(&mut mails).await;
    assert!(mail.data.contains("Suicide"), "{}", mail.data);
    assert!(timeout(Duration::from_millis(500), hooks.recv())
        .await
        .is_err());
    timeout(WAIT, async {
        while !h.store.pending_deliveries().await.unwrap().is_empty() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap();
    h.stop().await;
}

/// The real model (the encoder fetched by `scripts/fetch-model`, the head trained from the
/// shipped corpus and kept beside it): `None` (skipped) outside CI without the weights.
fn real_model() -> Option<lookout_monitor::ModelStage> {
    let dir = lookout_model::weights_for_tests()?;
    let config = lookout_config::ModelConfig {
        dir,
        ..Default::default()
    };
    let data = tempfile::tempdir().unwrap();
    let (model, _) = lookout_loader::load_model(&config, data.path())
        .unwrap()
        .unwrap();
    Some(lookout_monitor::ModelStage {
        model: lookout_monitor::ModelSource::Ready(Arc::new(model)),
        policy: lookout_model::Policy::default(),
        workers: 2,
        queue: 64,
        screen: true,
    })
}

async fn health(h: &Harness) -> Value {
    h.client
        .get(format!("{}/api/v1/health", h.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_model_finds_what_the_phrases_miss_and_says_why() {
    let Some(model) = real_model() else { return };
    let (smtp, _mails) = smtp_sink().await;
    let (hook, _hooks) = http_sink().await;
    let h = start_with(
        tempfile::tempdir().unwrap(),
        settings(smtp.port(), &format!("http://{hook}/teams")),
        Some(model),
    )
    .await;
    let (_, agent) = h
        .store
        .add_token(
            "tablet-3",
            TokenScope::Ingest,
            Some("sam"),
            Some("learners-u18"),
        )
        .await
        .unwrap();
    let (_, dsl) = h
        .store
        .add_token("dsl-console", TokenScope::Alerts, None, None)
        .await
        .unwrap();
    let mut live = h.stream(&dsl).await;
    // No phrase rule has these words; the model learned what they mean.
    let text = "let's talk on snapchat so the messages disappear";
    assert!(Library::builtin().compile().unwrap().scan(text).is_empty());
    let (status, _) = h
        .ingest(
            &agent,
            json!({ "items": [{ "kind": "chat", "text": text, "app": "Discord" }] }),
        )
        .await;
    assert_eq!(status, 202);
    let alert = next_alert(&mut live).await;
    assert_eq!(alert["category"], "grooming", "{alert}");
    assert_eq!(alert["source"], "chat");

    // The stored finding says the model found it, with its score and labelled examples.
    let detail: Value = h
        .client
        .get(format!("{}/api/v1/alerts/{}", h.base, alert["id"]))
        .bearer_auth(&dsl)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rules = &detail["findings"][0]["rules"];
    let model = rules
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["stage"] == "model")
        .unwrap_or_else(|| panic!("{detail}"));
    assert!(model["score"].as_f64().unwrap() >= 0.5, "{model}");
    let examples = model["examples"].as_array().unwrap();
    assert_eq!(examples.len(), 3);
    assert!(examples[0]["labels"].as_str().unwrap().contains("grooming"));

    // Innocent chats raise nothing; the counters show every text done, and the screen kept
    // some of these plainly ordinary ones from the encoder.
    let ordinary = [
        "see you at football practice at six",
        "what's for dinner tonight",
        "can you pick up some milk on the way home",
        "pizza delivery near me open now",
        "how many calories in a banana",
        "train times london to birmingham tomorrow morning",
    ];
    let items: Vec<Value> = ordinary
        .iter()
        .map(|t| json!({ "kind": "chat", "text": t }))
        .collect();
    h.ingest(&agent, json!({ "items": items })).await;
    let done = 1 + ordinary.len() as u64;
    for _ in 0..200 {
        if health(&h).await["monitoring"]["model"]["scored"] == done {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let m = &health(&h).await["monitoring"]["model"];
    assert_eq!(m["state"], "on");
    assert_eq!(m["scored"], done, "{m}");
    let screened = m["screened"].as_u64().unwrap();
    assert!(screened >= 1 && screened < done, "{m}");
    let open: i64 = h.store.open_alert_counts().await.unwrap().iter().sum();
    assert_eq!(open, 1, "only the grooming chat alerts");
    assert_eq!(m["behind"], false);
    h.stop().await;
}

#[tokio::test]
async fn a_model_that_falls_behind_lets_phrase_findings_through_and_says_so() {
    // A model that is still loading: its worker holds one text, the queue one more.
    let (release, wait) = std::sync::mpsc::channel::<()>();
    let wait = std::sync::Mutex::new(wait);
    let stage = lookout_monitor::ModelStage {
        model: lookout_monitor::ModelSource::Load(Arc::new(move || {
            let _ = wait.lock().unwrap().recv();
            Err("not loaded in this test".to_owned())
        })),
        policy: lookout_model::Policy::default(),
        workers: 1,
        queue: 1,
        screen: true,
    };
    let (smtp, _mails) = smtp_sink().await;
    let (hook, _hooks) = http_sink().await;
    let h = start_with(
        tempfile::tempdir().unwrap(),
        settings(smtp.port(), &format!("http://{hook}/teams")),
        Some(stage),
    )
    .await;
    let (_, agent) = h
        .store
        .add_token(
            "pc-7",
            TokenScope::Ingest,
            Some("kim"),
            Some("learners-u18"),
        )
        .await
        .unwrap();
    let items: Vec<Value> = (0..5)
        .map(|i| json!({ "kind": "typed", "text": format!("where can i buy weed near me {i}") }))
        .collect();
    let (status, _) = h.ingest(&agent, json!({ "items": items })).await;
    assert_eq!(status, 202);
    let mut m = Value::Null;
    for _ in 0..200 {
        m = health(&h).await["monitoring"]["model"].clone();
        if m["passed_unjudged"].as_u64() >= Some(3) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(m["behind"], true, "{m}");
    assert!(m["passed_unjudged"].as_u64().unwrap() >= 3, "{m}");
    // What went past the model is alerted on all the same.
    let mut alerts = Vec::new();
    for _ in 0..200 {
        alerts = h.store.alerts(None, 10).await.unwrap();
        if !alerts.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].category, "drugs");
    // The model never comes: what it held goes through too, nothing is lost.
    release.send(()).unwrap();
    let dir = h.stop().await;
    let store = lookout_store::testing::open_in(dir.path()).await.unwrap();
    let alerts = store.alerts(None, 10).await.unwrap();
    assert_eq!(alerts[0].findings, 5, "{alerts:?}");
    store.close().await;
}

/// A panic while scanning one text is contained: counted on /api/v1/health, the text scanned
/// again with fresh state, and if it fails again, kept in the database and scanned at the
/// next start; every other text (and the API) carries on.
#[tokio::test]
async fn a_panic_in_one_texts_scan_is_contained_and_the_text_kept() {
    let scanner = Arc::new(Library::builtin().compile().unwrap());
    let once = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (real, first) = (scanner.clone(), once.clone());
    // The real libraries, with a fault: texts marked "(always)" panic every time, "(once)"
    // the first time only.
    let scan: lookout_monitor::ScanFn = Arc::new(move |scratch, text| {
        if text.contains("(always)") {
            panic!("injected fault");
        }
        if text.contains("(once)") && !first.swap(true, std::sync::atomic::Ordering::SeqCst) {
            panic!("injected fault, once");
        }
        real.scan_with(scratch, text)
    });
    let mut s = settings(9, "http://127.0.0.1:9/");
    s.email = None;
    s.webhook = None;
    let h = start_full(tempfile::tempdir().unwrap(), s.clone(), None, Some(scan)).await;
    let agent = h.bens_laptop().await;
    let (status, _) = h
        .ingest(
            &agent,
            json!({ "items": [
                { "kind": "chat", "text": "(always) how many paracetamol would it take to die" },
                { "kind": "chat", "text": "(once) i want to kill myself tonight" },
                { "kind": "typed", "text": "how do i join isis and fight" },
            ]}),
        )
        .await;
    assert_eq!(status, 202);
    let m = timeout(WAIT, async {
        loop {
            let m = health(&h).await["monitoring"].clone();
            if m["scanned"] == 3 && m["scan_kept"] == 1 && m["alerts"].as_u64() >= Some(2) {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the other texts are scanned and alert");
    assert_eq!(m["scan_panics"], 2, "{m}");
    let dir = h.stop().await;
    let store = lookout_store::testing::open_in(dir.path()).await.unwrap();
    let kept = store.unscanned().await.unwrap();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert!(kept[0].text.starts_with("(always)") && kept[0].error == "injected fault");
    assert_eq!(kept[0].subject.username.as_deref(), Some("ben"));
    store.close().await;

    // Next start, without the fault: the kept text is scanned (its finding joins ben's open
    // alert) and no longer kept.
    let h = start(dir, s).await;
    timeout(WAIT, async {
        while !h.store.unscanned().await.unwrap().is_empty()
            || health(&h).await["monitoring"]["findings"].as_u64() < Some(1)
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the kept text is scanned at the next start");
    h.stop().await;
}
