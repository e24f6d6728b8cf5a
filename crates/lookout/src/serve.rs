//! `lookout serve`: the gateway — proxy, DNS filter and activity log — until Ctrl-C or
//! SIGTERM, then a graceful stop that writes every queued event.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use lookout_config::{BlockedAnswerConfig, Config, LoginMode};
use lookout_dns::{BlockedAnswer, Settings as DnsSettings};
use lookout_dns_server::{Cache, Clients, DnsServer};
use lookout_monitor::{ApiState, Job, Monitor, Source};
use lookout_policy::{Clock, Destinations, Internal, Networks, Policy};
use lookout_proxy::{
    ClientNet, Identifier, Inspector, Login, PageCapture, PageSink, PortalSettings, Proxy,
    Resolver, Settings,
};
use lookout_store::{AuditEntry, EventLog, NewUser, Role, Store, Subject};
use tokio_util::sync::CancellationToken;

use crate::UsageError;

/// `lookout serve` arguments.
#[derive(clap::Args)]
pub(crate) struct ServeArgs {
    /// Configuration file (default: built-in safe defaults, data in ./lookout-data).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Lookout's own messages on standard error: plain lines, or one JSON object a line
    /// (time, level, message) for log shippers.
    #[arg(long, value_enum, default_value = "text")]
    pub(crate) log_format: LogFormat,
    /// `standalone`: everything on this machine (and the central for any site gateways);
    /// `gateway`: only the proxy and the DNS filter, with the policy from `--central` and the
    /// events sent there.
    #[arg(long, value_enum, default_value = "standalone")]
    role: ServeRole,
    /// A gateway's central: its console's address (https://; http:// only to this machine).
    #[arg(long, required_if_eq("role", "gateway"))]
    central: Option<String>,
    /// A gateway's token (`lookout token add SITE --scope gateway` on the central), first line
    /// of this file (default: `gateway.token` in the data folder).
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// PEM certificates to trust for the central besides the system's (its own CA).
    #[arg(long)]
    central_ca: Option<PathBuf>,
}

/// What `lookout serve` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ServeRole {
    Standalone,
    Gateway,
}

/// How serving ended.
enum Ended {
    /// Ctrl-C or SIGTERM.
    Stopped,
    /// A site gateway's central changed the groups or lists: serve again with them.
    PolicyChanged,
}

/// How Lookout's own messages are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LogFormat {
    Text,
    Json,
}

/// The local wall clock for schedules.
pub(crate) fn local_clock() -> Clock {
    Arc::new(crate::check::now)
}

/// The database file inside the data folder.
pub(crate) fn database_path(config: &Config) -> PathBuf {
    config.serve.data_dir.join("lookout.db")
}

/// Opens (creating if needed) the data folder's database.
pub(crate) async fn open_store(config: &Config) -> anyhow::Result<Store> {
    let dir = &config.serve.data_dir;
    // The records are about children and vulnerable adults: a new data folder is the owner's
    // alone (an existing one keeps the permissions its administrator gave it).
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create the data folder {}", dir.display()))?;
    match &config.store.url {
        Some(url) => {
            let url = postgres_url(config, url.get_ref())?;
            Ok(Store::connect(&url).await?)
        }
        None => Ok(Store::open(&database_path(config)).await?),
    }
}

/// A secret kept in a file of its own (a password, a client secret): its first line, without
/// the line end. `key` names the setting in errors.
pub(crate) fn secret_file(path: &std::path::Path, key: &str) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| UsageError(format!("{key}: cannot read {}: {e}", path.display())))?;
    Ok(text.lines().next().unwrap_or("").to_owned())
}

/// `[store] url` with the password from `[store] password_file` put in.
fn postgres_url(config: &Config, url: &str) -> anyhow::Result<String> {
    let Some(file) = &config.store.password_file else {
        return Ok(url.to_owned());
    };
    let password = secret_file(file.get_ref(), "store.password_file")?;
    let mut parsed = url::Url::parse(url).context("store.url")?;
    parsed
        .set_password(Some(&password))
        .map_err(|()| UsageError("store.url: this address cannot carry a password".into()))?;
    Ok(parsed.into())
}

/// Where the records are, for messages: the file, or the server and database (no password).
pub(crate) fn database_shown(config: &Config) -> String {
    match &config.store.url {
        Some(url) => format!("PostgreSQL {}", lookout_store::shown_url(url.get_ref())),
        None => database_path(config).display().to_string(),
    }
}

/// Runs `work` on the configuration's database (opened, then closed after) on a small runtime:
/// the `user` and `log` commands.
pub(crate) fn with_store<F, Fut>(
    config_path: Option<&std::path::Path>,
    work: F,
) -> anyhow::Result<ExitCode>
where
    F: FnOnce(Config, Store) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<ExitCode>>,
{
    let config = crate::load_config(config_path)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let store = open_store(&config).await?;
        let result = work(config, store.clone()).await;
        store.close().await;
        result
    })
}

/// The runtime the proxy, console and housekeeping share: one worker fewer than the cores,
/// leaving a core to the scanning and log-writing threads and the DNS filter's own runtime, but
/// never fewer than two workers where there are two cores (one on one core).
///
/// One worker on two cores served 11-13% more requests at `wrk -t1 -c4`
/// (`bench/results/proxy-p99-ab.txt`), but it starved connections at a peak: its local queue
/// holds 256 tasks, and the rest wait in the shared queue, which one worker looks at only every
/// few tasks or when its own queue runs dry. `bench/scale-curves`, 1,000 and 10,000
/// connections, two rounds each alternately (`TOKIO_WORKER_THREADS`): p99 255-256 ms and
/// 3.1-3.2 s with one worker against 89-95 ms and 1.28 s with two (25,839-26,545 against
/// 23,572-23,889 requests/s at 10,000). A second worker takes from that queue as soon as it has
/// nothing of its own.
/// `TOKIO_WORKER_THREADS` overrides it.
fn gateway_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        builder.worker_threads(gateway_workers(cores));
    }
    builder
        .enable_all()
        .build()
        .context("cannot start the runtime")
}

