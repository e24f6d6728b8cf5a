//! The `serve` sections: where Lookout keeps its data, the proxy, the DNS filter, the client
//! networks and the activity log. Every key has a default that works on one machine without
//! privileges: proxy on 127.0.0.1:3128, DNS on 127.0.0.1:5353, loopback clients as
//! `learners-u18` (the strictest built-in group), data in `./lookout-data`.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;

use ipnet::IpNet;
use lookout_lists::Category;
use serde::Deserialize;
use toml::Spanned;

use crate::{Checker, Config};

/// `[serve]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeConfig {
    /// Folder for the database (`lookout.db`) and the organisation CA; created if missing.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            data_dir: default_data_dir(),
        }
    }
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("lookout-data")
}

/// `[store]`: where the records are kept. Without a `url`, an SQLite file in the data folder
/// (`<data_dir>/lookout.db`), which needs no server.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// A PostgreSQL server and database, `postgres://user@host:5432/lookout` (parameters such
    /// as `?sslmode=verify-full&sslrootcert=/etc/lookout/pg-ca.pem` as libpq reads them).
    #[serde(default)]
    pub url: Option<Spanned<String>>,
    /// A file holding the database user's password (its first line), so that the password is
    /// not in this file.
    #[serde(default)]
    pub password_file: Option<Spanned<PathBuf>>,
}

/// `[proxy]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyConfig {
    /// Run the HTTP/HTTPS proxy.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Address and port to listen on.
    #[serde(default = "default_proxy_listen")]
    pub listen: Spanned<String>,
    /// Client connections served at once; more are answered 503 and closed.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// The most bytes of request line and headers a client may send.
    #[serde(default = "default_max_header_bytes")]
    pub max_header_bytes: usize,
    /// Seconds a client has to send a request's headers (slow clients are cut off).
    #[serde(default = "default_header_timeout")]
    pub header_timeout_secs: u64,
    /// Seconds a connection or tunnel may stay idle.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout_secs: u64,
    /// Seconds to connect to, and wait for the response headers of, an origin server.
    #[serde(default = "default_upstream_timeout")]
    pub upstream_timeout_secs: u64,
    /// Ports `CONNECT` may reach (HTTPS only, by default).
    #[serde(default = "default_connect_ports")]
    pub connect_ports: Vec<u16>,
    /// Base address of the safeguarding console, for the block page's "report a concern" and
    /// "this should not be blocked" links. Empty: the proxy's own pages.
    #[serde(default)]
    pub console_url: String,
    /// PEM file of extra CA certificates to trust for origin servers (besides the system's).
    #[serde(default)]
    pub upstream_ca_file: Option<PathBuf>,
    /// HTTPS inspection.
    #[serde(default)]
    pub inspect: InspectConfig,
    /// Static addresses for origin host names, used before DNS (like `/etc/hosts`).
    #[serde(default)]
    pub hosts: BTreeMap<String, IpAddr>,
    /// Internal destinations (intranet, printers) the proxy may reach for some groups. Without
    /// one, loopback, the gateway's own addresses and private ranges are refused.
    #[serde(default)]
    pub internal: Vec<InternalConfig>,
}

/// `[[proxy.internal]]`: addresses behind the gateway that groups may reach through it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InternalConfig {
    /// Address range, e.g. `10.20.0.0/16` or `192.168.4.7` (one host).
    pub cidr: Spanned<String>,
    /// Groups that may reach it; empty or missing: every group.
    #[serde(default)]
    pub groups: Vec<Spanned<String>>,
    /// Ports they may reach; empty or missing: every port.
    #[serde(default)]
    pub ports: Vec<u16>,
}

impl InternalConfig {
    /// The address range (`None` if it does not parse; `Config::validate` reports that).
    pub fn net(&self) -> Option<IpNet> {
        parse_net(self.cidr.get_ref())
    }
}

impl Default for ProxyConfig {
    fn default() -> Self {
        toml::from_str("").expect("the defaults parse")
    }
}

