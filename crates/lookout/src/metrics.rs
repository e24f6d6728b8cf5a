//! `GET /metrics` on the console's listener: Lookout's counters in the OpenMetrics text format
//! (Prometheus reads it), for the IT team's own monitoring. Counts only, never a person, an
//! address or a URL; readable only from `[console] metrics_allow` (default: this machine).

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use axum::extract::{ConnectInfo, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use ipnet::IpNet;
use lookout_policy::{Action, ActionCounts};
use lookout_store::{EventLog, Store};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

/// What `/metrics` reads. The proxy and the DNS filter start after the console's router is
/// built, so they are set once they exist.
pub(crate) struct Sources {
    pub(crate) allow: Vec<IpNet>,
    pub(crate) store: Store,
    pub(crate) log: EventLog,
    pub(crate) monitor: lookout_monitor::Monitor,
    pub(crate) syslog: Option<Arc<crate::siem::SyslogStats>>,
    pub(crate) purges: Arc<crate::serve::PurgeStats>,
    pub(crate) lists: lookout_lists::LiveIndex,
    pub(crate) list_stats: Arc<crate::lists::ListStats>,
    pub(crate) proxy: OnceLock<Arc<lookout_proxy::Proxy>>,
    pub(crate) dns: OnceLock<Arc<lookout_dns_server::DnsServer>>,
}

pub(crate) fn router(sources: Arc<Sources>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(sources)
}

async fn metrics(
    State(sources): State<Arc<Sources>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> Response {
    // Only the IPv4-mapped spelling is undone (a dual-stack socket's IPv4 clients): access
    // is by the address the client really has.
    let ip = peer.ip().to_canonical();
    if !sources.allow.iter().any(|n| n.contains(&ip)) {
        return (
            StatusCode::FORBIDDEN,
            format!(
                "{ip} may not read /metrics: add it to [console] metrics_allow in the configuration\n"
            ),
        )
            .into_response();
    }
    // The one figure that needs the database; a failure is reported, not hidden as 0.
    let pending = match sources.store.count_pending_deliveries().await {
        Ok(n) => Some(n),
        Err(e) => {
            tracing::warn!("metrics: counting the alert deliveries owed failed: {e}");
            None
        }
    };
    let sites = match sources.store.gateways().await {
        Ok(g) => g,
        Err(e) => {
            tracing::warn!("metrics: reading the site gateways failed: {e}");
            Vec::new()
        }
    };
    let mut registry = Registry::with_prefix("lookout");
    registry.register_collector(Box::new(Snapshot {
        sources: sources.clone(),
        pending,
        sites,
    }));
    let mut body = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut body, &registry) {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding the metrics: {e}\n"),
        )
            .into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// The counters as they are at one scrape.
struct Snapshot {
    sources: Arc<Sources>,
    pending: Option<i64>,
    /// Site gateways as they last called (site names are places, not people).
    sites: Vec<lookout_store::Gateway>,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Snapshot")
    }
}

/// One counter family with an `action` label.
fn by_action(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    counts: &ActionCounts,
) -> std::fmt::Result {
    let mut family = e.encode_descriptor(
        name,
        help,
        None,
        prometheus_client::metrics::MetricType::Counter,
    )?;
    for action in Action::ALL {
        let c = ConstCounter::new(counts.get(action));
        c.encode(family.encode_family(&[("action", action.as_str())])?)?;
    }
    Ok(())
}

impl Collector for Snapshot {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        use std::sync::atomic::Ordering::Relaxed;
        let s = &self.sources;
        let mut counters: Vec<(&str, &str, u64)> = Vec::new();
        let mut gauges: Vec<(&str, &str, i64)> = Vec::new();
        if let Some(proxy) = s.proxy.get() {
            let c = &proxy.counters;
            counters.extend([
                (
                    "proxy_connections",
                    "Proxy connections accepted",
                    c.connections.load(Relaxed),
                ),
                (
                    "proxy_refused_clients",
                    "Proxy connections refused: the client is outside every network",
                    c.refused_clients.load(Relaxed),
                ),
                (
                    "proxy_refused_busy",
                    "Proxy connections refused: the connection limit was reached",
                    c.refused_busy.load(Relaxed),
                ),
                (
                    "proxy_requests",
                    "Proxy requests handled",
                    c.requests.load(Relaxed),
                ),
            ]);
            by_action(
                &mut e,
                "proxy_decisions",
                "Proxy decisions by action",
                &c.decisions,
            )?;
        }
        if let Some(dns) = s.dns.get() {
            let c = &dns.counters;
            counters.extend([
                (
                    "dns_queries",
                    "DNS query packets received",
                    c.queries.load(Relaxed),
                ),
                (
                    "dns_refused",
                    "DNS queries refused: the client is outside every network",
                    c.refused.load(Relaxed),
                ),
            ]);
            by_action(
                &mut e,
                "dns_decisions",
                "DNS names judged, by action",
                &c.decisions,
            )?;
        }
        let log = s.log.stats();
        let m = s.monitor.stats();
        counters.extend([
            (
                "log_events_queued",
                "Activity events queued for the log",
                log.queued,
            ),
            (
                "log_events_written",
                "Activity events written to the database",
                log.written,
            ),
            (
                "log_events_dropped",
                "Activity events lost (queue full, stopping, or the database refusing writes)",
                log.dropped,
            ),
            (
                "log_transactions",
                "Transactions that wrote activity events",
                log.transactions,
            ),
            (
                "scan_submitted",
                "Texts submitted for risk scanning",
                m.submitted.load(Relaxed),
            ),
            (
                "scan_dropped",
                "Texts not scanned: the scanning queue was full",
                m.dropped.load(Relaxed),
            ),
            ("scan_scanned", "Texts scanned", m.scanned.load(Relaxed)),
            (
                "scan_panics",
                "Scans that panicked (contained; the text scanned again)",
                m.scan_panics.load(Relaxed),
            ),
            ("findings", "Risk findings", m.findings.load(Relaxed)),
            ("alerts", "Alerts raised", m.alerts.load(Relaxed)),
            (
                "store_errors",
                "Findings the database failed to store",
                m.store_errors.load(Relaxed),
            ),
            (
                "retention_purges",
                "Daily retention purges completed",
                s.purges.runs.load(Relaxed),
            ),
            (
                "retention_purges_failed",
                "Daily retention purges that failed",
                s.purges.failed.load(Relaxed),
            ),
            (
                "retention_deleted_rows",
                "Rows the retention purges deleted (all kinds)",
                s.purges.deleted.load(Relaxed),
            ),
        ]);
        let ls = &s.list_stats;
        let lists = s.lists.status();
        counters.extend([
            (
                "list_checks_unchanged",
                "List subscription checks that found the copy current",
                ls.unchanged.load(Relaxed),
            ),
            (
                "list_checks_updated",
                "List subscription checks that put a new copy in place",
                ls.updated.load(Relaxed),
            ),
            (
                "list_checks_failed",
                "List subscription checks that failed (the copy in use stays)",
                ls.failed.load(Relaxed),
            ),
            (
                "list_reloads",
                "Times the lists were loaded again and swapped in while serving",
                ls.reloads.load(Relaxed),
            ),
            (
                "list_reloads_failed",
                "List reloads that failed (the lists in use stay)",
                ls.reloads_failed.load(Relaxed),
            ),
        ]);
        let cache = lookout_lists::host_cache_counts();
        counters.extend([
            (
                "host_cache_hits",
                "Lookups of large lists answered from the host cache",
                cache.hits,
            ),
            (
                "host_cache_misses",
                "Lookups of large lists that probed the host table (host not in the cache)",
                cache.misses,
            ),
        ]);
        gauges.extend([
            (
                "lists_version",
                "Version of the lists in use (1 at the start, one more each swap)",
                lists.version as i64,
            ),
            ("lists_entries", "List entries in use", lists.entries as i64),
            (
                "host_cache_entries",
                "Hosts the host cache of the lists in use can remember (0: no cache)",
                s.lists.load().host_cache_entries() as i64,
            ),
            (
                "list_subscriptions_failing",
                "List subscriptions whose last check failed",
                lists
                    .subscriptions
                    .iter()
                    .filter(|x| x.error.is_some())
                    .count() as i64,
            ),
        ]);
        if let Some(sl) = &s.syslog {
            counters.extend([
                (
                    "syslog_sent",
                    "Events forwarded by syslog",
                    sl.sent.load(Relaxed),
                ),
                (
                    "syslog_dropped",
                    "Events not forwarded: the syslog queue was full",
                    sl.dropped.load(Relaxed),
                ),
                (
                    "syslog_failed",
                    "Events the syslog socket refused",
                    sl.failed.load(Relaxed),
                ),
            ]);
        }
        gauges.extend([
            (
                "log_backlog",
                "Activity events waiting to be written",
                s.log.backlog() as i64,
            ),
            (
                "log_failing",
                "1 while the database refuses the activity log's writes",
                i64::from(s.log.failure().is_some()),
            ),
            (
                "scan_queue",
                "Texts waiting to be scanned",
                s.monitor.queued() as i64,
            ),
        ]);
        if let Some(p) = self.pending {
            gauges.push((
                "deliveries_pending",
                "Alert deliveries (email, webhook) still owed",
                p,
            ));
        }
        for (name, help, v) in counters {
            let c = ConstCounter::new(v);
            c.encode(e.encode_descriptor(name, help, None, c.metric_type())?)?;
        }
        if !self.sites.is_empty() {
            let now = lookout_store::now_ms();
            type Value = fn(&lookout_store::Gateway, i64) -> i64;
            let site_gauges: [(&str, &str, Value); 2] = [
                (
                    "site_backlog",
                    "Events and page texts a site gateway still had to send at its last call",
                    |g, _| g.backlog,
                ),
                (
                    "site_last_seen_seconds",
                    "Seconds since a site gateway last called",
                    |g, now| (now - g.last_seen_ms) / 1000,
                ),
            ];
            for (name, help, value) in site_gauges {
                let mut family = e.encode_descriptor(
                    name,
                    help,
                    None,
                    prometheus_client::metrics::MetricType::Gauge,
                )?;
                for g in &self.sites {
                    ConstGauge::new(value(g, now))
                        .encode(family.encode_family(&[("site", g.site.as_str())])?)?;
                }
            }
            let mut family = e.encode_descriptor(
                "site_events_received",
                "Events received from a site gateway",
                None,
                prometheus_client::metrics::MetricType::Counter,
            )?;
            for g in &self.sites {
                ConstCounter::new(u64::try_from(g.events_received).unwrap_or(0))
                    .encode(family.encode_family(&[("site", g.site.as_str())])?)?;
            }
        }
        for (name, help, v) in gauges {
            let g = ConstGauge::new(v);
            g.encode(e.encode_descriptor(name, help, None, g.metric_type())?)?;
        }
        Ok(())
    }
}