/// [`gateway_runtime`]'s workers on `cores` cores: one fewer, but at least two (one core: one).
fn gateway_workers(cores: usize) -> usize {
    cores.saturating_sub(1).max(cores.min(2))
}

pub(crate) fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    if args.role == ServeRole::Gateway {
        return run_gateway(args);
    }
    if args.central.is_some() || args.token_file.is_some() || args.central_ca.is_some() {
        return Err(UsageError(
            "--central, --token-file and --central-ca are for `--role gateway`".into(),
        )
        .into());
    }
    let config = crate::load_config(args.config.as_deref())?;
    config.validate_serve()?;
    let runtime = gateway_runtime()?;
    let subscriber = lookout_loader::subscription::Subscriber::new()?;
    let (policy, lists) = runtime.block_on(prepare(&config, subscriber))?;
    let scanner = if config.alerts.enabled {
        let model = crate::monitoring::model_stage(&config)?;
        Some((crate::monitoring::scanner(&config)?, model))
    } else {
        tracing::info!("monitoring: off (`alerts.enabled = false`)");
        None
    };
    // What the configuration was, for the audit log: a changed file is recorded as a change.
    let text = match &args.config {
        Some(p) => std::fs::read_to_string(p).unwrap_or_default(),
        None => String::new(),
    };
    let source = match &args.config {
        Some(p) => format!(
            "{}; sha256 {}",
            p.display(),
            lookout_auth::secret_hash(&text)
        ),
        None => "built-in defaults".to_owned(),
    };
    // What site gateways take from this configuration.
    let for_sites = crate::site::central_policy(&text)?;
    runtime.block_on(serve(
        config,
        policy,
        lists,
        scanner,
        source,
        Running::Standalone { for_sites },
    ))?;
    Ok(ExitCode::SUCCESS)
}

/// `serve --role gateway`: the policy from the central (or the last good copy), serving until
/// stopped, and again with the new groups and lists whenever the central's change.
fn run_gateway(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let runtime = gateway_runtime()?;
    // A new policy keep_policy checked, to serve with next.
    let mut next = None;
    loop {
        let text = match &args.config {
            Some(p) => std::fs::read_to_string(p)
                .with_context(|| format!("configuration {}", p.display()))?,
            None => String::new(),
        };
        let data_dir = crate::site::site_data_dir(&text, args.config.as_deref())?;
        let token_file = args
            .token_file
            .clone()
            .unwrap_or_else(|| data_dir.join("gateway.token"));
        let link = crate::site::Link::new(
            args.central.as_deref().unwrap_or_default(),
            &token_file,
            args.central_ca.as_deref(),
            &data_dir,
        )?;
        let status = Arc::new(crate::site::SiteStatus::default());
        let (doc, config) = match next.take() {
            Some((doc, config)) => {
                status.start_with(&link, &doc);
                (doc, config)
            }
            None => runtime.block_on(crate::site::first_policy(
                &link,
                &data_dir,
                &status,
                |doc| crate::site::site_config(&text, args.config.as_deref(), doc, &link),
            ))?,
        };
        tracing::info!(
            "gateway: site `{}`, policy {} from the central at {}",
            doc.site,
            doc.version,
            link.shown()
        );
        let (policy, lists) = runtime.block_on(prepare(&config, link.subscriber()?))?;
        let source = format!(
            "site gateway `{}`; central policy {}",
            doc.site, doc.version
        );
        let site = Arc::new(crate::site::SiteRun {
            link,
            doc,
            status,
            data_dir: config.serve.data_dir.clone(),
            restart: CancellationToken::new(),
            proxy: std::sync::OnceLock::new(),
            local_text: text,
            local_path: args.config.clone(),
            next: std::sync::Mutex::new(None),
        });
        match runtime.block_on(serve(
            config,
            policy,
            lists,
            None,
            source,
            Running::Gateway(site.clone()),
        ))? {
            Ended::Stopped => return Ok(ExitCode::SUCCESS),
            Ended::PolicyChanged => {
                next = site.next.lock().unwrap_or_else(|e| e.into_inner()).take();
            }
        }
    }
}

/// The policy and the lists (subscriptions without a copy downloaded first).
async fn prepare(
    config: &Config,
    subscriber: lookout_loader::subscription::Subscriber,
) -> anyhow::Result<(Arc<Policy>, Lists)> {
    let policy = Arc::new(config.policy()?);
    let list_stats = Arc::new(crate::lists::ListStats::default());
    let subscriptions = crate::lists::first_fetch(&config.lists, &subscriber, &list_stats).await?;
    let started = Instant::now();
    let (present, _) = crate::lists::with_copies(&config.lists);
    let loaded = tokio::task::block_in_place(|| lookout_loader::load(&present))
        .map_err(|e| UsageError(format!("lists: {e}")))?;
    tracing::info!(
        "lists: {} entries from {} file(s) in {:.2} s{}",
        loaded.accepted(),
        loaded.files.len(),
        started.elapsed().as_secs_f64(),
        match loaded.rejected() {
            0 => String::new(),
            n => format!(" ({n} malformed line(s) skipped; `lookout lists stats` shows where)"),
        }
    );
    if config.lists.sources.is_empty() {
        tracing::warn!("lists: warning: no category lists are configured, so no site is blocked by category; downloads, safe search and illegal-content lists you add still apply. See `lookout config example`.");
    }
    let status = crate::lists::initial_status(&loaded, subscriptions);
    let index = lookout_lists::LiveIndex::new(loaded.index, status);
    Ok((
        policy,
        Lists {
            index,
            subscriber,
            stats: list_stats,
        },
    ))
}

/// What this `serve` is.
enum Running {
    /// Everything here; `for_sites` is what site gateways take from its configuration.
    Standalone { for_sites: String },
    /// A site gateway.
    Gateway(Arc<crate::site::SiteRun>),
}

pub(crate) fn client_networks<T>(
    config: &Config,
    policy: &Policy,
    value: impl Fn(lookout_policy::GroupId, LoginMode) -> T,
) -> Networks<T> {
    Networks::new(
        config
            .networks()
            .into_iter()
            .filter_map(|n| Some((n.net, value(policy.group_id(&n.group)?, n.login))))
            .collect(),
    )
}

