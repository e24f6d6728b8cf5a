//! The safeguarding file: incidents as append-only entries. Nothing is edited in place — a
//! correction is a new entry naming the one it corrects — and every entry is attributable
//! (who, when) and on the audit log, committed in the same transaction.

use serde_json::Value;
use sqlx::Row;

use crate::audit::{append, AuditEntry};
use crate::{now_ms, Store, StoreError};

/// An incident's summary, for lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incident {
    pub id: i64,
    pub reference: String,
    pub opened_ms: i64,
    pub opened_by: String,
    pub title: String,
    pub category: String,
    /// `open` or `closed`.
    pub status: String,
    pub updated_ms: i64,
}

/// One entry of the chronology.
#[derive(Debug, Clone, PartialEq)]
pub struct IncidentEntry {
    pub id: i64,
    pub incident_id: i64,
    pub at_ms: i64,
    pub by_user: String,
    pub kind: String,
    pub body: Value,
    pub corrects: Option<i64>,
}

/// An entry to add.
#[derive(Debug, Clone)]
pub struct NewEntry {
    pub kind: String,
    pub body: Value,
    pub corrects: Option<i64>,
    /// A person to link for "their incidents": (user name if they have an account, name).
    pub person: Option<(Option<String>, String)>,
    /// The summary changes this entry makes: title, category, status.
    pub title: Option<String>,
    pub category: Option<String>,
    pub status: Option<String>,
}

impl NewEntry {
    pub fn new(kind: &str, body: Value) -> NewEntry {
        NewEntry {
            kind: kind.to_owned(),
            body,
            corrects: None,
            person: None,
            title: None,
            category: None,
            status: None,
        }
    }
}

