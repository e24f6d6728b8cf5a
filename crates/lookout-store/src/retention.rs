//! Retention: records are kept no longer than the organisation says, and never while they are
//! under a legal hold. The purge deletes in small batches (each its own short transaction) so
//! the activity log's writer is never held up for long, and records what it deleted — counts
//! only — on the audit log.
//!
//! Under hold: an incident that is open or flagged (`legal_hold`), the alerts reviewed into
//! it, and the activity and alerts of every person named in it.

use std::time::Duration;

use crate::audit::append;
use crate::events::push_period;
use crate::{now_ms, AuditEntry, Sql, Store, StoreError};

const DAY_MS: i64 = 86_400_000;

/// How long each kind of record is kept, in days; `None`: kept until deleted by hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Retention {
    /// The proxy's activity log.
    pub activity_days: Option<u32>,
    /// DNS filter events.
    pub dns_days: Option<u32>,
    /// Alerts that were reviewed or dismissed (open alerts are always kept), with their
    /// findings (the flagged text) and reviews; counted from their last change.
    pub alerts_days: Option<u32>,
    /// Texts kept because their scan failed.
    pub page_text_days: Option<u32>,
    /// Closed incidents not under legal hold, counted from their last change.
    pub incidents_days: Option<u32>,
}

/// What one purge deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Purged {
    pub activity: u64,
    pub dns: u64,
    pub alerts: u64,
    pub page_texts: u64,
    pub incidents: u64,
}

impl std::fmt::Display for Purged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} activity events, {} DNS events, {} alerts, {} kept texts, {} incidents",
            self.activity, self.dns, self.alerts, self.page_texts, self.incidents
        )
    }
}

/// People named in an incident that is open or under legal hold.
const HELD_PEOPLE: &str =
    "SELECT p.username FROM incident_people p JOIN incidents i ON i.id = p.incident_id \
     WHERE p.username IS NOT NULL AND (i.status = 'open' OR i.legal_hold <> 0)";

fn cutoff(now: i64, days: Option<u32>) -> Option<i64> {
    days.map(|d| now - i64::from(d) * DAY_MS)
}

impl Store {
    /// Deletes what `r` says is past its time at `now`, `batch` rows per transaction with
    /// `pause` between transactions; appends one `retention.purge` audit row with the counts.
    pub async fn purge(
        &self,
        r: &Retention,
        now: i64,
        batch: u32,
        pause: Duration,
    ) -> Result<Purged, StoreError> {
        let mut p = Purged::default();
        for (days, service, count) in [
            (r.activity_days, "proxy", &mut p.activity),
            (r.dns_days, "dns", &mut p.dns),
        ] {
            let Some(before) = cutoff(now, days) else {
                continue;
            };
            loop {
                // The ids before the cutoff's hour ends, from the time map (`event_hours`).
                let mut q = Sql::new(
                    self.dialect,
                    "DELETE FROM event_rows WHERE id IN (SELECT id FROM events WHERE service = ",
                );
                q.push_bind(service).push(&format!(
                    " AND (username IS NULL OR username NOT IN ({HELD_PEOPLE}))"
                ));
                push_period(&mut q, None, Some(before));
                q.push(" LIMIT ").push_bind(i64::from(batch)).push(")");
                let (sql, args) = q.into_parts()?;
                let done = sqlx::query_with(&sql, args)
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                *count += done;
                if done < u64::from(batch) {
                    break;
                }
                tokio::time::sleep(pause).await;
            }
        }
        if let Some(before) = cutoff(now, r.page_text_days) {
            p.page_texts = sqlx::query("DELETE FROM unscanned WHERE at_ms < $1")
                .bind(before)
                .execute(&self.pool)
                .await?
                .rows_affected();
        }
        if let Some(before) = cutoff(now, r.alerts_days) {
            let pick = format!(
                "SELECT a.id FROM alerts a WHERE a.status <> 'new' AND a.updated_ms < $1 \
                 AND (a.username IS NULL OR a.username NOT IN ({HELD_PEOPLE})) \
                 AND a.id NOT IN (SELECT alert_id FROM concerns WHERE alert_id IS NOT NULL) \
                 AND NOT EXISTS (SELECT 1 FROM alert_reviews v JOIN incidents i ON i.id = v.incident_id \
                     WHERE v.alert_id = a.id AND (i.status = 'open' OR i.legal_hold <> 0)) \
                 LIMIT $2"
            );
            p.alerts = self
                .purge_batches(
                    &pick,
                    before,
                    batch,
                    pause,
                    &[
                        "DELETE FROM alert_findings WHERE alert_id = $1",
                        "DELETE FROM alert_deliveries WHERE alert_id = $1",
                        "DELETE FROM alert_reviews WHERE alert_id = $1",
                        "DELETE FROM alerts WHERE id = $1",
                    ],
                )
                .await?;
        }
        if let Some(before) = cutoff(now, r.incidents_days) {
            p.incidents = self
                .purge_batches(
                    "SELECT id FROM incidents WHERE status <> 'open' AND legal_hold = 0 \
                     AND updated_ms < $1 LIMIT $2",
                    before,
                    batch,
                    pause,
                    &[
                        "DELETE FROM incident_people WHERE incident_id = $1",
                        "DELETE FROM incident_entries WHERE incident_id = $1",
                        "DELETE FROM incidents WHERE id = $1",
                    ],
                )
                .await?;
        }
        let mut audit = AuditEntry::new("system", "retention.purge", "retention");
        audit.detail = format!("deleted {p}");
        self.audit(&audit).await?;
        Ok(p)
    }

