//! The register of official social-media accounts (IT admin and DSL team): accounts with
//! their admins, the checklist of admin rights to revoke (people whose Lookout account was
//! disabled), each account's history, and a CSV export that no spreadsheet runs as formulas.

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{Html, IntoResponse, Redirect, Response};
use lookout_store::{csv_line, AccountFields, SocialAccount};
use maud::html;
use serde::Deserialize;

use crate::pages::{csrf, page, when};
use crate::session::{PageError, Posted, Viewer};
use crate::Console;

/// Who keeps the registers (the same people as the briefing: the routes share one guard).
pub(crate) const KEEPERS: &[lookout_auth::Role] = crate::briefings::EDITORS;

const FIELD_MAX: usize = 300;

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
            if value.chars().count() > FIELD_MAX || value.chars().any(char::is_control) {
                return Err(PageError::BadForm(format!(
                    "The {name} must be one line of at most {FIELD_MAX} characters."
                )));
            }
        }
        Ok(f)
    }
}

/// `POST /registers/social`: registers an account.
pub(crate) async fn create(
    State(console): State<Console>,
    Posted(viewer, f): Posted<AccountForm>,
) -> Result<Response, PageError> {
    viewer.require(KEEPERS)?;
    let a = console
        .store()
        .save_social_account(
            None,
            &f.checked()?,
            &viewer.audit("register.social.add", ""),
        )
        .await?;
    Ok(Redirect::to(&format!("/registers/social/{}", a.account_id)).into_response())
}

/// `POST /registers/social/{id}`: a new version of an account.
pub(crate) async fn update(
    State(console): State<Console>,
    Path(id): Path<i64>,
    Posted(viewer, f): Posted<AccountForm>,
) -> Result<Response, PageError> {
    viewer.require(KEEPERS)?;
    let store = console.store();
    known_account(store, id).await?;
    store
        .save_social_account(
            Some(id),
            &f.checked()?,
            &viewer.audit("register.social.change", ""),
        )
        .await?;
    Ok(Redirect::to(&format!("/registers/social/{id}")).into_response())
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
    if admin.is_empty() || admin.chars().count() > FIELD_MAX || admin.chars().any(char::is_control)
    {
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
    store
        .audit(&viewer.audit("register.social.export", "register:social"))
        .await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"social-media-accounts.csv\"",
            ),
        ],
        out,
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
        @if viewer.role() == lookout_auth::Role::Dsl || viewer.role() == lookout_auth::Role::ItAdmin {
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
    if reviewers.chars().count() > FIELD_MAX || changes.len() > 20_000 {
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
