//! One request: identify, decide, then answer with a page or forward to the origin.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri};
use hyper::body::Incoming;
use lookout_http::{
    block_page, disposition_filename, encode_param, force_safe_search, notice_page,
    safe_search_header, search_term, sniff, warn_page, Notice, PORTAL_PATH, SNIFF_LEN,
};
use lookout_lists::{CategorySet, NormUrl};
use lookout_policy::{Action, Decision, Policy, Reason};
use lookout_store::{now_ms, Event};

use crate::body::{full, read_prefix, Body, Relay};
use crate::page::{Capture, Encoding, PageCapture};
use crate::{portal, tunnel, Proxy, Refusal, Who, LOCAL_HOST};

/// Handles one request from `peer`.
pub(crate) async fn handle(
    proxy: Arc<Proxy>,
    peer: SocketAddr,
    local: SocketAddr,
    req: Request<Incoming>,
) -> Response<Body> {
    proxy.counters.requests.fetch_add(1, Ordering::Relaxed);
    let authorization = req
        .headers()
        .get(header::PROXY_AUTHORIZATION)
        .map(|v| v.as_bytes().to_vec());
    let who = proxy
        .identifier
        .identify(&proxy.policy, peer.ip(), authorization.as_deref())
        .await;

    let is_local = req.method() != Method::CONNECT
        && req
            .uri()
            .host()
            .is_none_or(|h| h.eq_ignore_ascii_case(LOCAL_HOST));
    if is_local {
        let path = req.uri().path().to_owned();
        if path == PORTAL_PATH
            || path.starts_with("/portal/")
            || path == "/proxy.pac"
            || path == "/wpad.dat"
        {
            return portal::page(&proxy, peer, local, &path, req).await;
        }
        return crate::tunnel::local_page(&proxy, who.ok(), req).await;
    }
    let who = match who {
        Ok(who) => who,
        Err(r @ (Refusal::NeedPortal(group) | Refusal::NeedBriefing(group))) => {
            let host = match req.method() {
                &Method::CONNECT => req.uri().authority().map(|a| a.host()),
                _ => req.uri().host(),
            }
            .unwrap_or("");
            match portal::before_sign_in(&proxy, peer.ip(), group, host) {
                Some(who) => who,
                None => return portal::send_to_portal(&req, r),
            }
        }
        Err(refusal) => return refused(refusal),
    };
    if req.method() == Method::CONNECT {
        return tunnel::connect(proxy, who, req).await;
    }
    if req.uri().scheme_str() != Some("http") {
        return page(
            StatusCode::BAD_REQUEST,
            "Not an http:// address",
            &["This proxy forwards http:// requests and tunnels https:// with CONNECT. Configure it as the proxy for both."],
        );
    }
    forward(proxy, who, req).await
}

/// The response to a client that cannot be identified.
fn refused(refusal: Refusal) -> Response<Body> {
    match refusal {
        Refusal::NotServed => page(
            StatusCode::FORBIDDEN,
            "Not allowed",
            &["This proxy serves only the networks it is configured for."],
        ),
        Refusal::NeedPortal(_) | Refusal::NeedBriefing(_) => portal::send_to_portal_page(refusal),
        Refusal::NeedLogin | Refusal::BadCredentials => {
            let mut r = page(
                StatusCode::PROXY_AUTHENTICATION_REQUIRED,
                "Please sign in",
                &[if refusal == Refusal::BadCredentials {
                    "The user name or password was not accepted, or the account is disabled."
                } else {
                    "Sign in with your college user name and password to use the internet here."
                }],
            );
            r.headers_mut().insert(
                header::PROXY_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"Lookout\", charset=\"UTF-8\""),
            );
            r
        }
    }
}

/// A plain notice page.
pub(crate) fn page(status: StatusCode, title: &str, paragraphs: &[&str]) -> Response<Body> {
    html(status, notice_page(title, paragraphs))
}

pub(crate) fn html(status: StatusCode, body: String) -> Response<Body> {
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn category_titles(set: CategorySet) -> String {
    set.iter()
        .map(|c| c.info().title)
        .collect::<Vec<_>>()
        .join(", ")
}

/// What a decision is about, for the log and the pages.
pub(crate) struct Subject<'a> {
    pub(crate) method: &'a str,
    pub(crate) url: &'a str,
    pub(crate) host: &'a str,
    pub(crate) search: Option<String>,
}

