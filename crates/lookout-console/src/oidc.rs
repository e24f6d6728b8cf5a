//! Signing in through the organisation's OpenID Connect provider (Microsoft Entra ID, Google
//! Workspace): `/sign-in/oidc` sends the browser to the provider with a fresh state, nonce and
//! PKCE challenge; `/sign-in/oidc/callback` checks the state against the browser's cookie,
//! has the code exchanged and the ID token checked ([`lookout_directory::oidc`]), maps the
//! person's claims to a console role (no role: refused) and a group, keeps their local record
//! in step, and starts a session — full when the role needs no second factor or the
//! provider says it used one (and `trust_provider_mfa` is on), else at the two-factor step.
//!
//! Such people have no Lookout password, so their signing key is sealed under a signing
//! passphrase of their own instead, unlocked on `/account/signing-key` when they first sign
//! something in a session.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use lookout_auth::{secrets_equal, Role};
use lookout_directory::oidc::{Handoff, Identity, Oidc, Pending};
use lookout_store::{AuditEntry, DirectoryPerson, DirectoryRecord};
use maud::html;
use serde::Deserialize;

use crate::pages::bare_page;
use crate::session::{client_ip, cookie, PageError};
use crate::signin::{safe_next, start_session, user_agent, with_session_cookie};
use crate::Console;

/// The cookie that ties the provider's answer to the browser that asked.
const STATE_COOKIE: &str = "lookout_oidc";
/// How long someone has to finish at the provider.
pub(crate) const PENDING_FOR: Duration = Duration::from_secs(10 * 60);
/// At most this many sign-ins waiting at the provider at once.
pub(crate) const MAX_PENDING: usize = 10_000;

/// Sign-in through an OpenID Connect provider, as configured.
#[derive(Debug)]
pub struct OidcSignIn {
    pub provider: Oidc,
    /// "Sign in with <label>".
    pub label: String,
    /// The provider's `amr: mfa` counts as the second factor.
    pub trust_provider_mfa: bool,
    /// The portal's sign-in through the provider too: people come here from the portal with
    /// its ticket, and go back to it with a one-use hand-off of who they are.
    pub portal: Option<Arc<Handoff>>,
}

/// A sign-in waiting at the provider.
#[derive(Debug)]
pub(crate) struct Waiting {
    pub pending: Pending,
    pub next: String,
    /// For the portal: its ticket and where the device was going.
    pub portal: Option<(String, String)>,
}

