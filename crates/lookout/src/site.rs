//! Site gateways and their central.
//!
//! A **site gateway** (`lookout serve --role gateway --central URL`) runs only the proxy and
//! the DNS filter. Its policy — the central's `[groups]` and `[lists]`, the entries allowed
//! after review, the proxy's sign-in accounts — comes from the central
//! (`GET /api/v1/gateway/policy`, asked every few seconds with the version it has as ETag) and
//! is kept on disk as the last good copy, used when the central cannot be reached. Its lists
//! are subscriptions to the central's (`GET /api/v1/gateway/lists/{name}`). Its events wait in
//! its own database (the activity log's rows, page texts in `outbox_texts`) until the
//! central has acknowledged them (`POST /api/v1/gateway/events`, stored once per site and
//! number), so a central outage or a gateway restart loses nothing.
//!
//! The **central** is an ordinary `lookout serve` with the console: each gateway has a token
//! of scope `gateway` (`lookout token add SITE --scope gateway`), whose name is the site's.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path as UrlPath, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use lookout_config::{Config, SourceConfig};
use lookout_monitor::{authorize, internal, ApiError, Job, Monitor, Source};
use lookout_store::{
    now_ms, Event, GatewayCall, Outbox, OutboxText, SiteEvent, SiteUser, Store, Subject, TokenScope,
};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::UsageError;

/// How often a gateway asks the central whether its policy changed.
pub(crate) const POLL_EVERY: Duration = Duration::from_secs(3);
/// Events per batch sent to the central.
const EVENTS_PER_BATCH: u32 = 2000;
/// Bytes of page text per batch (at least one text goes).
const TEXT_BYTES_PER_BATCH: usize = 512 * 1024;
/// Bytes of one page text kept for the central (as the ingest API's limit).
const MAX_TEXT: usize = 64 * 1024;
/// The largest batch the central takes.
const BODY_LIMIT: usize = 8 * 1024 * 1024;
/// The last good policy, in the gateway's data folder.
const POLICY_COPY: &str = "central-policy.json";

// ---------------------------------------------------------------------------------------------
// What goes over the wire.

/// The policy a central hands its gateways.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct PolicyDoc {
    /// The site this copy was given to (the token's name).
    pub(crate) site: String,
    /// A hash of everything below: the same content, the same version.
    pub(crate) version: String,
    /// Where the block page's "report a concern" and "ask for a review" links go.
    pub(crate) console_url: String,
    /// The central's `[groups]` and `[lists]` as TOML (list paths and addresses left out).
    pub(crate) policy: String,
    /// Each list's version (name → hash of its files).
    pub(crate) lists: BTreeMap<String, String>,
    /// Entries allowed after an IT admin's review.
    pub(crate) reviewed: Vec<Allowed>,
    /// The proxy's sign-in accounts.
    pub(crate) users: Vec<WireUser>,
    /// What this gateway adds to its events' row ids to number them for the central: its
    /// instance's number << 40, so that a reinstalled gateway (its rows numbered from 1 again)
    /// never sends a number an earlier one used.
    #[serde(default)]
    pub(crate) seq_base: i64,
}

/// The header naming a gateway instance (its random id, kept in `gateway.id`).
const INSTANCE_HEADER: &str = "x-lookout-gateway";
/// Bits of an event number that are the gateway's own row id.
const SEQ_BITS: u32 = 40;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Allowed {
    pub(crate) group: String,
    pub(crate) entry: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct WireUser {
    pub(crate) username: String,
    pub(crate) display_name: String,
    pub(crate) group: String,
    pub(crate) password_hash: Option<String>,
    pub(crate) disabled: bool,
}

/// One event, numbered by the gateway (its row id there).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct WireEvent {
    pub(crate) seq: i64,
    pub(crate) at_ms: i64,
    pub(crate) reference: String,
    pub(crate) service: String,
    pub(crate) client_ip: String,
    pub(crate) username: Option<String>,
    pub(crate) group: String,
    pub(crate) method: String,
    pub(crate) url: String,
    pub(crate) host: String,
    pub(crate) search_term: Option<String>,
    pub(crate) categories: String,
    pub(crate) action: String,
    pub(crate) rule: String,
    pub(crate) reason: String,
    pub(crate) status: Option<u16>,
    pub(crate) bytes: u64,
}

/// One page text for the central's monitoring.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct WireText {
    pub(crate) seq: i64,
    pub(crate) at_ms: i64,
    pub(crate) source: String,
    pub(crate) text: String,
    pub(crate) location: String,
    pub(crate) username: Option<String>,
    pub(crate) client_ip: Option<String>,
    pub(crate) group: String,
}

/// A gap in the site's activity log (events it lost: a full queue, a failing disk, a kill).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct WireGap {
    pub(crate) seq: i64,
    pub(crate) at_ms: i64,
    pub(crate) dropped: i64,
    pub(crate) cause: String,
}

/// What a gateway sends.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Batch {
    /// The policy version the gateway runs.
    pub(crate) policy_version: String,
    /// Events and texts still waiting after this batch.
    pub(crate) backlog: i64,
    pub(crate) events: Vec<WireEvent>,
    pub(crate) texts: Vec<WireText>,
    #[serde(default)]
    pub(crate) gaps: Vec<WireGap>,
}

/// What the central answers: everything up to these numbers is safe with it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Acked {
    /// Events newly stored (the rest of the batch it already had).
    pub(crate) events_stored: usize,
    pub(crate) events_acked: i64,
    pub(crate) texts_acked: i64,
    #[serde(default)]
    pub(crate) gaps_acked: i64,
}

