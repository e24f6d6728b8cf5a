//! The `lookout` command: wires the engines to the command line.

#![warn(clippy::unwrap_used)]

mod activity;
mod audit;
mod backup;
mod check;
mod lists;
mod metrics;
mod monitoring;
mod report;
mod scan;
mod scan_model;
mod serve;
mod siem;
mod site;
mod stats;
mod users;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use lookout_config::Config;

/// jemalloc rather than the C library's malloc: see "Dependencies and why" in ARCHITECTURE.md.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Lookout: e-safety filtering, monitoring and safeguarding for colleges and schools.
#[derive(Parser)]
#[command(name = "lookout", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway: the HTTP/HTTPS proxy, the DNS filter and the activity log.
    Serve(serve::ServeArgs),
    /// Decide allow / warn / block for URLs as a group would see them.
    Check(check::CheckArgs),
    /// A consistent, checked copy of the database, taken while `serve` runs.
    Backup(backup::BackupArgs),
    /// Put a backup back (with `serve` stopped); the current database is moved aside.
    Restore(backup::RestoreArgs),
    /// Category lists: statistics and the taxonomy.
    Lists {
        #[command(subcommand)]
        command: ListsCommand,
    },
    /// The configuration file.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Users the proxy signs people in as.
    User {
        /// Configuration file (for the data folder and the group names).
        #[arg(long, short, global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        command: users::UserCommand,
    },
    /// Scan text for risk (suicide, self-harm, grooming, extremism...) as the monitoring
    /// does, or measure the phrase libraries against a labelled corpus (`scan eval`).
    Scan(scan::ScanArgs),
    /// API tokens: for monitoring agents (`ingest`) and safeguarding tools (`alerts`).
    Token {
        /// Configuration file (for the data folder and the group names).
        #[arg(long, short, global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        command: monitoring::TokenCommand,
    },
    /// Alerts raised by the monitoring.
    Alerts {
        /// Configuration file (for the data folder and the email settings).
        #[arg(long, short, global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        command: monitoring::AlertsCommand,
    },
    /// The console's audit log: every sign-in, view and change, hash-chained.
    Audit {
        /// Configuration file (for the data folder).
        #[arg(long, short, global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        command: audit::AuditCommand,
    },
    /// Routine DSL checks, signed and co-signed.
    Checks {
        /// Configuration file (for the data folder).
        #[arg(long, short, global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        command: audit::ChecksCommand,
    },
    /// Incident exports shared with authorities.
    Export {
        #[command(subcommand)]
        command: audit::ExportCommand,
    },
    /// Reports: `report board` writes the Board's e-safety report (HTML with charts).
    Report {
        /// Configuration file (for the data folder and the organisation's name).
        #[arg(long, short, global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        command: report::ReportCommand,
    },
    /// How long records are kept: `retention purge` runs the daily purge now.
    Retention {
        /// Configuration file (for the data folder and `[retention]`).
        #[arg(long, short, global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        command: report::RetentionCommand,
    },
    /// Subject access: `privacy export USER` writes everything held about a person.
    Privacy {
        /// Configuration file (for the data folder).
        #[arg(long, short, global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        command: report::PrivacyCommand,
    },
    /// The activity log.
    Log {
        /// Configuration file (for the data folder).
        #[arg(long, short, global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        command: activity::LogCommand,
    },
}