/// `[proxy.inspect]`: which HTTPS traffic is decrypted with the organisation CA.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InspectConfig {
    /// Groups whose HTTPS is inspected (default: none).
    #[serde(default)]
    pub groups: Vec<Spanned<String>>,
    /// Categories never inspected, whatever the group.
    #[serde(default = "default_never_inspect")]
    pub never: Vec<Spanned<String>>,
}

impl Default for InspectConfig {
    fn default() -> Self {
        InspectConfig {
            groups: Vec::new(),
            never: default_never_inspect(),
        }
    }
}

/// `[dns]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsConfig {
    /// Run the DNS filter.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Address and port to listen on (UDP and TCP).
    #[serde(default = "default_dns_listen")]
    pub listen: Spanned<String>,
    /// Upstream resolvers (`ip` or `ip:port`), tried in order. Empty: the system's resolvers
    /// from `/etc/resolv.conf`, loopback ones excepted.
    #[serde(default)]
    pub upstreams: Vec<Spanned<String>>,
    /// Answer for blocked names: `nxdomain`, or `block-page` (the addresses below).
    #[serde(default)]
    pub blocked_answer: BlockedAnswerConfig,
    /// IPv4 address of the block page server (required for `block-page`).
    #[serde(default)]
    pub block_page_ipv4: Option<Ipv4Addr>,
    /// IPv6 address of the block page server (AAAA queries get NODATA without one).
    #[serde(default)]
    pub block_page_ipv6: Option<Ipv6Addr>,
    /// Milliseconds to wait for each upstream before trying the next, then SERVFAIL.
    #[serde(default = "default_dns_timeout")]
    pub timeout_ms: u64,
    /// Upstream answers kept in the cache.
    #[serde(default = "default_cache_entries")]
    pub cache_entries: usize,
    /// TTL of Lookout's own answers (blocked names, safe-search CNAMEs), in seconds.
    #[serde(default = "default_dns_ttl")]
    pub ttl: u32,
    /// Take internal addresses (loopback, private, link-local…) out of upstream answers for
    /// public names, so that a web page cannot turn a browser against the local network
    /// (DNS rebinding).
    #[serde(default = "yes")]
    pub rebind_protection: bool,
    /// The organisation's own domains, whose names may have internal addresses (e.g.
    /// `college.internal`; `.local`, `.internal`, `.lan`, `.home.arpa` and single-label names
    /// always may).
    #[serde(default)]
    pub internal_domains: Vec<Spanned<String>>,
}

impl Default for DnsConfig {
    fn default() -> Self {
        toml::from_str("").expect("the defaults parse")
    }
}

/// `dns.blocked_answer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BlockedAnswerConfig {
    /// The name does not exist.
    #[default]
    Nxdomain,
    /// The block page server's address.
    BlockPage,
}

/// `[[networks]]`: a client network, the group its clients get, and whether they must sign in.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkConfig {
    /// Address range, e.g. `10.1.0.0/16` or `192.168.4.7` (one host).
    pub cidr: Spanned<String>,
    /// Group of clients that have not signed in.
    pub group: Spanned<String>,
    /// `optional` (default): credentials, if sent, pick the user's group; `required`: the proxy
    /// asks for them (407) unless the address has a signed-in user.
    #[serde(default)]
    pub login: LoginMode,
}

/// `networks.login`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LoginMode {
    /// Sign-in picks the user's group when given.
    #[default]
    Optional,
    /// Every proxy client must be a known user.
    Required,
    /// Browsers are sent to the portal page to sign in (and accept the e-safety briefing);
    /// the address is then signed in for `[portal] hours`.
    Portal,
}

