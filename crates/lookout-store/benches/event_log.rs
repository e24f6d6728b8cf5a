//! Criterion: the activity log's writer, events per second into a fresh SQLite database on
//! disk (WAL, the store's own settings), in the batches `lookout serve` writes (512), with
//! realistic rows (URL, host, address, group, category, action). What each logged request
//! costs the gateway's CPU beyond the proxying itself.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use lookout_store::{Event, Store};

fn events(n: usize, offset: usize) -> Vec<Event> {
    (0..n)
        .map(|i| {
            let i = i + offset;
            Event {
                at_ms: 1_796_000_000_000 + i as i64,
                reference: String::new(),
                service: "proxy",
                client_ip: format!("10.1.{}.{}", (i / 250) % 250, i % 250),
                username: (i % 3 == 0).then(|| format!("learner{}", i % 900)),
                group: "learners-u18".to_owned(),
                method: "GET".to_owned(),
                url: format!(
                    "http://www{}.example.com/path/to/page{}.html?q=1",
                    i % 5000,
                    i
                ),
                host: format!("www{}.example.com", i % 5000),
                search_term: None,
                categories: String::new(),
                action: "allow".to_owned(),
                rule: "default".to_owned(),
                reason: String::new(),
                status: Some(200),
                bytes: 2048,
            }
        })
        .collect()
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
    for batch in [64usize, 512, 4096] {
        group.throughput(Throughput::Elements(batch as u64));
        let mut offset = 0;
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
