//! `lookout report board`: the Board's e-safety report as a self-contained HTML file (charts
//! included, ready to print), the same page the console shows at `/reports/board`; and
//! `lookout retention purge`: the daily purge, now.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Subcommand;
use lookout_store::AuditEntry;

use crate::serve::with_store;
use crate::UsageError;

#[derive(Subcommand)]
pub(crate) enum ReportCommand {
    /// Write the report for the Board and the Head of IT: filtering, monitoring, incidents,
    /// routine checks and briefing uptake. Counts only, never names.
    Board {
        /// First day, YYYY-MM-DD.
        #[arg(long)]
        from: String,
        /// Last day (included), YYYY-MM-DD.
        #[arg(long)]
        to: String,
        /// The HTML file to write (open it in a browser, or print it to PDF).
        #[arg(long)]
        out: PathBuf,
    },
}

pub(crate) fn run(
    config: Option<&std::path::Path>,
    command: ReportCommand,
) -> anyhow::Result<ExitCode> {
    let ReportCommand::Board { from, to, out } = command;
    let day = |s: &str, flag: &str| {
        lookout_console::parse_day(s).ok_or_else(|| {
            UsageError(format!(
                "--{flag} `{s}` is not a date: use YYYY-MM-DD, e.g. 2026-09-01"
            ))
        })
    };
    let from_ms = day(&from, "from")?;
    let to_ms = day(&to, "to")? + 86_400_000;
    if from_ms >= to_ms {
        return Err(UsageError(format!("--from {from} is after --to {to}")).into());
    }
    with_store(config, |config, store| async move {
        let figures = store.board_figures(from_ms, to_ms).await?;
        let html = lookout_console::board_html(
            &figures,
            &config.console.organisation,
            from_ms,
            to_ms,
            lookout_store::now_ms(),
        );
        std::fs::write(&out, html).with_context(|| format!("cannot write {}", out.display()))?;
        store
            .audit(
                &AuditEntry::new(&crate::users::cli_actor(), "report.board", "report")
                    .detail(format!("{from} to {to}, written to {}", out.display())),
            )
            .await?;
        println!(
            "Board report for {from} to {to} written to {}",
            out.display()
        );
        Ok(ExitCode::SUCCESS)
    })
}

#[derive(Subcommand)]
pub(crate) enum RetentionCommand {
    /// Delete now what `[retention]` says is past its time (`serve` does this daily), except
    /// anything under a legal hold; prints and audits the counts.
    Purge,
}

pub(crate) fn retention(
    config: Option<&std::path::Path>,
    command: RetentionCommand,
) -> anyhow::Result<ExitCode> {
    let RetentionCommand::Purge = command;
    with_store(config, |config, store| async move {
        let purged = store
            .purge(
                &crate::serve::retention(&config),
                lookout_store::now_ms(),
                2000,
                std::time::Duration::from_millis(20),
            )
            .await?;
        println!("deleted {purged}");
        Ok(ExitCode::SUCCESS)
    })
}