fn state_cookie(value: &str, max_age: u64, secure: bool) -> HeaderValue {
    // Lax, not Strict: the provider sends the browser back with a cross-site navigation.
    let mut s = format!(
        "{STATE_COOKIE}={value}; Path=/sign-in/oidc; HttpOnly; SameSite=Lax; Max-Age={max_age}"
    );
    if secure {
        s.push_str("; Secure");
    }
    HeaderValue::from_str(&s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn configured(console: &Console) -> Result<&Arc<OidcSignIn>, PageError> {
    console
        .settings()
        .oidc
        .as_ref()
        .ok_or_else(|| PageError::NotFound("This console has no sign-in provider set up.".into()))
}

/// A sign-in that could not be finished: said plainly, with the way back (the console's
/// sign-in page, or the portal's).
fn refused(status: StatusCode, title: &str, message: &str, back: &str) -> Response {
    let mut r = (
        status,
        bare_page(
            title,
            html! {
                p role="alert" class="error" { (message) }
                p { a href=(back) { "Back to sign in" } }
            },
        ),
    )
        .into_response();
    r.headers_mut()
        .append(header::SET_COOKIE, state_cookie("", 0, false));
    r
}

#[derive(Deserialize, Default)]
pub(crate) struct StartQuery {
    next: Option<String>,
}

/// `GET /sign-in/oidc`: to the provider.
pub(crate) async fn start(
    State(console): State<Console>,
    Query(q): Query<StartQuery>,
    req: Request,
) -> Result<Response, PageError> {
    let next = safe_next(q.next.as_deref());
    let ip = client_ip(&req.into_parts().0);
    begin(&console, ip, next, None).await
}

#[derive(Deserialize, Default)]
pub(crate) struct PortalQuery {
    ticket: Option<String>,
    to: Option<String>,
}

/// `GET /portal/oidc?ticket=..&to=..`: a device from the portal, to the provider.
pub(crate) async fn start_for_portal(
    State(console): State<Console>,
    Query(q): Query<PortalQuery>,
    req: Request,
) -> Result<Response, PageError> {
    let ip = client_ip(&req.into_parts().0);
    let portal = configured(&console)?.portal.is_some();
    let ticket = q.ticket.unwrap_or_default();
    if !portal || ticket.is_empty() || ticket.len() > 64 {
        return Err(PageError::NotFound(
            "Sign-in through the provider is not offered on this network's portal.".into(),
        ));
    }
    let portal = Some((ticket, q.to.unwrap_or_default()));
    begin(&console, ip, String::new(), portal).await
}

/// To the provider, keeping what must come back. Each start counts as a sign-in attempt from
/// its address, so one address cannot fill the waiting sign-ins.
async fn begin(
    console: &Console,
    ip: std::net::IpAddr,
    next: String,
    portal: Option<(String, String)>,
) -> Result<Response, PageError> {
    let oidc = configured(console)?;
    if !console.attempt_allowed(ip) {
        return Err(PageError::TooMany);
    }
    let back = if portal.is_some() {
        PORTAL_URL
    } else {
        "/sign-in"
    };
    let (url, pending) = match oidc.provider.begin().await {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!("sign-in through the provider: {e}");
            return Ok(refused(
                StatusCode::BAD_GATEWAY,
                "Sign-in is not available",
                &format!(
                    "Lookout cannot reach {} just now, so you cannot sign in with it. Try again in a few minutes; local accounts can still sign in with their password. (For the IT admin: {e}.)",
                    oidc.label
                ),
                back,
            ));
        }
    };
    let state = pending.state.clone();
    if !console.keep_waiting(Waiting {
        pending,
        next,
        portal,
    }) {
        return Err(PageError::TooMany);
    }
    let mut r = Redirect::to(&url).into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        state_cookie(
            &state,
            PENDING_FOR.as_secs(),
            console.settings().secure_cookies,
        ),
    );
    Ok(r)
}

#[derive(Deserialize, Default)]
pub(crate) struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// `GET /sign-in/oidc/callback`: back from the provider.
pub(crate) async fn callback(
    State(console): State<Console>,
    Query(q): Query<Callback>,
    req: Request,
) -> Result<Response, PageError> {
    let oidc = configured(&console)?.clone();
    let (parts, _) = req.into_parts();
    let ip = client_ip(&parts);
    let ip_s = ip.to_string();
    let store = console.store();
    let failed = |detail: String| {
        AuditEntry::new("oidc", "sign-in.failed", "user:?")
            .detail(detail)
            .from_ip(&ip_s)
    };
    // Not counted as an attempt here: only an answer to a sign-in begun (and counted) from
    // this browser goes any further.
    let state = q.state.as_deref().unwrap_or("");
    let theirs = cookie(&parts.headers, STATE_COOKIE).unwrap_or("");
    let waiting = if !state.is_empty() && secrets_equal(state, theirs) {
        console.take_waiting(state)
    } else {
        None
    };
    let Some(waiting) = waiting else {
        store
            .audit(&failed(
                "the provider's answer does not match a sign-in started in this browser".into(),
            ))
            .await?;
        return Ok(refused(
            StatusCode::BAD_REQUEST,
            "Start signing in again",
            "This sign-in was started in another browser or tab, or more than ten minutes ago. Start again from the sign-in page.",
            "/sign-in",
        ));
    };
    let back = if waiting.portal.is_some() {
        PORTAL_URL
    } else {
        "/sign-in"
    };
    if let Some(error) = &q.error {
        let description = q.error_description.as_deref().unwrap_or("");
        store
            .audit(&failed(format!("the provider said {error}: {description}")))
            .await?;
        let message = match error.as_str() {
            "access_denied" => format!("The sign-in was cancelled or refused at {}.", oidc.label),
            _ => format!(
                "{} did not sign you in ({error}{}). Try again, or ask your IT admin.",
                oidc.label,
                if description.is_empty() {
                    String::new()
                } else {
                    format!(": {description}")
                }
            ),
        };
        return Ok(refused(
            StatusCode::UNAUTHORIZED,
            "Not signed in",
            &message,
            back,
        ));
    }
    let code = q.code.as_deref().unwrap_or("");
    let identity = match oidc.provider.finish(code, waiting.pending).await {
        Ok(i) => i,
        Err(e) => {
            tracing::warn!("sign-in through the provider: {e}");
            store.audit(&failed(e.to_string())).await?;
            return Ok(refused(
                StatusCode::BAD_GATEWAY,
                "Not signed in",
                &format!(
                    "Lookout could not complete the sign-in with {}. Try again; if it keeps happening, tell your IT admin (the server log says why).",
                    oidc.label
                ),
                back,
            ));
        }
    };
    match waiting.portal {
        Some((ticket, to)) => to_portal(&console, &oidc, identity, &ip_s, &ticket, &to).await,
        None => {
            let agent = user_agent(&parts.headers);
            sign_in(&console, &oidc, identity, &ip_s, &agent, &waiting.next).await
        }
    }
}

