//! The portal: browser sign-in for networks with `login = "portal"`. A client that has not
//! signed in is sent to `http://lookout.invalid/portal` (plain HTTP) or refused with a page
//! saying where to go (HTTPS); after the password, the person reads their group's current
//! e-safety briefing and accepts the acceptable-use terms (stored, audited), and the address
//! is signed in for the configured hours. Sites on the portal's allow list are reachable
//! before all that, still filtered. Also the proxy auto-configuration file.
//!
//! Every form carries a one-time ticket issued to the client's address, so a page elsewhere
//! cannot sign a device in (or out) by posting to the portal.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use lookout_http::{
    briefing_page, encode_param, field, form_fields, notice_page, pac_file, sign_in_page,
    signed_in_page, BriefingView, PORTAL_PATH,
};
use lookout_policy::GroupId;
use lookout_store::{now_ms, AuditEntry, PasswordCheck, Store};

use crate::body::{full, Body};
use crate::handler::html;
use crate::{Proxy, Refusal, Who, LOCAL_HOST};

/// How long a form stays usable.
const TICKET_FOR: Duration = Duration::from_secs(30 * 60);
/// Most outstanding tickets (older ones are swept, then all when still full).
const TICKETS_MAX: usize = 100_000;
/// Sign-in attempts an address may make per window.
const ATTEMPTS: u32 = 20;
const ATTEMPT_WINDOW: Duration = Duration::from_secs(10 * 60);
/// Largest form body read.
const FORM_MAX: usize = 16 * 1024;

/// The portal's settings.
#[derive(Debug, Clone, Default)]
pub struct PortalSettings {
    /// Domains (with their subdomains) reachable before sign-in.
    pub allow: Vec<String>,
    /// How long a sign-in at an address lasts.
    pub hours: u32,
    /// Hosts the PAC file sends direct (the console: the proxy never reaches Lookout itself).
    pub pac_direct: Vec<String>,
    /// The proxy port the PAC file names, when the file is also served on another port
    /// (`[portal] listen`, port 80 for WPAD); `None`: the port the device reached.
    pub pac_port: Option<u16>,
    /// Sign-in through the organisation's OpenID Connect provider, run by the console.
    pub provider: Option<PortalProvider>,
}

/// The portal's way to the organisation's sign-in provider: a link to the console (which runs
/// the provider's sign-in over HTTPS), and the hand-offs the console leaves for the portal.
#[derive(Debug, Clone)]
pub struct PortalProvider {
    /// "Sign in with <label>".
    pub label: String,
    /// The console's `/portal/oidc` address.
    pub start: String,
    pub handoff: std::sync::Arc<lookout_directory::oidc::Handoff>,
}

/// What a ticket lets its address do next.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    /// Post the sign-in form (or sign out).
    SignIn,
    /// Accept this briefing version as this user.
    Accept { user: String, briefing: i64 },
    /// Come back from the sign-in provider with the console's hand-off.
    Provider,
}

#[derive(Debug)]
struct Ticket {
    ip: IpAddr,
    step: Step,
    issued: Instant,
}

