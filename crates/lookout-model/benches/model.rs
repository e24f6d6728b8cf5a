//! Criterion benchmark of the model stage with the real weights: one short text at a time
//! (the latency a search sees) and batches of 32 (what the workers do under load), on texts
//! of 5 to 40 words made from the shipped corpus. Before criterion runs it prints the
//! latency distribution of single texts (p50/p99 over 3,000) and the resident memory the
//! loaded model adds. Run on one core: `taskset -c 0 cargo bench -p lookout-model`.

use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use lookout_model::{corpus, Encoder, Features, Head, Model, Params};

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Texts of 5 to 40 words: corpus lines, and pairs and triples of them.
fn texts() -> Vec<String> {
    let lines: Vec<String> = corpus::training().into_iter().map(|s| s.text).collect();
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let t = match i % 3 {
            0 => l.clone(),
            1 => format!("{l} {}", lines[(i * 7) % lines.len()]),
            _ => format!(
                "{l} {} {}",
                lines[(i * 7) % lines.len()],
                lines[(i * 13) % lines.len()]
            ),
        };
        let words = t.split_whitespace().count();
        if (5..=40).contains(&words) {
            out.push(t);
        }
    }
    out
}

fn bench(c: &mut Criterion) {
    let Some(dir) = lookout_model::weights_for_tests() else {
        return;
    };
    let before = rss_kib();
    let encoder = Encoder::load(&dir).unwrap();
    let samples = corpus::training();
    let train_texts: Vec<&str> = samples.iter().map(|s| s.text.as_str()).collect();
    let xs = Features::of_texts(&encoder, &train_texts);
    let head = Head::train(&xs, &samples, &Params::default());
    drop(xs);
    let model = Model::new(encoder, head);
    let loaded = rss_kib();

    let texts = texts();
    let words: usize = texts.iter().map(|t| t.split_whitespace().count()).sum();
    let mut lat: Vec<f64> = Vec::new();
    for t in texts.iter().cycle().take(3000) {
        let start = Instant::now();
        std::hint::black_box(model.score(t));
        lat.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    let batch_start = Instant::now();
    let mut n = 0;
    for chunk in texts.chunks(32).take(100) {
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        n += std::hint::black_box(model.score_batch(&refs)).len();
    }
    let per_s = n as f64 / batch_start.elapsed().as_secs_f64();
    println!(
        "model stage: {} texts of 5-40 words (mean {:.1}); one at a time p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; \
         batches of 32: {per_s:.0} texts/s; RSS {} MiB before loading, {} MiB loaded (+{} MiB, head trained in process)",
        texts.len(),
        words as f64 / texts.len() as f64,
        pct(0.5),
        pct(0.99),
        lat[lat.len() - 1],
        before / 1024,
        loaded / 1024,
        (loaded.saturating_sub(before)) / 1024,
    );

    let mut g = c.benchmark_group("model");
    let one = &texts[texts.len() / 2];
    g.throughput(Throughput::Elements(1));
    g.bench_function("score one text", |b| b.iter(|| model.score(one)));
    // What every text the model stage is given pays first: the n-gram screen.
    g.bench_function("screen one text", |b| b.iter(|| model.passes_screen(one)));
    let batch: Vec<&str> = texts.iter().take(32).map(String::as_str).collect();
    g.throughput(Throughput::Elements(32));
    g.bench_function("score a batch of 32", |b| {
        b.iter(|| model.score_batch(&batch))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