/// The certificates of a PEM file (`key` names the setting or option in errors): at least one.
pub(crate) fn pem_certificates(
    path: &std::path::Path,
    key: &str,
) -> anyhow::Result<Vec<rustls::pki_types::CertificateDer<'static>>> {
    use rustls::pki_types::pem::PemObject;
    let certs = rustls::pki_types::CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| UsageError(format!("{key} {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(UsageError(format!(
            "{key} {}: no certificates in the file",
            path.display()
        ))
        .into());
    }
    Ok(certs)
}

/// The system's resolvers from `/etc/resolv.conf`, except `own` (Lookout itself).
fn system_resolvers(own: SocketAddr) -> Vec<SocketAddr> {
    let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|v| v.trim().split('%').next()?.parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .filter(|a| *a != own)
        .collect()
}

/// Where the proxy may connect for each group: `[[proxy.internal]]`, Lookout's own
/// listeners (added as they are bound) and the machine's addresses (refreshed).
fn destinations(config: &Config, policy: &Policy) -> Destinations {
    let internal = config
        .proxy
        .internal
        .iter()
        .filter_map(|i| {
            Some(Internal {
                net: i.net()?,
                groups: i
                    .groups
                    .iter()
                    .filter_map(|g| policy.group_id(g.get_ref()))
                    .collect(),
                ports: i.ports.clone(),
            })
        })
        .collect();
    let d = Destinations::new(internal, Vec::new());
    d.set_own_addresses(own_addresses());
    d
}

/// The addresses of this machine's interfaces (none if they cannot be read: loopback and
/// private ranges stay refused by their class).
fn own_addresses() -> Vec<IpAddr> {
    match if_addrs::get_if_addrs() {
        Ok(list) => list.into_iter().map(|i| i.ip()).collect(),
        Err(e) => {
            tracing::warn!("proxy: warning: the machine's own addresses could not be read: {e}");
            Vec::new()
        }
    }
}

/// Re-reads the machine's addresses every minute (DHCP, VPNs, new interfaces).
async fn refresh_own_addresses(destinations: Destinations, stop: CancellationToken) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(60)) => {}
        }
        let addrs = tokio::task::spawn_blocking(own_addresses)
            .await
            .unwrap_or_default();
        destinations.set_own_addresses(addrs);
    }
}

/// A listener with a deep accept queue (4,096, as the kernel allows): in a storm of new
/// connections the kernel keeps them waiting rather than dropping SYNs, which clients only
/// retry after 1, 3, 7 seconds.
fn listen_deep(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

async fn bind_error<T>(
    what: &str,
    key: &str,
    addr: SocketAddr,
    r: std::io::Result<T>,
) -> anyhow::Result<T> {
    r.map_err(|e| {
        let hint = match e.kind() {
            std::io::ErrorKind::PermissionDenied => {
                " (ports below 1024 need privileges: run as a service with CAP_NET_BIND_SERVICE, or use a higher port)"
            }
            std::io::ErrorKind::AddrInUse => " (another program is using it)",
            _ => "",
        };
        UsageError(format!("cannot listen for the {what} on {addr} (`{key}`): {e}{hint}")).into()
    })
}

/// The DNS filter's UDP socket and TCP listener, on the same port. With port 0 the UDP socket
/// takes any free port and TCP follows it; that port can already be in use for TCP (another
/// listener of this process, say), so a few other ports are tried before giving up.
async fn bind_dns(
    addr: SocketAddr,
) -> std::io::Result<(tokio::net::UdpSocket, tokio::net::TcpListener)> {
    let tries = if addr.port() == 0 { 20 } else { 1 };
    let mut last = None;
    for _ in 0..tries {
        let udp = tokio::net::UdpSocket::bind(addr).await?;
        match tokio::net::TcpListener::bind(udp.local_addr()?).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::ErrorKind::AddrInUse.into()))
}

/// Records the configuration `serve` started with; a different one from last time is a
/// configuration change on the audit log.
async fn audit_configuration(store: &Store, source: &str) -> anyhow::Result<()> {
    let last = store
        .audit_log(&lookout_store::AuditFilter {
            action: Some("config.".into()),
            limit: Some(1),
            ..Default::default()
        })
        .await?;
    let action = match last.first() {
        Some(r) if r.detail != source => "config.changed",
        _ => "config.loaded",
    };
    store
        .audit(&AuditEntry::new("system", action, "config").detail(source))
        .await?;
    Ok(())
}

fn console_settings(
    config: &Config,
    oidc: Option<Arc<lookout_console::OidcSignIn>>,
) -> anyhow::Result<lookout_console::Settings> {
    Ok(lookout_console::Settings {
        secure_cookies: config.console_secure_cookies(),
        idle: Duration::from_secs(config.console.idle_minutes * 60),
        lifetime: Duration::from_secs(config.console.session_hours * 3600),
        organisation: config.console.organisation.clone(),
        contacts: config.console.contacts.clone(),
        groups: config.groups.keys().cloned().collect(),
        oidc,
        ..lookout_console::Settings::default()
    })
}