/// `[retention]`: how many days each kind of record is kept (0: kept until deleted by
/// hand). A daily purge deletes what is older, except anything under a legal hold (an
/// incident open or flagged, and what it names).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// The proxy's activity log.
    #[serde(default = "thirty")]
    pub activity_days: u32,
    /// DNS filter events.
    #[serde(default = "thirty")]
    pub dns_days: u32,
    /// Reviewed and dismissed alerts with their flagged text (open alerts are kept).
    #[serde(default = "a_year")]
    pub alerts_days: u32,
    /// Texts kept because their scan failed.
    #[serde(default = "thirty")]
    pub page_text_days: u32,
    /// Closed incidents. Default 0: kept (statutory guidance keeps child protection records
    /// until the child is 25; set this only as your records policy says).
    #[serde(default)]
    pub incidents_days: u32,
}

fn thirty() -> u32 {
    30
}

fn a_year() -> u32 {
    365
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            activity_days: thirty(),
            dns_days: thirty(),
            alerts_days: a_year(),
            page_text_days: thirty(),
            incidents_days: 0,
        }
    }
}

/// `[training]`: email reminders of training due or overdue (sent through `[alerts.email]`'s
/// mail server to people with an email address on their account).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingConfig {
    /// Send reminders (needs `[alerts.email]`).
    #[serde(default = "yes")]
    pub reminders: bool,
    /// At most one reminder per person per this many days.
    #[serde(default = "seven")]
    pub remind_every_days: u32,
}

fn seven() -> u32 {
    7
}

impl Default for TrainingConfig {
    fn default() -> Self {
        TrainingConfig {
            reminders: yes(),
            remind_every_days: seven(),
        }
    }
}

/// `[ldap]`: the proxy's and the portal's sign-in checked against the organisation's
/// directory (Active Directory, OpenLDAP). Local accounts are checked first and keep
/// working (small sites, break-glass admins).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LdapConfig {
    /// `ldaps://dc1.college.local` (port 636), or `ldap://...` with `starttls = true`; plain
    /// `ldap://` only to this machine.
    pub url: Spanned<String>,
    /// Upgrade an `ldap://` connection with StartTLS.
    #[serde(default)]
    pub starttls: bool,
    /// The service account that searches for users (default: anonymous search).
    #[serde(default)]
    pub bind_dn: Option<Spanned<String>>,
    /// A file holding the service account's password (kept out of this file); relative to
    /// this file's folder.
    #[serde(default)]
    pub bind_password_file: Option<Spanned<PathBuf>>,
    /// Where users and groups are searched, e.g. `DC=college,DC=local`.
    pub base_dn: Spanned<String>,
    /// How a user is found; `{username}` is what they typed, escaped (default: Active
    /// Directory's `(sAMAccountName={username})`; OpenLDAP: `(uid={username})`).
    #[serde(default = "default_user_filter")]
    pub user_filter: Spanned<String>,
    /// `[[ldap.group]]`: directory group → Lookout group, first match wins.
    #[serde(default, rename = "group")]
    pub groups: Vec<LdapGroupConfig>,
    /// The Lookout group of directory users in none of the mapped groups (default: they
    /// cannot sign in).
    #[serde(default)]
    pub default_group: Option<Spanned<String>>,
    /// Seconds to connect and for each directory operation.
    #[serde(default = "default_ldap_timeout")]
    pub timeout_secs: u64,
}

/// `[[ldap.group]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LdapGroupConfig {
    /// The directory group's DN, e.g. `CN=Staff,OU=Groups,DC=college,DC=local`.
    pub dn: Spanned<String>,
    /// The Lookout group its members get.
    pub group: Spanned<String>,
}

fn default_user_filter() -> Spanned<String> {
    Spanned::new(0..0, "(sAMAccountName={username})".to_owned())
}

fn default_ldap_timeout() -> u64 {
    5
}

/// `[portal]`: browser sign-in for networks with `login = "portal"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortalConfig {
    /// Sites reachable before sign-in and acceptance (the organisation's own site, help lines),
    /// each with its subdomains; still filtered by the network's group.
    #[serde(default)]
    pub allow: Vec<Spanned<String>>,
    /// How long a sign-in at an address lasts, in hours.
    #[serde(default = "default_portal_hours")]
    pub hours: u32,
    /// A plain-HTTP listener (usually port 80 on the gateway's address) serving the portal,
    /// `/wpad.dat` and `/proxy.pac` to devices that reach them by name (see `address`), and
    /// otherwise the same proxy.
    #[serde(default)]
    pub listen: Option<Spanned<String>>,
    /// The gateway's IPv4 address as devices reach it: the DNS filter answers the portal's
    /// name (`lookout.invalid`) and WPAD names (`wpad`, `wpad.<domain>`) with it, so browsers
    /// set to detect proxy settings find `/wpad.dat` on the `listen` port.
    #[serde(default)]
    pub address: Option<Ipv4Addr>,
}

