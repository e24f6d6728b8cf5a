//! Events per second sustained into one database by several writers at once, each with its own
//! connection pool as separate gateways have, in the batches `lookout serve` writes; then one
//! audit entry per writer and a check that the audit chain is whole. For `bench/store-pg-vs-sqlite`.
//!
//!   cargo run --release -p lookout-store --example event_rate -- <sqlite-file | postgres://...> [writers] [seconds] [batch] [most]
//!
//! `most`: stop a writer after that many events (0, the default: only the time limit), to fill a
//! database with a known number of events (`bench/console-pg-vs-sqlite`).

use std::time::{Duration, Instant};

use lookout_store::testing::sample_event;
use lookout_store::{AuditEntry, Event, Store};

async fn open(target: &str) -> Result<Store, lookout_store::StoreError> {
    if target.starts_with("postgres") {
        Store::connect(target).await
    } else {
        Store::open(std::path::Path::new(target)).await
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let Some(target) = args.get(1) else {
        return Err(
            "usage: event_rate <sqlite-file | postgres://...> [writers] [seconds] [batch]".into(),
        );
    };
    let number = |i: usize, default: usize| -> Result<usize, String> {
        args.get(i).map_or(Ok(default), |a| {
            a.parse().map_err(|e| format!("argument {i} ({a}): {e}"))
        })
    };
    let (writers, secs, batch) = (number(2, 1)?, number(3, 10)?, number(4, 512)?);
    let most = match number(5, 0)? {
        0 => usize::MAX,
        n => n,
    };
    // Migrations first, once, so that the writers start together.
    open(target).await?.close().await;
    let until = Instant::now() + Duration::from_secs(secs as u64);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let target = target.clone();
        tasks.push(tokio::spawn(async move {
            let store = open(&target).await?;
            let mut written = 0usize;
            while Instant::now() < until && written < most {
                let n = batch.min(most - written);
                let rows: Vec<Event> = (0..n)
                    .map(|i| sample_event(w * 100_000_000 + written + i))
                    .collect();
                // As `lookout serve`'s log writer writes: on SQLite, its own connection.
                store.write_events(rows).await.1?;
                written += n;
            }
            store
                .audit(&AuditEntry::new(
                    &format!("writer{w}"),
                    "bench.done",
                    "events",
                ))
                .await?;
            store.close().await;
            Ok::<usize, lookout_store::StoreError>(written)
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let store = open(target).await?;
    let audit = store.verify_audit().await?;
    store.close().await;
    println!(
        "writers={writers} batch={batch} events={total} seconds={elapsed:.1} events_per_s={:.0} audit_rows={} audit_problems={}",
        total as f64 / elapsed,
        audit.rows,
        audit.problems.len()
    );
    Ok(())
}
