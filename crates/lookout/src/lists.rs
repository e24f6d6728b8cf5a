//! List subscriptions while serving, and `lookout lists update`.
//!
//! `serve` downloads a subscription that has no copy yet before it starts (refusing to start
//! without a strict or illegal-content list), then one task checks each subscription when it
//! is due (`refresh_minutes` after the last check; a failed check is retried within 15
//! minutes) and at once on SIGHUP. When a copy changed, or on SIGHUP (a list file edited by
//! hand), every list is loaded again on a blocking thread and the new index swapped in
//! (`LiveIndex`): requests in flight finish on the old index, none waits or is dropped. A
//! reload that fails keeps the index in use and says why on `/status`, `/metrics`, the
//! console's home page and the log.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use lookout_config::{Config, ListsConfig, SourceConfig};
use lookout_lists::{ListsStatus, LiveIndex, SubscriptionStatus};
use lookout_loader::subscription::{read_meta, FetchError, Refreshed, Subscriber};
use tokio_util::sync::CancellationToken;

use crate::UsageError;

/// A failed check is tried again after at most this long.
const RETRY: Duration = Duration::from_secs(15 * 60);

/// Counts for `/metrics`.
#[derive(Debug, Default)]
pub(crate) struct ListStats {
    pub(crate) unchanged: AtomicU64,
    pub(crate) updated: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) reloads: AtomicU64,
    pub(crate) reloads_failed: AtomicU64,
}

fn now_ms() -> i64 {
    lookout_store::now_ms()
}

/// The subscriptions among the sources.
fn subscriptions(lists: &ListsConfig) -> impl Iterator<Item = &SourceConfig> {
    lists.sources.iter().filter(|s| s.url.is_some())
}

/// The sources that can be read now: every local source, and the subscriptions that have a
/// copy. Also the names of the subscriptions left out.
pub(crate) fn with_copies(lists: &ListsConfig) -> (ListsConfig, Vec<String>) {
    let (have, missing): (Vec<_>, Vec<_>) = lists
        .sources
        .iter()
        .partition(|s| s.url.is_none() || s.path.get_ref().exists());
    (
        // Every other `[lists]` setting as configured.
        ListsConfig {
            sources: have.into_iter().cloned().collect(),
            ..lists.clone()
        },
        missing
            .into_iter()
            .map(|s| s.name.get_ref().clone())
            .collect(),
    )
}

/// Loads the lists that can be read now, on `threads` threads (`None`: one per core), saying
/// which subscriptions have no copy yet (the `check`, `lists stats` and `config check`
/// commands).
pub(crate) fn load_available(
    lists: &ListsConfig,
    threads: Option<usize>,
) -> Result<lookout_loader::Loaded, lookout_loader::LoadError> {
    let (present, missing) = with_copies(lists);
    for name in missing {
        eprintln!("note: list subscription `{name}` has not been downloaded yet (`lookout lists update` or `lookout serve` downloads it); it is left out");
    }
    match threads {
        Some(n) => lookout_loader::load_with_threads(&present, n),
        None => lookout_loader::load(&present),
    }
}

/// Whether the gateway may not run without this source: strict, or illegal content.
fn required(source: &SourceConfig, lists: &ListsConfig) -> bool {
    lists.strict
        || source.strict
        || (!source.format.is_folder() && source.file_categories().iter().any(|c| c.is_illegal()))
}

fn status_of(source: &SourceConfig) -> SubscriptionStatus {
    let meta = read_meta(source.path.get_ref());
    SubscriptionStatus {
        name: source.name.get_ref().clone(),
        url: source
            .url
            .as_ref()
            .map(|u| lookout_loader::subscription::shown(u.get_ref()))
            .unwrap_or_default(),
        checked_at_ms: meta.as_ref().map(|m| m.checked_at_ms),
        fetched_at_ms: meta.as_ref().map(|m| m.fetched_at_ms),
        entries: meta.map_or(0, |m| m.entries),
        error: None,
        failing_since_ms: None,
    }
}

