//! Criterion benchmark: a page's title and visible text (`html_text`), which the proxy runs on
//! every HTML page it copies for the monitoring.
//!
//! Page: the repository's README and ARCHITECTURE rendered to HTML (pulldown-cmark), inside a
//! head with a title, a style sheet and a script, about 150 KiB, as a long article is; and
//! the proxy benchmark's page of short paragraphs; and a page of Polish paragraphs (UTF-8).

use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use lookout_http::html_text;

fn page() -> String {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut body = String::new();
    for doc in ["README.md", "ARCHITECTURE.md"] {
        let markdown = std::fs::read_to_string(root.join(doc)).expect("docs");
        pulldown_cmark::html::push_html(&mut body, pulldown_cmark::Parser::new(&markdown));
    }
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Lookout &mdash; README &amp; architecture</title>\
         <style>body {{ font: 16px/1.5 sans-serif; }} p > code {{ color: #333; }}</style>\
         <script>window.dataLayer = window.dataLayer || []; function gtag() {{}}</script>\
         </head>\n<body><nav><a href=\"/\">Home</a> &middot; <a href=\"/docs\">Docs</a></nav>\
         <main>{body}</main><script src=\"/app.js\"></script></body></html>\n"
    )
}

/// The page bench/proxy-vs-e2guardian.sh serves through the proxy: short paragraphs, a tag
/// every 30 bytes, about 2 KB.
fn short_paragraphs() -> String {
    format!(
        "<!doctype html><title>page</title>{}\n",
        "<p>Lorem ipsum dolor sit amet.</p>".repeat(56)
    )
}

/// A page in Polish, a language of the seeds' learners: a third of its letters outside ASCII.
fn polish() -> String {
    format!(
        "<!doctype html><title>Strona</title>{}\n",
        "<p>Zażółć gęślą jaźń, a źdźbło żyta kołysze się na łące pełnej maków.</p>".repeat(30)
    )
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("html");
    for (name, page) in [
        ("text", page()),
        ("text-short-paragraphs", short_paragraphs()),
        ("text-polish", polish()),
    ] {
        group.throughput(Throughput::Bytes(page.len() as u64));
        group.bench_function(name, |b| b.iter(|| html_text(page.as_bytes())));
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
