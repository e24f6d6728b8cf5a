//! `lookout scan`: risk detection from the command line, for operators testing phrase lists
//! and for measuring a library against a labelled corpus.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use lookout_scan::{evaluate, normalize, Finding, Library, Severity};

use crate::{load_config, UsageError};

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct ScanArgs {
    #[command(subcommand)]
    command: Option<ScanCommand>,
    /// The text to scan, or `-` to read it from standard input.
    text: Option<String>,
    /// Configuration file (for the organisation's own phrase files).
    #[arg(long, short, global = true)]
    config: Option<PathBuf>,
    /// Print findings as JSON.
    #[arg(long)]
    json: bool,
    /// Also print the text as Lookout normalises it before matching.
    #[arg(long)]
    normalized: bool,
    /// Also run the model stage and show what both stages found together, with the model's
    /// scores and the closest labelled examples.
    #[arg(long)]
    model: bool,
}

#[derive(Subcommand)]
enum ScanCommand {
    /// Measure the phrase libraries against labelled corpus files: precision, recall and
    /// false alerts per category, severity and language.
    Eval {
        /// Corpus files: `language<TAB>labels<TAB>text` lines, labels `none` or
        /// `category:severity[,...]`.
        #[arg(required_unless_present = "heldout")]
        files: Vec<PathBuf>,
        /// Also measure on the held-out corpora shipped with Lookout.
        #[arg(long)]
        heldout: bool,
        /// Measure the phrases and the model stage together (with a table per model
        /// threshold and the model's calibration).
        #[arg(long)]
        model: bool,
        /// Findings below this severity are not counted as alerts.
        #[arg(long, default_value = "caution", value_parser = parse_severity)]
        min_severity: Severity,
        /// List every sample the libraries got wrong.
        #[arg(long)]
        mistakes: bool,
    },
    /// Rules loaded per category and language.
    Stats,
    /// Train the model stage's classifier head (on the built-in corpus, your own corpus
    /// files and the DSL team's dismissed alerts) and write it where `lookout serve` reads
    /// it; prints held-out figures before and after.
    Train {
        /// More labelled corpus files to learn from.
        #[arg(long)]
        corpus: Vec<PathBuf>,
        /// Leave out the corpus shipped with Lookout.
        #[arg(long)]
        no_builtin: bool,
        /// Add the texts of alerts the DSL team dismissed in the last DAYS days as innocent.
        #[arg(long, value_name = "DAYS")]
        false_alarms: Option<i64>,
        /// Where to write the head (default: `[scan.model] head`).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Also print cross-validated figures on the training texts.
        #[arg(long)]
        cv: bool,
        /// Training passes over the corpus.
        #[arg(long, default_value_t = lookout_model::Params::default().epochs)]
        epochs: usize,
        /// L2 penalty on the weights.
        #[arg(long, default_value_t = lookout_model::Params::default().l2)]
        l2: f32,
        /// Weight of the character/word n-grams against the sentence embedding.
        #[arg(long, default_value_t = lookout_model::Params::default().sparse_scale)]
        sparse_scale: f32,
        /// AdaGrad learning rate.
        #[arg(long, default_value_t = lookout_model::Params::default().learning_rate)]
        learning_rate: f32,
    },
}

fn parse_severity(s: &str) -> Result<Severity, String> {
    Severity::from_slug(s).ok_or_else(|| "expected advisory, caution or danger".to_owned())
}