/// Records one check's outcome in the status and the counts.
fn record(
    live: Option<&LiveIndex>,
    stats: &ListStats,
    source: &SourceConfig,
    outcome: &Result<Refreshed, FetchError>,
    at_ms: i64,
) {
    let name = source.name.get_ref();
    match outcome {
        Ok(Refreshed::Unchanged) => {
            stats.unchanged.fetch_add(1, Relaxed);
            tracing::info!("lists: `{name}` is current");
        }
        Ok(Refreshed::Updated { entries, bytes }) => {
            stats.updated.fetch_add(1, Relaxed);
            tracing::info!(
                "lists: `{name}` downloaded: {entries} entries ({:.1} MB)",
                *bytes as f64 / 1e6
            );
        }
        Err(e) => {
            stats.failed.fetch_add(1, Relaxed);
            tracing::warn!("lists: `{name}` not updated: {e}");
        }
    }
    let Some(live) = live else { return };
    let fresh = status_of(source);
    live.update(|s| {
        let Some(sub) = s.subscriptions.iter_mut().find(|x| x.name == *name) else {
            return;
        };
        let since = sub.failing_since_ms;
        *sub = fresh.clone();
        if let Err(e) = outcome {
            sub.error = Some(e.to_string());
            sub.failing_since_ms = Some(since.unwrap_or(at_ms));
        }
    });
}

/// Before serving: downloads every subscription that has no copy. Fails if a required one
/// (strict or illegal content) cannot be had: the gateway does not run without it.
pub(crate) async fn first_fetch(
    lists: &ListsConfig,
    subscriber: &Subscriber,
    stats: &ListStats,
) -> anyhow::Result<Vec<SubscriptionStatus>> {
    let mut statuses = Vec::new();
    for source in subscriptions(lists) {
        let mut status = status_of(source);
        if !source.path.get_ref().exists() {
            let name = source.name.get_ref();
            tracing::info!("lists: downloading `{name}` (no copy yet)");
            let at = now_ms();
            let outcome = subscriber
                .refresh(source, lists.strict || source.strict, at)
                .await;
            record(None, stats, source, &outcome, at);
            match outcome {
                Ok(_) => status = status_of(source),
                Err(e) if required(source, lists) => {
                    return Err(UsageError(format!(
                        "lists: `{name}` is a strict or illegal-content list and could not be downloaded, so the gateway does not start without it: {e}"
                    ))
                    .into())
                }
                Err(e) => {
                    tracing::warn!("lists: warning: starting without `{name}` (its sites are not blocked until it downloads; tried again within 15 minutes)");
                    status.error = Some(e.to_string());
                    status.failing_since_ms = Some(at);
                }
            }
        }
        statuses.push(status);
    }
    Ok(statuses)
}

/// How long until a subscription last checked at `checked_at_ms` is due (zero if never).
fn due_in(checked_at_ms: Option<i64>, now_ms: i64, every: Duration) -> Duration {
    let Some(at) = checked_at_ms else {
        return Duration::ZERO;
    };
    let next = at.saturating_add(every.as_millis().min(i64::MAX as u128) as i64);
    Duration::from_millis(next.saturating_sub(now_ms).max(0) as u64)
}