fn default_portal_hours() -> u32 {
    8
}

impl Default for PortalConfig {
    fn default() -> Self {
        PortalConfig {
            allow: Vec::new(),
            hours: default_portal_hours(),
            listen: None,
            address: None,
        }
    }
}

/// `[log]`: the activity log.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// Log allowed requests as well as warned and blocked ones (monitoring scans their search
    /// terms and page addresses either way).
    #[serde(default = "yes")]
    pub allowed: bool,
    /// Events waiting to be written; beyond this they are dropped and counted.
    #[serde(default = "default_log_queue")]
    pub queue: usize,
    /// Events written per transaction, at most.
    #[serde(default = "default_log_batch")]
    pub batch: usize,
    /// The longest an event waits to be written, in milliseconds: the writer gathers what
    /// arrives meanwhile into one transaction (fewer commits, each syncing the disk once, cost
    /// the gateway less CPU and I/O). Also the most a `kill -9` can lose. 0: write at once.
    #[serde(default = "default_log_flush_ms")]
    pub flush_ms: u64,
    /// Forward every logged event to a SIEM by syslog, as it is recorded.
    #[serde(default)]
    pub syslog: Option<SyslogConfig>,
}

/// `[log.syslog]`: the activity log forwarded to a SIEM or log server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogConfig {
    /// The collector's address and port, e.g. `"10.0.5.20:514"`.
    pub server: Spanned<String>,
    /// `udp` (one datagram per event) or `tcp` (RFC 6587 octet counting, reconnecting).
    #[serde(default = "default_syslog_protocol")]
    pub protocol: Spanned<String>,
    /// `cef` (ArcSight Common Event Format inside an RFC 5424 message) or `rfc5424` (plain
    /// `key=value` text).
    #[serde(default = "default_syslog_format")]
    pub format: Spanned<String>,
    /// Events waiting to be sent; beyond this they are dropped and counted (the gateway never
    /// waits for the collector).
    #[serde(default = "default_syslog_queue")]
    pub queue: usize,
}

fn default_syslog_protocol() -> Spanned<String> {
    Spanned::new(0..0, "udp".into())
}
fn default_syslog_format() -> Spanned<String> {
    Spanned::new(0..0, "cef".into())
}
fn default_syslog_queue() -> usize {
    10_000
}

impl Default for LogConfig {
    fn default() -> Self {
        toml::from_str("").expect("the defaults parse")
    }
}

fn yes() -> bool {
    true
}
fn default_proxy_listen() -> Spanned<String> {
    Spanned::new(0..0, "127.0.0.1:3128".into())
}
fn default_dns_listen() -> Spanned<String> {
    Spanned::new(0..0, "127.0.0.1:5353".into())
}
fn default_max_connections() -> usize {
    4096
}
fn default_max_header_bytes() -> usize {
    32 * 1024
}
fn default_header_timeout() -> u64 {
    10
}
fn default_idle_timeout() -> u64 {
    60
}
fn default_upstream_timeout() -> u64 {
    15
}
fn default_connect_ports() -> Vec<u16> {
    vec![443]
}
fn default_never_inspect() -> Vec<Spanned<String>> {
    crate::spanned_strs(&["banking", "health"])
}
fn default_dns_timeout() -> u64 {
    2000
}
fn default_cache_entries() -> usize {
    10_000
}
fn default_dns_ttl() -> u32 {
    60
}
fn default_log_queue() -> usize {
    65_536
}
fn default_log_batch() -> usize {
    4096
}
fn default_log_flush_ms() -> u64 {
    200
}

