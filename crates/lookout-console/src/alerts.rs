//! The DSL team's alerts inbox: open alerts, most severe and longest waiting first, updated
//! live; each alert with its evidence and the person's surrounding activity; reviewed or
//! dismissed as a false alarm with a reason.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use futures_util::stream::{self, Stream, StreamExt as _};
use lookout_auth::Role;
use lookout_monitor::category_label;
use lookout_store::{Alert, Inbox, ReviewAction, ReviewError};
use maud::{html, Markup};
use serde::Deserialize;
use tokio_stream::wrappers::BroadcastStream;

use crate::pages::{ago, csrf, page, page_with_script, severity, when};
use crate::session::{PageError, Posted, Viewer};
use crate::{now_ms, Console};

/// Who works the inbox.
pub(crate) const SAFEGUARDING: &[Role] = &[Role::Dsl, Role::Supervisor];

/// Minutes of activity shown either side of an alert.
const AROUND_MINUTES: i64 = 5;

/// Reasons offered for dismissing (the first word is stored as the slug).
pub(crate) const DISMISS_REASONS: &[(&str, &str)] = &[
    (
        "innocent",
        "Innocent use of the words (a film, a book, a song, a lesson)",
    ),
    ("schoolwork", "Schoolwork or research"),
    ("wrong-person", "Wrong person or device"),
    ("duplicate", "Duplicate of another alert"),
    ("other", "Another reason (say below)"),
];

impl From<ReviewError> for PageError {
    fn from(e: ReviewError) -> Self {
        match e {
            ReviewError::NotFound(id) => PageError::NotFound(format!("There is no alert {id}.")),
            ReviewError::AlreadyDone { action, by } => PageError::Conflict(format!(
                "This alert was already {action} by {by}. Reload the inbox to see its current state."
            )),
            ReviewError::Store(e) => e.into(),
        }
    }
}

fn who(a: &Alert) -> String {
    let who = match (&a.username, &a.device, &a.client_ip) {
        (Some(u), _, _) => u.clone(),
        (None, Some(d), _) => format!("device {d}"),
        (None, None, Some(ip)) => format!("address {ip}"),
        _ => "unknown".to_owned(),
    };
    match &a.site {
        Some(site) => format!("{who} at {site}"),
        None => who,
    }
}

fn status_label(s: &str) -> &'static str {
    match s {
        "new" => "Waiting for review",
        "reviewed" => "Reviewed",
        "dismissed" => "Dismissed (false alarm)",
        "incident" => "Incident opened",
        _ => "Unknown",
    }
}

