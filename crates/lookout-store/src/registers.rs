//! The register of official social-media accounts (both seeds): platform, handle, purpose,
//! owner, and who holds admin rights since when. Every change is kept (a new version of the
//! account, an event for an admin). When a Lookout user is disabled, their admin rights on
//! every registered account are flagged for revocation, and stay on the checklist until
//! someone records that they were revoked on the platform.
//!
//! Also the CSV cell writer every register export uses, which neutralises spreadsheet
//! formulas.

use sqlx::Row;

use crate::audit::append;
use crate::{now_ms, AuditEntry, Store, StoreError};

/// The current version of an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocialAccount {
    /// Stable across versions.
    pub account_id: i64,
    pub version: i64,
    pub at_ms: i64,
    pub by_user: String,
    pub platform: String,
    pub handle: String,
    pub purpose: String,
    pub owner: String,
    pub retired: bool,
}

/// What an account is, as typed.
#[derive(Debug, Clone)]
pub struct AccountFields<'a> {
    pub platform: &'a str,
    pub handle: &'a str,
    pub purpose: &'a str,
    pub owner: &'a str,
    pub retired: bool,
}

/// Someone's admin rights on an account, now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocialAdmin {
    pub account_id: i64,
    pub admin: String,
    /// A Lookout user (flagged when disabled) or a named person.
    pub is_user: bool,
    pub added_ms: i64,
    pub added_by: String,
    /// Flagged for revocation (their account was disabled) since then.
    pub revoke_since: Option<i64>,
}

/// One event in an account's admin history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminEvent {
    pub account_id: i64,
    pub admin: String,
    /// A Lookout user name (else a named person).
    pub is_user: bool,
    pub kind: String,
    pub at_ms: i64,
    pub by_user: String,
    pub note: String,
}

fn account_from_row(r: &sqlx::any::AnyRow) -> SocialAccount {
    SocialAccount {
        account_id: r.get("account_id"),
        version: r.get("id"),
        at_ms: r.get("at_ms"),
        by_user: r.get("by_user"),
        platform: r.get("platform"),
        handle: r.get("handle"),
        purpose: r.get("purpose"),
        owner: r.get("owner"),
        retired: r.get::<i64, _>("retired") != 0,
    }
}

/// Folds admin events (oldest first) into who holds rights now.
fn current_admins(events: &[AdminEvent]) -> Vec<SocialAdmin> {
    let mut now: Vec<SocialAdmin> = Vec::new();
    for e in events {
        let at = now
            .iter()
            .position(|a| a.account_id == e.account_id && a.admin == e.admin);
        match (e.kind.as_str(), at) {
            ("added", None) => now.push(SocialAdmin {
                account_id: e.account_id,
                admin: e.admin.clone(),
                is_user: e.is_user,
                added_ms: e.at_ms,
                added_by: e.by_user.clone(),
                revoke_since: None,
            }),
            ("removed" | "revoked", Some(i)) => {
                now.remove(i);
            }
            ("revoke", Some(i)) => {
                now[i].revoke_since.get_or_insert(e.at_ms);
            }
            _ => {}
        }
    }
    now
}

/// The stable id of a versioned record (an account, an assessment, a course): `id` for a new
/// version of one, else the next unused id of `column` in `table` (inside the caller's
/// `BEGIN IMMEDIATE` transaction, so two new records never share one).
pub(crate) async fn record_id(
    tx: &mut sqlx::AnyConnection,
    id: Option<i64>,
    table: &str,
    column: &str,
) -> Result<i64, sqlx::Error> {
    match id {
        Some(id) => Ok(id),
        None => {
            sqlx::query_scalar(&format!(
                "SELECT COALESCE(MAX({column}), 0) + 1 FROM {table}"
            ))
            .fetch_one(tx)
            .await
        }
    }
}

impl Store {
    /// Adds an account (`account_id: None`) or a new version of one; with its audit row.
    pub async fn save_social_account(
        &self,
        account_id: Option<i64>,
        f: &AccountFields<'_>,
        audit: &AuditEntry,
    ) -> Result<SocialAccount, StoreError> {
        let mut tx = self.write_tx().await?;
        let account_id = record_id(&mut tx, account_id, "social_accounts", "account_id").await?;
        let row = sqlx::query(
            "INSERT INTO social_accounts (account_id, at_ms, by_user, platform, handle, purpose, owner, retired) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING *",
        )
        .bind(account_id)
        .bind(now_ms())
        .bind(&audit.actor)
        .bind(f.platform)
        .bind(f.handle)
        .bind(f.purpose)
        .bind(f.owner)
        .bind(i64::from(f.retired))
        .fetch_one(&mut *tx)
        .await?;
        let mut audit = audit.clone();
        audit.target = format!("social-account:{account_id}");
        append(&mut tx, &audit).await?;
        tx.commit().await?;
        Ok(account_from_row(&row))
    }

