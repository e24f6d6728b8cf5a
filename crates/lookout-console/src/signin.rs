//! Signing in (password; then a new password if the one given was temporary; then two-factor
//! set-up or a code for the roles that need it), signing out, and changing one's password.
//!
//! Each step that succeeds replaces the session id (so an id seen before sign-in is useless
//! after), and every outcome goes on the audit log.

use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use lookout_auth::{random_secret, secret_hash, SigningKey, Totp};
use lookout_store::{Account, AuditEntry, NewSession, PasswordCheck};
use maud::{html, Markup, PreEscaped};
use serde::Deserialize;

use crate::pages::{bare_page, csrf, page, when};
use crate::session::{
    client_ip, cookie, load_session, read_form, set_cookie, PageError, Partial, Posted, Viewer,
    PRE_COOKIE, SESSION_COOKIE,
};
use crate::{now_ms, Console};

/// How long someone has to finish signing in after giving their password.
const PARTIAL_MS: i64 = 10 * 60 * 1000;

/// Only a path on this site: never `//elsewhere` or `https://elsewhere`.
pub(crate) fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_owned(),
        _ => "/".to_owned(),
    }
}

#[derive(Deserialize, Default)]
pub(crate) struct SignInQuery {
    next: Option<String>,
    signed_out: Option<String>,
}

fn sign_in_page(
    console: &Console,
    pre: &str,
    next: &str,
    username: &str,
    error: Option<&str>,
    note: Option<&str>,
) -> Html<String> {
    bare_page(
        "Sign in",
        html! {
            @if let Some(n) = note { p class="note" role="status" { (n) } }
            @if let Some(e) = error { p class="error" role="alert" id="sign-in-error" { (e) } }
            form method="post" action="/sign-in" class="stack narrow" {
                (csrf(pre))
                input type="hidden" name="next" value=(next);
                label for="username" { "User name" }
                input id="username" name="username" type="text" autocomplete="username" required autofocus value=(username) autocapitalize="none" spellcheck="false";
                label for="password" { "Password" }
                input id="password" name="password" type="password" autocomplete="current-password" required;
                button type="submit" { "Sign in" }
            }
            (crate::oidc::button(console, next))
            p class="hint" { "Forgotten your password, or lost the phone with your sign-in codes? Ask your IT admin to reset it." }
        },
    )
}

/// `GET /sign-in`.
pub(crate) async fn form(
    State(console): State<Console>,
    headers: HeaderMap,
    Query(q): Query<SignInQuery>,
) -> Result<Response, PageError> {
    if let Some(s) = load_session(&console, &headers).await? {
        if s.stage == "full" {
            return Ok(Redirect::to(&safe_next(q.next.as_deref())).into_response());
        }
    }
    let pre = cookie(&headers, PRE_COOKIE)
        .filter(|c| c.len() == 43)
        .map_or_else(random_secret, str::to_owned);
    let note = q.signed_out.is_some().then_some("You have signed out.");
    let mut r = sign_in_page(
        &console,
        &pre,
        &safe_next(q.next.as_deref()),
        "",
        None,
        note,
    )
    .into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        set_cookie(PRE_COOKIE, &pre, None, console.settings().secure_cookies),
    );
    Ok(r)
}

#[derive(Deserialize)]
pub(crate) struct SignInForm {
    username: String,
    password: String,
    #[serde(default)]
    next: Option<String>,
}

/// The user's signing key, unlocked with their password; created on first sign-in, and
/// replaced (the old public half kept) if their password was reset by someone else.
async fn unlock_key(
    console: &Console,
    account: &Account,
    password: &str,
    ip: &str,
) -> Result<SigningKey, PageError> {
    let store = console.store();
    let username = account.user.username.clone();
    let stored = store.signing_key(&username).await?;
    let password = password.to_owned();
    let (key, sealed, why) = tokio::task::spawn_blocking(move || match stored {
        Some(s) => match s.key.unlock(&password) {
            Ok(k) => (k, None, ""),
            Err(_) => {
                let k = SigningKey::generate();
                let sealed = k.seal(&password);
                (
                    k,
                    Some(sealed),
                    "the password was reset, so the old key could not be opened",
                )
            }
        },
        None => {
            let k = SigningKey::generate();
            let sealed = k.seal(&password);
            (k, Some(sealed), "first sign-in")
        }
    })
    .await
    .map_err(|_| PageError::Internal)?;
    if let Some(sealed) = sealed {
        let id = store.replace_signing_key(&username, &sealed).await?;
        store
            .audit(
                &AuditEntry::new(&username, "signing-key.created", format!("key:{id}"))
                    .detail(why)
                    .from_ip(ip),
            )
            .await?;
    }
    Ok(key)
}

