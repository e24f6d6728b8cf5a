//! Site gateways (`lookout serve --role gateway`).
//!
//! On the **central**: events forwarded by a site are stored with the site's name and their
//! number there (`site_seq`), once each however often a batch is sent; each site's health
//! (last call, backlog, policy version) is kept in `gateways`.
//!
//! On a **gateway**: the activity log's own rows (`event_rows`) are the durable queue of events to
//! forward, `outbox_texts` holds page texts to forward, and `outbox_acked` says how far the
//! central has acknowledged each. Forwarded rows are deleted, except the newest: SQLite gives
//! a new row the highest id plus one, so keeping the newest row keeps ids from ever going back
//! below what was acknowledged.

use sqlx::Row;

use crate::events::{
    event_from_row, kind_ids, push_event_values, widen_hours, EVENT_COLUMNS, INSERT_COLUMNS,
    INSERT_ROWS,
};
use crate::{now_ms, Event, Sql, Store, StoreError, StoredEvent, Subject};

/// An event forwarded by a site gateway, with its number there (increasing, never reused).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteEvent {
    pub seq: i64,
    pub event: Event,
}

/// What a gateway said when it called.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GatewayCall {
    /// The address it called from.
    pub address: String,
    /// The policy version it runs (`None`: not said on this call).
    pub policy_version: Option<String>,
    /// Events and texts it still has to send (`None`: not said on this call).
    pub backlog: Option<i64>,
    /// Events newly stored from this call.
    pub events: i64,
    /// Texts newly received in this call.
    pub texts: i64,
}

/// A site gateway as the central knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gateway {
    pub site: String,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
    pub address: String,
    pub policy_version: String,
    pub backlog: i64,
    pub events_received: i64,
    pub texts_received: i64,
}

/// A gateway instance that has not called for this long may be replaced by another holding
/// the same token (a reinstalled or replaced box); two that both call are refused.
pub const INSTANCE_SILENT_MS: i64 = 15_000;

/// Another gateway holds the site's token and called recently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteTaken {
    /// When the other gateway last called.
    pub last_seen_ms: i64,
}

/// A site's figures for a period: no names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SiteFigures {
    pub site: String,
    pub blocked: i64,
    pub allowed: i64,
    /// Alerts raised (danger, caution, advisory).
    pub alerts: [i64; 3],
}

/// A page text waiting on a gateway to be sent to the central's monitoring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxText {
    pub id: i64,
    pub at_ms: i64,
    /// `page`, as the monitoring's sources are named.
    pub source: String,
    pub text: String,
    pub location: String,
    pub subject: Subject,
}

/// The kinds of outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outbox {
    Events,
    Texts,
    /// Gaps in the site's activity log (`log_gaps`: a full queue, a failing disk, a kill).
    Gaps,
}

impl Outbox {
    /// The outbox's name in `outbox_acked`.
    fn name(self) -> &'static str {
        match self {
            Outbox::Events => "events",
            Outbox::Texts | Outbox::Gaps => self.table(),
        }
    }

    /// The table that holds the outbox's rows: the activity log's own rows for events (not
    /// the `events` view, whose join would hide the highest id from SQLite's `MAX`).
    fn table(self) -> &'static str {
        match self {
            Outbox::Events => "event_rows",
            Outbox::Texts => "outbox_texts",
            Outbox::Gaps => "log_gaps",
        }
    }
}

impl Store {
    /// Stores a site's forwarded events in one transaction; an event whose `(site, seq)` is
    /// already stored is skipped. Returns the positions in `events` of those newly stored.
    pub async fn insert_site_events(
        &self,
        site: &str,
        events: &[SiteEvent],
    ) -> Result<Vec<usize>, StoreError> {
        let mut tx = self.log_tx().await?;
        let mut stored = std::collections::HashSet::new();
        let mut ids = (i64::MAX, i64::MIN);
        // As the activity log writes: two statement shapes (ROWS rows, one row), each row's
        // values as the log's, then the site and its number.
        let kinds = kind_ids(&mut tx, events.iter().map(|e| &e.event)).await?;
        let mut kinds = kinds.iter();
        let mut chunks = events.chunks_exact(INSERT_ROWS);
        let remainder = chunks.remainder();
        for chunk in chunks.by_ref().chain(remainder.chunks(1)) {
            let mut q = Sql::new(
                self.dialect,
                format!("INSERT INTO event_rows ({INSERT_COLUMNS}, site, site_seq) VALUES "),
            );
            for (i, (e, &kind)) in chunk.iter().zip(kinds.by_ref()).enumerate() {
                q.push(if i == 0 { "(" } else { ", (" });
                push_event_values(&mut q, &e.event, kind);
                q.push(", ")
                    .push_bind(site)
                    .push(", ")
                    .push_bind(e.seq)
                    .push(")");
            }
            q.push(" ON CONFLICT (site, site_seq) WHERE site_seq IS NOT NULL DO NOTHING RETURNING id, site_seq");
            let (sql, args) = q.into_parts()?;
            for row in sqlx::query_with(&sql, args).fetch_all(&mut *tx).await? {
                stored.insert(row.get::<i64, _>("site_seq"));
                let id: i64 = row.get("id");
                ids = (ids.0.min(id), ids.1.max(id));
            }
        }
        if !stored.is_empty() {
            // A site's events come late (its backlog after a break): their hours are old ones.
            let at_ms = events
                .iter()
                .filter(|e| stored.contains(&e.seq))
                .map(|e| e.event.at_ms);
            widen_hours(&mut tx, self.dialect, at_ms, ids).await?;
        }
        tx.commit().await?;
        // A number twice in one batch is stored once, at its first place.
        let mut seen = std::collections::HashSet::new();
        Ok(events
            .iter()
            .enumerate()
            .filter(|(_, e)| stored.contains(&e.seq) && seen.insert(e.seq))
            .map(|(i, _)| i)
            .collect())
    }

