//! `lookout backup` and `lookout restore`: a consistent copy of the database taken while
//! `serve` runs, checked before it is called a backup, and put back only when it passes the
//! same checks, with the database it replaces moved aside (never deleted).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use lookout_store::Store;

use crate::serve::database_path;
use crate::UsageError;

#[derive(clap::Args)]
pub(crate) struct BackupArgs {
    /// Configuration file (for the data folder).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Where to write the copy; a file already there is never overwritten.
    #[arg(long)]
    out: PathBuf,
}

#[derive(clap::Args)]
pub(crate) struct RestoreArgs {
    /// Configuration file (for the data folder).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// The backup file (`lookout backup --out`).
    file: PathBuf,
    /// Move the current database aside (`lookout.db.before-restore-<time>`) and restore.
    #[arg(long)]
    replace: bool,
}

/// How a copy of the database checks out.
struct Verified {
    integrity: Vec<String>,
    audit: lookout_store::AuditVerification,
    checks: usize,
    check_problems: Vec<String>,
}

impl Verified {
    fn sound(&self) -> bool {
        self.integrity.is_empty()
            && self.audit.problems.is_empty()
            && self.check_problems.is_empty()
    }

    fn describe(&self) -> String {
        let mut lines = Vec::new();
        if self.integrity.is_empty() {
            lines.push("SQLite integrity check: ok".to_owned());
        } else {
            lines.push(format!(
                "SQLite integrity check FAILED: {}",
                self.integrity.join("; ")
            ));
        }
        let head = self
            .audit
            .head
            .as_ref()
            .map_or_else(String::new, |(seq, hash)| {
                format!(", last #{seq}, fingerprint {hash}")
            });
        if self.audit.problems.is_empty() {
            lines.push(format!(
                "audit log intact: {} entries{head}",
                self.audit.rows
            ));
        } else {
            lines.push(format!(
                "audit log ALTERED: {} problem(s) in {} entries{head}",
                self.audit.problems.len(),
                self.audit.rows
            ));
        }
        if self.check_problems.is_empty() {
            lines.push(format!("routine checks verified: {}", self.checks));
        } else {
            lines.push(format!(
                "routine checks: {} problem(s): {}",
                self.check_problems.len(),
                self.check_problems.join("; ")
            ));
        }
        lines.join("\n  ")
    }
}

/// Opens a copy of the database and runs every check on it.
async fn verify(path: &Path) -> anyhow::Result<Verified> {
    // Checked before opening: opening migrates, which would make any SQLite file (or an empty
    // one) a valid, empty Lookout database.
    if !Store::is_lookout_database(path)
        .await
        .with_context(|| format!("{} is not a Lookout database", path.display()))?
    {
        anyhow::bail!("{} is not a Lookout database", path.display());
    }
    let copy = Store::open(path)
        .await
        .with_context(|| format!("{} is not a Lookout database", path.display()))?;
    let result = async {
        let integrity = copy.integrity_problems().await?;
        let audit = copy.verify_audit().await?;
        let (checks, check_problems) = copy.verify_checks().await?;
        anyhow::Ok(Verified {
            integrity,
            audit,
            checks,
            check_problems,
        })
    }
    .await;
    copy.close().await;
    result.with_context(|| format!("checking {}", path.display()))
}

/// What `backup` and `restore` say when the records are on a PostgreSQL server.
const PG_BACKUP: &str = "the records are on PostgreSQL ([store] url): back them up with pg_dump and restore with pg_restore (lookout backup and restore copy the SQLite file)";

pub(crate) fn backup(args: BackupArgs) -> anyhow::Result<ExitCode> {
    if args.out.exists() {
        return Err(UsageError(format!(
            "--out {}: a file is already there, and a backup never overwrites one",
            args.out.display()
        ))
        .into());
    }
    let out = args.out;
    if crate::load_config(args.config.as_deref())?
        .store
        .url
        .is_some()
    {
        return Err(UsageError(PG_BACKUP.into()).into());
    }
    crate::serve::with_store(args.config.as_deref(), |_config, store| async move {
        // The copy holds everything the database does: readable by its owner only. SQLite
        // writes into an empty file made here with that mode.
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&out)
            .with_context(|| format!("creating the backup {}", out.display()))?;
        store
            .backup_to(&out)
            .await
            .with_context(|| format!("writing the backup {}", out.display()))?;
        let v = verify(&out).await?;
        let bytes = std::fs::metadata(&out).map_or(0, |m| m.len());
        if !v.sound() {
            println!(
                "backup written to {} ({:.1} MB) but it does NOT check out:\n  {}",
                out.display(),
                bytes as f64 / 1e6,
                v.describe()
            );
            return Ok(ExitCode::FAILURE);
        }
        println!(
            "backup written to {} ({:.1} MB), a consistent copy even while Lookout runs:\n  {}\nRestore it with `lookout restore {} --replace` while `lookout serve` is stopped.",
            out.display(),
            bytes as f64 / 1e6,
            v.describe(),
            out.display()
        );
        Ok(ExitCode::SUCCESS)
    })
}

