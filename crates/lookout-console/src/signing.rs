//! `/account/signing-key`: unlocking one's signing key for this session, and choosing the
//! signing passphrase that seals it for people who sign in through the provider (they have
//! no Lookout password to seal it under).
//!
//! A key sealed under a password is unlocked at sign-in; this page unlocks it again after a
//! server restart, with the same password. A passphrase can be replaced when forgotten: a
//! new key is made and the old one retired (its public half kept, so earlier signatures
//! still verify). Every unlock, failure and new key is on the audit log.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use lookout_auth::SigningKey;
use maud::html;
use serde::Deserialize;

use crate::pages::{csrf, page};
use crate::session::{PageError, Posted, Viewer};
use crate::signin::safe_next;
use crate::Console;

#[derive(Deserialize, Default)]
pub(crate) struct NextQuery {
    next: Option<String>,
}

/// What the viewer's key is like now.
enum KeyState {
    Unlocked,
    Sealed,
    None,
}

async fn key_state(console: &Console, viewer: &Viewer) -> Result<KeyState, PageError> {
    let stored = console.store().signing_key(viewer.username()).await?;
    Ok(match (console.key(&viewer.session.id_hash), stored) {
        (Some(k), Some(s)) if k.public() == s.key.public => KeyState::Unlocked,
        (_, Some(_)) => KeyState::Sealed,
        (_, None) => KeyState::None,
    })
}

fn key_page(viewer: &Viewer, state: &KeyState, next: &str, error: Option<&str>) -> Html<String> {
    let has_password = viewer.session.account.user.has_password;
    let secret_name = if has_password {
        "password"
    } else {
        "signing passphrase"
    };
    let choose = |action: &str, button: &str| {
        html! {
            form method="post" action="/account/signing-key" class="stack narrow" {
                (csrf(&viewer.session.csrf))
                input type="hidden" name="next" value=(next);
                input type="hidden" name="action" value=(action);
                label for=(format!("{action}-secret")) { "New signing passphrase" }
                p class="hint" { "At least 8 characters, known only to you. It is not your Microsoft or Google password: Lookout never sees that." }
                input id=(format!("{action}-secret")) name="secret" type="password" autocomplete="new-password" minlength="8" required;
                label for=(format!("{action}-confirm")) { "The passphrase again" }
                input id=(format!("{action}-confirm")) name="confirm" type="password" autocomplete="new-password" minlength="8" required;
                button type="submit" { (button) }
            }
        }
    };
    page(
        viewer,
        "My signing key",
        html! {
            p { "Routine checks, co-signatures and incident exports are signed with a key of your own, so that anyone can later check who signed and that nothing was changed." }
            @if let Some(e) = error { p class="error" role="alert" { (e) } }
            @match state {
                KeyState::Unlocked => {
                    p class="note" role="status" id="key-unlocked" { "Your signing key is unlocked for this session." }
                    @if next != "/" { p { a href=(next) { "Go back to what you were signing" } } }
                }
                KeyState::Sealed => {
                    p { "Your key is locked: type your " (secret_name) " to unlock it for this session." }
                    form method="post" action="/account/signing-key" class="stack narrow" {
                        (csrf(&viewer.session.csrf))
                        input type="hidden" name="next" value=(next);
                        input type="hidden" name="action" value="unlock";
                        label for="secret" { "Your " (secret_name) }
                        input id="secret" name="secret" type="password" autocomplete=(if has_password { "current-password" } else { "off" }) required autofocus;
                        button type="submit" { "Unlock my signing key" }
                    }
                    @if !has_password {
                        details {
                            summary { "I have forgotten my signing passphrase" }
                            p { "Make a new key with a new passphrase. What you signed before stays valid and checkable." }
                            (choose("replace", "Make a new key"))
                        }
                    }
                }
                KeyState::None => {
                    p { "You do not have a signing key yet. Choose a signing passphrase to make one; you will type it once in each session in which you sign something." }
                    (choose("create", "Make my signing key"))
                }
            }
        },
    )
}

