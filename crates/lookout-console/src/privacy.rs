//! Subject access requests: everything Lookout holds about one person, as JSON and as a
//! readable page (the IT admin's `/users/{name}/data`, and `lookout privacy export`). Both
//! say that safeguarding records may be withheld from the person under the law's exemptions,
//! so the bundle is for the data protection officer to review before release.

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use lookout_auth::Role;
use lookout_store::{Held, UserError};
use maud::html;
use serde_json::{json, Value};

use crate::pages::{standalone, when};
use crate::session::{PageError, Viewer};
use crate::{now_ms, Console};

/// Said at the top of both forms.
pub(crate) const NOTICE: &str = "Everything Lookout holds about this person, for a subject access request. Review it before release: safeguarding records (alerts, what the monitoring flagged, incidents) may be withheld where releasing them would put someone at risk, under the data protection law's exemptions. Passwords, two-factor secrets and keys are never included.";

/// The bundle as JSON.
pub fn privacy_json(username: &str, held: &[Held], made_ms: i64) -> Value {
    json!({
        "person": username,
        "made_ms": made_ms,
        "notice": NOTICE,
        "records": held.iter().map(|h| json!({
            "title": h.title,
            "table": h.table,
            "rows": h.rows,
        })).collect::<Vec<_>>(),
    })
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:70rem;padding:0 1rem;color:#1b1b1b}table{border-collapse:collapse;width:100%;font-size:.9rem;margin:.5rem 0 1.5rem}th,td{border:1px solid #d5d9e0;padding:.25rem .4rem;text-align:left;vertical-align:top;overflow-wrap:anywhere}.notice{border-left:4px solid #b45309;background:#fffbeb;padding:.5rem .8rem}@media print{body{margin:0;max-width:none}}";

/// The bundle as one readable, self-contained page (times in words beside `_ms` columns).
pub fn privacy_html(username: &str, held: &[Held], made_ms: i64) -> String {
    let title = format!("Data held about {username}");
    let body = html! {
                h1 { (title) }
                p { "Made on " (when(made_ms)) "." }
                p class="notice" { (NOTICE) }
                @for h in held {
                    h2 { (h.title) " (" (h.rows.len()) ")" }
                    @if h.rows.is_empty() { p { "None held." } }
                    @else {
                        table {
                            thead { tr { @for k in h.rows[0].keys() { th scope="col" { (k) } } } }
                            tbody {
                                @for row in &h.rows {
                                    tr { @for (k, v) in row {
                                        td {
                                            (cell(v))
                                            @if k.ends_with("_ms") { @if let Some(ms) = v.as_i64().filter(|ms| *ms > 0) { br; small { (when(ms)) } } }
                                        }
                                    } }
                                }
                            }
                        }
                    }
                }
    };
    standalone(&title, STYLE, body)
}

async fn gather(
    console: &Console,
    viewer: &Viewer,
    name: &str,
    form: &str,
) -> Result<(String, Vec<Held>), PageError> {
    viewer.require(&[Role::ItAdmin])?;
    let store = console.store();
    let held = match store.person_data(name).await {
        Ok(h) => h,
        Err(UserError::NotFound(_) | UserError::BadName(_)) => {
            return Err(PageError::NotFound(format!(
                "There is nobody called {name}."
            )))
        }
        Err(UserError::Store(e)) => return Err(e.into()),
        Err(_) => return Err(PageError::Internal),
    };
    let username = lookout_store::normalize_username(name).unwrap_or_else(|_| name.to_owned());
    store
        .audit(
            &viewer
                .audit("privacy.export", format!("user:{username}"))
                .detail(form),
        )
        .await?;
    Ok((username, held))
}

/// `GET /users/{name}/data` (IT admin): the readable page.
pub(crate) async fn page(
    State(console): State<Console>,
    viewer: Viewer,
    Path(name): Path<String>,
) -> Result<Html<String>, PageError> {
    let (username, held) = gather(&console, &viewer, &name, "html").await?;
    Ok(Html(privacy_html(&username, &held, now_ms())))
}

/// `GET /users/{name}/data.json` (IT admin): the same as a JSON download.
pub(crate) async fn json(
    State(console): State<Console>,
    viewer: Viewer,
    Path(name): Path<String>,
) -> Result<Response, PageError> {
    let (username, held) = gather(&console, &viewer, &name, "json").await?;
    let body = serde_json::to_string_pretty(&privacy_json(&username, &held, now_ms()))
        .map_err(|_| PageError::Internal)?;
    let disposition = format!("attachment; filename=\"{username}-data.json\"");
    Ok((
        [
            (header::CONTENT_TYPE, "application/json".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response())
}