/// An event for `decision`.
pub(crate) fn event(
    policy: &Policy,
    who: &Who,
    subject: &Subject<'_>,
    action: &'static str,
    decision: &Decision,
    status: Option<StatusCode>,
) -> Event {
    Event {
        at_ms: now_ms(),
        // Only events that show a page get a reference (see `refuse_page`).
        reference: String::new(),
        service: "proxy",
        client_ip: lookout_store::ip_text(who.ip),
        username: who.user.clone(),
        group: policy.group(who.group).name().into(),
        method: lookout_store::method_text(subject.method),
        url: subject.url.to_owned(),
        host: subject.host.to_owned(),
        search_term: subject.search.clone(),
        categories: decision.categories.slugs().into(),
        action: action.into(),
        rule: decision.reason.rule().into(),
        reason: decision.reason.text().into(),
        status: status.map(|s| s.as_u16()),
        bytes: 0,
    }
}

impl Proxy {
    /// Logs an event if the log keeps this kind; shows it to the decision observers
    /// (monitoring) either way.
    pub(crate) fn record(&self, event: Event) {
        if let Some(log) = &self.log {
            if self.settings.log_allowed || event.action != "allow" {
                log.record(event);
            } else {
                log.pass(&event);
            }
        }
    }

    fn link(&self, route: &str, reference: &str, url: &str) -> String {
        let base = if self.settings.console_url.is_empty() {
            format!("http://{LOCAL_HOST}")
        } else {
            self.settings.console_url.trim_end_matches('/').to_owned()
        };
        format!(
            "{base}/{route}?ref={}&url={}",
            encode_param(reference),
            encode_param(url)
        )
    }

    /// Logs and renders the block page of a request whose destination `refused` it.
    pub(crate) fn refuse_destination(
        &self,
        who: &Who,
        subject: &Subject<'_>,
        decision: &Decision,
        refused: &lookout_policy::Refused,
    ) -> Response<Body> {
        let d = Decision {
            action: Action::Block,
            categories: decision.categories,
            reason: Reason::Destination(refused.to_string()),
        };
        self.refuse_page(who, subject, &d)
    }

    /// Logs a blocked or warned request and renders its page.
    pub(crate) fn refuse_page(
        &self,
        who: &Who,
        subject: &Subject<'_>,
        decision: &Decision,
    ) -> Response<Body> {
        let status = StatusCode::FORBIDDEN;
        let ev = event(
            &self.policy,
            who,
            subject,
            decision.action.as_str(),
            decision,
            Some(status),
        );
        let mut ev = ev;
        ev.reference = lookout_store::new_reference();
        let reference = ev.reference.clone();
        self.record(ev);
        let categories = match &decision.reason {
            Reason::Illegal { category, .. } | Reason::Category { category, .. } => {
                category.info().title.to_owned()
            }
            _ => category_titles(decision.categories),
        };
        let reason = decision.reason.to_string();
        let notice = Notice {
            url: subject.url,
            categories: &categories,
            reason: &reason,
            reference: &reference,
            group: self.policy.group(who.group).name(),
            user: who.user.as_deref(),
            report_url: &self.link("report", &reference, subject.url),
            review_url: &self.link("review", &reference, subject.url),
        };
        let body = match decision.action {
            Action::Warn => {
                let continue_url = format!(
                    "http://{LOCAL_HOST}/continue?ref={}&url={}",
                    encode_param(&reference),
                    encode_param(subject.url)
                );
                warn_page(&notice, &continue_url)
            }
            _ => block_page(&notice),
        };
        html(status, body)
    }
}

/// Headers that belong to one connection, never forwarded (RFC 9110 §7.6.1), plus the
/// proxy's own credentials. One pass over the names present finds them: most messages carry
/// none but `Connection`, and a removal is a hash and a probe of the map, which trying each of
/// the nine names cost every request and response (~2,100 instructions a call, callgrind).
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let mut drop: Vec<HeaderName> = headers
        .keys()
        .filter(|name| is_hop_by_hop(name))
        .cloned()
        .collect();
    if drop.contains(&header::CONNECTION) {
        drop.extend(
            headers
                .get_all(header::CONNECTION)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok()),
        );
    }
    for name in drop {
        headers.remove(name);
    }
}

