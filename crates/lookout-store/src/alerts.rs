//! Monitoring records: API tokens, alerts and their findings, deliveries owed, digests.
//!
//! An alert is written — with the deliveries it owes — in one transaction before anyone is
//! told about it, so a crash between "stored" and "announced" loses nothing: pending deliveries
//! are resumed at the next start.

use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::{new_reference, now_ms, Store, StoreError};

/// What a token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenScope {
    /// A monitoring agent on one device: may send text to be scanned.
    Ingest,
    /// A safeguarding tool: may read alerts (list, detail, live stream).
    Alerts,
    /// A site gateway (`serve --role gateway`): may fetch the policy and lists and send its
    /// site's events and page texts. The token's name is the site's name.
    Gateway,
}

impl TokenScope {
    pub fn slug(self) -> &'static str {
        match self {
            TokenScope::Ingest => "ingest",
            TokenScope::Alerts => "alerts",
            TokenScope::Gateway => "gateway",
        }
    }

    pub fn from_slug(s: &str) -> Option<TokenScope> {
        match s {
            "ingest" => Some(TokenScope::Ingest),
            "alerts" => Some(TokenScope::Alerts),
            "gateway" => Some(TokenScope::Gateway),
            _ => None,
        }
    }
}

/// A stored API token (the secret itself is never stored, only its SHA-256).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiToken {
    pub id: i64,
    /// Device or tool name, unique.
    pub name: String,
    pub scope: TokenScope,
    /// The person the device belongs to, if it is one person's.
    pub username: Option<String>,
    /// The group the device's users are in (for alert thresholds).
    pub group: Option<String>,
    pub created_ms: i64,
    pub revoked: bool,
}

/// Who an alert is about.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Subject {
    pub username: Option<String>,
    pub client_ip: Option<String>,
    pub device: Option<String>,
    pub group: String,
    /// The site gateway the text came through (`None`: this server).
    pub site: Option<String>,
}

impl Subject {
    /// The key repeated findings are grouped by: the person if known, else the device, else
    /// the address. Devices and addresses are a site's own (two sites may both have a
    /// 10.0.0.7); people are the organisation's.
    pub fn key(&self) -> String {
        let at = self
            .site
            .as_ref()
            .map_or_else(String::new, |s| format!("site:{s}/"));
        match (&self.username, &self.device, &self.client_ip) {
            (Some(u), _, _) => format!("user:{u}"),
            (None, Some(d), _) => format!("{at}device:{d}"),
            (None, None, Some(ip)) => format!("{at}ip:{ip}"),
            (None, None, None) => format!("{at}unknown"),
        }
    }
}

/// One finding to record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewFinding {
    pub at_ms: i64,
    /// `search`, `url`, `page`, `typed`, `chat`, `window-title`...
    pub source: String,
    pub category: String,
    /// `advisory`, `caution` or `danger`.
    pub severity: String,
    pub score: i64,
    pub evidence: String,
    pub context: String,
    /// The rules that matched, as JSON.
    pub rules: String,
    /// Where the text was: URL, application, window.
    pub location: String,
}

/// An alert: one category of concern about one subject, with its findings grouped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alert {
    pub id: i64,
    pub reference: String,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub status: String,
    pub category: String,
    pub severity: String,
    pub score: i64,
    pub subject: String,
    pub username: Option<String>,
    pub client_ip: Option<String>,
    pub device: Option<String>,
    pub group: String,
    pub source: String,
    pub findings: i64,
    /// The site gateway it came through (`None`: this server).
    pub site: Option<String>,
}

/// A finding as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredFinding {
    pub id: i64,
    pub alert_id: i64,
    pub finding: NewFinding,
}

/// What recording a finding did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded {
    pub alert: Alert,
    /// A new alert (not grouped into an open one).
    pub created: bool,
    /// Grouped into an open alert whose severity this finding raised.
    pub escalated: bool,
    /// Deliveries queued (channel names).
    pub deliveries: Vec<String>,
}

/// A delivery owed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    pub id: i64,
    pub alert_id: i64,
    pub channel: String,
    pub attempts: i64,
}

fn severity_rank(s: &str) -> u8 {
    match s {
        "danger" => 3,
        "caution" => 2,
        "advisory" => 1,
        _ => 0,
    }
}