/// Why an entry was not added.
#[derive(Debug, thiserror::Error)]
pub enum IncidentError {
    #[error("no incident {0}")]
    NotFound(i64),
    /// The corrected entry is not this incident's.
    #[error("entry {0} is not part of this incident")]
    NotInIncident(i64),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for IncidentError {
    fn from(e: sqlx::Error) -> Self {
        IncidentError::Store(e.into())
    }
}

const INCIDENT_COLUMNS: &str =
    "id, reference, opened_ms, opened_by, title, category, status, updated_ms";

fn incident_row(r: &sqlx::any::AnyRow) -> Incident {
    Incident {
        id: r.get("id"),
        reference: r.get("reference"),
        opened_ms: r.get("opened_ms"),
        opened_by: r.get("opened_by"),
        title: r.get("title"),
        category: r.get("category"),
        status: r.get("status"),
        updated_ms: r.get("updated_ms"),
    }
}

async fn add_entry(
    tx: &mut sqlx::AnyConnection,
    incident: i64,
    by: &str,
    e: &NewEntry,
    now: i64,
) -> Result<i64, IncidentError> {
    if let Some(c) = e.corrects {
        let owner: Option<i64> =
            sqlx::query_scalar("SELECT incident_id FROM incident_entries WHERE id = $1")
                .bind(c)
                .fetch_optional(&mut *tx)
                .await?;
        if owner != Some(incident) {
            return Err(IncidentError::NotInIncident(c));
        }
    }
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO incident_entries (incident_id, at_ms, by_user, kind, body, corrects) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(incident)
    .bind(now)
    .bind(by)
    .bind(&e.kind)
    .bind(e.body.to_string())
    .bind(e.corrects)
    .fetch_one(&mut *tx)
    .await?;
    if let Some((username, name)) = &e.person {
        sqlx::query(
            "INSERT INTO incident_people (incident_id, entry_id, username, name) VALUES ($1, $2, $3, $4)",
        )
        .bind(incident)
        .bind(id)
        .bind(username)
        .bind(name)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query(
        "UPDATE incidents SET updated_ms = $1, title = COALESCE($2, title), \
         category = COALESCE($3, category), status = COALESCE($4, status) WHERE id = $5",
    )
    .bind(now)
    .bind(&e.title)
    .bind(&e.category)
    .bind(&e.status)
    .bind(incident)
    .execute(&mut *tx)
    .await?;
    Ok(id)
}

impl Store {
    /// Opens an incident with its first entry (`kind` "opened"), linking `alerts` (each marked
    /// as having an incident), all with `audit`, in one transaction.
    pub async fn open_incident(
        &self,
        by: &str,
        title: &str,
        category: &str,
        first: &NewEntry,
        alerts: &[i64],
        audit: &AuditEntry,
    ) -> Result<Incident, IncidentError> {
        let now = now_ms();
        let mut tx = self.write_tx().await?;
        let year = chrono_year(now);
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM incidents WHERE substr(reference, 5, 4) = $1")
                .bind(year.to_string())
                .fetch_one(&mut *tx)
                .await?;
        let reference = format!("INC-{year}-{:04}", n + 1);
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO incidents (reference, opened_ms, opened_by, title, category, status, updated_ms) \
             VALUES ($1, $2, $3, $4, $5, 'open', $6) RETURNING id",
        )
        .bind(&reference)
        .bind(now)
        .bind(by)
        .bind(title)
        .bind(category)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        add_entry(&mut tx, id, by, first, now).await?;
        for alert in alerts {
            let e = NewEntry::new("alert", serde_json::json!({ "alert": alert }));
            add_entry(&mut tx, id, by, &e, now).await?;
            sqlx::query(
                "INSERT INTO alert_reviews (alert_id, at_ms, by_user, action, reason, incident_id) \
                 VALUES ($1, $2, $3, 'incident', $4, $5)",
            )
            .bind(alert)
            .bind(now)
            .bind(by)
            .bind(&reference)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            sqlx::query("UPDATE alerts SET status = 'incident' WHERE id = $1")
                .bind(alert)
                .execute(&mut *tx)
                .await?;
        }
        let mut audit = audit.clone();
        audit.target = format!("incident:{id}");
        append(&mut tx, &audit).await?;
        tx.commit().await?;
        Ok(Incident {
            id,
            reference,
            opened_ms: now,
            opened_by: by.to_owned(),
            title: title.to_owned(),
            category: category.to_owned(),
            status: "open".into(),
            updated_ms: now,
        })
    }

    /// Adds an entry (and its audit record) to an incident.
    pub async fn add_incident_entry(
        &self,
        incident: i64,
        by: &str,
        entry: &NewEntry,
        audit: &AuditEntry,
    ) -> Result<i64, IncidentError> {
        let now = now_ms();
        let mut tx = self.write_tx().await?;
        let exists: Option<i64> = sqlx::query_scalar("SELECT id FROM incidents WHERE id = $1")
            .bind(incident)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Err(IncidentError::NotFound(incident));
        }
        let id = add_entry(&mut tx, incident, by, entry, now).await?;
        append(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Incidents, open first, most recently changed first.
    pub async fn incidents(&self, limit: u32) -> Result<Vec<Incident>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {INCIDENT_COLUMNS} FROM incidents \
             ORDER BY CASE status WHEN 'open' THEN 0 ELSE 1 END, updated_ms DESC LIMIT $1"
        ))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(incident_row).collect())
    }

    /// One incident with its entries, oldest first.
    pub async fn incident(
        &self,
        id: i64,
    ) -> Result<Option<(Incident, Vec<IncidentEntry>)>, StoreError> {
        let Some(row) = sqlx::query(&format!(
            "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let entries = sqlx::query(
            "SELECT id, incident_id, at_ms, by_user, kind, body, corrects FROM incident_entries \
             WHERE incident_id = $1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| IncidentEntry {
            id: r.get("id"),
            incident_id: r.get("incident_id"),
            at_ms: r.get("at_ms"),
            by_user: r.get("by_user"),
            kind: r.get("kind"),
            body: serde_json::from_str(&r.get::<String, _>("body")).unwrap_or(Value::Null),
            corrects: r.get("corrects"),
        })
        .collect();
        Ok(Some((incident_row(&row), entries)))
    }

    /// The incidents a person (by user name) is linked to.
    pub async fn incidents_of(&self, username: &str) -> Result<Vec<Incident>, StoreError> {
        let rows =
            sqlx::query(&format!(
            "SELECT DISTINCT {} FROM incidents i JOIN incident_people p ON p.incident_id = i.id \
             WHERE p.username = $1 ORDER BY i.updated_ms DESC",
            INCIDENT_COLUMNS.replace(", ", ", i.").replacen("id", "i.id", 1)
        ))
            .bind(username)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(incident_row).collect())
    }
}

/// The UTC year of a time in milliseconds.
fn chrono_year(ms: i64) -> i32 {
    // Days since 1970 to a civil year (Howard Hinnant's algorithm), to avoid a date
    // dependency in the store.
    let days = ms.div_euclid(86_400_000);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    i32::try_from(year).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn years() {
        let table = [
            (0, 1970),
            (1_700_000_000_000, 2023),
            (1_798_761_599_000, 2026),
            (1_798_761_600_000, 2027),
            (951_782_400_000, 2000),
        ];
        for (ms, year) in table {
            assert_eq!(super::chrono_year(ms), year, "{ms}");
        }
    }
}