fn is_hop_by_hop(name: &HeaderName) -> bool {
    [
        header::CONNECTION,
        header::PROXY_AUTHORIZATION,
        header::PROXY_AUTHENTICATE,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
    ]
    .contains(name)
        || matches!(name.as_str(), "proxy-connection" | "keep-alive")
}

/// `uri.to_string()` in a string sized once for it (scheme, `://`, authority, path, `?` and
/// query, as `Uri`'s `Display` writes them), where `to_string` grows one from nothing, piece
/// by piece: ~1,200 instructions a request of `String`'s writes (callgrind, the proxy).
fn uri_text(uri: &Uri) -> String {
    use std::fmt::Write;
    let len = uri.scheme_str().map_or(0, |s| s.len() + 3)
        + uri.authority().map_or(0, |a| a.as_str().len())
        + uri.path().len()
        + uri.query().map_or(0, |q| q.len() + 1);
    let mut text = String::with_capacity(len);
    // Writing to a `String` cannot fail.
    let _ = write!(text, "{uri}");
    text
}

/// Decides and forwards an absolute-form `http://` or (inspected) `https://` request.
pub(crate) async fn forward(proxy: Arc<Proxy>, who: Who, req: Request<Incoming>) -> Response<Body> {
    let (mut parts, body) = req.into_parts();
    let raw_url = uri_text(&parts.uri);
    let url = NormUrl::parse(&raw_url);
    let decision = proxy.decide(who.group, &url);
    let host = url.as_ref().map_or("", |u| u.host()).to_owned();
    let path = parts.uri.path().to_owned();
    let query = parts.uri.query().map(str::to_owned);
    let method = parts.method.clone();
    let subject = Subject {
        method: method.as_str(),
        url: &raw_url,
        host: &host,
        search: search_term(&host, &path, query.as_deref()),
    };
    let mut action = decision.action;
    if action == Action::Warn && proxy.continued(&who, &host) {
        action = Action::Allow;
    }
    if action != Action::Allow {
        return proxy.refuse_page(&who, &subject, &decision);
    }
    let logged_action = match decision.action {
        Action::Warn => "continue",
        _ => "allow",
    };

    // The event of a request that went (or tried to go) to the origin.
    let allowed_event = |status: Option<StatusCode>| {
        event(
            &proxy.policy,
            &who,
            &subject,
            logged_action,
            &decision,
            status,
        )
    };
    let group = proxy.policy.group(who.group);
    if group.safe_search {
        if let Some(q) = force_safe_search(&host, &path, query.as_deref()) {
            let mut p = parts.uri.clone().into_parts();
            p.path_and_query = format!("{path}?{q}").parse().ok();
            if let Ok(uri) = Uri::from_parts(p) {
                parts.uri = uri;
            }
        }
    }
    strip_hop_by_hop(&mut parts.headers);
    if let Some(authority) = parts.uri.authority() {
        // The origin sees the host that was decided on, whatever `Host` the client sent.
        if let Ok(v) = HeaderValue::from_str(authority.as_str()) {
            parts.headers.insert(header::HOST, v);
        }
    }
    if let Some((name, value)) = safe_search_header(&host, group.youtube_restricted) {
        parts.headers.insert(name, HeaderValue::from_static(value));
    }
    // Pages are copied for the monitoring: ask for gzip (which Lookout can read) rather than
    // brotli or zstd (which it cannot), or no compression if the client did not offer gzip.
    let wants_page = proxy.settings.page_sink.is_some() && method == Method::GET;
    if wants_page {
        let gzip = parts
            .headers
            .get(header::ACCEPT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().contains("gzip"));
        if gzip {
            parts
                .headers
                .insert(header::ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
        } else {
            parts.headers.remove(header::ACCEPT_ENCODING);
        }
    }
    let upstream = Request::from_parts(parts, body);

    let result = tokio::time::timeout(
        proxy.settings.upstream_timeout,
        proxy.client(who.group).request(upstream),
    )
    .await;
    if let Ok(Err(e)) = &result {
        if let Some(refused) = crate::connect::refusal(e) {
            return proxy.refuse_destination(&who, &subject, &decision, refused);
        }
    }
    let failure = match result {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(e)) => Err((
            StatusCode::BAD_GATEWAY,
            "The website could not be reached",
            format!("{host}: {}", describe_client_error(&e)),
        )),
        Err(_) => Err((
            StatusCode::GATEWAY_TIMEOUT,
            "The website did not answer in time",
            format!(
                "{host} did not answer within {} seconds.",
                proxy.settings.upstream_timeout.as_secs()
            ),
        )),
    };
    let response = match failure {
        Ok(r) => r,
        Err((status, title, detail)) => {
            proxy.record(allowed_event(Some(status)));
            return page(status, title, &[&detail]);
        }
    };
    let (mut rparts, mut rbody) = response.into_parts();
    let url_file = url
        .as_ref()
        .ok()
        .and_then(|u| u.file_name())
        .map(str::to_owned);
    let disposition = rparts
        .headers
        .get(header::CONTENT_DISPOSITION)
        .and_then(|v| disposition_filename(v.as_bytes()));

    let mut prefix_data = Vec::new();
    let mut prefix = None;
    if group.blocks_downloads() {
        if let Some(name) = &disposition {
            if let Some(ext) = group.forbidden_extension(name) {
                return download_blocked(&proxy, &who, &subject, &decision, ext.to_owned());
            }
        }
        if needs_sniffing(&method, rparts.status, &rparts.headers) {
            match read_prefix(&mut rbody, SNIFF_LEN, proxy.settings.upstream_timeout).await {
                Ok(p) => {
                    prefix_data.clone_from(&p.data);
                    prefix = Some(p);
                }
                Err(e) => {
                    return page(
                        StatusCode::BAD_GATEWAY,
                        "The website's answer could not be read",
                        &[&format!("{host}: {e}")],
                    )
                }
            }
            let name = disposition.as_deref().or(url_file.as_deref());
            if let Some(kind) = sniff(&prefix_data, name) {
                if group
                    .forbidden_extension(&format!("x.{}", kind.extension()))
                    .is_some()
                {
                    let mut d = decision.clone();
                    d.reason = Reason::Download {
                        extension: kind.extension().to_owned(),
                    };
                    d.action = Action::Block;
                    return proxy.refuse_page(&who, &subject, &d);
                }
            }
        }
    }
    strip_hop_by_hop(&mut rparts.headers);
    // The event is only built when it will be kept (logged when the body ends, with its
    // bytes) or seen (monitoring scans allowed requests' search terms even when the log does
    // not keep them).
    let keep = proxy.settings.log_allowed || logged_action != "allow";
    let log = match &proxy.log {
        Some(l) if keep => Some((allowed_event(Some(rparts.status)), l.clone())),
        Some(l) if l.watches_unlogged() => {
            l.pass(&allowed_event(Some(rparts.status)));
            None
        }
        _ => None,
    };
    let capture = if wants_page {
        page_capture(&proxy, &who, &raw_url, rparts.status, &rparts.headers)
    } else {
        None
    };
    let prefix = prefix.unwrap_or_else(crate::body::Prefix::empty);
    let body = http_body_util::BodyExt::boxed(Relay::new(prefix, rbody, log, capture));
    Response::from_parts(rparts, body)
}

