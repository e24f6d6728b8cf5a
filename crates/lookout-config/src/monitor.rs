//! `[scan]`, `[alerts]` and `[console]`: risk detection, alerting, and the web server.

use std::path::PathBuf;

use lookout_scan::{Risk, Severity};
use serde::Deserialize;
use toml::Spanned;

use crate::{Checker, Config};

/// `[scan]`: risk detection in search terms, page text and agents' text.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScanConfig {
    /// Use the phrase libraries shipped with Lookout.
    #[serde(default = "yes")]
    pub builtin: bool,
    /// The organisation's own phrase files, in Lookout's format (relative paths are relative
    /// to the configuration file).
    #[serde(default)]
    pub phrases: Vec<Spanned<PathBuf>>,
    /// e2guardian / DansGuardian weighted phrase lists, each for one category.
    #[serde(default)]
    pub e2guardian: Vec<E2guardianConfig>,
    /// Bytes of page text scanned per inspected response (text/html and text/plain).
    #[serde(default = "default_page_bytes")]
    pub page_bytes: usize,
    /// The model stage beside the phrases.
    #[serde(default)]
    pub model: ModelConfig,
}

/// `[scan.model]`: the trained text model that scores what the phrases miss.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Refuse to start without the model (instead of running the phrase stage alone).
    #[serde(default)]
    pub required: bool,
    /// Folder with the encoder's `e5-small-q4.bin` (`scripts/fetch-model`).
    /// Relative to the configuration file; `LOOKOUT_MODEL_DIR` overrides it.
    #[serde(default = "default_model_dir")]
    pub dir: PathBuf,
    /// The trained classifier head. Default: `model-head.bin` in the data folder, trained
    /// from the built-in corpus at first start and by `lookout scan train`.
    #[serde(default)]
    pub head: Option<PathBuf>,
    /// Calibrated score at or above which the model reports a category.
    #[serde(default = "default_model_threshold")]
    pub threshold: Spanned<f32>,
    /// Calibrated danger score at or above which a model finding is danger.
    #[serde(default = "default_model_danger")]
    pub danger: Spanned<f32>,
    /// Below this score the model drops a borderline (non-danger) phrase finding.
    #[serde(default = "default_model_veto")]
    pub veto: Spanned<f32>,
    /// "Risky" score at or above which the model reports its top category even though no
    /// category reaches `threshold` (above 1: never).
    #[serde(default = "default_model_gate")]
    pub gate: Spanned<f32>,
    /// Let the n-gram screen keep plainly ordinary texts (no phrase finding, far from
    /// anything risky in training) away from the encoder. `false`: the encoder reads every
    /// text the model stage is given (on this machine's ordinary text the screen kept 16% of
    /// texts away, on everyday chat and searches up to 40%).
    #[serde(default = "yes")]
    pub screen: bool,
    /// Threads running the model (beside the proxy, never on its request path).
    #[serde(default = "default_model_workers")]
    pub workers: usize,
    /// Texts waiting for the model; beyond this the model falls behind and says so (the
    /// phrase stage's findings still go through).
    #[serde(default = "default_model_queue")]
    pub queue: usize,
}

impl Default for ModelConfig {
    fn default() -> Self {
        toml::from_str("").expect("the defaults parse")
    }
}

impl ModelConfig {
    /// The encoder folder, after `LOOKOUT_MODEL_DIR`.
    pub fn dir(&self) -> PathBuf {
        std::env::var_os("LOOKOUT_MODEL_DIR").map_or_else(|| self.dir.clone(), PathBuf::from)
    }

    /// The head file, given the data folder.
    pub fn head(&self, data_dir: &std::path::Path) -> PathBuf {
        self.head
            .clone()
            .unwrap_or_else(|| data_dir.join("model-head.bin"))
    }
}

