//! Figures for the Board and the Head of IT: counts only, never names or text.

use sqlx::Row;

use crate::{Store, StoreError};

/// What happened in a period.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Alerts raised, per category slug, most first.
    pub alerts_by_category: Vec<(String, i64)>,
    /// Alerts raised per severity: danger, caution, advisory.
    pub alerts_by_severity: [i64; 3],
    /// Alerts dismissed as false alarms.
    pub false_alarms: i64,
    pub concerns: i64,
    pub incidents_opened: i64,
    pub incidents_closed: i64,
    pub referrals: i64,
    /// Review requests: approved, rejected, pending.
    pub reviews: [i64; 3],
    /// Routine checks signed, and co-signed.
    pub checks: [i64; 2],
    /// Requests blocked and allowed in the activity log.
    pub blocked: i64,
    pub allowed: i64,
}

impl Store {
    /// Counts for `[from_ms, to_ms)`.
    pub async fn report(&self, from_ms: i64, to_ms: i64) -> Result<Report, StoreError> {
        let count = |sql: &'static str| async move {
            sqlx::query_scalar::<_, i64>(sql)
                .bind(from_ms)
                .bind(to_ms)
                .fetch_one(&self.pool)
                .await
        };
        let mut r = Report::default();
        let rows = sqlx::query(
            "SELECT category, COUNT(*) AS n FROM alerts WHERE created_ms >= ? AND created_ms < ? \
             GROUP BY category ORDER BY n DESC, category",
        )
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(&self.pool)
        .await?;
        r.alerts_by_category = rows
            .iter()
            .map(|x| (x.get("category"), x.get("n")))
            .collect();
        for (i, sev) in ["danger", "caution", "advisory"].iter().enumerate() {
            r.alerts_by_severity[i] = sqlx::query_scalar(
                "SELECT COUNT(*) FROM alerts WHERE created_ms >= ? AND created_ms < ? AND severity = ?",
            )
            .bind(from_ms)
            .bind(to_ms)
            .bind(sev)
            .fetch_one(&self.pool)
            .await?;
        }
        r.false_alarms = count("SELECT COUNT(*) FROM alert_reviews WHERE at_ms >= ? AND at_ms < ? AND action = 'dismissed'").await?;
        r.concerns = count("SELECT COUNT(*) FROM concerns WHERE at_ms >= ? AND at_ms < ?").await?;
        r.incidents_opened =
            count("SELECT COUNT(*) FROM incidents WHERE opened_ms >= ? AND opened_ms < ?").await?;
        r.incidents_closed = count("SELECT COUNT(*) FROM incident_entries WHERE at_ms >= ? AND at_ms < ? AND kind = 'closed'").await?;
        r.referrals = count("SELECT COUNT(*) FROM incident_entries WHERE at_ms >= ? AND at_ms < ? AND kind = 'referral'").await?;
        r.reviews = [
            count("SELECT COUNT(*) FROM review_requests WHERE at_ms >= ? AND at_ms < ? AND status = 'approved'").await?,
            count("SELECT COUNT(*) FROM review_requests WHERE at_ms >= ? AND at_ms < ? AND status = 'rejected'").await?,
            count("SELECT COUNT(*) FROM review_requests WHERE at_ms >= ? AND at_ms < ? AND status = 'pending'").await?,
        ];
        r.checks = [
            count("SELECT COUNT(*) FROM checks WHERE signed_ms >= ? AND signed_ms < ?").await?,
            count("SELECT COUNT(*) FROM checks WHERE signed_ms >= ? AND signed_ms < ? AND supervisor_signature IS NOT NULL").await?,
        ];
        r.blocked = count(
            "SELECT COUNT(*) FROM events WHERE at_ms >= ? AND at_ms < ? AND action = 'block'",
        )
        .await?;
        r.allowed = count(
            "SELECT COUNT(*) FROM events WHERE at_ms >= ? AND at_ms < ? AND action = 'allow'",
        )
        .await?;
        Ok(r)
    }
}