    /// Records a gateway's call now (its first creates its row).
    pub async fn gateway_called(&self, site: &str, call: &GatewayCall) -> Result<(), StoreError> {
        self.gateway_called_at(site, call, now_ms()).await
    }

    /// Records a gateway's call at `now` (milliseconds since the epoch).
    pub async fn gateway_called_at(
        &self,
        site: &str,
        call: &GatewayCall,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO gateways (site, first_seen_ms, last_seen_ms, address, policy_version, backlog, events_received, texts_received) \
             VALUES ($1, $2, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (site) DO UPDATE SET last_seen_ms = excluded.last_seen_ms, address = excluded.address, \
             policy_version = CASE WHEN $8 = 1 THEN excluded.policy_version ELSE gateways.policy_version END, \
             backlog = CASE WHEN $9 = 1 THEN excluded.backlog ELSE gateways.backlog END, \
             events_received = gateways.events_received + excluded.events_received, \
             texts_received = gateways.texts_received + excluded.texts_received",
        )
        .bind(site)
        .bind(now)
        .bind(call.address.as_str())
        .bind(call.policy_version.as_deref().unwrap_or(""))
        .bind(call.backlog.unwrap_or(0))
        .bind(call.events)
        .bind(call.texts)
        .bind(i64::from(call.policy_version.is_some()))
        .bind(i64::from(call.backlog.is_some()))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Every site gateway that has called, by name.
    pub async fn gateways(&self) -> Result<Vec<Gateway>, StoreError> {
        let rows = sqlx::query(
            "SELECT site, first_seen_ms, last_seen_ms, address, policy_version, backlog, events_received, texts_received \
             FROM gateways ORDER BY site",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| Gateway {
                site: r.get("site"),
                first_seen_ms: r.get("first_seen_ms"),
                last_seen_ms: r.get("last_seen_ms"),
                address: r.get("address"),
                policy_version: r.get("policy_version"),
                backlog: r.get("backlog"),
                events_received: r.get("events_received"),
                texts_received: r.get("texts_received"),
            })
            .collect())
    }

    /// Which number the gateway `instance` has for `site` (1 for the first gateway ever, one
    /// more for each that took the site over), or `SiteTaken` when another instance called
    /// within [`INSTANCE_SILENT_MS`] — two boxes with one token would number events alike.
    pub async fn gateway_instance(
        &self,
        site: &str,
        instance: &str,
        now: i64,
    ) -> Result<Result<i64, SiteTaken>, StoreError> {
        let mut tx = self.write_tx().await?;
        let row =
            sqlx::query("SELECT instance, instance_no, last_seen_ms FROM gateways WHERE site = $1")
                .bind(site)
                .fetch_optional(&mut *tx)
                .await?;
        let number = match row {
            None => {
                sqlx::query(
                    "INSERT INTO gateways (site, instance, instance_no, first_seen_ms, last_seen_ms) VALUES ($1, $2, 1, $3, $3)",
                )
                .bind(site)
                .bind(instance)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                1
            }
            Some(r) => {
                let (held, no, seen): (String, i64, i64) = (
                    r.get("instance"),
                    r.get("instance_no"),
                    r.get("last_seen_ms"),
                );
                if held == instance {
                    no
                } else if !held.is_empty() && now - seen < INSTANCE_SILENT_MS {
                    return Ok(Err(SiteTaken { last_seen_ms: seen }));
                } else {
                    sqlx::query(
                        "UPDATE gateways SET instance = $1, instance_no = $2, last_seen_ms = $3 WHERE site = $4",
                    )
                    .bind(instance)
                    .bind(no + 1)
                    .bind(now)
                    .bind(site)
                    .execute(&mut *tx)
                    .await?;
                    no + 1
                }
            }
        };
        tx.commit().await?;
        Ok(Ok(number))
    }