pub(crate) fn run(args: ScanArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(args.config.as_deref())?;
    let library = lookout_loader::load_phrases(&config.scan)
        .map_err(|e| UsageError(format!("phrase libraries: {e}")))?;
    match args.command {
        Some(ScanCommand::Eval {
            files,
            heldout,
            model,
            min_severity,
            mistakes,
        }) => {
            let mut samples = crate::scan_model::read_corpora(&files)?;
            if heldout {
                samples.extend(lookout_model::corpus::heldout());
            }
            eval(&config, &library, &samples, min_severity, mistakes, model)
        }
        Some(ScanCommand::Train {
            corpus,
            no_builtin,
            false_alarms,
            out,
            cv,
            epochs,
            l2,
            sparse_scale,
            learning_rate,
        }) => {
            let params = lookout_model::Params {
                epochs,
                l2,
                sparse_scale,
                learning_rate,
                ..lookout_model::Params::default()
            };
            let false_alarms = match false_alarms {
                None => Vec::new(),
                Some(days) => {
                    let found = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
                    let sink = found.clone();
                    crate::serve::with_store(args.config.as_deref(), |_, store| async move {
                        let since = lookout_store::now_ms() - days * 86_400_000;
                        let texts = store.false_alarms(since).await?;
                        *sink.lock().expect("not poisoned") =
                            texts.into_iter().map(|(_, _, t)| t).collect();
                        Ok(ExitCode::SUCCESS)
                    })?;
                    let found = std::mem::take(&mut *found.lock().expect("not poisoned"));
                    crate::scan_model::false_alarm_samples(found)
                }
            };
            let scanner = library.compile()?;
            crate::scan_model::train(
                &config,
                &scanner,
                crate::scan_model::TrainArgs {
                    corpus,
                    no_builtin,
                    false_alarms,
                    out,
                    cv,
                    params,
                },
            )
        }
        Some(ScanCommand::Stats) => {
            let (rules, exceptions) = library.len();
            println!("{rules} rules, {exceptions} exceptions");
            for (risk, language, n) in library.stats() {
                println!("{:<18} {:<11} {n:>4}", risk.slug(), language);
            }
            Ok(ExitCode::SUCCESS)
        }
        None => {
            let Some(text) = args.text else {
                return Err(UsageError(
                    "give a text to scan, `-` for standard input, or `eval FILE`".into(),
                )
                .into());
            };
            let text = if text == "-" {
                let mut s = String::new();
                std::io::stdin()
                    .read_to_string(&mut s)
                    .context("reading standard input")?;
                s
            } else {
                text
            };
            if args.model {
                return crate::scan_model::scan_one(&config, &library.compile()?, &text, args.json);
            }
            scan(&library, &text, args.json, args.normalized)
        }
    }
}

fn scan(library: &Library, text: &str, json: bool, normalized: bool) -> anyhow::Result<ExitCode> {
    let scanner = library.compile()?;
    let findings = scanner.scan(text);
    if normalized {
        println!("normalised: {}", normalize(text));
    }
    if json {
        println!(
            "{}",
            serde_json::Value::Array(findings.iter().map(finding_json).collect())
        );
        return Ok(ExitCode::SUCCESS);
    }
    if findings.is_empty() {
        println!("no findings");
    }
    for f in &findings {
        println!(
            "{:<8} {} ({}, {}) score {}",
            f.severity,
            f.risk.label(),
            f.risk.slug(),
            f.risk.area().slug(),
            f.score
        );
        for m in &f.matches {
            let times = if m.count > 1 {
                format!(" ×{}", m.count)
            } else {
                String::new()
            };
            println!(
                "  {:<8} {:>4}  \"{}\"{times}  rule `{}` ({})",
                m.severity, m.weight, m.evidence, m.phrase, m.source
            );
            println!("                 context: {}", m.context);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A finding as JSON (also the shape the alert pipeline stores).
pub(crate) fn finding_json(f: &Finding) -> serde_json::Value {
    serde_json::json!({
        "category": f.risk.slug(),
        "area": f.risk.area().slug(),
        "severity": f.severity.slug(),
        "score": f.score,
        "matches": f.matches.iter().map(|m| serde_json::json!({
            "rule": m.phrase,
            "source": m.source,
            "language": m.language,
            "severity": m.severity.slug(),
            "weight": m.weight,
            "evidence": m.evidence,
            "context": m.context,
            "start": m.start,
            "end": m.end,
            "count": m.count,
        })).collect::<Vec<_>>(),
    })
}

fn eval(
    config: &lookout_config::Config,
    library: &Library,
    samples: &[lookout_scan::Sample],
    min_severity: Severity,
    mistakes: bool,
    model: bool,
) -> anyhow::Result<ExitCode> {
    let scanner = library.compile()?;
    let ev = if model {
        crate::scan_model::eval(config, &scanner, samples, min_severity)?
    } else {
        let ev = evaluate(&scanner, samples, min_severity);
        println!("counting findings of severity {min_severity} and above");
        print!("{ev}");
        ev
    };
    if mistakes {
        println!("\nmistakes:");
        for (i, said) in &ev.mistakes {
            let s = &samples[*i];
            let want = if s.labels.is_empty() {
                "none".to_owned()
            } else {
                let labels: Vec<_> = s.labels.iter().map(|(r, v)| format!("{r}:{v}")).collect();
                labels.join(",")
            };
            println!(
                "  {}:{:<4} want {want:<26} got {said:<26} {}",
                s.file, s.line, s.text
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
