//! The digest: a daily or weekly email summarising the alerts of lower severity (danger alerts
//! were sent one by one already), by category and severity, with links — no names, no text.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Duration as Days, Local, NaiveTime, TimeZone, Weekday};
use lookout_store::{Alert, Store};

use crate::{category_label, Monitor, Settings};

/// How often the digest is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DigestEvery {
    Daily,
    /// On Mondays.
    Weekly,
}

impl DigestEvery {
    pub fn period_ms(self) -> i64 {
        match self {
            DigestEvery::Daily => 24 * 3600 * 1000,
            DigestEvery::Weekly => 7 * 24 * 3600 * 1000,
        }
    }
}

/// The first time after `now` a digest is due: `at_minute` past midnight, local time, every
/// day or every Monday.
pub fn next_digest(now: DateTime<Local>, every: DigestEvery, at_minute: u16) -> DateTime<Local> {
    let at = NaiveTime::from_hms_opt(u32::from(at_minute / 60), u32::from(at_minute % 60), 0)
        .unwrap_or_default();
    let mut day = now.date_naive();
    loop {
        let due_day = match every {
            DigestEvery::Daily => true,
            DigestEvery::Weekly => day.weekday() == Weekday::Mon,
        };
        if due_day {
            // A time skipped by a clock change falls back to an hour later.
            let t = Local
                .from_local_datetime(&day.and_time(at))
                .earliest()
                .or_else(|| {
                    Local
                        .from_local_datetime(&(day.and_time(at) + Days::hours(1)))
                        .earliest()
                });
            if let Some(t) = t {
                if t > now {
                    return t;
                }
            }
        }
        day = day.succ_opt().unwrap_or(day);
    }
}

/// The digest email for alerts created in `[from_ms, to_ms)`.
pub fn compose_digest(
    alerts: &[Alert],
    from_ms: i64,
    to_ms: i64,
    console_url: &str,
) -> (String, String) {
    let day = |ms: i64| {
        DateTime::from_timestamp_millis(ms)
            .map(|t| {
                t.with_timezone(&Local)
                    .format("%a %d %b %Y %H:%M")
                    .to_string()
            })
            .unwrap_or_default()
    };
    let mut counts: BTreeMap<(String, String), usize> = BTreeMap::new();
    for a in alerts {
        *counts
            .entry((category_label(&a.category), a.severity.clone()))
            .or_default() += 1;
    }
    let subject = format!("Lookout digest: {} alert(s) to review", alerts.len());
    let mut body = format!(
        "Safeguarding alerts raised from {} to {}.\n\n",
        day(from_ms),
        day(to_ms)
    );
    if alerts.is_empty() {
        body.push_str("No alerts were raised.\n");
        return (subject, body);
    }
    body.push_str("By category and severity:\n");
    for ((label, severity), n) in &counts {
        body.push_str(&format!("  {label:<40} {severity:<9} {n}\n"));
    }
    body.push_str("\nAlerts not yet sent one by one (advisory and caution):\n");
    let base = console_url.trim_end_matches('/');
    let mut any = false;
    for a in alerts.iter().filter(|a| a.severity != "danger") {
        any = true;
        body.push_str(&format!(
            "  {}  {:<9} {:<40} {base}/alerts/{}\n",
            a.reference,
            a.severity,
            category_label(&a.category),
            a.id
        ));
    }
    if !any {
        body.push_str("  none: every alert in this period was a danger alert, sent at the time.\n");
    }
    body.push_str("\nNames and flagged words are shown only in Lookout, after sign-in.\n");
    (subject, body)
}

/// Sends the digest of alerts created since the last digest (or one period before `to_ms` if
/// none was sent) up to `to_ms`, and records it. Returns how many alerts it covered.
pub async fn send_digest(
    store: &Store,
    settings: &Settings,
    every: DigestEvery,
    to_ms: i64,
) -> Result<usize, String> {
    let email = settings
        .email
        .as_ref()
        .ok_or("the digest needs [alerts.email]")?;
    let from_ms = store
        .last_digest_to()
        .await
        .map_err(|e| e.to_string())?
        .unwrap_or(to_ms - every.period_ms());
    let alerts = store
        .alerts_created_between(from_ms, to_ms)
        .await
        .map_err(|e| e.to_string())?;
    let (subject, body) = compose_digest(&alerts, from_ms, to_ms, &settings.console_url);
    email.send(&subject, &body).await?;
    store
        .record_digest(from_ms, to_ms, alerts.len() as i64)
        .await
        .map_err(|e| e.to_string())?;
    Ok(alerts.len())
}

impl Monitor {
    /// Sends the digest at every due time until `stop` is cancelled.
    pub async fn digest_loop(
        self,
        every: DigestEvery,
        at_minute: u16,
        stop: tokio_util::sync::CancellationToken,
    ) {
        loop {
            let now = Local::now();
            let due = next_digest(now, every, at_minute);
            let wait = (due - now).to_std().unwrap_or_default();
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.cancelled() => return,
            }
            if let Err(e) =
                send_digest(&self.store, &self.settings, every, due.timestamp_millis()).await
            {
                tracing::warn!("the alert digest was not sent: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(id: i64, category: &str, severity: &str) -> Alert {
        Alert {
            id,
            reference: format!("LK-TEST-{id:04}"),
            created_ms: 1_700_000_000_000,
            updated_ms: 1_700_000_000_000,
            status: "new".into(),
            category: category.into(),
            severity: severity.into(),
            score: 50,
            subject: "user:amy".into(),
            username: Some("amy".into()),
            client_ip: Some("10.0.0.7".into()),
            device: None,
            group: "learners-u18".into(),
            source: "search".into(),
            findings: 1,
            site: None,
        }
    }

    #[test]
    fn digest_counts_and_links_without_names() {
        let alerts = [
            alert(1, "drugs", "caution"),
            alert(2, "drugs", "caution"),
            alert(3, "suicide", "danger"),
        ];
        let (subject, body) = compose_digest(&alerts, 0, 1, "https://lookout.example/");
        assert_eq!(subject, "Lookout digest: 3 alert(s) to review");
        assert!(body.contains("Drugs"), "{body}");
        assert!(body.contains("https://lookout.example/alerts/2"), "{body}");
        assert!(
            !body.contains("alerts/3"),
            "danger alerts went one by one: {body}"
        );
        assert!(
            !body.contains("amy") && !body.contains("10.0.0.7"),
            "{body}"
        );
    }

    #[test]
    fn next_digest_times() {
        let at = |y, mo, d, h, mi| Local.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap();
        // Monday 2026-11-23.
        assert_eq!(
            next_digest(at(2026, 11, 23, 6, 0), DigestEvery::Daily, 450),
            at(2026, 11, 23, 7, 30)
        );
        assert_eq!(
            next_digest(at(2026, 11, 23, 8, 0), DigestEvery::Daily, 450),
            at(2026, 11, 24, 7, 30)
        );
        assert_eq!(
            next_digest(at(2026, 11, 23, 8, 0), DigestEvery::Weekly, 450),
            at(2026, 11, 30, 7, 30)
        );
        assert_eq!(
            next_digest(at(2026, 11, 25, 8, 0), DigestEvery::Weekly, 450),
            at(2026, 11, 30, 7, 30)
        );
    }
}
