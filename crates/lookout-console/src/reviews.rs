//! "This should not be blocked": requests from block pages, and the IT admin's queue. An
//! approval adds a per-group allow entry that the gateway applies at once; nothing on an
//! illegal-content list can be approved (and the policy would block it anyway).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use lookout_auth::Role;
use lookout_lists::{CategorySet, LiveIndex, NormUrl};
use lookout_policy::Policy;
use lookout_store::{DecisionError, EventFilter, NewReviewRequest, Store};
use maud::html;
use serde::Deserialize;

use crate::pages::{csrf, page, when, FromBlockPage};
use crate::session::{PageError, Posted, Viewer};
use crate::Console;

/// The gateway's live policy and lists, for applying approvals and showing categories.
#[derive(Clone, Debug)]
pub struct Filter {
    pub policy: Arc<Policy>,
    pub index: LiveIndex,
}

impl From<DecisionError> for PageError {
    fn from(e: DecisionError) -> Self {
        match e {
            DecisionError::NotFound(id) => {
                PageError::NotFound(format!("There is no review request {id}."))
            }
            DecisionError::AlreadyDecided { status, by } => {
                PageError::Conflict(format!("This request was already {status} by {by}."))
            }
            DecisionError::Store(e) => e.into(),
        }
    }
}

/// Gives every group of `policy` the entries allowed after review in `store`; returns how many
/// entries were applied. Entries for groups no longer configured are skipped (and logged).
pub async fn apply_reviewed_allows(store: &Store, policy: &Policy) -> Result<usize, String> {
    let allows = store.reviewed_allows().await.map_err(|e| e.to_string())?;
    set_allows(
        policy,
        allows.iter().map(|a| (a.group.as_str(), a.entry.as_str())),
    )
}

/// Sets each policy group's entries allowed after review to those of `allows` (group, entry)
/// — this server's own, or a site gateway's from its central; how many were set.
pub fn set_allows<'a>(
    policy: &Policy,
    allows: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<usize, String> {
    let mut by_group: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (group, entry) in allows {
        by_group.entry(group).or_default().push(entry.to_owned());
    }
    let mut applied = 0;
    for g in policy.groups() {
        let entries = by_group.remove(g.name()).unwrap_or_default();
        g.set_reviewed_allows(&entries).map_err(|e| e.to_string())?;
        applied += entries.len();
    }
    for (group, entries) in by_group {
        tracing::warn!(
            "{} entr(ies) allowed after review for group `{group}`, which is no longer configured",
            entries.len()
        );
    }
    Ok(applied)
}

/// The categories the lists give a URL now.
fn categories_of(filter: Option<&Filter>, url: &str) -> Option<CategorySet> {
    let f = filter?;
    let u = NormUrl::parse(url).ok()?;
    Some(CategorySet::from_bits(f.index.load().lookup(&u)))
}

/// `GET /review?ref=&url=`: the block page's "This should not be blocked" link.
pub(crate) async fn from_block_page(Query(q): Query<FromBlockPage>) -> Redirect {
    q.forward("/reviews/new")
}

/// `GET /reviews/new`.
pub(crate) async fn new_form(viewer: Viewer, Query(q): Query<FromBlockPage>) -> Html<String> {
    let url = q.url.unwrap_or_default();
    let body = html! {
        p class="lead" { "If a page you need for your studies or work is blocked, ask the IT team to look at it. They will allow it for your group if it is safe, or tell you why not." }
        form method="post" action="/reviews/new" class="stack" {
            (csrf(&viewer.session.csrf))
            @if let Some(r) = &q.reference { input type="hidden" name="block_ref" value=(r); }
            label for="url" { "The blocked address" }
            input id="url" name="url" type="text" required maxlength="2000" value=(url);
            label for="reason" { "Why do you need it?" }
            textarea id="reason" name="reason" rows="4" required maxlength="2000" {}
            button type="submit" { "Ask for a review" }
        }
    };
    page(&viewer, "Ask for a blocked page to be reviewed", body)
}

#[derive(Deserialize)]
pub(crate) struct RequestForm {
    #[serde(default)]
    url: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    block_ref: Option<String>,
}

