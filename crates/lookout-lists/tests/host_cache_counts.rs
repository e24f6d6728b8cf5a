//! The host cache's hit and miss counts, exactly: this file's one test is alone in its
//! process, so nothing else counts while it runs.

use std::sync::{Arc, Barrier};

use lookout_lists::parse::parse;
use lookout_lists::{
    host_cache_counts, EntrySink, Format, HostCacheCounts, Index, IndexBuilder, NormUrl, SourceInfo,
};

/// An index of `hosts` listed domains `site<i>.example`.
fn index(hosts: usize) -> Index {
    let mut builder = IndexBuilder::new();
    let id = builder
        .add_source(SourceInfo {
            name: "sites".into(),
            labels: 1,
        })
        .expect("one source");
    let text: String = (0..hosts).map(|i| format!("site{i}.example\n")).collect();
    let mut sink = EntrySink::new();
    let report = parse(Format::Domains, text.as_bytes(), |kind, url| {
        sink.add(id, kind, url)
    });
    assert_eq!(report.rejected, 0);
    builder.build(vec![sink])
}

fn look_up(ix: &Index, url: &str) -> u64 {
    ix.lookup(&NormUrl::parse(url).expect("url"))
}

#[test]
fn hits_and_misses_are_counted_per_thread_and_kept_when_threads_end() {
    assert_eq!(host_cache_counts(), HostCacheCounts::default());
    let large = Arc::new(index(5_000));
    let small = index(10);

    // A thread looks up three hosts twice (a miss, then a hit), an IP host twice and the
    // small index's hosts (no cache: neither counted), then waits while it is counted.
    let (counted, finish) = (Arc::new(Barrier::new(2)), Arc::new(Barrier::new(2)));
    let worker = {
        let (ix, counted, finish) = (large.clone(), counted.clone(), finish.clone());
        std::thread::spawn(move || {
            for _ in 0..2 {
                for url in ["site1.example", "www.site2.example/x", "unlisted.example"] {
                    look_up(&ix, url);
                }
                look_up(&ix, "http://10.1.2.3/");
                assert_eq!(look_up(&small, "site3.example"), 1);
            }
            counted.wait();
            finish.wait();
        })
    };
    counted.wait();
    let want = HostCacheCounts { hits: 3, misses: 3 };
    assert_eq!(host_cache_counts(), want, "a running thread's counts");
    finish.wait();
    worker.join().expect("worker");
    assert_eq!(
        host_cache_counts(),
        want,
        "an ended thread's counts, kept once"
    );

    // This thread and two more, at once: every count arrives.
    assert_eq!(look_up(&large, "site1.example"), 1);
    let threads: Vec<_> = (0..2)
        .map(|t| {
            let ix = large.clone();
            std::thread::spawn(move || {
                for i in 0..1_000 {
                    look_up(&ix, &format!("site{}.example", 10 + t * 1_000 + i % 500));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread");
    }
    // Every lookup counted once; each thread's 500 hosts missed at least once (two hosts
    // may share a cache entry, so a second lookup may miss too).
    let c = host_cache_counts();
    assert_eq!(c.hits + c.misses, 6 + 1 + 2 * 1_000, "{c:?}");
    assert!(c.misses >= 3 + 2 * 500, "{c:?}");
}
