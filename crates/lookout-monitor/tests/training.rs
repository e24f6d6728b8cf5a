//! Training reminders through a real SMTP server on 127.0.0.1: one message per person with
//! training to do and an email address, not again within the period, refusals recorded.

use std::time::Duration;

use lookout_monitor::{send_reminders, Email, EmailTls, Reminded};
use lookout_store::{AuditEntry, CourseFields, NewUser, Role, Store};
use lookout_testkit::smtp_sink;

async fn person(store: &Store, name: &str, role: Role, email: &str) {
    store
        .add_user(&NewUser {
            username: name.into(),
            display_name: format!("{name} Smith"),
            group: "staff".into(),
            password: None,
            role: Some(role),
            email: Some(email.into()),
            team: None,
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn people_with_training_to_do_get_one_reminder_per_period() {
    let dir = tempfile::tempdir().unwrap();
    let store = lookout_store::testing::open_in(dir.path()).await.unwrap();
    person(&store, "sam", Role::Staff, "sam@college.test").await;
    person(&store, "tia", Role::Staff, "tia@college.test").await;
    person(&store, "noemail", Role::Staff, "").await;
    person(&store, "lee", Role::Learner, "lee@college.test").await;
    let course = store
        .save_course(
            None,
            &CourseFields {
                title: "Safeguarding induction".into(),
                edition: "2026".into(),
                about: "Read the policy.".into(),
                roles: vec![Role::Staff],
                within_days: 0,
                renew_days: 365,
                ..CourseFields::default()
            },
            &AuditEntry::new("ian", "training.course.save", ""),
        )
        .await
        .unwrap();
    // Tia has done it.
    store
        .record_completion(
            course.course_id,
            "2026",
            "tia",
            lookout_store::now_ms(),
            "recorded",
            (0, 0),
            "",
            &AuditEntry::new("ian", "training.record", ""),
        )
        .await
        .unwrap();

    let (smtp, mut mails) = smtp_sink().await;
    let email = Email::new(
        "127.0.0.1",
        smtp.port(),
        EmailTls::None,
        None,
        "Lookout <lookout@college.test>",
        &["dsl@college.test".to_owned()],
    )
    .unwrap();
    let week = Duration::from_secs(7 * 86_400);
    let r = send_reminders(&store, &email, "https://console.college.test/", week)
        .await
        .unwrap();
    assert_eq!(r, Reminded { sent: 1, failed: 0 });
    let mail = mails.recv().await.unwrap();
    assert_eq!(
        mail.to,
        ["<sam@college.test>"],
        "to the person only, not the DSL list"
    );
    assert!(
        mail.data
            .contains("Subject: Training overdue: 1 course(s) to complete"),
        "{}",
        mail.data
    );
    assert!(mail.data.contains("Hello sam Smith"), "{}", mail.data);
    assert!(
        mail.data
            .contains("- Safeguarding induction (overdue since "),
        "{}",
        mail.data
    );
    assert!(
        mail.data.contains(&format!(
            "https://console.college.test/training/{}",
            course.course_id
        )),
        "{}",
        mail.data
    );
    // Not again within the week.
    let r = send_reminders(&store, &email, "https://console.college.test", week)
        .await
        .unwrap();
    assert_eq!(r, Reminded::default());
    assert_eq!(store.reminders_sent("sam").await.unwrap().len(), 1);

    // A server that refuses: counted and recorded with the reason, not retried each hour.
    person(&store, "uma", Role::Staff, "uma@college.test").await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let nowhere = Email::new(
        "127.0.0.1",
        port,
        EmailTls::None,
        None,
        "lookout@college.test",
        &[],
    )
    .unwrap();
    let r = send_reminders(&store, &nowhere, "https://c", week)
        .await
        .unwrap();
    assert_eq!(r, Reminded { sent: 0, failed: 1 });
    let sent = store.reminders_sent("uma").await.unwrap();
    assert_eq!(sent.len(), 1);
    assert!(!sent[0].2.is_empty(), "the reason is kept");
    assert_eq!(
        send_reminders(&store, &nowhere, "https://c", week)
            .await
            .unwrap(),
        Reminded::default()
    );
}
