//! The safeguarding API (axum): agents' ingest, and alerts for safeguarding tools — list,
//! detail with the person's surrounding activity, and a live Server-Sent Events stream.
//!
//! Every route but `/api/v1/health` needs `Authorization: Bearer <token>` with the right
//! scope (`lookout token add`): `ingest` for agents, `alerts` for reading alerts.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::stream::{self, Stream, StreamExt as _};
use lookout_store::{Alert, ApiToken, Store, Subject, TokenScope};
use serde::Deserialize;
use serde_json::json;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::BroadcastStream;
use tokio_util::sync::CancellationToken;

use crate::{category_label, Job, Monitor, Source};

/// Items per ingest request.
const MAX_ITEMS: usize = 1000;
/// Bytes of text per ingest item.
const MAX_TEXT: usize = 64 * 1024;
/// Minutes of activity shown either side of an alert.
const AROUND_MINUTES: i64 = 5;

/// What the handlers share.
#[derive(Clone, Debug)]
pub struct ApiState {
    pub monitor: Monitor,
    /// Ends live streams when the server stops.
    pub shutdown: CancellationToken,
}

/// The API's routes.
pub fn router(state: ApiState, max_body_bytes: usize) -> Router {
    Router::new()
        .route("/api/v1/health", get(health))
        .route("/api/v1/ingest", post(ingest))
        .route("/api/v1/alerts", get(list_alerts))
        .route("/api/v1/alerts/stream", get(stream_alerts))
        .route("/api/v1/alerts/{id}", get(alert_detail))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(state)
}

/// Serves `app` on `listener` until `shutdown`, with each connection's address available as
/// `ConnectInfo<SocketAddr>` (TCP_NODELAY: the live stream's small events must not wait for
/// Nagle's algorithm).
pub async fn serve_api(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt as _;
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown.cancelled_owned())
    .await
}

/// As [`serve_api`], over TLS with `tls` (HTTP/1.1): each client has 10 s to finish its
/// handshake; on `shutdown`, connections finish their requests (up to 10 s).
pub async fn serve_api_tls(
    listener: tokio::net::TcpListener,
    app: Router,
    tls: std::sync::Arc<rustls::ServerConfig>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let (tcp, remote) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: the loop goes on.
                    tracing::warn!("console: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let service = hyper_util::service::TowerToHyperService::new(
            app.clone()
                .layer(axum::Extension(axum::extract::ConnectInfo(remote))),
        );
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let Ok(Ok(stream)) =
                tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await
            else {
                return;
            };
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(30))
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            let _ = watcher.watch(conn).await;
        });
    }
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(Duration::from_secs(10)) => {}
    }
    Ok(())
}

/// `GET /api/v1/health`: liveness and the monitoring's counters (no personal data).
async fn health(State(st): State<ApiState>) -> Json<serde_json::Value> {
    Json(json!({ "status": "ok", "monitoring": st.monitor.stats().snapshot() }))
}

/// An error answered as JSON `{"error": "..."}`.
#[derive(Debug)]
pub struct ApiError(pub StatusCode, pub String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.0, Json(json!({ "error": self.1 }))).into_response();
        if self.0 == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer realm=\"lookout\""),
            );
        }
        if self.0 == StatusCode::SERVICE_UNAVAILABLE {
            r.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
        }
        r
    }
}

/// A failure of the server's own (logged; the client is told to see the log).
pub fn internal(e: impl std::fmt::Display) -> ApiError {
    tracing::error!("API: {e}");
    ApiError(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal error; see the server log".into(),
    )
}