fn default_model_dir() -> PathBuf {
    PathBuf::from("models/multilingual-e5-small")
}
fn default_model_threshold() -> Spanned<f32> {
    Spanned::new(0..0, 0.5)
}
fn default_model_danger() -> Spanned<f32> {
    Spanned::new(0..0, 0.5)
}
fn default_model_veto() -> Spanned<f32> {
    Spanned::new(0..0, 0.02)
}
fn default_model_gate() -> Spanned<f32> {
    Spanned::new(0..0, 0.8)
}
fn default_model_workers() -> usize {
    1
}
fn default_model_queue() -> usize {
    4096
}

/// `[[scan.e2guardian]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct E2guardianConfig {
    /// The weighted list file.
    pub file: Spanned<PathBuf>,
    /// The category its phrases count towards.
    pub category: Spanned<String>,
}

impl E2guardianConfig {
    /// The category (validated when the configuration was loaded).
    pub fn risk(&self) -> Option<Risk> {
        Risk::from_slug(self.category.get_ref())
    }
}

impl Default for ScanConfig {
    fn default() -> Self {
        toml::from_str("").expect("the defaults parse")
    }
}

fn yes() -> bool {
    true
}
fn default_page_bytes() -> usize {
    256 * 1024
}

impl Config {
    pub(crate) fn validate_monitor(&self, c: &mut Checker<'_>) {
        for (i, e) in self.scan.e2guardian.iter().enumerate() {
            if e.risk().is_none() {
                c.problem(
                    format!("scan.e2guardian[{i}].category"),
                    Some(&e.category),
                    format!(
                        "unknown category `{}` (expected one of: {})",
                        e.category.get_ref(),
                        Risk::ALL.map(Risk::slug).join(", ")
                    ),
                );
            }
        }
        if !self.scan.builtin && self.scan.phrases.is_empty() && self.scan.e2guardian.is_empty() {
            c.problem::<String>(
                "scan.builtin",
                None,
                "risk detection has no phrases: keep `builtin = true` or add `phrases` or `e2guardian` lists",
            );
        }
        if self.scan.page_bytes > 16 * 1024 * 1024 {
            c.problem::<String>("scan.page_bytes", None, "at most 16777216 (16 MiB)");
        }
        let m = &self.scan.model;
        for (key, v) in [
            ("scan.model.threshold", &m.threshold),
            ("scan.model.danger", &m.danger),
            ("scan.model.veto", &m.veto),
        ] {
            if !(0.0..=1.0).contains(v.get_ref()) {
                c.problem(key, Some(v), "a score between 0 and 1");
            }
        }
        if !(0.0..=2.0).contains(m.gate.get_ref()) {
            c.problem(
                "scan.model.gate",
                Some(&m.gate),
                "a score between 0 and 1 (or 2 for never)",
            );
        }
        if m.veto.get_ref() > m.threshold.get_ref() {
            c.problem(
                "scan.model.veto",
                Some(&m.veto),
                "must not be above scan.model.threshold",
            );
        }
        if !(1..=64).contains(&m.workers) {
            c.problem::<String>("scan.model.workers", None, "between 1 and 64");
        }
        if m.queue == 0 {
            c.problem::<String>("scan.model.queue", None, "at least 1");
        }
        self.validate_alerts(c);
    }

    pub(crate) fn resolve_monitor_paths(&mut self, base: &std::path::Path) {
        let resolve = |p: &mut Spanned<PathBuf>| {
            if p.get_ref().is_relative() {
                *p = Spanned::new(p.span(), base.join(p.get_ref()));
            }
        };
        self.scan.phrases.iter_mut().for_each(resolve);
        if self.scan.model.dir.is_relative() {
            self.scan.model.dir = base.join(&self.scan.model.dir);
        }
        if let Some(head) = &mut self.scan.model.head {
            if head.is_relative() {
                *head = base.join(&*head);
            }
        }
        self.scan
            .e2guardian
            .iter_mut()
            .for_each(|e| resolve(&mut e.file));
        for p in [&mut self.console.tls_cert, &mut self.console.tls_key]
            .into_iter()
            .flatten()
        {
            resolve(p);
        }
    }
}