/// Tickets and attempt counts.
#[derive(Debug, Default)]
pub(crate) struct Portal {
    tickets: Mutex<HashMap<String, Ticket>>,
    attempts: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl Portal {
    fn issue(&self, ip: IpAddr, step: Step) -> String {
        let token = format!("{:032x}", rand::random::<u128>());
        let mut m = self.tickets.lock().unwrap_or_else(|e| e.into_inner());
        if m.len() >= TICKETS_MAX {
            m.retain(|_, t| t.issued.elapsed() < TICKET_FOR);
            if m.len() >= TICKETS_MAX {
                m.clear();
            }
        }
        m.insert(
            token.clone(),
            Ticket {
                ip,
                step,
                issued: Instant::now(),
            },
        );
        token
    }

    /// Takes the ticket `token` if it was issued to `ip` and is still fresh. Shown by another
    /// address it stays, for its own device (a stranger who saw a link cannot spoil it).
    fn take(&self, token: &str, ip: IpAddr) -> Option<Step> {
        let mut m = self.tickets.lock().unwrap_or_else(|e| e.into_inner());
        if m.get(token)?.ip != ip {
            return None;
        }
        let t = m.remove(token)?;
        (t.issued.elapsed() < TICKET_FOR).then_some(t.step)
    }

    /// Counts an attempt from `ip`; false when it has made too many lately.
    fn attempt(&self, ip: IpAddr) -> bool {
        let mut m = self.attempts.lock().unwrap_or_else(|e| e.into_inner());
        if m.len() >= TICKETS_MAX {
            m.retain(|_, (at, _)| at.elapsed() < ATTEMPT_WINDOW);
        }
        let entry = m.entry(ip).or_insert((Instant::now(), 0));
        if entry.0.elapsed() >= ATTEMPT_WINDOW {
            *entry = (Instant::now(), 0);
        }
        entry.1 += 1;
        entry.1 <= ATTEMPTS
    }
}

/// Whether `host` is on the allow list (the domain itself or a subdomain).
pub(crate) fn allowed_before_sign_in(settings: &PortalSettings, host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    settings.allow.iter().any(|d| {
        host == *d
            || host
                .strip_suffix(d.as_str())
                .is_some_and(|rest| rest.ends_with('.'))
    })
}

/// A portal network's client before sign-in: the group's anonymous `Who` for a site on the
/// allow list, else `None`.
pub(crate) fn before_sign_in(proxy: &Proxy, ip: IpAddr, group: GroupId, host: &str) -> Option<Who> {
    allowed_before_sign_in(&proxy.settings.portal, host).then_some(Who {
        ip,
        user: None,
        group,
    })
}

/// Where an unsigned client's request goes: plain-HTTP page loads to the portal (with the
/// address to return to); anything else a page saying where to sign in.
pub(crate) fn send_to_portal(req: &Request<Incoming>, refusal: Refusal) -> Response<Body> {
    let portal = format!("http://{LOCAL_HOST}{PORTAL_PATH}");
    if matches!(*req.method(), Method::GET | Method::HEAD) && req.uri().scheme_str() == Some("http")
    {
        let location = format!("{portal}?to={}", encode_param(&req.uri().to_string()));
        let mut r = Response::new(full(""));
        *r.status_mut() = StatusCode::FOUND;
        if let Ok(v) = HeaderValue::from_str(&location) {
            r.headers_mut().insert(header::LOCATION, v);
        }
        r.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        return r;
    }
    send_to_portal_page(refusal)
}

/// The page for a portal network's client that must sign in (or accept the briefing) first.
pub(crate) fn send_to_portal_page(refusal: Refusal) -> Response<Body> {
    let portal = format!("http://{LOCAL_HOST}{PORTAL_PATH}");
    let what = match refusal {
        Refusal::NeedBriefing(_) => "Please read the e-safety briefing and accept the acceptable-use terms before using the internet here.",
        _ => "Please sign in before using the internet here.",
    };
    // 511: the status RFC 6585 gives captive portals.
    html(
        StatusCode::NETWORK_AUTHENTICATION_REQUIRED,
        notice_page(
            "Sign in to use the internet",
            &[
                what,
                &format!("Open {portal} (or any http:// page) in your browser."),
            ],
        ),
    )
}

/// The portal's own pages: `GET /portal`, `POST /portal/sign-in`, `/portal/accept`,
/// `/portal/sign-out`, `GET /portal/provider` (back from the sign-in provider); and
/// `/proxy.pac`, `/wpad.dat`.
pub(crate) async fn page(
    proxy: &Proxy,
    peer: SocketAddr,
    local: SocketAddr,
    path: &str,
    req: Request<Incoming>,
) -> Response<Body> {
    if path == "/proxy.pac" || path == "/wpad.dat" {
        let port = proxy.settings.portal.pac_port.unwrap_or(local.port());
        let mut r = Response::new(full(pac_file(
            &SocketAddr::new(local.ip(), port).to_string(),
            &proxy.settings.portal.pac_direct,
        )));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-ns-proxy-autoconfig"),
        );
        return r;
    }
    let Some(store) = proxy.identifier.store() else {
        return html(
            StatusCode::NOT_FOUND,
            notice_page("No portal here", &["This filter has no user accounts."]),
        );
    };
    let ip = peer.ip();
    let method = req.method().clone();
    let query = req.uri().query().unwrap_or("").to_owned();
    let to_from_query = form_fields(query.as_bytes())
        .into_iter()
        .find(|(k, _)| k == "to")
        .map(|(_, v)| v)
        .unwrap_or_default();
    match (method, path) {
        (Method::GET, PORTAL_PATH) => {
            let to = safe_return(&to_from_query);
            match store.user_at_address(ip, now_ms()).await {
                Ok(Some(user)) => match store.briefing_due(&user.username, &user.group).await {
                    Ok(Some(b)) => briefing(proxy, ip, &user.username, &b, &to, None),
                    Ok(None) => signed_in(proxy, ip, &user.username, &to),
                    Err(e) => unavailable(&e),
                },
                Ok(None) => sign_in_form(proxy, ip, &to, None, StatusCode::OK),
                Err(e) => unavailable(&e),
            }
        }
        (Method::GET, "/portal/provider") => {
            let query = form_fields(query.as_bytes());
            let to = safe_return(field(&query, "to").unwrap_or(""));
            let ticket = field(&query, "ticket").and_then(|t| proxy.portal.take(t, ip));
            let provider = proxy.settings.portal.provider.as_ref();
            let user = match (ticket, provider) {
                (Some(Step::Provider), Some(p)) => {
                    field(&query, "grant").and_then(|g| p.handoff.redeem(g))
                }
                _ => None,
            };
            let Some(name) = user else {
                return sign_in_form(
                    proxy,
                    ip,
                    &to,
                    Some("This sign-in was started on another device, or took too long. Please try again."),
                    StatusCode::BAD_REQUEST,
                );
            };
            match store.user(&name).await {
                Ok(Some(user)) if !user.disabled => {
                    signed_in_as(proxy, store, ip, &user, &to, "through the sign-in provider").await
                }
                Ok(_) => sign_in_form(
                    proxy,
                    ip,
                    &to,
                    Some("This account cannot sign in here. Ask IT."),
                    StatusCode::FORBIDDEN,
                ),
                Err(e) => unavailable(&e),
            }
        }
        (Method::POST, _) => {
            let fields = match read_form(req).await {
                Some(f) => f,
                None => {
                    return html(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        notice_page("Form too large", &["The form could not be read."]),
                    )
                }
            };
            let to = safe_return(field(&fields, "to").unwrap_or(""));
            let step = field(&fields, "token").and_then(|t| proxy.portal.take(t, ip));
            match (path, step) {
                (_, None) => sign_in_form(
                    proxy,
                    ip,
                    &to,
                    Some(
                        "This form has expired or was not opened on this device. Please try again.",
                    ),
                    StatusCode::BAD_REQUEST,
                ),
                ("/portal/sign-in", Some(Step::SignIn)) => {
                    sign_in(proxy, store, ip, &fields, &to).await
                }
                ("/portal/accept", Some(Step::Accept { user, briefing: id })) => {
                    accept(proxy, store, ip, &user, id, &fields, &to).await
                }
                ("/portal/sign-out", Some(_)) => {
                    if let Err(e) = store.sign_out_address(ip).await {
                        return unavailable(&e);
                    }
                    proxy.identifier.forget_address(ip);
                    sign_in_form(proxy, ip, "", Some("You are signed out."), StatusCode::OK)
                }
                _ => sign_in_form(
                    proxy,
                    ip,
                    &to,
                    Some("This form has expired. Please try again."),
                    StatusCode::BAD_REQUEST,
                ),
            }
        }
        _ => html(
            StatusCode::NOT_FOUND,
            notice_page("Not found", &["There is no such page on the filter."]),
        ),
    }
}

