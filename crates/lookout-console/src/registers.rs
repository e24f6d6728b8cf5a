//! The register of official social-media accounts (IT admin and DSL team): accounts with
//! their admins, the checklist of admin rights to revoke (people whose Lookout account was
//! disabled), each account's history, and a CSV export that no spreadsheet runs as formulas.

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{Html, IntoResponse, Redirect, Response};
use lookout_store::{csv_line, AccountFields, SocialAccount, TechAssessment, TechFields};
use maud::html;
use serde::Deserialize;

use crate::pages::{csrf, page, when};
use crate::session::{PageError, Posted, Viewer};
use crate::Console;

/// Who keeps the registers (the same people as the briefing: the routes share one guard).
pub(crate) const KEEPERS: &[lookout_auth::Role] = crate::briefings::EDITORS;

const FIELD_MAX: usize = 300;

/// A short field: not empty, one line, at most [`FIELD_MAX`] characters.
fn one_line(v: &str) -> bool {
    !v.is_empty() && v.chars().count() <= FIELD_MAX && !v.chars().any(char::is_control)
}

/// `GET /registers/social`.
pub(crate) async fn social(
    State(console): State<Console>,
    viewer: Viewer,
) -> Result<Html<String>, PageError> {
    viewer.require(KEEPERS)?;
    let store = console.store();
    let accounts = store.social_accounts().await?;
    let admins = store.social_admins().await?;
    store
        .audit(&viewer.audit("register.social.view", "register:social"))
        .await?;
    let handle = |id: i64| {
        accounts
            .iter()
            .find(|a| a.account_id == id)
            .map_or_else(String::new, |a| format!("{} {}", a.platform, a.handle))
    };
    let to_revoke: Vec<_> = admins.iter().filter(|a| a.revoke_since.is_some()).collect();
    let body = html! {
        p { "Every official account the organisation runs, who holds admin rights and since when. When someone's Lookout account is disabled, their admin rights on these accounts are listed here to take away on each platform." }
        p { a href="/registers/social.csv" { "Download as CSV" } }
        h2 { "Admin rights to revoke" }
        @if to_revoke.is_empty() { p id="to-revoke" { "None: nobody who left still holds admin rights." } }
        @else {
            table class="list" id="to-revoke" {
                thead { tr { th scope="col" { "Account" } th scope="col" { "Admin" } th scope="col" { "Since" } th scope="col" { "Done on the platform?" } } }
                tbody {
                    @for a in &to_revoke {
                        tr {
                            td { (handle(a.account_id)) }
                            td { (a.admin) }
                            td { (when(a.revoke_since.unwrap_or(0))) }
                            td {
                                form method="post" action={"/registers/social/" (a.account_id) "/admins"} class="inline" {
                                    (csrf(&viewer.session.csrf))
                                    input type="hidden" name="admin" value=(a.admin);
                                    input type="hidden" name="kind" value="revoked";
                                    button type="submit" { "Mark revoked" }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Accounts" }
        @if accounts.is_empty() { p { "No account is registered yet." } }
        @else {
            table class="list" id="accounts" {
                thead { tr { th scope="col" { "Platform" } th scope="col" { "Handle" } th scope="col" { "Purpose" } th scope="col" { "Owner" } th scope="col" { "Admins" } } }
                tbody {
                    @for a in &accounts {
                        tr {
                            td { (a.platform) @if a.retired { " (retired)" } }
                            td { a href={"/registers/social/" (a.account_id)} { (a.handle) } }
                            td { (a.purpose) }
                            td { (a.owner) }
                            td { (admins.iter().filter(|x| x.account_id == a.account_id).map(|x| x.admin.as_str()).collect::<Vec<_>>().join(", ")) }
                        }
                    }
                }
            }
        }
        h2 { "Register an account" }
        (account_form(&viewer, None, "/registers/social"))
    };
    Ok(page(&viewer, "Social-media accounts", body))
}

fn account_form(viewer: &Viewer, a: Option<&SocialAccount>, action: &str) -> maud::Markup {
    let v = |f: fn(&SocialAccount) -> &str| a.map_or("", f);
    html! {
        form method="post" action=(action) class="stack" {
            (csrf(&viewer.session.csrf))
            label for="platform" { "Platform" }
            input id="platform" name="platform" required maxlength=(FIELD_MAX) value=(v(|a| &a.platform));
            label for="handle" { "Handle or page name" }
            input id="handle" name="handle" required maxlength=(FIELD_MAX) value=(v(|a| &a.handle));
            label for="purpose" { "What it is for" }
            input id="purpose" name="purpose" required maxlength=(FIELD_MAX) value=(v(|a| &a.purpose));
            label for="owner" { "Owner (team or person responsible)" }
            input id="owner" name="owner" required maxlength=(FIELD_MAX) value=(v(|a| &a.owner));
            @if a.is_some() {
                label class="choice" { input type="checkbox" name="retired" value="yes" checked[a.is_some_and(|a| a.retired)]; " Retired (no longer used)" }
            }
            button type="submit" { @if a.is_some() { "Save a new version" } @else { "Register the account" } }
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct AccountForm {
    #[serde(default)]
    platform: String,
    #[serde(default)]
    handle: String,
    #[serde(default)]
    purpose: String,
    #[serde(default)]
    owner: String,
    #[serde(default)]
    retired: String,
}

impl AccountForm {
    pub(crate) fn checked(&self) -> Result<AccountFields<'_>, PageError> {
        let f = AccountFields {
            platform: self.platform.trim(),
            handle: self.handle.trim(),
            purpose: self.purpose.trim(),
            owner: self.owner.trim(),
            retired: self.retired == "yes",
        };
        for (name, value) in [
            ("platform", f.platform),
            ("handle", f.handle),
            ("purpose", f.purpose),
            ("owner", f.owner),
        ] {
            if value.is_empty() {
                return Err(PageError::BadForm(format!("Give the account's {name}.")));
            }
            if !one_line(value) {
                return Err(PageError::BadForm(format!(
                    "The {name} must be one line of at most {FIELD_MAX} characters."
                )));
            }
        }
        Ok(f)
    }
}

/// `POST /registers/social` (a new account) and `POST /registers/social/{id}` (a new version).
pub(crate) async fn save_account(
    State(console): State<Console>,
    id: Option<Path<i64>>,
    Posted(viewer, f): Posted<AccountForm>,
) -> Result<Response, PageError> {
    viewer.require(KEEPERS)?;
    let store = console.store();
    let id = id.map(|Path(id)| id);
    if let Some(id) = id {
        known_account(store, id).await?;
    }
    let a = store
        .save_social_account(id, &f.checked()?, &viewer.audit("register.social.save", ""))
        .await?;
    Ok(Redirect::to(&format!("/registers/social/{}", a.account_id)).into_response())
}

/// Refuses an account id the register does not have.
async fn known_account(store: &lookout_store::Store, id: i64) -> Result<(), PageError> {
    if store.social_account_history(id).await?.is_empty() {
        return Err(PageError::NotFound(format!(
            "There is no registered account {id}."
        )));
    }
    Ok(())
}

/// `GET /registers/social/{id}`: the account, its admins, its history.
pub(crate) async fn account(
    State(console): State<Console>,
    viewer: Viewer,
    Path(id): Path<i64>,
) -> Result<Html<String>, PageError> {
    viewer.require(KEEPERS)?;
    let store = console.store();
    let history = store.social_account_history(id).await?;
    let Some(current) = history.first() else {
        return Err(PageError::NotFound(format!(
            "There is no registered account {id}."
        )));
    };
    let admins: Vec<_> = store
        .social_admins()
        .await?
        .into_iter()
        .filter(|a| a.account_id == id)
        .collect();
    let events = store.social_admin_events(Some(id)).await?;
    store
        .audit(&viewer.audit("register.social.view", format!("social-account:{id}")))
        .await?;
    let action = format!("/registers/social/{id}/admins");
    let body = html! {
        h2 { "Admins now" }
        @if admins.is_empty() { p { "Nobody is recorded as an admin." } }
        ul id="admins" {
            @for a in &admins {
                li {
                    (a.admin) @if a.is_user { " (Lookout user)" } " — since " (when(a.added_ms)) ", added by " (a.added_by)
                    @if a.revoke_since.is_some() { " " span class="badge sev-danger" { "Revoke: account disabled" } }
                    form method="post" action=(action) class="inline" {
                        (csrf(&viewer.session.csrf))
                        input type="hidden" name="admin" value=(a.admin);
                        input type="hidden" name="kind" value=(if a.revoke_since.is_some() { "revoked" } else { "removed" });
                        " " button type="submit" class="link" { @if a.revoke_since.is_some() { "Mark revoked" } @else { "Remove" } }
                    }
                }
            }
        }
        form method="post" action=(action) class="stack" {
            (csrf(&viewer.session.csrf))
            input type="hidden" name="kind" value="added";
            label for="admin" { "Add an admin (a Lookout user name, or a person's name)" }
            input id="admin" name="admin" required maxlength=(FIELD_MAX);
            button type="submit" { "Add admin" }
        }
        h2 { "Change the account" }
        (account_form(&viewer, Some(current), &format!("/registers/social/{id}")))
        h2 { "History" }
        table class="list" id="history" {
            thead { tr { th scope="col" { "When" } th scope="col" { "By" } th scope="col" { "What" } } }
            tbody {
                @for e in events.iter().rev() {
                    tr { td { (when(e.at_ms)) } td { (e.by_user) } td { (e.kind) " " (e.admin) @if !e.note.is_empty() { ": " (e.note) } } }
                }
                @for h in &history {
                    tr { td { (when(h.at_ms)) } td { (h.by_user) } td { "version " (h.version) ": " (h.platform) " " (h.handle) ", " (h.purpose) ", owner " (h.owner) @if h.retired { ", retired" } } }
                }
            }
        }
        p { a href="/registers/social" { "All accounts" } }
    };
    Ok(page(
        &viewer,
        &format!("{} {}", current.platform, current.handle),
        body,
    ))
}

#[derive(Deserialize)]
pub(crate) struct AdminForm {
    #[serde(default)]
    admin: String,
    #[serde(default)]
    kind: String,
}

/// `POST /registers/social/{id}/admins`: an admin added, removed, or revoked on the platform.
pub(crate) async fn admin(
    State(console): State<Console>,
    Path(id): Path<i64>,
    Posted(viewer, f): Posted<AdminForm>,
) -> Result<Response, PageError> {
    viewer.require(KEEPERS)?;
    let admin = f.admin.trim();
    if !matches!(f.kind.as_str(), "added" | "removed" | "revoked") {
        return Err(PageError::BadForm(
            "Choose to add, remove or mark revoked.".into(),
        ));
    }
    if !one_line(admin) {
        return Err(PageError::BadForm(format!(
            "Give the admin's user name or name, one line of at most {FIELD_MAX} characters."
        )));
    }
    let store = console.store();
    known_account(store, id).await?;
    let holds = store
        .social_admins()
        .await?
        .iter()
        .any(|a| a.account_id == id && a.admin == admin);
    if holds == (f.kind == "added") {
        return Err(PageError::Conflict(if holds {
            format!("{admin} is already an admin of this account.")
        } else {
            format!("{admin} is not an admin of this account.")
        }));
    }
    let is_user = store.user(admin).await?.is_some();
    let name = if is_user {
        lookout_store::normalize_username(admin).unwrap_or_else(|_| admin.to_owned())
    } else {
        admin.to_owned()
    };
    store
        .social_admin_event(
            id,
            &name,
            is_user,
            &f.kind,
            "",
            &viewer.audit(&format!("register.social.admin-{}", f.kind), ""),
        )
        .await?;
    Ok(Redirect::to(&format!("/registers/social/{id}")).into_response())
}

/// `GET /registers/social.csv`.
pub(crate) async fn social_csv(
    State(console): State<Console>,
    viewer: Viewer,
) -> Result<Response, PageError> {
    viewer.require(KEEPERS)?;
    let store = console.store();
    let accounts = store.social_accounts().await?;
    let admins = store.social_admins().await?;
    let mut out = csv_line(&[
        "platform",
        "handle",
        "purpose",
        "owner",
        "retired",
        "admin",
        "admin since",
        "to revoke",
    ]);
    for a in &accounts {
        let mine: Vec<_> = admins
            .iter()
            .filter(|x| x.account_id == a.account_id)
            .collect();
        let retired = if a.retired { "yes" } else { "no" };
        if mine.is_empty() {
            out.push_str(&csv_line(&[
                &a.platform,
                &a.handle,
                &a.purpose,
                &a.owner,
                retired,
                "",
                "",
                "",
            ]));
        }
        for x in mine {
            out.push_str(&csv_line(&[
                &a.platform,
                &a.handle,
                &a.purpose,
                &a.owner,
                retired,
                &x.admin,
                &when(x.added_ms),
                if x.revoke_since.is_some() {
                    "yes"
                } else {
                    "no"
                },
            ]));
        }
    }
    csv_download(
        store,
        &viewer,
        "register.social.export",
        "register:social",
        "social-media-accounts.csv",
        out,
    )
    .await
}

/// Sends a CSV export, after its audit row (`action` on `target`).
pub(crate) async fn csv_download(
    store: &lookout_store::Store,
    viewer: &Viewer,
    action: &str,
    target: &str,
    file: &'static str,
    csv: String,
) -> Result<Response, PageError> {
    store.audit(&viewer.audit(action, target)).await?;
    let disposition = format!("attachment; filename=\"{file}\"");
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        csv,
    )
        .into_response())
}

/// When the next policy review is due and whether it is overdue: `None` when none was ever
/// recorded (which is itself overdue).
pub(crate) async fn policy_due(console: &Console) -> Result<Option<(i64, bool)>, PageError> {
    let latest = console.store().policy_reviews().await?.into_iter().next();
    Ok(latest.map(|r| (r.next_due_ms, r.next_due_ms < crate::now_ms())))
}

/// `GET /policy`: the annual e-safety policy review (report readers see it; the DSL team and
/// IT admin record it).
pub(crate) async fn policy(
    State(console): State<Console>,
    viewer: Viewer,
) -> Result<Html<String>, PageError> {
    viewer.require(crate::reports::READERS)?;
    let store = console.store();
    let reviews = store.policy_reviews().await?;
    store
        .audit(&viewer.audit("policy.view", "policy-reviews"))
        .await?;
    let due = reviews.first().map(|r| r.next_due_ms);
    let overdue = due.is_none_or(|d| d < crate::now_ms());
    let body = html! {
        section class={"card" @if overdue { " warning" }} id="policy-due" {
            @match due {
                Some(d) if overdue => { p { strong { "The review is overdue: " } "it was due " (when(d)) "." } }
                Some(d) => { p { "The next review is due " (when(d)) "." } }
                None => { p { strong { "No review of the e-safety policy has been recorded." } " Record the last one below." } }
            }
        }
        @if KEEPERS.contains(&viewer.role()) {
            h2 { "Record a review" }
            form method="post" action="/policy" class="stack" {
                (csrf(&viewer.session.csrf))
                label for="reviewed_on" { "Reviewed on" }
                input id="reviewed_on" name="reviewed_on" type="date" required;
                label for="reviewers" { "Who reviewed it (names and roles)" }
                input id="reviewers" name="reviewers" required maxlength=(FIELD_MAX);
                label for="changes" { "What changed" }
                textarea id="changes" name="changes" rows="5" required {}
                label for="next_due" { "Next review due" }
                input id="next_due" name="next_due" type="date" required;
                button type="submit" { "Record the review" }
            }
        }
        h2 { "Reviews" }
        @if reviews.is_empty() { p { "None recorded." } }
        @else {
            table class="list" id="reviews" {
                thead { tr { th scope="col" { "Reviewed" } th scope="col" { "By" } th scope="col" { "What changed" } th scope="col" { "Next due" } th scope="col" { "Recorded by" } } }
                tbody { @for r in &reviews { tr { td { (when(r.reviewed_on_ms)) } td { (r.reviewers) } td { (r.changes) } td { (when(r.next_due_ms)) } td { (r.recorded_by) } } } }
            }
        }
    };
    Ok(page(&viewer, "E-safety policy review", body))
}

#[derive(Deserialize)]
pub(crate) struct PolicyForm {
    #[serde(default)]
    reviewed_on: String,
    #[serde(default)]
    reviewers: String,
    #[serde(default)]
    changes: String,
    #[serde(default)]
    next_due: String,
}

/// `POST /policy` (DSL team, IT admin).
pub(crate) async fn record_policy(
    State(console): State<Console>,
    Posted(viewer, f): Posted<PolicyForm>,
) -> Result<Response, PageError> {
    viewer.require(KEEPERS)?;
    let day = |s: &str, what: &str| {
        crate::board::parse_day(s).ok_or_else(|| {
            PageError::BadForm(format!("The {what} date must look like 2026-09-01."))
        })
    };
    let reviewed = day(&f.reviewed_on, "review")?;
    let next = day(&f.next_due, "next review")?;
    let (reviewers, changes) = (f.reviewers.trim(), f.changes.trim());
    if reviewers.is_empty() || changes.is_empty() {
        return Err(PageError::BadForm(
            "Say who reviewed the policy and what changed (\"no changes\" is an answer).".into(),
        ));
    }
    if !one_line(reviewers) || changes.len() > 20_000 {
        return Err(PageError::BadForm("That is too long to record.".into()));
    }
    if reviewed > crate::now_ms() {
        return Err(PageError::BadForm(
            "A review cannot be recorded before it happens.".into(),
        ));
    }
    if next <= reviewed {
        return Err(PageError::BadForm(
            "The next review must be after this one.".into(),
        ));
    }
    console
        .store()
        .record_policy_review(
            reviewed,
            reviewers,
            changes,
            next,
            &viewer.audit("policy.review", ""),
        )
        .await?;
    Ok(Redirect::to("/policy").into_response())
}

const DECISIONS: &[(&str, &str)] = &[
    ("approved", "Approved"),
    ("conditions", "Approved with conditions"),
    ("refused", "Refused"),
];

fn decision_label(slug: &str) -> &str {
    DECISIONS
        .iter()
        .find(|(s, _)| *s == slug)
        .map_or(slug, |(_, l)| l)
}

/// `GET /registers/technology`: every assessment, the next review first, overdue marked.
pub(crate) async fn technology(
    State(console): State<Console>,
    viewer: Viewer,
) -> Result<Html<String>, PageError> {
    viewer.require(KEEPERS)?;
    let store = console.store();
    let all = store.assessments().await?;
    store
        .audit(&viewer.audit("register.technology.view", "register:technology"))
        .await?;
    let now = crate::now_ms();
    let overdue = all.iter().filter(|a| a.fields.review_due_ms < now).count();
    let body = html! {
        p { "New technologies (apps, platforms, devices, AI tools) are risk-assessed before use and reviewed on the date set." }
        p { a class="button" href="/registers/technology/new" { "Assess a new technology" } " " a href="/registers/technology.csv" { "Download as CSV" } }
        @if overdue > 0 { p class="card warning" id="overdue" { strong { (overdue) } " review(s) overdue." } }
        @if all.is_empty() { p { "No technology has been assessed yet." } }
        @else {
            table class="list" id="assessments" {
                thead { tr { th scope="col" { "Technology" } th scope="col" { "Decision" } th scope="col" { "Reviewer" } th scope="col" { "Next review" } } }
                tbody {
                    @for a in &all {
                        tr {
                            td { a href={"/registers/technology/" (a.assessment_id)} { (a.fields.name) } }
                            td { (decision_label(&a.fields.decision)) }
                            td { (a.fields.reviewer) }
                            td { (when(a.fields.review_due_ms)) @if a.fields.review_due_ms < now { " " span class="badge sev-danger" { "Overdue" } } }
                        }
                    }
                }
            }
        }
    };
    Ok(page(&viewer, "Technology risk assessments", body))
}

fn assessment_form(viewer: &Viewer, a: Option<&TechAssessment>, action: &str) -> maud::Markup {
    let f = a.map(|a| a.fields.clone()).unwrap_or_default();
    let due = a
        .and_then(|a| chrono::DateTime::from_timestamp_millis(a.fields.review_due_ms))
        .map(|t| {
            t.with_timezone(&chrono::Local)
                .format("%Y-%m-%d")
                .to_string()
        })
        .unwrap_or_default();
    html! {
        form method="post" action=(action) class="stack" {
            (csrf(&viewer.session.csrf))
            label for="name" { "What it is" }
            input id="name" name="name" required maxlength=(FIELD_MAX) value=(f.name);
            label for="requested_by" { "Who asked for it" }
            input id="requested_by" name="requested_by" required maxlength=(FIELD_MAX) value=(f.requested_by);
            label for="data_held" { "What data it holds or sees" }
            textarea id="data_held" name="data_held" rows="3" required { (f.data_held) }
            label for="risks" { "Risks" }
            textarea id="risks" name="risks" rows="4" required { (f.risks) }
            label for="mitigations" { "Mitigations" }
            textarea id="mitigations" name="mitigations" rows="4" required { (f.mitigations) }
            label for="decision" { "Decision" }
            select id="decision" name="decision" {
                @for (slug, label) in DECISIONS { option value=(slug) selected[f.decision == *slug] { (label) } }
            }
            label for="conditions" { "Conditions (when approved with conditions)" }
            textarea id="conditions" name="conditions" rows="3" { (f.conditions) }
            label for="reviewer" { "Reviewer" }
            input id="reviewer" name="reviewer" required maxlength=(FIELD_MAX) value=(f.reviewer);
            label for="review_due" { "Next review" }
            input id="review_due" name="review_due" type="date" required value=(due);
            button type="submit" { @if a.is_some() { "Save a new version" } @else { "Record the assessment" } }
        }
    }
}

/// `GET /registers/technology/new`.
pub(crate) async fn new_assessment(viewer: Viewer) -> Result<Html<String>, PageError> {
    viewer.require(KEEPERS)?;
    Ok(page(
        &viewer,
        "Assess a new technology",
        assessment_form(&viewer, None, "/registers/technology"),
    ))
}

#[derive(Deserialize)]
pub(crate) struct AssessmentForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    requested_by: String,
    #[serde(default)]
    data_held: String,
    #[serde(default)]
    risks: String,
    #[serde(default)]
    mitigations: String,
    #[serde(default)]
    decision: String,
    #[serde(default)]
    conditions: String,
    #[serde(default)]
    reviewer: String,
    #[serde(default)]
    review_due: String,
}

impl AssessmentForm {
    pub(crate) fn checked(&self) -> Result<TechFields, PageError> {
        for (what, v) in [
            ("what it is", self.name.trim()),
            ("who asked for it", self.requested_by.trim()),
            ("reviewer", self.reviewer.trim()),
        ] {
            if !one_line(v) {
                return Err(PageError::BadForm(format!(
                    "Give {what}: one line of at most {FIELD_MAX} characters."
                )));
            }
        }
        for (what, v) in [
            ("the data it holds", &self.data_held),
            ("the risks", &self.risks),
            ("the mitigations", &self.mitigations),
        ] {
            if v.trim().is_empty() || v.len() > 20_000 {
                return Err(PageError::BadForm(format!("Describe {what}.")));
            }
        }
        if !DECISIONS.iter().any(|(s, _)| *s == self.decision) {
            return Err(PageError::BadForm("Choose a decision.".into()));
        }
        if self.decision == "conditions" && self.conditions.trim().is_empty() {
            return Err(PageError::BadForm("Say what the conditions are.".into()));
        }
        if self.conditions.len() > 20_000 {
            return Err(PageError::BadForm("The conditions are too long.".into()));
        }
        let review_due_ms = crate::board::parse_day(&self.review_due).ok_or_else(|| {
            PageError::BadForm("The next review date must look like 2027-09-01.".into())
        })?;
        Ok(TechFields {
            name: self.name.trim().to_owned(),
            requested_by: self.requested_by.trim().to_owned(),
            data_held: self.data_held.trim().to_owned(),
            risks: self.risks.trim().to_owned(),
            mitigations: self.mitigations.trim().to_owned(),
            decision: self.decision.clone(),
            conditions: self.conditions.trim().to_owned(),
            reviewer: self.reviewer.trim().to_owned(),
            review_due_ms,
        })
    }
}

/// `POST /registers/technology` (new) and `POST /registers/technology/{id}` (a new version).
pub(crate) async fn save_assessment(
    State(console): State<Console>,
    id: Option<Path<i64>>,
    Posted(viewer, f): Posted<AssessmentForm>,
) -> Result<Response, PageError> {
    viewer.require(KEEPERS)?;
    let store = console.store();
    let id = id.map(|Path(id)| id);
    if let Some(id) = id {
        if store.assessment_history(id).await?.is_empty() {
            return Err(PageError::NotFound(format!("There is no assessment {id}.")));
        }
    }
    let a = store
        .save_assessment(
            id,
            &f.checked()?,
            &viewer.audit("register.technology.save", ""),
        )
        .await?;
    Ok(Redirect::to(&format!("/registers/technology/{}", a.assessment_id)).into_response())
}

/// `GET /registers/technology/{id}`: the assessment, a form for a new version, its history.
pub(crate) async fn assessment(
    State(console): State<Console>,
    viewer: Viewer,
    Path(id): Path<i64>,
) -> Result<Html<String>, PageError> {
    viewer.require(KEEPERS)?;
    let store = console.store();
    let history = store.assessment_history(id).await?;
    let Some(current) = history.first() else {
        return Err(PageError::NotFound(format!("There is no assessment {id}.")));
    };
    store
        .audit(&viewer.audit("register.technology.view", format!("assessment:{id}")))
        .await?;
    let f = &current.fields;
    let body = html! {
        dl class="facts" {
            dt { "Decision" } dd id="decision" { (decision_label(&f.decision)) }
            @if !f.conditions.is_empty() { dt { "Conditions" } dd { (f.conditions) } }
            dt { "Asked for by" } dd { (f.requested_by) }
            dt { "Data it holds" } dd { (f.data_held) }
            dt { "Risks" } dd { (f.risks) }
            dt { "Mitigations" } dd { (f.mitigations) }
            dt { "Reviewer" } dd { (f.reviewer) }
            dt { "Next review" } dd { (when(f.review_due_ms)) @if f.review_due_ms < crate::now_ms() { " " span class="badge sev-danger" { "Overdue" } } }
        }
        h2 { "Review or change it" }
        (assessment_form(&viewer, Some(current), &format!("/registers/technology/{id}")))
        h2 { "History" }
        table class="list" id="history" {
            thead { tr { th scope="col" { "Version" } th scope="col" { "When" } th scope="col" { "By" } th scope="col" { "Decision" } th scope="col" { "Next review" } } }
            tbody { @for h in &history { tr { td { (h.version) } td { (when(h.at_ms)) } td { (h.by_user) } td { (decision_label(&h.fields.decision)) } td { (when(h.fields.review_due_ms)) } } } }
        }
        p { a href="/registers/technology" { "All assessments" } }
    };
    Ok(page(&viewer, &f.name, body))
}

/// `GET /registers/technology.csv`.
pub(crate) async fn technology_csv(
    State(console): State<Console>,
    viewer: Viewer,
) -> Result<Response, PageError> {
    viewer.require(KEEPERS)?;
    let store = console.store();
    let mut out = csv_line(&[
        "technology",
        "requested by",
        "data held",
        "risks",
        "mitigations",
        "decision",
        "conditions",
        "reviewer",
        "next review",
        "version",
        "recorded by",
    ]);
    for a in store.assessments().await? {
        let f = &a.fields;
        out.push_str(&csv_line(&[
            &f.name,
            &f.requested_by,
            &f.data_held,
            &f.risks,
            &f.mitigations,
            decision_label(&f.decision),
            &f.conditions,
            &f.reviewer,
            &when(f.review_due_ms),
            &a.version.to_string(),
            &a.by_user,
        ]));
    }
    csv_download(
        store,
        &viewer,
        "register.technology.export",
        "register:technology",
        "technology-assessments.csv",
        out,
    )
    .await
}