/// `[oidc]`: the console's sign-in through the organisation's OpenID Connect provider.
fn oidc_sign_in(config: &Config) -> anyhow::Result<Option<Arc<lookout_console::OidcSignIn>>> {
    use lookout_directory::oidc::{ClaimRule, Oidc, OidcSettings};
    let Some(o) = &config.oidc else {
        return Ok(None);
    };
    let client_secret = match &o.client_secret_file {
        Some(f) => Some(secret_file(f.get_ref(), "oidc.client_secret_file")?),
        None => None,
    };
    let rules =
        |rules: &[lookout_config::OidcRuleConfig],
         to: fn(&lookout_config::OidcRuleConfig) -> Option<&toml::Spanned<String>>| {
            rules
                .iter()
                .filter_map(|r| {
                    Some(ClaimRule {
                        claim: r.claim.clone(),
                        value: r.value.get_ref().clone(),
                        to: to(r)?.get_ref().clone(),
                    })
                })
                .collect()
        };
    let redirect_url = format!(
        "{}/sign-in/oidc/callback",
        config.console.url.trim_end_matches('/')
    );
    let provider = Oidc::new(OidcSettings {
        issuer: o.issuer.get_ref().clone(),
        client_id: o.client_id.get_ref().clone(),
        client_secret,
        redirect_url: redirect_url.clone(),
        scopes: o.scopes.clone(),
        username_claim: o.username_claim.clone(),
        roles: rules(&o.roles, |r| r.role.as_ref()),
        groups: rules(&o.groups, |r| r.group.as_ref()),
        default_group: o.default_group.as_ref().map(|g| g.get_ref().clone()),
        timeout: Duration::from_secs(o.timeout_secs),
        extra_roots: Vec::new(),
    })
    .map_err(|e| UsageError(format!("oidc: {e}")))?;
    tracing::info!(
        "console: sign-in through {} (register {redirect_url} as the redirect URI there)",
        o.issuer.get_ref()
    );
    Ok(Some(Arc::new(lookout_console::OidcSignIn {
        provider,
        label: o.label.clone(),
        trust_provider_mfa: o.trust_provider_mfa,
        portal: o.portal.then(Arc::default),
    })))
}

/// `[console] tls_cert` and `tls_key`: the console's TLS settings (HTTP/1.1), or `None` for
/// plain HTTP.
fn console_tls(config: &Config) -> anyhow::Result<Option<Arc<rustls::ServerConfig>>> {
    use rustls::pki_types::pem::PemObject;
    let (Some(cert), Some(key)) = (&config.console.tls_cert, &config.console.tls_key) else {
        return Ok(None);
    };
    let (cert, key) = (cert.get_ref(), key.get_ref());
    let chain = pem_certificates(cert, "console.tls_cert")?;
    let key = rustls::pki_types::PrivateKeyDer::from_pem_file(key)
        .map_err(|e| UsageError(format!("console.tls_key {}: {e}", key.display())))?;
    let mut tls = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("TLS versions")?
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .map_err(|e| {
        UsageError(format!(
            "console.tls_cert / console.tls_key: the key does not go with the certificate, or cannot be used: {e}"
        ))
    })?;
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(Arc::new(tls)))
}

/// On first run there is nobody to sign in as: create an IT admin, `admin`, with a one-time
/// password printed once (they choose their own, and set up two-factor, at first sign-in).
async fn first_admin(config: &Config, store: &Store) -> anyhow::Result<()> {
    if !store.users_with_role(Role::ItAdmin).await?.is_empty() {
        return Ok(());
    }
    let group = ["it-staff", "staff"]
        .into_iter()
        .find(|g| config.groups.contains_key(*g))
        .map(str::to_owned)
        .or_else(|| config.groups.keys().next().cloned())
        .unwrap_or_else(|| "staff".to_owned());
    let password = lookout_auth::random_secret()[..16].to_owned();
    let name = match store.user("admin").await? {
        None => {
            store
                .add_user(&NewUser {
                    username: "admin".into(),
                    display_name: "IT admin".into(),
                    group,
                    password: None,
                    role: Some(Role::ItAdmin),
                    email: None,
                    team: None,
                })
                .await?;
            "admin"
        }
        Some(_) => {
            store.set_role("admin", Role::ItAdmin).await?;
            "admin"
        }
    };
    store.set_temporary_password(name, &password).await?;
    store
        .audit(
            &AuditEntry::new("system", "user.first-admin", format!("user:{name}"))
                .detail("no IT admin existed; one-time password printed at start-up"),
        )
        .await?;
    println!(
        "\nFIRST RUN: sign in to the console at {} as `{name}` with the one-time password\n\n    {password}\n\nYou will choose your own password and set up two-factor sign-in. This password is not shown again;\nto make another admin later: `lookout user add NAME --group GROUP --role it-admin --password-stdin`.\n",
        config.console.url
    );
    Ok(())
}

/// The lists in use and what keeps them current.
struct Lists {
    index: lookout_lists::LiveIndex,
    subscriber: lookout_loader::subscription::Subscriber,
    stats: Arc<crate::lists::ListStats>,
}

