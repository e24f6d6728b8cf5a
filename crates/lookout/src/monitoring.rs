//! Wiring the monitoring to the configuration: settings, the phrase library, and the
//! `token` and `alerts` commands.

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Subcommand;
use lookout_config::{parse_hhmm, parse_threshold, Config};
use lookout_monitor::{DigestEvery, Email, EmailTls, Settings, Webhook};
use lookout_scan::Scanner;
use lookout_store::TokenScope;

use crate::serve::with_store;
use crate::UsageError;

/// The compiled phrase library `[scan]` describes.
pub(crate) fn scanner(config: &Config) -> anyhow::Result<Arc<Scanner>> {
    let started = Instant::now();
    let library = lookout_loader::load_phrases(&config.scan)
        .map_err(|e| UsageError(format!("phrase libraries: {e}")))?;
    let scanner = library.compile()?;
    let (rules, exceptions) = library.len();
    tracing::info!(
        "scan: {rules} rules, {exceptions} exceptions, {} patterns in {:.2} s",
        scanner.patterns().len(),
        started.elapsed().as_secs_f64()
    );
    Ok(Arc::new(scanner))
}

/// The model stage from `[scan.model]`: `None` where it is off or its weights are missing
/// (said on standard error; an error instead where `required = true`). The model itself is
/// loaded by the first model worker, so serving does not wait for it.
pub(crate) fn model_stage(config: &Config) -> anyhow::Result<Option<lookout_monitor::ModelStage>> {
    let m = &config.scan.model;
    if !m.enabled {
        tracing::info!(
            "model: off (`scan.model.enabled = false`); the phrase libraries alone scan text"
        );
        return Ok(None);
    }
    let policy = crate::scan_model::policy(m);
    let source = if m.required {
        let (model, head) = lookout_loader::load_model(m, &config.serve.data_dir)
            .map_err(|e| UsageError(format!("model: {e}")))?
            .expect("enabled");
        tracing::info!("model: {}", crate::scan_model::describe(&head));
        lookout_monitor::ModelSource::Ready(Arc::new(model))
    } else {
        if let Err(e) = lookout_loader::load_encoder_check(m) {
            tracing::warn!("model: warning: {e}; the phrase libraries alone scan text");
            return Ok(None);
        }
        let (m, data_dir) = (m.clone(), config.serve.data_dir.clone());
        lookout_monitor::ModelSource::Load(Arc::new(move || {
            let (model, head) = lookout_loader::load_model(&m, &data_dir)
                .map_err(|e| e.to_string())?
                .ok_or_else(|| "off".to_owned())?;
            tracing::info!("model: {}", crate::scan_model::describe(&head));
            Ok(model)
        }))
    };
    tracing::info!(
        "model: on ({} worker(s), threshold {}, danger {}, veto {}); loading in the background",
        m.workers,
        policy.threshold,
        policy.danger,
        policy.veto
    );
    Ok(Some(lookout_monitor::ModelStage {
        model: source,
        policy,
        workers: m.workers,
        queue: m.queue,
        screen: m.screen,
    }))
}