impl WireEvent {
    fn from_stored(id: i64, e: &Event) -> WireEvent {
        WireEvent {
            seq: id,
            at_ms: e.at_ms,
            reference: e.reference.clone(),
            service: e.service.to_owned(),
            client_ip: e.client_ip.clone(),
            username: e.username.clone(),
            group: e.group.to_string(),
            method: e.method.to_string(),
            url: e.url.clone(),
            host: e.host.clone(),
            search_term: e.search_term.clone(),
            categories: e.categories.to_string(),
            action: e.action.to_string(),
            rule: e.rule.to_string(),
            reason: e.reason.to_string(),
            status: e.status,
            bytes: e.bytes,
        }
    }

    fn into_site_event(self) -> SiteEvent {
        SiteEvent {
            seq: self.seq,
            event: Event {
                at_ms: self.at_ms,
                reference: self.reference,
                service: if self.service == "dns" {
                    "dns"
                } else {
                    "proxy"
                },
                client_ip: self.client_ip,
                username: self.username,
                group: self.group.into(),
                method: lookout_store::method_text(&self.method),
                url: self.url,
                host: self.host,
                search_term: self.search_term,
                categories: self.categories.into(),
                action: self.action.into(),
                rule: self.rule.into(),
                reason: self.reason.into(),
                status: self.status,
                bytes: self.bytes,
            },
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The central.

/// What the central's gateway routes share.
#[derive(Clone)]
pub(crate) struct Central {
    pub(crate) store: Store,
    pub(crate) monitor: Monitor,
    /// The `[groups]` and `[lists]` sections handed to gateways.
    pub(crate) policy: Arc<String>,
    pub(crate) console_url: String,
    /// The list sources, by name, with where their files are here.
    pub(crate) sources: Arc<Vec<SourceConfig>>,
    /// `[log.syslog]`: sites' events go to the SIEM too, with their site.
    pub(crate) syslog: Option<crate::siem::Syslog>,
}

/// The `[groups]` and `[lists]` of the central's configuration file, as the gateways take
/// them: each list source without its `path`, `url` and `refresh_minutes` (a gateway fetches
/// every list from the central). Empty for the built-in defaults.
pub(crate) fn central_policy(config_text: &str) -> anyhow::Result<String> {
    let table: toml::Table = toml::from_str(config_text).context("configuration")?;
    let mut out = toml::Table::new();
    if let Some(groups) = table.get("groups") {
        out.insert("groups".into(), groups.clone());
    }
    if let Some(toml::Value::Table(lists)) = table.get("lists") {
        let mut lists = lists.clone();
        if let Some(toml::Value::Array(sources)) = lists.get_mut("source") {
            for s in sources {
                if let toml::Value::Table(t) = s {
                    for key in ["path", "url", "refresh_minutes"] {
                        t.remove(key);
                    }
                }
            }
        }
        out.insert("lists".into(), toml::Value::Table(lists));
    }
    Ok(toml::to_string(&out)?)
}

/// The routes gateways call, each needing a `gateway` token.
pub(crate) fn router(central: Central) -> Router {
    Router::new()
        .route("/api/v1/gateway/policy", get(policy_route))
        .route("/api/v1/gateway/lists/{name}", get(list_route))
        .route("/api/v1/gateway/events", post(events_route))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(central)
}

impl Central {
    /// The policy document as it stands now, for `site`'s gateway number `instance_no`.
    async fn document(&self, site: &str, instance_no: i64) -> Result<PolicyDoc, ApiError> {
        let users = self
            .store
            .site_users()
            .await
            .map_err(internal)?
            .into_iter()
            .map(|u| WireUser {
                username: u.username,
                display_name: u.display_name,
                group: u.group,
                password_hash: u.password_hash,
                disabled: u.disabled,
            })
            .collect();
        let reviewed = self
            .store
            .reviewed_allows()
            .await
            .map_err(internal)?
            .into_iter()
            .map(|a| Allowed {
                group: a.group,
                entry: a.entry,
            })
            .collect();
        let sources = self.sources.clone();
        let lists = tokio::task::spawn_blocking(move || {
            sources
                .iter()
                .map(|s| (s.name.get_ref().clone(), list_version(s.path.get_ref())))
                .collect()
        })
        .await
        .map_err(internal)?;
        let mut doc = PolicyDoc {
            site: site.to_owned(),
            version: String::new(),
            console_url: self.console_url.clone(),
            policy: self.policy.as_ref().clone(),
            lists,
            reviewed,
            users,
            seq_base: instance_no << SEQ_BITS,
        };
        doc.version = doc_version(&doc);
        Ok(doc)
    }

    /// The calling gateway's instance number for `site`, or why it may not call.
    async fn instance(&self, site: &str, headers: &HeaderMap) -> Result<i64, ApiError> {
        let id = headers
            .get(INSTANCE_HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|v| v.len() == 32 && v.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| {
                ApiError(
                    StatusCode::BAD_REQUEST,
                    format!("missing or malformed {INSTANCE_HEADER} header (32 hex digits)"),
                )
            })?;
        match self
            .store
            .gateway_instance(site, id, now_ms())
            .await
            .map_err(internal)?
        {
            Ok(n) => Ok(n),
            Err(taken) => Err(ApiError(
                StatusCode::CONFLICT,
                format!(
                    "site `{site}` is served by another gateway, which called {} s ago: give each gateway a token of its own (`lookout token add SITE --scope gateway`)",
                    (now_ms() - taken.last_seen_ms) / 1000
                ),
            )),
        }
    }

    async fn called(&self, site: &str, addr: SocketAddr, call: GatewayCall) {
        let call = GatewayCall {
            address: addr.ip().to_string(),
            ..call
        };
        if let Err(e) = self.store.gateway_called(site, &call).await {
            tracing::warn!("gateway `{site}`: its call could not be recorded: {e}");
        }
    }
}

/// A document's version: a hash of everything but the site and the version.
fn doc_version(doc: &PolicyDoc) -> String {
    let content = serde_json::json!({
        "console_url": doc.console_url,
        "policy": doc.policy,
        "lists": doc.lists,
        "reviewed": doc.reviewed,
        "users": doc.users,
    });
    lookout_auth::secret_hash(&content.to_string())[..32].to_owned()
}

/// A list file's or folder's version: a hash of each file's name, size and modification time.
fn list_version(path: &Path) -> String {
    fn walk(dir: &Path, base: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            match e.metadata() {
                Ok(m) if m.is_dir() => walk(&p, base, out),
                Ok(m) => out.push(describe(&p, base, &m)),
                Err(_) => {}
            }
        }
    }
    fn describe(p: &Path, base: &Path, m: &std::fs::Metadata) -> String {
        let modified = m
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        format!(
            "{}\t{}\t{modified}",
            p.strip_prefix(base).unwrap_or(p).display(),
            m.len()
        )
    }
    let mut parts = Vec::new();
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => walk(path, path, &mut parts),
        Ok(m) => parts.push(describe(path, path, &m)),
        Err(_) => return "missing".into(),
    }
    parts.sort();
    lookout_auth::secret_hash(&parts.join("\n"))[..32].to_owned()
}

fn etag_matches(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag))
}

