//! Sessions, who is asking, what they may do, and CSRF.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRef, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use lookout_auth::{secret_hash, secrets_equal, Role};
use lookout_store::{AuditEntry, Session};
use serde::de::DeserializeOwned;

use crate::{now_ms, pages, Console};

/// The session cookie.
pub const SESSION_COOKIE: &str = "lookout_session";
/// The sign-in form's own CSRF cookie (before there is a session).
pub const PRE_COOKIE: &str = "lookout_signin";
/// The hidden form field carrying the CSRF token.
pub const CSRF_FIELD: &str = "csrf";

/// Largest form accepted.
const MAX_FORM: usize = 256 * 1024;

/// A cookie's value from the request.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, whole site; `max_age` 0 deletes.
pub(crate) fn set_cookie(
    name: &str,
    value: &str,
    max_age: Option<u64>,
    secure: bool,
) -> HeaderValue {
    let mut s = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict");
    if let Some(age) = max_age {
        s.push_str(&format!("; Max-Age={age}"));
    }
    if secure {
        s.push_str("; Secure");
    }
    HeaderValue::from_str(&s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The client's address (from the connection).
pub(crate) fn client_ip(parts: &Parts) -> IpAddr {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip())
}

/// Why a request was not served: each renders as a page saying so plainly.
#[derive(Debug)]
pub(crate) enum PageError {
    /// Not signed in: to the sign-in page, then back.
    SignIn {
        next: String,
    },
    /// Signed in, but with steps still to do.
    Continue,
    /// Their role does not allow it.
    Forbidden,
    NotFound(String),
    /// A form field is wrong: which and why.
    BadForm(String),
    /// The CSRF token is missing or stale.
    Csrf,
    /// Too many attempts.
    TooMany,
    /// Someone else changed it first.
    Conflict(String),
    Internal,
}

impl From<lookout_store::StoreError> for PageError {
    fn from(e: lookout_store::StoreError) -> Self {
        tracing::error!("console: {e}");
        PageError::Internal
    }
}

impl From<lookout_store::UserError> for PageError {
    fn from(e: lookout_store::UserError) -> Self {
        match e {
            lookout_store::UserError::Store(e) => e.into(),
            other => PageError::BadForm(other.to_string()),
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (status, title, message) = match self {
            PageError::SignIn { next } => {
                let target = if next == "/" {
                    "/sign-in".to_owned()
                } else {
                    format!("/sign-in?next={}", pages::encode(&next))
                };
                return Redirect::to(&target).into_response();
            }
            PageError::Continue => return Redirect::to("/sign-in/continue").into_response(),
            PageError::Forbidden => (
                StatusCode::FORBIDDEN,
                "Not available to you",
                "Your account does not have access to this page. If you need it for your work, ask your IT admin."
                    .to_owned(),
            ),
            PageError::NotFound(what) => (StatusCode::NOT_FOUND, "Not found", what),
            PageError::BadForm(why) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "Please check the form",
                why,
            ),
            PageError::Csrf => (
                StatusCode::FORBIDDEN,
                "This form has expired",
                "For your safety, forms only work from the page they came from. Go back, reload the page and try again."
                    .to_owned(),
            ),
            PageError::TooMany => (
                StatusCode::TOO_MANY_REQUESTS,
                "Too many attempts",
                "There have been too many sign-in attempts from this computer. Wait ten minutes and try again."
                    .to_owned(),
            ),
            PageError::Conflict(why) => (StatusCode::CONFLICT, "Already done", why),
            PageError::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "Lookout could not complete this. Nothing was changed. Try again; if it keeps happening, tell your IT admin (the server log says why)."
                    .to_owned(),
            ),
        };
        (status, pages::message_page(title, &message)).into_response()
    }
}

/// Someone with a full session.
#[derive(Debug, Clone)]
pub(crate) struct Viewer {
    pub session: Session,
    pub ip: IpAddr,
}

