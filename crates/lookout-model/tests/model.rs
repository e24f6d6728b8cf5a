//! The model stage with the real weights: training on the shipped corpus, saving and
//! reading a head, explanations, and hostile input.

use std::sync::OnceLock;

use lookout_model::{corpus, Encoder, Features, Head, Model, Params};
use lookout_scan::Risk;

mod common;

/// One model per test binary: trained on the shipped corpus.
fn model() -> Option<&'static Model> {
    static MODEL: OnceLock<Option<Model>> = OnceLock::new();
    MODEL
        .get_or_init(|| {
            let dir = common::model_dir()?;
            let encoder = Encoder::load(&dir).unwrap();
            let samples = corpus::training();
            let texts: Vec<&str> = samples.iter().map(|s| s.text.as_str()).collect();
            let xs = Features::of_texts(&encoder, &texts);
            let head = Head::train(&xs, &samples, &Params::default());
            Some(Model::new(encoder, head))
        })
        .as_ref()
}

#[test]
fn a_trained_head_learns_its_corpus_and_survives_a_round_trip() {
    let Some(model) = model() else { return };
    let samples = corpus::training();
    let texts: Vec<&str> = samples.iter().map(|s| s.text.as_str()).collect();
    let scores = model.score_batch(&texts);
    let (mut right, mut risky) = (0, 0);
    for (s, sample) in scores.iter().zip(&samples) {
        if let Some((risk, _)) = sample.labels.first() {
            risky += 1;
            right += usize::from(s.top().0 == *risk && s.risky >= 0.5);
        } else {
            assert!(
                s.risky < 0.5 || s.risks.iter().all(|v| *v < 0.9),
                "{:?}",
                sample.text
            );
        }
        assert!(s
            .risks
            .iter()
            .chain([&s.danger, &s.risky])
            .all(|v| (0.0..=1.0).contains(v)));
    }
    assert!(right * 100 >= risky * 95, "{right}/{risky} training texts");

    // The screen lets the risky texts through to the encoder (its threshold is set so that
    // 99% pass out of fold) and keeps some of the everyday ones away.
    let passes: Vec<bool> = texts.iter().map(|t| model.passes_screen(t)).collect();
    let risky_passed = samples
        .iter()
        .zip(&passes)
        .filter(|(s, &p)| !s.labels.is_empty() && p)
        .count();
    assert!(
        risky_passed * 100 >= risky * 99,
        "{risky_passed}/{risky} risky texts pass"
    );
    let kept = samples
        .iter()
        .zip(&passes)
        .filter(|(s, &p)| s.labels.is_empty() && !p)
        .count();
    assert!(kept > 0, "the screen keeps no innocent text away");
    let screened = model.score_screened(&texts[..64], &[false; 64]);
    for ((s, &p), t) in screened.iter().zip(&passes).zip(&texts) {
        assert_eq!(s.is_some(), p, "{t:?}");
    }
    assert!(model
        .score_screened(&texts[..64], &[true; 64])
        .iter()
        .all(Option::is_some));

    let mut bytes = Vec::new();
    model.head().write(&mut bytes).unwrap();
    let back = Head::read("head", &bytes).unwrap();
    assert_eq!(back.info, model.head().info);
    let text = "let's talk on snapchat so the messages disappear";
    let x = Features::of_texts(model.encoder(), &[text]);
    assert_eq!(back.calibrated(&x[0]), model.head().calibrated(&x[0]));
    let sparse = Features::sparse_only(text);
    assert_eq!(back.screen(&sparse), model.head().screen(&sparse));
    // Truncated or altered files are refused with a reason.
    let e = Head::read("head", &bytes[..bytes.len() - 4])
        .unwrap_err()
        .to_string();
    assert!(e.contains("bytes of weights"), "{e}");
}

#[test]
fn findings_are_explained_by_labelled_examples() {
    let Some(model) = model() else { return };
    let s = model.score("let's talk on snapchat so the messages disappear");
    assert_eq!(s.top().0, Risk::Grooming);
    let near = model.neighbours(&s, Risk::Grooming, 3);
    assert_eq!(near.len(), 3);
    assert!(near.iter().all(|n| n.labels.contains("grooming")));
    assert!(near[0].similarity >= near[2].similarity);
    assert!(near[0].similarity > 0.9, "{near:?}");
}

#[test]
fn hostile_input_gets_a_result_never_a_panic() {
    let Some(model) = model() else { return };
    let binary: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
    let inputs = [
        String::new(),
        " \t\n ".into(),
        "😀😀😀🔪💀".into(),
        "אני רוצה למות".into(),
        "أريد أن أموت and then some English 然后中文 и русский".into(),
        "\u{202e}txet desrever\u{202c} \u{200b}\u{200d}".into(),
        String::from_utf8_lossy(&binary).into_owned(),
        "ą".repeat(5_000_000),
        "word ".repeat(2_000_000),
        // Benign for its first 64 KiB, then danger: read past its bound, it would score
        // differently from its prefix (a repeated text alone would not show that).
        format!(
            "{}{}",
            "the weather was fine and we walked home. ".repeat(2_000),
            "i want to kill myself tonight. ".repeat(5_000)
        ),
    ];
    for text in &inputs {
        let s = model.score(text);
        assert!(
            s.risks
                .iter()
                .chain([&s.danger, &s.risky])
                .all(|v| v.is_finite()),
            "{:?}",
            &text[..text.len().min(40)]
        );
        // Long texts are read in a bounded number of pieces: whatever follows the first
        // 64 KiB changes nothing (checked by result, not by a clock, which a busy machine
        // would make flaky; the last input's tail would change it).
        if text.len() > 1 << 16 {
            let mut cut = 1 << 16;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            assert_eq!(
                format!("{s:?}"),
                format!("{:?}", model.score(&text[..cut])),
                "{:?}",
                &text[..40]
            );
        }
    }
}