fn with_etag(mut r: Response, etag: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(etag) {
        r.headers_mut().insert(header::ETAG, v);
    }
    r
}

/// `GET /api/v1/gateway/policy`: the policy, or 304 when the gateway has this version.
async fn policy_route(
    State(c): State<Central>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let token = authorize(&c.store, &headers, TokenScope::Gateway).await?;
    let instance_no = c.instance(&token.name, &headers).await?;
    let doc = c.document(&token.name, instance_no).await?;
    c.called(&token.name, addr, GatewayCall::default()).await;
    let etag = format!("\"{}\"", doc.version);
    if etag_matches(&headers, &etag) {
        return Ok(with_etag(StatusCode::NOT_MODIFIED.into_response(), &etag));
    }
    Ok(with_etag(Json(doc).into_response(), &etag))
}

/// `GET /api/v1/gateway/lists/{name}`: a list file as it is, a list folder as a tar archive.
async fn list_route(
    State(c): State<Central>,
    UrlPath(name): UrlPath<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize(&c.store, &headers, TokenScope::Gateway).await?;
    let Some(source) = c
        .sources
        .iter()
        .find(|s| *s.name.get_ref() == name)
        .cloned()
    else {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no list named `{name}` here"),
        ));
    };
    let path = source.path.get_ref().clone();
    let folder = source.format.is_folder();
    // The version first: an unchanged list (most asks) costs a few file look-ups, not a copy.
    let at = path.clone();
    let version = tokio::task::spawn_blocking(move || list_version(&at))
        .await
        .map_err(internal)?;
    let etag = format!("\"{version}\"");
    if etag_matches(&headers, &etag) {
        return Ok(with_etag(StatusCode::NOT_MODIFIED.into_response(), &etag));
    }
    let body = tokio::task::spawn_blocking(move || {
        if folder {
            let mut tar = tar::Builder::new(Vec::new());
            tar.follow_symlinks(true);
            tar.append_dir_all(&name, &path)
                .and_then(|()| tar.into_inner())
        } else {
            std::fs::read(&path)
        }
        .map_err(|e| format!("{}: {e}", path.display()))
    })
    .await
    .map_err(internal)?
    .map_err(|e| {
        ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the list cannot be read here ({e})"),
        )
    })?;
    Ok(with_etag(body.into_response(), &etag))
}