/// `[alerts]`: findings that become alerts, and how the DSL team hears of them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    /// Scan activity and agents' text at all.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Repeated findings about the same person and category within this many minutes are
    /// grouped into one alert.
    #[serde(default = "default_window")]
    pub group_window_minutes: u64,
    /// Texts waiting to be scanned; beyond this they are dropped and counted.
    #[serde(default = "default_scan_queue")]
    pub queue: usize,
    /// Per group, the lowest severity that becomes an alert: `advisory`, `caution`, `danger`
    /// or `off`. Groups not named use `default_threshold`.
    #[serde(default)]
    pub thresholds: std::collections::BTreeMap<String, Spanned<String>>,
    #[serde(default = "default_threshold")]
    pub default_threshold: Spanned<String>,
    /// Danger alerts by email (the category and a link only, never the text).
    #[serde(default)]
    pub email: Option<EmailConfig>,
    /// Danger alerts to a webhook (Microsoft Teams compatible JSON).
    #[serde(default)]
    pub webhook: Option<WebhookConfig>,
    /// A digest of the lower severities by email.
    #[serde(default)]
    pub digest: DigestConfig,
}

/// `[alerts.email]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// SMTP server `host:port`.
    pub server: Spanned<String>,
    /// `starttls` (default), `tls` (implicit, port 465) or `none` (a relay on this host).
    #[serde(default = "default_tls")]
    pub tls: Spanned<String>,
    #[serde(default)]
    pub username: Option<String>,
    /// A file holding the SMTP password (kept out of the configuration).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Sender, e.g. `Lookout <lookout@college.ac.uk>`.
    pub from: Spanned<String>,
    /// The DSL team's addresses.
    pub to: Vec<Spanned<String>>,
}

/// `[alerts.webhook]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// `https://...` (or `http://` on a trusted network).
    pub url: Spanned<String>,
}

/// `[alerts.digest]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DigestConfig {
    /// `daily`, `weekly` (Mondays) or `off`.
    #[serde(default = "default_every")]
    pub every: Spanned<String>,
    /// Local time to send it, `HH:MM`.
    #[serde(default = "default_digest_at")]
    pub at: Spanned<String>,
}

/// `[console]`: the web server for the safeguarding API (and the console to come).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Address and port to listen on.
    #[serde(default = "default_console_listen")]
    pub listen: Spanned<String>,
    /// The address people use to reach it: links in emails, webhooks, block pages and the
    /// first-run message. Not given: the `listen` address (https:// with `tls_cert`), and
    /// `url_given` is false.
    #[serde(default)]
    pub url: String,
    /// Whether `url` was written in the file (rather than made from `listen`).
    #[serde(skip)]
    pub url_given: bool,
    /// Largest request body accepted (agents' ingest batches).
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// The organisation's name, shown in the console and in authenticator apps.
    #[serde(default)]
    pub organisation: String,
    /// Minutes without a request after which a console session ends.
    #[serde(default = "default_idle_minutes")]
    pub idle_minutes: u64,
    /// Hours after signing in after which a console session ends, however busy.
    #[serde(default = "default_session_hours")]
    pub session_hours: u64,
    /// Mark cookies `Secure` (only sent over HTTPS). Default: when `url` starts with https://.
    #[serde(default)]
    pub secure_cookies: Option<bool>,
    /// Who to talk to about a concern, one line each (name, role, room, phone), shown on
    /// concern receipts.
    #[serde(default)]
    pub contacts: Vec<String>,
    /// Addresses or networks that may read `/metrics` (Prometheus); default: this machine only.
    #[serde(default = "default_metrics_allow")]
    pub metrics_allow: Vec<Spanned<String>>,
    /// Serve the console (and the API site gateways call) over HTTPS with this certificate
    /// chain (PEM) — with `tls_key`. Without them it is plain HTTP (put it behind a TLS
    /// proxy, or on this machine only).
    #[serde(default)]
    pub tls_cert: Option<Spanned<PathBuf>>,
    /// The certificate's private key (PEM; readable by Lookout's user only).
    #[serde(default)]
    pub tls_key: Option<Spanned<PathBuf>>,
}

