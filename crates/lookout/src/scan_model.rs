//! `lookout scan train` and `lookout scan eval --model`: the model stage from the command
//! line — training the classifier head, and measuring both stages together.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use lookout_config::{Config, ModelConfig};
use lookout_model::{combine, corpus, Head, Model, Policy, Scores};
use lookout_scan::{evaluate_with, Evaluation, Risk, Sample, Scanner, Severity, Tally};

use crate::UsageError;

/// The combining thresholds from `[scan.model]`.
pub(crate) fn policy(model: &ModelConfig) -> Policy {
    Policy {
        threshold: *model.threshold.get_ref(),
        danger: *model.danger.get_ref(),
        veto: *model.veto.get_ref(),
        gate: *model.gate.get_ref(),
    }
}

fn usage(e: impl std::fmt::Display) -> anyhow::Error {
    UsageError(e.to_string()).into()
}

/// Scores every sample's text with the model, in batches, as serve does: where `screen` is
/// on, a text with no phrase finding that the screen keeps away from the encoder has none.
fn score_all(
    model: &Model,
    scanner: &Scanner,
    samples: &[Sample],
    screen: bool,
) -> Vec<Option<Scores>> {
    let mut out = Vec::with_capacity(samples.len());
    for chunk in samples.chunks(256) {
        let texts: Vec<&str> = chunk.iter().map(|s| s.text.as_str()).collect();
        let always: Vec<bool> = texts
            .iter()
            .map(|t| !screen || !scanner.scan(t).is_empty())
            .collect();
        out.extend(model.score_screened(&texts, &always));
    }
    out
}

/// Both stages on every sample.
fn evaluate_both(
    scanner: &Scanner,
    scores: &[Option<Scores>],
    samples: &[Sample],
    policy: &Policy,
    min_severity: Severity,
) -> Evaluation {
    evaluate_with(samples, min_severity, |i, s| {
        combine(scanner.scan(&s.text), scores[i].as_ref(), policy)
            .into_iter()
            .map(|d| (d.risk, d.severity))
            .collect()
    })
}

fn total(ev: &Evaluation) -> Tally {
    ev.by_risk.values().fold(Tally::default(), |a, t| Tally {
        true_pos: a.true_pos + t.true_pos,
        false_pos: a.false_pos + t.false_pos,
        false_neg: a.false_neg + t.false_neg,
    })
}

fn f3(v: Option<f64>) -> String {
    v.map_or_else(|| "  -  ".to_owned(), |v| format!("{v:.3}"))
}

/// One line: precision, recall, danger recall, false alerts.
fn summary(ev: &Evaluation) -> String {
    let t = total(ev);
    let worst = ev
        .by_language
        .iter()
        .filter_map(|(l, (t, _))| t.recall().map(|r| (r, l.as_str())))
        .fold(None::<(f64, &str)>, |a, b| match a {
            Some(a) if a.0 <= b.0 => Some(a),
            _ => Some(b),
        });
    format!(
        "precision {}  recall {}  danger recall {}  false alerts {}/{} = {}  lowest language recall {}",
        f3(t.precision()),
        f3(t.recall()),
        f3(ev.by_severity[&Severity::Danger].recall()),
        ev.innocent.alerted,
        ev.innocent.samples,
        f3(ev.innocent.rate()),
        worst.map_or_else(|| "-".to_owned(), |(r, l)| format!("{r:.3} ({l})")),
    )
}

