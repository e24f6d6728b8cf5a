//! The shipped libraries against the shipped corpora: the quality aims, checked on every run so
//! that a library edit that loses recall or adds false alerts fails the build.

use lookout_scan::{evaluate, parse_corpus, Library, Severity};

fn corpus(name: &str) -> Vec<lookout_scan::Sample> {
    let path = format!("{}/corpus/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("corpus");
    parse_corpus(&path, &text).expect("corpus parses")
}

#[test]
fn held_out_corpus_meets_the_aims() {
    let scanner = Library::builtin().compile().expect("compile");
    for name in ["heldout.tsv", "tune.tsv"] {
        let ev = evaluate(&scanner, &corpus(name), Severity::Caution);
        let danger = ev.by_severity[&Severity::Danger];
        let all = ev
            .by_risk
            .values()
            .fold((0, 0), |(tp, fp), t| (tp + t.true_pos, fp + t.false_pos));
        let precision = all.0 as f64 / (all.0 + all.1) as f64;
        let recall = danger.recall().expect("danger samples");
        let false_alerts = ev.innocent.rate().expect("innocent samples");
        assert!(recall >= 0.95, "{name}: danger recall {recall:.3}\n{ev}");
        assert!(precision >= 0.85, "{name}: precision {precision:.3}\n{ev}");
        assert!(
            false_alerts <= 0.02,
            "{name}: false alerts {false_alerts:.3}\n{ev}"
        );
    }
}

#[test]
fn every_category_and_language_is_in_the_held_out_corpus() {
    let samples = corpus("heldout.tsv");
    for risk in lookout_scan::Risk::ALL {
        assert!(
            samples.iter().any(|s| s.labels.iter().any(|l| l.0 == risk)),
            "{risk}"
        );
    }
    for lang in ["en", "pl", "ur", "cy"] {
        assert!(
            samples
                .iter()
                .any(|s| s.language == lang && s.labels.is_empty()),
            "{lang} innocent"
        );
        assert!(
            samples
                .iter()
                .any(|s| s.language == lang && !s.labels.is_empty()),
            "{lang} risky"
        );
    }
}
