//! E-safety briefings and acceptable-use terms (versioned, per group or for everyone), and who
//! accepted which version, when and where. Accepting at the portal also signs the person in at
//! their address, in the same transaction.

use std::net::IpAddr;

use sqlx::Row;

use crate::audit::append;
use crate::users::normalize_username;
use crate::{now_ms, AuditEntry, Store, StoreError, UserError};

/// One version of a briefing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Briefing {
    /// The version: every change is a new row.
    pub id: i64,
    /// The group it is for; `None`: everyone whose group has no briefing of its own.
    pub group: Option<String>,
    pub title: String,
    /// Markdown.
    pub briefing: String,
    /// Markdown: the acceptable-use terms the person agrees to.
    pub terms: String,
    pub published_ms: i64,
    pub published_by: String,
}

/// A briefing to publish.
#[derive(Debug, Clone)]
pub struct NewBriefing<'a> {
    pub group: Option<&'a str>,
    pub title: &'a str,
    pub briefing: &'a str,
    pub terms: &'a str,
}

/// One acceptance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acceptance {
    pub username: String,
    pub briefing_id: i64,
    pub at_ms: i64,
    pub client_ip: String,
}

fn briefing_from_row(r: &sqlx::any::AnyRow) -> Briefing {
    Briefing {
        id: r.get("id"),
        group: r.get("group_name"),
        title: r.get("title"),
        briefing: r.get("briefing"),
        terms: r.get("terms"),
        published_ms: r.get("published_ms"),
        published_by: r.get("published_by"),
    }
}

impl Store {
    /// Publishes a new version (for `group`, or everyone), with its audit row.
    pub async fn publish_briefing(
        &self,
        b: &NewBriefing<'_>,
        audit: &AuditEntry,
    ) -> Result<Briefing, StoreError> {
        let mut tx = self.write_tx().await?;
        let row = sqlx::query(
            "INSERT INTO briefings (group_name, title, briefing, terms, published_ms, published_by) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING *",
        )
        .bind(b.group)
        .bind(b.title)
        .bind(b.briefing)
        .bind(b.terms)
        .bind(now_ms())
        .bind(&audit.actor)
        .fetch_one(&mut *tx)
        .await?;
        let briefing = briefing_from_row(&row);
        let mut audit = audit.clone();
        audit.target = format!("briefing:{}", briefing.id);
        audit.detail = format!("for {}", b.group.unwrap_or("everyone"));
        append(&mut tx, &audit).await?;
        tx.commit().await?;
        self.briefings_published
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(briefing)
    }

    /// How many briefings were published through this store in this process: a change means
    /// what anyone must accept may have changed.
    pub fn briefings_published(&self) -> u64 {
        self.briefings_published
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The version a member of `group` must have accepted: the group's own latest, else the
    /// latest for everyone; `None` when nothing was published.
    pub async fn current_briefing(&self, group: &str) -> Result<Option<Briefing>, StoreError> {
        let row = sqlx::query(
            "SELECT * FROM briefings WHERE group_name = $1 OR group_name IS NULL \
             ORDER BY CASE WHEN group_name IS NULL THEN 1 ELSE 0 END, id DESC LIMIT 1",
        )
        .bind(group)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(briefing_from_row))
    }

    /// One version.
    pub async fn briefing(&self, id: i64) -> Result<Option<Briefing>, StoreError> {
        let row = sqlx::query("SELECT * FROM briefings WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(briefing_from_row))
    }

    /// Every version, newest first.
    pub async fn briefings(&self) -> Result<Vec<Briefing>, StoreError> {
        let rows = sqlx::query("SELECT * FROM briefings ORDER BY id DESC")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(briefing_from_row).collect())
    }

    /// The version `username` (of `group`) still has to accept, if any.
    pub async fn briefing_due(
        &self,
        username: &str,
        group: &str,
    ) -> Result<Option<Briefing>, StoreError> {
        let Some(current) = self.current_briefing(group).await? else {
            return Ok(None);
        };
        let accepted: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM acceptances WHERE username = $1 AND briefing_id = $2",
        )
        .bind(username)
        .bind(current.id)
        .fetch_one(&self.pool)
        .await?;
        Ok((accepted == 0).then_some(current))
    }

    /// Records that `username` accepted version `briefing_id` at `ip`, and signs them in at
    /// that address until `expires_ms`: one transaction, with the audit row.
    pub async fn accept_briefing(
        &self,
        username: &str,
        briefing_id: i64,
        ip: IpAddr,
        expires_ms: i64,
    ) -> Result<(), UserError> {
        let username = normalize_username(username)?;
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "INSERT INTO acceptances (username, briefing_id, at_ms, client_ip) VALUES ($1, $2, $3, $4)",
        )
        .bind(&username)
        .bind(briefing_id)
        .bind(now_ms())
        .bind(ip.to_string())
        .execute(&mut *tx)
        .await?;
        bind_address(&mut tx, ip, &username, expires_ms).await?;
        let audit = AuditEntry {
            actor: username.clone(),
            action: "briefing.accept".into(),
            target: format!("briefing:{briefing_id}"),
            detail: String::new(),
            client_ip: ip.to_string(),
        };
        append(&mut tx, &audit).await.map_err(UserError::from)?;
        tx.commit().await?;
        Ok(())
    }

    /// Who accepted version `briefing_id` (`None`: every version), newest first.
    pub async fn acceptances(
        &self,
        briefing_id: Option<i64>,
    ) -> Result<Vec<Acceptance>, StoreError> {
        let rows = sqlx::query(
            "SELECT username, briefing_id, at_ms, client_ip FROM acceptances \
             WHERE $1 IS NULL OR briefing_id = $2 ORDER BY at_ms DESC, id DESC",
        )
        .bind(briefing_id)
        .bind(briefing_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| Acceptance {
                username: r.get("username"),
                briefing_id: r.get("briefing_id"),
                at_ms: r.get("at_ms"),
                client_ip: r.get("client_ip"),
            })
            .collect())
    }

    /// Acceptances per version (version, people who accepted it).
    pub async fn acceptance_counts(&self) -> Result<Vec<(i64, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT briefing_id, count(DISTINCT username) AS n FROM acceptances GROUP BY briefing_id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }
}

/// Signs `username` in at `ip` until `expires_ms`, replacing whoever was signed in there.
pub(crate) async fn bind_address(
    tx: &mut sqlx::AnyConnection,
    ip: IpAddr,
    username: &str,
    expires_ms: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM ip_sessions WHERE ip = $1")
        .bind(ip.to_string())
        .execute(&mut *tx)
        .await?;
    sqlx::query("INSERT INTO ip_sessions (ip, username, expires_ms) VALUES ($1, $2, $3)")
        .bind(ip.to_string())
        .bind(username)
        .bind(expires_ms)
        .execute(&mut *tx)
        .await?;
    Ok(())
}