/// Where the device's browser reaches the portal (through the proxy, or its own listener):
/// both see the device's address, which the console may not.
const PORTAL_URL: &str = "http://lookout.invalid/portal";

/// Keeps the local record of the person the provider vouched for in step (role: for the
/// console, from the role rules; for the portal, the record's own), or says why not.
async fn record(
    console: &Console,
    oidc: &OidcSignIn,
    identity: &Identity,
    role: Option<Role>,
    ip: &str,
    back: &str,
) -> Result<Result<String, Response>, PageError> {
    let store = console.store();
    let name = identity.username.to_lowercase();
    let action = if back == PORTAL_URL {
        "portal.sign-in.refused"
    } else {
        "sign-in.refused"
    };
    let refusal = |detail: String| {
        AuditEntry::new("oidc", action, format!("user:{name}"))
            .detail(detail)
            .from_ip(ip)
    };
    let person = DirectoryPerson {
        username: &identity.username,
        display_name: &identity.display_name,
        group: identity.group.as_deref(),
        role,
        email: identity.email.as_deref(),
        source: "oidc",
    };
    let (detail, message) = match store.directory_user(&person, ip).await {
        Ok(DirectoryRecord::Ready(user)) => return Ok(Ok(user.username)),
        Err(lookout_store::UserError::BadName(n)) => (
            format!("`{n}` cannot be a Lookout user name"),
            format!("Lookout cannot use the name `{n}` that {} gave (1-64 letters, digits and . _ - @). Ask your IT admin.", oidc.label),
        ),
        Err(e) => return Err(e.into()),
        Ok(DirectoryRecord::LocalAccount) => (
            "a local account with a password has this name".to_owned(),
            format!("A Lookout account named {name} already signs in with its own password, so it cannot be used through {}. Sign in with that password, or ask your IT admin.", oidc.label),
        ),
        Ok(DirectoryRecord::Disabled) => (
            "the account is disabled".to_owned(),
            "This account is disabled in Lookout. Ask your IT admin.".to_owned(),
        ),
        Ok(DirectoryRecord::NoGroup) => (
            format!("no [[oidc.group]] rule matches and there is no default_group ({})", identity.claims_read()),
            format!("{} signed you in, but Lookout has no group to put a new account in. Ask your IT admin to add a group rule or a default group.", oidc.label),
        ),
    };
    store.audit(&refusal(detail)).await?;
    Ok(Err(refused(
        StatusCode::FORBIDDEN,
        "Not signed in",
        &message,
        back,
    )))
}

/// A page that moves the browser on by itself (and says where, for when it does not). Not
/// a redirect: after the console's sign-in, a redirect would still belong to the provider's
/// cross-site navigation, which does not carry the `SameSite=Strict` session cookie.
fn onward(to: &str, words: &str) -> Response {
    let body = bare_page(
        words,
        html! {
            meta http-equiv="refresh" content=(format!("0;url={to}"));
            p { (words) ". " a href=(to) { "Continue" } }
        },
    );
    let mut r = Html(body.0).into_response();
    r.headers_mut()
        .append(header::SET_COOKIE, state_cookie("", 0, false));
    r
}