impl Viewer {
    pub(crate) fn role(&self) -> Role {
        self.session.account.user.role
    }

    pub(crate) fn username(&self) -> &str {
        &self.session.account.user.username
    }

    /// Refuses unless the viewer's role is one of `roles`.
    pub(crate) fn require(&self, roles: &[Role]) -> Result<(), PageError> {
        match roles.contains(&self.role()) {
            true => Ok(()),
            false => Err(PageError::Forbidden),
        }
    }

    /// An audit entry by this viewer.
    pub(crate) fn audit(&self, action: &str, target: impl Into<String>) -> AuditEntry {
        AuditEntry::new(self.username(), action, target).from_ip(self.ip.to_string())
    }
}

/// The session from the cookie, whatever its stage.
pub(crate) async fn load_session(
    console: &Console,
    headers: &HeaderMap,
) -> Result<Option<Session>, PageError> {
    let Some(id) = cookie(headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    Ok(console.store().session(&secret_hash(id), now_ms()).await?)
}

impl<S> FromRequestParts<S> for Viewer
where
    Console: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Viewer, PageError> {
        if let Some(v) = parts.extensions.get::<Viewer>() {
            return Ok(v.clone());
        }
        let console = Console::from_ref(state);
        let next = parts
            .uri
            .path_and_query()
            .map_or("/".to_owned(), |p| p.as_str().to_owned());
        let Some(session) = load_session(&console, &parts.headers).await? else {
            return Err(PageError::SignIn { next });
        };
        if session.stage != "full" {
            return Err(PageError::Continue);
        }
        let now = now_ms();
        if now - session.last_seen_ms > 30_000 {
            let s = console.settings();
            let expires = (now + s.idle.as_millis() as i64)
                .min(session.created_ms + s.lifetime.as_millis() as i64);
            console
                .store()
                .touch_session(&session.id_hash, now, expires)
                .await?;
        }
        Ok(Viewer {
            session,
            ip: client_ip(parts),
        })
    }
}

/// A role guard for a group of routes.
#[derive(Clone)]
pub(crate) struct Guard {
    console: Console,
    roles: &'static [Role],
}

impl Guard {
    pub(crate) fn new(console: &Console, roles: &'static [Role]) -> Guard {
        Guard {
            console: console.clone(),
            roles,
        }
    }
}

/// Middleware: a full session with one of the guard's roles, or the request goes no further.
/// The viewer is passed on to the handler, so the session is read once.
pub(crate) async fn guard(
    axum::extract::State(g): axum::extract::State<Guard>,
    req: Request,
    next: axum::middleware::Next,
) -> Response {
    let (mut parts, body) = req.into_parts();
    let viewer = match Viewer::from_request_parts(&mut parts, &g.console).await {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    if let Err(e) = viewer.require(g.roles) {
        return e.into_response();
    }
    parts.extensions.insert(viewer);
    next.run(Request::from_parts(parts, body)).await
}

/// Someone part-way through signing in (password accepted; a new password or a two-factor
/// code still to give).
#[derive(Debug, Clone)]
pub(crate) struct Partial {
    pub session: Session,
    pub ip: IpAddr,
}

impl<S> FromRequestParts<S> for Partial
where
    Console: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Partial, PageError> {
        let console = Console::from_ref(state);
        match load_session(&console, &parts.headers).await? {
            Some(session) if session.stage == "password" => Ok(Partial {
                session,
                ip: client_ip(parts),
            }),
            Some(_) => Err(PageError::SignIn { next: "/".into() }),
            None => Err(PageError::SignIn { next: "/".into() }),
        }
    }
}

/// Refuses a cross-site form: an `Origin` header that is not this host's.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    origin
        .split_once("://")
        .is_some_and(|(_, rest)| rest.eq_ignore_ascii_case(host))
}

