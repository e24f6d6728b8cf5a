//! Runs of `lookout serve`: started, alive (a heartbeat every second), stopped. A run that
//! never stopped was killed or crashed (or could not record its stop: the database refused
//! writes); the next start records the activity log's gap from its last heartbeat.

use sqlx::Row;

use crate::{now_ms, Store, StoreError};

/// A run that ended without a clean stop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UncleanStop {
    pub started_ms: i64,
    /// The last heartbeat: the run was alive then, and died within a second or so after.
    pub alive_ms: i64,
    /// Events queued but not yet written at that heartbeat.
    pub waiting: i64,
}

impl Store {
    /// Starts a run; earlier runs that never stopped are closed, and each is recorded as a
    /// gap in the activity log (`log_gaps`) and returned.
    pub async fn begin_run(&self) -> Result<(i64, Vec<UncleanStop>), StoreError> {
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query(
            "SELECT id, started_ms, alive_ms, queued, written FROM runs WHERE stopped_ms IS NULL ORDER BY id",
        )
        .fetch_all(&mut *tx)
        .await?;
        let mut unclean = Vec::new();
        for r in &rows {
            let stop = UncleanStop {
                started_ms: r.get("started_ms"),
                alive_ms: r.get("alive_ms"),
                waiting: (r.get::<i64, _>("queued") - r.get::<i64, _>("written")).max(0),
            };
            let cause = format!(
                "Lookout's run has no clean stop on record (killed or crashed, or the database refused writes at the end): events after this time may be lost ({} were waiting at its last recorded check)",
                stop.waiting
            );
            sqlx::query("INSERT INTO log_gaps (at_ms, dropped, cause) VALUES ($1, $2, $3)")
                .bind(stop.alive_ms)
                .bind(stop.waiting)
                .bind(cause)
                .execute(&mut *tx)
                .await?;
            sqlx::query("UPDATE runs SET stopped_ms = alive_ms WHERE id = $1")
                .bind(r.get::<i64, _>("id"))
                .execute(&mut *tx)
                .await?;
            unclean.push(stop);
        }
        let now = now_ms();
        let id =
            sqlx::query("INSERT INTO runs (started_ms, alive_ms) VALUES ($1, $2) RETURNING id")
                .bind(now)
                .bind(now)
                .fetch_one(&mut *tx)
                .await?
                .get(0);
        tx.commit().await?;
        Ok((id, unclean))
    }

    /// Says run `id` is alive, with the activity log's counters.
    pub async fn run_alive(&self, id: i64, queued: u64, written: u64) -> Result<(), StoreError> {
        sqlx::query("UPDATE runs SET alive_ms = $1, queued = $2, written = $3 WHERE id = $4")
            .bind(now_ms())
            .bind(queued as i64)
            .bind(written as i64)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Marks run `id` as stopped cleanly (after the activity log was flushed).
    pub async fn end_run(&self, id: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE runs SET stopped_ms = $1 WHERE id = $2")
            .bind(now_ms())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
