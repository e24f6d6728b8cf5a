//! `CONNECT` tunnels (decided on the host, then on the TLS server name) and the proxy's own
//! pages under `http://lookout.invalid/`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use lookout_http::{client_hello_sni, decode_query_value, SniError, MAX_HELLO};
use lookout_lists::{HostKind, NormUrl};
use lookout_policy::{Action, Decision};
use lookout_store::Event;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::body::{full, Body};
use crate::connect::{connect_first, reachable};
use crate::handler::{event, html, page, Subject};
use crate::{Proxy, Who};

/// Decides a `CONNECT` and, if allowed, answers 200 and runs the tunnel in the background.
pub(crate) async fn connect(
    proxy: Arc<Proxy>,
    who: Who,
    mut req: Request<Incoming>,
) -> Response<Body> {
    let Some(authority) = req.uri().authority().cloned() else {
        return page(
            StatusCode::BAD_REQUEST,
            "Bad CONNECT request",
            &["CONNECT needs a host and port, e.g. CONNECT www.example.com:443."],
        );
    };
    let port = authority.port_u16().unwrap_or(443);
    // IPv6 literals keep their brackets, as in a URL.
    let host_raw = authority.host();
    let url = NormUrl::parse(host_raw);
    let decision = proxy.decide(who.group, &url);
    let host = url.as_ref().map_or(host_raw, |u| u.host()).to_owned();
    let target = authority.as_str().to_owned();
    let subject = Subject {
        method: "CONNECT",
        url: &target,
        host: &host,
        search: None,
    };
    if !proxy.settings.connect_ports.contains(&port) {
        let mut ev = event(
            &proxy.policy,
            &who,
            &subject,
            "block",
            &decision,
            Some(StatusCode::FORBIDDEN),
        );
        ev.rule = "port".into();
        ev.reason = format!("tunnels to port {port} are not allowed").into();
        proxy.record(ev);
        return page(
            StatusCode::FORBIDDEN,
            "This port is not allowed",
            &[&format!(
                "Secure connections may only go to port {}; {target} was refused.",
                ports(&proxy.settings.connect_ports)
            )],
        );
    }
    let blocked = match decision.action {
        Action::Block => true,
        Action::Warn => !proxy.continued(&who, &host),
        Action::Allow => false,
    };
    // With inspection the pages can be shown inside TLS, where each request is judged.
    let inspect = proxy.inspects(&who, decision.categories);
    if blocked && !inspect {
        // Browsers do not show this page for HTTPS, but command-line clients and logs do.
        return proxy.refuse_page(&who, &subject, &decision);
    }
    // An invalid target was decided `Block` above.
    let Ok(url) = url else {
        return page(StatusCode::BAD_REQUEST, "Bad CONNECT request", &[]);
    };
    // Where the tunnel would go, checked before it is agreed to: never the gateway itself or
    // the networks behind it (unless opened to the group).
    let s = &proxy.settings;
    let found = tokio::time::timeout(
        s.upstream_timeout,
        reachable(&s.resolver, &s.destinations, who.group, url.host(), port),
    )
    .await;
    let addrs = match found {
        Ok(Ok(addrs)) => addrs,
        Ok(Err(e)) => {
            if let Some(refused) = crate::connect::refusal(&e) {
                return proxy.refuse_destination(&who, &subject, &decision, refused);
            }
            return unreachable(&proxy, &who, &subject, &decision, format!("{host}: {e}"));
        }
        Err(_) => {
            let detail = format!(
                "{host} could not be looked up within {} seconds.",
                proxy.settings.upstream_timeout.as_secs()
            );
            return unreachable(&proxy, &who, &subject, &decision, detail);
        }
    };
    let tasks = proxy.tasks.clone();
    tasks.spawn(async move {
        let Ok(upgraded) = hyper::upgrade::on(&mut req).await else {
            return;
        };
        let client = TokioIo::new(upgraded);
        run_tunnel(proxy, who, client, url, addrs, port, decision, inspect).await;
    });
    Response::new(full(""))
}