/// The group loopback clients get when no `[[networks]]` are configured.
pub const DEFAULT_LOOPBACK_GROUP: &str = "learners-u18";

/// A validated client network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    /// The addresses.
    pub net: IpNet,
    /// The group's name.
    pub group: String,
    /// Whether sign-in is required.
    pub login: LoginMode,
}

/// Parses `ip`, `ip/len`, `ip:port` or `[ipv6]:port` with `default_port`.
pub fn parse_socket_addr(s: &str, default_port: u16) -> Option<SocketAddr> {
    s.parse::<SocketAddr>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(|ip| (ip, default_port).into()))
}

pub(crate) fn parse_net(s: &str) -> Option<IpNet> {
    s.parse::<IpNet>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from))
}

impl Config {
    /// The client networks, or loopback as [`DEFAULT_LOOPBACK_GROUP`] when none are configured.
    pub fn networks(&self) -> Vec<Network> {
        if self.networks.is_empty() {
            return ["127.0.0.0/8", "::1/128"]
                .iter()
                .map(|n| Network {
                    net: n.parse().expect("loopback parses"),
                    group: DEFAULT_LOOPBACK_GROUP.into(),
                    login: LoginMode::Optional,
                })
                .collect();
        }
        self.networks
            .iter()
            .filter_map(|n| {
                Some(Network {
                    net: parse_net(n.cidr.get_ref())?,
                    group: n.group.get_ref().clone(),
                    login: n.login,
                })
            })
            .collect()
    }

    /// What `serve` needs beyond [`Config::validate`]: a group for the default networks.
    pub fn validate_serve(&self) -> Result<(), crate::ConfigError> {
        if self.networks.is_empty() && !self.groups.contains_key(DEFAULT_LOOPBACK_GROUP) {
            return Err(crate::ConfigError::Invalid(vec![crate::Problem {
                key: "networks".into(),
                line: None,
                message: format!("without a `{DEFAULT_LOOPBACK_GROUP}` group, say which client networks may use Lookout and their group: [[networks]] cidr = \"10.0.0.0/8\" group = \"...\""),
            }]));
        }
        Ok(())
    }

    /// The proxy's listening address (validated).
    pub fn proxy_listen(&self) -> SocketAddr {
        parse_socket_addr(self.proxy.listen.get_ref(), 3128)
            .unwrap_or(([127, 0, 0, 1], 3128).into())
    }

    /// The portal's plain-HTTP listening address, when set (validated).
    pub fn portal_listen(&self) -> Option<SocketAddr> {
        self.portal
            .listen
            .as_ref()
            .and_then(|l| parse_socket_addr(l.get_ref(), 80))
    }

    /// The DNS filter's listening address (validated).
    pub fn dns_listen(&self) -> SocketAddr {
        parse_socket_addr(self.dns.listen.get_ref(), 53).unwrap_or(([127, 0, 0, 1], 5353).into())
    }

    /// The configured upstream resolvers (validated); empty means "the system's".
    pub fn dns_upstreams(&self) -> Vec<SocketAddr> {
        self.dns
            .upstreams
            .iter()
            .filter_map(|u| parse_socket_addr(u.get_ref(), 53))
            .collect()
    }