async fn serve(
    config: Config,
    policy: Arc<Policy>,
    lists: Lists,
    scanner: Option<(
        Arc<lookout_scan::Scanner>,
        Option<lookout_monitor::ModelStage>,
    )>,
    config_source: String,
    role: Running,
) -> anyhow::Result<Ended> {
    let store = open_store(&config).await?;
    audit_configuration(&store, &config_source).await?;
    let site = match &role {
        Running::Gateway(site) => Some(site.clone()),
        Running::Standalone { .. } => None,
    };
    // Sign-in through the provider runs on the console (not at a site gateway); the portal
    // offers it through the console when asked to.
    let oidc = match &site {
        None if config.console.enabled => oidc_sign_in(&config)?,
        _ => None,
    };
    let portal_provider = oidc.as_ref().and_then(|o| {
        Some(lookout_proxy::PortalProvider {
            label: o.label.clone(),
            start: format!("{}/portal/oidc", config.console.url.trim_end_matches('/')),
            handoff: o.portal.clone()?,
        })
    });
    // Pages allowed after an IT admin's review apply from the first request (at a site
    // gateway, with the accounts, as the central's policy says).
    match &site {
        Some(site) => crate::site::apply(&site.doc, &store, &policy).await?,
        None => {
            let reviewed = lookout_console::apply_reviewed_allows(&store, &policy)
                .await
                .map_err(|e| anyhow::anyhow!("entries allowed after review: {e}"))?;
            if reviewed > 0 {
                tracing::info!("policy: {reviewed} entr(ies) allowed after review");
            }
        }
    }
    let (mut log, writer) = EventLog::start(
        store.clone(),
        config.log.queue,
        config.log.batch,
        Duration::from_millis(config.log.flush_ms),
    );
    let stop = CancellationToken::new();
    let mut tasks = Vec::new();
    let mut syslog = None;
    let mut syslog_forwarder = None;
    if let Some(sl) = &config.log.syslog {
        let (forwarder, stats) = crate::siem::start(sl, stop.clone())?;
        log = log.with_observer(forwarder.observer());
        syslog_forwarder = Some(forwarder);
        tracing::info!(
            "log: forwarding every logged event to {} by syslog over {}, as {}",
            sl.server.get_ref(),
            sl.protocol.get_ref(),
            sl.format.get_ref()
        );
        syslog = Some(stats);
    }
    let clock = local_clock();
    // A run that never stopped (killed, crashed) lost what its log still had queued: on record.
    let (run, unclean) = store.begin_run().await?;
    for u in &unclean {
        tracing::warn!(
            "activity log: the last run has no clean stop on record (killed or crashed, or the database refused writes at the end); events after {} may be lost ({} were waiting at its last recorded check); recorded as a gap",
            chrono::DateTime::from_timestamp_millis(u.alive_ms)
                .map_or_else(|| u.alive_ms.to_string(), |t| t.to_rfc3339()),
            u.waiting
        );
    }
    tokio::spawn(heartbeat(store.clone(), run, log.clone(), stop.clone()));
    let purges = Arc::new(PurgeStats::default());
    match &site {
        // A gateway's events are deleted once the central has them; its retention is the
        // central's.
        Some(site) => {
            tokio::spawn(crate::site::forward(
                site.clone(),
                store.clone(),
                stop.clone(),
            ));
        }
        None => {
            tokio::spawn(purge_daily(
                store.clone(),
                retention(&config),
                purges.clone(),
                Duration::from_secs(60),
                stop.clone(),
            ));
        }
    }
    let destinations = destinations(&config, &policy);
    tokio::spawn(refresh_own_addresses(destinations.clone(), stop.clone()));
    let index = lists.index.clone();
    // SIGHUP: check the subscriptions and load the lists again now.
    let (hup_tx, hup_rx) = tokio::sync::mpsc::channel(1);
    if let Some(site) = &site {
        tokio::spawn(crate::site::keep_policy(
            site.clone(),
            store.clone(),
            policy.clone(),
            hup_tx.clone(),
            stop.clone(),
        ));
    }
    tokio::spawn(forward_hangups(hup_tx, stop.clone()));
    tokio::spawn(crate::lists::keep_current(
        config.lists.clone(),
        lists.index.clone(),
        lists.subscriber,
        lists.stats.clone(),
        hup_rx,
        stop.clone(),
    ));

    // Monitoring: the activity log's events are scanned; alerts are served by the console.
    let console_stop = CancellationToken::new();
    let mut console_task = None;
    let mut monitor_tasks = None;
    let mut monitor = None;
    let mut metrics: Option<Arc<crate::metrics::Sources>> = None;
    if let Some((scanner, model)) = scanner {
        let settings = crate::monitoring::settings(&config)?;
        let channels: Vec<&str> = [
            settings.email.as_ref().map(|_| "email"),
            settings.webhook.as_ref().map(|_| "webhook"),
        ]
        .into_iter()
        .flatten()
        .collect();
        if config.training.reminders {
            match settings.email.clone() {
                Some(email) => {
                    tokio::spawn(lookout_monitor::reminder_loop(
                        store.clone(),
                        email,
                        config.console.url.clone(),
                        Duration::from_secs(u64::from(config.training.remind_every_days) * 86_400),
                        console_stop.clone(),
                    ));
                }
                None => tracing::info!(
                    "training: no reminders by email (they go through [alerts.email], which is not set)"
                ),
            }
        }
        let (m, t) = Monitor::start(scanner, store.clone(), settings, model);
        log = log.with_decision_observer(m.observer());
        if config.console.enabled {
            let tls = console_tls(&config)?;
            let addr = config.console_listen();
            let listener = bind_error(
                "console",
                "console.listen",
                addr,
                tokio::net::TcpListener::bind(addr).await,
            )
            .await?;
            let console = lookout_console::Console::new(
                store.clone(),
                m.clone(),
                console_settings(&config, oidc.clone())?,
                console_stop.clone(),
            )
            .with_filter(lookout_console::Filter {
                policy: policy.clone(),
                index: index.clone(),
            })
            .with_log(log.clone());
            let app = lookout_monitor::router(
                ApiState {
                    monitor: m.clone(),
                    shutdown: console_stop.clone(),
                },
                config.console.max_body_bytes,
            )
            .merge(lookout_console::router(console.clone()));
            // Site gateways' policy, lists and events.
            let app = match &role {
                Running::Standalone { for_sites } => {
                    app.merge(crate::site::router(crate::site::Central {
                        store: store.clone(),
                        monitor: m.clone(),
                        policy: Arc::new(for_sites.clone()),
                        console_url: config.console.url.clone(),
                        sources: Arc::new(config.lists.sources.clone()),
                        syslog: syslog_forwarder.clone(),
                    }))
                }
                Running::Gateway(_) => app,
            };
            let sources = Arc::new(crate::metrics::Sources {
                allow: config.metrics_allow(),
                store: store.clone(),
                log: log.clone(),
                monitor: m.clone(),
                syslog: syslog.clone(),
                purges: purges.clone(),
                lists: lists.index.clone(),
                list_stats: lists.stats.clone(),
                proxy: Default::default(),
                dns: Default::default(),
            });
            let app = app.merge(crate::metrics::router(sources.clone()));
            metrics = Some(sources);
            tokio::spawn(console.housekeeping(Duration::from_secs(300)));
            destinations.add_listener(listener.local_addr()?);
            tracing::info!(
                "console: listening on {} ({}safeguarding console and API; people use {})",
                listener.local_addr()?,
                if config.console.tls_cert.is_some() {
                    "HTTPS; "
                } else {
                    ""
                },
                config.console.url
            );
            if config.console.url_is_local_only() {
                tracing::warn!(
                    "console: it listens on every interface but console.url is not set, so links in emails, alerts and block pages say {}, which works on this machine only: set console.url to the address staff and learners use",
                    config.console.url
                );
            }
            first_admin(&config, &store).await?;
            console_task = Some(match tls {
                Some(tls) => tokio::spawn(lookout_monitor::serve_api_tls(
                    listener,
                    app,
                    tls,
                    console_stop.clone(),
                )),
                None => tokio::spawn(lookout_monitor::serve_api(
                    listener,
                    app,
                    console_stop.clone(),
                )),
            });
        }
        if let Some((every, at)) = crate::monitoring::digest(&config) {
            tokio::spawn(m.clone().digest_loop(every, at, console_stop.clone()));
        }
        tracing::info!(
            "monitoring: scanning search terms, page URLs and page text; danger alerts by {}",
            if channels.is_empty() {
                "the live stream only (no [alerts.email] or [alerts.webhook])".to_owned()
            } else {
                format!("the live stream, {}", channels.join(" and "))
            }
        );
        monitor_tasks = Some(t);
        monitor = Some(m);
    }

    if config.proxy.enabled {
        let addr = config.proxy_listen();
        let listener = bind_error("proxy", "proxy.listen", addr, listen_deep(addr)).await?;
        let networks = client_networks(&config, &policy, |group, login| ClientNet {
            group,
            login: match login {
                LoginMode::Optional => Login::Optional,
                LoginMode::Required => Login::Required,
                LoginMode::Portal => Login::Portal,
            },
        });
        let p = &config.proxy;
        let settings = Settings {
            max_connections: p.max_connections,
            max_header_bytes: p.max_header_bytes,
            header_timeout: Duration::from_secs(p.header_timeout_secs),
            idle_timeout: Duration::from_secs(p.idle_timeout_secs),
            upstream_timeout: Duration::from_secs(p.upstream_timeout_secs),
            connect_ports: p.connect_ports.clone(),
            // The block page's "Report a concern" / "ask for a review" links go to the console
            // when it runs and no other address is configured.
            console_url: if p.console_url.is_empty()
                && config.console.enabled
                && config.alerts.enabled
            {
                config.console.url.clone()
            } else {
                p.console_url.clone()
            },
            log_allowed: config.log.allowed,
            resolver: Resolver::new(p.hosts.clone().into_iter().collect()),
            destinations: destinations.clone(),
            inspect_groups: p
                .inspect
                .groups
                .iter()
                .filter_map(|g| policy.group_id(g.get_ref()))
                .collect(),
            never_inspect: lookout_config::never_inspected(&p.inspect),
            extra_roots: match p.upstream_ca_file.as_deref() {
                Some(file) => pem_certificates(file, "proxy.upstream_ca_file")?,
                None => Vec::new(),
            },
            page_sink: match &site {
                Some(site) => Some(crate::site::page_outbox(
                    store.clone(),
                    site.status.clone(),
                    stop.clone(),
                )),
                None => monitor.as_ref().map(page_sink),
            },
            page_bytes: config.scan.page_bytes,
            portal: PortalSettings {
                // With the provider on the portal, its issuer's host opens before sign-in.
                allow: config
                    .portal
                    .allow
                    .iter()
                    .map(|d| d.get_ref().trim_end_matches('.').to_ascii_lowercase())
                    .chain(
                        portal_provider
                            .is_some()
                            .then_some(config.oidc.as_ref())
                            .flatten()
                            .and_then(|o| url::Url::parse(o.issuer.get_ref()).ok())
                            .and_then(|u| u.host_str().map(str::to_ascii_lowercase)),
                    )
                    .collect(),
                hours: config.portal.hours,
                // The console is on this machine, which the proxy never reaches: browsers
                // configured by the PAC file go to it directly.
                pac_direct: config
                    .console
                    .enabled
                    .then(|| url::Url::parse(&config.console.url).ok())
                    .flatten()
                    .and_then(|u| u.host_str().map(str::to_owned))
                    .into_iter()
                    .collect(),
                // The WPAD listener's PAC file names the proxy's own port.
                pac_port: Some(listener.local_addr()?.port()),
                provider: portal_provider.clone(),
            },
            status_extra: site.as_ref().map(|site| {
                let status = site.status.clone();
                lookout_proxy::StatusExtra(Arc::new(move || status.json()))
            }),
        };
        let inspected = !settings.inspect_groups.is_empty();
        let mut proxy = Proxy::new(
            policy.clone(),
            index.clone(),
            match directory(&config)? {
                Some(d) => Identifier::new(networks, Some(store.clone())).with_directory(d),
                None => Identifier::new(networks, Some(store.clone())),
            },
            Some(log.clone()),
            clock.clone(),
            settings,
        )?;
        if inspected {
            let dir = config.serve.data_dir.join("ca");
            let ca = Inspector::load_or_create(&dir)
                .map_err(|e| anyhow::anyhow!("HTTPS inspection CA in {}: {e}", dir.display()))?;
            proxy = proxy.with_inspector(Arc::new(ca));
            tracing::info!(
                "proxy: inspecting HTTPS for {} (CA {}; devices install it from http://lookout.invalid/ca)",
                p.inspect.groups.iter().map(|g| g.get_ref().as_str()).collect::<Vec<_>>().join(", "),
                dir.join("ca.pem").display()
            );
        }
        let proxy = Arc::new(proxy);
        if let Some(site) = &site {
            let _ = site.proxy.set(proxy.clone());
        }
        if let Some(m) = &metrics {
            let _ = m.proxy.set(proxy.clone());
        }
        destinations.add_listener(listener.local_addr()?);
        tracing::info!("proxy: listening on {}", listener.local_addr()?);
        if let Some(addr) = config.portal_listen() {
            let portal = bind_error("portal", "portal.listen", addr, listen_deep(addr)).await?;
            destinations.add_listener(portal.local_addr()?);
            tracing::info!(
                "portal: listening on {} (the portal, /wpad.dat and /proxy.pac by plain HTTP{})",
                portal.local_addr()?,
                match config.portal.address {
                    Some(a) =>
                        format!("; the DNS filter answers lookout.invalid and wpad names with {a}"),
                    None => String::new(),
                }
            );
            let (proxy, stop) = (proxy.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                lookout_proxy::run(portal, proxy, stop.cancelled_owned()).await
            }));
        }
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            lookout_proxy::run(listener, proxy, stop.cancelled_owned()).await
        }));
    }

    if config.dns.enabled {
        let addr = config.dns_listen();
        let (udp, tcp) = bind_error("DNS filter", "dns.listen", addr, bind_dns(addr).await).await?;
        let addr = udp.local_addr()?;
        destinations.add_listener(addr);
        let mut upstreams = config.dns_upstreams();
        if upstreams.is_empty() {
            upstreams = system_resolvers(addr);
        }
        if upstreams.is_empty() {
            tracing::warn!("dns: warning: no upstream resolvers (set `dns.upstreams`); allowed names will get SERVFAIL");
        }
        let d = &config.dns;
        let blocked = match (d.blocked_answer, d.block_page_ipv4) {
            (BlockedAnswerConfig::BlockPage, Some(ipv4)) => BlockedAnswer::BlockPage {
                ipv4,
                ipv6: d.block_page_ipv6,
            },
            _ => BlockedAnswer::NxDomain,
        };
        let server = Arc::new(DnsServer {
            policy: policy.clone(),
            index: index.clone(),
            settings: DnsSettings {
                blocked,
                ttl: d.ttl,
                rebind_protection: d.rebind_protection,
                portal: config.portal.address,
                internal_domains: d
                    .internal_domains
                    .iter()
                    .map(|n| n.get_ref().trim_end_matches('.').to_ascii_lowercase())
                    .collect(),
            },
            clients: client_networks(&config, &policy, |group, _| group) as Clients,
            upstreams: upstreams.clone(),
            timeout: Duration::from_millis(d.timeout_ms),
            cache: Cache::new(d.cache_entries),
            clock: clock.clone(),
            log: Some(log.clone()),
            log_allowed: config.log.allowed,
            counters: Default::default(),
        });
        if let Some(m) = &metrics {
            let _ = m.dns.set(server.clone());
        }
        tracing::info!(
            "dns: listening on {addr} (UDP and TCP), upstreams {}",
            upstreams
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
        let served = lookout_dns_server::spawn(udp, tcp, server, stop.clone().cancelled_owned())
            .context("cannot start the DNS filter's threads")?;
        tasks.push(tokio::spawn(served));
    }
    if tasks.is_empty() {
        return Err(UsageError(
            "both the proxy and the DNS filter are disabled: nothing to serve".into(),
        )
        .into());
    }
    tracing::info!(
        "database: {} (activity log: {})",
        database_shown(&config),
        if config.log.allowed {
            "every request"
        } else {
            "warned and blocked requests"
        }
    );
    let stop_requested = shutdown_signal();
    tracing::info!("Lookout is running; press Ctrl-C to stop.");

    let ended = match &site {
        Some(site) => tokio::select! {
            () = stop_requested => Ended::Stopped,
            () = site.restart.cancelled() => Ended::PolicyChanged,
        },
        None => {
            stop_requested.await;
            Ended::Stopped
        }
    };
    tracing::info!("stopping: finishing requests and writing the activity log...");
    stop.cancel();
    for t in tasks {
        let _ = t.await;
    }
    drop(log);
    writer.finish().await;
    console_stop.cancel();
    if let Some(t) = console_task {
        let _ = t.await;
    }
    if let Some(t) = monitor_tasks {
        t.finish().await;
    }
    if let Some(m) = monitor {
        tracing::info!("monitoring: {}", m.stats().snapshot());
    }
    if let Err(e) = store.end_run(run).await {
        tracing::warn!(
            "warning: the clean stop could not be recorded ({e}); the next start will record a gap"
        );
    }
    store.close().await;
    tracing::info!("stopped.");
    Ok(ended)
}