/// Reads a form body and checks its CSRF field against `expected`.
pub(crate) async fn read_form<T: DeserializeOwned, S: Send + Sync>(
    req: Request,
    state: &S,
    expected: &str,
) -> Result<T, PageError> {
    if req.method() != Method::POST || !same_origin(req.headers()) {
        return Err(PageError::Csrf);
    }
    let body = Bytes::from_request(req, state)
        .await
        .map_err(|_| PageError::BadForm("the form could not be read".into()))?;
    decode_form(&body, expected)
}

/// A posted form's body as `T`, once its CSRF field matches `expected` (sans-I/O: fuzzed).
pub(crate) fn decode_form<T: DeserializeOwned>(
    body: &[u8],
    expected: &str,
) -> Result<T, PageError> {
    if body.len() > MAX_FORM {
        return Err(PageError::BadForm("the form is too large".into()));
    }
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
        .map_err(|_| PageError::BadForm("the form could not be read".into()))?;
    let token = pairs
        .iter()
        .find(|(k, _)| k == CSRF_FIELD)
        .map(|(_, v)| v.as_str())
        .unwrap_or("");
    if expected.is_empty() || !secrets_equal(token, expected) {
        return Err(PageError::Csrf);
    }
    serde_urlencoded::from_bytes(body).map_err(|e| PageError::BadForm(form_error(&e)))
}

/// A deserialisation error in words: "missing field `reason`" becomes "Please fill in reason".
fn form_error(e: &serde_urlencoded::de::Error) -> String {
    let s = e.to_string();
    match s.strip_prefix("missing field `") {
        Some(rest) => format!(
            "Please fill in “{}”.",
            rest.trim_end_matches('`').replace('_', " ")
        ),
        None => format!("A field is not in the expected form: {s}"),
    }
}

/// Whoever posts a form: their session's CSRF token.
pub(crate) trait FormSender {
    fn csrf(&self) -> &str;
}

impl FormSender for Viewer {
    fn csrf(&self) -> &str {
        &self.session.csrf
    }
}

impl FormSender for Partial {
    fn csrf(&self) -> &str {
        &self.session.csrf
    }
}

/// A form posted by someone with a session (`W`: a full one by default, or [`Partial`]
/// part-way through signing in), its CSRF token checked before the form is read.
pub(crate) struct Posted<T, W = Viewer>(pub W, pub T);

impl<S, T, W> FromRequest<S> for Posted<T, W>
where
    Console: FromRef<S>,
    S: Send + Sync,
    T: DeserializeOwned,
    W: FromRequestParts<S, Rejection = PageError> + FormSender + Send + Sync,
{
    type Rejection = PageError;

    async fn from_request(req: Request, state: &S) -> Result<Self, PageError> {
        let (mut parts, body) = req.into_parts();
        let sender = W::from_request_parts(&mut parts, state).await?;
        let req = Request::from_parts(parts, body);
        let form = read_form(req, state, sender.csrf()).await?;
        Ok(Posted(sender, form))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_and_origins() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; lookout_session=xyz"),
        );
        h.append(header::COOKIE, HeaderValue::from_static("b=; c=3"));
        let table = [
            ("a", Some("1")),
            ("lookout_session", Some("xyz")),
            ("b", None),
            ("c", Some("3")),
            ("d", None),
        ];
        for (name, want) in table {
            assert_eq!(cookie(&h, name), want, "{name}");
        }
        let v = set_cookie("s", "v", Some(0), true);
        assert_eq!(
            v,
            "s=v; Path=/; HttpOnly; SameSite=Strict; Max-Age=0; Secure"
        );

        let origin = |o: Option<&'static str>| {
            let mut h = HeaderMap::new();
            h.insert(
                header::HOST,
                HeaderValue::from_static("console.example:8080"),
            );
            if let Some(o) = o {
                h.insert(header::ORIGIN, HeaderValue::from_static(o));
            }
            same_origin(&h)
        };
        assert!(origin(None));
        assert!(origin(Some("http://console.example:8080")));
        assert!(!origin(Some("http://evil.example")));
        assert!(!origin(Some("null")));
    }
}