/// SHA-256 of a token, hex: tokens are 256 random bits, so a fast hash is enough.
fn token_hash(secret: &str) -> String {
    let d = Sha256::digest(secret.as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) const ALERT_COLUMNS: &str = "id, reference, created_ms, updated_ms, status, category, severity, score, subject, username, client_ip, device, group_name, source, findings, site";

pub(crate) fn alert_row(r: &AnyRow) -> Alert {
    Alert {
        id: r.get("id"),
        reference: r.get("reference"),
        created_ms: r.get("created_ms"),
        updated_ms: r.get("updated_ms"),
        status: r.get("status"),
        category: r.get("category"),
        severity: r.get("severity"),
        score: r.get("score"),
        subject: r.get("subject"),
        username: r.get("username"),
        client_ip: r.get("client_ip"),
        device: r.get("device"),
        group: r.get("group_name"),
        source: r.get("source"),
        findings: r.get("findings"),
        site: r.get("site"),
    }
}

fn token_row(r: &AnyRow) -> ApiToken {
    let scope: String = r.get("scope");
    ApiToken {
        id: r.get("id"),
        name: r.get("name"),
        scope: TokenScope::from_slug(&scope).unwrap_or(TokenScope::Ingest),
        username: r.get("username"),
        group: r.get("group_name"),
        created_ms: r.get("created_ms"),
        revoked: r.get::<i64, _>("revoked") != 0,
    }
}

impl Store {
    /// Creates a token; returns it with its secret, which is shown once and never stored.
    pub async fn add_token(
        &self,
        name: &str,
        scope: TokenScope,
        username: Option<&str>,
        group: Option<&str>,
    ) -> Result<(ApiToken, String), StoreError> {
        let mut bytes = [0u8; 32];
        rand::Rng::fill(&mut rand::rng(), &mut bytes);
        let secret = format!(
            "lk_{}",
            bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
        );
        let row = sqlx::query(
            "INSERT INTO api_tokens (name, scope, token_hash, username, group_name, created_ms) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id, name, scope, username, group_name, created_ms, revoked",
        )
        .bind(name)
        .bind(scope.slug())
        .bind(token_hash(&secret))
        .bind(username)
        .bind(group)
        .bind(now_ms())
        .fetch_one(&self.pool)
        .await?;
        Ok((token_row(&row), secret))
    }

    /// The live token with this secret, if any.
    pub async fn token(&self, secret: &str) -> Result<Option<ApiToken>, StoreError> {
        let row = sqlx::query(
            "SELECT id, name, scope, username, group_name, created_ms, revoked FROM api_tokens \
             WHERE token_hash = $1 AND revoked = 0",
        )
        .bind(token_hash(secret))
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(token_row))
    }

    /// Every token, oldest first.
    pub async fn tokens(&self) -> Result<Vec<ApiToken>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, name, scope, username, group_name, created_ms, revoked FROM api_tokens ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(token_row).collect())
    }

    /// Revokes a token by name; false if there is none.
    pub async fn revoke_token(&self, name: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("UPDATE api_tokens SET revoked = 1 WHERE name = $1")
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Records a finding: grouped into the subject's open alert of the same category if that
    /// was updated within `window_ms`, else a new alert. A new danger alert, or an open alert
    /// escalated to danger, queues one delivery per channel in `danger_channels` — all in one
    /// transaction.
    pub async fn record_finding(
        &self,
        subject: &Subject,
        finding: &NewFinding,
        window_ms: i64,
        danger_channels: &[&str],
    ) -> Result<Recorded, StoreError> {
        let key = subject.key();
        // IMMEDIATE: take the write lock first. A deferred transaction that reads, then writes,
        // fails at once (SQLITE_BUSY) if another writer committed in between, instead of
        // waiting its turn.
        let mut tx = self.write_tx().await?;
        let open = sqlx::query(&format!(
            "SELECT {ALERT_COLUMNS} FROM alerts WHERE subject = $1 AND category = $2 AND status = 'new' \
             AND updated_ms >= $3 ORDER BY id DESC LIMIT 1"
        ))
        .bind(&key)
        .bind(&finding.category)
        .bind(finding.at_ms - window_ms)
        .fetch_optional(&mut *tx)
        .await?
        .as_ref()
        .map(alert_row);
        let (alert_id, created, escalated) = match open {
            Some(a) => {
                let escalated = severity_rank(&finding.severity) > severity_rank(&a.severity);
                let severity = if escalated {
                    &finding.severity
                } else {
                    &a.severity
                };
                sqlx::query(
                    "UPDATE alerts SET updated_ms = $1, severity = $2, score = $3, findings = findings + 1 \
                     WHERE id = $4",
                )
                .bind(finding.at_ms.max(a.updated_ms))
                .bind(severity)
                .bind(finding.score.max(a.score))
                .bind(a.id)
                .execute(&mut *tx)
                .await?;
                (a.id, false, escalated)
            }
            None => {
                let id: i64 = sqlx::query(
                    "INSERT INTO alerts (reference, created_ms, updated_ms, category, severity, score, \
                     subject, username, client_ip, device, group_name, source, site) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id",
                )
                .bind(new_reference())
                .bind(finding.at_ms)
                .bind(finding.at_ms)
                .bind(&finding.category)
                .bind(&finding.severity)
                .bind(finding.score)
                .bind(&key)
                .bind(&subject.username)
                .bind(&subject.client_ip)
                .bind(&subject.device)
                .bind(&subject.group)
                .bind(&finding.source)
                .bind(&subject.site)
                .fetch_one(&mut *tx)
                .await?
                .get(0);
                (id, true, false)
            }
        };
        sqlx::query(
            "INSERT INTO alert_findings (alert_id, at_ms, source, severity, score, evidence, context, rules, location) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(alert_id)
        .bind(finding.at_ms)
        .bind(&finding.source)
        .bind(&finding.severity)
        .bind(finding.score)
        .bind(&finding.evidence)
        .bind(&finding.context)
        .bind(&finding.rules)
        .bind(&finding.location)
        .execute(&mut *tx)
        .await?;
        let mut deliveries = Vec::new();
        if (created || escalated) && finding.severity == "danger" {
            for ch in danger_channels {
                sqlx::query(
                    "INSERT INTO alert_deliveries (alert_id, channel, created_ms) VALUES ($1, $2, $3)",
                )
                .bind(alert_id)
                .bind(ch)
                .bind(now_ms())
                .execute(&mut *tx)
                .await?;
                deliveries.push((*ch).to_owned());
            }
        }
        let alert = sqlx::query(&format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE id = $1"))
            .bind(alert_id)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Recorded {
            alert: alert_row(&alert),
            created,
            escalated,
            deliveries,
        })
    }

    /// Alerts, most recently updated first; `after_ms` keeps those updated since then.
    pub async fn alerts(
        &self,
        after_ms: Option<i64>,
        limit: u32,
    ) -> Result<Vec<Alert>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {ALERT_COLUMNS} FROM alerts WHERE updated_ms >= $1 ORDER BY updated_ms DESC, id DESC LIMIT $2"
        ))
        .bind(after_ms.unwrap_or(i64::MIN))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(alert_row).collect())
    }

    /// One alert with its findings (oldest first).
    pub async fn alert(&self, id: i64) -> Result<Option<(Alert, Vec<StoredFinding>)>, StoreError> {
        let Some(a) = sqlx::query(&format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let alert = alert_row(&a);
        let rows = sqlx::query(
            "SELECT id, alert_id, at_ms, source, severity, score, evidence, context, rules, location \
             FROM alert_findings WHERE alert_id = $1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        let findings = rows
            .iter()
            .map(|r| StoredFinding {
                id: r.get("id"),
                alert_id: r.get("alert_id"),
                finding: NewFinding {
                    at_ms: r.get("at_ms"),
                    source: r.get("source"),
                    category: alert.category.clone(),
                    severity: r.get("severity"),
                    score: r.get("score"),
                    evidence: r.get("evidence"),
                    context: r.get("context"),
                    rules: r.get("rules"),
                    location: r.get("location"),
                },
            })
            .collect();
        Ok(Some((alert, findings)))
    }

    /// Deliveries still owed, oldest first.
    pub async fn pending_deliveries(&self) -> Result<Vec<Delivery>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, alert_id, channel, attempts FROM alert_deliveries WHERE status = 'pending' ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| Delivery {
                id: r.get("id"),
                alert_id: r.get("alert_id"),
                channel: r.get("channel"),
                attempts: r.get("attempts"),
            })
            .collect())
    }

    /// How many deliveries are still owed.
    pub async fn count_pending_deliveries(&self) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM alert_deliveries WHERE status = 'pending'")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// Records a delivery attempt: sent, or failed (`give_up` marks it failed for good).
    pub async fn delivery_attempt(
        &self,
        id: i64,
        outcome: Result<(), &str>,
        give_up: bool,
    ) -> Result<(), StoreError> {
        match outcome {
            Ok(()) => {
                sqlx::query(
                    "UPDATE alert_deliveries SET status = 'sent', attempts = attempts + 1, sent_ms = $1 WHERE id = $2",
                )
                .bind(now_ms())
                .bind(id)
                .execute(&self.pool)
                .await?;
            }
            Err(e) => {
                sqlx::query(
                    "UPDATE alert_deliveries SET status = $1, attempts = attempts + 1, last_error = $2 WHERE id = $3",
                )
                .bind(if give_up { "failed" } else { "pending" })
                .bind(e)
                .bind(id)
                .execute(&self.pool)
                .await?;
            }
        }
        Ok(())
    }

    /// Alerts created in `[from_ms, to_ms)`, oldest first (for digests).
    pub async fn alerts_created_between(
        &self,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<Alert>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {ALERT_COLUMNS} FROM alerts WHERE created_ms >= $1 AND created_ms < $2 ORDER BY id"
        ))
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(alert_row).collect())
    }

    /// When the last digest covered up to, if one was sent.
    pub async fn last_digest_to(&self) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query("SELECT MAX(to_ms) FROM digests")
            .fetch_one(&self.pool)
            .await?
            .get::<Option<i64>, _>(0))
    }

    /// Records a digest sent.
    pub async fn record_digest(
        &self,
        from_ms: i64,
        to_ms: i64,
        alerts: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO digests (sent_ms, from_ms, to_ms, alerts) VALUES ($1, $2, $3, $4)",
        )
        .bind(now_ms())
        .bind(from_ms)
        .bind(to_ms)
        .bind(alerts)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