/// `[retention]` as the store's purge takes it (0 days: kept).
pub(crate) fn retention(config: &Config) -> lookout_store::Retention {
    let r = &config.retention;
    let days = |d: u32| (d > 0).then_some(d);
    lookout_store::Retention {
        activity_days: days(r.activity_days),
        dns_days: days(r.dns_days),
        alerts_days: days(r.alerts_days),
        page_text_days: days(r.page_text_days),
        incidents_days: days(r.incidents_days),
    }
}

/// A minute after the start, then every day: deletes what is past its time (in batches of
/// 2,000 rows with a pause between, so the activity log's writer is not held up).
/// The daily retention purge's runs, for `/metrics`.
#[derive(Debug, Default)]
pub(crate) struct PurgeStats {
    pub(crate) runs: std::sync::atomic::AtomicU64,
    pub(crate) failed: std::sync::atomic::AtomicU64,
    /// Rows deleted, every kind together.
    pub(crate) deleted: std::sync::atomic::AtomicU64,
}

async fn purge_daily(
    store: Store,
    retention: lookout_store::Retention,
    stats: Arc<PurgeStats>,
    first: Duration,
    stop: CancellationToken,
) {
    use std::sync::atomic::Ordering::Relaxed;
    let mut wait = first;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
        wait = Duration::from_secs(24 * 3600);
        let started = std::time::Instant::now();
        match store
            .purge(
                &retention,
                lookout_store::now_ms(),
                2000,
                Duration::from_millis(20),
            )
            .await
        {
            Ok(p) => {
                stats.runs.fetch_add(1, Relaxed);
                stats.deleted.fetch_add(
                    p.activity + p.dns + p.alerts + p.page_texts + p.incidents,
                    Relaxed,
                );
                tracing::info!(
                    "retention: deleted {p} in {:.1} s",
                    started.elapsed().as_secs_f64()
                )
            }
            Err(e) => {
                stats.failed.fetch_add(1, Relaxed);
                tracing::warn!("warning: the retention purge failed ({e}); it runs again tomorrow")
            }
        }
    }
}

