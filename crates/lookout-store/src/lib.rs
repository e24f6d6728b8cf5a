//! Lookout's database: users (argon2id password hashes, console roles, two-factor secrets),
//! signed-in addresses, the activity log, monitoring (API tokens, alerts, deliveries owed,
//! digests), the console (sessions, sealed signing keys, alert reviews) and the hash-chained
//! audit log, in SQLite through sqlx.
//!
//! The SQL is kept portable (no SQLite-only syntax in queries, times as integer milliseconds)
//! so that a PostgreSQL backend can follow. Schema changes are migrations under
//! `migrations/`, applied by [`Store::open`].
//!
//! Events reach the database through [`EventLog`]: a bounded queue and one writer task that
//! stores them in batches, so the request path never waits on the disk. Events that cannot be
//! queued or stored are counted, and the count is itself written to `log_gaps`.

mod alerts;
mod audit;
mod backup;
mod briefings;
mod checks;
mod concerns;
mod console;
mod events;
mod import;
mod incidents;
mod privacy;
mod registers;
mod report;
mod retention;
mod reviews;
mod runs;
mod training;
mod triage;
mod unscanned;
mod users;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;

pub use alerts::{
    Alert, ApiToken, Delivery, NewFinding, Recorded, StoredFinding, Subject, TokenScope,
};
pub use audit::{
    audit_hash, AuditEntry, AuditFilter, AuditProblem, AuditRow, AuditVerification, GENESIS,
};
pub use briefings::{Acceptance, Briefing, NewBriefing};
pub use checks::{check_hash, cosign_message, Check, CosignError};
pub use concerns::{Concern, NewConcern};
pub use console::{Account, NewSession, PasswordCheck, Session, StoredKey, LOCK_AFTER, LOCK_MS};
pub use events::{
    new_reference, Event, EventFilter, EventLog, EventLogStats, EventWriter, LogFailure, LogGap,
    Observer, StoredEvent,
};
pub use import::users_from_csv;
pub use incidents::{Incident, IncidentEntry, IncidentError, NewEntry};
pub use lookout_auth::Role;
pub use privacy::Held;
pub use registers::{
    csv_cell, csv_line, AccountFields, AdminEvent, PolicyReview, SocialAccount, SocialAdmin,
    TechAssessment, TechFields,
};
pub use report::{BoardFigures, BriefingUptake, Durations, Report};
pub use retention::{Purged, Retention};
pub use reviews::{DecisionError, NewReviewRequest, ReviewRequest, ReviewedAllow};
pub use runs::UncleanStop;
pub use training::{
    status as training_status, tally, Completion, Course, CourseFields, Reminder, Requirement,
    Standing, Tally, DUE_SOON_DAYS,
};
pub use triage::{AlertReview, Inbox, ReviewAction, ReviewError};
pub use unscanned::Unscanned;
pub use users::{
    check_email, check_password, check_team, normalize_username, NewUser, User, UserError,
};

/// A database failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database could not be opened or created.
    #[error("cannot open the database {path}: {source}")]
    Open {
        /// The file.
        path: String,
        /// Why.
        source: sqlx::Error,
    },
    /// The schema could not be brought up to date.
    #[error("cannot update the database schema: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A query failed.
    #[error("database error: {0}")]
    Query(#[from] sqlx::Error),
}

/// The database.
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) pool: SqlitePool,
    /// Counts briefings published through this `Store` (and its clones), so that a gateway in
    /// the same process asks for the new version at once rather than after its cache expires.
    pub(crate) briefings_published: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Store {
    /// Opens (creating if needed) the SQLite database at `path` and applies migrations.
    pub async fn open(path: &Path) -> Result<Store, StoreError> {
        let open_err = |source| StoreError::Open {
            path: path.display().to_string(),
            source,
        };
        let options = SqliteConnectOptions::from_str("sqlite:")
            .map_err(open_err)?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: every commit is on the disk before it is acknowledged, so a power cut, an
            // OS crash or a file system gone read-only after an error (which drops what was
            // not yet synced: measured with scripts/disk-full-test, NORMAL lost the whole
            // first second of a new database) cannot take back an acknowledged alert,
            // incident entry or check. One fdatasync per transaction; the activity log
            // writes one transaction per batch, so its cost shrinks as load grows.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true)
            // 64 MiB of page cache: the log's indexes stay in memory while it grows.
            .pragma("cache_size", "-65536")
            .pragma("temp_store", "memory")
            // Checkpoint the write-ahead log every 32 MiB rather than every 4 MiB.
            .pragma("wal_autocheckpoint", "8192");
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            // A connection whose COMMIT failed (disk full, I/O error) can come back with sqlx
            // still counting an open transaction (SQLite rolled it back, so sqlx's ROLLBACK
            // failed): its next "transaction" would be a savepoint and writes stay stuck until
            // a restart. Such a connection is closed instead of reused. The check reads a
            // counter: no round trip to the database.
            .before_acquire(|conn, _| {
                Box::pin(async move {
                    use sqlx::Connection;
                    Ok(!conn.is_in_transaction())
                })
            })
            .connect_with(options)
            .await
            .map_err(open_err)?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Store {
            pool,
            briefings_published: std::sync::Arc::default(),
        })
    }

    /// Closes every connection, after pending writes.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests;
