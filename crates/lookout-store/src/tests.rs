//! Store tests on a real SQLite file, or on a real PostgreSQL server when
//! `LOOKOUT_TEST_POSTGRES` names one (see [`crate::testing`]).

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::log_writer::{GIVE_WAY_EVERY, KINDS_KEPT, ROWS_PER_INSERT};
use crate::testing::TestDb;
use sqlx::Row;

async fn store() -> (tempfile::TempDir, Store) {
    let (dir, _, store) = test_db().await;
    (dir, store)
}

async fn test_db() -> (tempfile::TempDir, TestDb, Store) {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::new(dir.path()).await.unwrap();
    let store = db.open().await.unwrap();
    (dir, db, store)
}

/// Someone with the database's own password drops the triggers, (`table`, `trigger`).
async fn drop_triggers(store: &Store, triggers: &[(&str, &str)]) {
    for (table, trigger) in triggers {
        let sql = match store.dialect() {
            Dialect::Sqlite => format!("DROP TRIGGER {trigger}"),
            Dialect::Postgres => format!("DROP TRIGGER {trigger} ON {table}"),
        };
        sqlx::query(&sql).execute(&store.pool).await.unwrap();
    }
}

fn user(name: &str, group: &str, password: Option<&str>) -> NewUser {
    NewUser {
        username: name.into(),
        display_name: format!("{name} full name"),
        group: group.into(),
        password: password.map(str::to_owned),
        role: None,
        email: None,
        team: None,
    }
}

