//! Accounts, for the IT admin: add people, set roles, unlock, reset two-factor, give a
//! temporary password, disable. Every change is audited; an admin cannot change their own role
//! or disable themselves (another admin must), so the console always has an admin.

use axum::extract::{Path, State};
use axum::response::{Html, IntoResponse, Response};
use lookout_auth::Role;
use lookout_store::{NewUser, UserError};
use maud::html;
use serde::Deserialize;

use crate::pages::{csrf, page, when};
use crate::session::{PageError, Posted, Viewer};
use crate::{now_ms, Console};

/// The groups people can be put in: the running policy's, when the gateway runs here.
fn groups(console: &Console) -> Vec<String> {
    console
        .inner
        .filter
        .as_ref()
        .map(|f| {
            f.policy
                .groups()
                .iter()
                .map(|g| g.name().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

async fn list_page(
    console: &Console,
    viewer: &Viewer,
    note: Option<String>,
) -> Result<Html<String>, PageError> {
    let accounts = console.store().accounts().await?;
    let now = now_ms();
    let token = &viewer.session.csrf;
    let groups = groups(console);
    let body = html! {
        @if let Some(n) = &note { p class="note" role="status" id="user-note" { (n) } }
        details {
            summary { "Add a person" }
            form method="post" action="/users" class="stack narrow" {
                (csrf(token))
                label for="new-username" { "User name (letters, digits, . _ - @)" }
                input id="new-username" name="username" type="text" required maxlength="64";
                label for="new-name" { "Full name" }
                input id="new-name" name="name" type="text" maxlength="200";
                label for="new-group" { "Filtering group" }
                @if groups.is_empty() { input id="new-group" name="group" type="text" required; }
                @else { select id="new-group" name="group" required { @for g in &groups { option value=(g) { (g) } } } }
                label for="new-role" { "Console role" }
                select id="new-role" name="role" required { @for r in Role::ALL { option value=(r.slug()) { (r.label()) } } }
                label for="new-email" { "Email (training reminders; optional)" }
                input id="new-email" name="email" type="email" maxlength="254";
                label for="new-team" { "Team or department (training report; optional)" }
                input id="new-team" name="team" type="text" maxlength="100";
                button type="submit" { "Add, with a one-time password" }
            }
        }
        table class="list" id="users" {
            thead { tr { th scope="col" { "User" } th scope="col" { "Group" } th scope="col" { "Role" } th scope="col" { "Team and email" } th scope="col" { "State" } th scope="col" { "Change" } } }
            tbody {
                @for a in &accounts {
                    @let u = &a.user;
                    @let me = u.username == viewer.username();
                    tr id={"user-" (u.username)} {
                        td { strong { (u.username) } br; span class="muted" { (u.display_name) } br; a href={"/users/" (u.username) "/data"} { "Data held (subject access)" } }
                        td { (u.group) }
                        td {
                            @if me { (u.role.label()) " (you)" }
                            @else {
                                form method="post" action={"/users/" (u.username) "/role"} class="inline" {
                                    (csrf(token))
                                    label class="visually-hidden" for={"role-" (u.username)} { "Role for " (u.username) }
                                    select id={"role-" (u.username)} name="role" {
                                        @for r in Role::ALL { option value=(r.slug()) selected[r == u.role] { (r.label()) } }
                                    }
                                    " " button type="submit" class="link" { "Set" }
                                }
                            }
                        }
                        td {
                            form method="post" action={"/users/" (u.username) "/contact"} class="inline" {
                                (csrf(token))
                                label class="visually-hidden" for={"team-" (u.username)} { "Team of " (u.username) }
                                input id={"team-" (u.username)} name="team" type="text" maxlength="100" value=(u.team) placeholder="Team";
                                label class="visually-hidden" for={"email-" (u.username)} { "Email of " (u.username) }
                                input id={"email-" (u.username)} name="email" type="email" maxlength="254" value=(u.email) placeholder="Email";
                                " " button type="submit" class="link" { "Save" }
                            }
                        }
                        td {
                            @if u.disabled { "Disabled" } @else if a.locked_until_ms > now { "Locked until " (when(a.locked_until_ms)) } @else { "Active" }
                            @if u.role.needs_two_factor() { br; @if a.totp_secret.is_some() { "Two-factor on" } @else { "Two-factor not set up yet" } }
                            @if !u.has_password { br; span class="muted" { "No Lookout password: signs in through the directory or the sign-in provider, which set the group (the provider, the role too) at each sign-in; or has not been given one yet" } }
                        }
                        td {
                            @if !me {
                                @for (action, text) in [("unlock", "Unlock"), ("reset-two-factor", "Reset two-factor"), ("temporary-password", "One-time password"), (if u.disabled { "enable" } else { "disable" }, if u.disabled { "Enable" } else { "Disable" })] {
                                    form method="post" action={"/users/" (u.username) "/" (action)} class="inline" {
                                        (csrf(token))
                                        button type="submit" class="link" { (text) }
                                    }
                                    " "
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(page(viewer, "People and roles", body))
}

/// `GET /users`.
pub(crate) async fn list(
    State(console): State<Console>,
    viewer: Viewer,
) -> Result<Html<String>, PageError> {
    viewer.require(&[Role::ItAdmin])?;
    console
        .store()
        .audit(&viewer.audit("users.list", "users"))
        .await?;
    list_page(&console, &viewer, None).await
}

/// Every user by name, for exports that name people on each row.
pub(crate) async fn by_name(
    store: &lookout_store::Store,
) -> Result<std::collections::HashMap<String, lookout_store::User>, PageError> {
    Ok(store
        .users()
        .await?
        .into_iter()
        .map(|u| (u.username.clone(), u))
        .collect())
}

fn temporary_password() -> String {
    lookout_auth::random_secret()[..16].to_owned()
}

#[derive(Deserialize)]
pub(crate) struct NewUserForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    group: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    team: String,
}

/// `POST /users`: adds a person with a one-time password, shown once.
pub(crate) async fn add(
    State(console): State<Console>,
    Posted(viewer, f): Posted<NewUserForm>,
) -> Result<Response, PageError> {
    viewer.require(&[Role::ItAdmin])?;
    let role: Role = f
        .role
        .parse()
        .map_err(|e: lookout_auth::ParseRoleError| PageError::BadForm(e.to_string()))?;
    let group = f.group.trim();
    let groups = groups(&console);
    if group.is_empty() || (!groups.is_empty() && !groups.iter().any(|g| g == group)) {
        return Err(PageError::BadForm(format!(
            "Choose a filtering group ({}).",
            groups.join(", ")
        )));
    }
    let password = temporary_password();
    let store = console.store();
    let user = store
        .add_user(&NewUser {
            username: f.username.clone(),
            display_name: f.name.clone(),
            group: group.to_owned(),
            password: None,
            role: Some(role),
            email: Some(f.email.clone()),
            team: Some(f.team.clone()),
        })
        .await
        .map_err(user_error)?;
    store
        .set_temporary_password(&user.username, &password)
        .await?;
    store
        .audit(
            &viewer
                .audit("user.add", format!("user:{}", user.username))
                .detail(format!("group {group}, role {role}")),
        )
        .await?;
    let note = format!("Added {}. Their one-time password is {password} — give it to them privately; it is not shown again. They choose their own at first sign-in.", user.username);
    Ok(list_page(&console, &viewer, Some(note))
        .await?
        .into_response())
}

fn user_error(e: UserError) -> PageError {
    match e {
        UserError::Store(e) => e.into(),
        other => PageError::BadForm(other.to_string()),
    }
}

#[derive(Deserialize)]
pub(crate) struct RoleForm {
    #[serde(default)]
    role: String,
}

/// `POST /users/{name}/role`.
pub(crate) async fn set_role(
    State(console): State<Console>,
    Path(name): Path<String>,
    Posted(viewer, f): Posted<RoleForm>,
) -> Result<Response, PageError> {
    viewer.require(&[Role::ItAdmin])?;
    if name == viewer.username() {
        return Err(PageError::BadForm(
            "You cannot change your own role: ask another IT admin.".into(),
        ));
    }
    let role: Role = f
        .role
        .parse()
        .map_err(|e: lookout_auth::ParseRoleError| PageError::BadForm(e.to_string()))?;
    let store = console.store();
    store.set_role(&name, role).await.map_err(user_error)?;
    store
        .audit(
            &viewer
                .audit("user.role", format!("user:{name}"))
                .detail(format!("role {role}")),
        )
        .await?;
    let note = format!("{name} is now: {}.", role.label());
    Ok(list_page(&console, &viewer, Some(note))
        .await?
        .into_response())
}

#[derive(Deserialize)]
pub(crate) struct ContactForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    team: String,
}

/// `POST /users/{name}/contact`: the email address for training reminders and the team.
pub(crate) async fn set_contact(
    State(console): State<Console>,
    Path(name): Path<String>,
    Posted(viewer, f): Posted<ContactForm>,
) -> Result<Response, PageError> {
    viewer.require(&[Role::ItAdmin])?;
    let store = console.store();
    store
        .set_contact(&name, &f.email, &f.team)
        .await
        .map_err(user_error)?;
    store
        .audit(&viewer.audit("user.contact", format!("user:{name}")))
        .await?;
    let note = format!("Saved {name}'s team and email address.");
    Ok(list_page(&console, &viewer, Some(note))
        .await?
        .into_response())
}

#[derive(Deserialize)]
pub(crate) struct Empty {}

/// `POST /users/{name}/{action}`: unlock, reset-two-factor, temporary-password, disable, enable.
pub(crate) async fn act(
    State(console): State<Console>,
    Path((name, action)): Path<(String, String)>,
    Posted(viewer, _): Posted<Empty>,
) -> Result<Response, PageError> {
    viewer.require(&[Role::ItAdmin])?;
    if name == viewer.username() {
        return Err(PageError::BadForm(
            "You cannot do that to your own account: ask another IT admin.".into(),
        ));
    }
    let store = console.store();
    let Some(account) = store.account(&name).await? else {
        return Err(PageError::NotFound(format!("There is no user {name}.")));
    };
    let note = match action.as_str() {
        "unlock" => {
            store.unlock_account(&name).await.map_err(user_error)?;
            format!("{name} can sign in again.")
        }
        "reset-two-factor" => {
            store
                .set_totp_secret(&name, None)
                .await
                .map_err(user_error)?;
            store.end_sessions_of(&name, None).await?;
            format!("{name} will set up two-factor sign-in again next time.")
        }
        "temporary-password" => {
            let password = temporary_password();
            store
                .set_temporary_password(&name, &password)
                .await
                .map_err(user_error)?;
            store.end_sessions_of(&name, None).await?;
            // A record without a password may belong to the directory or the sign-in
            // provider: with a Lookout password it no longer does.
            let no_longer = if account.user.has_password {
                ""
            } else {
                " From now on they sign in to Lookout with it, no longer through the directory or the sign-in provider."
            };
            format!("{name}'s one-time password is {password} — give it to them privately; it is not shown again. Their signing key will be replaced at their next sign-in (earlier signatures stay valid).{no_longer}")
        }
        "disable" => {
            let flagged = store.set_disabled(&name, true).await.map_err(user_error)?;
            if flagged > 0 {
                format!("{name} is disabled and signed out everywhere. They hold admin rights on {flagged} registered social-media account(s): take them away on each platform (Social-media register).")
            } else {
                format!("{name} is disabled and signed out everywhere.")
            }
        }
        "enable" => {
            store.set_disabled(&name, false).await.map_err(user_error)?;
            format!("{name} can sign in again.")
        }
        other => {
            return Err(PageError::NotFound(format!(
                "There is no action “{other}”."
            )))
        }
    };
    store
        .audit(&viewer.audit(&format!("user.{action}"), format!("user:{name}")))
        .await?;
    Ok(list_page(&console, &viewer, Some(note))
        .await?
        .into_response())
}
