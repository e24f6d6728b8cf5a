//! The audit log, for the IT admin: read and verified, never edited.

use axum::extract::{Query, State};
use axum::response::Html;
use lookout_auth::Role;
use lookout_store::AuditFilter;
use maud::html;
use serde::Deserialize;

use crate::pages::{encode, page, when};
use crate::session::{PageError, Viewer};
use crate::Console;

const PAGE: u32 = 200;

#[derive(Deserialize, Default)]
pub(crate) struct AuditQuery {
    #[serde(default)]
    actor: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    target: String,
    #[serde(default)]
    before: Option<i64>,
}

fn some(s: &str) -> Option<String> {
    Some(s.trim().to_owned()).filter(|s| !s.is_empty())
}

/// `GET /audit`: newest first, filtered by who, what (prefix) and target.
pub(crate) async fn log(
    State(console): State<Console>,
    viewer: Viewer,
    Query(q): Query<AuditQuery>,
) -> Result<Html<String>, PageError> {
    viewer.require(&[Role::ItAdmin])?;
    let store = console.store();
    // Reading the log is itself on the log (before the read, so it shows in the page).
    store
        .audit(&viewer.audit("audit.view", "audit").detail(format!(
            "actor={} action={} target={}",
            q.actor, q.action, q.target
        )))
        .await?;
    let rows = store
        .audit_log(&AuditFilter {
            actor: some(&q.actor),
            action: some(&q.action),
            target: some(&q.target),
            before_seq: q.before,
            limit: Some(PAGE),
        })
        .await?;
    let older = (rows.len() == PAGE as usize)
        .then(|| rows.last().map(|r| r.seq))
        .flatten();
    let body = html! {
        p { "Every sign-in, view and change in the console, in order. Nobody can edit it through Lookout. "
            a href="/audit/verify" { "Check that nothing has been altered" } }
        form method="get" action="/audit" class="filters" {
            label { "Who " input name="actor" value=(q.actor) size="14"; }
            label { "What (starts with) " input name="action" value=(q.action) size="14" placeholder="sign-in"; }
            label { "On " input name="target" value=(q.target) size="14" placeholder="alert:12"; }
            button type="submit" { "Show" }
        }
        table class="list" id="audit" {
            thead { tr { th scope="col" { "#" } th scope="col" { "When" } th scope="col" { "Who" } th scope="col" { "What" } th scope="col" { "On" } th scope="col" { "Detail" } th scope="col" { "From" } } }
            tbody {
                @for r in &rows {
                    tr {
                        td { (r.seq) }
                        td { (when(r.at_ms)) }
                        td { (r.actor) }
                        td { code { (r.action) } }
                        td { (r.target) }
                        td { (r.detail) }
                        td { (r.client_ip) }
                    }
                }
            }
        }
        @if let Some(seq) = older {
            p { a href={"/audit?actor=" (encode(&q.actor)) "&action=" (encode(&q.action)) "&target=" (encode(&q.target)) "&before=" (seq)} { "Older entries" } }
        }
    };
    Ok(page(&viewer, "Audit log", body))
}

/// `GET /audit/verify`: checks the whole chain and says what it found.
pub(crate) async fn verify(
    State(console): State<Console>,
    viewer: Viewer,
) -> Result<Html<String>, PageError> {
    viewer.require(&[Role::ItAdmin])?;
    let store = console.store();
    let v = store.verify_audit().await?;
    store
        .audit(&viewer.audit("audit.verify", "audit").detail(format!(
            "{} rows, {} problem(s)",
            v.rows,
            v.problems.len()
        )))
        .await?;
    let body = html! {
        @if v.problems.is_empty() {
            p class="ok" role="status" id="verify-result" { "The audit log is intact: all " (v.rows) " entries are in order and unaltered." }
        } @else {
            p class="error" role="alert" id="verify-result" { "The audit log has been altered outside Lookout: " (v.problems.len()) " problem(s) found. Keep a copy of the database and tell your Designated Safeguarding Lead." }
            ul { @for p in &v.problems { li { (p.to_string()) } } }
        }
        @if let Some((seq, hash)) = &v.head {
            p class="hint" { "Last entry: #" (seq) ", fingerprint " code { (hash) } ". Noting this fingerprint somewhere else (a signed check, a printed report) lets you prove later that nothing before it was rewritten." }
        }
        p { a href="/audit" { "Back to the audit log" } }
    };
    Ok(page(&viewer, "Audit log check", body))
}
