//! Criterion: the activity log's writer, events per second into a fresh SQLite database on
//! disk (WAL, the store's own settings), in batches of the sizes `lookout serve` writes (up to
//! its `[log] batch`; 100 is a gateway at 500 requests a second, whose 200 ms batches end in
//! rows fewer than a multi-row insert takes), with
//! realistic rows (URL, host, address, group, category, action). What each logged request
//! costs the gateway's CPU beyond the proxying itself: `write/` is the path `lookout serve`
//! takes (the log's own connection), `insert/` the pool's, for reference.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use lookout_store::testing::sample_event;
use lookout_store::{Event, Store};

fn events(n: usize, offset: usize) -> Vec<Event> {
    (offset..offset + n).map(sample_event).collect()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let store = rt
        .block_on(Store::open(&dir.path().join("bench.db")))
        .expect("store");
    let mut group = c.benchmark_group("event_log");
    for batch in [64usize, 100, 512, 4096] {
        group.throughput(Throughput::Elements(batch as u64));
        let mut offset = 0;
        // What `lookout serve` does: the log's own connection and prepared statement.
        group.bench_function(format!("write/batch-{batch}"), |b| {
            b.iter_batched(
                || {
                    offset += batch;
                    events(batch, offset)
                },
                |rows| rt.block_on(store.write_events(rows)).1.expect("write"),
                criterion::BatchSize::LargeInput,
            )
        });
        // For reference: the same rows through the pool (sqlx's `Any` driver).
        group.bench_function(format!("insert/batch-{batch}"), |b| {
            b.iter_batched(
                || {
                    offset += batch;
                    events(batch, offset)
                },
                |rows| rt.block_on(store.insert_events(&rows)).expect("insert"),
                criterion::BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