/// `[oidc]`: console sign-in through the organisation's OpenID Connect provider (Microsoft
/// Entra ID, Google Workspace). Local accounts keep signing in with their passwords.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// The issuer: `https://login.microsoftonline.com/<tenant id>/v2.0` (Entra ID; one tenant,
    /// never `common`), `https://accounts.google.com` (Google Workspace).
    pub issuer: Spanned<String>,
    /// The application (client) id registered with the provider.
    pub client_id: Spanned<String>,
    /// A file holding the client secret (kept out of this file; relative to its folder).
    #[serde(default)]
    pub client_secret_file: Option<Spanned<PathBuf>>,
    /// The button's words: "Sign in with <label>".
    #[serde(default = "default_oidc_label")]
    pub label: String,
    /// Scopes asked for besides `openid profile email` (Google needs none; some providers
    /// want `groups`).
    #[serde(default)]
    pub scopes: Vec<String>,
    /// The claim that gives the Lookout user name (default: `preferred_username`, else a
    /// verified `email`).
    #[serde(default)]
    pub username_claim: Option<String>,
    /// `[[oidc.role]]`: claim value → console role, first match wins. People no rule
    /// matches cannot sign in to the console.
    #[serde(default, rename = "role")]
    pub roles: Vec<OidcRuleConfig>,
    /// `[[oidc.group]]`: claim value → Lookout (filtering) group, first match wins.
    #[serde(default, rename = "group")]
    pub groups: Vec<OidcRuleConfig>,
    /// The group of people no group rule matches (default: an existing record keeps its
    /// group; a new person cannot sign in).
    #[serde(default)]
    pub default_group: Option<Spanned<String>>,
    /// Count the provider's word that it used more than one factor (`amr` holds `mfa`) as
    /// the two-factor step roles that see safeguarding records need; otherwise, and when the
    /// provider does not say, Lookout asks for its own code after the provider's sign-in.
    #[serde(default = "yes")]
    pub trust_provider_mfa: bool,
    /// Offer the provider on the portal too (networks with `login = "portal"`): devices go
    /// to the console's address for it, so they must reach the console directly (the PAC
    /// file sends them there), and the provider's sign-in pages must be on `[portal] allow`
    /// (the issuer's own host is added).
    #[serde(default)]
    pub portal: bool,
    /// Seconds for each request to the provider.
    #[serde(default = "default_oidc_timeout")]
    pub timeout_secs: u64,
}

/// `[[oidc.role]]` or `[[oidc.group]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcRuleConfig {
    /// The claim to read (default `groups`; Entra app roles: `roles`; Google: `hd`).
    #[serde(default = "default_oidc_claim")]
    pub claim: String,
    /// The value it must be or, for a list, hold (an Entra group's object id, a domain).
    pub value: Spanned<String>,
    /// For `[[oidc.role]]`: a console role.
    #[serde(default)]
    pub role: Option<Spanned<String>>,
    /// For `[[oidc.group]]`: a Lookout group.
    #[serde(default)]
    pub group: Option<Spanned<String>>,
}

fn default_oidc_label() -> String {
    "your organisation's account".into()
}

fn default_oidc_claim() -> String {
    "groups".into()
}

fn default_oidc_timeout() -> u64 {
    10
}

