//! Delivering danger alerts: email (SMTP through lettre) and webhooks (Teams-compatible JSON),
//! from the deliveries the database says are owed.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use lookout_store::{Alert, Delivery, Store};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::{category_label, Settings};

/// Attempts before a delivery is given up (about ten minutes at the default retry pause).
const MAX_ATTEMPTS: i64 = 20;

/// How the SMTP connection is secured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EmailTls {
    /// STARTTLS, required (port 587).
    StartTls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption: only for a relay on the same host or a test server.
    None,
}

/// Where and how alert emails are sent: one pooled SMTP transport, connections reused.
#[derive(Clone, Debug)]
pub struct Email {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
    server: String,
}

impl Email {
    /// Checks the addresses and prepares the transport (nothing is connected yet).
    pub fn new(
        host: &str,
        port: u16,
        tls: EmailTls,
        credentials: Option<(String, String)>,
        from: &str,
        to: &[String],
    ) -> Result<Email, String> {
        let builder = match tls {
            EmailTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
            EmailTls::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)
                .map_err(|e| format!("SMTP server {host}: {e}"))?,
            EmailTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(host)
                .map_err(|e| format!("SMTP server {host}: {e}"))?,
        };
        let mut builder = builder.port(port).timeout(Some(Duration::from_secs(10)));
        if let Some((user, password)) = credentials {
            builder = builder.credentials(Credentials::new(user, password));
        }
        let from: Mailbox = from.parse().map_err(|e| format!("sender {from:?}: {e}"))?;
        let to = to
            .iter()
            .map(|t| t.parse().map_err(|e| format!("recipient {t:?}: {e}")))
            .collect::<Result<Vec<Mailbox>, String>>()?;
        Ok(Email {
            transport: builder.build(),
            from,
            to,
            server: format!("{host}:{port}"),
        })
    }

    /// Sends one plain-text message to every recipient.
    pub async fn send(&self, subject: &str, body: &str) -> Result<(), String> {
        self.send_message(&self.to, subject, body).await
    }

    /// Sends one plain-text message to `to` only (a training reminder), through the same
    /// server and from the same sender.
    pub async fn send_to(&self, to: &str, subject: &str, body: &str) -> Result<(), String> {
        let to: Mailbox = to.parse().map_err(|e| format!("recipient {to:?}: {e}"))?;
        self.send_message(&[to], subject, body).await
    }

    async fn send_message(&self, to: &[Mailbox], subject: &str, body: &str) -> Result<(), String> {
        let mut message = Message::builder().from(self.from.clone()).subject(subject);
        for to in to {
            message = message.to(to.clone());
        }
        let message = message
            .header(ContentType::TEXT_PLAIN)
            .body(body.to_owned())
            .map_err(|e| format!("building the message: {e}"))?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| format!("SMTP {}: {e}", self.server))
    }
}

/// A webhook that takes Microsoft Teams "MessageCard" JSON.
#[derive(Clone, Debug)]
pub struct Webhook {
    pub url: String,
    client: reqwest::Client,
}

impl Webhook {
    pub fn new(url: String) -> Result<Webhook, String> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| format!("webhook client: {e}"))?;
        Ok(Webhook { url, client })
    }

    pub async fn post(&self, json: &serde_json::Value) -> Result<(), String> {
        let r = self
            .client
            .post(&self.url)
            .header("content-type", "application/json")
            .body(json.to_string())
            .send()
            .await
            .map_err(|e| format!("webhook {}: {e}", self.url))?;
        if r.status().is_success() {
            Ok(())
        } else {
            Err(format!("webhook {}: HTTP {}", self.url, r.status()))
        }
    }
}

fn alert_link(settings: &Settings, alert: &Alert) -> String {
    format!(
        "{}/alerts/{}",
        settings.console_url.trim_end_matches('/'),
        alert.id
    )
}

fn local_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| {
            t.with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M %:z")
                .to_string()
        })
        .unwrap_or_default()
}

