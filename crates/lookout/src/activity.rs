//! `lookout log tail/search`: the activity log, read back.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use chrono::{Local, NaiveDateTime, TimeZone};
use clap::{Args, Subcommand};
use lookout_store::{EventFilter, StoredEvent};

use crate::UsageError;

#[derive(Subcommand)]
pub(crate) enum LogCommand {
    /// The latest events, oldest first; `--follow` keeps printing new ones.
    Tail {
        /// How many.
        #[arg(short = 'n', long, default_value_t = 20)]
        lines: u32,
        /// Keep printing new events until interrupted.
        #[arg(long, short)]
        follow: bool,
        /// Print JSON lines.
        #[arg(long)]
        json: bool,
    },
    /// Events matching every given condition, newest first.
    Search(Box<SearchArgs>),
}

#[derive(Args)]
pub(crate) struct SearchArgs {
    /// User name.
    #[arg(long)]
    user: Option<String>,
    /// Client address.
    #[arg(long)]
    ip: Option<String>,
    /// allow, warn, block or continue.
    #[arg(long)]
    action: Option<String>,
    /// Host, or any subdomain of it.
    #[arg(long)]
    host: Option<String>,
    /// Text in the URL or search term.
    #[arg(long)]
    text: Option<String>,
    /// Category slug, e.g. gambling.
    #[arg(long)]
    category: Option<String>,
    /// Block page reference, e.g. LK-7Q2M-X9KD.
    #[arg(long)]
    reference: Option<String>,
    /// Forwarded by this site gateway (its token's name).
    #[arg(long)]
    site: Option<String>,
    /// From: "YYYY-MM-DD", "YYYY-MM-DD HH:MM" (local time), or an age like 30m, 2h, 7d.
    #[arg(long)]
    since: Option<String>,
    /// Before: same forms as --since.
    #[arg(long)]
    until: Option<String>,
    /// The most events.
    #[arg(long, default_value_t = 100)]
    limit: u32,
    /// Print JSON lines.
    #[arg(long)]
    json: bool,
}

/// Milliseconds since the epoch of a local date/time or an age before now.
fn parse_when(s: &str) -> Option<i64> {
    let s = s.trim();
    let now = lookout_store::now_ms();
    if let Some(n) = s.strip_suffix('m').and_then(|n| n.parse::<i64>().ok()) {
        return Some(now - n * 60_000);
    }
    if let Some(n) = s.strip_suffix('h').and_then(|n| n.parse::<i64>().ok()) {
        return Some(now - n * 3_600_000);
    }
    if let Some(n) = s.strip_suffix('d').and_then(|n| n.parse::<i64>().ok()) {
        return Some(now - n * 86_400_000);
    }
    let naive = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M")
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M"))
        .or_else(|_| NaiveDateTime::parse_from_str(&format!("{s} 00:00"), "%Y-%m-%d %H:%M"))
        .ok()?;
    Local
        .from_local_datetime(&naive)
        .earliest()
        .map(|t| t.timestamp_millis())
}

pub(crate) fn when(ms: i64) -> String {
    Local.timestamp_millis_opt(ms).single().map_or_else(
        || ms.to_string(),
        |t| t.format("%Y-%m-%d %H:%M:%S").to_string(),
    )
}

fn print(stored: &StoredEvent, json: bool) {
    let e = &stored.event;
    if json {
        let v = serde_json::json!({
            "time": when(e.at_ms),
            "site": stored.site,
            "at_ms": e.at_ms,
            "reference": e.reference,
            "service": e.service,
            "client_ip": e.client_ip,
            "user": e.username,
            "group": e.group,
            "method": e.method,
            "url": e.url,
            "host": e.host,
            "search_term": e.search_term,
            "categories": e.categories.split(',').filter(|c| !c.is_empty()).collect::<Vec<_>>(),
            "action": e.action,
            "rule": e.rule,
            "reason": e.reason,
            "status": e.status,
            "bytes": e.bytes,
        });
        println!("{v}");
        return;
    }
    let mut who = match &e.username {
        Some(u) => format!("{u}@{}", e.client_ip),
        None => e.client_ip.clone(),
    };
    if let Some(site) = &stored.site {
        who = format!("{who} ({site})");
    }
    let mut line = format!(
        "{}  {:<8} {:<5} {:<13} {:<22} {} {}",
        when(e.at_ms),
        e.action,
        e.service,
        e.group,
        who,
        e.method,
        e.url
    );
    if let Some(term) = &e.search_term {
        line.push_str(&format!("  search=\"{term}\""));
    }
    if !e.categories.is_empty() {
        line.push_str(&format!("  [{}]", e.categories));
    }
    if e.action != "allow" {
        line.push_str(&format!("  {}", e.reason));
    }
    if !e.reference.is_empty() {
        line.push_str(&format!("  {}", e.reference));
    }
    println!("{line}");
}

pub(crate) fn run(config_path: Option<&Path>, command: LogCommand) -> anyhow::Result<ExitCode> {
    crate::serve::with_store(config_path, |_config, store| async move {
        match command {
            LogCommand::Tail {
                lines,
                follow,
                json,
            } => {
                let mut events = store
                    .events(&EventFilter {
                        limit: Some(lines),
                        ..EventFilter::default()
                    })
                    .await?;
                events.reverse();
                let mut last = events.last().map_or(0, |e| e.id);
                for e in &events {
                    print(e, json);
                }
                // With --follow, runs until interrupted (Ctrl-C ends the process).
                if follow {
                    loop {
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        let mut new = store
                            .events(&EventFilter {
                                after_id: Some(last),
                                limit: Some(10_000),
                                ..EventFilter::default()
                            })
                            .await?;
                        new.reverse();
                        for e in &new {
                            print(e, json);
                            last = e.id;
                        }
                    }
                }
            }
            LogCommand::Search(a) => {
                let time = |s: &Option<String>, key: &str| -> anyhow::Result<Option<i64>> {
                    s.as_deref()
                        .map(|v| {
                            parse_when(v).ok_or_else(|| {
                                UsageError(format!("--{key} `{v}`: use YYYY-MM-DD, \"YYYY-MM-DD HH:MM\" or an age like 30m, 2h, 7d")).into()
                            })
                        })
                        .transpose()
                };
                let filter = EventFilter {
                    since_ms: time(&a.since, "since")?,
                    until_ms: time(&a.until, "until")?,
                    username: a.user,
                    client_ip: a.ip,
                    action: a.action,
                    reference: a.reference,
                    host: a.host,
                    text: a.text,
                    category: a.category,
                    site: a.site,
                    limit: Some(a.limit),
                    after_id: None,
                };
                let events = store.events(&filter).await?;
                for e in &events {
                    print(e, a.json);
                }
                if !a.json {
                    eprintln!("{} event(s)", events.len());
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
