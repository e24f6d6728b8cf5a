//! The console's parsers on hostile input: an incident export file (JSON or HTML) handed to
//! `lookout export verify`, a typed two-factor key, a stored sealed key and a signature. None
//! may panic; canonical JSON must read back as the same value.

#![no_main]

use libfuzzer_sys::fuzz_target;
use lookout_auth::{canonical_json, verify_signature, SealedKey, Totp};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // Any file: a clear error, never a panic, never "valid" without a real signature.
    let _ = lookout_console::verify_export(&text);
    let _ = Totp::from_base32(&text);
    let mut parts = text.splitn(3, '\n');
    let (a, b, c) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
    );
    let sealed = SealedKey {
        public: a.to_owned(),
        sealed: b.to_owned(),
    };
    // Unlocking derives a key with argon2 only for well-formed input; keep the fuzzer fast by
    // trying it only when the shape is right.
    if b.starts_with("v1$") && b.len() < 200 {
        let _ = sealed.unlock(c);
    }
    let _ = verify_signature(a, c.as_bytes(), b);
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        let canonical = canonical_json(&value);
        let back: serde_json::Value = serde_json::from_slice(&canonical).expect("canonical JSON parses");
        assert_eq!(back, value);
        assert_eq!(canonical_json(&back), canonical, "canonical form is stable");
    }
});