/// A copy of a successful HTML or plain-text response, if it is in an encoding Lookout reads.
fn page_capture(
    proxy: &Proxy,
    who: &Who,
    url: &str,
    status: StatusCode,
    headers: &HeaderMap,
) -> Option<Capture> {
    let sink = proxy.settings.page_sink.clone()?;
    if status != StatusCode::OK {
        return None;
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let html =
        content_type.starts_with("text/html") || content_type.starts_with("application/xhtml");
    if !html && !content_type.starts_with("text/plain") {
        return None;
    }
    let encoding = match headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase())
        .as_deref()
    {
        None | Some("") | Some("identity") => Encoding::Identity,
        Some("gzip") | Some("x-gzip") => Encoding::Gzip,
        Some(_) => return None,
    };
    Some(Capture {
        buf: Vec::new(),
        limit: proxy.settings.page_bytes,
        encoding,
        html,
        meta: PageCapture {
            at_ms: now_ms(),
            url: url.to_owned(),
            username: who.user.clone(),
            client_ip: lookout_store::ip_text(who.ip),
            group: proxy.policy.group(who.group).name().to_owned(),
            title: String::new(),
            text: String::new(),
        },
        sink,
    })
}

fn download_blocked(
    proxy: &Proxy,
    who: &Who,
    subject: &Subject<'_>,
    decision: &Decision,
    extension: String,
) -> Response<Body> {
    let d = Decision {
        action: Action::Block,
        categories: decision.categories,
        reason: Reason::Download { extension },
    };
    proxy.refuse_page(who, subject, &d)
}