/// The token in `Authorization: Bearer`, if it is known, not revoked and of `scope`.
pub async fn authorize(
    store: &Store,
    headers: &HeaderMap,
    scope: TokenScope,
) -> Result<ApiToken, ApiError> {
    let unauthorized = |m: &str| ApiError(StatusCode::UNAUTHORIZED, m.to_owned());
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| unauthorized("missing Authorization: Bearer <token>"))?
        .to_str()
        .map_err(|_| unauthorized("malformed Authorization header"))?;
    let secret = value
        .strip_prefix("Bearer ")
        .ok_or_else(|| unauthorized("expected Authorization: Bearer <token>"))?
        .trim();
    let token = store
        .token(secret)
        .await
        .map_err(internal)?
        .ok_or_else(|| unauthorized("unknown or revoked token"))?;
    if token.scope != scope {
        return Err(ApiError(
            StatusCode::FORBIDDEN,
            format!(
                "this token's scope is `{}`; this needs `{}`",
                token.scope.slug(),
                scope.slug()
            ),
        ));
    }
    Ok(token)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IngestBody {
    items: Vec<IngestItem>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IngestItem {
    /// `typed`, `chat` or `window-title`.
    kind: String,
    text: String,
    /// When it was typed or shown (default: now).
    #[serde(default)]
    at_ms: Option<i64>,
    /// The application (and window) it was in.
    #[serde(default)]
    app: Option<String>,
    /// The signed-in person, for a device not bound to one person.
    #[serde(default)]
    user: Option<String>,
}

/// An item of an ingest request, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ingested {
    /// When it was typed or shown.
    pub at_ms: i64,
    /// Typed text, a chat message or a window title.
    pub source: Source,
    /// The text.
    pub text: String,
    /// The application (and window) it was in; empty when not given.
    pub app: String,
    /// The signed-in person the agent named (normalised), if any.
    pub user: Option<String>,
}

/// Why an ingest body was refused: the HTTP status (400 unreadable, 422 a bad item) and a
/// message naming the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestError {
    pub status: u16,
    pub message: String,
}

/// Parses and checks an ingest request body at time `now_ms`: every item, or the first
/// problem, naming the item and field. Nothing is queued until all items pass.
pub fn parse_ingest(body: &[u8], now_ms: i64) -> Result<Vec<Ingested>, IngestError> {
    let bad = |message: String| IngestError {
        status: 422,
        message,
    };
    let parsed: IngestBody = serde_json::from_slice(body).map_err(|e| IngestError {
        status: 400,
        message: format!("body: {e}"),
    })?;
    if parsed.items.is_empty() || parsed.items.len() > MAX_ITEMS {
        return Err(bad(format!(
            "items: send 1 to {MAX_ITEMS} items per request"
        )));
    }
    let mut items = Vec::with_capacity(parsed.items.len());
    for (i, item) in parsed.items.into_iter().enumerate() {
        let source = match item.kind.as_str() {
            "typed" => Source::Typed,
            "chat" => Source::Chat,
            "window-title" => Source::WindowTitle,
            other => {
                return Err(bad(format!(
                    "items[{i}].kind: unknown kind {other:?} (expected typed, chat or window-title)"
                )))
            }
        };
        if item.text.len() > MAX_TEXT {
            return Err(bad(format!(
                "items[{i}].text: longer than {MAX_TEXT} bytes; split it"
            )));
        }
        let week = 7 * 24 * 3600 * 1000;
        let at_ms = match item.at_ms {
            None => now_ms,
            Some(t)
                if (now_ms.saturating_sub(week)..=now_ms.saturating_add(3600 * 1000))
                    .contains(&t) =>
            {
                t
            }
            Some(t) => {
                return Err(bad(format!(
                "items[{i}].at_ms: {t} is not within the last week (milliseconds since 1970, UTC)"
            )))
            }
        };
        let user = match item.user {
            None => None,
            Some(u) => Some(
                lookout_store::normalize_username(&u)
                    .map_err(|e| bad(format!("items[{i}].user: {e}")))?,
            ),
        };
        items.push(Ingested {
            at_ms,
            source,
            text: item.text,
            app: item.app.unwrap_or_default(),
            user,
        });
    }
    Ok(items)
}

/// `POST /api/v1/ingest`: text from a monitoring agent. All items are checked first; one bad
/// item refuses the request (422, naming it) and queues nothing.
async fn ingest(
    State(st): State<ApiState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let store = st.monitor.store();
    let token = authorize(store, &headers, TokenScope::Ingest).await?;
    let items = parse_ingest(&body, lookout_store::now_ms()).map_err(|e| {
        ApiError(
            StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST),
            e.message,
        )
    })?;
    // A token bound to a person names them, whatever the item says.
    let jobs: Vec<_> = items
        .into_iter()
        .map(|item| {
            let username = token.username.clone().or(item.user);
            (item.at_ms, item.source, item.text, item.app, username)
        })
        .collect();
    if st.monitor.free_capacity() < jobs.len() {
        return Err(ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "the scanning queue is full; nothing was queued, send again shortly".into(),
        ));
    }
    let mut accepted = 0;
    let mut dropped = 0;
    for (at_ms, source, text, app, username) in jobs {
        let group = match (&username, &token.group) {
            (_, Some(g)) => g.clone(),
            (Some(u), None) => store
                .user(u)
                .await
                .map_err(internal)?
                .map_or_else(|| "unknown".to_owned(), |u| u.group),
            (None, None) => "unknown".to_owned(),
        };
        let queued = st.monitor.submit(Job {
            at_ms,
            source,
            text,
            location: app,
            subject: Subject {
                username,
                client_ip: None,
                device: Some(token.name.clone()),
                group,
                site: None,
            },
        });
        if queued {
            accepted += 1;
        } else {
            dropped += 1;
        }
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "accepted": accepted, "dropped": dropped })),
    )
        .into_response())
}

