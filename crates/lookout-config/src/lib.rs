//! Lookout's configuration file: one TOML document, parsed with unknown keys refused, then
//! validated so that every mistake is reported with its key and line.
//!
//! `from_toml` → `validate` (inside `from_toml`) → use. Relative list paths are resolved
//! against the configuration file's folder by [`Config::resolve_paths`].

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use lookout_lists::{Category, CategorySet, NormUrl};
use lookout_policy::{Action, Group, GroupSpec, LocalTime, Policy, Schedule, Weekday, WeekdaySet};
use serde::Deserialize;
use toml::Spanned;

mod gateway;
mod monitor;

pub use gateway::{
    never_inspected, parse_socket_addr, BlockedAnswerConfig, DnsConfig, InspectConfig, LdapConfig,
    LdapGroupConfig, LogConfig, LoginMode, Network, NetworkConfig, PortalConfig, ProxyConfig,
    RetentionConfig, ServeConfig, StoreConfig, SyslogConfig, TrainingConfig,
    DEFAULT_LOOPBACK_GROUP,
};

pub use monitor::{
    parse_hhmm, parse_threshold, AlertsConfig, ConsoleConfig, DigestConfig, E2guardianConfig,
    EmailConfig, ModelConfig, OidcConfig, OidcRuleConfig, ScanConfig, WebhookConfig,
};

/// The commented example printed by `lookout config example`.
pub const EXAMPLE: &str = include_str!("../lookout.example.toml");

/// A configuration that could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML, or has an unknown key or a value of the wrong type.
    #[error(transparent)]
    Syntax(#[from] toml::de::Error),
    /// The file parses but says something Lookout cannot do.
    #[error("{}", Problems(.0))]
    Invalid(Vec<Problem>),
}

/// One validation problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key, e.g. `groups.learners.warn`.
    pub key: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// What is wrong and what to do.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: {}: {}", self.key, self.message),
            None => write!(f, "{}: {}", self.key, self.message),
        }
    }
}

struct Problems<'a>(&'a [Problem]);

impl fmt::Display for Problems<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        write!(
            f,
            "{n} problem{} in the configuration",
            if n == 1 { "" } else { "s" }
        )?;
        for p in self.0 {
            write!(f, "\n  {p}")?;
        }
        Ok(())
    }
}

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Category list sources.
    #[serde(default)]
    pub lists: ListsConfig,
    /// Groups by name. Without a `[groups]` section, [`default_groups`] apply.
    #[serde(default = "default_groups")]
    pub groups: BTreeMap<String, GroupConfig>,
    /// Where `serve` keeps its data.
    #[serde(default)]
    pub serve: ServeConfig,
    /// The database: SQLite in the data folder, or a PostgreSQL server.
    #[serde(default)]
    pub store: StoreConfig,
    /// The HTTP/HTTPS proxy.
    #[serde(default)]
    pub proxy: ProxyConfig,
    /// The DNS filter.
    #[serde(default)]
    pub dns: DnsConfig,
    /// Client networks and their groups (default: loopback as `learners-u18`).
    #[serde(default)]
    pub networks: Vec<NetworkConfig>,
    /// The activity log.
    #[serde(default)]
    pub log: LogConfig,
    /// Risk detection: phrase libraries.
    #[serde(default)]
    pub scan: ScanConfig,
    /// Alerts: thresholds, grouping, email, webhook, digest.
    #[serde(default)]
    pub alerts: AlertsConfig,
    /// The web server (safeguarding API, agents' ingest).
    #[serde(default)]
    pub console: ConsoleConfig,
    /// Browser sign-in for networks with `login = "portal"`.
    #[serde(default)]
    pub portal: PortalConfig,
    /// How long records are kept.
    #[serde(default)]
    pub retention: RetentionConfig,
    /// Training reminders.
    #[serde(default)]
    pub training: TrainingConfig,
    /// Directory sign-in (LDAP / Active Directory) for the proxy and the portal.
    #[serde(default)]
    pub ldap: Option<LdapConfig>,
    /// Console sign-in through an OpenID Connect provider.
    #[serde(default)]
    pub oidc: Option<OidcConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            lists: ListsConfig::default(),
            groups: default_groups(),
            serve: ServeConfig::default(),
            store: StoreConfig::default(),
            proxy: ProxyConfig::default(),
            dns: DnsConfig::default(),
            networks: Vec::new(),
            log: LogConfig::default(),
            scan: ScanConfig::default(),
            alerts: AlertsConfig::default(),
            console: ConsoleConfig::default(),
            portal: PortalConfig::default(),
            retention: RetentionConfig::default(),
            training: TrainingConfig::default(),
            ldap: None,
            oidc: None,
        }
    }
}