async fn sign_in(
    proxy: &Proxy,
    store: &Store,
    ip: IpAddr,
    fields: &[(String, String)],
    to: &str,
) -> Response<Body> {
    let username = field(fields, "username").unwrap_or("").trim();
    let password = field(fields, "password").unwrap_or("");
    if username.is_empty() || password.is_empty() {
        return sign_in_form(
            proxy,
            ip,
            to,
            Some("Enter your user name and your password."),
            StatusCode::BAD_REQUEST,
        );
    }
    if !proxy.portal.attempt(ip) {
        return sign_in_form(
            proxy,
            ip,
            to,
            Some("Too many attempts from this device. Wait ten minutes and try again."),
            StatusCode::TOO_MANY_REQUESTS,
        );
    }
    let audit = |actor: &str, action: &str| AuditEntry {
        actor: actor.to_owned(),
        action: action.to_owned(),
        target: format!("ip:{ip}"),
        detail: String::new(),
        client_ip: lookout_store::ip_text(ip),
    };
    let user = match store.check_sign_in(username, password).await {
        Ok(PasswordCheck::Ok(account)) => account.user,
        Ok(PasswordCheck::Locked(_)) => {
            let _ = store.audit(&audit(username, "portal.sign-in.locked")).await;
            return sign_in_form(proxy, ip, to, Some("This account is locked after too many failed attempts. Try again in 15 minutes, or ask IT."), StatusCode::FORBIDDEN);
        }
        Ok(PasswordCheck::Refused) => {
            match proxy.identifier.directory_sign_in(username, password, ip).await {
                Ok(Some(user)) => user,
                Ok(None) => {
                    let _ = store.audit(&audit(username, "portal.sign-in.failed")).await;
                    return sign_in_form(
                        proxy,
                        ip,
                        to,
                        Some("The user name or password was not accepted."),
                        StatusCode::FORBIDDEN,
                    );
                }
                Err(_) => {
                    return sign_in_form(
                        proxy,
                        ip,
                        to,
                        Some("The college's sign-in directory cannot be reached just now. Try again in a minute; if it goes on, tell IT."),
                        StatusCode::SERVICE_UNAVAILABLE,
                    )
                }
            }
        }
        Err(e) => return unavailable(&e),
    };
    let _ = store.sign_in_succeeded(&user.username).await;
    signed_in_as(proxy, store, ip, &user, to, "").await
}