/// One row of the inbox; the live stream sends the same markup.
pub(crate) fn alert_row(a: &Alert, now: i64) -> Markup {
    html! {
        tr id={"alert-" (a.id)} data-severity=(a.severity) data-created=(a.created_ms) {
            td { (severity(&a.severity)) }
            td { a href={"/alerts/" (a.id)} { (category_label(&a.category)) } }
            td { (who(a)) br; span class="muted" { (a.group) } }
            td { (a.findings) }
            td { time datetime=(a.created_ms) title=(when(a.created_ms)) { (ago(a.created_ms, now)) } }
            td { (status_label(&a.status)) }
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct InboxQuery {
    #[serde(default)]
    show: Option<String>,
    /// Only alerts from this site gateway.
    #[serde(default)]
    site: Option<String>,
}

/// `GET /alerts`.
pub(crate) async fn inbox(
    State(console): State<Console>,
    viewer: Viewer,
    Query(q): Query<InboxQuery>,
) -> Result<Html<String>, PageError> {
    viewer.require(SAFEGUARDING)?;
    let (which, label) = match q.show.as_deref() {
        None | Some("open") => (Inbox::Open, "open"),
        Some("reviewed") => (Inbox::Reviewed, "reviewed"),
        Some("dismissed") => (Inbox::Dismissed, "dismissed"),
        Some("all") => (Inbox::All, "all"),
        Some(other) => {
            return Err(PageError::BadForm(format!(
                "“{other}” is not a list of alerts: choose open, reviewed, dismissed or all."
            )))
        }
    };
    let store = console.store();
    let site = q.site.filter(|s| !s.is_empty());
    let sites = crate::pages::site_names(store).await?;
    let alerts = store.inbox(which, site.as_deref(), 500).await?;
    store
        .audit(
            &viewer
                .audit("alerts.list", format!("alerts:{label}"))
                .detail(match &site {
                    Some(s) => format!("{} shown; site {s}", alerts.len()),
                    None => format!("{} shown", alerts.len()),
                }),
        )
        .await?;
    let now = now_ms();
    let tabs = [
        ("open", "Waiting for review"),
        ("reviewed", "Reviewed"),
        ("dismissed", "Dismissed"),
        ("all", "All"),
    ];
    let body = html! {
        nav class="tabs" aria-label="Which alerts" {
            @for (slug, text) in tabs {
                @let href = match &site {
                    Some(s) => format!("/alerts?show={slug}&site={}", crate::pages::encode(s)),
                    None => format!("/alerts?show={slug}"),
                };
                @if slug == label { a href=(href) aria-current="page" { (text) } }
                @else { a href=(href) { (text) } }
            }
        }
        @if !sites.is_empty() {
            form method="get" action="/alerts" class="filters" {
                input type="hidden" name="show" value=(label);
                label for="site" { "Site" }
                select id="site" name="site" {
                    option value="" { "Every site" }
                    @for s in &sites {
                        @if site.as_deref() == Some(s.as_str()) { option value=(s) selected { (s) } }
                        @else { option value=(s) { (s) } }
                    }
                }
                " "
                button type="submit" { "Show" }
            }
        }
        @if which == Inbox::Open && site.is_none() {
            p class="hint" { "Most serious first, then the longest waiting. New alerts appear here as they happen." }
            p id="live-status" class="live" role="status" aria-live="polite" { "Connecting for live updates…" }
        } @else if which == Inbox::Open {
            p class="hint" { "Most serious first, then the longest waiting. Reload the page for new alerts (the live list is on “Every site”)." }
        }
        table class="list" id="alerts" data-live=(which == Inbox::Open && site.is_none()) {
            caption class="visually-hidden" { "Alerts" }
            thead { tr { th scope="col" { "Severity" } th scope="col" { "Concern" } th scope="col" { "Who" } th scope="col" { "Findings" } th scope="col" { "Raised" } th scope="col" { "Status" } } }
            tbody {
                @for a in &alerts { (alert_row(a, now)) }
            }
        }
        @if alerts.is_empty() { p id="no-alerts" { "There are no alerts here." } }
    };
    let script = (which == Inbox::Open && site.is_none()).then_some("/inbox.js");
    Ok(page_with_script(&viewer, "Alerts", body, script))
}

/// `GET /alerts/stream`: Server-Sent Events for the inbox page (cookie session). `ready`
/// first, then `alert` events whose data is the alert's inbox row (or a note to reload when
/// this reader fell behind).
pub(crate) async fn stream(
    State(console): State<Console>,
    viewer: Viewer,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, PageError> {
    viewer.require(SAFEGUARDING)?;
    let rx = console.inner.monitor.subscribe();
    let ready = stream::once(async { Ok(SseEvent::default().event("ready").data("live")) });
    // The row is rendered from the notice itself: no database read per reader per alert.
    let changes = BroadcastStream::new(rx).map(|r| {
        Ok(match r {
            Ok(n) => SseEvent::default()
                .event("alert")
                .id(n.id.to_string())
                .data(alert_row(&n.alert(), now_ms()).into_string()),
            Err(_) => SseEvent::default().event("lagged").data("reload"),
        })
    });
    let stream = ready
        .chain(changes)
        .take_until(console.inner.shutdown.clone().cancelled_owned());
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// `GET /alerts/{id}`: the alert, its findings, what was done with it, and the person's
/// activity either side of it.
pub(crate) async fn detail(
    State(console): State<Console>,
    viewer: Viewer,
    Path(id): Path<i64>,
) -> Result<Html<String>, PageError> {
    viewer.require(SAFEGUARDING)?;
    let store = console.store();
    let (alert, findings) = store
        .alert(id)
        .await?
        .ok_or_else(|| PageError::NotFound(format!("There is no alert {id}.")))?;
    let reviews = store.alert_reviews(id).await?;
    // A reported concern is about what someone told us, not what the reporter browsed.
    let concern = match alert.category.as_str() {
        lookout_monitor::CONCERN => store.concern_for_alert(id).await?,
        _ => None,
    };
    let activity = match concern {
        Some(_) => Vec::new(),
        None => {
            store
                .alert_activity(&alert, AROUND_MINUTES * 60 * 1000, 200)
                .await?
        }
    };
    store
        .audit(&viewer.audit("alert.view", format!("alert:{id}")))
        .await?;
    let title = format!(
        "{} alert: {}",
        capitalised(&alert.severity),
        category_label(&alert.category)
    );
    let body = html! {
        dl class="facts" {
            dt { "Severity" } dd { (severity(&alert.severity)) }
            @if let Some(c) = &concern {
                dt { "Reported by" } dd { (c.reporter) " (" (alert.group) ")" }
                dt { "Concern" } dd { a href={"/concerns/" (c.id)} { (c.reference) } }
            } @else {
                dt { "Who" } dd { (who(&alert)) " (" (alert.group) ")" }
            }
            @if let Some(d) = &alert.device { dt { "Device" } dd { (d) } }
            @if let Some(ip) = &alert.client_ip { dt { "Address" } dd { (ip) } }
            dt { "First seen" } dd { (when(alert.created_ms)) }
            dt { "Last seen" } dd { (when(alert.updated_ms)) }
            dt { "Status" } dd id="alert-status" { (status_label(&alert.status)) }
            dt { "Reference" } dd { code { (alert.reference) } }
        }
        h2 { "What was seen" }
        ol class="findings" {
            @for f in &findings {
                li {
                    p { (severity(&f.finding.severity)) " " (when(f.finding.at_ms)) " · " (source_label(&f.finding.source))
                        @if !f.finding.location.is_empty() { " · " span class="muted" { (f.finding.location) } } }
                    blockquote { (highlight(&f.finding.context, &f.finding.evidence)) }
                    (why(&f.finding.rules))
                }
            }
        }
        @if !reviews.is_empty() {
            h2 { "What was done" }
            ul {
                @for r in &reviews {
                    li { (when(r.at_ms)) ": " (status_label(&r.action)) " by " (r.by_user)
                        @if !r.reason.is_empty() { " — " (r.reason) } }
                }
            }
        }
        @if alert.status == "new" {
            h2 { "Decide" }
            div class="actions" {
                form method="post" action={"/alerts/" (id) "/review"} class="stack card" {
                    (csrf(&viewer.session.csrf))
                    h3 { "Reviewed" }
                    label for="review-note" { "Note (optional)" }
                    textarea id="review-note" name="note" rows="2" {}
                    button type="submit" { "Mark as reviewed" }
                }
                form method="post" action={"/alerts/" (id) "/dismiss"} class="stack card" {
                    (csrf(&viewer.session.csrf))
                    h3 { "False alarm" }
                    fieldset {
                        legend { "Why is it a false alarm?" }
                        @for (slug, text) in DISMISS_REASONS {
                            label class="choice" { input type="radio" name="reason" value=(slug) required; " " (text) }
                        }
                    }
                    label for="dismiss-note" { "Say more (needed for “another reason”)" }
                    textarea id="dismiss-note" name="note" rows="2" {}
                    button type="submit" class="secondary" { "Dismiss as a false alarm" }
                }
                div class="stack card" {
                    h3 { "A safeguarding concern" }
                    p { "Record an incident: this alert is linked to it and leaves the inbox." }
                    a class="button" href={"/incidents/new?alert=" (id)} { "Open an incident" }
                }
            }
        }
        @if concern.is_none() {
        h2 { "Activity around it" }
        p class="hint" { "Everything logged for " (who(&alert)) " from " (AROUND_MINUTES) " minutes before the alert to " (AROUND_MINUTES) " minutes after." }
        @if activity.is_empty() { p { "No activity was logged in that time." } }
        @else {
            table class="list" {
                thead { tr { th scope="col" { "Time" } th scope="col" { "Address" } th scope="col" { "Search or page" } th scope="col" { "Category" } th scope="col" { "Action" } } }
                tbody {
                    @for e in &activity {
                        tr {
                            td { (when(e.event.at_ms)) }
                            td { (e.event.client_ip) }
                            td class="url" { @if let Some(t) = &e.event.search_term { "Searched: " strong { (t) } br; } (e.event.url) }
                            td { (e.event.categories) }
                            td { (e.event.action) }
                        }
                    }
                }
            }
        }
        }
        p { a href="/alerts" { "Back to the alerts inbox" } }
    };
    Ok(page(&viewer, &title, body))
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map_or_else(String::new, |f| f.to_uppercase().chain(c).collect())
}

fn source_label(s: &str) -> &str {
    match s {
        "search" => "search",
        "url" => "web address",
        "page" => "page text",
        "typed" => "typed on the device",
        "chat" => "chat message",
        "window-title" => "window title",
        "concern" => "reported concern",
        other => other,
    }
}

/// Why a finding was made: the phrase rules that matched, or the model's score with the
/// labelled examples closest to the text.
fn why(rules: &str) -> Markup {
    let rules: Vec<serde_json::Value> = serde_json::from_str(rules).unwrap_or_default();
    let phrases: Vec<String> = rules
        .iter()
        .filter(|r| r["stage"] != "model")
        .filter_map(|r| {
            Some(format!(
                "“{}” ({})",
                r["rule"].as_str()?,
                r["source"].as_str().unwrap_or("")
            ))
        })
        .collect();
    let model = rules.iter().find(|r| r["stage"] == "model");
    html! {
        @if !phrases.is_empty() {
            p class="muted" { "Matched phrase rule " (phrases.join(", ")) "." }
        }
        @if let Some(m) = model {
            p class="muted" {
                "Found by the model: score " (format!("{:.2}", m["score"].as_f64().unwrap_or(0.0)))
                " (about this share of such texts were this risk in testing), danger score "
                (format!("{:.2}", m["danger"].as_f64().unwrap_or(0.0))) "."
            }
            @if let Some(examples) = m["examples"].as_array().filter(|e| !e.is_empty()) {
                details {
                    summary { "Closest labelled examples" }
                    ul {
                        @for e in examples {
                            li { "“" (e["text"].as_str().unwrap_or("")) "” — "
                                (e["labels"].as_str().unwrap_or("")) ", similarity "
                                (format!("{:.2}", e["similarity"].as_f64().unwrap_or(0.0))) }
                        }
                    }
                }
            }
        }
    }
}

/// The context with the evidence marked (first occurrence), escaped.
fn highlight(context: &str, evidence: &str) -> Markup {
    match (!evidence.is_empty())
        .then(|| context.find(evidence))
        .flatten()
    {
        Some(i) => {
            let (a, rest) = context.split_at(i);
            let (m, b) = rest.split_at(evidence.len());
            html! { (a) mark { (m) } (b) }
        }
        None => html! { (context) },
    }
}

#[derive(Deserialize)]
pub(crate) struct ReviewForm {
    #[serde(default)]
    note: String,
}

/// `POST /alerts/{id}/review`.
pub(crate) async fn review(
    State(console): State<Console>,
    Path(id): Path<i64>,
    Posted(viewer, form): Posted<ReviewForm>,
) -> Result<Response, PageError> {
    viewer.require(SAFEGUARDING)?;
    let note = form.note.trim();
    console
        .store()
        .review_alert(
            id,
            ReviewAction::Reviewed,
            note,
            None,
            &viewer
                .audit("alert.reviewed", format!("alert:{id}"))
                .detail(note),
        )
        .await?;
    Ok(Redirect::to("/alerts").into_response())
}

#[derive(Deserialize)]
pub(crate) struct DismissForm {
    reason: String,
    #[serde(default)]
    note: String,
}

/// `POST /alerts/{id}/dismiss`: a reason from the list; "other" needs words.
pub(crate) async fn dismiss(
    State(console): State<Console>,
    Path(id): Path<i64>,
    Posted(viewer, form): Posted<DismissForm>,
) -> Result<Response, PageError> {
    viewer.require(SAFEGUARDING)?;
    let Some((slug, text)) = DISMISS_REASONS.iter().find(|(s, _)| *s == form.reason) else {
        return Err(PageError::BadForm(
            "Choose why this is a false alarm.".into(),
        ));
    };
    let note = form.note.trim();
    if *slug == "other" && note.is_empty() {
        return Err(PageError::BadForm(
            "You chose “another reason”: please say what it is.".into(),
        ));
    }
    let reason = if note.is_empty() {
        (*text).to_owned()
    } else {
        format!("{text}: {note}")
    };
    console
        .store()
        .review_alert(
            id,
            ReviewAction::Dismissed,
            &format!("{slug}: {reason}"),
            None,
            &viewer
                .audit("alert.dismissed", format!("alert:{id}"))
                .detail(&reason),
        )
        .await?;
    Ok(Redirect::to("/alerts").into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evidence_is_marked_and_escaped() {
        let table = [
            (
                "I want to <b>kill myself</b> today",
                "kill myself",
                "I want to &lt;b&gt;<mark>kill myself</mark>&lt;/b&gt; today",
            ),
            ("no match here", "absent", "no match here"),
            ("empty evidence", "", "empty evidence"),
        ];
        for (context, evidence, want) in table {
            assert_eq!(highlight(context, evidence).into_string(), want);
        }
    }
}