/// `[lists]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListsConfig {
    /// Refuse to start if any list has a malformed line (default: report and skip them).
    #[serde(default)]
    pub strict: bool,
    /// `[[lists.source]]` entries.
    #[serde(default, rename = "source")]
    pub sources: Vec<SourceConfig>,
    /// How many recently requested hosts large lists remember what they found for (16 bytes
    /// each; default 65,536, rounded up to a power of two; 0 turns the cache off).
    #[serde(default)]
    pub host_cache: Option<Spanned<u64>>,
}

impl ListsConfig {
    /// The host cache's size as configured (see [`lookout_lists::IndexBuilder::host_cache`]).
    pub fn host_cache(&self) -> usize {
        self.host_cache
            .as_ref()
            .map_or(lookout_lists::DEFAULT_HOST_CACHE, |n| {
                usize::try_from(*n.get_ref()).unwrap_or(usize::MAX)
            })
    }
}

/// How a source is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SourceFormat {
    /// One file; format detected from its content.
    #[default]
    Auto,
    /// A UT1/squidGuard folder of `<category>/domains` and `<category>/urls`.
    Ut1,
    /// A Block List Project folder: `*.txt` hosts lists and `domains-format/*.txt`.
    Blocklistproject,
    /// One file, one domain per line.
    Domains,
    /// One file, one `host/path` per line.
    Urls,
    /// One hosts file.
    Hosts,
    /// One adblock-style file.
    Adblock,
}

impl SourceFormat {
    /// Whether the source is a folder of lists whose categories come from folder/file names.
    pub fn is_folder(self) -> bool {
        matches!(self, SourceFormat::Ut1 | SourceFormat::Blocklistproject)
    }

    /// The list file format, for single-file sources with a declared format.
    pub fn file_format(self) -> Option<lookout_lists::Format> {
        use lookout_lists::Format;
        match self {
            SourceFormat::Domains => Some(Format::Domains),
            SourceFormat::Urls => Some(Format::Urls),
            SourceFormat::Hosts => Some(Format::Hosts),
            SourceFormat::Adblock => Some(Format::Adblock),
            _ => None,
        }
    }
}

/// `[[lists.source]]`: one list file or folder.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Name shown in explanations and statistics.
    pub name: Spanned<String>,
    /// File or folder; relative paths are relative to the configuration file. For a source
    /// with a `url`, where the downloaded copy is kept (default: `<data_dir>/lists/<name>`).
    #[serde(default = "no_path")]
    pub path: Spanned<PathBuf>,
    /// Keep the source up to date from this address (`https://`; plain `http://` only from
    /// this machine). A `.gz` file is unpacked; a folder source (`ut1`, `blocklistproject`)
    /// is downloaded as a `.tar.gz` or `.tar` archive of the folder.
    #[serde(default)]
    pub url: Option<Spanned<String>>,
    /// Minutes between checks for a new copy of a `url` source (default: 1440, daily;
    /// 5 to 10080). The server asks with the copy's ETag and date, so an unchanged list costs
    /// one small request.
    #[serde(default)]
    pub refresh_minutes: Option<Spanned<u64>>,
    /// Layout (default: `auto`, a single file whose format is detected).
    #[serde(default)]
    pub format: SourceFormat,
    /// Categories of a single-file source (required for single files).
    #[serde(default)]
    pub categories: Vec<Spanned<String>>,
    /// Folder sources: load only these list names (default: all that map to a category).
    #[serde(default)]
    pub include: Vec<Spanned<String>>,
    /// Folder sources: skip these list names.
    #[serde(default)]
    pub exclude: Vec<Spanned<String>>,
    /// Folder sources: override the default mapping of a list name to categories; an empty
    /// list skips it.
    #[serde(default)]
    pub map: BTreeMap<String, Vec<Spanned<String>>>,
    /// Refuse to start if this source has a malformed line.
    #[serde(default)]
    pub strict: bool,
}