#[derive(Subcommand)]
enum ListsCommand {
    /// Load the configured lists and print per-source and per-category counts, rejected
    /// lines, load time and index memory.
    Stats {
        /// Configuration file.
        #[arg(long, short)]
        config: PathBuf,
        /// Fail on any malformed list line (overrides `lists.strict`).
        #[arg(long)]
        strict: bool,
    },
    /// Print Lookout's categories and the default UT1 / Block List Project mapping.
    Categories,
    /// Download the list sources that have a `url` now (when the server has a newer copy)
    /// and check each before it replaces the copy in use.
    Update {
        /// Configuration file.
        #[arg(long, short)]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print a complete, commented example configuration.
    Example,
    /// Validate a configuration file, naming the key and line of every mistake, and check
    /// that its lists can be read.
    Check {
        /// Configuration file.
        file: PathBuf,
    },
}

/// A mistake in how Lookout was called or configured: exit code 2.
#[derive(Debug)]
pub(crate) struct UsageError(pub(crate) String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let format = match &cli.command {
        Command::Serve(args) => args.log_format,
        _ => serve::LogFormat::Text,
    };
    messages(format);
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            let usage = e.downcast_ref::<UsageError>().is_some()
                || e.downcast_ref::<lookout_config::ConfigError>().is_some();
            ExitCode::from(if usage { 2 } else { 1 })
        }
    }
}

/// Where Lookout's own messages (and its libraries' warnings) go: standard error, as the plain
/// lines people read, or JSON lines. `LOOKOUT_LOG` overrides the levels (e.g. `debug`).
fn messages(format: serve::LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("LOOKOUT_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,hyper=warn,h2=warn,rustls=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false);
    let _ = match format {
        serve::LogFormat::Text => builder
            .without_time()
            .with_level(false)
            .with_target(false)
            .try_init(),
        serve::LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Check(args) => check::run(args),
        Command::Backup(args) => backup::backup(args),
        Command::Restore(args) => backup::restore(args),
        Command::Serve(args) => serve::run(args),
        Command::Scan(args) => scan::run(args),
        Command::User { config, command } => users::run(config.as_deref(), command),
        Command::Log { config, command } => activity::run(config.as_deref(), command),
        Command::Report { config, command } => report::run(config.as_deref(), command),
        Command::Retention { config, command } => report::retention(config.as_deref(), command),
        Command::Privacy { config, command } => report::privacy(config.as_deref(), command),
        Command::Audit { config, command } => audit::run(config.as_deref(), command),
        Command::Checks { config, command } => audit::checks(config.as_deref(), command),
        Command::Export { command } => audit::export(command),
        Command::Token { config, command } => monitoring::tokens(config.as_deref(), command),
        Command::Alerts { config, command } => monitoring::alerts(config.as_deref(), command),
        Command::Lists {
            command: ListsCommand::Stats { config, strict },
        } => {
            let mut config = load_config(Some(&config))?;
            config.lists.strict |= strict;
            stats::run(&config)
        }
        Command::Lists {
            command: ListsCommand::Update { config },
        } => lists::update(config),
        Command::Lists {
            command: ListsCommand::Categories,
        } => {
            stats::categories();
            Ok(ExitCode::SUCCESS)
        }
        Command::Config {
            command: ConfigCommand::Example,
        } => {
            print!("{}", lookout_config::EXAMPLE);
            Ok(ExitCode::SUCCESS)
        }
        Command::Config {
            command: ConfigCommand::Check { file },
        } => {
            let config = load_config(Some(&file))?;
            config.policy()?;
            // A list that cannot be read is a mistake in the configuration too.
            let loaded = lists::load_available(&config.lists, None)
                .map_err(|e| UsageError(format!("configuration {}: {e}", file.display())))?;
            println!(
                "{}: OK ({} list source(s) in {} file(s), {} entries, {} group(s))",
                file.display(),
                config.lists.sources.len(),
                loaded.files.len(),
                loaded.accepted(),
                config.groups.len()
            );
            if loaded.rejected() > 0 {
                println!(
                    "warning: {} malformed list line(s) will be skipped; `lookout lists stats` shows where",
                    loaded.rejected()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Reads and validates the configuration, or the built-in defaults without a file.
pub(crate) fn load_config(path: Option<&Path>) -> anyhow::Result<Config> {
    match path {
        Some(p) => Config::load(p).with_context(|| format!("configuration {}", p.display())),
        None => Ok(Config::default()),
    }
}