    /// Picks up to `batch` ids with `pick` (binds: `before`, `batch`) and deletes each with
    /// `statements`, until none is left; how many.
    async fn purge_batches(
        &self,
        pick: &str,
        before: i64,
        batch: u32,
        pause: Duration,
        statements: &[&str],
    ) -> Result<u64, StoreError> {
        let mut deleted = 0;
        loop {
            let ids: Vec<i64> = sqlx::query_scalar(pick)
                .bind(before)
                .bind(i64::from(batch))
                .fetch_all(&self.pool)
                .await?;
            if ids.is_empty() {
                return Ok(deleted);
            }
            self.delete_in_purge(&ids, statements).await?;
            deleted += ids.len() as u64;
            if ids.len() < batch as usize {
                return Ok(deleted);
            }
            tokio::time::sleep(pause).await;
        }
    }

    /// Runs `statements` for each of `ids` in one transaction marked as the retention purge
    /// (the only one in which append-only rows may be deleted).
    async fn delete_in_purge(&self, ids: &[i64], statements: &[&str]) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        sqlx::query("INSERT INTO retention_purge (started_ms) VALUES ($1)")
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        for id in ids {
            for sql in statements {
                sqlx::query(sql).bind(id).execute(&mut *tx).await?;
            }
        }
        sqlx::query("DELETE FROM retention_purge")
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Places incident `id` under legal hold (kept whatever the retention), or lifts it.
    pub async fn set_legal_hold(
        &self,
        id: i64,
        held: bool,
        audit: &AuditEntry,
    ) -> Result<bool, StoreError> {
        let mut tx = self.write_tx().await?;
        let done =
            sqlx::query("UPDATE incidents SET legal_hold = $1, updated_ms = $2 WHERE id = $3")
                .bind(i64::from(held))
                .bind(now_ms())
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        if done == 0 {
            return Ok(false);
        }
        let mut audit = audit.clone();
        audit.target = format!("incident:{id}");
        audit.detail = if held {
            "legal hold placed"
        } else {
            "legal hold lifted"
        }
        .into();
        append(&mut tx, &audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Whether incident `id` is under legal hold.
    pub async fn legal_hold(&self, id: i64) -> Result<bool, StoreError> {
        let held: Option<i64> =
            sqlx::query_scalar("SELECT legal_hold FROM incidents WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(held.unwrap_or(0) != 0)
    }
}
