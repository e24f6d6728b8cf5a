//! `lookout scan`: risk detection from the command line, for operators testing phrase lists
//! and for measuring a library against a labelled corpus.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use lookout_scan::{evaluate, normalize, parse_corpus, Finding, Library, Severity};

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
}

#[derive(Subcommand)]
enum ScanCommand {
    /// Measure the phrase libraries against labelled corpus files: precision, recall and
    /// false alerts per category, severity and language.
    Eval {
        /// Corpus files: `language<TAB>labels<TAB>text` lines, labels `none` or
        /// `category:severity[,...]`.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Findings below this severity are not counted as alerts.
        #[arg(long, default_value = "caution", value_parser = parse_severity)]
        min_severity: Severity,
        /// List every sample the libraries got wrong.
        #[arg(long)]
        mistakes: bool,
    },
    /// Rules loaded per category and language.
    Stats,
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
            min_severity,
            mistakes,
        }) => eval(&library, &files, min_severity, mistakes),
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
    library: &Library,
    files: &[PathBuf],
    min_severity: Severity,
    mistakes: bool,
) -> anyhow::Result<ExitCode> {
    let scanner = library.compile()?;
    let mut samples = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(f)
            .map_err(|e| UsageError(format!("cannot read corpus {}: {e}", f.display())))?;
        let name = f.display().to_string();
        samples.extend(parse_corpus(&name, &text).map_err(|e| UsageError(e.to_string()))?);
    }
    let ev = evaluate(&scanner, &samples, min_severity);
    println!("counting findings of severity {min_severity} and above");
    print!("{ev}");
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