/// Says every second that this run is alive, with the activity log's counters, so that after
/// a `kill -9` the next start knows when it died and what was waiting.
async fn heartbeat(store: Store, run: i64, log: EventLog, stop: CancellationToken) {
    let mut failing = false;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        let s = log.stats();
        // Said once when it starts failing and once when it works again, not every second.
        match store.run_alive(run, s.queued, s.written).await {
            Err(e) if !failing => {
                failing = true;
                tracing::warn!("warning: could not record that Lookout is running: {e}");
            }
            Ok(()) if failing => {
                failing = false;
                tracing::info!("the database takes writes again");
            }
            _ => {}
        }
    }
}

/// Pages read through the proxy go to the monitoring as title and text.
fn page_sink(monitor: &Monitor) -> PageSink {
    let monitor = monitor.clone();
    PageSink(Arc::new(move |page: PageCapture| {
        monitor.submit(page_job(page));
    }))
}

/// A page read through the proxy as a text to scan: its title, then its text.
pub(crate) fn page_job(page: PageCapture) -> Job {
    let text = if page.title.is_empty() {
        page.text
    } else {
        format!("{}\n{}", page.title, page.text)
    };
    Job {
        at_ms: page.at_ms,
        source: Source::Page,
        text,
        location: page.url,
        subject: Subject {
            username: page.username,
            client_ip: Some(page.client_ip),
            device: None,
            group: page.group,
            site: None,
        },
    }
}