/// Precision, recall and false alerts at each model threshold, so an organisation can
/// choose its own.
fn threshold_table(
    scanner: &Scanner,
    scores: &[Option<Scores>],
    samples: &[Sample],
    base: &Policy,
    min_severity: Severity,
) {
    println!(
        "\n{:>9} {:>9} {:>7} {:>13} {:>12}",
        "threshold", "precision", "recall", "danger recall", "false alerts"
    );
    for t in [0.1f32, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9] {
        let p = Policy {
            threshold: t,
            veto: base.veto.min(t),
            ..*base
        };
        let ev = evaluate_both(scanner, scores, samples, &p, min_severity);
        let tot = total(&ev);
        println!(
            "{:>9.1} {:>9} {:>7} {:>13} {:>12}",
            t,
            f3(tot.precision()),
            f3(tot.recall()),
            f3(ev.by_severity[&Severity::Danger].recall()),
            f3(ev.innocent.rate())
        );
    }
}

/// How often a category scored in each band really was that category.
/// Over the texts the encoder read.
fn calibration_table(scores: &[Option<Scores>], samples: &[Sample]) {
    let mut bins = [(0usize, 0usize, 0.0f64); 10];
    let read = scores
        .iter()
        .zip(samples)
        .filter_map(|(s, x)| Some((s.as_ref()?, x)));
    for (s, sample) in read {
        for risk in Risk::ALL {
            let v = s.risk(risk);
            let yes = sample
                .labels
                .iter()
                .any(|(r, sev)| *r == risk && *sev >= Severity::Caution);
            let b = ((v * 10.0) as usize).min(9);
            bins[b].0 += 1;
            bins[b].1 += usize::from(yes);
            bins[b].2 += f64::from(v);
        }
    }
    println!(
        "\n{:>11} {:>7} {:>10} {:>14}",
        "model score", "pairs", "mean score", "were that risk"
    );
    for (i, (n, yes, sum)) in bins.iter().enumerate() {
        if *n == 0 {
            continue;
        }
        println!(
            "{:>4.1}-{:<4.1}   {:>7} {:>10.3} {:>14.3}",
            i as f64 / 10.0,
            (i + 1) as f64 / 10.0,
            n,
            sum / *n as f64,
            *yes as f64 / *n as f64
        );
    }
}

pub(crate) fn read_corpora(files: &[PathBuf]) -> anyhow::Result<Vec<Sample>> {
    let mut samples = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(f)
            .map_err(|e| usage(format!("cannot read corpus {}: {e}", f.display())))?;
        samples.extend(lookout_scan::parse_corpus(&f.display().to_string(), &text).map_err(usage)?);
    }
    Ok(samples)
}

fn load(config: &Config) -> anyhow::Result<Model> {
    let (model, source) = lookout_loader::load_model(&config.scan.model, &config.serve.data_dir)
        .map_err(usage)?
        .ok_or_else(|| usage("the model stage is off ([scan.model] enabled = false)"))?;
    eprintln!("model: {}", describe(&source));
    Ok(model)
}

pub(crate) fn describe(source: &lookout_loader::HeadSource) -> String {
    match source {
        lookout_loader::HeadSource::File(p) => format!("classifier head {}", p.display()),
        lookout_loader::HeadSource::Builtin(p) => {
            format!("built-in classifier head {}", p.display())
        }
        lookout_loader::HeadSource::Trained(p) => format!(
            "trained the built-in classifier head from the shipped corpus into {}",
            p.display()
        ),
    }
}

/// `lookout scan eval --model`.
pub(crate) fn eval(
    config: &Config,
    scanner: &Scanner,
    samples: &[Sample],
    min_severity: Severity,
) -> anyhow::Result<Evaluation> {
    let model = load(config)?;
    let policy = policy(&config.scan.model);
    let started = Instant::now();
    let scores = score_all(&model, scanner, samples, config.scan.model.screen);
    let secs = started.elapsed().as_secs_f64();
    let phrases_only = lookout_scan::evaluate(scanner, samples, min_severity);
    let ev = evaluate_both(scanner, &scores, samples, &policy, min_severity);
    println!(
        "counting findings of severity {min_severity} and above; model threshold {}, danger {}, veto {}",
        policy.threshold, policy.danger, policy.veto
    );
    print!("{ev}");
    println!("\nphrases alone:   {}", summary(&phrases_only));
    println!("phrases + model: {}", summary(&ev));
    threshold_table(scanner, &scores, samples, &policy, min_severity);
    calibration_table(&scores, samples);
    let read = scores.iter().filter(|s| s.is_some()).count();
    println!(
        "\nmodel: {} texts in {secs:.2} s ({:.0} texts/s, all cores); the encoder read {read} \
         ({:.1}%), the screen kept {} away",
        samples.len(),
        samples.len() as f64 / secs.max(1e-9),
        100.0 * read as f64 / samples.len().max(1) as f64,
        samples.len() - read
    );
    Ok(ev)
}

