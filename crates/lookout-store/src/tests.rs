//! Store tests on a real SQLite file.

use std::net::IpAddr;

use super::*;

async fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("lookout.db")).await.unwrap();
    (dir, store)
}

fn user(name: &str, group: &str, password: Option<&str>) -> NewUser {
    NewUser {
        username: name.into(),
        display_name: format!("{name} full name"),
        group: group.into(),
        password: password.map(str::to_owned),
    }
}

fn event(n: usize, action: &str) -> Event {
    Event {
        at_ms: 1_700_000_000_000 + n as i64,
        reference: format!("REF{n}"),
        service: "proxy",
        client_ip: "10.0.0.7".into(),
        username: (n % 2 == 0).then(|| "amy".to_owned()),
        group: "learners".into(),
        method: "GET".into(),
        url: format!("http://www{n}.casino.example/page?q=x"),
        host: format!("www{n}.casino.example"),
        search_term: (n == 3).then(|| "How To Bet".to_owned()),
        categories: "gambling,adverts".into(),
        action: action.into(),
        rule: "category".into(),
        reason: "category Gambling".into(),
        status: Some(403),
        bytes: 1234,
    }
}

#[tokio::test]
async fn users_add_verify_disable() {
    let (_dir, store) = store().await;
    let amy = store
        .add_user(&user("Amy.Smith", "learners-u18", Some("correct horse")))
        .await
        .unwrap();
    assert_eq!(amy.username, "amy.smith");
    assert!(matches!(
        store.add_user(&user("AMY.smith", "staff", None)).await,
        Err(UserError::Exists(_))
    ));
    for bad in ["", "a b", "x/y", &"a".repeat(65)] {
        assert!(
            matches!(
                store.add_user(&user(bad, "staff", None)).await,
                Err(UserError::BadName(_))
            ),
            "{bad:?}"
        );
    }
    assert!(matches!(
        store.add_user(&user("bob", "staff", Some("short"))).await,
        Err(UserError::BadPassword)
    ));

    let ok = store
        .verify_password("AMY.SMITH", "correct horse")
        .await
        .unwrap();
    assert_eq!(ok.map(|u| u.group), Some("learners-u18".to_owned()));
    assert_eq!(
        store
            .verify_password("amy.smith", "wrong horse")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .verify_password("nobody", "correct horse")
            .await
            .unwrap(),
        None
    );

    // The stored hash is argon2id, never the password.
    let hash: String = sqlx::query_scalar("SELECT password_hash FROM users")
        .fetch_one(&store.pool)
        .await
        .unwrap();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(!hash.contains("correct horse"));

    let ip: IpAddr = "10.0.0.7".parse().unwrap();
    store
        .sign_in_address(ip, "amy.smith", now_ms() + 60_000)
        .await
        .unwrap();
    assert!(store.user_at_address(ip, now_ms()).await.unwrap().is_some());
    assert!(store
        .user_at_address(ip, now_ms() + 120_000)
        .await
        .unwrap()
        .is_none());

    store.set_disabled("amy.smith", true).await.unwrap();
    assert_eq!(
        store
            .verify_password("amy.smith", "correct horse")
            .await
            .unwrap(),
        None
    );
    assert!(store.user_at_address(ip, now_ms()).await.unwrap().is_none());
    assert!(store.users().await.unwrap()[0].disabled);
    assert!(matches!(
        store.set_disabled("nobody", true).await,
        Err(UserError::NotFound(_))
    ));
    store.set_disabled("amy.smith", false).await.unwrap();
    store
        .set_password("amy.smith", "battery staple")
        .await
        .unwrap();
    assert!(store
        .verify_password("amy.smith", "battery staple")
        .await
        .unwrap()
        .is_some());
}

