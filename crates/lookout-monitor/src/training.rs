//! Training reminders: one email per person with training due or overdue and an address on
//! their account, at most once per configured period (the store records each one sent, and
//! each one the mail server refused, so a refused address is not retried every hour).

use std::time::Duration;

use lookout_store::{Reminder, Standing, Store, StoreError};
use tokio_util::sync::CancellationToken;

use crate::Email;

/// What one reminder pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reminded {
    /// Messages the mail server took.
    pub sent: usize,
    /// Messages it refused (recorded with the reason).
    pub failed: usize,
}

fn day(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| {
            t.with_timezone(&chrono::Local)
                .format("%-d %B %Y")
                .to_string()
        })
        .unwrap_or_default()
}

/// The reminder's subject and body (no safeguarding detail: course titles and dates only).
pub(crate) fn compose(r: &Reminder, console_url: &str) -> (String, String) {
    let late = r
        .items
        .iter()
        .filter(|i| matches!(i.standing, Standing::Overdue { .. }))
        .count();
    let subject = if late > 0 {
        format!("Training overdue: {late} course(s) to complete")
    } else {
        format!("Training due: {} course(s) to complete", r.items.len())
    };
    let name = if r.user.display_name.is_empty() {
        &r.user.username
    } else {
        &r.user.display_name
    };
    let base = console_url.trim_end_matches('/');
    let mut body = format!("Hello {name},\n\nThis training is waiting for you:\n\n");
    for i in &r.items {
        let when = match i.standing {
            Standing::Overdue { since } => format!("overdue since {}", day(since)),
            Standing::Due { by } => format!("due by {}", day(by)),
            Standing::Done { .. } => continue,
        };
        body.push_str(&format!(
            "- {} ({when})\n  {base}/training/{}\n",
            i.title, i.course_id
        ));
    }
    body.push_str(
        "\nSign in to the console to read each course and take its quiz. If you have done it \
         elsewhere, send your certificate to the safeguarding team or IT so they can record it.\n",
    );
    (subject, body)
}

/// Sends what is owed at `now`: one message per person, recorded whether or not the mail
/// server took it.
pub async fn send_reminders(
    store: &Store,
    email: &Email,
    console_url: &str,
    every: Duration,
) -> Result<Reminded, StoreError> {
    let now = lookout_store::now_ms();
    let owed = store
        .reminders_owed(now, i64::try_from(every.as_millis()).unwrap_or(i64::MAX))
        .await?;
    let mut done = Reminded::default();
    for r in &owed {
        let (subject, body) = compose(r, console_url);
        let error = match email.send_to(&r.user.email, &subject, &body).await {
            Ok(()) => {
                done.sent += 1;
                String::new()
            }
            Err(e) => {
                tracing::warn!("training reminder to {}: {e}", r.user.username);
                done.failed += 1;
                e
            }
        };
        store
            .record_reminder(&r.user.username, r.items.len(), &error)
            .await?;
    }
    Ok(done)
}

/// Two minutes after the start, then every hour until `stop`: sends the reminders owed.
pub async fn reminder_loop(
    store: Store,
    email: Email,
    console_url: String,
    every: Duration,
    stop: CancellationToken,
) {
    let mut wait = Duration::from_secs(120);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
        wait = Duration::from_secs(3600);
        match send_reminders(&store, &email, &console_url, every).await {
            Ok(r) if r.sent + r.failed > 0 => tracing::info!(
                "training: {} reminder(s) sent, {} refused by the mail server",
                r.sent,
                r.failed
            ),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!("warning: training reminders failed ({e}); trying again in an hour")
            }
        }
    }
}
