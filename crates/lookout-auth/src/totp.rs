//! Time-based one-time passwords (RFC 6238: HMAC-SHA1, 6 digits, 30-second steps), the kind
//! every authenticator app reads from a QR code.

use totp_rs::{Algorithm, Secret, TOTP};

/// What stays as it is in a URL value: RFC 3986's unreserved characters.
const UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

const STEP: u64 = 30;
const DIGITS: usize = 6;

/// A two-factor secret.
#[derive(Clone)]
pub struct Totp {
    inner: TOTP,
}

impl std::fmt::Debug for Totp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Totp(..)")
    }
}

/// A secret that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TotpError {
    /// Not base32.
    #[error("the two-factor secret is not valid base32")]
    BadSecret,
}

impl Totp {
    /// A new random 160-bit secret.
    pub fn generate() -> Totp {
        let bytes: [u8; 20] = rand::random();
        Totp::from_bytes(bytes.to_vec())
    }

    fn from_bytes(secret: Vec<u8>) -> Totp {
        Totp {
            inner: TOTP::new_unchecked(Algorithm::SHA1, DIGITS, 0, STEP, secret),
        }
    }

    /// The secret from its base32 form (as stored and as typed into an app by hand).
    pub fn from_base32(s: &str) -> Result<Totp, TotpError> {
        let cleaned: String = s
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .collect::<String>()
            .to_ascii_uppercase();
        let bytes = Secret::Encoded(cleaned)
            .to_bytes()
            .map_err(|_| TotpError::BadSecret)?;
        if bytes.len() < 10 {
            return Err(TotpError::BadSecret);
        }
        Ok(Totp::from_bytes(bytes))
    }

    /// The secret in base32, unpadded.
    pub fn base32(&self) -> String {
        self.inner.get_secret_base32()
    }

    /// The secret in groups of four, for typing by hand.
    pub fn base32_grouped(&self) -> String {
        let s = self.base32();
        s.as_bytes()
            .chunks(4)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The `otpauth://` address an authenticator app reads from a QR code.
    pub fn otpauth_url(&self, issuer: &str, account: &str) -> String {
        let enc = |s: &str| percent_encoding::utf8_percent_encode(s, UNRESERVED).to_string();
        format!(
            "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP}",
            enc(issuer),
            enc(account),
            self.base32(),
            enc(issuer)
        )
    }

    /// The code for Unix time `unix_secs`.
    pub fn code_at(&self, unix_secs: u64) -> String {
        self.inner.generate(unix_secs)
    }

    /// The time step a code belongs to, if `code` is right at `unix_secs` (one step of clock
    /// drift either way is allowed) and its step is later than `last_step`, the step of the
    /// last code accepted — so a code seen over someone's shoulder cannot be used again.
    pub fn check(&self, code: &str, unix_secs: u64, last_step: u64) -> Option<u64> {
        let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
        if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let now = unix_secs / STEP;
        let mut found = None;
        for step in [now.saturating_sub(1), now, now + 1] {
            if step > last_step && crate::secrets_equal(&self.inner.generate(step * STEP), &code) {
                found = Some(step);
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA-1 (secret "12345678901234567890"), last 6 digits.
    #[test]
    fn rfc_6238_vectors() {
        let t = Totp::from_bytes(b"12345678901234567890".to_vec());
        let table = [
            (59, "287082"),
            (1_111_111_109, "081804"),
            (1_111_111_111, "050471"),
            (1_234_567_890, "005924"),
            (2_000_000_000, "279037"),
        ];
        for (time, code) in table {
            assert_eq!(t.code_at(time), code, "at {time}");
        }
        assert_eq!(
            Totp::from_base32(&t.base32()).unwrap().code_at(59),
            "287082"
        );
    }

    #[test]
    fn checking_codes() {
        let t = Totp::generate();
        let now = 1_800_000_000;
        let step = now / 30;
        let code = t.code_at(now);
        let table: [(&str, u64, u64, Option<u64>); 8] = [
            (&code, now, 0, Some(step)),
            (&code, now + 30, 0, Some(step)),
            (&code, now - 30, 0, Some(step)),
            (&code, now + 60, 0, None),
            (&code, now, step, None),
            ("12345", now, 0, None),
            ("abcdef", now, 0, None),
            ("", now, 0, None),
        ];
        for (c, at, last, want) in table {
            assert_eq!(t.check(c, at, last), want, "{c} at {at} after {last}");
        }
        let spaced = format!("{} {}", &code[..3], &code[3..]);
        assert_eq!(t.check(&spaced, now, 0), Some(step));
    }

    #[test]
    fn secrets_parse_and_print() {
        let t = Totp::generate();
        assert_eq!(t.base32().len(), 32);
        let grouped = t.base32_grouped();
        assert_eq!(
            Totp::from_base32(&grouped.to_lowercase()).unwrap().base32(),
            t.base32()
        );
        assert_eq!(
            Totp::from_base32("not base32!").err(),
            Some(TotpError::BadSecret)
        );
        assert_eq!(Totp::from_base32("").err(), Some(TotpError::BadSecret));
        let url = t.otpauth_url("Lookout (Example College)", "dsl@example");
        assert!(url
            .starts_with("otpauth://totp/Lookout%20%28Example%20College%29:dsl%40example?secret="));
        assert!(!format!("{t:?}").contains(&t.base32()));
    }
}