/// What `lookout scan train` learns from.
pub(crate) struct TrainArgs {
    pub corpus: Vec<PathBuf>,
    pub no_builtin: bool,
    pub false_alarms: Vec<Sample>,
    pub out: Option<PathBuf>,
    pub cv: bool,
    pub params: lookout_model::Params,
}

/// `lookout scan train`.
pub(crate) fn train(
    config: &Config,
    scanner: &Scanner,
    args: TrainArgs,
) -> anyhow::Result<ExitCode> {
    let encoder = lookout_loader::load_encoder(&config.scan.model).map_err(usage)?;
    let mut samples = if args.no_builtin {
        Vec::new()
    } else {
        corpus::training()
    };
    samples.extend(read_corpora(&args.corpus)?);
    let dismissed = args.false_alarms.len();
    samples.extend(args.false_alarms.iter().cloned());
    if samples.is_empty() {
        return Err(usage(
            "nothing to train on: give --corpus files or drop --no-builtin",
        ));
    }
    let risky = samples.iter().filter(|s| !s.labels.is_empty()).count();
    println!(
        "training on {} texts ({risky} risky, {} innocent, {dismissed} from the DSL team's dismissals)",
        samples.len(),
        samples.len() - risky
    );
    let heldout = corpus::heldout();
    let policy = policy(&config.scan.model);
    let min = Severity::Caution;
    let out = args
        .out
        .unwrap_or_else(|| config.scan.model.head(&config.serve.data_dir));

    // Before: the head serve uses now.
    let before_path = if out.is_file() {
        out.clone()
    } else {
        lookout_loader::builtin_head_path(&config.scan.model)
    };
    // An older or damaged head is replaced; it only has no "before" figures.
    let before = std::fs::read(&before_path)
        .ok()
        .map(|d| Head::read(&before_path.display().to_string(), &d));

    let started = Instant::now();
    let texts: Vec<&str> = samples.iter().map(|s| s.text.as_str()).collect();
    let xs = lookout_model::Features::of_texts(&encoder, &texts);
    let embedded = started.elapsed().as_secs_f64();
    let params = args.params;
    let oof = lookout_model::cross_validate(&xs, &samples, &params);
    if args.cv {
        // The out-of-fold scores on the training texts, calibrated on themselves: for
        // choosing settings without looking at the held-out corpus.
        let cal = lookout_model::Calibrations::fit(&oof, &samples);
        let scores: Vec<Option<Scores>> = oof
            .iter()
            .map(|raw| {
                let s = cal.apply(*raw);
                let mut risks = [0.0; 12];
                risks.copy_from_slice(&s[..12]);
                Some(Scores::from_parts(risks, s[12], s[13]))
            })
            .collect();
        let ev = evaluate_both(scanner, &scores, &samples, &policy, min);
        println!(
            "\ncross-validated on the training texts ({} folds):",
            params.folds
        );
        print!("{ev}");
        println!("\nphrases + model: {}", summary(&ev));
        threshold_table(scanner, &scores, &samples, &policy, min);
    }
    let head = Head::train_with(&xs, &samples, &params, &oof);
    let trained = started.elapsed().as_secs_f64() - embedded;
    lookout_loader::write_head(&head, &out).map_err(usage)?;
    println!(
        "\nembedded {} texts in {embedded:.1} s, trained in {trained:.1} s; wrote {}",
        samples.len(),
        out.display()
    );

    let report = |name: &str, model: &Model| {
        let scores = score_all(model, scanner, &heldout, config.scan.model.screen);
        let ev = evaluate_both(scanner, &scores, &heldout, &policy, min);
        println!(
            "{name:<7} held-out ({} texts): {}",
            heldout.len(),
            summary(&ev)
        );
        if dismissed > 0 {
            let fa = score_all(model, scanner, &args.false_alarms, config.scan.model.screen);
            let ev = evaluate_both(scanner, &fa, &args.false_alarms, &policy, min);
            println!(
                "{name:<7} dismissed texts still alerting: {}/{}",
                ev.innocent.alerted, ev.innocent.samples
            );
        }
    };
    println!();
    // One encoder for both reports: the heads take turns.
    let mut model = Model::new(encoder, head);
    match before {
        Some(Ok(h)) => {
            let after = model.replace_head(h);
            report("before:", &model);
            model.replace_head(after);
        }
        Some(Err(e)) => println!("before: {e}"),
        None => println!("before: no head yet"),
    }
    report("after:", &model);
    Ok(ExitCode::SUCCESS)
}