/// The person the provider vouched for, through Lookout's own rules to a console session.
async fn sign_in(
    console: &Console,
    oidc: &OidcSignIn,
    identity: Identity,
    ip: &str,
    agent: &str,
    next: &str,
) -> Result<Response, PageError> {
    let store = console.store();
    let name = identity.username.to_lowercase();
    let Some(role) = identity
        .role
        .as_deref()
        .and_then(|r| r.parse::<Role>().ok())
    else {
        store
            .audit(
                &AuditEntry::new("oidc", "sign-in.refused", format!("user:{name}"))
                    .detail(format!(
                        "no [[oidc.role]] rule matches ({})",
                        identity.claims_read()
                    ))
                    .from_ip(ip),
            )
            .await?;
        return Ok(refused(
            StatusCode::FORBIDDEN,
            "No access to the console",
            &format!(
                "{} signed you in as {}, but that account is not in a group that may use the safeguarding console. If you need it for your work, ask your IT admin.",
                oidc.label, identity.username
            ),
            "/sign-in",
        ));
    };
    let name = match record(console, oidc, &identity, Some(role), ip, "/sign-in").await? {
        Ok(name) => name,
        Err(r) => return Ok(r),
    };
    let provider_mfa = oidc.trust_provider_mfa && identity.multi_factor;
    let more = code_due(role, oidc.trust_provider_mfa, identity.multi_factor);
    let stage = if more { "password" } else { "full" };
    let id = start_session(console, &name, stage, ip, agent, None).await?;
    if !more {
        store.sign_in_succeeded(&name).await?;
    }
    let (action, detail) = match (more, provider_mfa) {
        (true, _) => (
            "sign-in.password-ok",
            "through the sign-in provider; Lookout's two-factor code is due",
        ),
        (false, true) => (
            "sign-in.ok",
            "through the sign-in provider, which used a second factor",
        ),
        (false, false) => ("sign-in.ok", "through the sign-in provider"),
    };
    store
        .audit(
            &AuditEntry::new(&name, action, format!("user:{name}"))
                .detail(format!("{detail} (subject {})", identity.subject))
                .from_ip(ip),
        )
        .await?;
    let to = if more { "/sign-in/continue" } else { next };
    Ok(with_session_cookie(
        console,
        onward(to, "You are signed in"),
        &id,
    ))
}

/// Whether Lookout's own two-factor code is due after the provider's sign-in: for the roles
/// that need a second factor, unless the provider's signed token says it used one and that is
/// trusted.
fn code_due(role: Role, trust_provider_mfa: bool, provider_used_mfa: bool) -> bool {
    role.needs_two_factor() && !(trust_provider_mfa && provider_used_mfa)
}

/// The person the provider vouched for, back to the portal with a one-use hand-off; the
/// portal checks its ticket was issued to the same device and signs the device in.
async fn to_portal(
    console: &Console,
    oidc: &OidcSignIn,
    identity: Identity,
    ip: &str,
    ticket: &str,
    to: &str,
) -> Result<Response, PageError> {
    let Some(handoff) = &oidc.portal else {
        return Err(PageError::NotFound("No portal here.".into()));
    };
    let name = match record(console, oidc, &identity, None, ip, PORTAL_URL).await? {
        Ok(name) => name,
        Err(r) => return Ok(r),
    };
    let grant = handoff.grant(&name).ok_or(PageError::TooMany)?;
    let back = format!(
        "{PORTAL_URL}/provider?ticket={}&grant={}&to={}",
        crate::pages::encode(ticket),
        crate::pages::encode(&grant),
        crate::pages::encode(to)
    );
    Ok(onward(&back, "Signed in: back to the network's sign-in"))
}

/// The sign-in page's button, when a provider is set up.
pub(crate) fn button(console: &Console, next: &str) -> maud::Markup {
    let Some(oidc) = &console.settings().oidc else {
        return html! {};
    };
    let href = if next == "/" {
        "/sign-in/oidc".to_owned()
    } else {
        format!("/sign-in/oidc?next={}", crate::pages::encode(next))
    };
    html! {
        p class="or" { "or" }
        p { a class="button" id="sign-in-oidc" href=(href) { "Sign in with " (oidc.label) } }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookouts_code_is_due_unless_a_trusted_provider_used_a_second_factor() {
        // (role, trust the provider's mfa, the provider used one, code due)
        let table = [
            (Role::Dsl, true, true, false),
            (Role::Dsl, true, false, true),
            (Role::Dsl, false, true, true),
            (Role::ItAdmin, false, false, true),
            (Role::Supervisor, true, true, false),
            (Role::Staff, false, false, false),
            (Role::Learner, true, false, false),
        ];
        for (role, trust, used, due) in table {
            assert_eq!(code_due(role, trust, used), due, "{role:?} {trust} {used}");
        }
    }
}
