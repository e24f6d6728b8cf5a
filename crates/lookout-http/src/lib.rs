//! The proxy's protocol logic, without I/O: TLS ClientHello SNI, search terms and safe search,
//! download sniffing and `Content-Disposition`, proxy credentials, page text for monitoring,
//! and the HTML pages. Every
//! parser here reads bytes from strangers, so each returns an error or `None` on bad input and
//! never panics (fuzzed in `fuzz/`).

mod auth;
mod download;
mod html;
mod pages;
mod portal;
mod search;
mod sni;

pub use auth::basic_credentials;
pub use download::{disposition_filename, sniff, Sniffed, SNIFF_LEN};
pub use html::{html_text, PageText};
pub use pages::{block_page, encode_param, escape, notice_page, warn_page, Notice};
pub use portal::{
    briefing_page, field, form_fields, markdown_html, pac_file, sign_in_page, signed_in_page,
    BriefingView, PORTAL_PATH,
};
pub use search::{
    decode_query_value, force_safe_search, is_google, safe_search_header, search_term,
};
pub use sni::{client_hello_sni, SniError, MAX_HELLO};

/// Decodes `%XX` escapes (an invalid escape is kept as it is) and, in form-encoded query
/// values, `+` as a space.
pub fn percent_decode(s: &str, plus_is_space: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    percent_decode_into(s, plus_is_space, &mut out);
    out
}

/// [`percent_decode`], appending to `out`.
pub fn percent_decode_into(s: &str, plus_is_space: bool, out: &mut Vec<u8>) {
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' if plus_is_space => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
}

/// `bytes` as text, each invalid UTF-8 sequence replaced by U+FFFD as `from_utf8_lossy` does,
/// without copying bytes that are valid already (most decoded URLs and search terms).
pub fn lossy_text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}