/// `POST /api/v1/gateway/events`: a site's events (stored once each, then scanned as this
/// server's own are) and page texts (queued for scanning; acknowledged only as far as the
/// queue took them).
async fn events_route(
    State(c): State<Central>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<Acked>, ApiError> {
    let token = authorize(&c.store, &headers, TokenScope::Gateway).await?;
    let batch: Batch = serde_json::from_slice(&body).map_err(|e| {
        ApiError(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("not a batch of events: {e}"),
        )
    })?;
    let site = token.name;
    let base = c.instance(&site, &headers).await? << SEQ_BITS;
    let events_acked = batch.events.iter().map(|e| e.seq).max().unwrap_or(0);
    if let Some(bad) = batch
        .events
        .iter()
        .find(|e| e.seq <= base || e.seq >= base + (1 << SEQ_BITS))
    {
        return Err(ApiError(
            StatusCode::CONFLICT,
            format!(
                "event number {} is not this gateway's (from {}): fetch the policy again",
                bad.seq,
                base + 1
            ),
        ));
    }
    let events: Vec<SiteEvent> = batch
        .events
        .into_iter()
        .map(WireEvent::into_site_event)
        .collect();
    let stored = c
        .store
        .insert_site_events(&site, &events)
        .await
        .map_err(|e| {
            tracing::warn!("gateway `{site}`: events could not be stored: {e}");
            ApiError(
                StatusCode::SERVICE_UNAVAILABLE,
                "the events could not be stored now; send them again".into(),
            )
        })?;
    // Scanned (search terms, page addresses) and sent to the SIEM as this server's own events
    // are, once.
    for &i in &stored {
        if let Some(syslog) = &c.syslog {
            syslog.send(Some(&site), &events[i].event);
        }
        if let Some(mut job) = lookout_monitor::job_for_event(&events[i].event) {
            job.subject.site = Some(site.clone());
            c.monitor.submit(job);
        }
    }
    let mut gaps_acked = 0;
    for g in &batch.gaps {
        let gap = lookout_store::LogGap {
            at_ms: g.at_ms,
            dropped: g.dropped,
            cause: g.cause.clone(),
        };
        if c.store
            .record_site_gap(&site, &gap)
            .await
            .map_err(internal)?
        {
            tracing::warn!(
                "gateway `{site}`: its activity log has a gap: {} event(s) lost ({})",
                g.dropped,
                g.cause
            );
        }
        gaps_acked = gaps_acked.max(g.seq);
    }
    let mut texts_acked = 0;
    let mut texts = 0;
    for t in batch.texts {
        let job = Job {
            at_ms: t.at_ms,
            source: Source::from_slug(&t.source).unwrap_or(Source::Page),
            text: t.text,
            location: t.location,
            subject: Subject {
                username: t.username,
                client_ip: t.client_ip,
                device: None,
                group: t.group,
                site: Some(site.clone()),
            },
        };
        // A full queue: the rest stay with the gateway, which sends them again.
        if !c.monitor.submit(job) {
            break;
        }
        texts_acked = t.seq;
        texts += 1;
    }
    c.called(
        &site,
        addr,
        GatewayCall {
            address: String::new(),
            policy_version: Some(batch.policy_version),
            backlog: Some(batch.backlog),
            events: stored.len() as i64,
            texts,
        },
    )
    .await;
    Ok(Json(Acked {
        events_stored: stored.len(),
        events_acked,
        texts_acked,
        gaps_acked,
    }))
}

// ---------------------------------------------------------------------------------------------
// The gateway.

/// A gateway's connection to its central.
#[derive(Debug, Clone)]
pub(crate) struct Link {
    client: reqwest::Client,
    base: url::Url,
    token: String,
    /// This gateway's random id (`gateway.id` in its data folder, made at its first start).
    instance: String,
    /// DER certificates trusted for the central besides the system's.
    extra_roots: Vec<Vec<u8>>,
}

impl Link {
    /// `central`: the central console's address (https://, or http:// to this machine);
    /// `token_file`: the gateway token's first line; `ca_file`: PEM certificates to trust for
    /// the central besides the system's.
    pub(crate) fn new(
        central: &str,
        token_file: &Path,
        ca_file: Option<&Path>,
        data_dir: &Path,
    ) -> anyhow::Result<Link> {
        let mut base = url::Url::parse(central)
            .map_err(|e| UsageError(format!("--central `{central}`: not a web address: {e}")))?;
        match base.scheme() {
            "https" => {}
            "http" if lookout_config::is_loopback_host(&base) => {}
            _ => {
                return Err(UsageError(format!(
                    "--central `{central}`: use https:// (the policy holds password hashes and the events are about people; plain http only to this machine)"
                ))
                .into())
            }
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let token = std::fs::read_to_string(token_file)
            .map_err(|e| {
                UsageError(format!(
                    "--token-file {}: {e} (make one on the central: `lookout token add SITE --scope gateway`)",
                    token_file.display()
                ))
            })?
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .to_owned();
        if token.is_empty() {
            return Err(UsageError(format!(
                "--token-file {}: the file is empty",
                token_file.display()
            ))
            .into());
        }
        let extra_roots: Vec<Vec<u8>> = match ca_file {
            Some(ca) => crate::serve::pem_certificates(ca, "--central-ca")?
                .into_iter()
                .map(|c| c.to_vec())
                .collect(),
            None => Vec::new(),
        };
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!(
                "Lookout/",
                env!("CARGO_PKG_VERSION"),
                " (site gateway)"
            ))
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none());
        for cert in rustls_native_certs_roots() {
            builder = builder.add_root_certificate(cert);
        }
        for der in &extra_roots {
            builder = builder.add_root_certificate(
                reqwest::Certificate::from_der(der)
                    .map_err(|e| UsageError(format!("--central-ca: {e}")))?,
            );
        }
        let client = builder
            .build()
            .context("the HTTPS client for the central")?;
        Ok(Link {
            client,
            base,
            token,
            instance: instance_id(data_dir)?,
            extra_roots,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The central's address without credentials, for messages.
    pub(crate) fn shown(&self) -> String {
        lookout_loader::subscription::shown(self.base.as_str())
    }

    /// The address of a list's copy on the central.
    fn list_url(&self, name: &str) -> String {
        let mut u = self.base.clone();
        u.set_path(&format!("{}api/v1/gateway/lists/", self.base.path()));
        u.path_segments_mut()
            .map(|mut s| {
                s.pop_if_empty().push(name);
            })
            .ok();
        u.into()
    }

    /// A list subscriber that sends this gateway's token to the central (only).
    pub(crate) fn subscriber(&self) -> anyhow::Result<lookout_loader::subscription::Subscriber> {
        Ok(lookout_loader::subscription::Subscriber::with_options(
            &self.extra_roots,
            Some((self.url("api/v1/gateway/lists/"), self.token.clone())),
        )?)
    }

    async fn failure(&self, r: reqwest::Response) -> String {
        let status = r.status();
        let said = r
            .json::<serde_json::Value>()
            .await
            .ok()
            .and_then(|v| v.get("error")?.as_str().map(str::to_owned))
            .unwrap_or_default();
        match status {
            reqwest::StatusCode::UNAUTHORIZED | reqwest::StatusCode::FORBIDDEN => format!(
                "the central refused this gateway's token ({status}: {said}); was it revoked?"
            ),
            _ => format!("the central answered {status}: {said}"),
        }
    }

    /// The policy, or `None` when `have` is still current.
    pub(crate) async fn policy(&self, have: Option<&str>) -> Result<Option<PolicyDoc>, String> {
        let mut request = self
            .client
            .get(self.url("api/v1/gateway/policy"))
            .bearer_auth(&self.token)
            .header(INSTANCE_HEADER, &self.instance);
        if let Some(v) = have {
            request = request.header(header::IF_NONE_MATCH.as_str(), format!("\"{v}\""));
        }
        let r = request.send().await.map_err(|e| error_chain(&e))?;
        match r.status() {
            reqwest::StatusCode::NOT_MODIFIED => Ok(None),
            reqwest::StatusCode::OK => r.json::<PolicyDoc>().await.map(Some).map_err(|e| {
                format!(
                    "the central's policy could not be read: {}",
                    error_chain(&e)
                )
            }),
            _ => Err(self.failure(r).await),
        }
    }

    /// Sends a batch; what the central now has.
    async fn send(&self, batch: &Batch) -> Result<Acked, String> {
        let r = self
            .client
            .post(self.url("api/v1/gateway/events"))
            .bearer_auth(&self.token)
            .header(INSTANCE_HEADER, &self.instance)
            .json(batch)
            .send()
            .await
            .map_err(|e| error_chain(&e))?;
        if r.status() != reqwest::StatusCode::OK {
            return Err(self.failure(r).await);
        }
        r.json::<Acked>().await.map_err(|e| {
            format!(
                "the central's answer could not be read: {}",
                error_chain(&e)
            )
        })
    }
}

/// This gateway's id: read from `gateway.id` in the data folder, made (random, 128 bits) at
/// the first start. A new data folder is a new gateway to the central.
fn instance_id(data_dir: &Path) -> anyhow::Result<String> {
    let file = data_dir.join("gateway.id");
    if let Ok(text) = std::fs::read_to_string(&file) {
        let id = text.trim();
        if id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(id.to_owned());
        }
        return Err(UsageError(format!(
            "{}: not a gateway id (32 hex digits); delete it to make a new one",
            file.display()
        ))
        .into());
    }
    // 128 of the hash's bits of 256 random ones.
    let id = lookout_auth::secret_hash(&lookout_auth::random_secret())[..32].to_owned();
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create the data folder {}", data_dir.display()))?;
    std::fs::write(&file, format!("{id}\n"))
        .with_context(|| format!("cannot keep this gateway's id in {}", file.display()))?;
    Ok(id)
}

/// The system's trusted roots (honouring `SSL_CERT_FILE`).
fn rustls_native_certs_roots() -> Vec<reqwest::Certificate> {
    rustls_native_certs::load_native_certs()
        .certs
        .iter()
        .filter_map(|c| reqwest::Certificate::from_der(c).ok())
        .collect()
}

/// An error and its causes on one line.
fn error_chain(e: &reqwest::Error) -> String {
    lookout_loader::subscription::error_chain(e)
}

/// A gateway's link to its central as `/status` shows it.
#[derive(Debug, Default)]
pub(crate) struct SiteStatus {
    inner: Mutex<StatusInner>,
}

#[derive(Debug, Default, Clone)]
struct StatusInner {
    central: String,
    site: String,
    policy_version: String,
    /// The last good copy is in use because the central could not be reached at the start.
    policy_from_copy: bool,
    last_contact_ms: Option<i64>,
    failing_since_ms: Option<i64>,
    error: Option<String>,
    backlog: i64,
    events_sent: u64,
    texts_sent: u64,
    texts_dropped: u64,
    /// A newer central policy this site cannot run (kept until one it can arrives).
    refused: Option<String>,
}

impl SiteStatus {
    fn with<T>(&self, f: impl FnOnce(&mut StatusInner) -> T) -> T {
        f(&mut self.inner.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// The central answered.
    fn reached(&self) {
        let was = self.with(|s| {
            s.last_contact_ms = Some(now_ms());
            s.error = None;
            s.failing_since_ms.take()
        });
        if let Some(since) = was {
            tracing::info!(
                "central: reachable again (after {} s)",
                (now_ms() - since) / 1000
            );
        }
    }

    /// The central did not answer, or refused.
    fn failed(&self, what: &str, error: &str) {
        let first = self.with(|s| {
            s.error = Some(format!("{what}: {error}"));
            if s.failing_since_ms.is_none() {
                s.failing_since_ms = Some(now_ms());
                true
            } else {
                false
            }
        });
        if first {
            tracing::warn!("central: {what}: {error}; filtering goes on with the policy in use, and events wait here until it answers");
        }
    }

    /// Serving again with a policy checked while running: the central was reached.
    pub(crate) fn start_with(&self, link: &Link, doc: &PolicyDoc) {
        self.with(|s| {
            s.central = link.shown();
            s.site = doc.site.clone();
            s.policy_version = doc.version.clone();
            s.policy_from_copy = false;
            s.last_contact_ms = Some(now_ms());
        });
    }

    /// The central's newer policy does not fit this site (said once per reason).
    fn refuse(&self, why: String) {
        let new = self.with(|s| {
            let new = s.refused.as_deref() != Some(why.as_str());
            s.refused = Some(why.clone());
            new
        });
        if new {
            tracing::warn!("central: {why}");
        }
    }

    /// A policy from the central is in force: any refusal is over.
    fn accepted(&self) {
        if self.with(|s| s.refused.take()).is_some() {
            tracing::info!("central: its policy fits this site again");
        }
    }

    pub(crate) fn json(&self) -> serde_json::Value {
        let s = self.with(|s| s.clone());
        serde_json::json!({
            "address": s.central,
            "site": s.site,
            "policy_version": s.policy_version,
            "policy_from_last_good_copy": s.policy_from_copy,
            "last_contact_ms": s.last_contact_ms,
            "failing_since_ms": s.failing_since_ms,
            "error": s.error,
            "backlog": s.backlog,
            "events_sent": s.events_sent,
            "texts_sent": s.texts_sent,
            "texts_dropped": s.texts_dropped,
            "policy_refused": s.refused,
        })
    }
}

/// The policy a gateway starts with and the configuration it makes with the site's file: the
/// central's now if it fits the site (kept as the last good copy), else the last good copy
/// (saying so), else an error naming both.
pub(crate) async fn first_policy(
    link: &Link,
    data_dir: &Path,
    status: &SiteStatus,
    fits: impl Fn(&PolicyDoc) -> anyhow::Result<Config>,
) -> anyhow::Result<(PolicyDoc, Config)> {
    let copy = data_dir.join(POLICY_COPY);
    status.with(|s| s.central = link.shown());
    let error = match link.policy(None).await {
        Ok(Some(doc)) => match fits(&doc) {
            Ok(config) => {
                save_copy(&copy, &doc)?;
                status.reached();
                status.with(|s| {
                    s.policy_from_copy = false;
                    s.policy_version = doc.version.clone();
                    s.site = doc.site.clone();
                });
                return Ok((doc, config));
            }
            Err(e) => format!("its policy {} does not fit this site: {e:#}", doc.version),
        },
        Ok(None) => "it answered 304 to a first request".into(),
        Err(e) => e,
    };
    let text = std::fs::read_to_string(&copy).map_err(|e| {
        UsageError(format!(
            "cannot use the policy from the central at {} ({error}), and there is no last good copy ({}: {e})",
            link.shown(),
            copy.display()
        ))
    })?;
    let doc: PolicyDoc = serde_json::from_str(&text)
        .with_context(|| format!("the last good policy {}", copy.display()))?;
    let config = fits(&doc).with_context(|| {
        format!(
            "the central at {} ({error}); the last good policy {} does not fit either",
            link.shown(),
            copy.display()
        )
    })?;
    tracing::warn!(
        "central: {} ({error}); using the last good copy (version {}, {})",
        link.shown(),
        doc.version,
        copy.display()
    );
    status.failed("policy", &error);
    status.with(|s| {
        s.policy_from_copy = true;
        s.policy_version = doc.version.clone();
        s.site = doc.site.clone();
    });
    Ok((doc, config))
}

/// Writes the last good copy (owner only: it holds password hashes), replacing the old one
/// whole.
fn save_copy(path: &Path, doc: &PolicyDoc) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let tmp = path.with_extension("json.new");
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&serde_json::to_vec(doc).unwrap_or_default())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().with_context(|| format!("cannot keep the policy in {}", path.display()))
}

/// The data folder a site's configuration names (its own file is checked whole only with the
/// central's groups, which its networks name).
pub(crate) fn site_data_dir(
    local_text: &str,
    local_path: Option<&Path>,
) -> anyhow::Result<PathBuf> {
    let table: toml::Table = toml::from_str(local_text).map_err(|e| {
        UsageError(format!(
            "configuration {}: {e}",
            local_path.map_or_else(|| "(built-in)".into(), |p| p.display().to_string())
        ))
    })?;
    let dir = table
        .get("serve")
        .and_then(|s| s.get("data_dir"))
        .and_then(|d| d.as_str())
        .map_or_else(|| Config::default().serve.data_dir, PathBuf::from);
    Ok(match local_path.and_then(Path::parent) {
        Some(base) if dir.is_relative() => base.join(dir),
        _ => dir,
    })
}

/// The site's configuration with the central's `[groups]` and `[lists]` (each list's `url`
/// the central's) after it — the site's own file word for word first, so that a mistake in it
/// is reported at its own line; the monitoring and console off (they are the central's); the
/// block page's links to the central's console unless the site names another.
pub(crate) fn gateway_config(
    local_text: &str,
    local_path: Option<&Path>,
    doc: &PolicyDoc,
    link: &Link,
) -> anyhow::Result<Config> {
    let shown = local_path.map_or_else(
        || "the site's configuration".into(),
        |p| p.display().to_string(),
    );
    let local: toml::Table = toml::from_str(local_text)
        .map_err(|e| UsageError(format!("configuration {shown}: {e}")))?;
    for key in ["groups", "lists"] {
        if local.contains_key(key) {
            return Err(UsageError(format!(
                "configuration {shown}: [{key}] comes from the central at a site gateway; remove it from this file (the central's `{key}` are used)"
            ))
            .into());
        }
    }
    let mut central: toml::Table =
        toml::from_str(&doc.policy).context("the policy from the central is not TOML")?;
    if let Some(toml::Value::Array(sources)) = central
        .get_mut("lists")
        .and_then(|l| l.as_table_mut())
        .and_then(|l| l.get_mut("source"))
    {
        for s in sources {
            if let toml::Value::Table(t) = s {
                let name = t
                    .get("name")
                    .and_then(|n| n.as_str())
                    .unwrap_or("")
                    .to_owned();
                t.insert("url".into(), toml::Value::String(link.list_url(&name)));
            }
        }
    }
    let own_lines = local_text.lines().count() + 1;
    let text = format!(
        "{local_text}\n# The central's policy {}:\n{}",
        doc.version,
        toml::to_string(&central)?
    );
    let mut config = Config::from_toml(&text).map_err(|e| {
        UsageError(format!(
            "configuration {shown} with the central's groups and lists (lines after {own_lines} are the central's): {e}"
        ))
    })?;
    config.alerts.enabled = false;
    config.console.enabled = false;
    if config.proxy.console_url.is_empty() {
        config.proxy.console_url = doc.console_url.clone();
    }
    config.resolve_paths(local_path.and_then(Path::parent).unwrap_or(Path::new(".")));
    // The portal's briefings and acceptances are the central's records, not yet carried to and
    // from sites: a site would let people through without the briefing. Refused, not skipped.
    if let Some(n) = config
        .networks()
        .iter()
        .find(|n| n.login == lookout_config::LoginMode::Portal)
    {
        return Err(UsageError(format!(
            "networks: {} has login = \"portal\", which a site gateway does not offer yet (the e-safety briefing and its acceptances live at the central); use \"required\" or \"optional\" at sites",
            n.net
        ))
        .into());
    }
    Ok(config)
}

/// The configuration `doc` makes with the site's file, checked as `serve` checks it (its
/// groups build a policy).
pub(crate) fn site_config(
    local_text: &str,
    local_path: Option<&Path>,
    doc: &PolicyDoc,
    link: &Link,
) -> anyhow::Result<Config> {
    let config = gateway_config(local_text, local_path, doc, link)?;
    config.validate_serve()?;
    config.policy()?;
    Ok(config)
}

/// Puts a policy's accounts and reviewed entries in force.
pub(crate) async fn apply(
    doc: &PolicyDoc,
    store: &Store,
    policy: &lookout_policy::Policy,
) -> anyhow::Result<()> {
    let users: Vec<SiteUser> = doc
        .users
        .iter()
        .map(|u| SiteUser {
            username: u.username.clone(),
            display_name: u.display_name.clone(),
            group: u.group.clone(),
            password_hash: u.password_hash.clone(),
            disabled: u.disabled,
        })
        .collect();
    store.sync_site_users(&users).await?;
    lookout_console::set_allows(
        policy,
        doc.reviewed
            .iter()
            .map(|a| (a.group.as_str(), a.entry.as_str())),
    )
    .map_err(|e| anyhow::anyhow!("entries allowed after review: {e}"))?;
    Ok(())
}

/// What a running gateway has that a standalone server does not.
pub(crate) struct SiteRun {
    pub(crate) link: Link,
    pub(crate) doc: PolicyDoc,
    pub(crate) status: Arc<SiteStatus>,
    pub(crate) data_dir: PathBuf,
    /// Cancelled when the central's `[groups]` or `[lists]` changed: serving stops and starts
    /// again with them.
    pub(crate) restart: CancellationToken,
    /// The proxy, once built: it forgets remembered sign-ins when the accounts change.
    pub(crate) proxy: std::sync::OnceLock<Arc<lookout_proxy::Proxy>>,
    /// The site's own configuration file (text and path), which a new policy must fit.
    pub(crate) local_text: String,
    pub(crate) local_path: Option<PathBuf>,
    /// The new policy and its configuration, checked, when `restart` is cancelled.
    pub(crate) next: Mutex<Option<(PolicyDoc, Config)>>,
}

/// Asks the central every [`POLL_EVERY`] whether the policy changed; puts accounts and
/// reviewed entries in force at once, has the lists checked when one changed, and asks for a
/// restart of serving when the groups or lists themselves changed.
pub(crate) async fn keep_policy(
    site: Arc<SiteRun>,
    store: Store,
    policy: Arc<lookout_policy::Policy>,
    lists_changed: tokio::sync::mpsc::Sender<()>,
    stop: CancellationToken,
) {
    let mut current = site.doc.clone();
    let copy = site.data_dir.join(POLICY_COPY);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(POLL_EVERY) => {}
        }
        let doc = match site.link.policy(Some(&current.version)).await {
            Ok(None) => {
                site.status.reached();
                continue;
            }
            Ok(Some(doc)) => doc,
            Err(e) => {
                site.status.failed("policy", &e);
                continue;
            }
        };
        if doc.policy != current.policy || doc.console_url != current.console_url {
            // Checked before anything changes: a policy this site cannot run is refused and the
            // one in use stays (and stays the last good copy).
            match site_config(
                &site.local_text,
                site.local_path.as_deref(),
                &doc,
                &site.link,
            ) {
                Err(e) => {
                    site.status.reached();
                    site.status.refuse(format!(
                        "the central's new groups or lists (policy {}) do not fit this site: {e:#}; serving goes on with policy {}",
                        doc.version, current.version
                    ));
                    continue;
                }
                Ok(config) => {
                    site.status.reached();
                    site.status.accepted();
                    if let Err(e) = save_copy(&copy, &doc) {
                        tracing::warn!("central: {e:#}");
                    }
                    tracing::info!(
                        "central: the groups or lists changed (policy {}); serving starts again with them",
                        doc.version
                    );
                    *site.next.lock().unwrap_or_else(|e| e.into_inner()) = Some((doc, config));
                    site.restart.cancel();
                    return;
                }
            }
        }
        site.status.reached();
        site.status.accepted();
        if let Err(e) = save_copy(&copy, &doc) {
            tracing::warn!("central: {e:#}");
        }
        if let Err(e) = apply(&doc, &store, &policy).await {
            site.status.failed("policy", &format!("{e:#}"));
            continue;
        }
        if doc.users != current.users {
            if let Some(proxy) = site.proxy.get() {
                proxy.identifier.forget_accounts();
            }
        }
        if doc.lists != current.lists {
            let _ = lists_changed.try_send(());
        }
        tracing::info!("central: policy {} in force", doc.version);
        site.status.with(|s| {
            s.policy_version = doc.version.clone();
            s.policy_from_copy = false;
        });
        current = doc;
    }
}