impl Config {
    pub(crate) fn validate_oidc(&self, c: &mut Checker<'_>) {
        let Some(o) = &self.oidc else { return };
        match url::Url::parse(o.issuer.get_ref()) {
            Err(e) => c.problem(
                "oidc.issuer",
                Some(&o.issuer),
                format!("`{}` is not an address: {e}", o.issuer.get_ref()),
            ),
            Ok(u)
                if u.scheme() == "https"
                    || (u.scheme() == "http" && crate::is_loopback_host(&u)) =>
            {
                if u.path().contains("/common/") || u.path().contains("/organizations/") {
                    c.problem("oidc.issuer", Some(&o.issuer), "name one tenant: https://login.microsoftonline.com/<tenant id>/v2.0 (a multi-tenant issuer would let any organisation's accounts in)");
                }
            }
            Ok(_) => c.problem(
                "oidc.issuer",
                Some(&o.issuer),
                "the issuer must be an https:// address (plain http only to this machine)",
            ),
        }
        if o.client_id.get_ref().trim().is_empty() {
            c.problem(
                "oidc.client_id",
                Some(&o.client_id),
                "the application (client) id registered with the provider",
            );
        }
        match url::Url::parse(&self.console.url) {
            Ok(u) if u.scheme() == "https" || crate::is_loopback_host(&u) => {}
            _ => c.problem::<String>("console.url", None, format!("`{}`{}: OpenID Connect sign-in sends people back to the console, so its address must be https:// (plain http only to this machine)", self.console.url, if self.console.url_given { "" } else { " (not set: made from console.listen)" })),
        }
        if o.timeout_secs == 0 || o.timeout_secs > 60 {
            c.problem::<String>("oidc.timeout_secs", None, "between 1 and 60 seconds");
        }
        if o.portal && !self.console.enabled {
            c.problem::<String>("oidc.portal", None, "the portal's sign-in through the provider runs on the console: keep [console] enabled");
        }
        if o.roles.is_empty() {
            c.problem::<String>("oidc", None, "map at least one claim value to a console role ([[oidc.role]] value = \"...\" role = \"dsl\"), or nobody can sign in");
        }
        for (i, r) in o.roles.iter().enumerate() {
            match &r.role {
                None => c.problem::<String>(
                    format!("oidc.role[{i}]"),
                    None,
                    "set role (one of: learner, staff, governor, dsl, supervisor, it-admin)",
                ),
                Some(role) => {
                    if let Err(e) = role.get_ref().parse::<lookout_auth::Role>() {
                        c.problem(format!("oidc.role[{i}].role"), Some(role), e.to_string());
                    }
                }
            }
            if r.group.is_some() {
                c.problem(
                    format!("oidc.role[{i}].group"),
                    r.group.as_ref(),
                    "a role rule gives a role; give groups with [[oidc.group]]",
                );
            }
        }
        let known = |g: &Spanned<String>, key: String, c: &mut Checker<'_>| {
            if !self.groups.contains_key(g.get_ref()) {
                c.problem(
                    key,
                    Some(g),
                    format!("no group `{}` is configured", g.get_ref()),
                );
            }
        };
        for (i, r) in o.groups.iter().enumerate() {
            match &r.group {
                None => c.problem::<String>(
                    format!("oidc.group[{i}]"),
                    None,
                    "set group (a group under [groups])",
                ),
                Some(g) => known(g, format!("oidc.group[{i}].group"), c),
            }
            if r.role.is_some() {
                c.problem(
                    format!("oidc.group[{i}].role"),
                    r.role.as_ref(),
                    "a group rule gives a group; give roles with [[oidc.role]]",
                );
            }
        }
        if let Some(g) = &o.default_group {
            known(g, "oidc.default_group".into(), c);
        }
    }
}

fn default_metrics_allow() -> Vec<Spanned<String>> {
    ["127.0.0.0/8", "::1"]
        .map(|n| Spanned::new(0..0, n.to_owned()))
        .to_vec()
}

impl Default for AlertsConfig {
    fn default() -> Self {
        toml::from_str("").expect("the defaults parse")
    }
}

impl Default for DigestConfig {
    fn default() -> Self {
        toml::from_str("").expect("the defaults parse")
    }
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        let mut c: ConsoleConfig = toml::from_str("").expect("the defaults parse");
        c.fill_url();
        c
    }
}