    /// Every account's current version, by platform and handle.
    pub async fn social_accounts(&self) -> Result<Vec<SocialAccount>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM social_accounts s WHERE id = (SELECT MAX(id) FROM social_accounts t \
             WHERE t.account_id = s.account_id) ORDER BY platform, handle",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(account_from_row).collect())
    }

    /// One account's versions, newest first.
    pub async fn social_account_history(
        &self,
        account_id: i64,
    ) -> Result<Vec<SocialAccount>, StoreError> {
        let rows =
            sqlx::query("SELECT * FROM social_accounts WHERE account_id = $1 ORDER BY id DESC")
                .bind(account_id)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.iter().map(account_from_row).collect())
    }

    /// Records an admin event (`added`, `removed`, `revoked`) on an account, with its audit
    /// row. `is_user`: the admin is a Lookout user name.
    pub async fn social_admin_event(
        &self,
        account_id: i64,
        admin: &str,
        is_user: bool,
        kind: &str,
        note: &str,
        audit: &AuditEntry,
    ) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "INSERT INTO social_admin_events (account_id, admin, is_user, kind, at_ms, by_user, note) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(account_id)
        .bind(admin)
        .bind(i64::from(is_user))
        .bind(kind)
        .bind(now_ms())
        .bind(&audit.actor)
        .bind(note)
        .execute(&mut *tx)
        .await?;
        let mut audit = audit.clone();
        audit.target = format!("social-account:{account_id}");
        audit.detail = format!("{kind} {admin}");
        append(&mut tx, &audit).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every admin event, oldest first (for one account, or all).
    pub async fn social_admin_events(
        &self,
        account_id: Option<i64>,
    ) -> Result<Vec<AdminEvent>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        Ok(admin_events(&mut conn, account_id, None).await?)
    }

    /// Who holds admin rights now, on every account.
    pub async fn social_admins(&self) -> Result<Vec<SocialAdmin>, StoreError> {
        Ok(current_admins(&self.social_admin_events(None).await?))
    }
}

/// Admin events, oldest first, of one account or all, and of one admin or all.
async fn admin_events(
    conn: &mut sqlx::AnyConnection,
    account_id: Option<i64>,
    admin: Option<&str>,
) -> Result<Vec<AdminEvent>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT * FROM social_admin_events WHERE ($1 IS NULL OR account_id = $2) \
         AND ($3 IS NULL OR admin = $4) ORDER BY id",
    )
    .bind(account_id)
    .bind(account_id)
    .bind(admin)
    .bind(admin)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .iter()
        .map(|r| AdminEvent {
            account_id: r.get("account_id"),
            admin: r.get("admin"),
            is_user: r.get::<i64, _>("is_user") != 0,
            kind: r.get("kind"),
            at_ms: r.get("at_ms"),
            by_user: r.get("by_user"),
            note: r.get("note"),
        })
        .collect())
}

/// Flags `username`'s admin rights on every registered account for revocation (inside the
/// transaction that disables them); how many were flagged.
pub(crate) async fn flag_admin_rights(
    tx: &mut sqlx::AnyConnection,
    username: &str,
) -> Result<u64, sqlx::Error> {
    // Where they hold rights now and are not flagged already.
    let holding: Vec<i64> = current_admins(&admin_events(tx, None, Some(username)).await?)
        .into_iter()
        .filter(|a| a.is_user && a.revoke_since.is_none())
        .map(|a| a.account_id)
        .collect();
    for account in &holding {
        sqlx::query(
            "INSERT INTO social_admin_events (account_id, admin, is_user, kind, at_ms, by_user, note) \
             VALUES ($1, $2, 1, 'revoke', $3, 'system', 'their Lookout account was disabled')",
        )
        .bind(account)
        .bind(username)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
    }
    Ok(holding.len() as u64)
}