pub(crate) fn with_session_cookie(console: &Console, mut r: Response, id: &str) -> Response {
    let secure = console.settings().secure_cookies;
    let headers = r.headers_mut();
    headers.append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, id, None, secure),
    );
    headers.append(
        header::SET_COOKIE,
        set_cookie(PRE_COOKIE, "", Some(0), secure),
    );
    r
}

pub(crate) fn user_agent(headers: &HeaderMap) -> String {
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .chars()
        .take(200)
        .collect()
}

/// Starts a session at `stage` with the signing key unlocked at sign-in (none for people who
/// signed in through the provider: they unlock theirs with a passphrase when they sign).
pub(crate) async fn start_session(
    console: &Console,
    username: &str,
    stage: &str,
    ip: &str,
    agent: &str,
    key: Option<SigningKey>,
) -> Result<String, PageError> {
    let id = random_secret();
    let id_hash = secret_hash(&id);
    let now = now_ms();
    let expires = match stage {
        "full" => now + console.settings().idle.as_millis() as i64,
        _ => now + PARTIAL_MS,
    };
    console
        .store()
        .create_session(&NewSession {
            id_hash: &id_hash,
            username,
            stage,
            csrf: &random_secret(),
            expires_ms: expires,
            client_ip: ip,
            user_agent: agent,
        })
        .await?;
    if let Some(key) = key {
        console.keep_key(&id_hash, key);
    }
    Ok(id)
}

/// `POST /sign-in`.
pub(crate) async fn submit(
    State(console): State<Console>,
    req: Request,
) -> Result<Response, PageError> {
    let (parts, body) = req.into_parts();
    let ip = client_ip(&parts);
    let pre = cookie(&parts.headers, PRE_COOKIE).unwrap_or("").to_owned();
    let agent = user_agent(&parts.headers);
    let form: SignInForm = read_form(Request::from_parts(parts, body), &console, &pre).await?;
    let next = safe_next(form.next.as_deref());
    let store = console.store();
    let name = form.username.trim().to_lowercase();
    let ip_s = ip.to_string();
    if !console.attempt_allowed(ip) {
        store
            .audit(
                &AuditEntry::new(&name, "sign-in.rate-limited", format!("user:{name}"))
                    .from_ip(&ip_s),
            )
            .await?;
        return Err(PageError::TooMany);
    }
    let refuse = |msg: &str| {
        (
            StatusCode::UNAUTHORIZED,
            sign_in_page(&console, &pre, &next, &form.username, Some(msg), None),
        )
            .into_response()
    };
    match store.check_sign_in(&name, &form.password).await? {
        PasswordCheck::Refused => {
            store
                .audit(
                    &AuditEntry::new(&name, "sign-in.failed", format!("user:{name}"))
                        .detail("wrong user name or password")
                        .from_ip(&ip_s),
                )
                .await?;
            Ok(refuse(
                "The user name or password is not right. Check them and try again.",
            ))
        }
        PasswordCheck::Locked(until) => {
            store
                .audit(
                    &AuditEntry::new(&name, "sign-in.locked", format!("user:{name}"))
                        .from_ip(&ip_s),
                )
                .await?;
            Ok(refuse(&format!(
                "This account is locked after too many failed attempts, until {}. Try again then, or ask your IT admin to unlock it.",
                when(until)
            )))
        }
        PasswordCheck::Ok(account) => {
            let key = unlock_key(&console, &account, &form.password, &ip_s).await?;
            let more = account.must_change_password || account.user.role.needs_two_factor();
            let stage = if more { "password" } else { "full" };
            let id = start_session(
                &console,
                &account.user.username,
                stage,
                &ip_s,
                &agent,
                Some(key),
            )
            .await?;
            let action = if more {
                "sign-in.password-ok"
            } else {
                "sign-in.ok"
            };
            if !more {
                store.sign_in_succeeded(&account.user.username).await?;
            }
            store
                .audit(
                    &AuditEntry::new(
                        &account.user.username,
                        action,
                        format!("user:{}", account.user.username),
                    )
                    .from_ip(&ip_s),
                )
                .await?;
            let to = if more {
                "/sign-in/continue".to_owned()
            } else {
                next
            };
            Ok(with_session_cookie(
                &console,
                Redirect::to(&to).into_response(),
                &id,
            ))
        }
    }
}

