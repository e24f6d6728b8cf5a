//! Per-user Ed25519 signing keys. The secret half is stored only sealed: encrypted with
//! XChaCha20-Poly1305 under a key derived from the user's password by argon2id, so it can be
//! unlocked at sign-in and by nobody who lacks the password — not the IT admin, not someone
//! with a copy of the database.

use argon2::Argon2;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead as _, KeyInit as _};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use ed25519_dalek::{Signer as _, Verifier as _};

/// Why a key could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The password does not open the sealed key (or the sealed key was altered).
    #[error("the password does not unlock this signing key")]
    WrongPassword,
    /// The stored key is not in the expected form.
    #[error("the stored signing key is malformed: {0}")]
    Malformed(&'static str),
    /// The signature does not match the content and key.
    #[error("the signature does not match: the content or the signature was altered")]
    BadSignature,
}

/// An unlocked signing key, held in memory only while its owner is signed in.
#[derive(Clone)]
pub struct SigningKey(ed25519_dalek::SigningKey);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({})", self.public())
    }
}

/// A signing key as stored: the public half (base64) and the sealed secret half.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedKey {
    /// The Ed25519 public key, base64.
    pub public: String,
    /// `v1$<salt>$<nonce+ciphertext>`, base64 parts.
    pub sealed: String,
}

fn derive(password: &str, salt: &[u8]) -> Result<[u8; 32], KeyError> {
    let mut key = [0u8; 32];
    Argon2::default()
        .hash_password_into(password.as_bytes(), salt, &mut key)
        .map_err(|_| KeyError::Malformed("key derivation"))?;
    Ok(key)
}

impl SigningKey {
    /// A new random key.
    pub fn generate() -> SigningKey {
        let seed: [u8; 32] = rand::random();
        SigningKey(ed25519_dalek::SigningKey::from_bytes(&seed))
    }

    /// The public half, base64.
    pub fn public(&self) -> String {
        STANDARD.encode(self.0.verifying_key().as_bytes())
    }

    /// Signs `message`; the signature in base64.
    pub fn sign(&self, message: &[u8]) -> String {
        STANDARD.encode(self.0.sign(message).to_bytes())
    }

    /// Seals the key under `password` (argon2id with a fresh salt; XChaCha20-Poly1305 with a
    /// fresh nonce).
    pub fn seal(&self, password: &str) -> SealedKey {
        let salt: [u8; 16] = rand::random();
        let nonce: [u8; 24] = rand::random();
        // Deriving only fails for salts or outputs of the wrong length, which these are not.
        let key = derive(password, &salt).unwrap_or([0; 32]);
        let cipher = XChaCha20Poly1305::new(&key.into());
        let mut out = nonce.to_vec();
        // Encrypting a 32-byte buffer cannot fail.
        out.extend(
            cipher
                .encrypt(XNonce::from_slice(&nonce), self.0.to_bytes().as_slice())
                .unwrap_or_default(),
        );
        SealedKey {
            public: self.public(),
            sealed: format!("v1${}${}", STANDARD.encode(salt), STANDARD.encode(out)),
        }
    }
}

impl SealedKey {
    /// Opens the sealed key with `password`.
    pub fn unlock(&self, password: &str) -> Result<SigningKey, KeyError> {
        let mut parts = self.sealed.split('$');
        let (Some("v1"), Some(salt), Some(body), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(KeyError::Malformed("unknown format"));
        };
        let salt = STANDARD
            .decode(salt)
            .map_err(|_| KeyError::Malformed("salt"))?;
        let body = STANDARD
            .decode(body)
            .map_err(|_| KeyError::Malformed("body"))?;
        if body.len() < 24 {
            return Err(KeyError::Malformed("body"));
        }
        let (nonce, ciphertext) = body.split_at(24);
        let key = derive(password, &salt)?;
        let plain = XChaCha20Poly1305::new(&key.into())
            .decrypt(XNonce::from_slice(nonce), ciphertext)
            .map_err(|_| KeyError::WrongPassword)?;
        let seed: [u8; 32] = plain
            .as_slice()
            .try_into()
            .map_err(|_| KeyError::Malformed("secret length"))?;
        let key = SigningKey(ed25519_dalek::SigningKey::from_bytes(&seed));
        if key.public() != self.public {
            return Err(KeyError::Malformed("public key does not match"));
        }
        Ok(key)
    }
}

