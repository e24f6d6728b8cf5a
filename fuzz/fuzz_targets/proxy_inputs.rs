//! Every parser of the proxy's own that reads bytes from strangers: the TLS ClientHello
//! (SNI), `Content-Disposition`, `Proxy-Authorization`, search terms and safe-search
//! rewriting, download sniffing, page text, and the portal's form bodies and the
//! organisation's briefing Markdown. None may panic; results must be self-consistent; the
//! Markdown never yields a script, an event handler or a script link.

#![no_main]

use libfuzzer_sys::fuzz_target;
use lookout_http::{
    basic_credentials, client_hello_sni, decode_query_value, disposition_filename,
    force_safe_search, form_fields, html_text, markdown_html, search_term, sniff, SniError,
};

fuzz_target!(|data: &[u8]| {
    match client_hello_sni(data) {
        Ok(Some(name)) => {
            assert!(!name.is_empty());
            assert!(name.bytes().all(|b| b.is_ascii_graphic() && !b.is_ascii_uppercase()));
        }
        Err(SniError::Incomplete(n)) => assert!(n > data.len() || n == 0),
        _ => {}
    }
    if let Some(name) = disposition_filename(data) {
        assert!(!name.is_empty() && !name.contains('/') && !name.contains('\\'));
    }
    if let Some((user, _)) = basic_credentials(data) {
        assert!(!user.is_empty());
    }
    let _ = sniff(data, None);
    let page = html_text(data);
    assert!(!page.text.starts_with(' ') && !page.text.contains("  "));
    let text = String::from_utf8_lossy(data);
    let _ = decode_query_value(&text);
    let _ = form_fields(data);
    let html = markdown_html(&text).to_ascii_lowercase();
    assert!(!html.contains("<script") && !html.contains("<img") && !html.contains("<iframe"), "{html}");
    // Text may say anything (escaped); what matters is the links' own addresses.
    assert!(
        !html.contains("<a href=\"javascript:") && !html.contains("<a href=\"data:"),
        "{html}"
    );
    // Split the input into host, path and query at the first two NULs.
    let mut parts = text.splitn(3, '\0');
    let host = parts.next().unwrap_or("").to_ascii_lowercase();
    let path = parts.next().unwrap_or("/");
    let query = parts.next();
    if let Some(term) = search_term(&host, path, query) {
        assert!(!term.is_empty() && term.chars().count() <= 1000);
    }
    if let Some(q) = force_safe_search(&host, path, query) {
        // Forcing again changes nothing.
        assert_eq!(force_safe_search(&host, path, Some(&q)), None, "{q}");
    }
});