/// `[groups.<name>]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupConfig {
    /// Blocked categories (default: [`DEFAULT_BLOCK`]). Illegal categories are always blocked.
    #[serde(default = "default_block")]
    pub block: Vec<Spanned<String>>,
    /// Categories shown behind a click-through warning.
    #[serde(default)]
    pub warn: Vec<Spanned<String>>,
    /// Hosts or `host/path` prefixes always allowed (never illegal content).
    #[serde(default)]
    pub allow: Vec<Spanned<String>>,
    /// Hosts or `host/path` prefixes always blocked.
    #[serde(default)]
    pub deny: Vec<Spanned<String>>,
    /// File extensions this group may not download (default: [`DEFAULT_BLOCKED_DOWNLOADS`]).
    #[serde(default = "default_blocked_downloads")]
    pub blocked_downloads: Vec<Spanned<String>>,
    /// Force safe search on search engines (default: on).
    #[serde(default = "yes")]
    pub safe_search: bool,
    /// Force YouTube restricted mode (default: on).
    #[serde(default = "yes")]
    pub youtube_restricted: bool,
    /// `[[groups.<name>.schedule]]` entries.
    #[serde(default)]
    pub schedule: Vec<ScheduleConfig>,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            block: default_block(),
            warn: Vec::new(),
            allow: Vec::new(),
            deny: Vec::new(),
            blocked_downloads: default_blocked_downloads(),
            safe_search: true,
            youtube_restricted: true,
            schedule: Vec::new(),
        }
    }
}

/// `[[groups.<name>.schedule]]`: during `from`–`to` on `days`, `categories` get `action`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// Shown in decisions.
    pub name: String,
    /// Days (`mon`..`sun`; default: every day).
    #[serde(default)]
    pub days: Vec<Spanned<String>>,
    /// Start, `HH:MM`.
    pub from: Spanned<String>,
    /// End, `HH:MM` (`24:00` for midnight); earlier than `from` runs past midnight.
    pub to: Spanned<String>,
    /// `allow`, `warn` or `block`.
    pub action: ActionConfig,
    /// The categories it applies to.
    pub categories: Vec<Spanned<String>>,
}

/// An action as written in the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActionConfig {
    /// `allow`.
    Allow,
    /// `warn`.
    Warn,
    /// `block`.
    Block,
}

impl From<ActionConfig> for Action {
    fn from(a: ActionConfig) -> Action {
        match a {
            ActionConfig::Allow => Action::Allow,
            ActionConfig::Warn => Action::Warn,
            ActionConfig::Block => Action::Block,
        }
    }
}

/// Categories every group blocks unless its `block` says otherwise: the UK Safer Internet
/// Centre's "appropriate filtering" content categories plus the security ones.
pub const DEFAULT_BLOCK: &[&str] = &[
    "pornography",
    "discrimination",
    "hate-speech",
    "extremism",
    "drugs",
    "gambling",
    "self-harm",
    "violence",
    "weapons",
    "malware",
    "phishing",
    "scams",
    "hacking",
    "piracy",
    "circumvention",
];