/// Ends the partial session and starts a full one (a new id), with its key.
async fn finish(console: &Console, partial: &Partial, agent: &str) -> Result<Response, PageError> {
    let store = console.store();
    let username = &partial.session.account.user.username;
    let key = console.take_key(&partial.session.id_hash);
    if key.is_none() && partial.session.account.user.has_password {
        // The server restarted part-way: the password must be given again.
        store.end_session(&partial.session.id_hash).await?;
        return Err(PageError::SignIn { next: "/".into() });
    }
    store.end_session(&partial.session.id_hash).await?;
    let ip = partial.ip.to_string();
    let id = start_session(console, username, "full", &ip, agent, key).await?;
    store.sign_in_succeeded(username).await?;
    store
        .audit(&AuditEntry::new(username, "sign-in.ok", format!("user:{username}")).from_ip(&ip))
        .await?;
    Ok(with_session_cookie(
        console,
        Redirect::to("/").into_response(),
        &id,
    ))
}

/// `GET /sign-in/continue`: the next step for a partial session.
pub(crate) async fn continue_(
    State(console): State<Console>,
    headers: HeaderMap,
    partial: Partial,
) -> Result<Response, PageError> {
    let a = &partial.session.account;
    if a.must_change_password {
        return Ok(Redirect::to("/sign-in/new-password").into_response());
    }
    if a.needs_totp_setup() {
        return Ok(Redirect::to("/sign-in/setup").into_response());
    }
    if a.user.role.needs_two_factor() {
        return Ok(Redirect::to("/sign-in/code").into_response());
    }
    finish(&console, &partial, &user_agent(&headers)).await
}

fn password_fields(current: bool) -> Markup {
    html! {
        @if current {
            label for="current" { "Your current password" }
            input id="current" name="current" type="password" autocomplete="current-password" required;
        }
        label for="password" { "New password" }
        p class="hint" id="password-hint" { "At least 8 characters. A few unrelated words make a strong password that is easy to remember." }
        input id="password" name="password" type="password" autocomplete="new-password" minlength="8" required aria-describedby="password-hint";
        label for="confirm" { "The new password again" }
        input id="confirm" name="confirm" type="password" autocomplete="new-password" minlength="8" required;
    }
}

fn new_password_page(partial: &Partial, error: Option<&str>) -> Html<String> {
    bare_page(
        "Choose a new password",
        html! {
            p { "The password you signed in with was temporary. Choose your own now: only you will know it." }
            @if let Some(e) = error { p class="error" role="alert" { (e) } }
            form method="post" action="/sign-in/new-password" class="stack narrow" {
                (csrf(&partial.session.csrf))
                (password_fields(false))
                button type="submit" { "Save my new password" }
            }
        },
    )
}

/// `GET /sign-in/new-password`.
pub(crate) async fn new_password_form(partial: Partial) -> Html<String> {
    new_password_page(&partial, None)
}

#[derive(Deserialize)]
pub(crate) struct NewPasswordForm {
    #[serde(default)]
    current: String,
    password: String,
    confirm: String,
}

/// Checks a new password pair; the problem in words.
fn check_new(form: &NewPasswordForm) -> Result<(), String> {
    if form.password != form.confirm {
        return Err("The two new passwords are not the same. Type them again.".into());
    }
    lookout_store::check_password(&form.password)
        .map_err(|e| format!("The new password cannot be used: {e}."))?;
    if form.password == form.current {
        return Err("The new password must be different from the current one.".into());
    }
    Ok(())
}