/// False alarms from the store as training lines (innocent, language unknown).
pub(crate) fn false_alarm_samples(found: Vec<Vec<String>>) -> Vec<Sample> {
    found
        .into_iter()
        .flatten()
        .enumerate()
        .filter(|(_, t)| !t.trim().is_empty())
        .map(|(i, text)| Sample {
            file: "false-alarms".into(),
            line: i as u32 + 1,
            language: "und".into(),
            labels: Vec::new(),
            text,
        })
        .collect()
}

/// `lookout scan --model TEXT`: both stages on one text, and why.
pub(crate) fn scan_one(
    config: &Config,
    scanner: &Scanner,
    text: &str,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let model = load(config)?;
    let scores = model.score(text);
    let found = combine(
        scanner.scan(text),
        Some(&scores),
        &policy(&config.scan.model),
    );
    let (top, top_score) = scores.top();
    if json {
        let v: Vec<serde_json::Value> = found
            .iter()
            .map(|d| {
                let mut j = serde_json::json!({
                    "category": d.risk.slug(),
                    "severity": d.severity.slug(),
                    "stage": d.stage.slug(),
                    "score": d.score,
                    "danger": d.danger,
                });
                if let Some(f) = &d.phrase {
                    j["phrase"] = crate::scan::finding_json(f);
                }
                if d.stage != lookout_model::Stage::Phrase {
                    j["examples"] = model
                        .neighbours(&scores, d.risk, 3)
                        .into_iter()
                        .map(|n| serde_json::json!({"text": n.text, "labels": n.labels, "similarity": n.similarity}))
                        .collect();
                }
                j
            })
            .collect();
        println!("{}", serde_json::Value::Array(v));
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "model: risky {:.2}, danger {:.2}, top category {} {:.2}",
        scores.risky,
        scores.danger,
        top.slug(),
        top_score
    );
    if found.is_empty() {
        println!("no findings");
    }
    for d in &found {
        println!(
            "{:<8} {} ({}) found by {}, model score {:.2}",
            d.severity,
            d.risk.label(),
            d.risk.slug(),
            d.stage.slug(),
            d.score.unwrap_or(0.0)
        );
        if let Some(f) = &d.phrase {
            for m in &f.matches {
                println!(
                    "  phrase \"{}\"  rule `{}` ({})",
                    m.evidence, m.phrase, m.source
                );
            }
        }
        if d.stage != lookout_model::Stage::Phrase {
            for n in model.neighbours(&scores, d.risk, 3) {
                println!(
                    "  like \"{}\" ({}, {}, similarity {:.2})",
                    n.text, n.language, n.labels, n.similarity
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