pub(crate) fn restore(args: RestoreArgs) -> anyhow::Result<ExitCode> {
    let config = crate::load_config(args.config.as_deref())?;
    if config.store.url.is_some() {
        return Err(UsageError(PG_BACKUP.into()).into());
    }
    if !args.file.is_file() {
        return Err(UsageError(format!("{}: no such backup file", args.file.display())).into());
    }
    let db = database_path(&config);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        if db.exists() {
            let current = Store::open(&db).await?;
            let running = current.running_now(5_000).await;
            current.close().await;
            if let Some(alive) = running? {
                return Err(UsageError(format!(
                    "`lookout serve` is running on {} (its last heartbeat was {:.1} s ago): stop it, then restore",
                    db.display(),
                    (lookout_store::now_ms() - alive) as f64 / 1000.0
                ))
                .into());
            }
            if !args.replace {
                return Err(UsageError(format!(
                    "{} already holds a database: `--replace` moves it aside (nothing is deleted) and restores the backup",
                    db.display()
                ))
                .into());
            }
        }
        // Check a copy beside the database, so the backup file itself is never changed and
        // the swap below is a rename on one file system.
        let staging = sibling(&db, "restoring");
        remove_with_journal(&staging)?;
        std::fs::copy(&args.file, &staging).with_context(|| {
            format!("copying {} to {}", args.file.display(), staging.display())
        })?;
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&staging, std::fs::Permissions::from_mode(0o600))
                .with_context(|| format!("making {} private", staging.display()))?;
        }
        let checked = verify(&staging)
            .await
            .with_context(|| format!("{} is not a usable backup", args.file.display()));
        let v = match checked {
            Ok(v) if v.sound() => v,
            Ok(v) => {
                remove_with_journal(&staging)?;
                println!(
                    "{} does NOT check out; nothing was restored:\n  {}",
                    args.file.display(),
                    v.describe()
                );
                return Ok(ExitCode::FAILURE);
            }
            Err(e) => {
                remove_with_journal(&staging)?;
                return Err(e.context("nothing was restored"));
            }
        };
        // The files are moved only once the connections just closed are gone (see `settle`).
        settle(&staging).await;
        settle(&db).await;
        let aside = if db.exists() {
            let stamp = chrono::Local::now().format("%Y%m%d-%H%M%S");
            let aside = sibling(&db, &format!("before-restore-{stamp}"));
            rename_with_journal(&db, &aside)?;
            Some(aside)
        } else {
            None
        };
        rename_with_journal(&staging, &db)?;
        println!("restored {} to {}:\n  {}", args.file.display(), db.display(), v.describe());
        if let Some(aside) = aside {
            println!("the database it replaced is kept at {}", aside.display());
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// `lookout.db` → `lookout.db.<suffix>`.
fn sibling(db: &Path, suffix: &str) -> PathBuf {
    let mut name = db.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{suffix}"));
    db.with_file_name(name)
}

/// A database file and its write-ahead log and shared memory files, if any.
fn with_journal(path: &Path) -> [PathBuf; 3] {
    let mut wal = path.as_os_str().to_os_string();
    wal.push("-wal");
    let mut shm = path.as_os_str().to_os_string();
    shm.push("-shm");
    [path.to_owned(), wal.into(), shm.into()]
}

/// Waits (up to 2 s) for the write-ahead log and shared memory files of the database at
/// `path` to go. The last connection to close removes them, having written the log into the
/// database; but sqlx's `Pool::close` can return while a connection is still closing (sqlx
/// issue #3217), and that connection then removes them under a restore that is moving them:
/// `restore` failed so once in CI ("moving data/lookout.db.restoring-wal to
/// data/lookout.db-wal: No such file or directory") after moving the database itself. Files that
/// stay (a connection that never closes, or none was in WAL mode) are moved with the database.
async fn settle(path: &Path) {
    let [_, wal, shm] = with_journal(path);
    for _ in 0..200 {
        if !wal.exists() && !shm.exists() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// Moves a database and whichever of its journal files are there. A journal file that goes
/// between the look and the move was written into the database and removed by its last
/// connection (see [`settle`]): nothing is left to move.
fn rename_with_journal(from: &Path, to: &Path) -> anyhow::Result<()> {
    for (i, (a, b)) in with_journal(from).iter().zip(with_journal(to)).enumerate() {
        if a.exists() {
            match std::fs::rename(a, &b) {
                Err(e) if i > 0 && e.kind() == std::io::ErrorKind::NotFound => {}
                moved => {
                    moved.with_context(|| format!("moving {} to {}", a.display(), b.display()))?
                }
            }
        }
    }
    Ok(())
}

fn remove_with_journal(path: &Path) -> anyhow::Result<()> {
    for p in with_journal(path) {
        if p.exists() {
            std::fs::remove_file(&p).with_context(|| format!("removing {}", p.display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `settle` returns once a closing connection's journal files are gone, not before; a
    /// database without them is not waited for; and the move takes whichever are there.
    #[tokio::test]
    async fn settle_waits_for_the_journal_then_the_move_takes_what_is_left() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = dir.path().join("lookout.db");
        let [main, wal, shm] = with_journal(&db);
        for f in [&main, &wal, &shm] {
            std::fs::write(f, b"x").expect("a file");
        }
        // A connection still closing: it removes its journal files a little later.
        let closing = tokio::spawn({
            let (wal, shm) = (wal.clone(), shm.clone());
            async move {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                std::fs::remove_file(wal).expect("the log goes");
                std::fs::remove_file(shm).expect("the shared memory goes");
            }
        });
        let started = std::time::Instant::now();
        settle(&db).await;
        assert!(started.elapsed() >= std::time::Duration::from_millis(100));
        assert!(!wal.exists() && !shm.exists());
        closing.await.expect("the closing task");

        let started = std::time::Instant::now();
        settle(&db).await;
        assert!(started.elapsed() < std::time::Duration::from_millis(100));

        std::fs::write(&wal, b"log").expect("a log");
        let to = dir.path().join("lookout.db.aside");
        rename_with_journal(&db, &to).expect("moved");
        let [to_main, to_wal, to_shm] = with_journal(&to);
        assert!(to_main.exists() && !main.exists());
        assert_eq!(std::fs::read(&to_wal).expect("the log moved"), b"log");
        assert!(!to_shm.exists());
    }
}
