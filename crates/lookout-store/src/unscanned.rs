//! Texts whose scan failed, kept for a retry.

use sqlx::Row;

use crate::{now_ms, Store, StoreError, Subject};

/// A text the scanner could not scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unscanned {
    /// Its row, once stored.
    pub id: i64,
    pub at_ms: i64,
    /// Where it came from (`search`, `chat`...).
    pub source: String,
    pub text: String,
    pub location: String,
    pub subject: Subject,
    /// What went wrong.
    pub error: String,
}

impl Store {
    /// Keeps a text whose scan failed.
    pub async fn keep_unscanned(&self, u: &Unscanned) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO unscanned (kept_ms, at_ms, source, text, location, username, client_ip, device, group_name, error) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(now_ms())
        .bind(u.at_ms)
        .bind(&u.source)
        .bind(&u.text)
        .bind(&u.location)
        .bind(&u.subject.username)
        .bind(&u.subject.client_ip)
        .bind(&u.subject.device)
        .bind(&u.subject.group)
        .bind(&u.error)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Every kept text, oldest first.
    pub async fn unscanned(&self) -> Result<Vec<Unscanned>, StoreError> {
        let rows = sqlx::query("SELECT * FROM unscanned ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(|r| Unscanned {
                id: r.get("id"),
                at_ms: r.get("at_ms"),
                source: r.get("source"),
                text: r.get("text"),
                location: r.get("location"),
                subject: Subject {
                    username: r.get("username"),
                    client_ip: r.get("client_ip"),
                    device: r.get("device"),
                    group: r.get("group_name"),
                    site: None,
                },
                error: r.get("error"),
            })
            .collect())
    }

    /// Forgets a kept text (handed to the scanner again).
    pub async fn forget_unscanned(&self, id: i64) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM unscanned WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