/// The monitoring settings from `[alerts]` and `[console]`.
pub(crate) fn settings(config: &Config) -> anyhow::Result<Settings> {
    let a = &config.alerts;
    let threshold = |s: &str| parse_threshold(s).unwrap_or(None);
    let email = match &a.email {
        None => None,
        Some(e) => {
            let server = e.server.get_ref();
            let (host, port) = server
                .rsplit_once(':')
                .and_then(|(h, p)| Some((h.to_owned(), p.parse::<u16>().ok()?)))
                .ok_or_else(|| {
                    UsageError(format!("alerts.email.server: `{server}` is not host:port"))
                })?;
            let password = match &e.password_file {
                Some(p) => Some(crate::serve::secret_file(p, "alerts.email.password_file")?),
                None => None,
            };
            let tls = match e.tls.get_ref().as_str() {
                "tls" => EmailTls::Tls,
                "none" => EmailTls::None,
                _ => EmailTls::StartTls,
            };
            let to: Vec<String> = e.to.iter().map(|t| t.get_ref().clone()).collect();
            Some(
                Email::new(
                    &host,
                    port,
                    tls,
                    e.username.clone().zip(password),
                    e.from.get_ref(),
                    &to,
                )
                .map_err(|m| UsageError(format!("alerts.email: {m}")))?,
            )
        }
    };
    let webhook = match &a.webhook {
        Some(w) => Some(Webhook::new(w.url.get_ref().clone()).map_err(anyhow::Error::msg)?),
        None => None,
    };
    Ok(Settings {
        thresholds: a
            .thresholds
            .iter()
            .map(|(g, v)| (g.clone(), threshold(v.get_ref())))
            .collect::<HashMap<_, _>>(),
        default_threshold: threshold(a.default_threshold.get_ref()),
        window: Duration::from_secs(a.group_window_minutes * 60),
        queue: a.queue,
        email,
        webhook,
        console_url: config.console.url.clone(),
        retry: Duration::from_secs(30),
    })
}

/// `[alerts.digest]`: when, or `None` if off (or there is no email to send it by).
pub(crate) fn digest(config: &Config) -> Option<(DigestEvery, u16)> {
    let d = &config.alerts.digest;
    let every = match d.every.get_ref().as_str() {
        "daily" => DigestEvery::Daily,
        "weekly" => DigestEvery::Weekly,
        _ => return None,
    };
    config.alerts.email.as_ref()?;
    Some((every, parse_hhmm(d.at.get_ref())?))
}

#[derive(Subcommand)]
pub(crate) enum TokenCommand {
    /// Create a token and print it (once: only its hash is kept).
    Add {
        /// A unique name: the device (`laptop-12`), tool (`dsl-dashboard`) or site (`north`).
        name: String,
        /// `ingest` (a monitoring agent on a device), `alerts` (reads alerts) or `gateway` (a
        /// site gateway, `serve --role gateway`; the name is the site's).
        #[arg(long, value_parser = parse_scope)]
        scope: TokenScope,
        /// The person a device belongs to.
        #[arg(long)]
        user: Option<String>,
        /// The group whose alert threshold applies to the device's text.
        #[arg(long)]
        group: Option<String>,
    },
    /// List tokens (names and scopes; secrets are never shown again).
    List,
    /// Revoke a token: it stops working at once.
    Revoke { name: String },
}

fn parse_scope(s: &str) -> Result<TokenScope, String> {
    TokenScope::from_slug(s).ok_or_else(|| "expected ingest, alerts or gateway".to_owned())
}