    fn validate_ldap(&self, c: &mut Checker<'_>) {
        let Some(l) = &self.ldap else { return };
        match url::Url::parse(l.url.get_ref()) {
            Err(e) => c.problem("ldap.url", Some(&l.url), format!("`{}` is not an address: {e}", l.url.get_ref())),
            Ok(u) => match u.scheme() {
                "ldaps" => {
                    if l.starttls {
                        c.problem("ldap.starttls", Some(&l.url), "ldaps:// is already encrypted; starttls is for ldap://");
                    }
                }
                "ldap" if l.starttls || crate::is_loopback_host(&u) => {}
                "ldap" => c.problem(
                    "ldap.url",
                    Some(&l.url),
                    "passwords would cross the network unencrypted: use ldaps:// or set starttls = true (plain ldap:// only to this machine)",
                ),
                other => c.problem("ldap.url", Some(&l.url), format!("`{other}:` is not a directory address; use ldaps:// or ldap://")),
            },
        }
        let f = l.user_filter.get_ref();
        if !f.contains("{username}") || !f.starts_with('(') || !f.ends_with(')') {
            c.problem("ldap.user_filter", Some(&l.user_filter), "a filter in parentheses with {username} where the name goes, e.g. \"(sAMAccountName={username})\"");
        }
        if l.bind_password_file.is_some() && l.bind_dn.is_none() {
            c.problem(
                "ldap.bind_password_file",
                l.bind_password_file.as_ref(),
                "the password is for the service account: set bind_dn too",
            );
        }
        if l.timeout_secs == 0 || l.timeout_secs > 60 {
            c.problem::<String>("ldap.timeout_secs", None, "between 1 and 60 seconds");
        }
        let known = |g: &Spanned<String>, key: &str, c: &mut Checker<'_>| {
            if !self.groups.contains_key(g.get_ref()) {
                c.problem(
                    key.to_owned(),
                    Some(g),
                    format!("no group `{}` is configured", g.get_ref()),
                );
            }
        };
        for (i, g) in l.groups.iter().enumerate() {
            known(&g.group, &format!("ldap.group[{i}].group"), c);
        }
        if let Some(g) = &l.default_group {
            known(g, "ldap.default_group", c);
        }
        if l.groups.is_empty() && l.default_group.is_none() {
            c.problem::<String>("ldap", None, "map at least one directory group to a Lookout group ([[ldap.group]]) or set default_group, or nobody can sign in");
        }
    }

    fn validate_store(&self, c: &mut Checker<'_>) {
        if let Some(f) = &self.store.password_file {
            if self.store.url.is_none() {
                c.problem(
                    "store.password_file",
                    Some(f),
                    "the password is for a PostgreSQL server: set store.url too",
                );
            }
        }
        let Some(url) = &self.store.url else { return };
        match url::Url::parse(url.get_ref()) {
            Err(e) => c.problem(
                "store.url",
                Some(url),
                format!("not a database address: {e}, e.g. \"postgres://lookout@db.college.test/lookout\""),
            ),
            Ok(u) if !matches!(u.scheme(), "postgres" | "postgresql") => c.problem(
                "store.url",
                Some(url),
                format!(
                    "`{}:` is not a PostgreSQL address; use postgres://, or leave store.url out for SQLite in the data folder",
                    u.scheme()
                ),
            ),
            Ok(u) if u.path().trim_start_matches('/').is_empty() => c.problem(
                "store.url",
                Some(url),
                "name the database, e.g. \"postgres://lookout@db.college.test/lookout\"",
            ),
            Ok(u) if u.password().is_some() && self.store.password_file.is_some() => c.problem(
                "store.url",
                Some(url),
                "the password is both in the address and in store.password_file: keep one (the file)",
            ),
            Ok(_) => {}
        }
    }

    pub(crate) fn validate_gateway(&self, c: &mut Checker<'_>) {
        self.validate_store(c);
        self.validate_ldap(c);
        if let Some(l) = &self.portal.listen {
            if parse_socket_addr(l.get_ref(), 80).is_none() {
                c.problem(
                    "portal.listen",
                    Some(l),
                    format!(
                        "`{}` is not an address and port, e.g. \"0.0.0.0:80\"",
                        l.get_ref()
                    ),
                );
            } else if !self.proxy.enabled {
                c.problem(
                    "portal.listen",
                    Some(l),
                    "the portal is served by the proxy: set `proxy.enabled = true`",
                );
            }
        }
        if self.proxy.enabled && parse_socket_addr(self.proxy.listen.get_ref(), 3128).is_none() {
            c.problem(
                "proxy.listen",
                Some(&self.proxy.listen),
                format!(
                    "`{}` is not an address and port, e.g. \"0.0.0.0:3128\"",
                    self.proxy.listen.get_ref()
                ),
            );
        }
        if self.proxy.max_connections == 0 {
            c.problem::<String>("proxy.max_connections", None, "must be at least 1");
        }
        if self.proxy.max_header_bytes < 8192 {
            c.problem::<String>(
                "proxy.max_header_bytes",
                None,
                "must be at least 8192 (browsers send cookies)",
            );
        }
        for (k, v) in [
            ("proxy.header_timeout_secs", self.proxy.header_timeout_secs),
            ("proxy.idle_timeout_secs", self.proxy.idle_timeout_secs),
            (
                "proxy.upstream_timeout_secs",
                self.proxy.upstream_timeout_secs,
            ),
        ] {
            if v == 0 {
                c.problem::<String>(k, None, "must be at least 1 second");
            }
        }
        let url = &self.proxy.console_url;
        if !(url.is_empty() || url.starts_with("http://") || url.starts_with("https://")) {
            c.problem::<String>(
                "proxy.console_url",
                None,
                format!(
                    "`{}` must start with http:// or https://",
                    self.proxy.console_url
                ),
            );
        }
        for g in &self.proxy.inspect.groups {
            if !self.groups.contains_key(g.get_ref()) {
                c.problem(
                    "proxy.inspect.groups",
                    Some(g),
                    format!("no group is named `{}`", g.get_ref()),
                );
            }
        }
        c.categories("proxy.inspect.never", &self.proxy.inspect.never);
        for name in self.proxy.hosts.keys() {
            let valid = lookout_lists::NormUrl::parse(name)
                .is_ok_and(|u| u.host() == name.to_ascii_lowercase().trim_end_matches('.'));
            if !valid {
                c.problem::<String>("proxy.hosts", None, format!("`{name}` is not a host name"));
            }
        }

        for (i, n) in self.proxy.internal.iter().enumerate() {
            let key = format!("proxy.internal[{i}].cidr");
            match n.net() {
                None => c.problem(
                    key,
                    Some(&n.cidr),
                    format!(
                        "`{}` is not an address range, e.g. \"10.20.0.0/16\"",
                        n.cidr.get_ref()
                    ),
                ),
                Some(net) => {
                    use lookout_policy::AddrClass;
                    let class = AddrClass::of(net.network());
                    if matches!(
                        class,
                        AddrClass::Unspecified
                            | AddrClass::LinkLocal
                            | AddrClass::Multicast
                            | AddrClass::Reserved
                    ) {
                        c.problem(
                            key,
                            Some(&n.cidr),
                            format!(
                                "`{}` starts with {}, which the proxy never reaches (name the internal range itself, e.g. \"10.20.0.0/16\")",
                                n.cidr.get_ref(),
                                class.describe()
                            ),
                        );
                    }
                }
            }
            for g in &n.groups {
                if !self.groups.contains_key(g.get_ref()) {
                    c.problem(
                        format!("proxy.internal[{i}].groups"),
                        Some(g),
                        format!("no group is named `{}`", g.get_ref()),
                    );
                }
            }
            if n.ports.contains(&0) {
                c.problem::<String>(
                    format!("proxy.internal[{i}].ports"),
                    None,
                    "ports are 1 to 65535",
                );
            }
        }

        if self.dns.enabled && parse_socket_addr(self.dns.listen.get_ref(), 53).is_none() {
            c.problem(
                "dns.listen",
                Some(&self.dns.listen),
                format!(
                    "`{}` is not an address and port, e.g. \"0.0.0.0:53\"",
                    self.dns.listen.get_ref()
                ),
            );
        }
        for u in &self.dns.upstreams {
            if parse_socket_addr(u.get_ref(), 53).is_none() {
                c.problem(
                    "dns.upstreams",
                    Some(u),
                    format!(
                        "`{}` is not an IP address, e.g. \"9.9.9.9\" or \"192.168.0.1:53\"",
                        u.get_ref()
                    ),
                );
            }
        }
        if self.dns.blocked_answer == BlockedAnswerConfig::BlockPage
            && self.dns.block_page_ipv4.is_none()
        {
            c.problem::<String>(
                "dns.block_page_ipv4",
                None,
                "`blocked_answer = \"block-page\"` needs the block page server's IPv4 address",
            );
        }
        c.domains(
            "dns.internal_domains",
            &self.dns.internal_domains,
            "college.internal",
        );
        c.domains("portal.allow", &self.portal.allow, "childline.org.uk");
        let r = &self.retention;
        for (key, days) in [
            ("retention.activity_days", r.activity_days),
            ("retention.dns_days", r.dns_days),
            ("retention.alerts_days", r.alerts_days),
            ("retention.page_text_days", r.page_text_days),
            ("retention.incidents_days", r.incidents_days),
        ] {
            if days > 36_500 {
                c.problem::<String>(key, None, "must be at most 36500 days (0 keeps for ever)");
            }
        }
        if (1..7).contains(&r.alerts_days) || (1..30).contains(&r.incidents_days) {
            c.problem::<String>(
                "retention",
                None,
                "alerts must be kept at least 7 days and incidents at least 30 (or 0: for ever), so the safeguarding team can act on them",
            );
        }
        if !(1..=90).contains(&self.training.remind_every_days) {
            c.problem::<String>(
                "training.remind_every_days",
                None,
                "must be from 1 to 90 (days between two reminders to the same person)",
            );
        }
        if !(1..=14 * 24).contains(&self.portal.hours) {
            c.problem::<String>(
                "portal.hours",
                None,
                "must be between 1 and 336 (two weeks)",
            );
        }
        if self.dns.timeout_ms == 0 {
            c.problem::<String>("dns.timeout_ms", None, "must be at least 1");
        }

        for (i, n) in self.networks.iter().enumerate() {
            if parse_net(n.cidr.get_ref()).is_none() {
                c.problem(
                    format!("networks[{i}].cidr"),
                    Some(&n.cidr),
                    format!(
                        "`{}` is not an address range, e.g. \"10.1.0.0/16\"",
                        n.cidr.get_ref()
                    ),
                );
            }
            if !self.groups.contains_key(n.group.get_ref()) {
                c.problem(
                    format!("networks[{i}].group"),
                    Some(&n.group),
                    format!("no group is named `{}`", n.group.get_ref()),
                );
            }
        }

        if self.log.queue == 0 || self.log.batch == 0 {
            c.problem::<String>("log", None, "`queue` and `batch` must be at least 1");
        }
        if self.log.flush_ms > 1000 {
            c.problem::<String>(
                "log",
                None,
                "`flush_ms` must be at most 1000: events waiting longer would be lost by a crash",
            );
        }
        if let Some(sl) = &self.log.syslog {
            if parse_socket_addr(sl.server.get_ref(), 514).is_none() {
                c.problem(
                    "log.syslog.server",
                    Some(&sl.server),
                    format!(
                        "`{}` is not an address and port (e.g. \"10.0.5.20:514\")",
                        sl.server.get_ref()
                    ),
                );
            }
            if !matches!(sl.protocol.get_ref().as_str(), "udp" | "tcp") {
                c.problem(
                    "log.syslog.protocol",
                    Some(&sl.protocol),
                    format!("`{}`: expected \"udp\" or \"tcp\"", sl.protocol.get_ref()),
                );
            }
            if !matches!(sl.format.get_ref().as_str(), "cef" | "rfc5424") {
                c.problem(
                    "log.syslog.format",
                    Some(&sl.format),
                    format!("`{}`: expected \"cef\" or \"rfc5424\"", sl.format.get_ref()),
                );
            }
            if sl.queue == 0 {
                c.problem::<String>("log.syslog.queue", None, "must be at least 1");
            }
        }
    }
}

/// The categories `[proxy.inspect] never` names.
pub fn never_inspected(config: &InspectConfig) -> lookout_lists::CategorySet {
    config
        .never
        .iter()
        .filter_map(|c| Category::from_slug(c.get_ref()))
        .collect()
}