/// Page texts captured by the proxy go to the outbox (a bounded queue in front of the
/// database; a full one drops and counts).
pub(crate) fn page_outbox(
    store: Store,
    status: Arc<SiteStatus>,
    stop: CancellationToken,
) -> lookout_proxy::PageSink {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<OutboxText>(1024);
    let writer_status = status.clone();
    tokio::spawn(async move {
        loop {
            let t = tokio::select! {
                t = rx.recv() => t,
                () = stop.cancelled() => None,
            };
            let Some(t) = t else { break };
            if let Err(e) = store.queue_text(&t).await {
                writer_status.with(|s| s.texts_dropped += 1);
                tracing::warn!("central: a page text could not be kept for the central: {e}");
            }
        }
        // What is already queued is still kept.
        while let Ok(t) = rx.try_recv() {
            let _ = store.queue_text(&t).await;
        }
    });
    lookout_proxy::PageSink(Arc::new(move |page: lookout_proxy::PageCapture| {
        let Job {
            at_ms,
            source,
            mut text,
            location,
            subject,
        } = crate::serve::page_job(page);
        if text.len() > MAX_TEXT {
            let mut end = MAX_TEXT;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
        }
        let t = OutboxText {
            id: 0,
            at_ms,
            source: source.slug().to_owned(),
            text,
            location,
            subject,
        };
        if tx.try_send(t).is_err() {
            status.with(|s| s.texts_dropped += 1);
        }
    }))
}

