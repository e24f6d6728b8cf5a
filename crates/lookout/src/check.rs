//! `lookout check`: one decision per URL, for people (a line each) or programs (`--json`).

use std::io::{BufRead, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use chrono::{Datelike, Timelike};
use lookout_lists::{Index, NormUrl};
use lookout_policy::{Decision, GroupId, LocalTime, Policy, Reason, Weekday};

use crate::UsageError;

#[derive(clap::Args)]
pub(crate) struct CheckArgs {
    /// Configuration file (default: built-in groups, no lists).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// The group asking, e.g. `learners-u18`.
    #[arg(long, short)]
    group: String,
    /// Print one JSON object per line.
    #[arg(long)]
    json: bool,
    /// Decide as at this local time, e.g. `fri 17:30` (default: now).
    #[arg(long, value_name = "DAY HH:MM")]
    at: Option<String>,
    /// URLs or hosts; `-` reads one request a line from standard input (the first word of
    /// each line, so squidGuard-style `URL ip/fqdn ident method` lines work too).
    #[arg(required = true)]
    urls: Vec<String>,
}

pub(crate) fn run(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let config = crate::load_config(args.config.as_deref())?;
    let policy = config.policy()?;
    let group = policy.group_id(&args.group).ok_or_else(|| {
        let names: Vec<&str> = policy.groups().iter().map(|g| g.name()).collect();
        UsageError(format!(
            "no group `{}`; the configured groups are: {}",
            args.group,
            names.join(", ")
        ))
    })?;
    let at = match &args.at {
        Some(s) => parse_at(s).ok_or_else(|| {
            UsageError(format!(
                "--at `{s}`: expected a day and a time, e.g. `fri 17:30`"
            ))
        })?,
        None => now(),
    };
    let loaded = lookout_loader::load(&config.lists)?;
    if loaded.rejected() > 0 {
        eprintln!(
            "warning: {} malformed list line(s) skipped; `lookout lists stats` shows where",
            loaded.rejected()
        );
    }
    let out = std::io::stdout();
    let mut out = BufWriter::with_capacity(1 << 16, out.lock());
    let mut checker = Checker {
        policy: &policy,
        index: &loaded.index,
        group,
        at,
        json: args.json,
        url: NormUrl::default(),
    };
    for arg in &args.urls {
        if arg == "-" {
            let stdin = std::io::stdin();
            let mut line = String::new();
            let mut input = stdin.lock();
            loop {
                line.clear();
                if input
                    .read_line(&mut line)
                    .context("reading standard input")?
                    == 0
                {
                    break;
                }
                if let Some(url) = line.split_whitespace().next() {
                    checker.check(url, &mut out)?;
                }
            }
        } else {
            checker.check(arg, &mut out)?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

struct Checker<'a> {
    policy: &'a Policy,
    index: &'a Index,
    group: GroupId,
    at: LocalTime,
    json: bool,
    url: NormUrl,
}

impl Checker<'_> {
    fn check(&mut self, input: &str, out: &mut impl Write) -> std::io::Result<()> {
        let decision = match self.url.parse_into(input) {
            Ok(()) => self
                .policy
                .decide(self.index, self.group, &self.url, self.at),
            Err(e) => Policy::decide_invalid(e),
        };
        if self.json {
            serde_json::to_writer(&mut *out, &json(input, &decision))?;
            out.write_all(b"\n")
        } else {
            let cats: Vec<&str> = decision.categories.iter().map(|c| c.slug()).collect();
            writeln!(
                out,
                "{:<5} {input} [{}] {}",
                decision.action,
                cats.join(","),
                decision.reason
            )
        }
    }
}

fn json(input: &str, d: &Decision) -> serde_json::Value {
    let category = match &d.reason {
        Reason::Illegal { category, .. } | Reason::Category { category, .. } => {
            Some(category.slug())
        }
        _ => None,
    };
    let schedule = match &d.reason {
        Reason::Category { schedule, .. } => schedule.clone(),
        _ => None,
    };
    let matched = d.reason.matched();
    serde_json::json!({
        "url": input,
        "action": d.action.as_str(),
        "categories": d.categories.iter().map(|c| c.slug()).collect::<Vec<_>>(),
        "reason": d.reason.to_string(),
        "rule": d.reason.rule(),
        "category": category,
        "source": matched.map(|m| m.source.as_str()),
        "entry": matched.map(|m| m.entry.as_str()),
        "schedule": schedule,
    })
}

fn parse_at(s: &str) -> Option<LocalTime> {
    let (day, time) = s.trim().split_once(' ')?;
    let minute = LocalTime::parse_hhmm(time)?;
    (minute < 1440).then_some(())?;
    Some(LocalTime {
        weekday: Weekday::parse(day)?,
        minute,
    })
}

fn now() -> LocalTime {
    let now = chrono::Local::now();
    LocalTime {
        weekday: Weekday::from_monday0(now.weekday().num_days_from_monday()),
        minute: (now.hour() * 60 + now.minute()) as u16,
    }
}
