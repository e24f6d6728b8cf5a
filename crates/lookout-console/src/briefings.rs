//! The e-safety briefing and acceptable-use terms people accept at the portal before using
//! the internet: versions (a change is a new version, which everyone of that group accepts
//! again), per group or for everyone, and who accepted which version, when and where.

use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use lookout_auth::Role;
use lookout_http::markdown_html;
use lookout_store::NewBriefing;
use maud::{html, PreEscaped};
use serde::Deserialize;

use crate::pages::{csrf, page, when};
use crate::session::{PageError, Posted, Viewer};
use crate::Console;

/// Who writes and publishes briefings, and sees who accepted them.
pub(crate) const EDITORS: &[Role] = &[Role::Dsl, Role::ItAdmin];

const TITLE_MAX: usize = 200;
const TEXT_MAX: usize = 50_000;

/// `GET /briefings`.
pub(crate) async fn list(
    State(console): State<Console>,
    viewer: Viewer,
) -> Result<Html<String>, PageError> {
    viewer.require(EDITORS)?;
    let store = console.store();
    let all = store.briefings().await?;
    let counts = store.acceptance_counts().await?;
    let accepted = |id: i64| counts.iter().find(|(b, _)| *b == id).map_or(0, |(_, n)| *n);
    // The version each group sees now.
    let mut groups: Vec<String> = console.settings().groups.clone();
    groups.sort();
    let mut current = Vec::new();
    for g in &groups {
        current.push((g.clone(), store.current_briefing(g).await?));
    }
    store
        .audit(&viewer.audit("briefing.list", "briefings"))
        .await?;
    let body = html! {
        p { "People on networks with portal sign-in read their group's briefing and accept the acceptable-use terms before they can use the internet. Publishing a new version asks everyone it applies to to accept again." }
        p { a class="button" href="/briefings/new" { "Publish a new version" } }
        @if !current.is_empty() {
            h2 { "What each group sees now" }
            table class="list" id="current" {
                thead { tr { th scope="col" { "Group" } th scope="col" { "Briefing" } } }
                tbody {
                    @for (g, b) in &current {
                        tr {
                            td { (g) }
                            td { @match b {
                                Some(b) => { a href={"/briefings/" (b.id)} { (b.title) " (version " (b.id) ")" } }
                                None => { span class="badge sev-caution" { "None published: people sign in without a briefing" } }
                            } }
                        }
                    }
                }
            }
        }
        h2 { "Every version" }
        p { a href="/briefings/acceptances.csv" { "Download every acceptance (CSV)" } }
        @if all.is_empty() { p { "No briefing has been published yet." } }
        @else {
            table class="list" id="versions" {
                thead { tr { th scope="col" { "Version" } th scope="col" { "For" } th scope="col" { "Title" } th scope="col" { "Published" } th scope="col" { "Accepted by" } } }
                tbody {
                    @for b in &all {
                        tr {
                            td { a href={"/briefings/" (b.id)} { (b.id) } }
                            td { (b.group.as_deref().unwrap_or("Everyone")) }
                            td { (b.title) }
                            td { (when(b.published_ms)) " by " (b.published_by) }
                            td { (accepted(b.id)) " people" }
                        }
                    }
                }
            }
        }
    };
    Ok(page(&viewer, "E-safety briefing", body))
}

/// `GET /briefings/acceptances.csv`: every acceptance — who, their group, which version, when,
/// from which address.
pub(crate) async fn acceptances_csv(
    State(console): State<Console>,
    viewer: Viewer,
) -> Result<Response, PageError> {
    viewer.require(EDITORS)?;
    let store = console.store();
    let briefings: std::collections::HashMap<i64, lookout_store::Briefing> = store
        .briefings()
        .await?
        .into_iter()
        .map(|b| (b.id, b))
        .collect();
    let users = crate::users::by_name(store).await?;
    let mut out = lookout_store::csv_line(&[
        "user", "name", "group", "version", "title", "for", "accepted", "address",
    ]);
    for a in store.acceptances(None).await? {
        let b = briefings.get(&a.briefing_id);
        let u = users.get(&a.username);
        out.push_str(&lookout_store::csv_line(&[
            &a.username,
            u.map_or("", |u| u.display_name.as_str()),
            u.map_or("", |u| u.group.as_str()),
            &a.briefing_id.to_string(),
            b.map_or("", |b| b.title.as_str()),
            b.and_then(|b| b.group.as_deref()).unwrap_or("Everyone"),
            &when(a.at_ms),
            &a.client_ip,
        ]));
    }
    crate::registers::csv_download(
        store,
        &viewer,
        "briefing.acceptances.export",
        "briefings",
        "briefing-acceptances.csv",
        out,
    )
    .await
}

#[derive(Deserialize, Default)]
pub(crate) struct NewQuery {
    /// Start from this version's text.
    #[serde(default)]
    from: Option<i64>,
}

/// `GET /briefings/new[?from=ID]`.
pub(crate) async fn new_form(
    State(console): State<Console>,
    viewer: Viewer,
    Query(q): Query<NewQuery>,
) -> Result<Html<String>, PageError> {
    viewer.require(EDITORS)?;
    let start = match q.from {
        Some(id) => console.store().briefing(id).await?,
        None => console.store().briefings().await?.into_iter().next(),
    };
    Ok(form_page(&console, &viewer, start.as_ref(), None))
}