/// File types no group but IT staff may download: programs, installers, scripts, shortcuts
/// and disk images that can carry them.
pub const DEFAULT_BLOCKED_DOWNLOADS: &[&str] = &[
    "exe",
    "msi",
    "msp",
    "mst",
    "msix",
    "msixbundle",
    "appx",
    "appxbundle",
    "application",
    "bat",
    "cmd",
    "com",
    "cpl",
    "dll",
    "gadget",
    "hta",
    "inf",
    "jar",
    "js",
    "jse",
    "lnk",
    "pif",
    "ps1",
    "psm1",
    "psd1",
    "reg",
    "scr",
    "sct",
    "vb",
    "vbe",
    "vbs",
    "wsc",
    "wsf",
    "wsh",
    "iso",
    "img",
    "vhd",
    "vhdx",
    "apk",
    "dmg",
    "pkg",
    "sh",
];

fn spanned_strs(items: &[&str]) -> Vec<Spanned<String>> {
    items
        .iter()
        .map(|s| Spanned::new(0..0, s.to_string()))
        .collect()
}

fn default_block() -> Vec<Spanned<String>> {
    spanned_strs(DEFAULT_BLOCK)
}

fn default_blocked_downloads() -> Vec<Spanned<String>> {
    spanned_strs(DEFAULT_BLOCKED_DOWNLOADS)
}

fn yes() -> bool {
    true
}

/// The groups used when the configuration defines none: the groups of a further-education
/// college's e-safety policy, safest first.
pub fn default_groups() -> BTreeMap<String, GroupConfig> {
    let with = |extra_block: &[&str], warn: &[&str]| {
        let mut g = GroupConfig::default();
        g.block.extend(spanned_strs(extra_block));
        g.warn = spanned_strs(warn);
        g
    };
    let mut groups = BTreeMap::new();
    groups.insert(
        "learners-u18".into(),
        with(
            &[
                "adult-themes",
                "dating",
                "tiktok",
                "alcohol-tobacco",
                "cults",
                "cheating",
            ],
            &["social-media", "chat", "games"],
        ),
    );
    groups.insert(
        "learners".into(),
        with(&["tiktok", "cheating"], &["dating", "adult-themes"]),
    );
    groups.insert(
        "customers".into(),
        with(&["tiktok"], &["dating", "adult-themes"]),
    );
    groups.insert(
        "guests".into(),
        with(&["adult-themes", "dating", "tiktok", "file-sharing"], &[]),
    );
    groups.insert("staff".into(), with(&[], &["dating", "games"]));
    let mut it = GroupConfig {
        blocked_downloads: Vec::new(),
        ..GroupConfig::default()
    };
    it.block = spanned_strs(&["malware", "phishing", "scams"]);
    groups.insert("it-staff".into(), it);
    groups
}

/// Maps byte offsets to line numbers.
struct Lines<'a>(&'a str);

impl Lines<'_> {
    fn of<T>(&self, s: &Spanned<T>) -> Option<usize> {
        let span = s.span();
        (span.end > 0 && span.start <= self.0.len())
            .then(|| self.0[..span.start].bytes().filter(|&b| b == b'\n').count() + 1)
    }
}

struct Checker<'a> {
    lines: Lines<'a>,
    problems: Vec<Problem>,
}

impl Checker<'_> {
    fn problem<T>(
        &mut self,
        key: impl Into<String>,
        at: Option<&Spanned<T>>,
        message: impl Into<String>,
    ) {
        let line = at.and_then(|s| self.lines.of(s));
        self.problems.push(Problem {
            key: key.into(),
            line,
            message: message.into(),
        });
    }

    /// Each of `names` must be a domain name (`example`: a good one, for the message).
    fn domains(&mut self, key: &str, names: &[Spanned<String>], example: &str) {
        for d in names {
            let name = d.get_ref().trim_end_matches('.').to_ascii_lowercase();
            let valid = !name.is_empty() && NormUrl::parse(&name).is_ok_and(|u| u.host() == name);
            if !valid {
                self.problem(
                    key,
                    Some(d),
                    format!("`{}` is not a domain name, e.g. \"{example}\"", d.get_ref()),
                );
            }
        }
    }

    fn categories(&mut self, key: &str, names: &[Spanned<String>]) -> CategorySet {
        let mut set = CategorySet::EMPTY;
        for name in names {
            match Category::from_slug(name.get_ref()) {
                Some(c) => set.insert(c),
                None => self.problem(
                    key,
                    Some(name),
                    format!(
                        "unknown category `{}` (`lookout lists categories` shows them all)",
                        name.get_ref()
                    ),
                ),
            }
        }
        set
    }
}