/// Someone signed in at the portal (by password, or through the sign-in provider: `how`):
/// on record, then the briefing when one is due, else the address is signed in.
async fn signed_in_as(
    proxy: &Proxy,
    store: &Store,
    ip: IpAddr,
    user: &lookout_store::User,
    to: &str,
    how: &str,
) -> Response<Body> {
    let entry = AuditEntry {
        actor: user.username.clone(),
        action: "portal.sign-in.ok".to_owned(),
        target: format!("ip:{ip}"),
        detail: how.to_owned(),
        client_ip: lookout_store::ip_text(ip),
    };
    if let Err(e) = store.audit(&entry).await {
        return unavailable(&e);
    }
    match store.briefing_due(&user.username, &user.group).await {
        Ok(Some(b)) => briefing(proxy, ip, &user.username, &b, to, None),
        Ok(None) => {
            let until = now_ms() + i64::from(proxy.settings.portal.hours) * 3_600_000;
            if let Err(e) = store.sign_in_address(ip, &user.username, until).await {
                return unavailable(&e);
            }
            proxy.identifier.forget_address(ip);
            go_on(proxy, ip, &user.username, to)
        }
        Err(e) => unavailable(&e),
    }
}

async fn accept(
    proxy: &Proxy,
    store: &Store,
    ip: IpAddr,
    user: &str,
    id: i64,
    fields: &[(String, String)],
    to: &str,
) -> Response<Body> {
    let Ok(Some(b)) = store.briefing(id).await else {
        return sign_in_form(
            proxy,
            ip,
            to,
            Some("The briefing has changed. Please sign in again."),
            StatusCode::CONFLICT,
        );
    };
    if field(fields, "accept") != Some("yes") || field(fields, "version") != Some(&id.to_string()) {
        return briefing(
            proxy,
            ip,
            user,
            &b,
            to,
            Some("Tick the box to say you have read the briefing and agree to the terms."),
        );
    }
    let until = now_ms() + i64::from(proxy.settings.portal.hours) * 3_600_000;
    if let Err(e) = store.accept_briefing(user, id, ip, until).await {
        return unavailable(&e);
    }
    proxy.identifier.forget_address(ip);
    proxy.identifier.forget_briefing(user);
    go_on(proxy, ip, user, to)
}

