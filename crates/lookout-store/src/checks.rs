//! Routine checks, signed by a DSL and co-signed by a supervisor with their own Ed25519 keys,
//! chained so that a deleted or reordered check is found, and anchored to the audit log.

use lookout_auth::{canonical_json, verify_signature};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use sqlx::Row;

use crate::audit::{append, AuditEntry, GENESIS};
use crate::{now_ms, Store, StoreError};

/// A check as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub id: i64,
    pub content: Value,
    pub dsl: String,
    pub dsl_key_id: i64,
    pub dsl_signature: String,
    pub signed_ms: i64,
    pub supervisor: Option<String>,
    pub supervisor_key_id: Option<i64>,
    pub supervisor_signature: Option<String>,
    pub cosigned_ms: Option<i64>,
    pub prev_hash: String,
    pub hash: String,
}

/// What a supervisor signs: the check's content, the DSL's signature, and who and when.
pub fn cosign_message(
    content: &Value,
    dsl_signature: &str,
    supervisor: &str,
    at_ms: i64,
) -> Vec<u8> {
    canonical_json(&json!({
        "check": content,
        "dsl_signature": dsl_signature,
        "supervisor": supervisor,
        "cosigned_ms": at_ms,
    }))
}

/// A check's chain hash: SHA-256 over the previous hash, the canonical content and the DSL's
/// signature.
pub fn check_hash(prev: &str, content: &Value, dsl_signature: &str) -> String {
    let mut h = Sha256::new();
    h.update(prev.as_bytes());
    h.update(canonical_json(content));
    h.update(dsl_signature.as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Why a check cannot be co-signed.
#[derive(Debug, thiserror::Error)]
pub enum CosignError {
    #[error("no check {0}")]
    NotFound(i64),
    #[error("this check was already co-signed by {0}")]
    AlreadyCosigned(String),
    #[error("a check cannot be co-signed by the person who signed it")]
    OwnCheck,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for CosignError {
    fn from(e: sqlx::Error) -> Self {
        CosignError::Store(e.into())
    }
}

fn check_row(r: &sqlx::any::AnyRow) -> Check {
    Check {
        id: r.get("id"),
        content: serde_json::from_str(&r.get::<String, _>("content")).unwrap_or(Value::Null),
        dsl: r.get("dsl"),
        dsl_key_id: r.get("dsl_key_id"),
        dsl_signature: r.get("dsl_signature"),
        signed_ms: r.get("signed_ms"),
        supervisor: r.get("supervisor"),
        supervisor_key_id: r.get("supervisor_key_id"),
        supervisor_signature: r.get("supervisor_signature"),
        cosigned_ms: r.get("cosigned_ms"),
        prev_hash: r.get("prev_hash"),
        hash: r.get("hash"),
    }
}

impl Store {
    /// Stores a check a DSL signed (`signature` over `canonical_json(content)` with key
    /// `key_id`), chained after the last one, with its audit entry.
    pub async fn add_check(
        &self,
        content: &Value,
        dsl: &str,
        key_id: i64,
        signature: &str,
        audit: &AuditEntry,
    ) -> Result<Check, StoreError> {
        let mut tx = self.write_tx().await?;
        let prev: String = sqlx::query_scalar("SELECT hash FROM checks ORDER BY id DESC LIMIT 1")
            .fetch_optional(&mut *tx)
            .await?
            .unwrap_or_else(|| GENESIS.to_owned());
        let hash = check_hash(&prev, content, signature);
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO checks (content, dsl, dsl_key_id, dsl_signature, signed_ms, prev_hash, hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(String::from_utf8_lossy(&canonical_json(content)).into_owned())
        .bind(dsl)
        .bind(key_id)
        .bind(signature)
        .bind(now_ms())
        .bind(&prev)
        .bind(&hash)
        .fetch_one(&mut *tx)
        .await?;
        let mut audit = audit.clone();
        audit.target = format!("check:{id}");
        append(&mut tx, &audit).await?;
        tx.commit().await?;
        self.check(id)
            .await?
            .ok_or(StoreError::Query(sqlx::Error::RowNotFound))
    }

    /// Adds the supervisor's co-signature (over [`cosign_message`]).
    pub async fn cosign_check(
        &self,
        id: i64,
        supervisor: &str,
        key_id: i64,
        signature: &str,
        at_ms: i64,
        audit: &AuditEntry,
    ) -> Result<Check, CosignError> {
        let mut tx = self.write_tx().await?;
        let Some(row) = sqlx::query("SELECT * FROM checks WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Err(CosignError::NotFound(id));
        };
        let check = check_row(&row);
        if let Some(by) = check.supervisor {
            return Err(CosignError::AlreadyCosigned(by));
        }
        if check.dsl == supervisor {
            return Err(CosignError::OwnCheck);
        }
        sqlx::query(
            "UPDATE checks SET supervisor = $1, supervisor_key_id = $2, supervisor_signature = $3, cosigned_ms = $4 WHERE id = $5",
        )
        .bind(supervisor)
        .bind(key_id)
        .bind(signature)
        .bind(at_ms)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        append(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(self
            .check(id)
            .await?
            .ok_or(StoreError::Query(sqlx::Error::RowNotFound))?)
    }

    pub async fn check(&self, id: i64) -> Result<Option<Check>, StoreError> {
        let row = sqlx::query("SELECT * FROM checks WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(check_row))
    }

    /// Every check, newest first.
    pub async fn checks(&self, limit: u32) -> Result<Vec<Check>, StoreError> {
        let rows = sqlx::query("SELECT * FROM checks ORDER BY id DESC LIMIT $1")
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(check_row).collect())
    }

    /// Verifies every check: both signatures against the signers' keys (which must be theirs),
    /// the chain, and that the audit log still holds the row each check recorded as its head.
    /// Returns (checks read, problems).
    pub async fn verify_checks(&self) -> Result<(usize, Vec<String>), StoreError> {
        let rows = sqlx::query("SELECT * FROM checks ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        let mut problems = Vec::new();
        let mut prev = GENESIS.to_owned();
        for c in rows.iter().map(check_row) {
            let id = c.id;
            if c.prev_hash != prev {
                problems.push(format!(
                    "check {id}: does not follow the check before it (checks deleted or reordered)"
                ));
            }
            if check_hash(&c.prev_hash, &c.content, &c.dsl_signature) != c.hash {
                problems.push(format!(
                    "check {id}: its content or signature no longer matches its hash (edited)"
                ));
            }
            prev = c.hash.clone();
            match self.signing_key_by_id(c.dsl_key_id).await? {
                Some(k) if k.username == c.dsl => {
                    if verify_signature(
                        &k.key.public,
                        &canonical_json(&c.content),
                        &c.dsl_signature,
                    )
                    .is_err()
                    {
                        problems.push(format!(
                            "check {id}: {}'s signature does not match the content (edited)",
                            c.dsl
                        ));
                    }
                }
                _ => problems.push(format!("check {id}: the signing key is not {}'s", c.dsl)),
            }
            if c.content.get("dsl").and_then(Value::as_str) != Some(c.dsl.as_str()) {
                problems.push(format!("check {id}: signed content names another DSL"));
            }
            if let (Some(sup), Some(key_id), Some(sig), Some(at)) = (
                &c.supervisor,
                c.supervisor_key_id,
                &c.supervisor_signature,
                c.cosigned_ms,
            ) {
                match self.signing_key_by_id(key_id).await? {
                    Some(k) if &k.username == sup => {
                        let msg = cosign_message(&c.content, &c.dsl_signature, sup, at);
                        if verify_signature(&k.key.public, &msg, sig).is_err() {
                            problems.push(format!(
                                "check {id}: {sup}'s co-signature does not match (edited)"
                            ));
                        }
                    }
                    _ => problems.push(format!("check {id}: the co-signing key is not {sup}'s")),
                }
                if sup == &c.dsl {
                    problems.push(format!("check {id}: co-signed by the person who signed it"));
                }
            }
            if let (Some(seq), Some(hash)) = (
                c.content.pointer("/audit_head/seq").and_then(Value::as_i64),
                c.content
                    .pointer("/audit_head/hash")
                    .and_then(Value::as_str),
            ) {
                if self.audit_hash_at(seq).await?.as_deref() != Some(hash) {
                    problems.push(format!("check {id}: the audit log no longer holds entry {seq} as it was when the check was signed (audit log rewritten)"));
                }
            }
        }
        Ok((rows.len(), problems))
    }
}