impl Config {
    /// Parses and validates a configuration.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text)?;
        config.console.fill_url();
        config.validate(text)?;
        // A subscription without a path keeps its copy in the data folder.
        for s in &mut config.lists.sources {
            if let (Some(url), true) = (&s.url, s.path.get_ref().as_os_str().is_empty()) {
                let path = config.serve.data_dir.join("lists").join(s.name.get_ref());
                s.path = Spanned::new(url.span(), path);
            }
        }
        Ok(config)
    }

    /// Reads, parses and validates a configuration file, resolving relative list paths
    /// against its folder.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut config = Config::from_toml(&text)?;
        config.resolve_paths(path.parent().unwrap_or(Path::new(".")));
        Ok(config)
    }

    /// Makes relative paths (lists, data folder, CA file) relative to `base`.
    pub fn resolve_paths(&mut self, base: &Path) {
        if self.serve.data_dir.is_relative() {
            self.serve.data_dir = base.join(&self.serve.data_dir);
        }
        if let Some(ca) = &mut self.proxy.upstream_ca_file {
            if ca.is_relative() {
                *ca = base.join(&*ca);
            }
        }
        self.resolve_monitor_paths(base);
        if let Some(f) = self.store.password_file.as_mut() {
            if f.get_ref().is_relative() {
                *f = Spanned::new(f.span(), base.join(f.get_ref()));
            }
        }
        let secrets = [
            self.ldap
                .as_mut()
                .and_then(|l| l.bind_password_file.as_mut()),
            self.oidc
                .as_mut()
                .and_then(|o| o.client_secret_file.as_mut()),
        ];
        for f in secrets.into_iter().flatten() {
            if f.get_ref().is_relative() {
                *f = Spanned::new(f.span(), base.join(f.get_ref()));
            }
        }
        for s in &mut self.lists.sources {
            if s.path.get_ref().is_relative() {
                let span = s.path.span();
                *s = SourceConfig {
                    path: Spanned::new(span, base.join(s.path.get_ref())),
                    ..s.clone()
                };
            }
        }
    }

    /// Checks everything that parsing cannot: names, categories, times, entries, and that no
    /// illegal-content category is warned or allowed. `text` is the file, for line numbers.
    pub fn validate(&self, text: &str) -> Result<(), ConfigError> {
        let mut c = Checker {
            lines: Lines(text),
            problems: Vec::new(),
        };
        self.validate_lists(&mut c);
        self.validate_gateway(&mut c);
        self.validate_monitor(&mut c);
        self.validate_oidc(&mut c);
        for (name, group) in &self.groups {
            validate_group(&mut c, name, group);
        }
        if self.groups.is_empty() {
            c.problem::<String>("groups", None, "no groups are defined; define at least one");
        }
        match c.problems.is_empty() {
            true => Ok(()),
            false => Err(ConfigError::Invalid(c.problems)),
        }
    }

    fn validate_lists(&self, c: &mut Checker<'_>) {
        if let Some(n) = &self.lists.host_cache {
            if *n.get_ref() > lookout_lists::MAX_HOST_CACHE as u64 {
                c.problem(
                    "lists.host_cache",
                    Some(n),
                    format!(
                        "at most {} hosts (256 MiB); the default is {}, and 0 turns the cache off",
                        lookout_lists::MAX_HOST_CACHE,
                        lookout_lists::DEFAULT_HOST_CACHE
                    ),
                );
            }
        }
        for (i, s) in self.lists.sources.iter().enumerate() {
            let key = |k: &str| format!("lists.source[{i}].{k}");
            let name = s.name.get_ref();
            if name.trim().is_empty() {
                c.problem(key("name"), Some(&s.name), "a source needs a name");
            }
            if self.lists.sources[..i]
                .iter()
                .any(|o| o.name.get_ref() == name)
            {
                c.problem(
                    key("name"),
                    Some(&s.name),
                    format!("another source is already named `{name}`"),
                );
            }
            match &s.url {
                None if s.path.get_ref().as_os_str().is_empty() => {
                    c.problem(
                        key("name"),
                        Some(&s.name),
                        "a source needs a `path` (a file or folder) or a `url` to download it from",
                    );
                }
                None => {
                    if let Some(r) = &s.refresh_minutes {
                        c.problem(
                            key("refresh_minutes"),
                            Some(r),
                            "only a source with a `url` is refreshed",
                        );
                    }
                }
                Some(url) => {
                    if let Err(message) = check_list_url(url.get_ref()) {
                        c.problem(key("url"), Some(url), message);
                    }
                    if s.path.get_ref().as_os_str().is_empty() && !is_file_name(name) {
                        c.problem(key("name"), Some(&s.name), "the downloaded copy is kept in a file named after the source: use letters, digits, `-`, `_` and `.` (or give a `path`)");
                    }
                    if let Some(r) = &s.refresh_minutes {
                        if !(MIN_REFRESH_MINUTES..=MAX_REFRESH_MINUTES).contains(r.get_ref()) {
                            c.problem(key("refresh_minutes"), Some(r), format!("between {MIN_REFRESH_MINUTES} and {MAX_REFRESH_MINUTES} minutes (a week)"));
                        }
                    }
                }
            }
            if s.format.is_folder() {
                if let Some(first) = s.categories.first() {
                    c.problem(
                        key("categories"),
                        Some(first),
                        "folder sources take their categories from folder and file names; use `map` to change them",
                    );
                }
                for (list, cats) in &s.map {
                    c.categories(&key(&format!("map.{list}")), cats);
                }
            } else {
                c.categories(&key("categories"), &s.categories);
                if s.categories.is_empty() {
                    c.problem(
                        key("categories"),
                        Some(&s.name),
                        format!("source `{name}` is a single list: say which categories it holds, e.g. categories = [\"gambling\"]"),
                    );
                }
                for (k, v) in [("include", &s.include), ("exclude", &s.exclude)] {
                    if let Some(first) = v.first() {
                        c.problem(
                            key(k),
                            Some(first),
                            "only folder sources (ut1, blocklistproject) take this key",
                        );
                    }
                }
                if !s.map.is_empty() {
                    c.problem(
                        key("map"),
                        Some(&s.name),
                        "only folder sources (ut1, blocklistproject) take this key",
                    );
                }
            }
        }
    }

    /// Compiles the groups into a policy.
    pub fn policy(&self) -> Result<Policy, ConfigError> {
        let invalid = |key: String, message: String| {
            ConfigError::Invalid(vec![Problem {
                key,
                line: None,
                message,
            }])
        };
        let mut groups = Vec::new();
        for (name, g) in &self.groups {
            let spec = group_spec(name, g);
            groups.push(
                Group::new(spec).map_err(|e| invalid(format!("groups.{name}"), e.to_string()))?,
            );
        }
        Policy::new(groups).map_err(|e| invalid("groups".into(), e.to_string()))
    }
}