/// `[ldap]`: the directory the proxy and the portal check passwords against.
fn directory(config: &Config) -> anyhow::Result<Option<lookout_directory::Directory>> {
    let Some(l) = &config.ldap else {
        return Ok(None);
    };
    let bind_password = match &l.bind_password_file {
        Some(f) => Some(secret_file(f.get_ref(), "ldap.bind_password_file")?),
        None => None,
    };
    let directory = lookout_directory::Directory::new(lookout_directory::Settings {
        url: l.url.get_ref().clone(),
        starttls: l.starttls,
        bind_dn: l.bind_dn.as_ref().map(|d| d.get_ref().clone()),
        bind_password,
        base_dn: l.base_dn.get_ref().clone(),
        user_filter: l.user_filter.get_ref().clone(),
        groups: l
            .groups
            .iter()
            .map(|g| (g.dn.get_ref().clone(), g.group.get_ref().clone()))
            .collect(),
        default_group: l.default_group.as_ref().map(|g| g.get_ref().clone()),
        timeout: Duration::from_secs(l.timeout_secs),
    })?;
    tracing::info!(
        "proxy: passwords not matching a local account are checked against the directory at {}",
        l.url.get_ref()
    );
    Ok(Some(directory))
}

/// Passes each SIGHUP on (a reload already asked for and not begun absorbs the next).
async fn forward_hangups(to: tokio::sync::mpsc::Sender<()>, stop: CancellationToken) {
    #[cfg(unix)]
    {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            tracing::warn!(
                "lists: cannot listen for SIGHUP; lists reload on their own schedule only"
            );
            return;
        };
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                got = hup.recv() => {
                    if got.is_none() {
                        return;
                    }
                    tracing::info!("lists: SIGHUP: checking subscriptions and reloading the lists");
                    let _ = to.try_send(());
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (to, stop);
    }
}

/// Ctrl-C or SIGTERM (what service managers send), listened for from the moment this is
/// called, not from the first poll: "running" is said only once a stop request would be heard
/// (a SIGTERM sent just after it once killed the process outright in CI).
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let term = signal(SignalKind::terminate()).ok();
        let int = signal(SignalKind::interrupt()).ok();
        async move {
            match (term, int) {
                (Some(mut term), Some(mut int)) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = int.recv() => {}
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a test that fails to set up should stop there
mod tests {
    use std::sync::atomic::Ordering::Relaxed;

    use super::*;

    /// The gateway's runtime leaves a core to the other threads, but never runs on one worker
    /// where there are two cores (one worker starved connections at a peak).
    #[test]
    fn the_gateway_runtime_keeps_two_workers_where_it_can() {
        let table = [(1, 1), (2, 2), (3, 2), (4, 3), (8, 7), (64, 63)];
        for (cores, workers) in table {
            assert_eq!(gateway_workers(cores), workers, "{cores} cores");
        }
    }

    /// Port 0 gives the DNS filter one free port for UDP and TCP, even while many ports are
    /// taken for TCP only (as a console's is: a test's central once got its DNS filter's UDP
    /// port on the console's TCP port and refused to start); a fixed port whose TCP side is
    /// taken is refused with the system's "in use".
    #[tokio::test]
    async fn the_dns_filter_gets_one_port_for_udp_and_tcp() {
        let held: Vec<std::net::TcpListener> = (0..500)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("tcp"))
            .collect();
        let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
        for _ in 0..200 {
            let (udp, tcp) = bind_dns(any).await.expect("bound");
            let port = udp.local_addr().expect("udp").port();
            assert_ne!(port, 0);
            assert_eq!(tcp.local_addr().expect("tcp").port(), port);
        }
        let taken = held[0].local_addr().expect("held");
        let e = bind_dns(taken).await.expect_err("TCP side taken");
        assert_eq!(e.kind(), std::io::ErrorKind::AddrInUse);
    }

    #[tokio::test]
    async fn the_daily_purge_counts_its_runs_and_what_it_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("lookout.db")).await.unwrap();
        let old = lookout_store::now_ms() - 40 * 86_400_000;
        let events: Vec<lookout_store::Event> = (0..3)
            .map(|i| lookout_store::Event {
                at_ms: old + i,
                ..crate::siem::tests::event()
            })
            .collect();
        store.insert_events(&events).await.unwrap();
        let stats = Arc::new(PurgeStats::default());
        let stop = CancellationToken::new();
        let task = tokio::spawn(purge_daily(
            store.clone(),
            retention(&Config::default()), // the defaults: activity kept 30 days
            stats.clone(),
            Duration::ZERO,
            stop.clone(),
        ));
        for _ in 0..500 {
            if stats.runs.load(Relaxed) > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(stats.runs.load(Relaxed), 1);
        assert_eq!(stats.deleted.load(Relaxed), 3);
        assert_eq!(stats.failed.load(Relaxed), 0);
        stop.cancel();
        task.await.unwrap();
    }
}
