//! `lookout audit ...`: read and verify the hash-chained audit log.

use std::process::ExitCode;

use clap::Subcommand;
use lookout_store::AuditFilter;

use crate::serve::with_store;

#[derive(Subcommand)]
pub(crate) enum AuditCommand {
    /// Check the whole chain: exits 1, naming each row, if any row was edited, deleted or
    /// reordered outside Lookout.
    Verify,
    /// Print entries, newest first.
    List {
        /// Only this person's actions.
        #[arg(long)]
        actor: Option<String>,
        /// Only actions starting with this (e.g. `sign-in`, `alert.`).
        #[arg(long)]
        action: Option<String>,
        /// Only actions on this (e.g. `alert:12`, `user:jo`).
        #[arg(long)]
        target: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
}

pub(crate) fn run(
    config: Option<&std::path::Path>,
    command: AuditCommand,
) -> anyhow::Result<ExitCode> {
    with_store(config, |_config, store| async move {
        match command {
            AuditCommand::Verify => {
                let v = store.verify_audit().await?;
                let head = v.head.as_ref().map_or_else(String::new, |(seq, hash)| {
                    format!("; last entry #{seq}, fingerprint {hash}")
                });
                if v.problems.is_empty() {
                    println!(
                        "audit log intact: {} entries in order and unaltered{head}",
                        v.rows
                    );
                    return Ok(ExitCode::SUCCESS);
                }
                println!(
                    "audit log ALTERED: {} problem(s) in {} entries{head}",
                    v.problems.len(),
                    v.rows
                );
                for p in &v.problems {
                    println!("  {p}");
                }
                Ok(ExitCode::FAILURE)
            }
            AuditCommand::List {
                actor,
                action,
                target,
                limit,
            } => {
                let rows = store
                    .audit_log(&AuditFilter {
                        actor,
                        action,
                        target,
                        before_seq: None,
                        limit: Some(limit),
                    })
                    .await?;
                for r in &rows {
                    let at = chrono::DateTime::from_timestamp_millis(r.at_ms)
                        .map_or_else(String::new, |t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string());
                    println!(
                        "{:>6} {at} {:<16} {:<24} {:<16} {} {}",
                        r.seq, r.actor, r.action, r.target, r.client_ip, r.detail
                    );
                }
                Ok(ExitCode::SUCCESS)
            }
        }
    })
}

#[derive(Subcommand)]
pub(crate) enum ChecksCommand {
    /// Verify every routine check: both signatures against the signers' keys, the chain of
    /// checks, and the audit log entry each check recorded. Exits 1, naming each problem.
    Verify,
    /// List checks, newest first.
    List,
}

pub(crate) fn checks(
    config: Option<&std::path::Path>,
    command: ChecksCommand,
) -> anyhow::Result<ExitCode> {
    with_store(config, |_config, store| async move {
        match command {
            ChecksCommand::Verify => {
                let (n, problems) = store.verify_checks().await?;
                if problems.is_empty() {
                    println!("checks intact: {n} check(s), every signature valid and in order");
                    return Ok(ExitCode::SUCCESS);
                }
                println!(
                    "checks ALTERED: {} problem(s) in {n} check(s)",
                    problems.len()
                );
                for p in &problems {
                    println!("  {p}");
                }
                Ok(ExitCode::FAILURE)
            }
            ChecksCommand::List => {
                for c in store.checks(1000).await? {
                    println!(
                        "{:>5} {} signed by {:<16} co-signed by {}",
                        c.id,
                        crate::activity::when(c.signed_ms),
                        c.dsl,
                        c.supervisor.as_deref().unwrap_or("(waiting)")
                    );
                }
                Ok(ExitCode::SUCCESS)
            }
        }
    })
}

#[derive(Subcommand)]
pub(crate) enum ExportCommand {
    /// Check an incident export (.json or .html): the signature must match the document, and
    /// a page's readable part must match its signed data. With `--config`, also checks that
    /// the key is the signer's in this Lookout's database.
    Verify {
        /// The exported file.
        file: std::path::PathBuf,
        /// Configuration file: check the key against this installation's database.
        #[arg(long, short)]
        config: Option<std::path::PathBuf>,
    },
}

pub(crate) fn export(command: ExportCommand) -> anyhow::Result<ExitCode> {
    let ExportCommand::Verify { file, config } = command;
    let text = std::fs::read_to_string(&file)
        .map_err(|e| crate::UsageError(format!("{}: {e}", file.display())))?;
    let check = match lookout_console::verify_export(&text) {
        Ok(c) => c,
        Err(e) => {
            println!("{}: NOT VALID: {e}", file.display());
            return Ok(ExitCode::FAILURE);
        }
    };
    let at = crate::activity::when(check.exported_ms);
    println!(
        "{}: signature valid: incident {} exported {at} by {}, key {}",
        file.display(),
        check.reference,
        check.signer,
        check.public_key
    );
    let Some(config) = config else {
        println!("(the key was not checked against a Lookout database: pass --config to do so)");
        return Ok(ExitCode::SUCCESS);
    };
    with_store(Some(&config), |_config, store| async move {
        match store.signing_key_by_id(check.key_id).await? {
            Some(k) if k.username == check.signer && k.key.public == check.public_key => {
                println!("the key is {}'s in this Lookout's database", check.signer);
                Ok(ExitCode::SUCCESS)
            }
            _ => {
                println!(
                    "NOT VALID: the key is not {}'s in this Lookout's database",
                    check.signer
                );
                Ok(ExitCode::FAILURE)
            }
        }
    })
}
