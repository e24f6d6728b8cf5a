//! The DSL team's triage of alerts: the inbox (open alerts, most severe first, oldest waiting
//! first), and reviews — append-only rows, each put on the audit log in the same transaction.

use sqlx::Row;

use crate::alerts::{alert_row, ALERT_COLUMNS};
use crate::audit::{append, AuditEntry};
use crate::{now_ms, Alert, Store, StoreError};

/// What was done with an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReviewAction {
    /// Looked at; nothing more needed.
    Reviewed,
    /// A false alarm (the reason feeds phrase tuning).
    Dismissed,
    /// An incident was opened from it.
    Incident,
}

impl ReviewAction {
    pub fn slug(self) -> &'static str {
        match self {
            ReviewAction::Reviewed => "reviewed",
            ReviewAction::Dismissed => "dismissed",
            ReviewAction::Incident => "incident",
        }
    }
}

/// A review as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertReview {
    pub id: i64,
    pub alert_id: i64,
    pub at_ms: i64,
    pub by_user: String,
    pub action: String,
    pub reason: String,
    pub incident_id: Option<i64>,
}

/// Which alerts the inbox shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inbox {
    /// Not yet reviewed.
    Open,
    Reviewed,
    Dismissed,
    All,
}

/// Why a review was not recorded.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error("no alert {0}")]
    NotFound(i64),
    /// Someone else got there first.
    #[error("this alert was already {action} by {by}")]
    AlreadyDone { action: String, by: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for ReviewError {
    fn from(e: sqlx::Error) -> Self {
        ReviewError::Store(e.into())
    }
}

fn review_row(r: &sqlx::any::AnyRow) -> AlertReview {
    AlertReview {
        id: r.get("id"),
        alert_id: r.get("alert_id"),
        at_ms: r.get("at_ms"),
        by_user: r.get("by_user"),
        action: r.get("action"),
        reason: r.get("reason"),
        incident_id: r.get("incident_id"),
    }
}

const SEVERITY_RANK: &str = "CASE severity WHEN 'danger' THEN 0 WHEN 'caution' THEN 1 ELSE 2 END";

impl Store {
    /// The inbox: most severe first, then the longest waiting; `site`: only alerts that came
    /// through that site gateway.
    pub async fn inbox(
        &self,
        which: Inbox,
        site: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Alert>, StoreError> {
        let filter = match which {
            Inbox::Open => "status = 'new'",
            Inbox::Reviewed => "status IN ('reviewed', 'incident')",
            Inbox::Dismissed => "status = 'dismissed'",
            Inbox::All => "1 = 1",
        };
        let site_filter = if site.is_some() { " AND site = $2" } else { "" };
        let order = match which {
            Inbox::Open => format!("{SEVERITY_RANK}, created_ms, id"),
            _ => "updated_ms DESC, id DESC".to_owned(),
        };
        let sql = format!(
            "SELECT {ALERT_COLUMNS} FROM alerts WHERE {filter}{site_filter} ORDER BY {order} LIMIT $1"
        );
        let mut query = sqlx::query(&sql).bind(i64::from(limit));
        if let Some(site) = site {
            query = query.bind(site);
        }
        let rows = query.fetch_all(&self.pool).await?;
        Ok(rows.iter().map(alert_row).collect())
    }

    /// Open alerts per severity (danger, caution, advisory).
    pub async fn open_alert_counts(&self) -> Result<[i64; 3], StoreError> {
        let rows = sqlx::query(
            "SELECT severity, COUNT(*) AS n FROM alerts WHERE status = 'new' GROUP BY severity",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut out = [0; 3];
        for r in rows {
            let i = match r.get::<String, _>("severity").as_str() {
                "danger" => 0,
                "caution" => 1,
                _ => 2,
            };
            out[i] += r.get::<i64, _>("n");
        }
        Ok(out)
    }

    /// Records a review of an open alert, with its audit entry, in one transaction.
    pub async fn review_alert(
        &self,
        id: i64,
        action: ReviewAction,
        reason: &str,
        incident_id: Option<i64>,
        audit: &AuditEntry,
    ) -> Result<Alert, ReviewError> {
        let mut tx = self.write_tx().await?;
        let Some(row) = sqlx::query(&format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE id = $1"))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Err(ReviewError::NotFound(id));
        };
        let mut alert = alert_row(&row);
        if alert.status != "new" {
            let by: String = sqlx::query_scalar(
                "SELECT by_user FROM alert_reviews WHERE alert_id = $1 ORDER BY id DESC LIMIT 1",
            )
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .unwrap_or_default();
            return Err(ReviewError::AlreadyDone {
                action: alert.status,
                by,
            });
        }
        let now = now_ms();
        sqlx::query(
            "INSERT INTO alert_reviews (alert_id, at_ms, by_user, action, reason, incident_id) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id)
        .bind(now)
        .bind(&audit.actor)
        .bind(action.slug())
        .bind(reason)
        .bind(incident_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE alerts SET status = $1 WHERE id = $2")
            .bind(action.slug())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        append(&mut tx, audit).await?;
        tx.commit().await?;
        alert.status = action.slug().to_owned();
        Ok(alert)
    }

    /// An alert's reviews, oldest first.
    pub async fn alert_reviews(&self, id: i64) -> Result<Vec<AlertReview>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, alert_id, at_ms, by_user, action, reason, incident_id FROM alert_reviews \
             WHERE alert_id = $1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(review_row).collect())
    }

    /// The activity of an alert's person (or, without one, its address) from `around_ms`
    /// before the alert to `around_ms` after its last finding, oldest first.
    pub async fn alert_activity(
        &self,
        alert: &Alert,
        around_ms: i64,
        limit: u32,
    ) -> Result<Vec<crate::StoredEvent>, StoreError> {
        if alert.username.is_none() && alert.client_ip.is_none() {
            return Ok(Vec::new());
        }
        self.events(&crate::EventFilter {
            username: alert.username.clone(),
            client_ip: match alert.username {
                None => alert.client_ip.clone(),
                Some(_) => None,
            },
            since_ms: Some(alert.created_ms - around_ms),
            until_ms: Some(alert.updated_ms + around_ms),
            // An address is a site's own: the same one at another site is someone else.
            site: match alert.username {
                None => alert.site.clone(),
                Some(_) => None,
            },
            limit: Some(limit),
            ..crate::EventFilter::default()
        })
        .await
    }

    /// Dismissed alerts' findings with the reasons given, newest first: false alarms, for
    /// tuning the phrase lists.
    pub async fn false_alarms(
        &self,
        since_ms: i64,
    ) -> Result<Vec<(AlertReview, Alert, Vec<String>)>, StoreError> {
        let reviews = sqlx::query(
            "SELECT id, alert_id, at_ms, by_user, action, reason, incident_id FROM alert_reviews \
             WHERE action = 'dismissed' AND at_ms >= $1 ORDER BY at_ms DESC",
        )
        .bind(since_ms)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(reviews.len());
        for r in &reviews {
            let review = review_row(r);
            if let Some((alert, findings)) = self.alert(review.alert_id).await? {
                let texts = findings.into_iter().map(|f| f.finding.context).collect();
                out.push((review, alert, texts));
            }
        }
        Ok(out)
    }
}