fn alert_json(a: &Alert) -> serde_json::Value {
    json!({
        "id": a.id,
        "reference": a.reference,
        "status": a.status,
        "category": a.category,
        "category_label": category_label(&a.category),
        "severity": a.severity,
        "score": a.score,
        "subject": a.subject,
        "username": a.username,
        "client_ip": a.client_ip,
        "device": a.device,
        "group": a.group,
        "source": a.source,
        "findings": a.findings,
        "site": a.site,
        "created_ms": a.created_ms,
        "updated_ms": a.updated_ms,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    #[serde(default)]
    since_ms: Option<i64>,
    #[serde(default)]
    limit: Option<u32>,
}

/// `GET /api/v1/alerts?since_ms=&limit=`: most recently updated first.
async fn list_alerts(
    State(st): State<ApiState>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let store = st.monitor.store();
    authorize(store, &headers, TokenScope::Alerts).await?;
    let alerts = store
        .alerts(q.since_ms, q.limit.unwrap_or(100).min(1000))
        .await
        .map_err(internal)?;
    Ok(Json(
        json!({ "alerts": alerts.iter().map(alert_json).collect::<Vec<_>>() }),
    ))
}

/// `GET /api/v1/alerts/{id}`: the alert, its findings, and the person's (or address's)
/// activity from five minutes before it to five minutes after its last finding.
async fn alert_detail(
    State(st): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let store = st.monitor.store();
    authorize(store, &headers, TokenScope::Alerts).await?;
    let (alert, findings) = store
        .alert(id)
        .await
        .map_err(internal)?
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no alert {id}")))?;
    let activity = store
        .alert_activity(&alert, AROUND_MINUTES * 60 * 1000, 500)
        .await
        .map_err(internal)?;
    Ok(Json(json!({
        "alert": alert_json(&alert),
        "findings": findings.iter().map(|f| json!({
            "id": f.id,
            "at_ms": f.finding.at_ms,
            "source": f.finding.source,
            "severity": f.finding.severity,
            "score": f.finding.score,
            "evidence": f.finding.evidence,
            "context": f.finding.context,
            "location": f.finding.location,
            "rules": serde_json::from_str::<serde_json::Value>(&f.finding.rules).unwrap_or_default(),
        })).collect::<Vec<_>>(),
        "activity": activity.iter().map(|e| json!({
            "id": e.id,
            "at_ms": e.event.at_ms,
            "service": e.event.service,
            "client_ip": e.event.client_ip,
            "username": e.event.username,
            "method": e.event.method,
            "url": e.event.url,
            "search_term": e.event.search_term,
            "categories": e.event.categories,
            "action": e.event.action,
        })).collect::<Vec<_>>(),
    })))
}

/// `GET /api/v1/alerts/stream`: Server-Sent Events. First `event: ready`, then one
/// `event: alert` per alert change (data: JSON), `event: lagged` if this reader fell behind.
async fn stream_alerts(
    State(st): State<ApiState>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    authorize(st.monitor.store(), &headers, TokenScope::Alerts).await?;
    let rx = st.monitor.subscribe();
    let ready = stream::once(async { Ok(SseEvent::default().event("ready").data("{}")) });
    let changes = BroadcastStream::new(rx).map(|r| {
        Ok(match r {
            Ok(n) => SseEvent::default()
                .event("alert")
                .id(n.id.to_string())
                .data(serde_json::to_string(&n).unwrap_or_default()),
            Err(BroadcastStreamRecvError::Lagged(k)) => SseEvent::default()
                .event("lagged")
                .data(json!({ "missed": k }).to_string()),
        })
    });
    let stream = ready
        .chain(changes)
        .take_until(st.shutdown.clone().cancelled_owned());
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