/// Checks `signature` (base64) over `message` against `public` (base64).
pub fn verify_signature(public: &str, message: &[u8], signature: &str) -> Result<(), KeyError> {
    let public: [u8; 32] = STANDARD
        .decode(public)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or(KeyError::Malformed("public key"))?;
    let key = ed25519_dalek::VerifyingKey::from_bytes(&public)
        .map_err(|_| KeyError::Malformed("public key"))?;
    let signature: [u8; 64] = STANDARD
        .decode(signature)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or(KeyError::Malformed("signature"))?;
    key.verify(message, &ed25519_dalek::Signature::from_bytes(&signature))
        .map_err(|_| KeyError::BadSignature)
}

/// The bytes signed for a JSON value: object keys sorted, no white space, so the same content
/// always gives the same bytes — also after the signed file is read back (numbers are parsed
/// exactly: serde_json's `float_roundtrip`).
pub fn canonical_json(value: &serde_json::Value) -> Vec<u8> {
    fn write(v: &serde_json::Value, out: &mut Vec<u8>) {
        match v {
            serde_json::Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                out.push(b'{');
                for (i, k) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write(&serde_json::Value::String(k.clone()), out);
                    out.push(b':');
                    write(&map[k], out);
                }
                out.push(b'}');
            }
            serde_json::Value::Array(items) => {
                out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write(item, out);
                }
                out.push(b']');
            }
            // Scalars have one serialisation.
            other => out.extend(serde_json::to_vec(other).unwrap_or_default()),
        }
    }
    let mut out = Vec::new();
    write(value, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sealed_keys_open_only_with_the_password() {
        let key = SigningKey::generate();
        let sealed = key.seal("correct horse battery");
        assert_eq!(sealed.public, key.public());
        assert!(!sealed.sealed.contains(&key.public()));
        let opened = sealed.unlock("correct horse battery").unwrap();
        assert_eq!(opened.public(), key.public());
        assert_eq!(
            sealed.unlock("wrong password").err(),
            Some(KeyError::WrongPassword)
        );

        let mut tampered = sealed.clone();
        tampered.public = SigningKey::generate().public();
        assert!(matches!(
            tampered.unlock("correct horse battery"),
            Err(KeyError::Malformed(_))
        ));
        for bad in ["", "v2$a$b", "v1$!!$b", "v1$AAAA$AAAA", "v1$AAAA$AAAA$x"] {
            let s = SealedKey {
                public: sealed.public.clone(),
                sealed: bad.into(),
            };
            assert!(s.unlock("correct horse battery").is_err(), "{bad}");
        }
    }

    #[test]
    fn signatures_cover_exact_content() {
        let key = SigningKey::generate();
        let content = json!({"b": [1, {"y": "é", "x": null}], "a": "check"});
        let message = canonical_json(&content);
        assert_eq!(
            String::from_utf8(message.clone()).unwrap(),
            r#"{"a":"check","b":[1,{"x":null,"y":"é"}]}"#
        );
        // Read back from the file it was written to, a value gives the same bytes (found by
        // fuzzing: a float that serde_json's fast parser rounded differently).
        for text in [
            r#"{"n":3.3333333333333326e52,"m":[0.1,1e-7,-0.0]}"#,
            r#"{"b":1,"a":"\u00e9"}"#,
        ] {
            let v: serde_json::Value = serde_json::from_str(text).unwrap();
            let once = canonical_json(&v);
            let back: serde_json::Value = serde_json::from_slice(&once).unwrap();
            assert_eq!((back.clone(), canonical_json(&back)), (v, once), "{text}");
        }
        let sig = key.sign(&message);
        assert_eq!(verify_signature(&key.public(), &message, &sig), Ok(()));
        let altered = canonical_json(&json!({"a": "check", "b": [2]}));
        assert_eq!(
            verify_signature(&key.public(), &altered, &sig),
            Err(KeyError::BadSignature)
        );
        let other = SigningKey::generate();
        assert_eq!(
            verify_signature(&other.public(), &message, &sig),
            Err(KeyError::BadSignature)
        );
        assert!(matches!(
            verify_signature("nope", &message, &sig),
            Err(KeyError::Malformed(_))
        ));
        assert!(matches!(
            verify_signature(&key.public(), &message, "AAAA"),
            Err(KeyError::Malformed(_))
        ));
    }
}
