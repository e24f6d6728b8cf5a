//! `lookout scan train` and `lookout scan eval --model` as a real process, with the real
//! weights: the DSL team's dismissals feed back into a re-fitted head, figures before and
//! after; the model stage's mistakes named clearly.

mod common;

use std::path::PathBuf;
use std::process::Output;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn model_dir() -> Option<PathBuf> {
    lookout_model::weights_for_tests()
}

fn out(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn dismissals_retrain_the_head_and_both_stages_are_measured() {
    let Some(dir) = model_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let head = tmp.path().join("head.bin");
    let config = tmp.path().join("lookout.toml");
    std::fs::write(
        &config,
        format!(
            "[serve]\ndata_dir = {:?}\n[scan.model]\ndir = {:?}\nhead = {:?}\n",
            data.display().to_string(),
            dir.display().to_string(),
            head.display().to_string()
        ),
    )
    .unwrap();
    let c = config.to_str().unwrap();

    // An alert the DSL team dismissed as a false alarm.
    let store = lookout_store::Store::open(&data.join("lookout.db"))
        .await
        .unwrap();
    let subject = lookout_store::Subject {
        username: Some("jo".into()),
        client_ip: None,
        device: None,
        group: "learners".into(),
        site: None,
    };
    // The built-in head alerts on this (grooming); the DSL team said it was a false alarm.
    let text = "my little brother is a menace, i could strangle him";
    let finding = lookout_store::NewFinding {
        at_ms: lookout_store::now_ms(),
        source: "search".into(),
        category: "grooming".into(),
        severity: "caution".into(),
        score: 53,
        evidence: text.into(),
        context: text.into(),
        rules: "[]".into(),
        location: String::new(),
    };
    let r = store
        .record_finding(&subject, &finding, 60_000, &[])
        .await
        .unwrap();
    store
        .review_alert(
            r.alert.id,
            lookout_store::ReviewAction::Dismissed,
            "a figure of speech about a sibling",
            None,
            &lookout_store::AuditEntry {
                actor: "dsl".into(),
                action: "alert.dismiss".into(),
                target: format!("alert:{}", r.alert.id),
                detail: String::new(),
                client_ip: String::new(),
            },
        )
        .await
        .unwrap();
    store.close().await;

    // Without a head file of its own, the built-in corpus's head is used (trained and kept
    // beside the encoder the first time).
    let first = common::lookout_in(
        &repo(),
        &["scan", "eval", "-c", c, "--model", "--heldout"],
        None,
    );
    let said = out(&first);
    assert!(first.status.success(), "{said}");
    assert!(said.contains("built-in classifier head"), "{said}");

    let train = common::lookout_in(
        &repo(),
        &["scan", "train", "-c", c, "--false-alarms", "30"],
        None,
    );
    let said = out(&train);
    assert!(train.status.success(), "{said}");
    let held = lookout_model::corpus::heldout().len();
    for want in [
        "1 from the DSL team's dismissals",
        // Before: the built-in corpus's head, which serve used until now.
        &format!("before: held-out ({held} texts): precision"),
        &format!("after:  held-out ({held} texts): precision"),
        // Learned from: it alerted before and does not now.
        "before: dismissed texts still alerting: 1/1",
        "after:  dismissed texts still alerting: 0/1",
        &format!("wrote {}", head.display()),
    ] {
        assert!(said.contains(want), "{want:?} in {said}");
    }
    assert!(head.is_file());

    // Trained again: the head just written gives the "before" figures.
    let after = said
        .lines()
        .find(|l| l.starts_with("after:  held-out"))
        .unwrap()
        .replace("after: ", "before:");
    let again = common::lookout_in(&repo(), &["scan", "train", "-c", c], None);
    assert!(out(&again).contains(&after), "{after:?} in {}", out(&again));

    let eval = common::lookout_in(
        &repo(),
        &["scan", "eval", "-c", c, "--model", "--heldout"],
        None,
    );
    let said = out(&eval);
    assert!(eval.status.success(), "{said}");
    for want in [
        &format!("model: classifier head {}", head.display()),
        "phrases alone:",
        "phrases + model:",
        "threshold precision  recall danger recall false alerts",
        "model score   pairs mean score were that risk",
    ] {
        assert!(said.contains(want), "{want:?} in {said}");
    }

    // One text, both stages, and why.
    let one = common::lookout_in(
        &repo(),
        &[
            "scan",
            "-c",
            c,
            "--model",
            "let's talk on snapchat so the messages disappear",
        ],
        None,
    );
    let said = out(&one);
    assert!(one.status.success(), "{said}");
    assert!(said.contains("(grooming) found by model"), "{said}");
    assert!(said.contains("  like \""), "{said}");
    let json = common::lookout_in(
        &repo(),
        &[
            "scan",
            "-c",
            c,
            "--model",
            "--json",
            "i keep hurting myself so the feelings stop",
        ],
        None,
    );
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v[0]["category"], "self-harm", "{v}");
    assert!(
        v[0]["examples"].as_array().is_some_and(|e| e.len() == 3),
        "{v}"
    );
}

#[test]
fn model_mistakes_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("missing.toml");
    std::fs::write(&missing, "[scan.model]\ndir = \"/nonexistent/model\"\n").unwrap();
    let o = common::lookout_in(
        &repo(),
        &[
            "scan",
            "eval",
            "-c",
            missing.to_str().unwrap(),
            "--model",
            "--heldout",
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(2), "{}", out(&o));
    assert!(
        out(&o).contains("no model weights in /nonexistent/model (run scripts/fetch-model"),
        "{}",
        out(&o)
    );
    let Some(dir) = model_dir() else { return };
    let bad_head = tmp.path().join("head.bin");
    std::fs::write(&bad_head, "not a head").unwrap();
    let cfg = tmp.path().join("bad-head.toml");
    std::fs::write(
        &cfg,
        format!(
            "[scan.model]\ndir = {:?}\nhead = {:?}\n",
            dir.display().to_string(),
            bad_head.display().to_string()
        ),
    )
    .unwrap();
    let o = common::lookout_in(
        &repo(),
        &[
            "scan",
            "eval",
            "-c",
            cfg.to_str().unwrap(),
            "--model",
            "--heldout",
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(2), "{}", out(&o));
    assert!(
        out(&o).contains("not a Lookout classifier head"),
        "{}",
        out(&o)
    );
    let o = common::lookout_in(
        &repo(),
        &["scan", "train", "-c", cfg.to_str().unwrap(), "--no-builtin"],
        None,
    );
    assert_eq!(o.status.code(), Some(2), "{}", out(&o));
    assert!(out(&o).contains("nothing to train on"), "{}", out(&o));
}