/// Logs and answers a tunnel whose host cannot be reached (502).
fn unreachable(
    proxy: &Proxy,
    who: &Who,
    subject: &Subject<'_>,
    decision: &Decision,
    detail: String,
) -> Response<Body> {
    let action = if decision.action == Action::Warn {
        "continue"
    } else {
        "allow"
    };
    let status = StatusCode::BAD_GATEWAY;
    proxy.record(event(
        &proxy.policy,
        who,
        subject,
        action,
        decision,
        Some(status),
    ));
    page(status, "The website could not be reached", &[&detail])
}

fn ports(list: &[u16]) -> String {
    list.iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Logs the tunnel's event when it ends, however it ends.
struct TunnelLog {
    proxy: Arc<Proxy>,
    event: Option<Event>,
    bytes: Arc<AtomicU64>,
}

impl Drop for TunnelLog {
    fn drop(&mut self) {
        if let Some(mut ev) = self.event.take() {
            ev.bytes = self.bytes.load(Ordering::Relaxed);
            self.proxy.record(ev);
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn run_tunnel<S>(
    proxy: Arc<Proxy>,
    who: Who,
    mut client: S,
    url: NormUrl,
    addrs: Vec<SocketAddr>,
    port: u16,
    first: Decision,
    inspect: bool,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let host = url.host().to_owned();
    let target = format!("{host}:{port}");
    let subject = Subject {
        method: "CONNECT",
        url: &target,
        host: &host,
        search: None,
    };
    let refuse = |rule: &'static str, reason: String| {
        let mut ev = event(&proxy.policy, &who, &subject, "block", &first, None);
        ev.rule = rule.into();
        ev.reason = reason.into();
        proxy.record(ev);
    };

    // The ClientHello, within the header timeout.
    let mut hello = Vec::with_capacity(2048);
    let read = async {
        let mut chunk = [0u8; 4096];
        loop {
            match client_hello_sni(&hello) {
                Err(SniError::Incomplete(_)) if hello.len() <= MAX_HELLO + 64 => {}
                done => return done,
            }
            let n = client
                .read(&mut chunk)
                .await
                .map_err(|_| SniError::Incomplete(0))?;
            if n == 0 {
                return Err(SniError::Incomplete(0));
            }
            hello.extend_from_slice(&chunk[..n]);
        }
    };
    let sni = match tokio::time::timeout(proxy.settings.header_timeout, read).await {
        Ok(Ok(sni)) => sni,
        Ok(Err(SniError::Incomplete(_))) | Err(_) => return, // client went away or stalled
        Ok(Err(e)) => {
            return refuse(
                "not-tls",
                format!("the tunnel to {target} did not start with TLS ({e})"),
            );
        }
    };
    let mut decision = first.clone();
    if let Some(name) = &sni {
        if url.host_kind() == HostKind::Domain && *name != host {
            return refuse(
                "sni-mismatch",
                format!("the TLS server name `{name}` does not match the CONNECT host `{host}` (domain fronting)"),
            );
        }
    }
    if inspect {
        let name = sni.unwrap_or_else(|| host.clone());
        let client = crate::inspect::Replay::new(hello, client);
        crate::inspect::serve(proxy.clone(), who.clone(), client, name, port).await;
        return;
    }
    if let Some(name) = &sni {
        if url.host_kind() == HostKind::Ip {
            // Judge the name the client really wants.
            let named = NormUrl::parse(name);
            decision = proxy.decide(who.group, &named);
            if decision.action != Action::Allow
                && !(decision.action == Action::Warn && proxy.continued(&who, name))
            {
                let mut ev = event(
                    &proxy.policy,
                    &who,
                    &subject,
                    decision.action.as_str(),
                    &decision,
                    None,
                );
                ev.host = name.clone();
                proxy.record(ev);
                return;
            }
        }
    }

    let action = if decision.action == Action::Warn {
        "continue"
    } else {
        "allow"
    };
    let bytes = Arc::new(AtomicU64::new(0));
    let mut log = TunnelLog {
        proxy: proxy.clone(),
        event: Some(event(
            &proxy.policy,
            &who,
            &subject,
            action,
            &decision,
            None,
        )),
        bytes: bytes.clone(),
    };
    let mut upstream = match connect_first(&addrs, proxy.settings.upstream_timeout).await {
        Ok(s) => s,
        Err(_) => {
            if let Some(ev) = &mut log.event {
                ev.status = Some(StatusCode::BAD_GATEWAY.as_u16());
            }
            return;
        }
    };
    if upstream.write_all(&hello).await.is_err() {
        return;
    }
    bytes.fetch_add(hello.len() as u64, Ordering::Relaxed);
    tokio::select! {
        () = relay(client, upstream, proxy.settings.idle_timeout, &bytes) => {}
        () = proxy.stopping.cancelled() => {}
    }
    drop(log);
}

/// Copies both ways until either side closes or neither sends anything for `idle`.
async fn relay<A, B>(a: A, b: B, idle: Duration, bytes: &AtomicU64)
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let started = Instant::now();
    let last = AtomicU64::new(0);
    let (mut ar, mut aw) = tokio::io::split(a);
    let (mut br, mut bw) = tokio::io::split(b);
    let watchdog = async {
        loop {
            tokio::time::sleep(idle / 4).await;
            let quiet = started.elapsed().as_millis() as u64 - last.load(Ordering::Relaxed);
            if quiet >= idle.as_millis() as u64 {
                break;
            }
        }
    };
    let both = async {
        tokio::join!(
            pump(&mut ar, &mut bw, bytes, &last, started),
            pump(&mut br, &mut aw, bytes, &last, started)
        )
    };
    tokio::select! {
        _ = both => {}
        () = watchdog => {}
    }
}

/// Copies `r` to `w` until end of stream or an error, counting bytes and noting activity.
async fn pump<R, W>(r: &mut R, w: &mut W, bytes: &AtomicU64, last: &AtomicU64, started: Instant)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if w.write_all(&buf[..n]).await.is_err() {
            break;
        }
        bytes.fetch_add(n as u64, Ordering::Relaxed);
        last.store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
    let _ = w.shutdown().await;
}

/// Pages the proxy serves itself: the start page, status, warning click-through, and the
/// report/review links when no console is configured.
pub(crate) async fn local_page(
    proxy: &Proxy,
    who: Option<Who>,
    req: Request<Incoming>,
) -> Response<Body> {
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let param = |name: &str| {
        query
            .split('&')
            .filter_map(|p| p.split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| decode_query_value(v))
    };
    match path.as_str() {
        "/" => page(
            StatusCode::OK,
            "Lookout e-safety filter",
            &["Internet access on this network is filtered and recorded under the college's e-safety policy."],
        ),
        "/ca" => match &proxy.inspector {
            Some(_) => html(
                StatusCode::OK,
                lookout_http::notice_page(
                    "Install the filter's certificate",
                    &[
                        "This network inspects secure (HTTPS) pages to keep learners safe. Devices need the college's filter certificate to open them without warnings.",
                        "Download it from http://lookout.invalid/ca.crt and install it as a trusted root certificate: on Windows, open it and choose Install Certificate, Local Machine, Trusted Root Certification Authorities; on macOS, open it in Keychain Access and set it to Always Trust; on Android and iOS, install it from Settings, Security, Certificates (on iOS then enable it in General, About, Certificate Trust Settings); for Firefox, import it under Settings, Privacy & Security, Certificates.",
                        "Banking and health sites are never inspected.",
                    ],
                ),
            ),
            None => page(
                StatusCode::NOT_FOUND,
                "HTTPS inspection is off",
                &["This filter does not inspect HTTPS, so no certificate is needed."],
            ),
        },
        "/ca.crt" | "/ca.pem" => match &proxy.inspector {
            Some(inspector) => {
                let mut r = Response::new(full(inspector.ca_pem().to_owned()));
                let h = r.headers_mut();
                h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-x509-ca-cert"));
                h.insert(
                    header::CONTENT_DISPOSITION,
                    HeaderValue::from_static("attachment; filename=\"lookout-ca.crt\""),
                );
                r
            }
            None => page(
                StatusCode::NOT_FOUND,
                "HTTPS inspection is off",
                &["This filter does not inspect HTTPS, so no certificate is needed."],
            ),
        },
        "/status" => {
            let c = &proxy.counters;
            let log = proxy.log.as_ref().map(|l| {
                let s = l.stats();
                serde_json::json!({
                    "enabled": true,
                    "queued": s.queued,
                    "written": s.written,
                    "dropped": s.dropped,
                    "transactions": s.transactions,
                    "backlog": l.backlog(),
                    // The database refusing writes: filtering goes on, events are counted.
                    "failing": l.failure().map(|f| serde_json::json!({
                        "since_ms": f.since_ms,
                        "lost": f.lost,
                        "error": f.error,
                    })),
                })
            });
            // The lists: names and times only (list addresses can hold credentials).
            let l = proxy.index.status();
            let lists = serde_json::json!({
                "version": l.version,
                "loaded_at_ms": l.loaded_at_ms,
                "entries": l.entries,
                "reload_failed": l.reload_error.is_some(),
                "subscriptions": l.subscriptions.iter().map(|s| serde_json::json!({
                    "name": s.name,
                    "checked_at_ms": s.checked_at_ms,
                    "fetched_at_ms": s.fetched_at_ms,
                    "entries": s.entries,
                    "failing_since_ms": s.failing_since_ms,
                })).collect::<Vec<_>>(),
            });
            let body = serde_json::json!({
                "connections": c.connections.load(Ordering::Relaxed),
                "refused_clients": c.refused_clients.load(Ordering::Relaxed),
                "refused_busy": c.refused_busy.load(Ordering::Relaxed),
                "requests": c.requests.load(Ordering::Relaxed),
                "log": log.unwrap_or_else(|| serde_json::json!({ "enabled": false })),
                "lists": lists,
                "central": proxy.settings.status_extra.as_ref().map(|f| (f.0)()),
            })
            .to_string()
                + "\n";
            let mut r = Response::new(full(body));
            r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            r
        }
        "/continue" => {
            let Some(who) = who else {
                return page(StatusCode::PROXY_AUTHENTICATION_REQUIRED, "Please sign in", &["Sign in to continue."]);
            };
            let Some(target) = param("url") else {
                return page(StatusCode::BAD_REQUEST, "Nothing to continue to", &["The link has no address."]);
            };
            let url = NormUrl::parse(&target);
            let Ok(parsed) = &url else {
                return page(StatusCode::BAD_REQUEST, "Not a web address", &["The link's address is not valid."]);
            };
            let decision = proxy.decide(who.group, &url);
            let host = parsed.host().to_owned();
            let subject = Subject { method: "GET", url: &target, host: &host, search: None };
            match decision.action {
                // Only a warning can be clicked through; a block stays a block.
                Action::Block => proxy.refuse_page(&who, &subject, &decision),
                Action::Warn | Action::Allow => {
                    if decision.action == Action::Warn {
                        proxy.allow_continue(&who, &host);
                        let mut ev = event(&proxy.policy, &who, &subject, "continue", &decision, Some(StatusCode::SEE_OTHER));
                        if let Some(r) = param("ref") {
                            ev.reason = format!("{} (clicked through warning {r})", ev.reason).into();
                        }
                        proxy.record(ev);
                    }
                    let mut r = Response::new(full(""));
                    *r.status_mut() = StatusCode::SEE_OTHER;
                    let location = if target.contains("://") { target.clone() } else { format!("http://{target}") };
                    if let Ok(v) = HeaderValue::from_str(&location) {
                        r.headers_mut().insert(header::LOCATION, v);
                    }
                    r
                }
            }
        }
        "/report" | "/review" => {
            let reference = param("ref").unwrap_or_default();
            let reference: String = reference.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').take(20).collect();
            let what = if path == "/report" { "report a concern" } else { "ask for this page to be reviewed" };
            html(
                StatusCode::OK,
                lookout_http::notice_page(
                    "Tell someone",
                    &[
                        &format!("The online form to {what} is not set up on this network yet."),
                        &format!("Please speak to your tutor, a member of staff or the safeguarding team, and give them this reference: {reference}"),
                    ],
                ),
            )
        }
        _ => page(StatusCode::NOT_FOUND, "Not found", &["There is no such page on the filter."]),
    }
}