/// Whether a response's first bytes must be seen before it is passed on. Responses without a
/// body, and event streams and JSON (long-lived, never saved as programs), are not held.
fn needs_sniffing(method: &Method, status: StatusCode, headers: &HeaderMap) -> bool {
    if method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return false;
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let attachment = headers.contains_key(header::CONTENT_DISPOSITION);
    attachment
        || !(content_type.starts_with("text/event-stream")
            || content_type.starts_with("application/json"))
}

fn describe_client_error(e: &hyper_util::client::legacy::Error) -> String {
    use std::error::Error;
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `uri_text` writes what `to_string` does, and sizes its string to fit.
    #[test]
    fn uri_text_is_to_string() {
        for uri in [
            "http://a.example/",
            "http://a.example",
            "https://user@a.example:8443/p/a/t/h?q=1&r=%20#frag",
            "http://[::1]:8080/x?y",
            "http://a.example?only=query",
            "/relative/path?q",
            "*",
        ] {
            let uri: Uri = uri.parse().unwrap();
            let text = uri_text(&uri);
            assert_eq!(text, uri.to_string());
            assert!(
                text.capacity() <= text.len() + 1,
                "{uri}: {}",
                text.capacity()
            );
        }
    }

    /// Header lines, name and value.
    type Lines = &'static [(&'static str, &'static str)];

    /// Hop-by-hop headers go, with every header `Connection` names, whatever their case or how
    /// often they appear; every other header stays with all its values, in their order
    /// (`HeaderMap` may reorder distinct names when it removes one, so those are compared
    /// sorted).
    #[test]
    fn hop_by_hop_headers_are_stripped() {
        let rows: &[(Lines, Lines)] = &[
            (
                &[("host", "a.example"), ("accept", "*/*")],
                &[("host", "a.example"), ("accept", "*/*")],
            ),
            (&[], &[]),
            (
                &[
                    ("connection", "keep-alive"),
                    ("keep-alive", "timeout=5"),
                    ("content-type", "text/html"),
                ],
                &[("content-type", "text/html")],
            ),
            (
                &[
                    ("connection", "X-Foo, close"),
                    ("x-foo", "1"),
                    ("x-bar", "2"),
                ],
                &[("x-bar", "2")],
            ),
            (
                &[
                    ("connection", "a"),
                    ("connection", ",  B ,, bad name, "),
                    ("a", "1"),
                    ("b", "2"),
                    ("c", "3"),
                    ("bad", "4"),
                ],
                &[("c", "3"), ("bad", "4")],
            ),
            (
                &[
                    ("proxy-authorization", "Basic eDp5"),
                    ("proxy-authenticate", "Basic"),
                    ("te", "trailers"),
                    ("trailer", "x-sum"),
                    ("transfer-encoding", "chunked"),
                    ("upgrade", "websocket"),
                    ("proxy-connection", "keep-alive"),
                    ("keep-alive", "timeout=5"),
                    ("keep-alive", "max=100"),
                    ("x-sum", "stays"),
                    ("cookie", "a=1"),
                    ("cookie", "b=2"),
                ],
                &[("x-sum", "stays"), ("cookie", "a=1"), ("cookie", "b=2")],
            ),
        ];
        for (given, kept) in rows {
            let mut headers = HeaderMap::new();
            for &(name, value) in *given {
                headers.append(
                    HeaderName::from_bytes(name.as_bytes()).unwrap(),
                    HeaderValue::from_str(value).unwrap(),
                );
            }
            strip_hop_by_hop(&mut headers);
            let mut left: Vec<(&str, &str)> = headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.to_str().unwrap()))
                .collect();
            left.sort_by_key(|&(n, _)| n);
            let mut kept = kept.to_vec();
            kept.sort_by_key(|&(n, _)| n);
            assert_eq!(left, kept, "{given:?}");
        }
    }
}
