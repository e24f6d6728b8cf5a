//! `Proxy-Authorization: Basic` credentials.

use base64::Engine;

/// User name and password from a `Proxy-Authorization` (or `Authorization`) header value,
/// or `None` if it is not well-formed Basic credentials.
pub fn basic_credentials(header: &[u8]) -> Option<(String, String)> {
    let header = std::str::from_utf8(header).ok()?.trim();
    let (scheme, token) = header.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(token.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    (!user.is_empty()).then(|| (user.to_owned(), password.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_decoded() {
        for (header, want) in [
            ("Basic YW15OnNlY3JldA==", Some(("amy", "secret"))),
            ("basic   YW15OnNlOmNyZXQ=", Some(("amy", "se:cret"))),
            ("Basic OnNlY3JldA==", None), // empty user
            ("Basic YW15", None),         // no colon
            ("Bearer YW15OnNlY3JldA==", None),
            ("Basic !!!", None),
            ("Basic", None),
            ("", None),
        ] {
            let got = basic_credentials(header.as_bytes());
            assert_eq!(
                got.as_ref().map(|(u, p)| (u.as_str(), p.as_str())),
                want,
                "{header}"
            );
        }
        assert_eq!(basic_credentials(b"Basic \xff\xfe"), None);
    }
}