fn event(n: usize, action: &'static str) -> Event {
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

/// Waits (up to 30 s) until `log` has written `n` events.
async fn wait_written(log: &EventLog, n: u64) {
    let started = std::time::Instant::now();
    while log.stats().written < n && started.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn event_log_gathers_events_into_one_transaction_for_up_to_flush() {
    let (_dir, store) = store().await;
    // Events recorded one by one within the flush time: one transaction (written at once,
    // they would be five).
    let (log, writer) = EventLog::start(store.clone(), 10_000, 4096, Duration::from_secs(2));
    for n in 0..50 {
        log.record(event(n, "allow"));
        if n % 10 == 9 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    wait_written(&log, 50).await;
    let stats = log.stats();
    assert_eq!((stats.written, stats.transactions), (50, 1));
    // A full batch does not wait for the flush time; a stop does not either.
    writer.finish().await;

    let (log, writer) = EventLog::start(store.clone(), 10_000, 10, Duration::from_secs(3600));
    for n in 0..25 {
        log.record(event(n, "allow"));
    }
    wait_written(&log, 20).await;
    assert_eq!(log.stats().written, 20, "two full batches written at once");
    tokio::time::timeout(Duration::from_secs(30), writer.finish())
        .await
        .expect("a stop writes what is gathered without waiting an hour");
    let stats = log.stats();
    assert_eq!((stats.written, stats.transactions), (25, 3));

    // A batch filled while the writer gathers (it took the first events and waits, with an
    // hour to go) is written when the last event arrives, in one transaction.
    let (log, writer) = EventLog::start(store.clone(), 10_000, 10, Duration::from_secs(3600));
    for n in 0..3 {
        log.record(event(n, "allow"));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(log.backlog(), 0, "the writer took the first events");
    for n in 3..9 {
        log.record(event(n, "allow"));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(log.stats().written, 0, "nine of ten: still gathering");
    log.record(event(9, "allow"));
    wait_written(&log, 10).await;
    let stats = log.stats();
    assert_eq!((stats.written, stats.transactions), (10, 1));
    writer.finish().await;
}

#[tokio::test]
async fn observers_see_logged_events_and_decision_observers_every_decision() {
    let (_dir, store) = store().await;
    let (log, writer) = EventLog::start(store.clone(), 10_000, 64, Duration::ZERO);
    let logged = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let decided = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let watch = |into: &std::sync::Arc<std::sync::Mutex<Vec<String>>>| {
        let into = into.clone();
        Observer(std::sync::Arc::new(move |e: &Event| {
            into.lock().expect("not poisoned").push(e.url.clone());
        }))
    };
    assert!(!log.watches_unlogged());
    let log = log.with_observer(watch(&logged));
    assert!(
        !log.watches_unlogged(),
        "a copy of the log does not see unlogged decisions"
    );
    let log = log.with_decision_observer(watch(&decided));
    assert!(log.watches_unlogged());
    log.record(event(1, "block"));
    log.pass(&event(2, "allow"));
    log.record(event(3, "allow"));
    writer.finish().await;
    let url = |n| event(n, "allow").url;
    assert_eq!(*logged.lock().expect("not poisoned"), [url(1), url(3)]);
    assert_eq!(
        *decided.lock().expect("not poisoned"),
        [url(1), url(2), url(3)]
    );
    let stats = log.stats();
    assert_eq!(
        (stats.queued, stats.written),
        (2, 2),
        "a passed event is not written"
    );
}

#[tokio::test]
async fn event_log_batches_and_flushes_on_finish() {
    let (_dir, db, store) = test_db().await;
    let (log, writer) = EventLog::start(store.clone(), 10_000, 64, Duration::ZERO);
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
    let store = db.open().await.unwrap();
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
    let (log, writer) = EventLog::start(store.clone(), 4, 2, Duration::ZERO);
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
        site: None,
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
    assert_eq!(store.count_pending_deliveries().await.unwrap(), 4);
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
    assert_eq!(store.count_pending_deliveries().await.unwrap(), 2);
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
    let (_dir, db, store) = test_db().await;
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
    match &db {
        TestDb::Sqlite(path) => {
            store.close().await;
            let raw = std::fs::read(path).unwrap();
            assert!(
                !raw.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "secret stored in clear"
            );
        }
        TestDb::Postgres(_) => {
            for row in sqlx::query("SELECT * FROM api_tokens")
                .fetch_all(&store.pool)
                .await
                .unwrap()
            {
                for i in 0..row.len() {
                    if let Ok(Some(text)) = row.try_get::<Option<String>, _>(i) {
                        assert!(!text.contains(&secret[3..]), "secret stored in clear");
                    }
                }
            }
        }
    }
}

#[tokio::test]
async fn console_sign_in_counts_failures_and_locks() {
    let (_d, store) = store().await;
    let mut u = user("dee", "staff", Some("dees-password"));
    u.role = Some(Role::Dsl);
    store.add_user(&u).await.unwrap();
    assert!(matches!(
        store.check_sign_in("DEE", "dees-password").await.unwrap(),
        PasswordCheck::Ok(a) if a.user.role == Role::Dsl && a.needs_totp_setup()
    ));
    // Unknown users and wrong passwords look the same.
    assert_eq!(
        store.check_sign_in("nobody", "whatever1").await.unwrap(),
        PasswordCheck::Refused
    );
    for _ in 1..LOCK_AFTER {
        assert_eq!(
            store.check_sign_in("dee", "wrong-password").await.unwrap(),
            PasswordCheck::Refused
        );
    }
    let PasswordCheck::Locked(until) = store.check_sign_in("dee", "wrong-password").await.unwrap()
    else {
        panic!("the fifth failure locks")
    };
    assert!(until > now_ms() + LOCK_MS - 60_000);
    // Locked: even the right password is refused until unlocked.
    assert_eq!(
        store.check_sign_in("dee", "dees-password").await.unwrap(),
        PasswordCheck::Locked(until)
    );
    store.unlock_account("dee").await.unwrap();
    assert!(matches!(
        store.check_sign_in("dee", "dees-password").await.unwrap(),
        PasswordCheck::Ok(_)
    ));
    // A code's time step can be used once.
    store
        .set_totp_secret("dee", Some("JBSWY3DPEHPK3PXP"))
        .await
        .unwrap();
    assert!(store.use_totp_step("dee", 100).await.unwrap());
    assert!(!store.use_totp_step("dee", 100).await.unwrap());
    assert!(!store.use_totp_step("dee", 99).await.unwrap());
    assert!(store.use_totp_step("dee", 101).await.unwrap());
    // Disabled users cannot sign in.
    store.set_disabled("dee", true).await.unwrap();
    assert_eq!(
        store.check_sign_in("dee", "dees-password").await.unwrap(),
        PasswordCheck::Refused
    );
}

#[tokio::test]
async fn sessions_expire_and_end_with_the_account() {
    let (_d, store) = store().await;
    store
        .add_user(&user("sam", "staff", Some("sams-password")))
        .await
        .unwrap();
    let now = now_ms();
    for (id, expires) in [("live", now + 60_000), ("old", now - 1)] {
        store
            .create_session(&NewSession {
                id_hash: id,
                username: "sam",
                stage: "full",
                csrf: "c",
                expires_ms: expires,
                client_ip: "127.0.0.1",
                user_agent: "test",
            })
            .await
            .unwrap();
    }
    let s = store.session("live", now).await.unwrap().unwrap();
    assert_eq!(
        (s.account.user.username.as_str(), s.stage.as_str()),
        ("sam", "full")
    );
    assert_eq!(store.session("old", now).await.unwrap(), None);
    assert_eq!(store.purge_sessions(now).await.unwrap(), 1);
    store
        .touch_session("live", now, now + 120_000)
        .await
        .unwrap();
    assert_eq!(
        store
            .session("live", now)
            .await
            .unwrap()
            .unwrap()
            .expires_ms,
        now + 120_000
    );
    store.set_disabled("sam", true).await.unwrap();
    assert_eq!(store.session("live", now).await.unwrap(), None);
}

#[tokio::test]
async fn signing_keys_are_replaced_but_kept_for_verifying() {
    let (_d, store) = store().await;
    let first = lookout_auth::SigningKey::generate();
    let id1 = store
        .replace_signing_key("vic", &first.seal("password-one"))
        .await
        .unwrap();
    let second = lookout_auth::SigningKey::generate();
    let id2 = store
        .replace_signing_key("vic", &second.seal("password-two"))
        .await
        .unwrap();
    let current = store.signing_key("vic").await.unwrap().unwrap();
    assert_eq!(current.id, id2);
    assert_eq!(
        current.key.unlock("password-two").unwrap().public(),
        second.public()
    );
    let old = store.signing_key_by_id(id1).await.unwrap().unwrap();
    assert_eq!(old.key.public, first.public());
    assert!(old.retired_ms.is_some());
    assert_eq!(old.key.sealed, "", "a retired key's secret is forgotten");
    // A password change re-seals the current key.
    store
        .add_user(&user("vic", "staff", Some("password-two")))
        .await
        .unwrap();
    let key = current.key.unlock("password-two").unwrap();
    store
        .change_password("vic", "password-three", Some(&key.seal("password-three")))
        .await
        .unwrap();
    let resealed = store.signing_key("vic").await.unwrap().unwrap();
    assert_eq!(
        resealed.key.unlock("password-three").unwrap().public(),
        second.public()
    );
}

#[tokio::test]
async fn audit_chain_detects_edits_deletions_and_reordering() {
    let (_dir, db, store) = test_db().await;
    assert_eq!(
        store.verify_audit().await.unwrap(),
        AuditVerification::default()
    );
    for i in 1..=6 {
        store
            .audit(
                &AuditEntry::new("dee", "alert.view", format!("alert:{i}"))
                    .detail("from the inbox")
                    .from_ip("10.0.0.5"),
            )
            .await
            .unwrap();
    }
    let clean = store.verify_audit().await.unwrap();
    assert_eq!((clean.rows, clean.problems.len()), (6, 0));
    assert_eq!(clean.head.as_ref().unwrap().0, 6);
    assert_eq!(store.audit_head().await.unwrap(), clean.head);

    // Lookout cannot change it: the triggers refuse.
    let refused = sqlx::query("UPDATE audit_log SET actor = 'x' WHERE seq = 2")
        .execute(&store.pool)
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("append-only"), "{refused}");
    assert!(sqlx::query("DELETE FROM audit_log WHERE seq = 2")
        .execute(&store.pool)
        .await
        .is_err());
    let filtered = store
        .audit_log(&AuditFilter {
            target: Some("alert:3".into()),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(filtered.len(), 1);
    assert_eq!(filtered[0].seq, 3);
    store.close().await;

    // Someone with the file drops the triggers and tampers: each kind of tampering is found.
    type Tamper = (&'static str, &'static [&'static str], AuditProblem);
    let table: [Tamper; 4] = [
        (
            "edit",
            &["UPDATE audit_log SET target = 'alert:99' WHERE seq = 3"],
            AuditProblem::Altered { seq: 3 },
        ),
        (
            "delete",
            &["DELETE FROM audit_log WHERE seq = 4"],
            AuditProblem::BrokenLink {
                seq: 5,
                after: Some(3),
            },
        ),
        (
            "reorder",
            &[
                "UPDATE audit_log SET seq = 100 WHERE seq = 2",
                "UPDATE audit_log SET seq = 2 WHERE seq = 3",
                "UPDATE audit_log SET seq = 3 WHERE seq = 100",
            ],
            AuditProblem::Altered { seq: 2 },
        ),
        (
            "delete first",
            &["DELETE FROM audit_log WHERE seq = 1"],
            AuditProblem::BrokenLink {
                seq: 2,
                after: None,
            },
        ),
    ];
    for (name, statements, expected) in table {
        let tampered = db.copy(name).await.unwrap().open().await.unwrap();
        drop_triggers(
            &tampered,
            &[
                ("audit_log", "audit_log_no_update"),
                ("audit_log", "audit_log_no_delete"),
            ],
        )
        .await;
        for sql in statements {
            sqlx::query(sql).execute(&tampered.pool).await.unwrap();
        }
        let v = tampered.verify_audit().await.unwrap();
        assert!(
            v.problems.contains(&expected),
            "{name}: expected {expected:?}, found {:?}",
            v.problems
        );
        tampered.close().await;
    }
}

#[tokio::test]
async fn incident_entries_cannot_be_edited_or_deleted() {
    let (_d, store) = store().await;
    let first = NewEntry::new("opened", serde_json::json!({"title": "t", "what": "w"}));
    let i = store
        .open_incident(
            "dee",
            "t",
            "bullying",
            &first,
            &[],
            &AuditEntry::new("dee", "incident.opened", ""),
        )
        .await
        .unwrap();
    assert!(i.reference.starts_with("INC-") && i.reference.ends_with("-0001"));
    for sql in [
        "UPDATE incident_entries SET body = '{}'",
        "DELETE FROM incident_entries",
        "UPDATE alert_reviews SET reason = 'x'",
    ] {
        let r = sqlx::query(sql).execute(&store.pool).await;
        if sql.contains("incident") {
            assert!(r.unwrap_err().to_string().contains("append-only"), "{sql}");
        }
    }
    let (_, entries) = store.incident(i.id).await.unwrap().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].body["what"], "w");
    let audit = store.audit_log(&AuditFilter::default()).await.unwrap();
    assert_eq!(audit[0].target, format!("incident:{}", i.id));
}

#[tokio::test]
async fn checks_verify_and_tampering_is_found() {
    let (_dir, db, store) = test_db().await;
    let (dsl, sup) = (
        lookout_auth::SigningKey::generate(),
        lookout_auth::SigningKey::generate(),
    );
    let dsl_id = store
        .replace_signing_key("dee", &dsl.seal("pw-dee-123"))
        .await
        .unwrap();
    let sup_id = store
        .replace_signing_key("sue", &sup.seal("pw-sue-123"))
        .await
        .unwrap();
    for i in 0..3 {
        let seq = store
            .audit(&AuditEntry::new("dee", "alert.view", format!("alert:{i}")))
            .await
            .unwrap();
        let head = store.audit_head().await.unwrap().unwrap();
        assert_eq!(head.0, seq);
        let content = serde_json::json!({"kind": "routine-check", "dsl": "dee", "n": i, "audit_head": {"seq": head.0, "hash": head.1}});
        let sig = dsl.sign(&lookout_auth::canonical_json(&content));
        let c = store
            .add_check(
                &content,
                "dee",
                dsl_id,
                &sig,
                &AuditEntry::new("dee", "check.signed", ""),
            )
            .await
            .unwrap();
        let at = now_ms();
        let cosig = sup.sign(&cosign_message(&c.content, &c.dsl_signature, "sue", at));
        if i < 2 {
            store
                .cosign_check(
                    c.id,
                    "sue",
                    sup_id,
                    &cosig,
                    at,
                    &AuditEntry::new("sue", "check.cosigned", ""),
                )
                .await
                .unwrap();
        }
        assert!(matches!(
            store
                .cosign_check(
                    c.id,
                    "dee",
                    dsl_id,
                    &cosig,
                    at,
                    &AuditEntry::new("dee", "x", "")
                )
                .await,
            Err(CosignError::OwnCheck | CosignError::AlreadyCosigned(_))
        ));
    }
    assert_eq!(store.verify_checks().await.unwrap(), (3, vec![]));
    // The trigger refuses edits of signed content, and deletions.
    assert!(sqlx::query("UPDATE checks SET content = '{}' WHERE id = 1")
        .execute(&store.pool)
        .await
        .is_err());
    assert!(sqlx::query("DELETE FROM checks WHERE id = 1")
        .execute(&store.pool)
        .await
        .is_err());
    store.close().await;

    let table: [(&str, &[&str], &str); 4] = [
        (
            "edit",
            &["UPDATE checks SET content = replace(content, '\"n\":1', '\"n\":9') WHERE id = 2"],
            "check 2: its content",
        ),
        (
            "delete",
            &["DELETE FROM checks WHERE id = 2"],
            "check 3: does not follow",
        ),
        (
            "forged co-signature",
            &["UPDATE checks SET supervisor = 'sid' WHERE id = 1"],
            "check 1: the co-signing key is not sid's",
        ),
        (
            "audit rewritten",
            &["UPDATE audit_log SET hash = 'x' WHERE seq = 1"],
            "audit log rewritten",
        ),
    ];
    for (name, statements, expected) in table {
        let copy = format!("checks-{}", name.replace(' ', "-"));
        let tampered = db.copy(&copy).await.unwrap().open().await.unwrap();
        drop_triggers(
            &tampered,
            &[
                ("checks", "checks_cosign_once"),
                ("checks", "checks_no_delete"),
                ("audit_log", "audit_log_no_update"),
            ],
        )
        .await;
        for sql in statements {
            sqlx::query(sql).execute(&tampered.pool).await.unwrap();
        }
        let (n, problems) = tampered.verify_checks().await.unwrap();
        assert!(
            problems.iter().any(|p| p.contains(expected)),
            "{name}: {n} checks, {problems:?}"
        );
        tampered.close().await;
    }
}

#[tokio::test]
async fn a_run_that_never_stopped_is_recorded_as_a_gap() {
    let (_dir, store) = store().await;
    let (first, unclean) = store.begin_run().await.unwrap();
    assert!(unclean.is_empty());
    store.run_alive(first, 10, 7).await.unwrap();
    // No `end_run`: killed. The next start finds it and records the gap once.
    let (second, unclean) = store.begin_run().await.unwrap();
    assert_eq!(unclean.len(), 1);
    assert_eq!(unclean[0].waiting, 3);
    let gaps = store.log_gaps().await.unwrap();
    assert_eq!(gaps.len(), 1);
    assert_eq!(gaps[0].dropped, 3);
    assert!(
        gaps[0].cause.contains("no clean stop on record"),
        "{}",
        gaps[0].cause
    );
    assert_eq!(gaps[0].at_ms, unclean[0].alive_ms);
    // A clean stop leaves nothing to record.
    store.end_run(second).await.unwrap();
    let (_, unclean) = store.begin_run().await.unwrap();
    assert!(unclean.is_empty());
    assert_eq!(store.log_gaps().await.unwrap().len(), 1);
}

/// Every stored event (up to 10,000), in the order stored.
async fn stored_events(store: &Store) -> Vec<Event> {
    let all = EventFilter {
        limit: Some(10_000),
        ..EventFilter::default()
    };
    let mut stored = store.events(&all).await.expect("events");
    stored.sort_by_key(|e| e.id);
    stored.into_iter().map(|e| e.event).collect()
}

/// The activity log's writer (its own connection on a SQLite file) and the pool's insert store
/// the same rows, field for field, interleaved in one database; a closed store refuses both.
#[tokio::test]
async fn the_log_writer_and_the_pool_store_the_same_events() {
    let (_dir, store) = store().await;
    // On a SQLite file the writer's own connection writes (checked after the first batch);
    // on PostgreSQL the pool does.
    let writer_used = || store.log_writer.as_ref().is_some_and(|w| w.is_open());
    let mut odd = event(3, "block");
    odd.username = None;
    odd.status = None;
    odd.bytes = u64::MAX; // stored as the largest i64, by both paths
    odd.url = "http://example.test/ünïcode?q=\"quoted\" 'single'".into();
    odd.reason = "line one\nline two".into();
    let mut sent = Vec::new();
    for round in 0..3 {
        let batch: Vec<Event> = (0..70)
            .map(|i| {
                if i == 5 {
                    odd.clone()
                } else {
                    event(round * 100 + i, "allow")
                }
            })
            .collect();
        let (back, outcome) = store.write_events(batch.clone()).await;
        outcome.unwrap();
        assert!(
            back.capacity() >= batch.len(),
            "what comes back is the batch's buffer"
        );
        assert_eq!(writer_used(), store.dialect() == Dialect::Sqlite);
        if writer_used() {
            assert!(
                back.is_empty(),
                "the writer's thread frees the events it wrote, not the caller's runtime"
            );
        } else {
            assert_eq!(back, batch, "the pool's path hands the batch back as sent");
        }
        if let Some(w) = &store.log_writer {
            assert_eq!(
                w.pragma("cache_size"),
                Some(-8192),
                "the writer's page cache is its own (8 MiB)"
            );
        }
        sent.extend(batch);
        let pooled = vec![event(round * 100 + 90, "warn"), odd.clone()];
        store.insert_events(&pooled).await.unwrap();
        sent.extend(pooled);
    }
    let stored = stored_events(&store).await;
    let mut want = sent.clone();
    for e in &mut want {
        e.bytes = e.bytes.min(i64::MAX as u64);
    }
    assert_eq!(stored.len(), want.len());
    for (i, (got, want)) in stored.iter().zip(&want).enumerate() {
        assert_eq!(got, want, "row {i}");
    }
    // An empty batch is no transaction and no error.
    let (back, outcome) = store.write_events(Vec::new()).await;
    assert!(back.is_empty() && outcome.is_ok());

    let clone = store.clone();
    store.close().await;
    assert!(
        !writer_used(),
        "closing the store closes the log's connection"
    );
    let (back, outcome) = clone.write_events(vec![event(1, "allow")]).await;
    assert!(outcome.is_err(), "a closed store takes no events");
    assert_eq!(back.len(), 1, "and hands them back to be counted");
}

/// Closing a store closes the log's own connection before it returns, after the batches queued
/// before: the last connection to a WAL database checkpoints it and removes its `-wal` file as
/// it closes, so with the writer's connection left open the file would stay.
#[tokio::test]
async fn closing_the_store_closes_the_log_writers_connection() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lookout.db");
    let wal = dir.path().join("lookout.db-wal");
    let store = Store::open(&path).await.unwrap();
    let batch: Vec<Event> = (0..40).map(|i| event(i, "allow")).collect();
    let (_, outcome) = store.write_events(batch.clone()).await;
    outcome.unwrap();
    assert!(wal.exists(), "the database is in WAL mode");
    store.close().await;
    assert!(!wal.exists(), "every connection closed, the writer's too");
    let store = Store::open(&path).await.unwrap();
    assert_eq!(stored_events(&store).await, batch);
    store.close().await;
}

/// The SQLite built in is the one the workspace's `.cargo/config.toml` asks for (without it the
/// log's writer takes a global mutex for every page it touches).
#[tokio::test]
async fn sqlite_is_built_with_the_workspace_options() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("lookout.db")).await.unwrap();
    let options: Vec<String> = sqlx::query_scalar("PRAGMA compile_options")
        .fetch_all(&store.pool)
        .await
        .unwrap();
    assert!(
        options.iter().any(|o| o == "DEFAULT_MEMSTATUS=0"),
        "{options:?}"
    );
    assert!(
        !options.iter().any(|o| o == "ENABLE_MEMORY_MANAGEMENT"),
        "{options:?}"
    );
    store.close().await;
}

/// The log's writer binds only the values that changed since the row its parameters held
/// before (SQLite keeps the rest): the row [`ROWS_PER_INSERT`] before in the multi-row
/// insert. Each column changed alone, to and from empty and NULL, in rows that follow changed
/// and unchanged ones at that distance, and in a batch's last rows (inserted 16, 8, 4, 2 and 1
/// at a time), is stored as sent, in one batch and across batches.
#[tokio::test]
async fn the_log_writer_stores_each_column_changed_alone() {
    let (_dir, store) = store().await;
    let base = event(4, "allow");
    type Change = fn(&mut Event);
    let changes: [(&str, Change); 19] = [
        ("at_ms", |e| e.at_ms += 1),
        ("reference", |e| e.reference = "REF-other".into()),
        ("reference empty", |e| e.reference.clear()),
        ("service", |e| e.service = "dns"),
        ("client_ip", |e| e.client_ip = "10.0.0.8".into()),
        ("username other", |e| e.username = Some("bob".into())),
        ("username none", |e| e.username = None),
        ("group", |e| e.group = "staff".into()),
        ("method", |e| e.method = "POST".into()),
        ("url", |e| e.url = "http://other.example/".into()),
        ("host", |e| e.host = "other.example".into()),
        ("search_term", |e| e.search_term = Some("a term".into())),
        ("categories empty", |e| e.categories = "".into()),
        ("action", |e| e.action = "block".into()),
        ("rule", |e| e.rule = "illegal".into()),
        ("reason", |e| e.reason = "another reason".into()),
        ("status none", |e| e.status = None),
        ("status other", |e| e.status = Some(200)),
        ("bytes", |e| e.bytes = 99),
    ];
    // Which rows of a batch are changed: three multi-row executions, then a batch's last
    // rows, one fewer than a multi-row execution takes (one execution of each smaller size).
    // Every pair of (changed or not, changed or not) occurs a multi-row execution apart.
    let per = ROWS_PER_INSERT;
    let mut state = 0x2545_f491u32;
    let pattern: Vec<bool> = (0..4 * per - 1)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state & 1 == 1
        })
        .collect();
    let pairs = |from: usize, to: usize, apart: usize| {
        (from + apart..to)
            .map(|i| (pattern[i - apart], pattern[i]))
            .collect::<std::collections::HashSet<_>>()
            .len()
    };
    assert_eq!(pairs(0, 3 * per, per), 4, "{pattern:?}");
    assert_eq!(
        pairs(3 * per, pattern.len(), 1),
        4,
        "the last rows change too: {pattern:?}"
    );
    let mut sent = Vec::new();
    for (what, change) in &changes {
        let mut changed = base.clone();
        change(&mut changed);
        assert_ne!(changed, base, "{what}");
        let batch: Vec<Event> = pattern
            .iter()
            .map(|&c| if c { changed.clone() } else { base.clone() })
            .collect();
        let (_, outcome) = store.write_events(batch.clone()).await;
        outcome.expect("written");
        sent.extend(batch.into_iter().map(|e| (*what, e)));
    }
    let stored = stored_events(&store).await;
    assert_eq!(stored.len(), sent.len());
    for (i, (got, (what, want))) in stored.iter().zip(&sent).enumerate() {
        let row = i % pattern.len();
        assert_eq!(got, want, "{what}, row {row} of its batch");
    }
}

/// Every batch length stores every row, in order: whole multi-row executions and each mix
/// of the smaller ones (16, 8, 4, 2, 1 rows) for the rows left over, batch after batch, longer
/// and then shorter (each statement's bound rows are kept from batch to batch, whichever
/// statements a batch used).
#[tokio::test]
async fn the_log_writer_stores_batches_of_every_length() {
    let (_dir, store) = store().await;
    let mut sent = Vec::new();
    let mut n = 0;
    let lengths = 0..=3 * ROWS_PER_INSERT + 1;
    for len in lengths.clone().chain(lengths.rev()) {
        let batch: Vec<Event> = (n..n + len)
            .map(|i| Event {
                bytes: i as u64,
                ..event(i, if i % 5 == 0 { "block" } else { "allow" })
            })
            .collect();
        n += len;
        let (back, outcome) = store.write_events(batch.clone()).await;
        outcome.unwrap_or_else(|e| panic!("a batch of {len}: {e}"));
        assert!(batch.starts_with(&back));
        sent.extend(batch);
    }
    assert_eq!(stored_events(&store).await, sent);
}

/// The log's writer asks whether to give way every [`GIVE_WAY_EVERY`] rows of a batch, and the
/// rows are the same whatever it is told; the activity log's writer, giving way, writes every event.
#[tokio::test]
async fn the_log_writer_asks_to_give_way_and_stores_the_same_rows() {
    let (_dir, store) = store().await;
    let asked = Arc::new(AtomicUsize::new(0));
    let give_way: crate::log_writer::GiveWay = {
        let asked = asked.clone();
        Arc::new(move || asked.fetch_add(1, AtomicOrdering::Relaxed) % 2 == 0)
    };
    let batch: Vec<Event> = (0..200)
        .map(|i| Event {
            // Values that change from row to row in every column that can hold them.
            search_term: (i % 7 == 3).then(|| format!("term {i}")),
            status: (i % 5 != 0).then_some(200 + i as u16),
            bytes: i as u64 * 3,
            ..event(i, if i % 3 == 0 { "block" } else { "allow" })
        })
        .collect();
    let (back, outcome) = store
        .write_events_giving_way(batch.clone(), Some(&give_way))
        .await;
    outcome.expect("written");
    assert!(batch.starts_with(&back));
    let want_asked = if store.dialect() == Dialect::Sqlite {
        batch.len() / GIVE_WAY_EVERY
    } else {
        0
    };
    assert!(
        want_asked == 0 || want_asked >= 3,
        "asked often enough to hear both answers"
    );
    assert_eq!(
        asked.load(AtomicOrdering::Relaxed),
        want_asked,
        "asked after every {GIVE_WAY_EVERY} rows (the pool's path never gives way)"
    );
    let stored = stored_events(&store).await;
    assert_eq!(stored, batch);

    let (log, writer) = EventLog::start(store.clone(), 1000, 16, Duration::ZERO);
    for i in 0..100 {
        log.record(event(i, "allow"));
    }
    writer.finish().await;
    let stats = log.stats();
    assert_eq!((stats.written, stats.dropped), (100, 0));
    assert_eq!(log.backlog(), 0, "every queued event was taken");
}

/// The database refusing writes (here: the log's table gone, a real SQLite error) loses
/// events, counts them and says so; once it takes writes again the gap is on record and
/// logging goes on, without a restart.
#[tokio::test]
async fn a_failing_database_is_counted_shown_and_recovered_from() {
    let (_dir, store) = store().await;
    let (log, writer) = EventLog::start(store.clone(), 1000, 16, Duration::ZERO);
    log.record(event(0, "allow"));
    while log.stats().written < 1 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    sqlx::query("ALTER TABLE event_rows RENAME TO events_away")
        .execute(&store.pool)
        .await
        .unwrap();
    for n in 1..=5 {
        log.record(event(n, "block"));
    }
    let mut failure = None;
    for _ in 0..500 {
        failure = log.failure().filter(|f| f.lost == 5);
        if failure.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let failure = failure.expect("the failure is shown");
    assert!(failure.error.contains("event_rows"), "{}", failure.error);
    assert_eq!(log.stats().dropped, 5);

    sqlx::query("ALTER TABLE events_away RENAME TO event_rows")
        .execute(&store.pool)
        .await
        .unwrap();
    log.record(event(6, "allow"));
    writer.finish().await;
    assert_eq!(log.failure(), None, "recovered without a restart");
    assert_eq!(log.stats().written, 2);
    assert_eq!(
        stored_events(&store).await,
        [event(0, "allow"), event(6, "allow")],
        "written after the failure on a new connection, as sent"
    );
    let gaps = store.log_gaps().await.unwrap();
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    assert_eq!(gaps[0].dropped, 5);
    assert!(
        gaps[0].cause.starts_with("database error from "),
        "{}",
        gaps[0].cause
    );
}

/// Briefings: the group's own version wins over everyone's, a new version is due again,
/// accepting records who/which/when/where, signs the address in and is audited; versions and
/// acceptances cannot be changed or removed.
#[tokio::test]
async fn briefings_are_versioned_and_acceptances_kept() {
    let (_dir, store) = store().await;
    store
        .add_user(&user("amy", "learners-u18", Some("correct horse")))
        .await
        .unwrap();
    let ip: IpAddr = "10.10.0.7".parse().unwrap();
    assert_eq!(store.current_briefing("learners-u18").await.unwrap(), None);
    assert_eq!(
        store.briefing_due("amy", "learners-u18").await.unwrap(),
        None
    );

    let by = AuditEntry::new("it", "briefing.publish", "");
    let all = |title| NewBriefing {
        group: None,
        title,
        briefing: "Be safe online.",
        terms: "I will not share my password.",
    };
    let v1 = store.publish_briefing(&all("v1"), &by).await.unwrap();
    let due = store.briefing_due("amy", "learners-u18").await.unwrap();
    assert_eq!(due.as_ref().map(|b| b.id), Some(v1.id));
    let young = store
        .publish_briefing(
            &NewBriefing {
                group: Some("learners-u18"),
                title: "For under-18s",
                briefing: "Short version.",
                terms: "I will be kind.",
            },
            &by,
        )
        .await
        .unwrap();
    // A later version for everyone does not replace the group's own.
    let v2 = store.publish_briefing(&all("v2"), &by).await.unwrap();
    assert_eq!(
        store
            .current_briefing("learners-u18")
            .await
            .unwrap()
            .unwrap()
            .id,
        young.id
    );
    assert_eq!(
        store.current_briefing("staff").await.unwrap().unwrap().id,
        v2.id
    );

    let until = now_ms() + 3_600_000;
    store
        .accept_briefing("Amy", young.id, ip, until)
        .await
        .unwrap();
    assert_eq!(
        store.briefing_due("amy", "learners-u18").await.unwrap(),
        None
    );
    assert_eq!(
        store
            .user_at_address(ip, now_ms())
            .await
            .unwrap()
            .unwrap()
            .username,
        "amy"
    );
    let seen = store.acceptances(Some(young.id)).await.unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        (seen[0].username.as_str(), seen[0].client_ip.as_str()),
        ("amy", "10.10.0.7")
    );
    assert_eq!(
        store.acceptance_counts().await.unwrap(),
        vec![(young.id, 1)]
    );
    let rows = store
        .audit_log(&AuditFilter {
            action: Some("briefing.".into()),
            limit: Some(10),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    let actions: Vec<_> = rows
        .iter()
        .map(|r| (r.action.as_str(), r.actor.as_str()))
        .collect();
    assert_eq!(
        actions,
        [
            ("briefing.accept", "amy"),
            ("briefing.publish", "it"),
            ("briefing.publish", "it"),
            ("briefing.publish", "it")
        ]
    );
    assert!(store.verify_audit().await.unwrap().problems.is_empty());

    // A new version of the group's briefing is due again.
    let young2 = store
        .publish_briefing(
            &NewBriefing {
                group: Some("learners-u18"),
                title: "For under-18s, 2027",
                briefing: "Shorter.",
                terms: "I will be kind.",
            },
            &by,
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .briefing_due("amy", "learners-u18")
            .await
            .unwrap()
            .map(|b| b.id),
        Some(young2.id)
    );

    for sql in [
        "UPDATE briefings SET briefing = 'changed'",
        "DELETE FROM briefings",
        "UPDATE acceptances SET at_ms = 0",
        "DELETE FROM acceptances",
    ] {
        assert!(
            sqlx::query(sql).execute(&store.pool).await.is_err(),
            "{sql}"
        );
    }
    assert!(store.sign_out_address(ip).await.unwrap());
    assert_eq!(store.user_at_address(ip, now_ms()).await.unwrap(), None);
    assert!(!store.sign_out_address(ip).await.unwrap());
}

/// The purge deletes what is past its time in batches, and keeps: open alerts, alerts behind
/// a concern, anything about a person named in an open or held incident, and open or held
/// incidents; append-only rows stay undeletable outside it; it records counts on the audit log.
#[tokio::test]
async fn the_purge_deletes_what_is_past_its_time_and_keeps_what_is_held() {
    let (_dir, store) = store().await;
    let now = now_ms();
    let old = now - 100 * 86_400_000;
    let recent = now - 86_400_000;
    let mut events = Vec::new();
    for (i, (at, service, user)) in [
        (old, "proxy", None),
        (old, "proxy", Some("amy")),
        (old, "proxy", Some("held.person")),
        (old, "dns", None),
        (recent, "proxy", None),
        (recent, "dns", None),
    ]
    .into_iter()
    .enumerate()
    {
        let mut e = event(i, "allow");
        e.at_ms = at;
        e.service = service;
        e.username = user.map(str::to_owned);
        events.push(e);
    }
    // More than one batch of old activity.
    for i in 0..25 {
        let mut e = event(100 + i, "block");
        e.at_ms = old;
        e.username = None;
        events.push(e);
    }
    store.insert_events(&events).await.unwrap();
    let sql = |q: &'static str| sqlx::query(q);
    for (id, status, user, updated) in [
        (1, "reviewed", "amy", old),          // purged
        (2, "new", "amy", old),               // open: kept
        (3, "dismissed", "held.person", old), // a held person's: kept
        (4, "reviewed", "bob", old),          // behind a concern: kept
        (5, "dismissed", "amy", recent),      // recent: kept
    ] {
        sqlx::query(
            "INSERT INTO alerts (id, reference, created_ms, updated_ms, status, category, severity, score, subject, username, group_name, source) \
             VALUES ($1, 'r', $2, $3, $4, 'suicide', 'danger', 9, 's', $5, 'learners', 'proxy')",
        )
        .bind(id)
        .bind(updated)
        .bind(updated)
        .bind(status)
        .bind(user)
        .execute(&store.pool)
        .await
        .unwrap();
        sqlx::query("INSERT INTO alert_findings (alert_id, at_ms, source, severity, score, evidence, context, rules, location) VALUES ($1, $2, 'proxy', 'danger', 9, 'words', 'more words', 'r', 'u')")
            .bind(id)
            .bind(updated)
            .execute(&store.pool)
            .await
            .unwrap();
    }
    sqlx::query("INSERT INTO alert_reviews (alert_id, at_ms, by_user, action, reason) VALUES (1, $1, 'dee', 'reviewed', 'seen')")
        .bind(old)
        .execute(&store.pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO concerns (reference, at_ms, reporter, about, what, place, urgency, alert_id) VALUES ('C1', $1, 'bob', 'me', 'w', 'p', 'info', 4)")
        .bind(old)
        .execute(&store.pool)
        .await
        .unwrap();
    for (id, status, hold, person) in [
        (1, "closed", 0, "x"),         // purged
        (2, "closed", 1, "y"),         // held: kept
        (3, "open", 0, "held.person"), // open: kept (and holds held.person's records)
    ] {
        sqlx::query("INSERT INTO incidents (id, reference, opened_ms, opened_by, title, category, status, updated_ms, legal_hold) VALUES ($1, $2, $3, 'dee', 't', 'contact', $4, $5, $6)")
            .bind(id)
            .bind(format!("INC-{id}"))
            .bind(old)
            .bind(status)
            .bind(old)
            .bind(hold)
            .execute(&store.pool)
            .await
            .unwrap();
        sqlx::query("INSERT INTO incident_entries (id, incident_id, at_ms, by_user, kind, body) VALUES ($1, $2, $3, 'dee', 'opened', '{}')")
            .bind(id)
            .bind(id)
            .bind(old)
            .execute(&store.pool)
            .await
            .unwrap();
        sqlx::query("INSERT INTO incident_people (incident_id, entry_id, username, name) VALUES ($1, $2, $3, $4)")
            .bind(id)
            .bind(id)
            .bind(person)
            .bind(person)
            .execute(&store.pool)
            .await
            .unwrap();
    }
    // Outside the purge, append-only rows and incidents cannot be deleted.
    for q in [
        "DELETE FROM incident_entries WHERE incident_id = 1",
        "DELETE FROM alert_reviews",
        "DELETE FROM incidents WHERE id = 1",
    ] {
        assert!(sql(q).execute(&store.pool).await.is_err(), "{q}");
    }

    let retention = Retention {
        activity_days: Some(30),
        dns_days: Some(30),
        alerts_days: Some(30),
        page_text_days: Some(30),
        incidents_days: Some(30),
    };
    let purged = store
        .purge(&retention, now, 10, std::time::Duration::from_millis(1))
        .await
        .unwrap();
    assert_eq!(
        purged,
        Purged {
            activity: 27,
            dns: 1,
            alerts: 1,
            page_texts: 0,
            incidents: 1,
        }
    );
    let ids = |q: &'static str| {
        let pool = store.pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(q)
                .fetch_all(&pool)
                .await
                .unwrap()
        }
    };
    assert_eq!(ids("SELECT id FROM alerts ORDER BY id").await, [2, 3, 4, 5]);
    assert_eq!(
        ids("SELECT alert_id FROM alert_findings ORDER BY alert_id").await,
        [2, 3, 4, 5]
    );
    assert_eq!(ids("SELECT id FROM incidents ORDER BY id").await, [2, 3]);
    assert_eq!(
        ids("SELECT incident_id FROM incident_entries ORDER BY 1").await,
        [2, 3]
    );
    let left: Vec<(i64, String, Option<String>)> =
        sqlx::query_as("SELECT at_ms, service, username FROM events ORDER BY at_ms, service")
            .fetch_all(&store.pool)
            .await
            .unwrap();
    assert_eq!(
        left,
        [
            (old, "proxy".to_owned(), Some("held.person".to_owned())),
            (recent, "dns".to_owned(), None),
            (recent, "proxy".to_owned(), None),
        ]
    );
    let rows = store
        .audit_log(&AuditFilter {
            action: Some("retention.".into()),
            limit: Some(5),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        rows[0].detail,
        "deleted 27 activity events, 1 DNS events, 1 alerts, 0 kept texts, 1 incidents"
    );
    // Lifting the hold lets the next purge (at a later day) take the closed incident.
    assert!(store
        .set_legal_hold(2, false, &AuditEntry::new("dee", "incident.hold", ""))
        .await
        .unwrap());
    let later = now + 40 * 86_400_000;
    let purged = store
        .purge(&retention, later, 10, std::time::Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(purged.incidents, 1);
    assert!(store.verify_audit().await.unwrap().problems.is_empty());
    // Keeping everything deletes nothing.
    let purged = store
        .purge(
            &Retention::default(),
            later + 400 * 86_400_000,
            10,
            std::time::Duration::ZERO,
        )
        .await
        .unwrap();
    assert_eq!(purged, Purged::default());
}

/// A subject access export has the person's records, kind by kind, and never a secret.
#[tokio::test]
async fn everything_held_about_a_person_and_no_secrets() {
    let (_dir, store) = store().await;
    store
        .add_user(&user("amy", "learners", Some("amy's secret password")))
        .await
        .unwrap();
    store
        .add_user(&user("bob", "learners", None))
        .await
        .unwrap();
    store
        .set_totp_secret("amy", Some("JBSWY3DPEHPK3PXP"))
        .await
        .unwrap();
    let mut mine = event(0, "block");
    mine.username = Some("amy".into());
    mine.search_term = Some("how to stay safe".into());
    let mut theirs = event(1, "block");
    theirs.username = Some("bob".into());
    store.insert_events(&[mine, theirs]).await.unwrap();
    let held = store.person_data("AMY").await.unwrap();
    let of = |table: &str| {
        held.iter()
            .find(|h| h.table == table)
            .unwrap_or_else(|| panic!("{table} is looked at"))
            .rows
            .clone()
    };
    assert_eq!(of("users").len(), 1);
    assert_eq!(of("users")[0]["has_password"], 1);
    assert_eq!(of("users")[0]["has_two_factor"], 1);
    let events = of("events");
    assert_eq!(events.len(), 1, "only amy's");
    assert_eq!(events[0]["search_term"], "how to stay safe");
    assert!(of("alerts").is_empty());
    let all = serde_json::to_string(&held.iter().map(|h| &h.rows).collect::<Vec<_>>()).unwrap();
    for secret in ["argon2", "JBSWY3DPEHPK3PXP", "secret password"] {
        assert!(!all.contains(secret), "{secret} leaked: {all}");
    }
    assert!(matches!(
        store.person_data("nobody").await,
        Err(UserError::NotFound(_))
    ));
}

/// The social-media register keeps every version and every admin change; disabling a user
/// flags their admin rights on each account they hold until the revocation is recorded.
#[tokio::test]
async fn disabling_a_user_flags_their_social_media_admin_rights() {
    let (_dir, store) = store().await;
    store.add_user(&user("sam", "staff", None)).await.unwrap();
    let by = AuditEntry::new("ian", "register.social", "");
    let fields = |handle| AccountFields {
        platform: "Instagram",
        handle,
        purpose: "College news",
        owner: "Marketing",
        retired: false,
    };
    let a = store
        .save_social_account(None, &fields("@college"), &by)
        .await
        .unwrap();
    let b = store
        .save_social_account(None, &fields("@college_sport"), &by)
        .await
        .unwrap();
    assert_ne!(a.account_id, b.account_id);
    let a2 = store
        .save_social_account(Some(a.account_id), &fields("@college_official"), &by)
        .await
        .unwrap();
    assert_eq!(a2.account_id, a.account_id);
    let history = store.social_account_history(a.account_id).await.unwrap();
    assert_eq!(
        history
            .iter()
            .map(|h| h.handle.as_str())
            .collect::<Vec<_>>(),
        ["@college_official", "@college"]
    );
    assert_eq!(store.social_accounts().await.unwrap().len(), 2);
    for account in [a.account_id, b.account_id] {
        store
            .social_admin_event(account, "sam", true, "added", "", &by)
            .await
            .unwrap();
    }
    store
        .social_admin_event(b.account_id, "sam", true, "removed", "left the team", &by)
        .await
        .unwrap();
    store
        .social_admin_event(a.account_id, "Pat Jones (agency)", false, "added", "", &by)
        .await
        .unwrap();

    assert_eq!(store.set_disabled("sam", true).await.unwrap(), 1);
    // Enabled and disabled again before the revocation is done: not flagged twice.
    assert_eq!(store.set_disabled("sam", false).await.unwrap(), 0);
    assert_eq!(store.set_disabled("sam", true).await.unwrap(), 0);
    let revokes = store
        .social_admin_events(Some(a.account_id))
        .await
        .unwrap()
        .iter()
        .filter(|e| e.kind == "revoke")
        .count();
    assert_eq!(revokes, 1);
    let admins = store.social_admins().await.unwrap();
    let sam: Vec<_> = admins.iter().filter(|x| x.admin == "sam").collect();
    assert_eq!(
        sam.len(),
        1,
        "only where sam still holds rights: {admins:?}"
    );
    assert_eq!(sam[0].account_id, a.account_id);
    assert!(sam[0].is_user && sam[0].revoke_since.is_some());
    let pat = admins.iter().find(|x| x.admin.starts_with("Pat")).unwrap();
    assert!(!pat.is_user && pat.revoke_since.is_none());

    store
        .social_admin_event(
            a.account_id,
            "sam",
            true,
            "revoked",
            "removed in Instagram",
            &by,
        )
        .await
        .unwrap();
    assert!(store
        .social_admins()
        .await
        .unwrap()
        .iter()
        .all(|x| x.admin != "sam"));
    for q in [
        "UPDATE social_accounts SET handle = 'x'",
        "DELETE FROM social_accounts",
        "DELETE FROM social_admin_events",
    ] {
        assert!(sqlx::query(q).execute(&store.pool).await.is_err(), "{q}");
    }
}

#[tokio::test]
async fn training_is_required_by_role_or_group_and_asked_again_for_a_new_edition() {
    let (_dir, store) = store().await;
    let staff = |name: &str, role: Role, email: &str, team: &str| NewUser {
        role: Some(role),
        email: Some(email.into()),
        team: Some(team.into()),
        ..user(name, "staff", None)
    };
    store
        .add_user(&staff(
            "sam",
            Role::Staff,
            "sam@college.test",
            "Construction",
        ))
        .await
        .unwrap();
    store
        .add_user(&staff("dee", Role::Dsl, "", "Safeguarding"))
        .await
        .unwrap();
    store
        .add_user(&user("amy", "learners", None))
        .await
        .unwrap();
    store
        .add_user(&user("tech", "it-staff", None))
        .await
        .unwrap();
    assert!(matches!(
        store
            .add_user(&staff("bad", Role::Staff, "not an address", ""))
            .await,
        Err(UserError::BadEmail(_))
    ));
    let by = AuditEntry::new("ian", "training.course.save", "");
    let mut fields = CourseFields {
        title: "Safeguarding induction".into(),
        edition: "2026".into(),
        about: "Read *this*.".into(),
        roles: vec![Role::Staff, Role::Dsl],
        groups: vec!["it-staff".into()],
        renew_days: 365,
        within_days: 30,
        quiz: "? Q\n* yes\n- no\n".into(),
        pass_percent: 80,
        ..CourseFields::default()
    };
    let course = store.save_course(None, &fields, &by).await.unwrap();
    let now = now_ms();
    let reqs = store.requirements(now, None).await.unwrap();
    let who: Vec<&str> = reqs.iter().map(|r| r.user.username.as_str()).collect();
    assert_eq!(
        who,
        ["dee", "sam", "tech"],
        "by role or by group, not learners"
    );
    assert!(reqs.iter().all(|r| r.standing.to_do()));

    store
        .record_completion(
            course.course_id,
            "2026",
            "sam",
            now,
            "quiz",
            (1, 1),
            "",
            &AuditEntry::new("sam", "training.complete", ""),
        )
        .await
        .unwrap();
    let sam = store.requirements(now, Some("sam")).await.unwrap();
    assert_eq!(sam.len(), 1);
    assert!(!sam[0].standing.to_do(), "{:?}", sam[0].standing);
    assert_eq!(sam[0].completed_ms, Some(now));
    assert_eq!(
        store.user("sam").await.unwrap().unwrap().team,
        "Construction"
    );

    // A wording fix keeps the completion; a new edition asks again.
    fields.about = "Read *this*, carefully.".into();
    let v2 = store
        .save_course(Some(course.course_id), &fields, &by)
        .await
        .unwrap();
    assert_eq!(v2.edition_since_ms, course.edition_since_ms);
    assert!(!store.requirements(now, Some("sam")).await.unwrap()[0]
        .standing
        .to_do());
    fields.edition = "2027".into();
    store
        .save_course(Some(course.course_id), &fields, &by)
        .await
        .unwrap();
    assert!(store.requirements(now, Some("sam")).await.unwrap()[0]
        .standing
        .to_do());
    assert_eq!(
        store.course_history(course.course_id).await.unwrap().len(),
        3
    );

    // Reminders: only people with an address, and not twice within the period.
    let owed = store.reminders_owed(now, 7 * 86_400_000).await.unwrap();
    assert_eq!(owed.len(), 1);
    assert_eq!(owed[0].user.username, "sam");
    store.record_reminder("sam", 1, "").await.unwrap();
    assert!(store
        .reminders_owed(now, 7 * 86_400_000)
        .await
        .unwrap()
        .is_empty());

    // A retired course is required of nobody.
    fields.retired = true;
    store
        .save_course(Some(course.course_id), &fields, &by)
        .await
        .unwrap();
    assert!(store.requirements(now, None).await.unwrap().is_empty());

    // Append-only, and in the person's data.
    for sql in [
        "UPDATE training_completions SET username = 'x'",
        "DELETE FROM training_completions",
        "UPDATE training_courses SET title = 'x'",
        "DELETE FROM training_courses",
    ] {
        assert!(
            sqlx::query(sql).execute(&store.pool).await.is_err(),
            "{sql}"
        );
    }
    let held = store.person_data("sam").await.unwrap();
    let done = held
        .iter()
        .find(|h| h.table == "training_completions")
        .unwrap();
    assert_eq!(done.rows.len(), 1);
    assert_eq!(done.rows[0]["title"], "Safeguarding induction");
    let account = held.iter().find(|h| h.table == "users").unwrap();
    assert_eq!(account.rows[0]["email"], "sam@college.test");
}

#[test]
fn users_csv_takes_email_and_team_columns() {
    let csv = b"username,group,email,team\nsam,staff,sam@college.test,Construction\nbo,staff,bo at college,\n";
    let err = users_from_csv("u.csv", csv, &["staff"]).unwrap_err();
    assert!(
        err.contains("u.csv:3: `bo at college` is not an email address"),
        "{err}"
    );
    let ok = users_from_csv(
        "u.csv",
        b"username,group,Email,Department\nsam,staff,sam@college.test,Construction\n",
        &["staff"],
    )
    .unwrap();
    assert_eq!(ok[0].email.as_deref(), Some("sam@college.test"));
    assert_eq!(ok[0].team.as_deref(), Some("Construction"));
    // Without the columns, an import keeps what people already have.
    let ok = users_from_csv("u.csv", b"username,group\nsam,staff\n", &["staff"]).unwrap();
    assert_eq!((ok[0].email.as_ref(), ok[0].team.as_ref()), (None, None));
}

#[tokio::test]
async fn directory_users_are_created_kept_in_step_and_never_take_a_local_account() {
    let (_dir, store) = store().await;
    let ldap = |name: &'static str, group: &'static str| DirectoryPerson {
        username: name,
        display_name: "Leo Learner",
        group: Some(group),
        role: None,
        email: None,
        source: "directory",
    };
    let ready = |r: DirectoryRecord| match r {
        DirectoryRecord::Ready(u) => u,
        other => panic!("{other:?}"),
    };
    // First sign-in: a record with no password and no console role.
    let u = ready(
        store
            .directory_user(&ldap("Leo", "learners"), "10.0.0.9")
            .await
            .unwrap(),
    );
    assert_eq!((u.username.as_str(), u.group.as_str()), ("leo", "learners"));
    assert!(!u.has_password);
    assert_eq!(u.role, Role::Learner);
    // Unchanged: nothing written. Moved group in the directory: moved here, on record.
    ready(
        store
            .directory_user(&ldap("leo", "learners"), "10.0.0.9")
            .await
            .unwrap(),
    );
    let u = ready(
        store
            .directory_user(&ldap("leo", "staff"), "10.0.0.9")
            .await
            .unwrap(),
    );
    assert_eq!(u.group, "staff");
    // The sign-in provider gives a role and an email; no group keeps the record's.
    let oidc = DirectoryPerson {
        username: "leo",
        display_name: "Leo Learner",
        group: None,
        role: Some(Role::Dsl),
        email: Some("leo@college.test"),
        source: "oidc",
    };
    let u = ready(store.directory_user(&oidc, "10.0.0.8").await.unwrap());
    assert_eq!(
        (u.group.as_str(), u.role, u.email.as_str()),
        ("staff", Role::Dsl, "leo@college.test")
    );
    // A new person with no group cannot be added.
    assert_eq!(
        store
            .directory_user(
                &DirectoryPerson {
                    username: "nina",
                    ..oidc
                },
                "10.0.0.8"
            )
            .await
            .unwrap(),
        DirectoryRecord::NoGroup
    );
    let actions: Vec<String> = store
        .audit_log(&AuditFilter::default())
        .await
        .unwrap()
        .into_iter()
        .map(|r| format!("{} {} {} {}", r.actor, r.action, r.target, r.detail))
        .collect();
    assert_eq!(
        actions,
        vec![
            "oidc user.directory-role user:leo role learner -> dsl",
            "directory user.directory-group user:leo group learners -> staff",
            "directory user.directory-add user:leo group learners"
        ]
    );
    // A local account with a password, or a disabled one, is not the directory's.
    store
        .add_user(&user("amy", "staff", Some("correct horse battery")))
        .await
        .unwrap();
    assert_eq!(
        store
            .directory_user(&ldap("amy", "learners"), "10.0.0.9")
            .await
            .unwrap(),
        DirectoryRecord::LocalAccount
    );
    store.set_disabled("leo", true).await.unwrap();
    assert_eq!(
        store
            .directory_user(&ldap("leo", "staff"), "10.0.0.9")
            .await
            .unwrap(),
        DirectoryRecord::Disabled
    );
}

/// Two servers on one database (two site gateways, or a gateway and the console), each with
/// several tasks writing at once: every audit entry and event is kept, and the chain is one
/// unbroken line (each writer reads the head under the database's write lock).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_on_one_database_keep_the_audit_chain_whole() {
    let (_dir, db, first) = test_db().await;
    let second = db.open().await.unwrap();
    let mut tasks = Vec::new();
    for w in 0..8usize {
        let store = if w % 2 == 0 {
            first.clone()
        } else {
            second.clone()
        };
        tasks.push(tokio::spawn(async move {
            for i in 0..20usize {
                store
                    .audit(&AuditEntry::new(
                        &format!("writer{w}"),
                        "alert.view",
                        format!("alert:{i}"),
                    ))
                    .await
                    .unwrap();
                let batch: Vec<Event> = (0..16)
                    .map(|n| event(w * 1000 + i * 16 + n, "allow"))
                    .collect();
                store.insert_events(&batch).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let v = second.verify_audit().await.unwrap();
    assert_eq!((v.rows, v.problems.clone()), (160, vec![]), "{v:?}");
    assert_eq!(v.head.unwrap().0, 160);
    let events = first
        .events(&EventFilter {
            limit: Some(10_000),
            ..EventFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(events.len(), 8 * 20 * 16);
}

/// Every migration is written for both servers, with the same tables, columns, indexes and
/// append-only triggers: a schema change made for one and not the other fails here, whichever
/// server the suite runs on.
#[test]
fn both_dialects_have_the_same_migrations_tables_columns_and_triggers() {
    fn shape(dir: &str) -> Vec<(String, Vec<String>)> {
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        files
            .iter()
            .map(|f| {
                let text = std::fs::read_to_string(f).unwrap();
                let mut names = Vec::new();
                let mut table: Option<String> = None;
                for line in text.lines().map(str::trim) {
                    let words: Vec<&str> = line.split_whitespace().collect();
                    match words.as_slice() {
                        ["CREATE", "TABLE", t, ..] => {
                            let t = t.trim_end_matches('(');
                            names.push(format!("table {t}"));
                            // One-line tables: their columns are in the parentheses.
                            if let Some((_, cols)) =
                                line.split_once('(').filter(|_| line.ends_with(");"))
                            {
                                for col in cols.trim_end_matches(");").split(',') {
                                    if let Some(c) = col.split_whitespace().next() {
                                        names.push(format!("column {t}.{c}"));
                                    }
                                }
                            } else {
                                table = Some(t.to_owned());
                            }
                        }
                        [");"] => table = None,
                        ["CREATE", "INDEX" | "UNIQUE", i, ..] => names.push(format!("index {i}")),
                        ["CREATE", "TRIGGER", t, ..] => names.push(format!("trigger {t}")),
                        ["CREATE", "VIEW", v, ..] => names.push(format!("view {v}")),
                        ["DROP", what, n, ..] => names.push(format!(
                            "drop {} {}",
                            what.to_lowercase(),
                            n.trim_end_matches(';')
                        )),
                        ["ALTER", "TABLE", t, "ADD", "COLUMN", c, ..] => {
                            names.push(format!("column {t}.{c}"));
                        }
                        [c, ..] if table.is_some() && !c.starts_with("--") => {
                            names.push(format!("column {}.{c}", table.as_deref().unwrap_or("")));
                        }
                        _ => {}
                    }
                }
                (f.file_name().unwrap().to_string_lossy().into_owned(), names)
            })
            .collect()
    }
    let root = env!("CARGO_MANIFEST_DIR");
    let sqlite = shape(&format!("{root}/migrations/sqlite"));
    let postgres = shape(&format!("{root}/migrations/postgres"));
    assert_eq!(sqlite.len(), 20, "{sqlite:?}");
    assert!(sqlite
        .iter()
        .any(|(_, n)| n.contains(&"column audit_log.hash".to_owned())));
    for (s, p) in sqlite.iter().zip(&postgres) {
        assert_eq!(s, p, "migrations differ");
    }
    assert_eq!(sqlite.len(), postgres.len(), "a migration is missing");
}

/// `[store] url` with `sslmode=verify-full`: the connection to PostgreSQL is encrypted and the
/// server's certificate checked against the CA named in the URL; a certificate from another CA
/// is refused. Run by `.ci/run`'s PostgreSQL pass, whose server has TLS on.
#[tokio::test]
#[ignore = "needs a PostgreSQL server with TLS: LOOKOUT_TEST_POSTGRES and LOOKOUT_TEST_POSTGRES_CA (.ci/run sets both)"]
async fn postgres_over_tls_checks_the_servers_certificate() {
    let ca = std::env::var("LOOKOUT_TEST_POSTGRES_CA").expect("LOOKOUT_TEST_POSTGRES_CA");
    let dir = tempfile::tempdir().unwrap();
    let TestDb::Postgres(url) = TestDb::new(dir.path()).await.unwrap() else {
        panic!("LOOKOUT_TEST_POSTGRES is not set");
    };
    // The certificate is for localhost; the URL's own parameters give way to the ones tried.
    let host = |u: &str| {
        u.split('?')
            .next()
            .unwrap_or(u)
            .replace("127.0.0.1", "localhost")
    };
    let tls = format!("{}?sslmode=verify-full&sslrootcert={ca}", host(&url));
    let store = Store::connect(&tls).await.unwrap();
    let encrypted: bool =
        sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_one(&store.pool)
            .await
            .unwrap();
    assert!(encrypted);
    store.close().await;

    // Another CA (a certificate made here): the server's certificate is refused.
    let other = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let other_ca = dir.path().join("other-ca.pem");
    std::fs::write(&other_ca, other.cert.pem()).unwrap();
    let wrong = format!(
        "{}?sslmode=verify-full&sslrootcert={}",
        host(&url),
        other_ca.display()
    );
    let refused = Store::connect(&wrong).await.unwrap_err();
    assert!(
        refused.to_string().to_lowercase().contains("certificate"),
        "{refused}"
    );
}

/// The console's report counts the period's blocked and allowed requests (other actions, and
/// requests outside the period, are not counted).
#[tokio::test]
async fn the_report_counts_blocked_and_allowed_requests_in_its_period() {
    let (_dir, store) = store().await;
    let events: Vec<Event> = (0..40)
        .map(|n| event(n, ["block", "allow", "allow", "warn"][n % 4]))
        .collect();
    store.insert_events(&events).await.unwrap();
    let start = events[0].at_ms;
    let all = store.report(start, start + 40).await.unwrap();
    assert_eq!((all.blocked, all.allowed), (10, 20));
    let part = store.report(start + 10, start + 20).await.unwrap();
    assert_eq!((part.blocked, part.allowed), (2, 5));
    let none = store.report(start + 100, start + 200).await.unwrap();
    assert_eq!((none.blocked, none.allowed), (0, 0));
}

/// A database address in an error never shows its password, and an address that is neither
/// PostgreSQL nor SQLite is refused with what to write instead.
#[tokio::test]
async fn database_addresses_in_errors_hide_the_password() {
    for (url, shown) in [
        (
            "postgres://lookout:s3cret@db/lookout",
            "postgres://lookout:***@db/lookout",
        ),
        (
            "postgres://lookout@db/lookout",
            "postgres://lookout@db/lookout",
        ),
        (
            "postgresql://a:b:c@db:5433/x?sslmode=require",
            "postgresql://a:***@db:5433/x?sslmode=require",
        ),
    ] {
        assert_eq!(shown_url(url), shown);
    }
    let refused = Store::connect("mysql://root:hunter2@db/lookout")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("mysql://root:***@db/lookout")
            && refused.contains("must start with postgres:// or sqlite://")
            && !refused.contains("hunter2"),
        "{refused}"
    );
}

/// SQLite opens through a URL inside sqlx: a folder whose name has spaces, `%`, `?`, `#` or
/// letters beyond ASCII is still the folder.
#[tokio::test]
async fn sqlite_paths_with_url_characters_open_the_right_file() {
    let dir = tempfile::tempdir().unwrap();
    let odd = dir.path().join("Lookout data 100% ?#é");
    std::fs::create_dir(&odd).unwrap();
    let path = odd.join("lookout.db");
    let store = Store::open(&path).await.unwrap();
    store.add_user(&user("amy", "staff", None)).await.unwrap();
    store.close().await;
    assert!(path.is_file(), "the file is where it was asked for");
    let again = Store::open(&path).await.unwrap();
    assert!(again.user("amy").await.unwrap().is_some());
    again.close().await;
}

/// A site's events are stored once however often a batch is sent, each with its site; two
/// sites may use the same numbers; the site filter and the alert's site hold.
#[tokio::test]
async fn forwarded_events_are_stored_once_per_site_and_number() {
    let (_dir, store) = store().await;
    let batch: Vec<SiteEvent> = (1..=5)
        .map(|i| SiteEvent {
            seq: i as i64,
            event: event(i, "allow"),
        })
        .collect();
    assert_eq!(
        store.insert_site_events("north", &batch).await.unwrap(),
        vec![0, 1, 2, 3, 4]
    );
    // Sent again with two more (the gateway did not hear the answer): only the new are stored.
    let mut again = batch.clone();
    again.extend((6..=7).map(|i| SiteEvent {
        seq: i as i64,
        event: event(i, "block"),
    }));
    assert_eq!(
        store.insert_site_events("north", &again).await.unwrap(),
        vec![5, 6]
    );
    // Another site's numbers are its own.
    assert_eq!(
        store
            .insert_site_events("south", &batch[..2])
            .await
            .unwrap(),
        vec![0, 1]
    );
    // This server's own events have no site and are never taken for duplicates.
    store
        .insert_events(&[event(8, "allow"), event(8, "allow")])
        .await
        .unwrap();
    let all = store
        .events(&EventFilter {
            limit: Some(100),
            ..EventFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 11);
    let north = store
        .events(&EventFilter {
            site: Some("north".into()),
            ..EventFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(north.len(), 7);
    assert!(north.iter().all(|e| e.site.as_deref() == Some("north")));
    assert_eq!(all.iter().filter(|e| e.site.is_none()).count(), 2);

    // Health: calls add up what was received; a call that does not say its backlog or
    // policy keeps the last one said.
    for call in [
        GatewayCall {
            address: "192.0.2.10".into(),
            policy_version: Some("v1".into()),
            backlog: Some(40),
            events: 5,
            texts: 1,
        },
        GatewayCall {
            address: "192.0.2.11".into(),
            policy_version: None,
            backlog: None,
            events: 2,
            texts: 0,
        },
    ] {
        store.gateway_called("north", &call).await.unwrap();
    }
    let g = store.gateways().await.unwrap();
    assert_eq!(g.len(), 1);
    assert_eq!(
        (
            g[0].site.as_str(),
            g[0].address.as_str(),
            g[0].policy_version.as_str(),
            g[0].backlog,
            g[0].events_received,
            g[0].texts_received
        ),
        ("north", "192.0.2.11", "v1", 40, 7, 1)
    );

    // An alert from a site's text carries the site; the same address at two sites is two
    // people, one user at two sites is one.
    let finding = |at_ms| NewFinding {
        at_ms,
        source: "page".into(),
        category: "suicide".into(),
        severity: "danger".into(),
        score: 9,
        evidence: "e".into(),
        context: "c".into(),
        rules: "[]".into(),
        location: "http://x/".into(),
    };
    let at = |site: &str| Subject {
        username: None,
        client_ip: Some("10.0.0.7".into()),
        device: None,
        group: "learners".into(),
        site: Some(site.into()),
    };
    let a = store
        .record_finding(&at("north"), &finding(1), 60_000, &[])
        .await
        .unwrap();
    let b = store
        .record_finding(&at("south"), &finding(2), 60_000, &[])
        .await
        .unwrap();
    assert!(
        a.created && b.created,
        "one address at two sites is two subjects"
    );
    assert_eq!(a.alert.site.as_deref(), Some("north"));
    let south = store.inbox(Inbox::Open, Some("south"), 10).await.unwrap();
    assert_eq!(south.len(), 1);
    assert_eq!(south[0].id, b.alert.id);
    assert_eq!(store.inbox(Inbox::Open, None, 10).await.unwrap().len(), 2);
}

/// A gateway's outbox: what is acknowledged is deleted but the newest row, so numbers never
/// go back below what the central has (which would make it drop new events as repeats).
#[tokio::test]
async fn the_outbox_forgets_what_was_acknowledged_and_never_reuses_a_number() {
    let (_dir, store) = store().await;
    let events: Vec<Event> = (0..5).map(|i| event(i, "allow")).collect();
    store.insert_events(&events).await.unwrap();
    assert_eq!(store.outbox_acked(Outbox::Events).await.unwrap(), 0);
    assert_eq!(store.outbox_backlog(Outbox::Events).await.unwrap(), 5);
    let batch = store.outbox_events(0, 3).await.unwrap();
    assert_eq!(batch.len(), 3);
    let upto = batch[2].id;
    store.outbox_ack(Outbox::Events, upto).await.unwrap();
    assert_eq!(store.outbox_backlog(Outbox::Events).await.unwrap(), 2);
    let rest = store.outbox_events(upto, 100).await.unwrap();
    assert_eq!(rest.len(), 2);
    let last = rest[1].id;
    store.outbox_ack(Outbox::Events, last).await.unwrap();
    // An older acknowledgement arriving late does not move it back.
    store.outbox_ack(Outbox::Events, upto).await.unwrap();
    assert_eq!(store.outbox_acked(Outbox::Events).await.unwrap(), last);
    assert_eq!(store.outbox_backlog(Outbox::Events).await.unwrap(), 0);
    // Everything acknowledged: only the newest row is left, and the next event's number is
    // above it.
    let left = store.outbox_events(0, 100).await.unwrap();
    assert_eq!(left.iter().map(|e| e.id).collect::<Vec<_>>(), vec![last]);
    store.insert_events(&[event(9, "block")]).await.unwrap();
    let next = store.outbox_events(last, 100).await.unwrap();
    assert_eq!(next.len(), 1);
    assert!(next[0].id > last);

    // Texts the same way.
    for i in 0..3 {
        store
            .queue_text(&OutboxText {
                id: 0,
                at_ms: i,
                source: "page".into(),
                text: format!("text {i}"),
                location: "http://x/".into(),
                subject: Subject {
                    username: Some("amy".into()),
                    client_ip: Some("10.0.0.7".into()),
                    device: None,
                    group: "learners".into(),
                    site: None,
                },
            })
            .await
            .unwrap();
    }
    let texts = store.outbox_texts(0, 10).await.unwrap();
    assert_eq!(
        texts.iter().map(|t| t.text.as_str()).collect::<Vec<_>>(),
        ["text 0", "text 1", "text 2"]
    );
    store.outbox_ack(Outbox::Texts, texts[2].id).await.unwrap();
    assert_eq!(store.outbox_backlog(Outbox::Texts).await.unwrap(), 0);

    // Gaps go the same way; at the central a gap sent twice is recorded once, with its site.
    store.record_gap(7, "queue full").await.unwrap();
    let gaps = store.outbox_gaps(0, 10).await.unwrap();
    assert_eq!(gaps.len(), 1);
    assert_eq!(
        (gaps[0].1.dropped, gaps[0].1.cause.as_str()),
        (7, "queue full")
    );
    for _ in 0..2 {
        store.record_site_gap("north", &gaps[0].1).await.unwrap();
    }
    let all = store.log_gaps().await.unwrap();
    assert_eq!(
        all.iter()
            .filter(|g| g.cause == "site north: queue full")
            .count(),
        1
    );
    store.outbox_ack(Outbox::Gaps, gaps[0].0).await.unwrap();
    // (One store plays both parts here: the gap recorded "at the central" is the next row.)
    assert_eq!(store.outbox_acked(Outbox::Gaps).await.unwrap(), gaps[0].0);
    let next = store.outbox_gaps(gaps[0].0, 10).await.unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].1.cause, "site north: queue full");
}

/// A gateway's accounts follow the central's: added, changed, password accounts the central
/// no longer has disabled; a directory record made at the site (no password) left alone; the
/// central's password hash signs in at the site.
#[tokio::test]
async fn a_gateways_accounts_follow_the_centrals() {
    let (_c, central) = store().await;
    let (_g, gateway) = store().await;
    central
        .add_user(&user("amy", "learners", Some("amy's long password")))
        .await
        .unwrap();
    central
        .add_user(&user("bob", "staff", Some("bob's long password")))
        .await
        .unwrap();
    gateway
        .add_user(&user("amy", "guests", None))
        .await
        .unwrap();
    gateway
        .add_user(&user("old", "staff", Some("old's long password")))
        .await
        .unwrap();
    gateway
        .add_user(&user("dir.person", "staff", None))
        .await
        .unwrap();
    let changed = gateway
        .sync_site_users(&central.site_users().await.unwrap())
        .await
        .unwrap();
    assert_eq!(changed, 3, "amy changed, bob added, old disabled");
    let amy = gateway
        .verify_password("amy", "amy's long password")
        .await
        .unwrap()
        .expect("the central's hash signs in");
    assert_eq!(amy.group, "learners");
    assert!(gateway
        .verify_password("bob", "bob's long password")
        .await
        .unwrap()
        .is_some());
    assert!(gateway.user("old").await.unwrap().unwrap().disabled);
    assert!(!gateway.user("dir.person").await.unwrap().unwrap().disabled);
    // Nothing changed: nothing written.
    assert_eq!(
        gateway
            .sync_site_users(&central.site_users().await.unwrap())
            .await
            .unwrap(),
        0
    );
}

/// One gateway instance per site at a time: the first is number 1; the same instance keeps
/// its number; another is refused while the first calls, and takes over, numbered 2, once it
/// has gone quiet.
#[tokio::test]
async fn a_site_is_served_by_one_gateway_at_a_time() {
    let (_dir, store) = store().await;
    let (a, b) = ("a".repeat(32), "b".repeat(32));
    let t = 1_800_000_000_000;
    assert_eq!(store.gateway_instance("north", &a, t).await.unwrap(), Ok(1));
    store
        .gateway_called_at("north", &GatewayCall::default(), t + 1000)
        .await
        .unwrap();
    assert_eq!(
        store.gateway_instance("north", &a, t + 2000).await.unwrap(),
        Ok(1)
    );
    assert_eq!(
        store.gateway_instance("north", &b, t + 3000).await.unwrap(),
        Err(SiteTaken {
            last_seen_ms: t + 1000
        })
    );
    assert_eq!(
        store
            .gateway_instance("north", &b, t + 1000 + INSTANCE_SILENT_MS)
            .await
            .unwrap(),
        Ok(2)
    );
    // Another site is its own.
    assert_eq!(store.gateway_instance("south", &a, t).await.unwrap(), Ok(1));
}

/// Every path that stores events keeps the time map (`event_hours`) that a period's queries
/// read, the table having no index on time: an hour's events stored after later hours' (a long
/// download logged when it ends, a site's backlog forwarded after a break) are found by the
/// console's search, the reports and the purge, whichever path stored them; and the
/// migration's backfill maps events stored before it.
#[tokio::test]
async fn a_periods_queries_find_late_events_on_every_write_path() {
    const H: i64 = crate::events::HOUR_MS;
    let base = 1_700_002_800_000 / H * H; // an hour's start
                                          // Batches as stored: (hour, minute) of each event, the last two an hour's late ones.
    let batches: [&[(i64, i64)]; 4] = [
        &[(1, 0), (1, 10), (1, 59), (2, 0)],
        &[(2, 30), (0, 20), (2, 31)],
        &[(0, 59)],
        &[(3, 1), (0, 0)],
    ];
    #[derive(Debug, Clone, Copy)]
    enum Path {
        LogWriter,
        Pool,
        Site,
    }
    for path in [Path::LogWriter, Path::Pool, Path::Site] {
        let (_dir, store) = store().await;
        let mut all = Vec::new();
        let mut seq = 0;
        for batch in batches {
            let events: Vec<Event> = batch
                .iter()
                .map(|&(hour, minute)| {
                    let n = all.len() + 1;
                    let mut e = event(n, ["block", "allow", "warn"][n % 3]);
                    e.at_ms = base + hour * H + minute * 60_000;
                    all.push(e.clone());
                    e
                })
                .collect();
            match path {
                Path::LogWriter => store.write_events(events).await.1.unwrap(),
                Path::Pool => store.insert_events(&events).await.unwrap(),
                Path::Site => {
                    let events: Vec<SiteEvent> = events
                        .into_iter()
                        .map(|event| {
                            seq += 1;
                            SiteEvent { seq, event }
                        })
                        .collect();
                    let stored = store.insert_site_events("north", &events).await.unwrap();
                    assert_eq!(stored.len(), events.len());
                }
            }
        }
        // Each period: (since, until), by the hour and across hours, open on either side.
        let periods = [
            (Some(base), Some(base + H)),
            (Some(base + H), Some(base + 2 * H)),
            (Some(base + 2 * H), Some(base + 3 * H)),
            (Some(base + 20 * 60_000), Some(base + H + 10 * 60_000)),
            (Some(base + 59 * 60_000), Some(base + 59 * 60_000 + 1)),
            (Some(base + H), None),
            (None, Some(base + H)),
            (None, None),
            (Some(base + 5 * H), Some(base + 6 * H)),
            (Some(base - 5 * H), Some(base)),
        ];
        let check = |store: Store, all: Vec<Event>, why: &'static str| async move {
            for (since, until) in periods {
                let within = |e: &&Event| {
                    since.is_none_or(|s| e.at_ms >= s) && until.is_none_or(|u| e.at_ms < u)
                };
                let mut want: Vec<i64> = all.iter().filter(within).map(|e| e.at_ms).collect();
                want.sort_unstable();
                let filter = EventFilter {
                    since_ms: since,
                    until_ms: until,
                    limit: Some(1000),
                    ..EventFilter::default()
                };
                let mut got: Vec<i64> = store
                    .events(&filter)
                    .await
                    .unwrap()
                    .iter()
                    .map(|e| e.event.at_ms)
                    .collect();
                got.sort_unstable();
                assert_eq!(got, want, "{path:?} {why}: search of {since:?}..{until:?}");
                let (from, to) = (since.unwrap_or(i64::MIN), until.unwrap_or(i64::MAX));
                let report = store.report(from, to).await.unwrap();
                let count = |action: &str| {
                    all.iter()
                        .filter(within)
                        .filter(|e| *e.action == *action)
                        .count() as i64
                };
                assert_eq!(
                    (report.blocked, report.allowed),
                    (count("block"), count("allow")),
                    "{path:?} {why}: report of {since:?}..{until:?}"
                );
                let board = store.board_figures(from, to).await.unwrap();
                let hosts: i64 = board.top_blocked_sites.iter().map(|(_, n)| n).sum();
                assert_eq!(
                    hosts,
                    count("block"),
                    "{path:?} {why}: Board of {since:?}..{until:?}"
                );
            }
        };
        check(store.clone(), all.clone(), "as stored").await;

        // The migration's backfill, on a map emptied as if the events predated it.
        sqlx::query("DELETE FROM event_hours")
            .execute(&store.pool)
            .await
            .unwrap();
        let dir = match store.dialect() {
            Dialect::Sqlite => "sqlite",
            Dialect::Postgres => "postgres",
        };
        let migration = std::fs::read_to_string(format!(
            "{}/migrations/{dir}/0019_event_hours.sql",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        let start = migration.find("INSERT INTO event_hours").unwrap();
        let backfill = &migration[start..start + migration[start..].find(';').unwrap()];
        sqlx::query(backfill).execute(&store.pool).await.unwrap();
        check(store.clone(), all.clone(), "backfilled").await;

        // The purge of what is older than the second hour takes the first hour's events,
        // the late ones too, and nothing else.
        let retention = Retention {
            activity_days: Some(1),
            ..Retention::default()
        };
        let now = base + H + 86_400_000;
        let purged = store
            .purge(&retention, now, 2, Duration::ZERO)
            .await
            .unwrap();
        let (old, kept): (Vec<Event>, Vec<Event>) =
            all.into_iter().partition(|e| e.at_ms < base + H);
        assert_eq!(purged.activity, old.len() as u64, "{path:?}: purged");
        check(store.clone(), kept, "after the purge").await;
    }
}

/// A batch's hours come out once each and ascending, whatever the order of its events (the
/// order every transaction widens their rows in), rounded toward zero as SQL divides.
#[test]
fn a_batchs_hours_are_each_once_and_ascending() {
    use crate::events::{hours_of, HOUR_MS};
    let cases: [(&[i64], &[i64]); 5] = [
        (&[], &[]),
        (&[5, 6, HOUR_MS - 1], &[0]),
        (
            &[3 * HOUR_MS + 1, HOUR_MS, 3 * HOUR_MS, HOUR_MS + 9],
            &[1, 3],
        ),
        (&[2 * HOUR_MS, HOUR_MS, 2 * HOUR_MS, HOUR_MS, 0], &[0, 1, 2]),
        (&[-1, -HOUR_MS, -HOUR_MS - 1, 1], &[-1, 0]),
    ];
    for (at_ms, want) in cases {
        assert_eq!(hours_of(at_ms.iter().copied()), want, "{at_ms:?}");
    }
}

/// Each of the console's event searches that an index serves reads that index on SQLite, not
/// the whole log; SQLite's plan says which. A partial index only serves a query that states its
/// condition (the lookup by a block page's reference, which every review request makes, read
/// every event before it said `reference <> ''`). A period's queries read a range of the
/// table's own key, through the time map: with the map's id bounds left out they would still
/// find the right rows (they test `at_ms`), but by reading the whole table, which has no index
/// on time. Through the `events` view every search reads the log's rows (`event_rows`, the
/// view's `r`) first and each row's kind (`k`) by its id, a search on a kind's text (a
/// category) too: never the kinds first, each with a pass over the rows.
#[tokio::test]
async fn event_searches_read_their_index() {
    let (_dir, store) = store().await;
    if store.dialect() != Dialect::Sqlite {
        return; // PostgreSQL's planner chooses by its statistics
    }
    let period = |since_ms, until_ms| EventFilter {
        since_ms,
        until_ms,
        ..EventFilter::default()
    };
    let table: [(&str, EventFilter, &str); 8] = [
        (
            "a block page's reference",
            EventFilter {
                reference: Some("LK-7Q2M-X9KD".into()),
                limit: Some(1),
                ..EventFilter::default()
            },
            "events_reference",
        ),
        (
            "a user",
            EventFilter {
                username: Some("amy.learner".into()),
                ..EventFilter::default()
            },
            "events_user_at",
        ),
        (
            "a site",
            EventFilter {
                site: Some("north".into()),
                ..EventFilter::default()
            },
            "events_site",
        ),
        ("a period", period(Some(1), Some(2)), "INTEGER PRIMARY KEY"),
        (
            "a period's start",
            period(Some(1), None),
            "INTEGER PRIMARY KEY",
        ),
        (
            "a period's end",
            period(None, Some(2)),
            "INTEGER PRIMARY KEY",
        ),
        (
            "a category",
            EventFilter {
                category: Some("gambling".into()),
                ..EventFilter::default()
            },
            "SCAN r",
        ),
        (
            "a category in a period",
            EventFilter {
                category: Some("gambling".into()),
                ..period(Some(1), Some(2))
            },
            "INTEGER PRIMARY KEY",
        ),
    ];
    for (what, filter, index) in table {
        let (sql, args) =
            crate::events::events_query(Dialect::Sqlite, "EXPLAIN QUERY PLAN ", &filter)
                .into_parts()
                .unwrap();
        let plan = plan_of(&store, sqlx::query_with(&sql, args)).await;
        let rows = plan
            .iter()
            .position(|d| d == index || (d.starts_with("SEARCH r USING") && d.contains(index)));
        let kinds = plan
            .iter()
            .position(|d| d == "SEARCH k USING INTEGER PRIMARY KEY (rowid=?)");
        assert!(
            rows.is_some() && kinds > rows && !plan.iter().any(|d| d.starts_with("SCAN k")),
            "{what}: {plan:?}"
        );
    }
}

/// The texts an event keeps in `event_kinds` (service, group, method, categories, rule), as
/// one tuple to count distinct kinds by.
fn kind_of(e: &Event) -> (String, String, String, String, String) {
    (
        e.service.to_owned(),
        e.group.to_string(),
        e.method.to_string(),
        e.categories.to_string(),
        e.rule.to_string(),
    )
}

/// Every path that stores events (the log's writer, the pool, a site's forwarded events)
/// stores each event with its own kind's texts, read back field for field through the
/// `events` view: kinds that change from row to row and within a statement's rows, a kind
/// first seen in the middle of a batch, texts that run together the same way (`a` + `bc` and
/// `ab` + `c`), an empty text, a method of 5,000 bytes, DNS and proxy; and the log's writer
/// past the kinds it keeps in memory. A kind is stored once by one writer.
#[tokio::test]
async fn every_write_path_stores_each_events_kind() {
    #[derive(Debug, Clone, Copy)]
    enum Path {
        LogWriter,
        Pool,
        Site,
    }
    let kinds: [fn(&mut Event); 8] = [
        |_| {},
        |e| e.group = "staff".into(),
        |e| {
            e.group = "a".into();
            e.rule = "bc".into();
        },
        |e| {
            e.group = "ab".into();
            e.rule = "c".into();
        },
        |e| e.categories = "".into(),
        |e| e.method = "X".repeat(5_000).into(),
        |e| {
            e.service = "dns";
            e.method = "AAAA".into();
            e.rule = "".into();
        },
        |e| e.categories = "gambling".into(),
    ];
    for path in [Path::LogWriter, Path::Pool, Path::Site] {
        let (_dir, store) = store().await;
        let mut sent: Vec<Event> = Vec::new();
        // Runs of one kind, kinds alternating row by row, then a kind new to the log in the
        // middle of a batch (the last of `kinds`, first used in the third batch).
        let batches: [Vec<usize>; 3] = [
            vec![0, 0, 0, 1, 1, 2, 3, 2, 3, 4, 5, 6, 0],
            (0..70).map(|i| i % 7).collect(),
            vec![1, 1, 7, 7, 0, 7, 5],
        ];
        let mut batches: Vec<Vec<Event>> = batches
            .iter()
            .map(|batch| {
                batch
                    .iter()
                    .map(|&k| {
                        let mut e = event(sent.len() + 1, "allow");
                        kinds[k](&mut e);
                        sent.push(e.clone());
                        e
                    })
                    .collect()
            })
            .collect();
        if matches!(path, Path::LogWriter) {
            // More kinds than the writer keeps in memory, in one batch, then the first again.
            let mut many: Vec<Event> = (0..KINDS_KEPT + 10)
                .map(|i| {
                    let mut e = event(sent.len() + 1 + i, "allow");
                    e.method = format!("M{i}").into();
                    e
                })
                .collect();
            many.push(many[0].clone());
            sent.extend(many.iter().cloned());
            batches.push(many);
        }
        for (b, batch) in batches.into_iter().enumerate() {
            match path {
                Path::LogWriter => store.write_events(batch).await.1.unwrap(),
                Path::Pool => store.insert_events(&batch).await.unwrap(),
                Path::Site => {
                    let forwarded: Vec<SiteEvent> = batch
                        .into_iter()
                        .enumerate()
                        .map(|(i, event)| SiteEvent {
                            seq: (b * 1000 + i) as i64,
                            event,
                        })
                        .collect();
                    store.insert_site_events("north", &forwarded).await.unwrap();
                }
            }
        }
        let stored = stored_events(&store).await;
        assert_eq!(stored.len(), sent.len(), "{path:?}");
        for (i, (got, want)) in stored.iter().zip(&sent).enumerate() {
            assert_eq!(got, want, "{path:?}: row {i}");
        }
        let distinct: std::collections::HashSet<_> = sent.iter().map(kind_of).collect();
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM event_kinds")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        assert_eq!(n, distinct.len() as i64, "{path:?}: each kind stored once");
    }
}

/// A batch the log's writer fails to store takes the kinds it added with it (its transaction
/// is rolled back), and the writer does not remember them: the next batch of that kind adds
/// it again, so that its rows are not left naming a kind that is not there (the `events` view
/// would not show them).
#[tokio::test]
async fn a_kind_added_by_a_failed_batch_is_added_again() {
    let (_dir, store) = store().await;
    if store.log_writer.is_none() {
        return; // the pool's path looks every batch's kinds up in its own transaction
    }
    store.write_events(vec![event(1, "allow")]).await.1.unwrap();
    sqlx::query(
        "CREATE TRIGGER refuse BEFORE INSERT ON event_rows \
         BEGIN SELECT RAISE(ABORT, 'refused for the test'); END",
    )
    .execute(&store.pool)
    .await
    .unwrap();
    let mut new_kind = event(2, "block");
    new_kind.rule = "a rule new to the log".into();
    let (back, outcome) = store.write_events(vec![new_kind.clone()]).await;
    assert!(outcome.is_err(), "the trigger refused the row");
    assert_eq!(
        back,
        vec![new_kind.clone()],
        "the batch comes back for a retry"
    );
    sqlx::query("DROP TRIGGER refuse")
        .execute(&store.pool)
        .await
        .unwrap();
    store.write_events(back).await.1.unwrap();
    assert_eq!(
        stored_events(&store).await,
        vec![event(1, "allow"), new_kind]
    );
}

/// Migration 0020 (the log's narrow rows) keeps every event stored before it, under its id and
/// field for field (a site's too), on either database; events stored after it take ids above
/// the old ones, and the kinds already there.
#[tokio::test]
async fn the_narrow_rows_migration_keeps_every_event() {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::new(dir.path()).await.unwrap();
    let (folder, url) = match &db {
        TestDb::Sqlite(path) => ("sqlite", format!("sqlite://{}?mode=rwc", path.display())),
        TestDb::Postgres(url) => ("postgres", url.clone()),
    };
    // The migrations before it, from a folder of their own.
    let before = dir.path().join("before-0020");
    std::fs::create_dir(&before).unwrap();
    let all = format!("{}/migrations/{folder}", env!("CARGO_MANIFEST_DIR"));
    for file in std::fs::read_dir(&all).unwrap() {
        let file = file.unwrap();
        let name = file.file_name().to_string_lossy().into_owned();
        if name.as_str() < "0020" {
            std::fs::copy(file.path(), before.join(&name)).unwrap();
        }
    }
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    sqlx::migrate::Migrator::new(before.as_path())
        .await
        .unwrap()
        .run(&pool)
        .await
        .unwrap();
    // Events as the table before it held them, with ids that skip (a purge's gaps).
    let mut old: Vec<(i64, Event, Option<String>)> = Vec::new();
    for n in 1..=30usize {
        let mut e = event(n, ["allow", "block", "warn"][n % 3]);
        if n % 4 == 0 {
            e.service = "dns";
            e.method = "A".into();
            e.status = None;
        }
        if n % 5 == 0 {
            e.group = "staff".into();
            e.categories = "".into();
        }
        let site = (n % 7 == 0).then(|| "north".to_owned());
        old.push((n as i64 * 3, e, site));
    }
    for (id, e, site) in &old {
        sqlx::query(
            "INSERT INTO events (id, at_ms, reference, service, client_ip, username, group_name, \
             method, url, host, search_term, categories, action, rule, reason, status, bytes, site, \
             site_seq) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
             $16, $17, $18, $19)",
        )
        .bind(*id)
        .bind(e.at_ms)
        .bind(e.reference.as_str())
        .bind(e.service)
        .bind(e.client_ip.as_str())
        .bind(e.username.as_deref())
        .bind(e.group.as_str())
        .bind(e.method.as_str())
        .bind(e.url.as_str())
        .bind(e.host.as_str())
        .bind(e.search_term.as_deref())
        .bind(e.categories.as_str())
        .bind(e.action.as_str())
        .bind(e.rule.as_str())
        .bind(e.reason.as_str())
        .bind(e.status.map(i64::from))
        .bind(e.bytes as i64)
        .bind(site.as_deref())
        .bind(site.as_ref().map(|_| *id))
        .execute(&pool)
        .await
        .unwrap();
    }
    sqlx::query(
        "INSERT INTO event_hours (hour, first_id, last_id) \
         SELECT at_ms / 3600000, MIN(id), MAX(id) FROM events GROUP BY at_ms / 3600000",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;

    let store = db.open().await.unwrap();
    let everything = EventFilter {
        limit: Some(1000),
        ..EventFilter::default()
    };
    let mut stored = store.events(&everything).await.unwrap();
    stored.sort_by_key(|e| e.id);
    let want: Vec<StoredEvent> = old
        .iter()
        .map(|(id, event, site)| StoredEvent {
            id: *id,
            event: event.clone(),
            site: site.clone(),
        })
        .collect();
    assert_eq!(stored, want);
    let kinds: std::collections::HashSet<_> = old.iter().map(|(_, e, _)| kind_of(e)).collect();
    let count_kinds = || async {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM event_kinds")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        n
    };
    assert_eq!(count_kinds().await, kinds.len() as i64);

    // After it: new ids above the old, by both write paths, of kinds already there.
    let newer = vec![old[0].1.clone(), old[3].1.clone()];
    store.write_events(newer.clone()).await.1.unwrap();
    store.insert_events(&newer).await.unwrap();
    let mut stored = store.events(&everything).await.unwrap();
    stored.sort_by_key(|e| e.id);
    let max_old = old.last().unwrap().0;
    let added: Vec<&StoredEvent> = stored.iter().filter(|e| e.id > max_old).collect();
    assert_eq!(added.len(), 4, "{stored:?}");
    assert!(added
        .iter()
        .map(|e| &e.event)
        .eq(newer.iter().chain(&newer)));
    assert_eq!(count_kinds().await, kinds.len() as i64, "no kind added");
}

/// The log's writers find a kind by one search of `event_kinds_texts` on all five of its
/// columns, the method's first 64 characters included (SQLite's plan): searched on the group,
/// rule, categories and service alone, a client sending a new method with every request would
/// make each look-up read every kind of that group and rule.
#[tokio::test]
async fn a_kind_is_found_through_the_whole_index() {
    let (_dir, store) = store().await;
    if store.dialect() != Dialect::Sqlite {
        return; // PostgreSQL's planner chooses by its statistics
    }
    let sql = format!("EXPLAIN QUERY PLAN {}", crate::events::FIND_KIND);
    let params = crate::events::find_kind_params(["learners", "category", "", "proxy", "GET"]);
    let query = params.iter().fold(sqlx::query(&sql), |q, p| q.bind(*p));
    let plan = plan_of(&store, query).await;
    assert!(
        plan.iter().any(|d| d
            == "SEARCH event_kinds USING INDEX event_kinds_texts \
                (group_name=? AND rule=? AND categories=? AND service=? AND <expr>=?)"),
        "{plan:?}"
    );
}

/// SQLite's plan of `query` (an `EXPLAIN QUERY PLAN`), one line a step.
async fn plan_of<'q>(
    store: &Store,
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
) -> Vec<String> {
    query
        .fetch_all(&store.pool)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<String, _>("detail"))
        .collect()
}