/// Signed in: on to where they were going, or the signed-in page.
fn go_on(proxy: &Proxy, ip: IpAddr, user: &str, to: &str) -> Response<Body> {
    if to.is_empty() {
        return signed_in(proxy, ip, user, "");
    }
    let mut r = Response::new(full(""));
    *r.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

fn sign_in_form(
    proxy: &Proxy,
    ip: IpAddr,
    to: &str,
    problem: Option<&str>,
    status: StatusCode,
) -> Response<Body> {
    let token = proxy.portal.issue(ip, Step::SignIn);
    let provider = proxy.settings.portal.provider.as_ref().map(|p| {
        let ticket = proxy.portal.issue(ip, Step::Provider);
        let href = format!("{}?ticket={ticket}&to={}", p.start, encode_param(to));
        (p.label.as_str(), href)
    });
    html(
        status,
        sign_in_page(
            &token,
            to,
            problem,
            &proxy.settings.portal.allow,
            provider.as_ref().map(|(l, h)| (*l, h.as_str())),
        ),
    )
}

fn briefing(
    proxy: &Proxy,
    ip: IpAddr,
    user: &str,
    b: &lookout_store::Briefing,
    to: &str,
    problem: Option<&str>,
) -> Response<Body> {
    let token = proxy.portal.issue(
        ip,
        Step::Accept {
            user: user.to_owned(),
            briefing: b.id,
        },
    );
    let view = BriefingView {
        title: &b.title,
        briefing: &b.briefing,
        terms: &b.terms,
        version: b.id,
        user,
    };
    let status = if problem.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    html(status, briefing_page(&view, &token, to, problem))
}

fn signed_in(proxy: &Proxy, ip: IpAddr, user: &str, to: &str) -> Response<Body> {
    let token = proxy.portal.issue(ip, Step::SignIn);
    let hours = proxy.settings.portal.hours;
    let until = format!(
        "This lasts {hours} hour{} from when you signed in, or until you sign out.",
        if hours == 1 { "" } else { "s" }
    );
    html(StatusCode::OK, signed_in_page(user, &until, to, &token))
}

fn unavailable(e: &dyn std::fmt::Display) -> Response<Body> {
    html(
        StatusCode::SERVICE_UNAVAILABLE,
        notice_page(
            "Sign-in is unavailable",
            &[
                "The filter cannot reach its database just now. Please try again in a minute, or tell IT.",
                &format!("Detail: {e}"),
            ],
        ),
    )
}

/// Where to send someone back to: an http(s) address, else nowhere (no `javascript:` or
/// other schemes from a crafted link).
fn safe_return(to: &str) -> String {
    let lower = to.to_ascii_lowercase();
    if (lower.starts_with("http://") || lower.starts_with("https://"))
        && to.len() <= 4096
        && !to.chars().any(char::is_control)
    {
        to.to_owned()
    } else {
        String::new()
    }
}

async fn read_form(req: Request<Incoming>) -> Option<Vec<(String, String)>> {
    let limited = http_body_util::Limited::new(req.into_body(), FORM_MAX);
    let bytes = limited.collect().await.ok()?.to_bytes();
    Some(form_fields(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_allow_list_matches_domains_and_subdomains_only() {
        let s = PortalSettings {
            allow: vec!["childline.org.uk".into(), "college.test".into()],
            ..PortalSettings::default()
        };
        for (host, ok) in [
            ("childline.org.uk", true),
            ("www.childline.org.uk", true),
            ("CHILDLINE.org.uk.", true),
            ("evilchildline.org.uk", false),
            ("childline.org.uk.evil.test", false),
            ("college.test", true),
            ("a.b.college.test", true),
            ("test", false),
            ("", false),
        ] {
            assert_eq!(allowed_before_sign_in(&s, host), ok, "{host}");
        }
    }

    #[test]
    fn only_web_addresses_are_returned_to() {
        for (to, ok) in [
            ("http://example.test/a?b=c", true),
            ("HTTPS://example.test/", true),
            ("javascript:alert(1)", false),
            ("//evil.test/", false),
            ("http://x.test/\r\nSet-Cookie: a=b", false),
            ("", false),
        ] {
            assert_eq!(!safe_return(to).is_empty(), ok, "{to:?}");
        }
    }

    #[test]
    fn tickets_are_for_one_address_and_one_use() {
        let p = Portal::default();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let t = p.issue(a, Step::SignIn);
        assert_eq!(p.take(&t, b), None, "another address");
        assert_eq!(p.take(&t, a), Some(Step::SignIn), "still its own device's");
        assert_eq!(p.take(&t, a), None, "used once");
        assert_eq!(p.take("made-up", a), None);
        for _ in 0..ATTEMPTS {
            assert!(p.attempt(a));
        }
        assert!(!p.attempt(a), "too many");
        assert!(p.attempt(b), "per address");
    }
}
