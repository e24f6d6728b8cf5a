//! The audit log: every sign-in, record view, change, export and configuration change, in a
//! hash chain. Each row's hash covers the previous row's hash and the row's own fields, so
//! [`Store::verify_audit`] finds any row edited, deleted or moved. The table refuses UPDATE and
//! DELETE (triggers), and Lookout has no code that would try.

use sha2::{Digest as _, Sha256};
use sqlx::Row;

use crate::{now_ms, Sql, Store, StoreError};

/// The `prev_hash` of the first row.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Something to put on record.
#[derive(Debug, Clone, Default)]
pub struct AuditEntry {
    /// Who: a user name, or `system` / `cli:<os user>` for Lookout's own actions.
    pub actor: String,
    /// What, as a dotted verb: `sign-in.ok`, `alert.view`, `incident.export`...
    pub action: String,
    /// What it was done to: `alert:12`, `incident:3`, `user:jo`...
    pub target: String,
    /// Anything else worth keeping (never a password or secret).
    pub detail: String,
    /// The address it came from ("" for the command line).
    pub client_ip: String,
}

impl AuditEntry {
    /// An entry without detail or address.
    pub fn new(actor: &str, action: &str, target: impl Into<String>) -> AuditEntry {
        AuditEntry {
            actor: actor.to_owned(),
            action: action.to_owned(),
            target: target.into(),
            ..AuditEntry::default()
        }
    }

    /// With detail.
    pub fn detail(mut self, detail: impl Into<String>) -> AuditEntry {
        self.detail = detail.into();
        self
    }

    /// With the client address.
    pub fn from_ip(mut self, ip: impl Into<String>) -> AuditEntry {
        self.client_ip = ip.into();
        self
    }
}

/// A row of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    pub seq: i64,
    pub at_ms: i64,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub detail: String,
    pub client_ip: String,
    pub prev_hash: String,
    pub hash: String,
}

/// A row's hash: SHA-256 over the previous hash and each field, each field length-prefixed so
/// that no two different rows give the same bytes.
pub fn audit_hash(prev_hash: &str, seq: i64, at_ms: i64, fields: [&str; 5]) -> String {
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(seq.to_be_bytes());
    h.update(at_ms.to_be_bytes());
    for f in fields {
        h.update((f.len() as u64).to_be_bytes());
        h.update(f.as_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

impl AuditRow {
    fn computed_hash(&self) -> String {
        audit_hash(
            &self.prev_hash,
            self.seq,
            self.at_ms,
            [
                &self.actor,
                &self.action,
                &self.target,
                &self.detail,
                &self.client_ip,
            ],
        )
    }
}

/// What is wrong with the chain at a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditProblem {
    /// The row's content no longer matches its hash: it was edited.
    Altered { seq: i64 },
    /// The row does not follow the one before it: rows between were deleted, or rows were
    /// reordered or inserted.
    BrokenLink { seq: i64, after: Option<i64> },
    /// Sequence numbers skip: rows were deleted.
    Gap { after: i64, next: i64 },
}

impl std::fmt::Display for AuditProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuditProblem::Altered { seq } => {
                write!(f, "row {seq}: its content does not match its hash (edited)")
            }
            AuditProblem::BrokenLink {
                seq,
                after: Some(a),
            } => write!(
                f,
                "row {seq}: does not follow row {a} (rows deleted, inserted or reordered)"
            ),
            AuditProblem::BrokenLink { seq, after: None } => write!(
                f,
                "row {seq}: is first but does not start the chain (earlier rows deleted)"
            ),
            AuditProblem::Gap { after, next } => {
                write!(
                    f,
                    "rows {} to {} are missing (deleted)",
                    after + 1,
                    next - 1
                )
            }
        }
    }
}

/// The result of checking the whole chain.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuditVerification {
    pub rows: u64,
    /// The last row's sequence number and hash.
    pub head: Option<(i64, String)>,
    pub problems: Vec<AuditProblem>,
}

/// Which rows to read.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor: Option<String>,
    /// Actions starting with this.
    pub action: Option<String>,
    pub target: Option<String>,
    /// Rows before this sequence number (paging back).
    pub before_seq: Option<i64>,
    pub limit: Option<u32>,
}

fn row_from(r: &sqlx::any::AnyRow) -> AuditRow {
    AuditRow {
        seq: r.get("seq"),
        at_ms: r.get("at_ms"),
        actor: r.get("actor"),
        action: r.get("action"),
        target: r.get("target"),
        detail: r.get("detail"),
        client_ip: r.get("client_ip"),
        prev_hash: r.get("prev_hash"),
        hash: r.get("hash"),
    }
}