/// Re-seals the session's key under the new password and stores both.
async fn save_password(
    console: &Console,
    session_hash: &str,
    username: &str,
    password: &str,
) -> Result<(), PageError> {
    let key = console.key(session_hash);
    let pw = password.to_owned();
    let resealed = match key {
        Some(k) => Some(
            tokio::task::spawn_blocking(move || k.seal(&pw))
                .await
                .map_err(|_| PageError::Internal)?,
        ),
        None => None,
    };
    console
        .store()
        .change_password(username, password, resealed.as_ref())
        .await?;
    Ok(())
}

/// `POST /sign-in/new-password`.
pub(crate) async fn new_password(
    State(console): State<Console>,
    Posted(partial, form): Posted<NewPasswordForm, Partial>,
) -> Result<Response, PageError> {
    if !partial.session.account.must_change_password {
        return Ok(Redirect::to("/sign-in/continue").into_response());
    }
    if let Err(e) = check_new(&form) {
        return Ok((
            StatusCode::UNPROCESSABLE_ENTITY,
            new_password_page(&partial, Some(&e)),
        )
            .into_response());
    }
    let username = &partial.session.account.user.username;
    save_password(&console, &partial.session.id_hash, username, &form.password).await?;
    console
        .store()
        .audit(
            &AuditEntry::new(username, "password.changed", format!("user:{username}"))
                .detail("temporary password replaced")
                .from_ip(partial.ip.to_string()),
        )
        .await?;
    Ok(Redirect::to("/sign-in/continue").into_response())
}

fn qr_svg(data: &str) -> String {
    match qrcode::QrCode::new(data.as_bytes()) {
        Ok(code) => code
            .render::<qrcode::render::svg::Color>()
            .min_dimensions(220, 220)
            .quiet_zone(true)
            .build(),
        Err(_) => String::new(),
    }
}

fn setup_page(console: &Console, partial: &Partial, error: Option<&str>) -> Html<String> {
    let totp = console.pending_totp(&partial.session.id_hash);
    let org = &console.settings().organisation;
    let issuer = if org.is_empty() {
        "Lookout".to_owned()
    } else {
        format!("Lookout ({org})")
    };
    let url = totp.otpauth_url(&issuer, &partial.session.account.user.username);
    bare_page(
        "Set up two-factor sign-in",
        html! {
            p { "Your role can see safeguarding records, so signing in needs a code from your phone as well as your password." }
            ol class="steps" {
                li { "Open an authenticator app on your phone (for example Microsoft Authenticator or Google Authenticator) and add an account." }
                li {
                    "Scan this code with it:"
                    figure class="qr" role="img" aria-label="QR code for your authenticator app" { (PreEscaped(qr_svg(&url))) }
                    "Or type this key into the app instead: "
                    code class="secret" id="totp-secret" { (totp.base32_grouped()) }
                }
                li { "Type the six-digit code the app shows:" }
            }
            @if let Some(e) = error { p class="error" role="alert" { (e) } }
            form method="post" action="/sign-in/setup" class="stack narrow" {
                (csrf(&partial.session.csrf))
                label for="code" { "Six-digit code" }
                input id="code" name="code" type="text" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9 ]{6,7}" maxlength="7" required autofocus;
                button type="submit" { "Turn on two-factor sign-in" }
            }
        },
    )
}

/// `GET /sign-in/setup`.
pub(crate) async fn setup_form(
    State(console): State<Console>,
    partial: Partial,
) -> Result<Response, PageError> {
    if !partial.session.account.needs_totp_setup() {
        return Ok(Redirect::to("/sign-in/continue").into_response());
    }
    Ok(setup_page(&console, &partial, None).into_response())
}

#[derive(Deserialize)]
pub(crate) struct CodeForm {
    code: String,
}

fn unix_now() -> u64 {
    u64::try_from(now_ms() / 1000).unwrap_or(0)
}