/// Keeps the subscriptions current and the index in step with the list files, until `stop`.
/// `hup` asks for every subscription to be checked and the lists reloaded now.
pub(crate) async fn keep_current(
    lists: ListsConfig,
    live: LiveIndex,
    subscriber: Subscriber,
    stats: Arc<ListStats>,
    mut hup: tokio::sync::mpsc::Receiver<()>,
    stop: CancellationToken,
) {
    let subs: Vec<SourceConfig> = subscriptions(&lists).cloned().collect();
    // When each is next due, from now.
    let start = tokio::time::Instant::now();
    let mut next: Vec<tokio::time::Instant> = subs
        .iter()
        .map(|s| {
            let st = live.status();
            let failing = st
                .subscriptions
                .iter()
                .any(|x| x.name == *s.name.get_ref() && x.error.is_some());
            // One that failed before serving (just tried) is tried again after the retry time.
            start
                + if failing {
                    RETRY.min(s.refresh())
                } else {
                    due_in(status_of(s).checked_at_ms, now_ms(), s.refresh())
                }
        })
        .collect();
    loop {
        let soonest = next.iter().min().copied();
        let forced = tokio::select! {
            () = stop.cancelled() => return,
            got = hup.recv() => match got {
                Some(()) => true,
                None => return,
            },
            () = async {
                match soonest {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            } => false,
        };
        let now = tokio::time::Instant::now();
        let mut changed = false;
        for (i, s) in subs.iter().enumerate() {
            if !forced && next[i] > now {
                continue;
            }
            let at = now_ms();
            let in_use = fetched_in_use(&live, s);
            let outcome = tokio::select! {
                () = stop.cancelled() => return,
                o = subscriber.refresh(s, lists.strict || s.strict, at) => o,
            };
            record(Some(&live), &stats, s, &outcome, at);
            // A copy newer than the one loaded, even if this check found it current: it was
            // downloaded by `lookout lists update` meanwhile.
            changed |= status_of(s).fetched_at_ms != in_use;
            next[i] = tokio::time::Instant::now()
                + match &outcome {
                    Ok(_) => s.refresh(),
                    Err(_) => s.refresh().min(RETRY),
                };
        }
        if changed || forced {
            reload(&lists, &live, &stats).await;
        }
    }
}

/// When the copy of `source` that the index in use was built from was downloaded.
fn fetched_in_use(live: &LiveIndex, source: &SourceConfig) -> Option<i64> {
    live.status()
        .subscriptions
        .iter()
        .find(|x| x.name == *source.name.get_ref())
        .and_then(|x| x.fetched_at_ms)
}

/// Loads every list that has a copy again and swaps the new index in; on failure the index
/// in use stays and the status says why.
pub(crate) async fn reload(lists: &ListsConfig, live: &LiveIndex, stats: &ListStats) {
    let (present, _) = with_copies(lists);
    let loaded = tokio::task::spawn_blocking(move || lookout_loader::load(&present)).await;
    match loaded {
        Ok(Ok(loaded)) => {
            let entries = loaded.accepted();
            let secs = loaded.elapsed.as_secs_f64();
            live.replace(loaded.index, now_ms(), entries);
            stats.reloads.fetch_add(1, Relaxed);
            tracing::info!(
                "lists: reloaded, {entries} entries in {secs:.2} s (version {})",
                live.status().version
            );
        }
        Ok(Err(e)) => failed_reload(live, stats, e.to_string()),
        Err(e) => failed_reload(live, stats, format!("the loading thread stopped: {e}")),
    }
}

fn failed_reload(live: &LiveIndex, stats: &ListStats, error: String) {
    stats.reloads_failed.fetch_add(1, Relaxed);
    tracing::error!("lists: reload failed, the lists in use stay: {error}");
    live.update(|s| s.reload_error = Some(error.clone()));
}

/// The status the server starts with.
pub(crate) fn initial_status(
    loaded: &lookout_loader::Loaded,
    subscriptions: Vec<SubscriptionStatus>,
) -> ListsStatus {
    ListsStatus {
        version: 1,
        loaded_at_ms: now_ms(),
        entries: loaded.accepted(),
        reload_error: None,
        subscriptions,
    }
}

/// `lookout lists update`: checks every subscription now and prints what happened.
pub(crate) fn update(config_path: PathBuf) -> anyhow::Result<ExitCode> {
    let config: Config = crate::load_config(Some(&config_path))?;
    let subs: Vec<&SourceConfig> = subscriptions(&config.lists).collect();
    if subs.is_empty() {
        println!(
            "{}: no list source has a `url`; nothing to update",
            config_path.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let subscriber = Subscriber::new()?;
    let stats = ListStats::default();
    let mut failed = 0;
    runtime.block_on(async {
        for s in &subs {
            let at = now_ms();
            let outcome = subscriber
                .refresh(s, config.lists.strict || s.strict, at)
                .await;
            let name = s.name.get_ref();
            match &outcome {
                Ok(Refreshed::Unchanged) => println!("{name}: current"),
                Ok(Refreshed::Updated { entries, bytes }) => {
                    println!(
                        "{name}: downloaded {entries} entries ({bytes} bytes) to {}",
                        s.path.get_ref().display()
                    )
                }
                Err(e) => {
                    failed += 1;
                    println!("{name}: not updated: {e}");
                }
            }
            record(None, &stats, s, &outcome, at);
        }
    });
    println!("A running `lookout serve` loads a new copy at its next check of that list, or at once on SIGHUP (`systemctl reload lookout`).");
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subscription_is_due_a_refresh_after_its_last_check() {
        let day = Duration::from_secs(86_400);
        let table = [
            // (checked at, now, due in)
            (None, 1_000, Duration::ZERO),
            (Some(0), 1_000, day - Duration::from_millis(1_000)),
            (Some(0), 86_400_000, Duration::ZERO),
            (Some(0), 90_000_000, Duration::ZERO),
            // A clock that went back: due in at most one period.
            (Some(5_000), 0, day + Duration::from_millis(5_000)),
        ];
        for (checked, now, want) in table {
            assert_eq!(due_in(checked, now, day), want, "{checked:?} {now}");
        }
    }
}
