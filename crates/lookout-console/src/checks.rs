//! Routine checks: a DSL records what was due, what they checked and what they found, and
//! signs it with their own key; a supervisor co-signs. Both signatures cover the exact content
//! shown (canonical JSON), which also records the audit log's head at that moment.

use axum::extract::{Path, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use lookout_auth::{canonical_json, Role, SigningKey};
use lookout_store::{cosign_message, Check, CosignError};
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::alerts::SAFEGUARDING;
use crate::pages::{csrf, page, when};
use crate::session::{PageError, Posted, Viewer};
use crate::{now_ms, Console};

/// Without a previous check, what is due covers this far back.
const FIRST_PERIOD_MS: i64 = 7 * 86_400_000;

impl From<CosignError> for PageError {
    fn from(e: CosignError) -> Self {
        match e {
            CosignError::NotFound(id) => PageError::NotFound(format!("There is no check {id}.")),
            CosignError::AlreadyCosigned(by) => {
                PageError::Conflict(format!("This check was already co-signed by {by}."))
            }
            CosignError::OwnCheck => PageError::BadForm(
                "You signed this check: another supervisor must co-sign it.".into(),
            ),
            CosignError::Store(e) => e.into(),
        }
    }
}

/// What is due now: counted from the database, exactly as it will be signed.
async fn due(console: &Console, now: i64) -> Result<Value, PageError> {
    let store = console.store();
    let since = store
        .checks(1)
        .await?
        .first()
        .map_or(now - FIRST_PERIOD_MS, |c| c.signed_ms);
    let new_alerts = store.alerts_created_between(since, now).await?;
    let [danger, caution, advisory] = store.open_alert_counts().await?;
    let (incidents, actions, referrals) = crate::incidents::open_work(store, now).await?;
    Ok(json!({
        "since_ms": since,
        "alerts_raised": new_alerts.len(),
        "alerts_waiting": { "danger": danger, "caution": caution, "advisory": advisory },
        "concerns_reported": store.concerns_since(since).await?,
        "open_incidents": incidents,
        "overdue_actions": actions,
        "overdue_referrals": referrals,
    }))
}

fn due_list(d: &Value) -> Markup {
    let n = |p: &str| d.pointer(p).and_then(Value::as_i64).unwrap_or(0);
    html! {
        ul class="due" {
            li { "Since " (when(n("/since_ms"))) ": " strong { (n("/alerts_raised")) } " alert(s) raised, " strong { (n("/concerns_reported")) } " concern(s) reported" }
            li { "Alerts waiting for review: " strong { (n("/alerts_waiting/danger")) } " danger, " (n("/alerts_waiting/caution")) " caution, " (n("/alerts_waiting/advisory")) " advisory" }
            li { "Open incidents: " strong { (n("/open_incidents")) } }
            li { "Overdue actions: " strong { (n("/overdue_actions")) } "; overdue referrals: " strong { (n("/overdue_referrals")) } }
        }
    }
}

/// `GET /checks`.
pub(crate) async fn list(
    State(console): State<Console>,
    viewer: Viewer,
) -> Result<Html<String>, PageError> {
    viewer.require(SAFEGUARDING)?;
    let store = console.store();
    let checks = store.checks(200).await?;
    store.audit(&viewer.audit("checks.list", "checks")).await?;
    let body = html! {
        @if viewer.role() == Role::Dsl { p { a class="button" href="/checks/new" { "Start a routine check" } } }
        @if checks.is_empty() { p { "No routine checks have been recorded." } }
        @else {
            table class="list" id="checks" {
                thead { tr { th scope="col" { "#" } th scope="col" { "Signed" } th scope="col" { "By" } th scope="col" { "Co-signed" } } }
                tbody {
                    @for c in &checks {
                        tr {
                            td { a href={"/checks/" (c.id)} { "Check " (c.id) } }
                            td { (when(c.signed_ms)) }
                            td { (c.dsl) }
                            td { @match (&c.supervisor, c.cosigned_ms) {
                                (Some(s), Some(t)) => { (s) ", " (when(t)) }
                                _ => { span class="badge sev-caution" { "Waiting for a supervisor" } }
                            } }
                        }
                    }
                }
            }
        }
    };
    Ok(page(&viewer, "Routine checks", body))
}

/// `GET /checks/new` (DSL).
pub(crate) async fn new_form(
    State(console): State<Console>,
    viewer: Viewer,
) -> Result<Html<String>, PageError> {
    viewer.require(&[Role::Dsl])?;
    let d = due(&console, now_ms()).await?;
    let body = html! {
        h2 { "What is due" }
        (due_list(&d))
        p { a href="/alerts" { "Alerts inbox" } " · " a href="/incidents" { "Incidents" } }
        form method="post" action="/checks" class="stack" {
            (csrf(&viewer.session.csrf))
            label for="checked" { "What you checked" }
            textarea id="checked" name="checked" rows="4" required {}
            label for="found" { "What you found, and what you did about it" }
            textarea id="found" name="found" rows="4" required {}
            p class="hint" { "Signing records this page's figures, your words, and a fingerprint of the audit log, under your own key. A supervisor then co-signs." }
            button type="submit" { "Sign this check" }
        }
    };
    Ok(page(&viewer, "Routine check", body))
}

/// The viewer's unlocked key and its id, or a clear request to sign in again.
pub(crate) async fn signing_key(
    console: &Console,
    viewer: &Viewer,
) -> Result<(i64, SigningKey), PageError> {
    let stored = console.store().signing_key(viewer.username()).await?;
    match (console.key(&viewer.session.id_hash), stored) {
        (Some(key), Some(s)) if key.public() == s.key.public => Ok((s.id, key)),
        _ => Err(PageError::BadForm(
            "Your signing key is not unlocked in this session (it is unlocked when you sign in with a password, and forgotten when the server restarts). Unlock it on the \"My signing key\" page (/account/signing-key), then come back and sign.".into(),
        )),
    }
}

#[derive(Deserialize)]
pub(crate) struct CheckForm {
    #[serde(default)]
    checked: String,
    #[serde(default)]
    found: String,
}

/// `POST /checks` (DSL): signs and stores.
pub(crate) async fn create(
    State(console): State<Console>,
    Posted(viewer, f): Posted<CheckForm>,
) -> Result<Response, PageError> {
    viewer.require(&[Role::Dsl])?;
    let (checked, found) = (f.checked.trim(), f.found.trim());
    if checked.is_empty() || found.is_empty() {
        return Err(PageError::BadForm(
            "Please say what you checked and what you found.".into(),
        ));
    }
    let (key_id, key) = signing_key(&console, &viewer).await?;
    let store = console.store();
    let now = now_ms();
    let (seq, hash) = store.audit_head().await?.unwrap_or((0, String::new()));
    let content = json!({
        "kind": "routine-check",
        "dsl": viewer.username(),
        "at_ms": now,
        "due": due(&console, now).await?,
        "checked": checked,
        "found": found,
        "audit_head": { "seq": seq, "hash": hash },
    });
    let signature = key.sign(&canonical_json(&content));
    let check = store
        .add_check(
            &content,
            viewer.username(),
            key_id,
            &signature,
            &viewer.audit("check.signed", ""),
        )
        .await?;
    Ok(Redirect::to(&format!("/checks/{}", check.id)).into_response())
}

fn text(v: &Value, p: &str) -> String {
    v.pointer(p)
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned()
}

/// `GET /checks/{id}`.
pub(crate) async fn detail(
    State(console): State<Console>,
    viewer: Viewer,
    Path(id): Path<i64>,
) -> Result<Html<String>, PageError> {
    viewer.require(SAFEGUARDING)?;
    let store = console.store();
    let c: Check = store
        .check(id)
        .await?
        .ok_or_else(|| PageError::NotFound(format!("There is no check {id}.")))?;
    store
        .audit(&viewer.audit("check.view", format!("check:{id}")))
        .await?;
    let can_cosign =
        viewer.role() == Role::Supervisor && c.supervisor.is_none() && c.dsl != viewer.username();
    let body = html! {
        dl class="facts" {
            dt { "Signed by" } dd { (c.dsl) ", " (when(c.signed_ms)) }
            dt { "Co-signed by" } dd id="cosigned" { @match (&c.supervisor, c.cosigned_ms) {
                (Some(s), Some(t)) => { (s) ", " (when(t)) }
                _ => "Not yet: a supervisor must co-sign",
            } }
            dt { "Audit log at signing" } dd { "entry #" (c.content.pointer("/audit_head/seq").and_then(Value::as_i64).unwrap_or(0)) }
        }
        h2 { "What was due" }
        @if let Some(d) = c.content.get("due") { (due_list(d)) }
        h2 { "What was checked" }
        blockquote { (text(&c.content, "/checked")) }
        h2 { "What was found" }
        blockquote { (text(&c.content, "/found")) }
        @if can_cosign {
            form method="post" action={"/checks/" (id) "/cosign"} class="stack card" {
                (csrf(&viewer.session.csrf))
                h2 { "Co-sign" }
                label class="choice" { input type="checkbox" name="confirm" value="yes" required; " I have reviewed this check and agree it is a true record." }
                button type="submit" { "Co-sign this check" }
            }
        }
        p class="hint" { "Both signatures cover exactly what is shown here. " code { "lookout checks verify" } " proves that no check has been altered, removed or reordered since." }
        p { a href="/checks" { "Back to routine checks" } }
    };
    Ok(page(&viewer, &format!("Routine check {id}"), body))
}

#[derive(Deserialize)]
pub(crate) struct CosignForm {
    #[serde(default)]
    confirm: String,
}

/// `POST /checks/{id}/cosign` (supervisor).
pub(crate) async fn cosign(
    State(console): State<Console>,
    Path(id): Path<i64>,
    Posted(viewer, f): Posted<CosignForm>,
) -> Result<Response, PageError> {
    viewer.require(&[Role::Supervisor])?;
    if f.confirm != "yes" {
        return Err(PageError::BadForm(
            "Tick the box to confirm you have reviewed the check.".into(),
        ));
    }
    let store = console.store();
    let c = store
        .check(id)
        .await?
        .ok_or_else(|| PageError::NotFound(format!("There is no check {id}.")))?;
    let (key_id, key) = signing_key(&console, &viewer).await?;
    let at = now_ms();
    let signature = key.sign(&cosign_message(
        &c.content,
        &c.dsl_signature,
        viewer.username(),
        at,
    ));
    store
        .cosign_check(
            id,
            viewer.username(),
            key_id,
            &signature,
            at,
            &viewer.audit("check.cosigned", format!("check:{id}")),
        )
        .await?;
    Ok(Redirect::to(&format!("/checks/{id}")).into_response())
}