/// `POST /reviews/new`.
pub(crate) async fn create(
    State(console): State<Console>,
    Posted(viewer, f): Posted<RequestForm>,
) -> Result<Response, PageError> {
    let url = f.url.trim();
    let reason = f.reason.trim();
    if url.is_empty() || url.len() > 2000 {
        return Err(PageError::BadForm(
            "Please give the blocked address.".into(),
        ));
    }
    if NormUrl::parse(url).is_err() {
        return Err(PageError::BadForm(format!("“{url}” is not a web address.")));
    }
    if reason.is_empty() || reason.chars().count() > 2000 {
        return Err(PageError::BadForm(
            "Please say why you need it (up to 2000 characters).".into(),
        ));
    }
    let store = console.store();
    // The block page's reference says which group's policy blocked it, and why.
    let reference = f
        .block_ref
        .as_deref()
        .map(|r| {
            r.chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
                .take(32)
                .collect::<String>()
        })
        .filter(|r| !r.is_empty());
    let event = match &reference {
        Some(r) => store
            .events(&EventFilter {
                reference: Some(r.clone()),
                limit: Some(1),
                ..EventFilter::default()
            })
            .await?
            .into_iter()
            .next(),
        None => None,
    };
    let user = &viewer.session.account.user;
    let (group, categories) = match event {
        Some(e) => (
            e.event.group.into_string(),
            e.event.categories.into_string(),
        ),
        None => (
            user.group.clone(),
            categories_of(console.inner.filter.as_ref(), url)
                .map_or_else(String::new, |c| c.slugs().into_owned()),
        ),
    };
    store
        .add_review_request(
            &NewReviewRequest {
                requester: user.username.clone(),
                group,
                url: url.to_owned(),
                block_ref: reference,
                categories,
                reason: reason.to_owned(),
            },
            &viewer.audit("review.requested", ""),
        )
        .await?;
    Ok(Redirect::to("/concerns/mine?review=1").into_response())
}