/// Appends to the chain inside a transaction that already holds the write lock (`BEGIN
/// IMMEDIATE`), so that the change and its record commit together.
pub(crate) async fn append(
    conn: &mut sqlx::AnyConnection,
    e: &AuditEntry,
) -> Result<i64, StoreError> {
    let last: Option<(i64, String)> =
        sqlx::query_as("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut *conn)
            .await?;
    let (seq, prev) = match last {
        Some((s, h)) => (s + 1, h),
        None => (1, GENESIS.to_owned()),
    };
    let at = now_ms();
    let hash = audit_hash(
        &prev,
        seq,
        at,
        [&e.actor, &e.action, &e.target, &e.detail, &e.client_ip],
    );
    sqlx::query(
        "INSERT INTO audit_log (seq, at_ms, actor, action, target, detail, client_ip, prev_hash, hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(seq)
    .bind(at)
    .bind(&e.actor)
    .bind(&e.action)
    .bind(&e.target)
    .bind(&e.detail)
    .bind(&e.client_ip)
    .bind(&prev)
    .bind(&hash)
    .execute(&mut *conn)
    .await?;
    Ok(seq)
}

impl Store {
    /// Puts one entry on record; returns its sequence number.
    pub async fn audit(&self, e: &AuditEntry) -> Result<i64, StoreError> {
        let mut tx = self.write_tx().await?;
        let seq = append(&mut tx, e).await?;
        tx.commit().await?;
        Ok(seq)
    }

    /// Rows, newest first.
    pub async fn audit_log(&self, f: &AuditFilter) -> Result<Vec<AuditRow>, StoreError> {
        let mut q = Sql::new(self.dialect, "SELECT * FROM audit_log WHERE 1 = 1");
        if let Some(a) = &f.actor {
            q.push(" AND actor = ").push_bind(a.clone());
        }
        if let Some(a) = &f.action {
            q.push(" AND substr(action, 1, length(")
                .push_bind(a.clone())
                .push(")) = ")
                .push_bind(a.clone());
        }
        if let Some(t) = &f.target {
            q.push(" AND target = ").push_bind(t.clone());
        }
        if let Some(b) = f.before_seq {
            q.push(" AND seq < ").push_bind(b);
        }
        q.push(" ORDER BY seq DESC LIMIT ")
            .push_bind(i64::from(f.limit.unwrap_or(100)));
        let (sql, args) = q.into_parts()?;
        let rows = sqlx::query_with(&sql, args).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(row_from).collect())
    }

    /// The last row's sequence number and hash: what a signed check records, so that even a
    /// rewrite of the whole chain after it is caught.
    pub async fn audit_head(&self) -> Result<Option<(i64, String)>, StoreError> {
        Ok(
            sqlx::query_as("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// The hash of row `seq`, if it exists.
    pub async fn audit_hash_at(&self, seq: i64) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT hash FROM audit_log WHERE seq = $1")
                .bind(seq)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Checks the whole chain, in pages (memory stays flat however long the log).
    pub async fn verify_audit(&self) -> Result<AuditVerification, StoreError> {
        let mut v = AuditVerification::default();
        let mut prev: Option<AuditRow> = None;
        let mut after = i64::MIN;
        loop {
            let rows =
                sqlx::query("SELECT * FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT 5000")
                    .bind(after)
                    .fetch_all(&self.pool)
                    .await?;
            if rows.is_empty() {
                break;
            }
            for r in rows.iter().map(row_from) {
                v.rows += 1;
                if r.computed_hash() != r.hash {
                    v.problems.push(AuditProblem::Altered { seq: r.seq });
                }
                let expected_prev = prev.as_ref().map_or(GENESIS, |p| p.hash.as_str());
                if r.prev_hash != expected_prev {
                    v.problems.push(AuditProblem::BrokenLink {
                        seq: r.seq,
                        after: prev.as_ref().map(|p| p.seq),
                    });
                }
                let expected_seq = prev.as_ref().map_or(1, |p| p.seq + 1);
                if r.seq > expected_seq {
                    v.problems.push(AuditProblem::Gap {
                        after: expected_seq - 1,
                        next: r.seq,
                    });
                }
                after = r.seq;
                prev = Some(r);
            }
        }
        v.head = prev.map(|p| (p.seq, p.hash));
        Ok(v)
    }
}
