//! Overblocking reviews: "this should not be blocked" requests, the IT admin's decisions, and
//! the per-group entries allowed as a result.

use sqlx::Row;

use crate::audit::{append, AuditEntry};
use crate::{now_ms, Store, StoreError};

/// A request to store.
#[derive(Debug, Clone, Default)]
pub struct NewReviewRequest {
    pub requester: String,
    /// The group whose policy blocked it.
    pub group: String,
    pub url: String,
    pub block_ref: Option<String>,
    /// The categories the block gave (comma-separated slugs).
    pub categories: String,
    pub reason: String,
}

/// A request as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewRequest {
    pub id: i64,
    pub at_ms: i64,
    pub requester: String,
    pub group: String,
    pub url: String,
    pub block_ref: Option<String>,
    pub categories: String,
    pub reason: String,
    /// `pending`, `approved` or `rejected`.
    pub status: String,
    pub decided_by: Option<String>,
    pub decided_ms: Option<i64>,
    pub decision: Option<String>,
    pub allow_entry: Option<String>,
}

/// An entry allowed after review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewedAllow {
    pub id: i64,
    pub group: String,
    pub entry: String,
    pub request_id: Option<i64>,
    pub approved_by: String,
    pub approved_ms: i64,
}

/// Why a decision was not recorded.
#[derive(Debug, thiserror::Error)]
pub enum DecisionError {
    #[error("no review request {0}")]
    NotFound(i64),
    #[error("this request was already {status} by {by}")]
    AlreadyDecided { status: String, by: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for DecisionError {
    fn from(e: sqlx::Error) -> Self {
        DecisionError::Store(e.into())
    }
}

fn request_row(r: &sqlx::any::AnyRow) -> ReviewRequest {
    ReviewRequest {
        id: r.get("id"),
        at_ms: r.get("at_ms"),
        requester: r.get("requester"),
        group: r.get("group_name"),
        url: r.get("url"),
        block_ref: r.get("block_ref"),
        categories: r.get("categories"),
        reason: r.get("reason"),
        status: r.get("status"),
        decided_by: r.get("decided_by"),
        decided_ms: r.get("decided_ms"),
        decision: r.get("decision"),
        allow_entry: r.get("allow_entry"),
    }
}

impl Store {
    /// Stores a request, with its audit entry.
    pub async fn add_review_request(
        &self,
        r: &NewReviewRequest,
        audit: &AuditEntry,
    ) -> Result<ReviewRequest, StoreError> {
        let mut tx = self.write_tx().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO review_requests (at_ms, requester, group_name, url, block_ref, categories, reason) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(now_ms())
        .bind(&r.requester)
        .bind(&r.group)
        .bind(&r.url)
        .bind(&r.block_ref)
        .bind(&r.categories)
        .bind(&r.reason)
        .fetch_one(&mut *tx)
        .await?;
        let mut audit = audit.clone();
        audit.target = format!("review:{id}");
        append(&mut tx, &audit).await?;
        tx.commit().await?;
        self.review_request(id)
            .await?
            .ok_or(StoreError::Query(sqlx::Error::RowNotFound))
    }

    pub async fn review_request(&self, id: i64) -> Result<Option<ReviewRequest>, StoreError> {
        let row = sqlx::query("SELECT * FROM review_requests WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(request_row))
    }

    /// Requests, pending first (oldest first), then decided (newest first).
    pub async fn review_requests(&self, limit: u32) -> Result<Vec<ReviewRequest>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM review_requests ORDER BY CASE status WHEN 'pending' THEN 0 ELSE 1 END, \
             CASE status WHEN 'pending' THEN at_ms ELSE -COALESCE(decided_ms, at_ms) END LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(request_row).collect())
    }

    /// A person's own requests, newest first.
    pub async fn review_requests_by(
        &self,
        requester: &str,
    ) -> Result<Vec<ReviewRequest>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM review_requests WHERE requester = $1 ORDER BY at_ms DESC, id DESC",
        )
        .bind(requester)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(request_row).collect())
    }

    /// Approves (with the entry to allow for the request's group) or rejects a pending
    /// request, with its audit entry, in one transaction.
    pub async fn decide_review(
        &self,
        id: i64,
        allow_entry: Option<&str>,
        note: &str,
        audit: &AuditEntry,
    ) -> Result<ReviewRequest, DecisionError> {
        let now = now_ms();
        let mut tx = self.write_tx().await?;
        let Some(row) = sqlx::query("SELECT * FROM review_requests WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Err(DecisionError::NotFound(id));
        };
        let request = request_row(&row);
        if request.status != "pending" {
            return Err(DecisionError::AlreadyDecided {
                status: request.status,
                by: request.decided_by.unwrap_or_default(),
            });
        }
        let status = if allow_entry.is_some() {
            "approved"
        } else {
            "rejected"
        };
        sqlx::query(
            "UPDATE review_requests SET status = $1, decided_by = $2, decided_ms = $3, decision = $4, allow_entry = $5 WHERE id = $6",
        )
        .bind(status)
        .bind(&audit.actor)
        .bind(now)
        .bind(note)
        .bind(allow_entry)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if let Some(entry) = allow_entry {
            sqlx::query(
                "INSERT INTO reviewed_allows (group_name, entry, request_id, approved_by, approved_ms) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&request.group)
            .bind(entry)
            .bind(id)
            .bind(&audit.actor)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        append(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(self
            .review_request(id)
            .await?
            .ok_or(StoreError::Query(sqlx::Error::RowNotFound))?)
    }

    /// Entries allowed after review and not removed, for every group.
    pub async fn reviewed_allows(&self) -> Result<Vec<ReviewedAllow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, group_name, entry, request_id, approved_by, approved_ms FROM reviewed_allows \
             WHERE removed_ms IS NULL ORDER BY group_name, entry",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| ReviewedAllow {
                id: r.get("id"),
                group: r.get("group_name"),
                entry: r.get("entry"),
                request_id: r.get("request_id"),
                approved_by: r.get("approved_by"),
                approved_ms: r.get("approved_ms"),
            })
            .collect())
    }

    /// Stops allowing an entry (the row stays, marked removed); returns its group.
    pub async fn remove_reviewed_allow(
        &self,
        id: i64,
        audit: &AuditEntry,
    ) -> Result<Option<String>, StoreError> {
        let mut tx = self.write_tx().await?;
        let group: Option<String> = sqlx::query_scalar(
            "UPDATE reviewed_allows SET removed_by = $1, removed_ms = $2 WHERE id = $3 AND removed_ms IS NULL RETURNING group_name",
        )
        .bind(&audit.actor)
        .bind(now_ms())
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        if group.is_some() {
            append(&mut tx, audit).await?;
        }
        tx.commit().await?;
        Ok(group)
    }
}