/// `POST /sign-in/setup`.
pub(crate) async fn setup(
    State(console): State<Console>,
    headers: HeaderMap,
    Posted(partial, form): Posted<CodeForm, Partial>,
) -> Result<Response, PageError> {
    if !partial.session.account.needs_totp_setup() {
        return Ok(Redirect::to("/sign-in/continue").into_response());
    }
    if !console.attempt_allowed(partial.ip) {
        return Err(PageError::TooMany);
    }
    let totp = console.pending_totp(&partial.session.id_hash);
    let Some(step) = totp.check(&form.code, unix_now(), 0) else {
        let msg = "That code is not right. Check the app shows Lookout, and type the newest code (they change every 30 seconds).";
        return Ok((
            StatusCode::UNPROCESSABLE_ENTITY,
            setup_page(&console, &partial, Some(msg)),
        )
            .into_response());
    };
    let store = console.store();
    let username = &partial.session.account.user.username;
    store
        .set_totp_secret(username, Some(&totp.base32()))
        .await?;
    store.use_totp_step(username, step).await?;
    console.forget_pending_totp(&partial.session.id_hash);
    store
        .audit(
            &AuditEntry::new(username, "two-factor.set-up", format!("user:{username}"))
                .from_ip(partial.ip.to_string()),
        )
        .await?;
    finish(&console, &partial, &user_agent(&headers)).await
}

fn code_page(partial: &Partial, error: Option<&str>) -> Html<String> {
    bare_page(
        "Enter your sign-in code",
        html! {
            p { "Open the authenticator app on your phone and type the six-digit code for Lookout." }
            @if let Some(e) = error { p class="error" role="alert" { (e) } }
            form method="post" action="/sign-in/code" class="stack narrow" {
                (csrf(&partial.session.csrf))
                label for="code" { "Six-digit code" }
                input id="code" name="code" type="text" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9 ]{6,7}" maxlength="7" required autofocus;
                button type="submit" { "Continue" }
            }
            p class="hint" { "Lost your phone? Ask your IT admin to reset your two-factor sign-in." }
        },
    )
}

/// `GET /sign-in/code`.
pub(crate) async fn code_form(partial: Partial) -> Response {
    if partial.session.account.totp_secret.is_none() {
        return Redirect::to("/sign-in/continue").into_response();
    }
    code_page(&partial, None).into_response()
}

/// `POST /sign-in/code`.
pub(crate) async fn code(
    State(console): State<Console>,
    headers: HeaderMap,
    Posted(partial, form): Posted<CodeForm, Partial>,
) -> Result<Response, PageError> {
    let account = &partial.session.account;
    let Some(secret) = account.totp_secret.as_deref() else {
        return Ok(Redirect::to("/sign-in/continue").into_response());
    };
    if !console.attempt_allowed(partial.ip) {
        return Err(PageError::TooMany);
    }
    let store = console.store();
    let username = &account.user.username;
    let ip = partial.ip.to_string();
    let totp = Totp::from_base32(secret).map_err(|_| PageError::Internal)?;
    let last = u64::try_from(account.totp_last_step).unwrap_or(0);
    let accepted = match totp.check(&form.code, unix_now(), last) {
        Some(step) => store.use_totp_step(username, step).await?,
        None => false,
    };
    if accepted {
        return finish(&console, &partial, &user_agent(&headers)).await;
    }
    store
        .audit(
            &AuditEntry::new(username, "sign-in.code-failed", format!("user:{username}"))
                .from_ip(&ip),
        )
        .await?;
    if let Some(until) = store.sign_in_failed(username).await? {
        store.end_session(&partial.session.id_hash).await?;
        console.take_key(&partial.session.id_hash);
        store
            .audit(
                &AuditEntry::new(username, "sign-in.locked", format!("user:{username}"))
                    .from_ip(&ip),
            )
            .await?;
        let msg = format!(
            "This account is locked after too many failed attempts, until {}. Try again then, or ask your IT admin to unlock it.",
            when(until)
        );
        return Ok((
            StatusCode::UNAUTHORIZED,
            crate::pages::message_page("Account locked", &msg),
        )
            .into_response());
    }
    let msg = "That code is not right, or was already used. Type the newest code from the app (they change every 30 seconds).";
    Ok((StatusCode::UNAUTHORIZED, code_page(&partial, Some(msg))).into_response())
}

#[derive(Deserialize)]
pub(crate) struct Empty {}

