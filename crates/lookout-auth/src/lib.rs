//! Lookout's console security, sans I/O: who may do what ([`Role`]), two-factor codes
//! ([`Totp`], RFC 6238), per-user Ed25519 signing keys sealed by the user's password
//! ([`SealedKey`], [`SigningKey`]), the canonical bytes that get signed ([`canonical_json`]),
//! and random secrets with their stored hashes.
//!
//! Invariants: no secret is stored in the clear by a caller that follows this API — session
//! and token secrets are kept as [`secret_hash`]es, signing keys only sealed (argon2id-derived
//! key, XChaCha20-Poly1305); a signature covers [`canonical_json`] of exactly what is shown,
//! so the same content always gives the same bytes whatever the map order it was built in.

mod keys;
mod role;
mod totp;

pub use keys::{canonical_json, verify_signature, KeyError, SealedKey, SigningKey};
pub use role::{ParseRoleError, Role};
pub use totp::{Totp, TotpError};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest as _, Sha256};

/// A fresh random secret: 32 bytes from the operating system, base64url.
pub fn random_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The hash kept in place of a secret (SHA-256, hex): enough for secrets with 256 bits of
/// entropy, which no dictionary can reach.
pub fn secret_hash(secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares two secrets in time that does not depend on where they differ.
pub fn secrets_equal(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq as _;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_random_and_hashed() {
        let (a, b) = (random_secret(), random_secret());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(secret_hash(&a).len(), 64);
        assert_eq!(secret_hash(&a), secret_hash(&a));
        assert_ne!(secret_hash(&a), secret_hash(&b));
        assert!(secrets_equal(&a, &a.clone()));
        assert!(!secrets_equal(&a, &b));
        assert!(!secrets_equal(&a, &a[..42]));
    }
}
