//! Criterion benchmarks on the full shared data: compile time, and decisions per second for a
//! mix of listed and unlisted requests (normalise + look up + decide, as a request costs).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use lookout_lists::NormUrl;
use lookout_policy::{LocalTime, Weekday};

mod requests;
use requests::{config, requests, zipf};

/// The allocator the `lookout` binary ships with (a blocked request's decision allocates its
/// explanation): measured with the C library's malloc, the figures would be of a program
/// nobody runs.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn bench(c: &mut Criterion) {
    let Some(config) = config() else { return };

    let mut group = c.benchmark_group("load");
    group.sample_size(10);
    group.bench_function("shared-data", |b| {
        b.iter(|| lookout_loader::load(&config.lists).expect("load"))
    });
    group.finish();

    let loaded = lookout_loader::load(&config.lists).expect("load");
    let policy = config.policy().expect("policy");
    let learners = policy.group_id("learners-u18").expect("group");
    let at = LocalTime {
        weekday: Weekday::Wed,
        minute: 600,
    };
    let requests = requests();
    let popular = zipf(&requests);
    let normalised: Vec<NormUrl> = requests
        .iter()
        .filter_map(|r| NormUrl::parse(r).ok())
        .collect();

    let mut group = c.benchmark_group("requests");
    group.throughput(Throughput::Elements(requests.len() as u64));
    group.bench_function("normalise", |b| {
        let mut url = NormUrl::default();
        b.iter(|| {
            let mut n = 0;
            for r in &requests {
                n += usize::from(url.parse_into(r).is_ok());
            }
            n
        })
    });
    group.throughput(Throughput::Elements(1));
    group.bench_function("normalise-one", |b| {
        let mut url = NormUrl::default();
        b.iter(|| {
            url.parse_into(std::hint::black_box(
                "https://www.Example-Casino.com/path/to/page.html?q=1",
            ))
            .is_ok()
        })
    });
    group.bench_function("lookup-one", |b| {
        let url = NormUrl::parse("https://www.0-casino.info/path/to/page.html?q=1").expect("url");
        b.iter(|| loaded.index.lookup(std::hint::black_box(&url)))
    });
    group.throughput(Throughput::Elements(normalised.len() as u64));
    group.bench_function("lookup", |b| {
        b.iter(|| {
            normalised
                .iter()
                .map(|u| loaded.index.lookup(u))
                .fold(0, |a, x| a ^ x)
        })
    });
    group.throughput(Throughput::Elements(requests.len() as u64));
    let decide_all = |index: &lookout_lists::Index, requests: &[String], url: &mut NormUrl| {
        let mut blocked = 0;
        for r in requests {
            if url.parse_into(r).is_ok() {
                let d = policy.decide(index, learners, url, at);
                blocked += usize::from(d.action == lookout_policy::Action::Block);
            }
        }
        blocked
    };
    let popular_normalised: Vec<NormUrl> = popular
        .iter()
        .filter_map(|r| NormUrl::parse(r).ok())
        .collect();
    group.throughput(Throughput::Elements(popular_normalised.len() as u64));
    group.bench_function("decide/zipf", |b| {
        b.iter(|| {
            let decisions = popular_normalised
                .iter()
                .map(|u| policy.decide(&loaded.index, learners, u, at));
            decisions
                .filter(|d| d.action == lookout_policy::Action::Block)
                .count()
        })
    });
    group.throughput(Throughput::Elements(requests.len() as u64));
    for (name, requests) in [
        ("normalise+decide/uniform", &requests),
        ("normalise+decide/zipf", &popular),
    ] {
        group.bench_function(name, |b| {
            let mut url = NormUrl::default();
            b.iter(|| decide_all(&loaded.index, requests, &mut url))
        });
    }
    group.finish();

    // The uniform mix's own work, nearly without its waits for memory: its first 1,000
    // requests over and over, on the same lists without a host cache, so that every request
    // is probed as a host nobody asked for lately is, but the strings and the lines of the
    // index they read (by estimate a few hundred kilobytes) stay in the processor's cache
    // after the first pass. Set beside `normalise+decide/uniform`, it says how much of that
    // figure is instructions and how much is waiting for memory. (3,000 requests ran ~14%
    // slower here, presumably as more of their reads came from the outer caches.) A group and
    // a load of their own, after the two mixes above: with this index loaded before them, in
    // their loop, the uniform mix measured 2.46-2.71 M/s against 3.00-3.07.
    let mut lists = config.lists.clone();
    lists.host_cache = Some(toml::Spanned::new(0..0, 0));
    let uncached = lookout_loader::load(&lists).expect("load");
    let few = &requests[..1_000];
    let mut group = c.benchmark_group("requests");
    group.throughput(Throughput::Elements(few.len() as u64));
    group.bench_function("normalise+decide/uniform-in-cache", |b| {
        let mut url = NormUrl::default();
        b.iter(|| decide_all(&uncached.index, few, &mut url))
    });
    group.finish();
    drop(uncached);

    // The memory a decision cannot avoid waiting for: a request for a listed host nobody asked
    // for lately reads at least one slot of the host table, at a place its hash chooses, after
    // the URL is normalised and hashed. Reads each of which names the next, at random cache
    // lines of memory as large as the index, take as long as such a read does on this
    // machine, whatever the code around it.
    let mut group = c.benchmark_group("memory");
    let lines = (loaded.index.memory_bytes() / 64).max(1024);
    let next = chain(lines);
    const READS: usize = 100_000;
    group.throughput(Throughput::Elements(READS as u64));
    group.bench_function("dependent-read/index-sized", |b| {
        b.iter(|| {
            let mut at = 0;
            for _ in 0..READS {
                at = next[at] as usize;
            }
            at
        })
    });
    group.finish();
    eprintln!(
        "memory: the index holds {} bytes; the chain reads {lines} cache lines of it",
        loaded.index.memory_bytes()
    );
}

/// `lines` cache lines (64 bytes, sixteen `u32`) in one cycle of random order (Sattolo's
/// shuffle): the first `u32` of each holds the index of the next line's first.
fn chain(lines: usize) -> Vec<u32> {
    let mut order: Vec<u32> = (0..lines as u32).collect();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for i in (1..lines).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        order.swap(i, (state % i as u64) as usize);
    }
    let mut next = vec![0u32; lines * 16];
    for (k, &line) in order.iter().enumerate() {
        next[line as usize * 16] = order[(k + 1) % lines] * 16;
    }
    next
}

criterion_group!(benches, bench);
criterion_main!(benches);
