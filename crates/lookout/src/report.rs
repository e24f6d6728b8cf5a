//! `lookout report board`: the Board's e-safety report as a self-contained HTML file (charts
//! included, ready to print), the same page the console shows at `/reports/board`; and
//! `lookout retention purge`: the daily purge, now; and `lookout privacy export`: everything
//! held about a person.

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

#[derive(Subcommand)]
pub(crate) enum PrivacyCommand {
    /// Everything Lookout holds about USER, for a subject access request: USER-data.json and
    /// USER-data.html in the --out folder (for the data protection officer to review before
    /// release). Audited.
    Export {
        /// The person's user name.
        user: String,
        /// The folder to write into (created if missing).
        #[arg(long)]
        out: PathBuf,
    },
}

pub(crate) fn privacy(
    config: Option<&std::path::Path>,
    command: PrivacyCommand,
) -> anyhow::Result<ExitCode> {
    let PrivacyCommand::Export { user, out } = command;
    with_store(config, |_config, store| async move {
        let held = match store.person_data(&user).await {
            Ok(h) => h,
            Err(lookout_store::UserError::NotFound(_) | lookout_store::UserError::BadName(_)) => {
                return Err(UsageError(format!("there is no user called `{user}`")).into())
            }
            Err(e) => return Err(e.into()),
        };
        let username = lookout_store::normalize_username(&user)?;
        let now = lookout_store::now_ms();
        std::fs::create_dir_all(&out)
            .with_context(|| format!("cannot create {}", out.display()))?;
        let json = out.join(format!("{username}-data.json"));
        let html = out.join(format!("{username}-data.html"));
        std::fs::write(
            &json,
            serde_json::to_string_pretty(&lookout_console::privacy_json(&username, &held, now))?,
        )
        .with_context(|| format!("cannot write {}", json.display()))?;
        std::fs::write(&html, lookout_console::privacy_html(&username, &held, now))
            .with_context(|| format!("cannot write {}", html.display()))?;
        store
            .audit(
                &AuditEntry::new(
                    &crate::users::cli_actor(),
                    "privacy.export",
                    format!("user:{username}"),
                )
                .detail(format!("written to {}", out.display())),
            )
            .await?;
        let rows: usize = held.iter().map(|h| h.rows.len()).sum();
        println!(
            "{rows} record(s) about {username} in {} and {}; review before release (safeguarding records may be withheld)",
            json.display(),
            html.display()
        );
        Ok(ExitCode::SUCCESS)
    })
}
