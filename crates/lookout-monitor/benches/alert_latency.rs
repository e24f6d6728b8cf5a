//! Alert latency, end to end in one process over real sockets: a text is submitted as the
//! activity log's observer submits it → scanned → alert committed to SQLite → received by an
//! SSE client over HTTP; and → email accepted by a real SMTP listener. Prints p50/p95/p99/max.
//!
//! `cargo bench -p lookout-monitor --bench alert_latency` (ALERTS=n to change the count).
//! Each alert is about a different person, so each is a new alert with its own email.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lookout_monitor::{
    router, serve_api, ApiState, Email, EmailTls, Job, Monitor, Settings, Source,
};
use lookout_scan::{Library, Severity};
use lookout_store::{Store, Subject, TokenScope};
use tokio_util::sync::CancellationToken;

fn percentiles(mut v: Vec<Duration>) -> String {
    v.sort();
    let p = |q: f64| v[((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1];
    format!(
        "p50 {:>7.2} ms  p95 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms  (n={})",
        p(0.50).as_secs_f64() * 1e3,
        p(0.95).as_secs_f64() * 1e3,
        p(0.99).as_secs_f64() * 1e3,
        v[v.len() - 1].as_secs_f64() * 1e3,
        v.len()
    )
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing: run short then.
    let bench = std::env::args().any(|a| a == "--bench");
    let n: usize = std::env::var("ALERTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if bench { 300 } else { 5 });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run(n));
}

async fn run(n: usize) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("lookout.db")).await.unwrap();
    let (smtp, mut mails) = lookout_testkit::smtp_sink().await;
    let settings = Settings {
        thresholds: HashMap::new(),
        default_threshold: Some(Severity::Caution),
        window: Duration::from_secs(1800),
        queue: 16_384,
        email: Some(
            Email::new(
                "127.0.0.1",
                smtp.port(),
                EmailTls::None,
                None,
                "lookout@bench.test",
                &["dsl@bench.test".to_owned()],
            )
            .unwrap(),
        ),
        webhook: None,
        console_url: "http://127.0.0.1".into(),
        retry: Duration::from_secs(30),
    };
    let scanner = Arc::new(Library::builtin().compile().unwrap());
    let (monitor, tasks) = Monitor::start(scanner, store.clone(), settings, None);
    let shutdown = CancellationToken::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = router(
        ApiState {
            monitor: monitor.clone(),
            shutdown: shutdown.clone(),
        },
        1 << 20,
    );
    let server = tokio::spawn(serve_api(listener, app, shutdown.clone()));
    let (_, token) = store
        .add_token("bench", TokenScope::Alerts, None, None)
        .await
        .unwrap();
    let resp = reqwest::Client::new()
        .get(format!("http://{addr}/api/v1/alerts/stream"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let mut live = lookout_testkit::sse_events(resp);
    assert_eq!(live.recv().await.unwrap().0, "ready");

    let mut on_stream = Vec::with_capacity(n);
    let mut by_email = Vec::with_capacity(n);
    let texts = [
        "how many paracetamol would it take to die",
        "i want to kill myself",
        "dont tell your parents about us, our little secret",
        "im gonna bring a knife to school tomorrow",
    ];
    for i in 0..n {
        let sent = Instant::now();
        monitor.submit(Job {
            at_ms: lookout_store::now_ms(),
            source: Source::Search,
            text: texts[i % texts.len()].to_owned(),
            location: "https://www.google.com/search".into(),
            subject: Subject {
                username: Some(format!("learner{i}")),
                client_ip: Some("10.0.0.1".into()),
                device: None,
                group: "learners-u18".into(),
                site: None,
            },
        });
        loop {
            let (event, _) = live.recv().await.unwrap();
            if event == "alert" {
                break;
            }
        }
        on_stream.push(sent.elapsed());
        let mail = tokio::time::timeout(Duration::from_secs(30), mails.recv())
            .await
            .expect("email in 30 s")
            .unwrap();
        by_email.push(mail.received - sent);
    }
    println!("alert on the SSE stream   {}", percentiles(on_stream));
    println!("email at the SMTP server  {}", percentiles(by_email));

    // A burst: many people at once (a class searching the same thing).
    let burst = n.min(200);
    let sent = Instant::now();
    for i in 0..burst {
        monitor.submit(Job {
            at_ms: lookout_store::now_ms(),
            source: Source::Search,
            text: texts[i % texts.len()].to_owned(),
            location: String::new(),
            subject: Subject {
                username: Some(format!("burst{i}")),
                client_ip: None,
                device: None,
                group: "learners-u18".into(),
                site: None,
            },
        });
    }
    let mut stream_times = Vec::with_capacity(burst);
    while stream_times.len() < burst {
        let (event, _) = live.recv().await.unwrap();
        if event == "alert" {
            stream_times.push(sent.elapsed());
        }
    }
    let mut mail_times = Vec::with_capacity(burst);
    while mail_times.len() < burst {
        let m = tokio::time::timeout(Duration::from_secs(60), mails.recv())
            .await
            .expect("burst emails")
            .unwrap();
        mail_times.push(m.received - sent);
    }
    println!("burst of {burst}: stream   {}", percentiles(stream_times));
    println!("burst of {burst}: email    {}", percentiles(mail_times));
    shutdown.cancel();
    let _ = server.await;
    drop(monitor);
    tasks.finish().await;
    store.close().await;
}