fn validate_group(c: &mut Checker<'_>, name: &str, g: &GroupConfig) {
    let key = |k: &str| format!("groups.{name}.{k}");
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
    {
        c.problem::<String>(
            format!("groups.{name}"),
            None,
            "group names may hold only letters, digits, `-` and `_`",
        );
    }
    let block = c.categories(&key("block"), &g.block);
    c.categories(&key("warn"), &g.warn);
    for cat in &g.warn {
        if let Some(cat_id) = Category::from_slug(cat.get_ref()) {
            if cat_id.is_illegal() {
                c.problem(
                    key("warn"),
                    Some(cat),
                    format!(
                        "`{cat_id}` is illegal content and is always blocked; it cannot be warned"
                    ),
                );
            } else if block.contains(cat_id) {
                c.problem(
                    key("warn"),
                    Some(cat),
                    format!("`{cat_id}` is also in `block`; keep it in one of them"),
                );
            }
        }
    }
    for (list, entries) in [("allow", &g.allow), ("deny", &g.deny)] {
        for e in entries {
            if let Err(err) = NormUrl::parse(e.get_ref().trim_start_matches("*.")) {
                c.problem(key(list), Some(e), format!("`{}`: {err}", e.get_ref()));
            }
        }
    }
    for ext in &g.blocked_downloads {
        let e = ext.get_ref().trim_start_matches('.');
        if e.is_empty()
            || !e
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            c.problem(
                key("blocked_downloads"),
                Some(ext),
                format!("`{}` is not a file extension", ext.get_ref()),
            );
        }
    }
    for (i, s) in g.schedule.iter().enumerate() {
        let key = |k: &str| format!("groups.{name}.schedule[{i}].{k}");
        for d in &s.days {
            if Weekday::parse(d.get_ref()).is_none() {
                c.problem(
                    key("days"),
                    Some(d),
                    format!(
                        "`{}` is not a day (mon, tue, wed, thu, fri, sat, sun)",
                        d.get_ref()
                    ),
                );
            }
        }
        for (k, t) in [("from", &s.from), ("to", &s.to)] {
            if LocalTime::parse_hhmm(t.get_ref()).is_none() {
                c.problem(
                    key(k),
                    Some(t),
                    format!("`{}` is not a time of day as HH:MM", t.get_ref()),
                );
            }
        }
        c.categories(&key("categories"), &s.categories);
        if s.categories.is_empty() {
            c.problem(
                key("categories"),
                Some(&s.from),
                "a schedule needs at least one category",
            );
        }
        if s.action != ActionConfig::Block {
            for cat in &s.categories {
                if Category::from_slug(cat.get_ref()).is_some_and(Category::is_illegal) {
                    c.problem(
                        key("categories"),
                        Some(cat),
                        format!("`{}` is illegal content and is always blocked; no schedule can change that", cat.get_ref()),
                    );
                }
            }
        }
    }
}

