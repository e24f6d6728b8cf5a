//! Subject access: everything the database holds about one person, table by table, as JSON
//! rows — for the IT admin or data protection officer to review and release. Secrets are
//! never included (password hashes, two-factor secrets, sealed keys, session ids); their
//! presence is stated instead.

use serde_json::{Map, Value};
use sqlx::{Column, Row, TypeInfo, ValueRef};

use crate::users::normalize_username;
use crate::{Store, StoreError, UserError};

/// One kind of record held about the person.
#[derive(Debug, Clone, PartialEq)]
pub struct Held {
    /// What it is, in words.
    pub title: &'static str,
    /// The table it comes from.
    pub table: &'static str,
    pub rows: Vec<Map<String, Value>>,
}

/// What is looked up: (title, table, query with one `?` for the user name).
const SOURCES: &[(&str, &str, &str)] = &[
    (
        "Account",
        "users",
        "SELECT username, display_name, group_name, role, email, team, disabled, created_ms, updated_ms, \
         password_hash IS NOT NULL AS has_password, totp_secret IS NOT NULL AS has_two_factor, \
         failed_sign_ins, locked_until_ms, must_change_password FROM users WHERE username = $1",
    ),
    (
        "Devices signed in (portal)",
        "ip_sessions",
        "SELECT ip, expires_ms FROM ip_sessions WHERE username = $1",
    ),
    (
        "Activity log (web and DNS requests)",
        "events",
        "SELECT at_ms, service, client_ip, group_name, method, url, host, search_term, categories, action, rule, reason, status, bytes, reference \
         FROM events WHERE username = $1 ORDER BY at_ms",
    ),
    (
        "Alerts raised about this person",
        "alerts",
        "SELECT id, reference, created_ms, updated_ms, status, category, severity, score, client_ip, device, group_name, source \
         FROM alerts WHERE username = $1 ORDER BY created_ms",
    ),
    (
        "What the monitoring flagged (alert findings)",
        "alert_findings",
        "SELECT f.alert_id, f.at_ms, f.source, f.severity, f.evidence, f.context, f.location \
         FROM alert_findings f JOIN alerts a ON a.id = f.alert_id WHERE a.username = $1 ORDER BY f.at_ms",
    ),
    (
        "Concerns this person reported",
        "concerns",
        "SELECT reference, at_ms, about, what, place, urgency, block_url FROM concerns WHERE reporter = $1 ORDER BY at_ms",
    ),
    (
        "Incidents naming this person",
        "incident_people",
        "SELECT i.reference, i.opened_ms, i.category, i.status, p.name \
         FROM incident_people p JOIN incidents i ON i.id = p.incident_id WHERE p.username = $1 ORDER BY i.opened_ms",
    ),
    (
        "Requests to unblock a page",
        "review_requests",
        "SELECT at_ms, url, reason, status, decided_ms, decision FROM review_requests WHERE requester = $1 ORDER BY at_ms",
    ),
    (
        "E-safety briefings accepted",
        "acceptances",
        "SELECT a.at_ms, a.client_ip, b.id AS version, b.title FROM acceptances a JOIN briefings b ON b.id = a.briefing_id \
         WHERE a.username = $1 ORDER BY a.at_ms",
    ),
    (
        "Training completed",
        "training_completions",
        "SELECT c.completed_ms, t.title, c.edition, c.how, c.score, c.out_of, c.by_user, c.note FROM training_completions c \
         JOIN training_courses t ON t.id = (SELECT MAX(id) FROM training_courses WHERE course_id = c.course_id) \
         WHERE c.username = $1 ORDER BY c.completed_ms",
    ),
    (
        "Training reminders sent",
        "training_reminders",
        "SELECT at_ms, courses, error FROM training_reminders WHERE username = $1 ORDER BY at_ms",
    ),
    (
        "Console sessions",
        "console_sessions",
        "SELECT created_ms, last_seen_ms, expires_ms, client_ip, user_agent FROM console_sessions WHERE username = $1 ORDER BY created_ms",
    ),
    (
        "Signing keys (public halves)",
        "signing_keys",
        "SELECT public_key, created_ms, retired_ms FROM signing_keys WHERE username = $1 ORDER BY created_ms",
    ),
    (
        "What this person did in the console (audit log)",
        "audit_log",
        "SELECT seq, at_ms, action, target, detail, client_ip FROM audit_log WHERE actor = $1 ORDER BY seq",
    ),
];

fn to_json(row: &sqlx::any::AnyRow) -> Map<String, Value> {
    let mut out = Map::new();
    for (i, col) in row.columns().iter().enumerate() {
        let raw = row.try_get_raw(i);
        let value = match raw {
            Ok(v) if v.is_null() => Value::Null,
            Ok(v) => match v.type_info().name() {
                "SMALLINT" | "INTEGER" | "BIGINT" => {
                    row.try_get::<i64, _>(i).map_or(Value::Null, Value::from)
                }
                // A comparison is an integer on SQLite and a boolean on PostgreSQL: 1 or 0 on both.
                "BOOLEAN" => row
                    .try_get::<bool, _>(i)
                    .map_or(Value::Null, |b| Value::from(i64::from(b))),
                "REAL" | "DOUBLE" => row.try_get::<f64, _>(i).map_or(Value::Null, Value::from),
                _ => row.try_get::<String, _>(i).map_or(Value::Null, Value::from),
            },
            Err(_) => Value::Null,
        };
        out.insert(col.name().to_owned(), value);
    }
    out
}

impl Store {
    /// Everything held about `username`, kind by kind (kinds with nothing are included,
    /// empty, so the reader sees what was looked at).
    pub async fn person_data(&self, username: &str) -> Result<Vec<Held>, UserError> {
        let username = normalize_username(username)?;
        if self.user(&username).await?.is_none() {
            return Err(UserError::NotFound(username));
        }
        let mut out = Vec::with_capacity(SOURCES.len());
        for (title, table, sql) in SOURCES {
            let rows = sqlx::query(sql)
                .bind(&username)
                .fetch_all(&self.pool)
                .await
                .map_err(StoreError::from)?;
            out.push(Held {
                title,
                table,
                rows: rows.iter().map(to_json).collect(),
            });
        }
        Ok(out)
    }
}