/// Sends the outbox to the central, oldest first, until stopped; waits and tries again
/// (1 s, doubling to 10 s) while the central cannot be reached.
pub(crate) async fn forward(site: Arc<SiteRun>, store: Store, stop: CancellationToken) {
    let mut backoff = Duration::from_secs(1);
    loop {
        if stop.is_cancelled() {
            return;
        }
        let result = forward_once(&site, &store).await;
        let wait = match result {
            Ok(0) => Duration::from_millis(100),
            Ok(_) => {
                backoff = Duration::from_secs(1);
                continue;
            }
            Err(e) => {
                site.status.failed("sending events", &e);
                let wait = backoff;
                backoff = (backoff * 2).min(Duration::from_secs(10));
                wait
            }
        };
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// Sends one batch; how many events and texts were in it (0: nothing to send).
async fn forward_once(site: &SiteRun, store: &Store) -> Result<usize, String> {
    let e = |e: lookout_store::StoreError| format!("the outbox: {e}");
    let acked_events = store.outbox_acked(Outbox::Events).await.map_err(e)?;
    let acked_texts = store.outbox_acked(Outbox::Texts).await.map_err(e)?;
    let acked_gaps = store.outbox_acked(Outbox::Gaps).await.map_err(e)?;
    let gaps = store.outbox_gaps(acked_gaps, 100).await.map_err(e)?;
    let events = store
        .outbox_events(acked_events, EVENTS_PER_BATCH)
        .await
        .map_err(e)?;
    let mut texts = Vec::new();
    let mut bytes = 0;
    for t in store.outbox_texts(acked_texts, 64).await.map_err(e)? {
        if !texts.is_empty() && bytes + t.text.len() > TEXT_BYTES_PER_BATCH {
            break;
        }
        bytes += t.text.len();
        texts.push(t);
    }
    let waiting = store.outbox_backlog(Outbox::Events).await.map_err(e)?
        + store.outbox_backlog(Outbox::Texts).await.map_err(e)?;
    let sending = events.len() + texts.len() + gaps.len();
    site.status.with(|s| s.backlog = waiting);
    if sending == 0 {
        return Ok(0);
    }
    let batch = Batch {
        policy_version: site.status.with(|s| s.policy_version.clone()),
        backlog: (waiting - (events.len() + texts.len()) as i64).max(0),
        gaps: gaps
            .into_iter()
            .map(|(seq, g)| WireGap {
                seq,
                at_ms: g.at_ms,
                dropped: g.dropped,
                cause: g.cause,
            })
            .collect(),
        events: events
            .iter()
            .map(|s| WireEvent::from_stored(site.doc.seq_base + s.id, &s.event))
            .collect(),
        texts: texts
            .into_iter()
            .map(|t| WireText {
                seq: t.id,
                at_ms: t.at_ms,
                source: t.source,
                text: t.text,
                location: t.location,
                username: t.subject.username,
                client_ip: t.subject.client_ip,
                group: t.subject.group,
            })
            .collect(),
    };
    let acked = site.link.send(&batch).await?;
    site.status.reached();
    let events_acked = acked.events_acked - site.doc.seq_base;
    if events_acked > acked_events {
        store
            .outbox_ack(Outbox::Events, events_acked)
            .await
            .map_err(e)?;
    }
    if acked.texts_acked > acked_texts {
        store
            .outbox_ack(Outbox::Texts, acked.texts_acked)
            .await
            .map_err(e)?;
    }
    if acked.gaps_acked > acked_gaps {
        store
            .outbox_ack(Outbox::Gaps, acked.gaps_acked)
            .await
            .map_err(e)?;
    }
    let texts_taken = batch
        .texts
        .iter()
        .filter(|t| t.seq <= acked.texts_acked)
        .count();
    site.status.with(|s| {
        s.events_sent += batch.events.len() as u64;
        s.texts_sent += texts_taken as u64;
        s.backlog = waiting - (batch.events.len() + texts_taken) as i64;
    });
    if texts_taken < batch.texts.len() && batch.events.is_empty() && batch.gaps.is_empty() {
        // The central's scanning queue is full: let it catch up.
        return Err("the central's scanning queue is full".into());
    }
    Ok(sending)
}