/// `GET /account/signing-key`.
pub(crate) async fn form(
    State(console): State<Console>,
    viewer: Viewer,
    Query(q): Query<NextQuery>,
) -> Result<Html<String>, PageError> {
    let state = key_state(&console, &viewer).await?;
    Ok(key_page(
        &viewer,
        &state,
        &safe_next(q.next.as_deref()),
        None,
    ))
}

#[derive(Deserialize)]
pub(crate) struct KeyForm {
    action: String,
    #[serde(default)]
    secret: String,
    #[serde(default)]
    confirm: String,
    #[serde(default)]
    next: Option<String>,
}

/// `POST /account/signing-key`: unlock, or (no password) make a key under a new passphrase.
pub(crate) async fn submit(
    State(console): State<Console>,
    Posted(viewer, form): Posted<KeyForm>,
) -> Result<Response, PageError> {
    let store = console.store();
    let next = safe_next(form.next.as_deref());
    let state = key_state(&console, &viewer).await?;
    let target = format!("user:{}", viewer.username());
    let again = |state: &KeyState, msg: &str| {
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            key_page(&viewer, state, &next, Some(msg)),
        )
            .into_response()
    };
    let done = || {
        Redirect::to(&format!(
            "/account/signing-key?next={}",
            crate::pages::encode(&next)
        ))
        .into_response()
    };
    match (form.action.as_str(), &state) {
        (_, KeyState::Unlocked) => Ok(done()),
        ("unlock", KeyState::Sealed) => {
            if !console.attempt_allowed(viewer.ip) {
                return Err(PageError::TooMany);
            }
            let stored = store
                .signing_key(viewer.username())
                .await?
                .ok_or(PageError::Internal)?;
            let secret = form.secret.clone();
            let unlocked = tokio::task::spawn_blocking(move || stored.key.unlock(&secret))
                .await
                .map_err(|_| PageError::Internal)?;
            match unlocked {
                Ok(key) => {
                    console.keep_key(&viewer.session.id_hash, key);
                    store
                        .audit(&viewer.audit("signing-key.unlocked", target))
                        .await?;
                    Ok(done())
                }
                Err(_) => {
                    store
                        .audit(&viewer.audit("signing-key.unlock-failed", target))
                        .await?;
                    let what = if viewer.session.account.user.has_password {
                        "That is not your password."
                    } else {
                        "That is not your signing passphrase."
                    };
                    Ok(again(&state, what))
                }
            }
        }
        ("create", KeyState::None) | ("replace", KeyState::Sealed)
            if !viewer.session.account.user.has_password =>
        {
            if form.secret != form.confirm {
                return Ok(again(
                    &state,
                    "The two passphrases are not the same. Type them again.",
                ));
            }
            if let Err(e) = lookout_store::check_password(&form.secret) {
                return Ok(again(
                    &state,
                    &format!("The passphrase cannot be used: {e}."),
                ));
            }
            let secret = form.secret.clone();
            let (key, sealed) = tokio::task::spawn_blocking(move || {
                let k = SigningKey::generate();
                let sealed = k.seal(&secret);
                (k, sealed)
            })
            .await
            .map_err(|_| PageError::Internal)?;
            let id = store
                .replace_signing_key(viewer.username(), &sealed)
                .await?;
            console.keep_key(&viewer.session.id_hash, key);
            let why = match form.action.as_str() {
                "create" => "signing passphrase chosen",
                _ => "signing passphrase forgotten: a new key (earlier signatures stay valid)",
            };
            store
                .audit(
                    &viewer
                        .audit("signing-key.created", format!("key:{id}"))
                        .detail(why),
                )
                .await?;
            Ok(done())
        }
        _ => Ok(again(
            &state,
            "That cannot be done with your key as it is now. Use the form below.",
        )),
    }
}
