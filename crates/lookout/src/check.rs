//! `lookout check`: one decision per URL, for people (a line each) or programs (`--json`).

use std::io::{BufRead, BufReader, BufWriter, Read, Write};
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
    /// Fail on any malformed list line (overrides `lists.strict`).
    #[arg(long)]
    strict: bool,
    /// Print one JSON object per line.
    #[arg(long)]
    json: bool,
    /// Decide as at this local time, e.g. `fri 17:30` (default: now).
    #[arg(long, value_name = "DAY HH:MM")]
    at: Option<String>,
    /// Threads deciding on standard input (default: one per core).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// URLs or hosts; `-` reads one request a line from standard input (the first word of
    /// each line, so squidGuard-style `URL ip/fqdn ident method` lines work too).
    #[arg(required = true)]
    urls: Vec<String>,
}

pub(crate) fn run(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let mut config = crate::load_config(args.config.as_deref())?;
    config.lists.strict |= args.strict;
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
    let loaded = crate::lists::load_available(&config.lists)?;
    if loaded.rejected() > 0 {
        eprintln!(
            "warning: {} malformed list line(s) skipped; `lookout lists stats` shows where",
            loaded.rejected()
        );
    }
    let out = std::io::stdout();
    let mut out = BufWriter::with_capacity(1 << 16, out.lock());
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let checker = Checker {
        policy: &policy,
        index: &loaded.index,
        group,
        at,
        json: args.json,
    };
    let mut url = NormUrl::default();
    let mut buf = Vec::new();
    for arg in &args.urls {
        if arg == "-" {
            // Big enough that a batch from a file or pipe is worth spreading over cores.
            let stdin = BufReader::with_capacity(1 << 20, std::io::stdin().lock());
            checker.stream(stdin, threads, &mut out)?;
        } else {
            buf.clear();
            checker.check(arg, &mut url, &mut buf)?;
            out.write_all(&buf)?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// Most lines decided in one batch.
const BATCH: usize = 16 * 1024;

#[derive(Clone, Copy)]
struct Checker<'a> {
    policy: &'a Policy,
    index: &'a Index,
    group: GroupId,
    at: LocalTime,
    json: bool,
}

impl Checker<'_> {
    /// Decides on one request and appends its line to `out`.
    fn check(&self, input: &str, url: &mut NormUrl, out: &mut Vec<u8>) -> std::io::Result<()> {
        let decision = match url.parse_into(input) {
            Ok(()) => self.policy.decide(self.index, self.group, url, self.at),
            Err(e) => Policy::decide_invalid(e),
        };
        if self.json {
            serde_json::to_writer(&mut *out, &json(input, &decision))?;
            out.push(b'\n');
            return Ok(());
        }
        let action = decision.action.as_str();
        out.extend_from_slice(action.as_bytes());
        out.extend_from_slice(&b"      "[..6 - action.len().min(5)]);
        out.extend_from_slice(input.as_bytes());
        out.extend_from_slice(b" [");
        for (i, c) in decision.categories.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(c.slug().as_bytes());
        }
        writeln!(out, "] {}", decision.reason)
    }

    /// Decides on every line of `input`, in batches spread over `threads`, writing the answers
    /// in input order. A batch ends when no more input is buffered, so a caller feeding one
    /// line at a time gets each answer at once.
    fn stream(
        &self,
        mut input: BufReader<impl Read>,
        threads: usize,
        out: &mut impl Write,
    ) -> anyhow::Result<()> {
        let mut bytes: Vec<u8> = Vec::new();
        let mut words: Vec<(usize, usize)> = Vec::new();
        let mut outputs: Vec<Vec<u8>> = vec![Vec::new(); threads];
        let mut urls: Vec<NormUrl> = vec![NormUrl::default(); threads];
        loop {
            bytes.clear();
            words.clear();
            let mut eof = false;
            let mut lines = 0;
            while lines < BATCH {
                if input
                    .read_until(b'\n', &mut bytes)
                    .context("reading standard input")?
                    == 0
                {
                    eof = true;
                    break;
                }
                lines += 1;
                // `buffer()` looks without reading (`fill_buf` would wait for the next line).
                if input.buffer().is_empty() {
                    break; // nothing more is waiting: answer what we have
                }
            }
            // Bytes that are not UTF-8 read as U+FFFD (the line is still answered, as an
            // invalid URL where the host holds them), never a reason to stop the stream. The
            // strict check first: it is the fast one, and input almost always passes it.
            let text = match std::str::from_utf8(&bytes) {
                Ok(t) => std::borrow::Cow::Borrowed(t),
                Err(_) => String::from_utf8_lossy(&bytes),
            };
            let mut start = 0;
            for end in memchr::memchr_iter(b'\n', text.as_bytes()).chain([text.len()]) {
                let line = &text[start..end];
                if let Some(word) = line.split_whitespace().next() {
                    let offset = start + (word.as_ptr() as usize - line.as_ptr() as usize);
                    words.push((offset, offset + word.len()));
                }
                start = (end + 1).min(text.len());
            }
            let batch: Vec<&str> = words.iter().map(|&(a, b)| &text[a..b]).collect();
            let parts = if batch.len() >= 2048 { threads } else { 1 };
            let chunk = batch.len().div_ceil(parts).max(1);
            let used = batch.len().div_ceil(chunk);
            std::thread::scope(|scope| -> std::io::Result<()> {
                let mut jobs = Vec::new();
                for ((lines, buf), url) in batch
                    .chunks(chunk)
                    .zip(outputs.iter_mut())
                    .zip(urls.iter_mut())
                {
                    buf.clear();
                    let checker = *self;
                    jobs.push(
                        scope.spawn(move || {
                            lines.iter().try_for_each(|l| checker.check(l, url, buf))
                        }),
                    );
                }
                for job in jobs {
                    job.join()
                        .map_err(|_| std::io::Error::other("a deciding thread panicked"))??;
                }
                Ok(())
            })?;
            for buf in &outputs[..used] {
                out.write_all(buf)?;
            }
            out.flush()?;
            if eof {
                return Ok(());
            }
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
        "source": matched.map(|m| &*m.source),
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

pub(crate) fn now() -> LocalTime {
    let now = chrono::Local::now();
    LocalTime {
        weekday: Weekday::from_monday0(now.weekday().num_days_from_monday()),
        minute: (now.hour() * 60 + now.minute()) as u16,
    }
}
