//! Backups: a consistent copy of the whole database taken while Lookout serves (SQLite's
//! `VACUUM INTO` reads one snapshot in a read transaction, so writers carry on), and the checks
//! a copy must pass before it is trusted or restored.

use std::path::Path;

use sqlx::Row;

use crate::{now_ms, Dialect, Store, StoreError};

impl Store {
    /// Whether the file at `path` is a Lookout database (it has Lookout's schema history),
    /// read without creating, changing or migrating it: an empty file or another program's
    /// SQLite file is not, and `Store::open` would otherwise turn it into an empty one.
    pub async fn is_lookout_database(path: &Path) -> Result<bool, StoreError> {
        use sqlx::Connection;
        let open_err = |source| StoreError::Open {
            path: path.display().to_string(),
            source,
        };
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(path)
            .read_only(true);
        let mut conn = sqlx::SqliteConnection::connect_with(&options)
            .await
            .map_err(open_err)?;
        let tables: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name IN ('_sqlx_migrations', 'audit_log')",
        )
        .fetch_one(&mut conn)
        .await?;
        let _ = conn.close().await;
        Ok(tables == 2)
    }

    /// Writes a consistent copy of the database to `dest`, which must not exist yet.
    pub async fn backup_to(&self, dest: &Path) -> Result<(), StoreError> {
        if self.dialect == Dialect::Postgres {
            return Err(StoreError::Unsupported(
                "lookout backup copies an SQLite database; back up PostgreSQL with pg_dump",
            ));
        }
        let dest = dest.to_str().ok_or_else(|| {
            StoreError::Query(sqlx::Error::Protocol(format!(
                "the backup path {} is not valid UTF-8",
                dest.display()
            )))
        })?;
        sqlx::query("VACUUM INTO ?")
            .bind(dest)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// SQLite's own check of every page and index: empty when the file is sound, otherwise
    /// what is wrong (at most 20 problems).
    pub async fn integrity_problems(&self) -> Result<Vec<String>, StoreError> {
        if self.dialect == Dialect::Postgres {
            return Err(StoreError::Unsupported(
                "the integrity check reads an SQLite file; PostgreSQL checks its own pages (amcheck)",
            ));
        }
        let rows = sqlx::query("PRAGMA integrity_check(20)")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(|r| r.get::<String, _>(0))
            .filter(|s| s != "ok")
            .collect())
    }

    /// The newest run of `lookout serve` that has not stopped and beat within `window_ms`:
    /// the server is (very likely) running on this database now. Its last heartbeat, if so.
    pub async fn running_now(&self, window_ms: i64) -> Result<Option<i64>, StoreError> {
        let alive: Option<i64> =
            sqlx::query_scalar("SELECT MAX(alive_ms) FROM runs WHERE stopped_ms IS NULL")
                .fetch_one(&self.pool)
                .await?;
        Ok(alive.filter(|&a| now_ms() - a < window_ms))
    }
}