impl ConsoleConfig {
    /// Makes `url` from `listen` when the file does not give it: a console moved to another
    /// port must not send people to the default one. An address that means every interface
    /// (`0.0.0.0`, `::`) names this machine's loopback address, which is true only here:
    /// `lookout serve` then says `url` should be set.
    pub(crate) fn fill_url(&mut self) {
        self.url_given = !self.url.is_empty();
        if self.url_given {
            return;
        }
        let scheme = if self.tls_cert.is_some() {
            "https"
        } else {
            "http"
        };
        let addr = crate::parse_socket_addr(self.listen.get_ref(), 8080)
            .unwrap_or(([127, 0, 0, 1], 8080).into());
        let host = match addr.ip() {
            std::net::IpAddr::V4(ip) if ip.is_unspecified() => "127.0.0.1".to_owned(),
            std::net::IpAddr::V6(ip) if ip.is_unspecified() => "[::1]".to_owned(),
            std::net::IpAddr::V4(ip) => ip.to_string(),
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        };
        let port = addr.port();
        self.url = match (scheme, port) {
            ("http", 80) | ("https", 443) => format!("{scheme}://{host}"),
            _ => format!("{scheme}://{host}:{port}"),
        };
    }

    /// Whether the console listens on every interface without `url` saying how staff on
    /// other machines reach it (links then name this machine's loopback address).
    pub fn url_is_local_only(&self) -> bool {
        !self.url_given
            && crate::parse_socket_addr(self.listen.get_ref(), 8080)
                .is_some_and(|a| a.ip().is_unspecified())
    }
}

fn default_window() -> u64 {
    30
}
fn default_scan_queue() -> usize {
    16_384
}
fn default_threshold() -> Spanned<String> {
    Spanned::new(0..0, "caution".into())
}
fn default_tls() -> Spanned<String> {
    Spanned::new(0..0, "starttls".into())
}
fn default_every() -> Spanned<String> {
    Spanned::new(0..0, "daily".into())
}
fn default_digest_at() -> Spanned<String> {
    Spanned::new(0..0, "07:30".into())
}
fn default_console_listen() -> Spanned<String> {
    Spanned::new(0..0, "127.0.0.1:8080".into())
}
fn default_idle_minutes() -> u64 {
    30
}
fn default_session_hours() -> u64 {
    10
}
fn default_max_body() -> usize {
    1024 * 1024
}

/// A threshold: the lowest severity that alerts, or `None` for off.
pub fn parse_threshold(s: &str) -> Result<Option<Severity>, String> {
    match s {
        "off" => Ok(None),
        _ => Severity::from_slug(s)
            .map(Some)
            .ok_or_else(|| format!("`{s}` is not advisory, caution, danger or off")),
    }
}

/// `HH:MM` → minutes after midnight.
pub fn parse_hhmm(s: &str) -> Option<u16> {
    let (h, m) = s.split_once(':')?;
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60 && s.len() == 5).then_some(h * 60 + m)
}