fn form_page(
    console: &Console,
    viewer: &Viewer,
    start: Option<&lookout_store::Briefing>,
    problem: Option<&str>,
) -> Html<String> {
    let group = start.and_then(|b| b.group.clone()).unwrap_or_default();
    let body = html! {
        @if let Some(p) = problem { p class="problem" role="alert" { (p) } }
        form method="post" action="/briefings" class="stack" {
            (csrf(&viewer.session.csrf))
            label for="group" { "Who it is for" }
            select id="group" name="group" {
                option value="" selected[group.is_empty()] { "Everyone (unless their group has its own)" }
                @for g in &console.settings().groups {
                    option value=(g) selected[*g == group] { (g) }
                }
            }
            label for="title" { "Title" }
            input id="title" name="title" required maxlength=(TITLE_MAX) value=(start.map_or("", |b| b.title.as_str()));
            label for="briefing" { "The e-safety briefing" }
            p class="hint" { "Markdown: # heading, **bold**, - list, [link](https://...). HTML is shown as text; only web, email and phone links work." }
            textarea id="briefing" name="briefing" rows="14" required { (start.map_or("", |b| b.briefing.as_str())) }
            label for="terms" { "Acceptable-use terms (what people agree to)" }
            textarea id="terms" name="terms" rows="10" required { (start.map_or("", |b| b.terms.as_str())) }
            button type="submit" { "Publish this version" }
        }
    };
    page(viewer, "Publish an e-safety briefing", body)
}

#[derive(Deserialize)]
pub(crate) struct BriefingForm {
    #[serde(default)]
    group: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    briefing: String,
    #[serde(default)]
    terms: String,
}

/// `POST /briefings`: publishes a new version.
pub(crate) async fn create(
    State(console): State<Console>,
    Posted(viewer, f): Posted<BriefingForm>,
) -> Result<Response, PageError> {
    viewer.require(EDITORS)?;
    let group = f.group.trim();
    let (title, briefing, terms) = (f.title.trim(), f.briefing.trim(), f.terms.trim());
    let problem = if !group.is_empty() && !console.settings().groups.iter().any(|g| g == group) {
        Some(format!("There is no group called `{group}`."))
    } else if title.is_empty() || briefing.is_empty() || terms.is_empty() {
        Some("Give the briefing a title, its text and the acceptable-use terms.".to_owned())
    } else if title.chars().count() > TITLE_MAX {
        Some(format!("The title is longer than {TITLE_MAX} characters."))
    } else if briefing.len() > TEXT_MAX || terms.len() > TEXT_MAX {
        Some(format!(
            "The briefing and the terms must each be under {} KB.",
            TEXT_MAX / 1000
        ))
    } else {
        None
    };
    if let Some(p) = problem {
        // Nothing is stored; the form comes back with what was typed.
        let typed = lookout_store::Briefing {
            id: 0,
            group: (!group.is_empty()).then(|| group.to_owned()),
            title: f.title.clone(),
            briefing: f.briefing.clone(),
            terms: f.terms.clone(),
            published_ms: 0,
            published_by: String::new(),
        };
        let mut r = form_page(&console, &viewer, Some(&typed), Some(&p)).into_response();
        *r.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
        return Ok(r);
    }
    let b = console
        .store()
        .publish_briefing(
            &NewBriefing {
                group: (!group.is_empty()).then_some(group),
                title,
                briefing,
                terms,
            },
            &viewer.audit("briefing.publish", ""),
        )
        .await?;
    Ok(Redirect::to(&format!("/briefings/{}", b.id)).into_response())
}

/// `GET /briefings/{id}`: the version as the portal shows it, and who accepted it.
pub(crate) async fn detail(
    State(console): State<Console>,
    viewer: Viewer,
    Path(id): Path<i64>,
) -> Result<Html<String>, PageError> {
    viewer.require(EDITORS)?;
    let store = console.store();
    let b = store
        .briefing(id)
        .await?
        .ok_or_else(|| PageError::NotFound(format!("There is no briefing version {id}.")))?;
    let accepted = store.acceptances(Some(id)).await?;
    store
        .audit(&viewer.audit("briefing.view", format!("briefing:{id}")))
        .await?;
    let body = html! {
        dl class="facts" {
            dt { "Version" } dd { (b.id) }
            dt { "For" } dd { (b.group.as_deref().unwrap_or("Everyone (unless their group has its own)")) }
            dt { "Published" } dd { (when(b.published_ms)) " by " (b.published_by) }
            dt { "Accepted by" } dd id="accepted-count" { (accepted.len()) " (a person who accepted again is counted each time)" }
        }
        p { a class="button" href={"/briefings/new?from=" (b.id)} { "Publish a changed version" } }
        h2 { "As people see it" }
        section class="card briefing" { (PreEscaped(markdown_html(&b.briefing))) }
        h2 { "Acceptable-use terms" }
        section class="card terms" { (PreEscaped(markdown_html(&b.terms))) }
        h2 { "Who accepted this version" }
        @if accepted.is_empty() { p { "Nobody yet." } }
        @else {
            table class="list" id="acceptances" {
                thead { tr { th scope="col" { "Person" } th scope="col" { "When" } th scope="col" { "Device address" } } }
                tbody { @for a in &accepted { tr { td { (a.username) } td { (when(a.at_ms)) } td { (a.client_ip) } } } }
            }
        }
        p { a href="/briefings" { "All versions" } }
    };
    Ok(page(&viewer, &b.title, body))
}