/// Converts a validated group's configuration. Unknown names have already been reported by
/// `validate`, so here they are skipped.
fn group_spec(name: &str, g: &GroupConfig) -> GroupSpec {
    let cats = |names: &[Spanned<String>]| -> CategorySet {
        names
            .iter()
            .filter_map(|n| Category::from_slug(n.get_ref()))
            .collect()
    };
    let strings = |v: &[Spanned<String>]| v.iter().map(|s| s.get_ref().clone()).collect();
    GroupSpec {
        name: name.to_owned(),
        block: cats(&g.block),
        warn: cats(&g.warn),
        allow: strings(&g.allow),
        deny: strings(&g.deny),
        blocked_extensions: strings(&g.blocked_downloads),
        safe_search: g.safe_search,
        youtube_restricted: g.youtube_restricted,
        schedules: g
            .schedule
            .iter()
            .map(|s| Schedule {
                name: s.name.clone(),
                days: if s.days.is_empty() {
                    WeekdaySet::ALL
                } else {
                    s.days
                        .iter()
                        .filter_map(|d| Weekday::parse(d.get_ref()))
                        .collect()
                },
                from: LocalTime::parse_hhmm(s.from.get_ref()).unwrap_or(0),
                to: LocalTime::parse_hhmm(s.to.get_ref()).unwrap_or(0),
                action: s.action.into(),
                categories: cats(&s.categories),
            })
            .collect(),
    }
}