pub(crate) fn tokens(
    config: Option<&std::path::Path>,
    command: TokenCommand,
) -> anyhow::Result<ExitCode> {
    with_store(config, |config, store| async move {
        match command {
            TokenCommand::Add {
                name,
                scope,
                user,
                group,
            } => {
                if scope == TokenScope::Gateway {
                    if user.is_some() || group.is_some() {
                        return Err(UsageError(
                            "--user and --group are for device tokens; a gateway's people and groups come with its events".into(),
                        )
                        .into());
                    }
                    let fits = !name.is_empty()
                        && name.len() <= 64
                        && name
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
                    if !fits {
                        return Err(UsageError(format!(
                            "`{name}`: a site's name is 1 to 64 letters, digits, `-`, `_` or `.`"
                        ))
                        .into());
                    }
                }
                if let Some(g) = &group {
                    if !config.groups.contains_key(g) {
                        return Err(
                            UsageError(format!("--group: no group `{g}` is defined")).into()
                        );
                    }
                }
                let user = match user {
                    Some(u) => {
                        let u = lookout_store::normalize_username(&u)
                            .map_err(|e| UsageError(format!("--user: {e}")))?;
                        if store.user(&u).await?.is_none() {
                            return Err(UsageError(format!(
                                "--user: no user `{u}` (add them with `lookout user add`)"
                            ))
                            .into());
                        }
                        Some(u)
                    }
                    None => None,
                };
                if store.tokens().await?.iter().any(|t| t.name == name) {
                    return Err(UsageError(format!("a token named `{name}` already exists")).into());
                }
                let (token, secret) = store
                    .add_token(&name, scope, user.as_deref(), group.as_deref())
                    .await?;
                tracing::info!(
                    "token `{}` ({}) created; it is shown once, keep it safe:",
                    token.name,
                    token.scope.slug()
                );
                println!("{secret}");
            }
            TokenCommand::List => {
                for t in store.tokens().await? {
                    println!(
                        "{:<24} {:<7} user={:<16} group={:<16}{}",
                        t.name,
                        t.scope.slug(),
                        t.username.as_deref().unwrap_or("-"),
                        t.group.as_deref().unwrap_or("-"),
                        if t.revoked { " REVOKED" } else { "" }
                    );
                }
            }
            TokenCommand::Revoke { name } => {
                if !store.revoke_token(&name).await? {
                    return Err(UsageError(format!("no token named `{name}`")).into());
                }
                println!("token `{name}` revoked");
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

#[derive(Subcommand)]
pub(crate) enum AlertsCommand {
    /// Alerts, most recently updated first.
    List {
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
    /// Send the digest email now (covering the time since the last one).
    Digest,
    /// Alerts the DSL team dismissed as false alarms, as corpus lines (`und<TAB>none<TAB>text`,
    /// with the reason as a comment) for tuning the phrase lists with `lookout scan eval`.
    FalseAlarms {
        /// How far back.
        #[arg(long, default_value_t = 90)]
        days: i64,
    },
}

pub(crate) fn alerts(
    config: Option<&std::path::Path>,
    command: AlertsCommand,
) -> anyhow::Result<ExitCode> {
    with_store(config, |config, store| async move {
        match command {
            AlertsCommand::List { limit, json } => {
                for a in store.alerts(None, limit).await? {
                    if json {
                        println!(
                            "{}",
                            serde_json::json!({
                                "id": a.id, "reference": a.reference, "category": a.category,
                                "severity": a.severity, "score": a.score, "subject": a.subject,
                                "group": a.group, "source": a.source, "findings": a.findings,
                                "created_ms": a.created_ms, "updated_ms": a.updated_ms, "status": a.status,
                            })
                        );
                    } else {
                        println!(
                            "{:>5} {} {:<8} {:<17} {:<28} {:>3} finding(s) {}",
                            a.id,
                            a.reference,
                            a.severity,
                            a.category,
                            a.subject,
                            a.findings,
                            crate::activity::when(a.updated_ms)
                        );
                    }
                }
            }
            AlertsCommand::FalseAlarms { days } => {
                let since = lookout_store::now_ms() - days * 86_400_000;
                let found = store.false_alarms(since).await?;
                println!("# False alarms dismissed in the last {days} day(s): {}. Check the language column before adding them to a corpus.", found.len());
                for (review, alert, texts) in found {
                    println!(
                        "# alert {} ({}), dismissed by {}: {}",
                        alert.id,
                        alert.category,
                        review.by_user,
                        review.reason.replace(['\n', '\r'], " ")
                    );
                    for t in texts {
                        println!("und\tnone\t{}", t.replace(['\t', '\n', '\r'], " "));
                    }
                }
            }
            AlertsCommand::Digest => {
                let settings = settings(&config)?;
                let every = digest(&config).map_or(DigestEvery::Daily, |d| d.0);
                let n =
                    lookout_monitor::send_digest(&store, &settings, every, lookout_store::now_ms())
                        .await
                        .map_err(|e| UsageError(format!("digest: {e}")))?;
                println!("digest sent: {n} alert(s)");
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