#[tokio::test]
async fn import_is_all_or_nothing_and_updates() {
    let (_dir, store) = store().await;
    store
        .add_user(&user("amy", "learners", Some("password1")))
        .await
        .unwrap();
    let (added, updated) = store
        .import_users(&[
            user("amy", "staff", None),
            user("ben", "learners-u18", None),
        ])
        .await
        .unwrap();
    assert_eq!((added, updated), (1, 1));
    let amy = store.user("amy").await.unwrap().unwrap();
    assert_eq!(amy.group, "staff");
    assert!(
        amy.has_password,
        "an import without a password keeps the old one"
    );

    // One bad row: nothing changes.
    let err = store
        .import_users(&[user("cat", "staff", None), user("bad name", "staff", None)])
        .await;
    assert!(matches!(err, Err(UserError::BadName(_))));
    assert!(store.user("cat").await.unwrap().is_none());
}

#[tokio::test]
async fn event_log_batches_and_flushes_on_finish() {
    let (dir, store) = store().await;
    let (log, writer) = EventLog::start(store.clone(), 10_000, 64);
    for n in 0..1000 {
        log.record(event(n, if n % 10 == 0 { "block" } else { "allow" }));
    }
    writer.finish().await;
    let stats = log.stats();
    assert_eq!(
        (stats.queued, stats.written, stats.dropped),
        (1000, 1000, 0)
    );

    // Reopen: everything is on disk.
    store.close().await;
    let store = Store::open(&dir.path().join("lookout.db")).await.unwrap();
    let all = store
        .events(&EventFilter {
            limit: Some(5000),
            ..EventFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 1000);
    assert_eq!(
        all[0].event,
        event(999, "allow"),
        "newest first, every field kept"
    );

    for (filter, want) in [
        (
            EventFilter {
                action: Some("block".into()),
                ..Default::default()
            },
            100,
        ),
        (
            EventFilter {
                username: Some("AMY".into()),
                ..Default::default()
            },
            100,
        ),
        (
            EventFilter {
                reference: Some("ref3".into()),
                ..Default::default()
            },
            1,
        ),
        (
            EventFilter {
                host: Some("casino.example".into()),
                ..Default::default()
            },
            100,
        ),
        (
            EventFilter {
                host: Some("www7.casino.example".into()),
                ..Default::default()
            },
            1,
        ),
        (
            EventFilter {
                host: Some("sino.example".into()),
                ..Default::default()
            },
            0,
        ),
        (
            EventFilter {
                text: Some("how to".into()),
                ..Default::default()
            },
            1,
        ),
        (
            EventFilter {
                text: Some("100%".into()),
                ..Default::default()
            },
            0,
        ),
        (
            EventFilter {
                category: Some("adverts".into()),
                ..Default::default()
            },
            100,
        ),
        (
            EventFilter {
                category: Some("advert".into()),
                ..Default::default()
            },
            0,
        ),
        (
            EventFilter {
                after_id: Some(995),
                limit: Some(1000),
                ..Default::default()
            },
            5,
        ),
        (
            EventFilter {
                since_ms: Some(1_700_000_000_990),
                limit: Some(1000),
                ..Default::default()
            },
            10,
        ),
    ] {
        assert_eq!(
            store.events(&filter).await.unwrap().len(),
            want,
            "{filter:?}"
        );
    }
}

#[tokio::test]
async fn a_full_queue_drops_counts_and_records_the_gap() {
    let (_dir, store) = store().await;
    // A tiny queue, filled faster than the writer can run (it has not been polled yet).
    let (log, writer) = EventLog::start(store.clone(), 4, 2);
    for n in 0..50 {
        log.record(event(n, "allow"));
    }
    let stats = log.stats();
    assert_eq!(stats.queued + stats.dropped, 50);
    assert!(stats.dropped >= 46, "{stats:?}");
    writer.finish().await;
    let stats = log.stats();
    assert_eq!(stats.written, stats.queued);
    let gaps = store.log_gaps().await.unwrap();
    assert_eq!(
        gaps.iter().map(|g| g.dropped).sum::<i64>() as u64,
        stats.dropped
    );
    assert_eq!(gaps[0].cause, "queue full");
}

fn finding(at_ms: i64, category: &str, severity: &str) -> NewFinding {
    NewFinding {
        at_ms,
        source: "search".into(),
        category: category.into(),
        severity: severity.into(),
        score: 50,
        evidence: "evidence".into(),
        context: "some context".into(),
        rules: "[]".into(),
        location: "https://www.google.com/search?q=x".into(),
    }
}

#[tokio::test]
async fn findings_group_into_alerts_and_danger_queues_deliveries() {
    let (_dir, store) = store().await;
    let amy = Subject {
        username: Some("amy".into()),
        client_ip: Some("10.0.0.7".into()),
        device: None,
        group: "learners".into(),
    };
    let window = 30 * 60 * 1000;
    let t = 1_700_000_000_000;
    let chans = ["email", "webhook"];
    let r1 = store
        .record_finding(&amy, &finding(t, "drugs", "caution"), window, &chans)
        .await
        .unwrap();
    assert!(r1.created && r1.deliveries.is_empty());
    // Same subject and category within the window: grouped, no new deliveries.
    let r2 = store
        .record_finding(
            &amy,
            &finding(t + 60_000, "drugs", "caution"),
            window,
            &chans,
        )
        .await
        .unwrap();
    assert_eq!(
        (r2.created, r2.escalated, r2.alert.id, r2.alert.findings),
        (false, false, r1.alert.id, 2)
    );
    // Escalation to danger queues deliveries once.
    let r3 = store
        .record_finding(
            &amy,
            &finding(t + 120_000, "drugs", "danger"),
            window,
            &chans,
        )
        .await
        .unwrap();
    assert!(r3.escalated && r3.alert.severity == "danger");
    assert_eq!(r3.deliveries, ["email", "webhook"]);
    let r4 = store
        .record_finding(
            &amy,
            &finding(t + 130_000, "drugs", "danger"),
            window,
            &chans,
        )
        .await
        .unwrap();
    assert!(!r4.escalated && r4.deliveries.is_empty());
    // Another category, or after the window: a new alert.
    let r5 = store
        .record_finding(
            &amy,
            &finding(t + 140_000, "suicide", "danger"),
            window,
            &chans,
        )
        .await
        .unwrap();
    assert!(r5.created && r5.alert.id != r1.alert.id && r5.deliveries.len() == 2);
    let r6 = store
        .record_finding(
            &amy,
            &finding(t + 140_000 + window + 1 + 130_000, "drugs", "caution"),
            window,
            &chans,
        )
        .await
        .unwrap();
    assert!(r6.created);
    // Deliveries are owed until recorded as sent.
    let pending = store.pending_deliveries().await.unwrap();
    assert_eq!(pending.len(), 4);
    store
        .delivery_attempt(pending[0].id, Ok(()), false)
        .await
        .unwrap();
    store
        .delivery_attempt(pending[1].id, Err("connection refused"), false)
        .await
        .unwrap();
    store
        .delivery_attempt(pending[2].id, Err("bad address"), true)
        .await
        .unwrap();
    let pending = store.pending_deliveries().await.unwrap();
    assert_eq!(
        pending.iter().map(|d| d.attempts).collect::<Vec<_>>(),
        [1, 0]
    );
    let (alert, findings) = store.alert(r1.alert.id).await.unwrap().unwrap();
    assert_eq!((alert.findings, findings.len()), (4, 4));
    assert_eq!(store.alerts(None, 10).await.unwrap().len(), 3);
    assert_eq!(
        store.alerts_created_between(t, t + 1).await.unwrap().len(),
        1
    );
}

#[tokio::test]
async fn tokens_are_stored_hashed_and_can_be_revoked() {
    let (dir, store) = store().await;
    let (tok, secret) = store
        .add_token(
            "laptop-12",
            TokenScope::Ingest,
            Some("amy"),
            Some("learners"),
        )
        .await
        .unwrap();
    assert!(secret.starts_with("lk_") && secret.len() == 67);
    assert_eq!(store.token(&secret).await.unwrap(), Some(tok.clone()));
    assert_eq!(store.token("lk_wrong").await.unwrap(), None);
    assert!(store
        .add_token("laptop-12", TokenScope::Ingest, None, None)
        .await
        .is_err());
    assert!(store.revoke_token("laptop-12").await.unwrap());
    assert_eq!(store.token(&secret).await.unwrap(), None);
    store.close().await;
    let raw = std::fs::read(dir.path().join("lookout.db")).unwrap();
    assert!(
        !raw.windows(secret.len()).any(|w| w == secret.as_bytes()),
        "secret stored in clear"
    );
}