/// Shortest and longest time between checks of a list subscription.
pub const MIN_REFRESH_MINUTES: u64 = 5;
pub const MAX_REFRESH_MINUTES: u64 = 7 * 24 * 60;
/// Time between checks of a list subscription when not configured: daily.
pub const DEFAULT_REFRESH_MINUTES: u64 = 24 * 60;

fn no_path() -> Spanned<PathBuf> {
    Spanned::new(0..0, PathBuf::new())
}

fn is_file_name(name: &str) -> bool {
    !name.starts_with('.')
        && !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Whether a list may be downloaded from `url`: HTTPS, or plain HTTP from this machine.
pub fn check_list_url(url: &str) -> Result<url::Url, String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("`{url}` is not a web address: {e}"))?;
    match parsed.scheme() {
        "https" => {}
        "http" if is_loopback_host(&parsed) => {}
        "http" => {
            return Err(format!(
                "`{url}`: lists are downloaded over https:// only (a list fetched over plain http can be changed on the way); http is accepted only from this machine (localhost)"
            ))
        }
        other => return Err(format!("`{url}`: `{other}:` addresses are not downloaded; use https://")),
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(format!("`{url}` has no host"));
    }
    Ok(parsed)
}

/// `localhost` or a loopback address.
pub fn is_loopback_host(url: &url::Url) -> bool {
    match url.host() {
        // Non-special schemes (ldap:) keep addresses as opaque host names.
        Some(url::Host::Domain(d)) => {
            d.eq_ignore_ascii_case("localhost")
                || d.trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|a| a.is_loopback())
        }
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
        None => false,
    }
}

impl SourceConfig {
    /// The same source read from `path` instead (a downloaded copy being checked).
    pub fn at(&self, path: PathBuf) -> SourceConfig {
        SourceConfig {
            path: Spanned::new(self.path.span(), path),
            url: None,
            refresh_minutes: None,
            ..self.clone()
        }
    }

    /// Time between checks of a `url` source.
    pub fn refresh(&self) -> std::time::Duration {
        let minutes = self
            .refresh_minutes
            .as_ref()
            .map_or(DEFAULT_REFRESH_MINUTES, |m| *m.get_ref());
        std::time::Duration::from_secs(minutes * 60)
    }

    /// The categories of a folder source's list, known by `names` (a UT1 folder and its
    /// aliases, or a Block List Project file stem): the `map` override if any, else the
    /// default mapping; `None` to skip it. `include`, `exclude` and `map` may use any name.
    pub fn categories_for(&self, names: &[&str]) -> Option<CategorySet> {
        let mentioned =
            |list: &[Spanned<String>]| list.iter().any(|i| names.contains(&i.get_ref().as_str()));
        let included = self.include.is_empty() || mentioned(&self.include);
        if !included || mentioned(&self.exclude) {
            return None;
        }
        if let Some(cats) = names.iter().find_map(|n| self.map.get(*n)) {
            let set: CategorySet = cats
                .iter()
                .filter_map(|c| Category::from_slug(c.get_ref()))
                .collect();
            return (!set.is_empty()).then_some(set);
        }
        let default = match self.format {
            SourceFormat::Ut1 => lookout_lists::category::ut1_default,
            SourceFormat::Blocklistproject => lookout_lists::category::blocklistproject_default,
            _ => return None,
        };
        names.iter().find_map(|n| default(n))
    }

    /// Every list name the source's `include`, `exclude` and `map` keys mention.
    pub fn named_lists(&self) -> impl Iterator<Item = &str> {
        let listed = self
            .include
            .iter()
            .chain(&self.exclude)
            .map(|s| s.get_ref().as_str());
        listed.chain(self.map.keys().map(String::as_str))
    }

    /// The categories of a single-file source.
    pub fn file_categories(&self) -> CategorySet {
        self.categories
            .iter()
            .filter_map(|c| Category::from_slug(c.get_ref()))
            .collect()
    }
}

#[cfg(test)]
mod tests;