impl Config {
    pub(crate) fn validate_alerts(&self, c: &mut Checker<'_>) {
        let a = &self.alerts;
        let thresholds =
            std::iter::once(("alerts.default_threshold".to_owned(), &a.default_threshold)).chain(
                a.thresholds
                    .iter()
                    .map(|(g, v)| (format!("alerts.thresholds.{g}"), v)),
            );
        for (key, v) in thresholds {
            if let Err(e) = parse_threshold(v.get_ref()) {
                c.problem(key, Some(v), e);
            }
        }
        for (g, v) in &a.thresholds {
            if !self.groups.contains_key(g) {
                c.problem(
                    format!("alerts.thresholds.{g}"),
                    Some(v),
                    format!("no group `{g}` is defined"),
                );
            }
        }
        if a.group_window_minutes == 0 || a.group_window_minutes > 24 * 60 {
            c.problem::<String>(
                "alerts.group_window_minutes",
                None,
                "must be from 1 to 1440",
            );
        }
        if a.queue == 0 {
            c.problem::<String>("alerts.queue", None, "must be at least 1");
        }
        if let Some(e) = &a.email {
            if crate::parse_socket_addr(e.server.get_ref(), 25).is_none()
                && !e.server.get_ref().contains(':')
            {
                c.problem(
                    "alerts.email.server",
                    Some(&e.server),
                    "expected host:port, e.g. \"smtp.college.ac.uk:587\"",
                );
            }
            if !matches!(e.tls.get_ref().as_str(), "starttls" | "tls" | "none") {
                c.problem(
                    "alerts.email.tls",
                    Some(&e.tls),
                    "expected starttls, tls or none",
                );
            }
            for addr in std::iter::once(&e.from).chain(&e.to) {
                if !addr.get_ref().contains('@') {
                    c.problem(
                        "alerts.email",
                        Some(addr),
                        format!("`{}` is not an email address", addr.get_ref()),
                    );
                }
            }
            if e.to.is_empty() {
                c.problem::<String>(
                    "alerts.email.to",
                    None,
                    "name at least one address (the DSL team)",
                );
            }
        }
        if let Some(w) = &a.webhook {
            let u = w.url.get_ref();
            if !(u.starts_with("https://") || u.starts_with("http://")) {
                c.problem(
                    "alerts.webhook.url",
                    Some(&w.url),
                    "expected an http:// or https:// URL",
                );
            }
        }
        if !matches!(
            a.digest.every.get_ref().as_str(),
            "daily" | "weekly" | "off"
        ) {
            c.problem(
                "alerts.digest.every",
                Some(&a.digest.every),
                "expected daily, weekly or off",
            );
        }
        if parse_hhmm(a.digest.at.get_ref()).is_none() {
            c.problem(
                "alerts.digest.at",
                Some(&a.digest.at),
                "expected a time like \"07:30\"",
            );
        }
        if self.console.enabled
            && crate::parse_socket_addr(self.console.listen.get_ref(), 8080).is_none()
        {
            c.problem(
                "console.listen",
                Some(&self.console.listen),
                format!(
                    "`{}` is not an address and port, e.g. \"0.0.0.0:8080\"",
                    self.console.listen.get_ref()
                ),
            );
        }
        if self.console.idle_minutes == 0 || self.console.idle_minutes > 24 * 60 {
            c.problem(
                "console.idle_minutes",
                None::<&Spanned<String>>,
                "expected 1 to 1440 minutes",
            );
        }
        if self.console.session_hours == 0 || self.console.session_hours > 24 * 7 {
            c.problem(
                "console.session_hours",
                None::<&Spanned<String>>,
                "expected 1 to 168 hours",
            );
        }
        match (&self.console.tls_cert, &self.console.tls_key) {
            (Some(cert), None) => c.problem(
                "console.tls_key",
                Some(cert),
                "tls_cert is set but tls_key is not: HTTPS needs both",
            ),
            (None, Some(key)) => c.problem(
                "console.tls_cert",
                Some(key),
                "tls_key is set but tls_cert is not: HTTPS needs both",
            ),
            _ => {}
        }
        for net in &self.console.metrics_allow {
            if crate::gateway::parse_net(net.get_ref()).is_none() {
                c.problem(
                    "console.metrics_allow",
                    Some(net),
                    format!(
                        "`{}` is not an address or network (e.g. \"10.0.5.20\" or \"10.0.5.0/24\")",
                        net.get_ref()
                    ),
                );
            }
        }
    }
}

impl Config {
    /// The networks that may read `/metrics` (those that parse; `validate` names the others).
    pub fn metrics_allow(&self) -> Vec<ipnet::IpNet> {
        self.console
            .metrics_allow
            .iter()
            .filter_map(|n| crate::gateway::parse_net(n.get_ref()))
            .collect()
    }

    /// Whether console cookies are marked `Secure`.
    pub fn console_secure_cookies(&self) -> bool {
        self.console.secure_cookies.unwrap_or_else(|| {
            self.console.url.starts_with("https://") || self.console.tls_cert.is_some()
        })
    }

    /// The console's listening address (validated).
    pub fn console_listen(&self) -> std::net::SocketAddr {
        crate::parse_socket_addr(self.console.listen.get_ref(), 8080)
            .unwrap_or(([127, 0, 0, 1], 8080).into())
    }
}