/// One CSV cell: quoted when it must be, and a cell a spreadsheet would run as a formula
/// (starting `=`, `+`, `-`, `@`, tab or carriage return) gets a leading `'` so it shows as
/// text.
pub fn csv_cell(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// A CSV line from cells.
pub fn csv_line(cells: &[&str]) -> String {
    let mut line = cells
        .iter()
        .map(|c| csv_cell(c))
        .collect::<Vec<_>>()
        .join(",");
    line.push_str("\r\n");
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_never_run_as_formulas() {
        for (cell, want) in [
            ("plain", "plain"),
            (
                "=HYPERLINK(\"http://evil\")",
                "\"'=HYPERLINK(\"\"http://evil\"\")\"",
            ),
            ("+44 20 7946 0000", "'+44 20 7946 0000"),
            ("-1", "'-1"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("a, b", "\"a, b\""),
            ("line\nbreak", "\"line\nbreak\""),
            ("", ""),
        ] {
            assert_eq!(csv_cell(cell), want, "{cell:?}");
        }
        assert_eq!(csv_line(&["a", "=1"]), "a,'=1\r\n");
    }
}

/// One recorded review of the e-safety policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyReview {
    pub id: i64,
    pub at_ms: i64,
    pub recorded_by: String,
    /// The day it was reviewed.
    pub reviewed_on_ms: i64,
    /// Who reviewed it (names and roles, as typed).
    pub reviewers: String,
    /// What changed.
    pub changes: String,
    pub next_due_ms: i64,
}

impl Store {
    /// Records a review of the policy, with its audit row.
    pub async fn record_policy_review(
        &self,
        reviewed_on_ms: i64,
        reviewers: &str,
        changes: &str,
        next_due_ms: i64,
        audit: &AuditEntry,
    ) -> Result<PolicyReview, StoreError> {
        let mut tx = self.write_tx().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO policy_reviews (at_ms, recorded_by, reviewed_on_ms, reviewers, changes, next_due_ms) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(now_ms())
        .bind(&audit.actor)
        .bind(reviewed_on_ms)
        .bind(reviewers)
        .bind(changes)
        .bind(next_due_ms)
        .fetch_one(&mut *tx)
        .await?;
        let mut audit = audit.clone();
        audit.target = format!("policy-review:{id}");
        append(&mut tx, &audit).await?;
        tx.commit().await?;
        self.policy_reviews()
            .await?
            .into_iter()
            .find(|r| r.id == id)
            .ok_or(StoreError::Query(sqlx::Error::RowNotFound))
    }

    /// Every review, the latest first.
    pub async fn policy_reviews(&self) -> Result<Vec<PolicyReview>, StoreError> {
        let rows =
            sqlx::query("SELECT * FROM policy_reviews ORDER BY reviewed_on_ms DESC, id DESC")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows
            .iter()
            .map(|r| PolicyReview {
                id: r.get("id"),
                at_ms: r.get("at_ms"),
                recorded_by: r.get("recorded_by"),
                reviewed_on_ms: r.get("reviewed_on_ms"),
                reviewers: r.get("reviewers"),
                changes: r.get("changes"),
                next_due_ms: r.get("next_due_ms"),
            })
            .collect())
    }
}

/// One version of a technology's risk assessment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TechAssessment {
    /// Stable across versions.
    pub assessment_id: i64,
    pub version: i64,
    pub at_ms: i64,
    pub by_user: String,
    pub fields: TechFields,
}

/// What an assessment says.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TechFields {
    pub name: String,
    pub requested_by: String,
    pub data_held: String,
    pub risks: String,
    pub mitigations: String,
    /// `approved`, `refused` or `conditions` (approved with conditions).
    pub decision: String,
    pub conditions: String,
    pub reviewer: String,
    pub review_due_ms: i64,
}

fn assessment_from_row(r: &sqlx::any::AnyRow) -> TechAssessment {
    TechAssessment {
        assessment_id: r.get("assessment_id"),
        version: r.get("id"),
        at_ms: r.get("at_ms"),
        by_user: r.get("by_user"),
        fields: TechFields {
            name: r.get("name"),
            requested_by: r.get("requested_by"),
            data_held: r.get("data_held"),
            risks: r.get("risks"),
            mitigations: r.get("mitigations"),
            decision: r.get("decision"),
            conditions: r.get("conditions"),
            reviewer: r.get("reviewer"),
            review_due_ms: r.get("review_due_ms"),
        },
    }
}

impl Store {
    /// Adds an assessment (`assessment_id: None`) or a new version of one, with its audit row.
    pub async fn save_assessment(
        &self,
        assessment_id: Option<i64>,
        f: &TechFields,
        audit: &AuditEntry,
    ) -> Result<TechAssessment, StoreError> {
        let mut tx = self.write_tx().await?;
        let assessment_id =
            record_id(&mut tx, assessment_id, "tech_assessments", "assessment_id").await?;
        let row = sqlx::query(
            "INSERT INTO tech_assessments (assessment_id, at_ms, by_user, name, requested_by, data_held, risks, mitigations, decision, conditions, reviewer, review_due_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING *",
        )
        .bind(assessment_id)
        .bind(now_ms())
        .bind(&audit.actor)
        .bind(&f.name)
        .bind(&f.requested_by)
        .bind(&f.data_held)
        .bind(&f.risks)
        .bind(&f.mitigations)
        .bind(&f.decision)
        .bind(&f.conditions)
        .bind(&f.reviewer)
        .bind(f.review_due_ms)
        .fetch_one(&mut *tx)
        .await?;
        let mut audit = audit.clone();
        audit.target = format!("assessment:{assessment_id}");
        audit.detail = f.decision.clone();
        append(&mut tx, &audit).await?;
        tx.commit().await?;
        Ok(assessment_from_row(&row))
    }

    /// Every assessment's current version, the next review first.
    pub async fn assessments(&self) -> Result<Vec<TechAssessment>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM tech_assessments s WHERE id = (SELECT MAX(id) FROM tech_assessments t \
             WHERE t.assessment_id = s.assessment_id) ORDER BY review_due_ms, name",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(assessment_from_row).collect())
    }

    /// One assessment's versions, newest first.
    pub async fn assessment_history(&self, id: i64) -> Result<Vec<TechAssessment>, StoreError> {
        let rows =
            sqlx::query("SELECT * FROM tech_assessments WHERE assessment_id = $1 ORDER BY id DESC")
                .bind(id)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.iter().map(assessment_from_row).collect())
    }
}
