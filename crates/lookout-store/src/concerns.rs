//! Concerns reported by learners, customers and staff: the reporter's receipt, linked to the
//! alert that tells the DSL team.

use sqlx::Row;

use crate::audit::{append, AuditEntry};
use crate::{now_ms, Store, StoreError};

/// A concern to store.
#[derive(Debug, Clone, Default)]
pub struct NewConcern {
    pub reporter: String,
    /// Who it is about, in the reporter's words ("me", a name...).
    pub about: String,
    pub what: String,
    pub place: String,
    /// `now`, `soon` or `info`.
    pub urgency: String,
    /// From a block page: its reference and the blocked address.
    pub block_ref: Option<String>,
    pub block_url: Option<String>,
    pub alert_id: Option<i64>,
}

/// A concern as stored, with the state of its alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Concern {
    pub id: i64,
    pub reference: String,
    pub at_ms: i64,
    pub reporter: String,
    pub about: String,
    pub what: String,
    pub place: String,
    pub urgency: String,
    pub block_ref: Option<String>,
    pub block_url: Option<String>,
    pub alert_id: Option<i64>,
    /// The alert's status (`new`, `reviewed`, `dismissed`, `incident`), if linked.
    pub alert_status: Option<String>,
}

fn concern_row(r: &sqlx::any::AnyRow) -> Concern {
    Concern {
        id: r.get("id"),
        reference: r.get("reference"),
        at_ms: r.get("at_ms"),
        reporter: r.get("reporter"),
        about: r.get("about"),
        what: r.get("what"),
        place: r.get("place"),
        urgency: r.get("urgency"),
        block_ref: r.get("block_ref"),
        block_url: r.get("block_url"),
        alert_id: r.get("alert_id"),
        alert_status: r.get("alert_status"),
    }
}

const CONCERN_SELECT: &str = "SELECT c.*, a.status AS alert_status FROM concerns c \
     LEFT JOIN alerts a ON a.id = c.alert_id";

impl Store {
    /// Stores a concern (and its audit entry); returns it with its reference.
    pub async fn add_concern(
        &self,
        c: &NewConcern,
        audit: &AuditEntry,
    ) -> Result<Concern, StoreError> {
        let now = now_ms();
        let mut tx = self.write_tx().await?;
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM concerns")
            .fetch_one(&mut *tx)
            .await?;
        let reference = format!("CON-{:05}", n + 1);
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO concerns (reference, at_ms, reporter, about, what, place, urgency, block_ref, block_url, alert_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
        )
        .bind(&reference)
        .bind(now)
        .bind(&c.reporter)
        .bind(&c.about)
        .bind(&c.what)
        .bind(&c.place)
        .bind(&c.urgency)
        .bind(&c.block_ref)
        .bind(&c.block_url)
        .bind(c.alert_id)
        .fetch_one(&mut *tx)
        .await?;
        let mut audit = audit.clone();
        audit.target = format!("concern:{id}");
        append(&mut tx, &audit).await?;
        tx.commit().await?;
        self.concern(id)
            .await?
            .ok_or(StoreError::Query(sqlx::Error::RowNotFound))
    }

    /// One concern.
    pub async fn concern(&self, id: i64) -> Result<Option<Concern>, StoreError> {
        let row = sqlx::query(&format!("{CONCERN_SELECT} WHERE c.id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(concern_row))
    }

    /// The concern raised as alert `alert_id`, if any.
    pub async fn concern_for_alert(&self, alert_id: i64) -> Result<Option<Concern>, StoreError> {
        let row = sqlx::query(&format!("{CONCERN_SELECT} WHERE c.alert_id = $1"))
            .bind(alert_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(concern_row))
    }

    /// Concerns a person reported, newest first.
    pub async fn concerns_by(&self, reporter: &str) -> Result<Vec<Concern>, StoreError> {
        let rows = sqlx::query(&format!(
            "{CONCERN_SELECT} WHERE c.reporter = $1 ORDER BY c.at_ms DESC, c.id DESC"
        ))
        .bind(reporter)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(concern_row).collect())
    }
}

impl Store {
    /// How many concerns were reported at or after `since_ms`.
    pub async fn concerns_since(&self, since_ms: i64) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM concerns WHERE at_ms >= $1")
                .bind(since_ms)
                .fetch_one(&self.pool)
                .await?,
        )
    }
}
