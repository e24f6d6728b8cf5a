//! The texts the scanning benchmarks read (`benches/scan.rs`, and `examples/scan_pages.rs`
//! for `bench/scan-instructions.sh`), so that both measure the same input.

use std::path::{Path, PathBuf};

/// The repository whose documentation and corpora are read: this one, or the one named by
/// `LOOKOUT_TEXTS_ROOT` (so that two builds compared by `bench/scan-instructions.sh` read the
/// same text).
fn root() -> PathBuf {
    std::env::var_os("LOOKOUT_TEXTS_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.."))
}

/// English prose: the repository's documentation and the licence texts every Debian system
/// has. Mostly innocent, as most page text is.
pub(crate) fn prose() -> String {
    let root = root();
    read_all(
        vec![root.join("README.md"), root.join("ARCHITECTURE.md")],
        &[
            root.join("docs"),
            PathBuf::from("/usr/share/common-licenses"),
        ],
    )
}

/// Plain English prose without markup or code: the licence texts every Debian system has
/// (most of a web page's text is words and spaces like these).
pub(crate) fn plain() -> String {
    read_all(Vec::new(), &[PathBuf::from("/usr/share/common-licenses")])
}

/// The evaluation corpora: every line risky or a hard innocent case.
pub(crate) fn risky() -> String {
    read_all(Vec::new(), &[root().join("crates/lookout-scan/corpus")])
}

fn read_all(mut files: Vec<PathBuf>, dirs: &[PathBuf]) -> String {
    let mut text = String::new();
    for dir in dirs {
        if let Ok(entries) = std::fs::read_dir(dir) {
            let mut v: Vec<_> = entries.flatten().map(|e| e.path()).collect();
            v.sort();
            files.extend(v);
        }
    }
    for f in files.iter().filter(|f| is_text(f)) {
        if let Ok(s) = std::fs::read_to_string(f) {
            text.push_str(&s);
            text.push('\n');
        }
    }
    let base = text.clone();
    while text.len() < 4 << 20 {
        text.push_str(&base);
    }
    text
}

fn is_text(p: &Path) -> bool {
    p.is_file()
        && matches!(
            p.extension().and_then(|e| e.to_str()),
            Some("md" | "tsv") | None
        )
}

/// `text` in pieces of at most `size` bytes, cut at character boundaries: one text per page,
/// as the monitor scans page text.
pub(crate) fn split(text: &str, size: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let mut end = size.min(rest.len());
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        out.push(&rest[..end]);
        rest = &rest[end..];
    }
    out
}