/// `GET /reviews`: the IT admin's queue, and what is allowed after review.
pub(crate) async fn queue(
    State(console): State<Console>,
    viewer: Viewer,
) -> Result<Html<String>, PageError> {
    viewer.require(&[Role::ItAdmin])?;
    let store = console.store();
    let requests = store.review_requests(300).await?;
    let allows = store.reviewed_allows().await?;
    store
        .audit(&viewer.audit("reviews.list", "reviews"))
        .await?;
    let filter = console.inner.filter.as_ref();
    let token = &viewer.session.csrf;
    let body = html! {
        @if filter.is_none() {
            p class="error" { "The gateway is not running in this process: approvals are stored, and apply when it next starts." }
        }
        h2 { "Requests" }
        @if requests.is_empty() { p { "Nobody has asked for a review." } }
        @for r in &requests {
            @let now_cats = categories_of(filter, &r.url);
            @let illegal = now_cats.is_some_and(|c| !c.intersection(CategorySet::illegal()).is_empty());
            section class="card" id={"review-" (r.id)} {
                h3 { code { (r.url) } }
                dl class="facts" {
                    dt { "Asked by" } dd { (r.requester) " (group " (r.group) "), " (when(r.at_ms)) }
                    dt { "Blocked as" } dd { @if r.categories.is_empty() { "no category recorded" } @else { (r.categories) } }
                    @if let Some(c) = now_cats { dt { "Lists now say" } dd { @if c.is_empty() { "no category" } @else { (c.slugs()) } } }
                    dt { "Why they need it" } dd { (r.reason) }
                    dt { "Status" } dd {
                        @match r.status.as_str() {
                            "pending" => "Waiting for a decision",
                            "approved" => { "Approved by " (r.decided_by.clone().unwrap_or_default()) ": " code { (r.allow_entry.clone().unwrap_or_default()) } " allowed for " (r.group) }
                            _ => { "Rejected by " (r.decided_by.clone().unwrap_or_default()) ": " (r.decision.clone().unwrap_or_default()) }
                        }
                    }
                }
                @if r.status == "pending" {
                    div class="actions" {
                        @if illegal {
                            p class="error" { "This address is on an illegal-content list. It can never be allowed." }
                        } @else {
                            form method="post" action={"/reviews/" (r.id) "/approve"} class="stack" {
                                (csrf(token))
                                fieldset {
                                    legend { "Allow for group " (r.group) }
                                    label class="choice" { input type="radio" name="scope" value="page" required checked; " This page and below" }
                                    label class="choice" { input type="radio" name="scope" value="site" required; " The whole site" }
                                }
                                label for={"approve-note-" (r.id)} { "Note (optional)" }
                                input id={"approve-note-" (r.id)} name="note" type="text";
                                button type="submit" { "Approve" }
                            }
                        }
                        form method="post" action={"/reviews/" (r.id) "/reject"} class="stack" {
                            (csrf(token))
                            label for={"reject-note-" (r.id)} { "Why not (the requester sees this)" }
                            input id={"reject-note-" (r.id)} name="note" type="text" required;
                            button type="submit" class="secondary" { "Reject" }
                        }
                    }
                }
            }
        }
        h2 { "Allowed after review" }
        @if allows.is_empty() { p { "Nothing has been allowed after review." } }
        @else {
            table class="list" id="reviewed-allows" {
                thead { tr { th scope="col" { "Group" } th scope="col" { "Allowed" } th scope="col" { "By" } th scope="col" { "" } } }
                tbody {
                    @for a in &allows {
                        tr {
                            td { (a.group) } td { code { (a.entry) } } td { (a.approved_by) ", " (when(a.approved_ms)) }
                            td {
                                form method="post" action={"/reviews/allows/" (a.id) "/remove"} class="inline" {
                                    (csrf(token))
                                    button type="submit" class="link" { "Stop allowing" }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(page(&viewer, "Blocked-page reviews", body))
}

#[derive(Deserialize)]
pub(crate) struct Decision {
    #[serde(default)]
    scope: String,
    #[serde(default)]
    note: String,
}

async fn reapply(console: &Console) -> Result<(), PageError> {
    if let Some(f) = &console.inner.filter {
        apply_reviewed_allows(console.store(), &f.policy)
            .await
            .map_err(|e| {
                tracing::error!("applying reviewed allow entries: {e}");
                PageError::Internal
            })?;
    }
    Ok(())
}

/// `POST /reviews/{id}/approve`.
pub(crate) async fn approve(
    State(console): State<Console>,
    Path(id): Path<i64>,
    Posted(viewer, f): Posted<Decision>,
) -> Result<Response, PageError> {
    viewer.require(&[Role::ItAdmin])?;
    let store = console.store();
    let request = store
        .review_request(id)
        .await?
        .ok_or_else(|| PageError::NotFound(format!("There is no review request {id}.")))?;
    let url = NormUrl::parse(&request.url)
        .map_err(|e| PageError::BadForm(format!("The address cannot be allowed: {e}")))?;
    if let Some(c) = categories_of(console.inner.filter.as_ref(), &request.url) {
        if let Some(cat) = c.intersection(CategorySet::illegal()).first() {
            return Err(PageError::BadForm(format!(
                "This address is on an illegal-content list ({}): it can never be allowed.",
                cat.slug()
            )));
        }
    }
    let entry = match f.scope.as_str() {
        "page" => url.host_and_path().trim_end_matches('/').to_owned(),
        "site" => url.host().to_owned(),
        _ => {
            return Err(PageError::BadForm(
                "Choose this page or the whole site.".into(),
            ))
        }
    };
    store
        .decide_review(
            id,
            Some(&entry),
            f.note.trim(),
            &viewer
                .audit("review.approved", format!("review:{id}"))
                .detail(format!("{entry} for {}", request.group)),
        )
        .await?;
    reapply(&console).await?;
    Ok(Redirect::to("/reviews").into_response())
}

/// `POST /reviews/{id}/reject`.
pub(crate) async fn reject(
    State(console): State<Console>,
    Path(id): Path<i64>,
    Posted(viewer, f): Posted<Decision>,
) -> Result<Response, PageError> {
    viewer.require(&[Role::ItAdmin])?;
    let note = f.note.trim();
    if note.is_empty() {
        return Err(PageError::BadForm(
            "Please say why not: the requester sees it.".into(),
        ));
    }
    console
        .store()
        .decide_review(
            id,
            None,
            note,
            &viewer
                .audit("review.rejected", format!("review:{id}"))
                .detail(note),
        )
        .await?;
    Ok(Redirect::to("/reviews").into_response())
}

#[derive(Deserialize)]
pub(crate) struct Empty {}

/// `POST /reviews/allows/{id}/remove`.
pub(crate) async fn remove(
    State(console): State<Console>,
    Path(id): Path<i64>,
    Posted(viewer, _): Posted<Empty>,
) -> Result<Response, PageError> {
    viewer.require(&[Role::ItAdmin])?;
    let removed = console
        .store()
        .remove_reviewed_allow(
            id,
            &viewer.audit("review.allow-removed", format!("allow:{id}")),
        )
        .await?;
    if removed.is_none() {
        return Err(PageError::NotFound(format!(
            "There is no allowed entry {id}."
        )));
    }
    reapply(&console).await?;
    Ok(Redirect::to("/reviews").into_response())
}
