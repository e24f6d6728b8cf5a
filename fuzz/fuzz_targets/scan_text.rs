//! Risk detection on hostile input: scanning any text with every shipped library, reading any
//! bytes as a phrase file, an e2guardian list or a corpus. None may panic; evidence must be a
//! slice of the scanned text; a phrase file either adds its rules or nothing.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use lookout_scan::{normalize, parse_corpus, Library, Risk, Scanner};

fn scanner() -> &'static Scanner {
    static S: OnceLock<Scanner> = OnceLock::new();
    S.get_or_init(|| Library::builtin().compile().expect("shipped libraries compile"))
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let n = normalize(&text);
    // Words between single spaces. (Not idempotent: `k k w` once joined becomes `kw`.)
    assert!(!n.contains("  ") && n.trim() == n, "{n:?}");
    for f in scanner().scan(&text) {
        assert!(f.score > 0 && !f.matches.is_empty());
        for m in &f.matches {
            assert!(m.start <= m.end && m.end <= text.len());
            assert!(text.is_char_boundary(m.start) && text.is_char_boundary(m.end));
        }
    }
    let mut lib = Library::new();
    match lib.add("fuzz.txt", &text) {
        Ok(_) => {
            let _ = lib.compile().map(|s| s.scan(&text));
        }
        Err(e) => assert!(lib.is_empty() && !e.problems.is_empty()),
    }
    let mut lib = Library::new();
    if lib.add_e2guardian("w", &text, Risk::Drugs).is_err() {
        assert!(lib.is_empty());
    }
    let _ = parse_corpus("c", &text);
});