/// `POST /sign-out`.
pub(crate) async fn sign_out(
    State(console): State<Console>,
    Posted(viewer, _): Posted<Empty>,
) -> Result<Response, PageError> {
    let store = console.store();
    store.end_session(&viewer.session.id_hash).await?;
    console.take_key(&viewer.session.id_hash);
    store
        .audit(&viewer.audit("sign-out", format!("user:{}", viewer.username())))
        .await?;
    let mut r = Redirect::to("/sign-in?signed_out=1").into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        set_cookie(
            SESSION_COOKIE,
            "",
            Some(0),
            console.settings().secure_cookies,
        ),
    );
    Ok(r)
}

fn change_page(viewer: &Viewer, error: Option<&str>, done: bool) -> Html<String> {
    page(
        viewer,
        "Change my password",
        html! {
            @if done { p class="note" role="status" { "Your password has been changed. You have been signed out everywhere else." } }
            @if let Some(e) = error { p class="error" role="alert" { (e) } }
            form method="post" action="/account/password" class="stack narrow" {
                (csrf(&viewer.session.csrf))
                (password_fields(true))
                button type="submit" { "Change my password" }
            }
        },
    )
}

/// For people who sign in through the provider: their password is not Lookout's.
fn no_password_page(console: &Console, viewer: &Viewer) -> Html<String> {
    let provider = console
        .settings()
        .oidc
        .as_ref()
        .map_or("your organisation's sign-in", |o| o.label.as_str());
    page(
        viewer,
        "Change my password",
        html! {
            p { "You sign in through " (provider) ", so your password is kept there, not by Lookout: change it there." }
        },
    )
}

/// `GET /account/password`.
pub(crate) async fn change_password_form(
    State(console): State<Console>,
    viewer: Viewer,
) -> Html<String> {
    if !viewer.session.account.user.has_password {
        return no_password_page(&console, &viewer);
    }
    change_page(&viewer, None, false)
}

/// `POST /account/password`: needs the current password (a wrong one counts towards the
/// lockout); signs the user out everywhere else.
pub(crate) async fn change_password(
    State(console): State<Console>,
    Posted(viewer, form): Posted<NewPasswordForm>,
) -> Result<Response, PageError> {
    let store = console.store();
    if !viewer.session.account.user.has_password {
        return Ok((
            StatusCode::UNPROCESSABLE_ENTITY,
            no_password_page(&console, &viewer),
        )
            .into_response());
    }
    if let Err(e) = check_new(&form) {
        return Ok((
            StatusCode::UNPROCESSABLE_ENTITY,
            change_page(&viewer, Some(&e), false),
        )
            .into_response());
    }
    match store
        .check_sign_in(viewer.username(), &form.current)
        .await?
    {
        PasswordCheck::Ok(_) => {}
        PasswordCheck::Refused => {
            store
                .audit(&viewer.audit(
                    "password.change-refused",
                    format!("user:{}", viewer.username()),
                ))
                .await?;
            let msg = "Your current password is not right.";
            return Ok((
                StatusCode::UNPROCESSABLE_ENTITY,
                change_page(&viewer, Some(msg), false),
            )
                .into_response());
        }
        PasswordCheck::Locked(_) => {
            store.end_session(&viewer.session.id_hash).await?;
            return Err(PageError::SignIn { next: "/".into() });
        }
    }
    if console.key(&viewer.session.id_hash).is_none() {
        let account = store
            .account(viewer.username())
            .await?
            .ok_or(PageError::Internal)?;
        let key = unlock_key(&console, &account, &form.current, &viewer.ip.to_string()).await?;
        console.keep_key(&viewer.session.id_hash, key);
    }
    save_password(
        &console,
        &viewer.session.id_hash,
        viewer.username(),
        &form.password,
    )
    .await?;
    let ended = store
        .end_sessions_of(viewer.username(), Some(&viewer.session.id_hash))
        .await?;
    store
        .audit(
            &viewer
                .audit("password.changed", format!("user:{}", viewer.username()))
                .detail(format!("{ended} other session(s) ended")),
        )
        .await?;
    Ok(change_page(&viewer, None, true).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed_after_sign_in() {
        let table = [
            (Some("/alerts/3"), "/alerts/3"),
            (Some("//evil.example/"), "/"),
            (Some("https://evil.example/"), "/"),
            (Some("/\\evil.example"), "/"),
            (Some(""), "/"),
            (None, "/"),
        ];
        for (input, want) in table {
            assert_eq!(safe_next(input), want, "{input:?}");
        }
    }
}