    /// Per site gateway, requests blocked and allowed and alerts raised from `from_ms` to
    /// `to_ms`, by site name (this server's own are not in it).
    pub async fn site_figures(
        &self,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<SiteFigures>, StoreError> {
        let mut by_site: std::collections::BTreeMap<String, SiteFigures> = self
            .gateways()
            .await?
            .into_iter()
            .map(|g| {
                let f = SiteFigures {
                    site: g.site.clone(),
                    ..SiteFigures::default()
                };
                (g.site, f)
            })
            .collect();
        let rows = sqlx::query(
            "SELECT site, SUM(CASE WHEN action = 'block' THEN 1 ELSE 0 END) AS blocked, \
             SUM(CASE WHEN action = 'allow' THEN 1 ELSE 0 END) AS allowed \
             FROM events WHERE site IS NOT NULL AND at_ms >= $1 AND at_ms < $2 GROUP BY site",
        )
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(&self.pool)
        .await?;
        // A site with figures but no row in `gateways` (its calls not recorded) still counts.
        fn of<'a>(
            by_site: &'a mut std::collections::BTreeMap<String, SiteFigures>,
            r: &sqlx::any::AnyRow,
        ) -> &'a mut SiteFigures {
            let site: String = r.get("site");
            by_site.entry(site.clone()).or_insert_with(|| SiteFigures {
                site,
                ..SiteFigures::default()
            })
        }
        for r in &rows {
            let f = of(&mut by_site, r);
            f.blocked = r.get::<Option<i64>, _>("blocked").unwrap_or(0);
            f.allowed = r.get::<Option<i64>, _>("allowed").unwrap_or(0);
        }
        let rows = sqlx::query(
            "SELECT site, severity, COUNT(*) AS n FROM alerts \
             WHERE site IS NOT NULL AND created_ms >= $1 AND created_ms < $2 GROUP BY site, severity",
        )
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(&self.pool)
        .await?;
        for r in &rows {
            let f = of(&mut by_site, r);
            let i = match r.get::<String, _>("severity").as_str() {
                "danger" => 0,
                "caution" => 1,
                _ => 2,
            };
            f.alerts[i] += r.get::<i64, _>("n");
        }
        Ok(by_site.into_values().collect())
    }

    /// How far the central has acknowledged `outbox` (0: nothing yet).
    pub async fn outbox_acked(&self, outbox: Outbox) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT acked FROM outbox_acked WHERE kind = $1")
            .bind(outbox.name())
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map_or(0, |r| r.get("acked")))
    }

    /// Rows of `outbox` not yet acknowledged: the newest row's id less the acknowledged one
    /// (on SQLite ids above the acknowledged one are never deleted, so this is exact; one
    /// index look-up however long the queue).
    pub async fn outbox_backlog(&self, outbox: Outbox) -> Result<i64, StoreError> {
        let acked = self.outbox_acked(outbox).await?;
        let row = sqlx::query(&format!("SELECT MAX(id) AS n FROM {}", outbox.table()))
            .fetch_one(&self.pool)
            .await?;
        let newest: Option<i64> = row.get("n");
        Ok((newest.unwrap_or(0) - acked).max(0))
    }

    /// Records that the central has everything of `outbox` up to `upto`, and deletes those
    /// rows but the newest (one transaction).
    pub async fn outbox_ack(&self, outbox: Outbox, upto: i64) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "INSERT INTO outbox_acked (kind, acked) VALUES ($1, $2) \
             ON CONFLICT (kind) DO UPDATE SET acked = excluded.acked WHERE excluded.acked > outbox_acked.acked",
        )
        .bind(outbox.name())
        .bind(upto)
        .execute(&mut *tx)
        .await?;
        let table = outbox.table();
        sqlx::query(&format!(
            "DELETE FROM {table} WHERE id <= $1 AND id < (SELECT MAX(id) FROM {table})"
        ))
        .bind(upto)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Events after `after`, oldest first: the next batch to forward.
    pub async fn outbox_events(
        &self,
        after: i64,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE id > $1 ORDER BY id LIMIT $2"
        ))
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(event_from_row).collect())
    }

    /// Gaps after `after`, oldest first, with their ids.
    pub async fn outbox_gaps(
        &self,
        after: i64,
        limit: u32,
    ) -> Result<Vec<(i64, crate::LogGap)>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, at_ms, dropped, cause FROM log_gaps WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| {
                (
                    r.get("id"),
                    crate::LogGap {
                        at_ms: r.get("at_ms"),
                        dropped: r.get("dropped"),
                        cause: r.get("cause"),
                    },
                )
            })
            .collect())
    }

    /// Records a gap in a site's activity log, naming the site (once: the same gap sent
    /// again is not recorded twice). Whether it was new.
    pub async fn record_site_gap(
        &self,
        site: &str,
        gap: &crate::LogGap,
    ) -> Result<bool, StoreError> {
        let cause = format!("site {site}: {}", gap.cause);
        let mut tx = self.write_tx().await?;
        let known = sqlx::query("SELECT id FROM log_gaps WHERE at_ms = $1 AND cause = $2")
            .bind(gap.at_ms)
            .bind(&cause)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if !known {
            sqlx::query("INSERT INTO log_gaps (at_ms, dropped, cause) VALUES ($1, $2, $3)")
                .bind(gap.at_ms)
                .bind(gap.dropped)
                .bind(&cause)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(!known)
    }

    /// Keeps a page text to forward.
    pub async fn queue_text(&self, t: &OutboxText) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO outbox_texts (at_ms, source, text, location, username, client_ip, group_name) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(t.at_ms)
        .bind(t.source.as_str())
        .bind(t.text.as_str())
        .bind(t.location.as_str())
        .bind(t.subject.username.as_deref())
        .bind(t.subject.client_ip.as_deref())
        .bind(t.subject.group.as_str())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Texts after `after`, oldest first.
    pub async fn outbox_texts(
        &self,
        after: i64,
        limit: u32,
    ) -> Result<Vec<OutboxText>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, at_ms, source, text, location, username, client_ip, group_name FROM outbox_texts \
             WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| OutboxText {
                id: r.get("id"),
                at_ms: r.get("at_ms"),
                source: r.get("source"),
                text: r.get("text"),
                location: r.get("location"),
                subject: Subject {
                    username: r.get("username"),
                    client_ip: r.get("client_ip"),
                    device: None,
                    group: r.get("group_name"),
                    site: None,
                },
            })
            .collect())
    }
}