/// The email for a danger alert: category, severity, time, reference and a link. No names and
/// none of the flagged words: email is not a safe place for them.
pub(crate) fn alert_email(settings: &Settings, alert: &Alert) -> (String, String) {
    let label = category_label(&alert.category);
    let subject = format!(
        "Lookout: {} alert, {label} ({})",
        alert.severity, alert.reference
    );
    let body = format!(
        "A {severity} safeguarding alert needs a Designated Safeguarding Lead.\n\n\
         Category:  {label}\n\
         Severity:  {severity}\n\
         Raised:    {time}\n\
         Reference: {reference}\n\n\
         Open the alert (sign-in required):\n{link}\n\n\
         This email deliberately carries no names and none of the words that were flagged.\n",
        severity = alert.severity,
        time = local_time(alert.created_ms),
        reference = alert.reference,
        link = alert_link(settings, alert),
    );
    (subject, body)
}

/// The webhook body for a danger alert (Teams MessageCard), with the same restraint.
pub(crate) fn alert_card(settings: &Settings, alert: &Alert) -> serde_json::Value {
    let label = category_label(&alert.category);
    serde_json::json!({
        "@type": "MessageCard",
        "@context": "https://schema.org/extensions",
        "summary": format!("Lookout {} alert: {label}", alert.severity),
        "themeColor": if alert.severity == "danger" { "C50F1F" } else { "F7630C" },
        "title": format!("{} alert: {label}", capitalise(&alert.severity)),
        "text": format!("Reference {}, raised {}. Open it in Lookout to see who and what.",
            alert.reference, local_time(alert.created_ms)),
        "potentialAction": [{
            "@type": "OpenUri",
            "name": "Open the alert",
            "targets": [{ "os": "default", "uri": alert_link(settings, alert) }],
        }],
    })
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

async fn deliver(store: &Store, settings: &Settings, d: &Delivery) -> Result<(), String> {
    let (alert, _) = store
        .alert(d.alert_id)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("alert {} is missing", d.alert_id))?;
    match d.channel.as_str() {
        "email" => {
            let email = settings
                .email
                .as_ref()
                .ok_or("email is no longer configured")?;
            let (subject, body) = alert_email(settings, &alert);
            email.send(&subject, &body).await
        }
        "webhook" => {
            let hook = settings
                .webhook
                .as_ref()
                .ok_or("the webhook is no longer configured")?;
            hook.post(&alert_card(settings, &alert)).await
        }
        other => Err(format!("unknown delivery channel {other:?}")),
    }
}

/// One delivery attempt, recorded.
async fn attempt(store: &Store, settings: &Settings, d: &Delivery) {
    let outcome = deliver(store, settings, d).await;
    let give_up = outcome.is_err() && d.attempts + 1 >= MAX_ATTEMPTS;
    if let Err(e) = &outcome {
        tracing::warn!(
            "alert {} {} delivery failed (attempt {}): {e}",
            d.alert_id,
            d.channel,
            d.attempts + 1
        );
    }
    let r = store
        .delivery_attempt(
            d.id,
            outcome.as_ref().map(|_| ()).map_err(String::as_str),
            give_up,
        )
        .await;
    if let Err(e) = r {
        tracing::error!("recording a delivery attempt failed: {e}");
    }
}

/// Delivers what is owed, now and whenever notified, retrying failures every
/// `settings.retry`; stops when `stop` is cancelled (what is still owed stays owed).
pub(crate) async fn delivery_loop(
    store: Store,
    settings: Arc<Settings>,
    notify: Arc<Notify>,
    stop: CancellationToken,
) {
    loop {
        match store.pending_deliveries().await {
            // Up to eight at once: a burst of alerts must not queue behind one slow server.
            Ok(pending) => {
                futures_util::stream::iter(pending)
                    .for_each_concurrent(8, |d| {
                        let (store, settings, stop) = (&store, &settings, &stop);
                        async move {
                            if stop.is_cancelled() {
                                return;
                            }
                            attempt(store, settings, &d).await;
                        }
                    })
                    .await;
            }
            Err(e) => tracing::error!("reading the deliveries owed failed: {e}"),
        }
        tokio::select! {
            _ = notify.notified() => {}
            _ = tokio::time::sleep(settings.retry) => {}
            _ = stop.cancelled() => return,
        }
    }
}