/// A proxy sign-in account as the central hands it to its site gateways: the password only
/// as its argon2id hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteUser {
    pub username: String,
    pub display_name: String,
    pub group: String,
    pub password_hash: Option<String>,
    pub disabled: bool,
}

impl Store {
    /// Every account, with password hashes, for the site gateways.
    pub async fn site_users(&self) -> Result<Vec<SiteUser>, StoreError> {
        let rows = sqlx::query(
            "SELECT username, display_name, group_name, password_hash, disabled FROM users ORDER BY username",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| SiteUser {
                username: r.get("username"),
                display_name: r.get("display_name"),
                group: r.get("group_name"),
                password_hash: r.get("password_hash"),
                disabled: r.get::<i64, _>("disabled") != 0,
            })
            .collect())
    }

    /// Makes a gateway's accounts the central's (one transaction): each added or brought up
    /// to date; password accounts the central no longer has are disabled and signed out,
    /// never deleted (directory records made here are left to the directory). Returns how
    /// many rows changed.
    pub async fn sync_site_users(&self, users: &[SiteUser]) -> Result<u64, StoreError> {
        let now = now_ms();
        let mut tx = self.write_tx().await?;
        let mut changed = 0;
        for u in users {
            changed += sqlx::query(
                "INSERT INTO users (username, display_name, group_name, password_hash, disabled, created_ms, updated_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, $6) \
                 ON CONFLICT (username) DO UPDATE SET display_name = excluded.display_name, \
                 group_name = excluded.group_name, password_hash = excluded.password_hash, \
                 disabled = excluded.disabled, updated_ms = excluded.updated_ms \
                 WHERE users.display_name <> excluded.display_name OR users.group_name <> excluded.group_name \
                 OR users.password_hash IS DISTINCT FROM excluded.password_hash OR users.disabled <> excluded.disabled",
            )
            .bind(u.username.as_str())
            .bind(u.display_name.as_str())
            .bind(u.group.as_str())
            .bind(u.password_hash.as_deref())
            .bind(i64::from(u.disabled))
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        let known: std::collections::HashSet<&str> =
            users.iter().map(|u| u.username.as_str()).collect();
        // Records without a password are the directory's people, made here at their first
        // sign-in (`[ldap]` at the site): the directory decides about them, not the list.
        let local = sqlx::query(
            "SELECT username FROM users WHERE disabled = 0 AND password_hash IS NOT NULL",
        )
        .fetch_all(&mut *tx)
        .await?;
        for r in &local {
            let name: String = r.get("username");
            if known.contains(name.as_str()) {
                continue;
            }
            changed +=
                sqlx::query("UPDATE users SET disabled = 1, updated_ms = $1 WHERE username = $2")
                    .bind(now)
                    .bind(&name)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            sqlx::query("DELETE FROM ip_sessions WHERE username = $1")
                .bind(&name)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(changed)
    }
}
