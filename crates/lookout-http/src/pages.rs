//! The pages the proxy shows people: block, warning, and plain notices. Self-contained HTML
//! (no scripts, no outside resources) so that they render whatever is blocked.

use std::fmt::Write;

/// Escapes text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes a query parameter value.
pub fn encode_param(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// What a block or warning page says.
#[derive(Debug, Clone)]
pub struct Notice<'a> {
    /// The address asked for.
    pub url: &'a str,
    /// Category titles, e.g. "Gambling"; empty when no category applies.
    pub categories: &'a str,
    /// Why, in words.
    pub reason: &'a str,
    /// Reference of the logged event.
    pub reference: &'a str,
    /// The group whose policy applied.
    pub group: &'a str,
    /// The signed-in user, if known.
    pub user: Option<&'a str>,
    /// "Report a concern" link.
    pub report_url: &'a str,
    /// "This should not be blocked" link.
    pub review_url: &'a str,
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:40em;margin:3em auto;padding:0 1em;color:#1b1b1b;line-height:1.5}\
h1{font-size:1.6em}dl{display:grid;grid-template-columns:auto 1fr;gap:.3em 1em}dt{font-weight:600}\
dd{margin:0;overflow-wrap:anywhere}.actions a{display:inline-block;margin:.5em 1em .5em 0;padding:.5em 1em;border:1px solid #1d4ed8;border-radius:.3em;color:#1d4ed8;text-decoration:none}\
.actions a.primary{background:#1d4ed8;color:#fff}footer{margin-top:2em;font-size:.85em;color:#555}\
form label{display:block;margin-top:.8em;font-weight:600}form input:not([type=checkbox]){display:block;width:100%;max-width:24em;padding:.5em;font-size:1em}\
label.choice{font-weight:400}button{padding:.6em 1.2em;font-size:1em;background:#1d4ed8;color:#fff;border:0;border-radius:.3em}\
.problem{border-left:4px solid #b91c1c;padding:.3em .8em;background:#fef2f2}.who{color:#555}\
section.briefing,section.terms{border:1px solid #ddd;border-radius:.3em;padding:0 1em;margin:1em 0}";

pub(crate) fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<title>{}</title><style>{STYLE}</style></head><body>\n{body}\n\
<footer>Lookout e-safety filter</footer></body></html>\n",
        escape(title)
    )
}

fn details(n: &Notice<'_>) -> String {
    let mut d = String::from("<dl>");
    let mut row = |k: &str, v: &str| {
        let _ = write!(d, "<dt>{}</dt><dd>{}</dd>", escape(k), escape(v));
    };
    row("Address", n.url);
    if !n.categories.is_empty() {
        row("Category", n.categories);
    }
    row("Why", n.reason);
    row("Reference", n.reference);
    match n.user {
        Some(u) => row("Signed in as", &format!("{u} ({})", n.group)),
        None => row("Policy", n.group),
    }
    d.push_str("</dl>");
    d
}

/// The page for a blocked request.
pub fn block_page(n: &Notice<'_>) -> String {
    let body = format!(
        "<h1>This page is blocked</h1>\n\
<p>The college's e-safety policy does not allow this page on this network.</p>\n{}\n\
<p>If something online has worried or upset you, or someone is asking you to do something \
you are not comfortable with, please tell someone. You can report it here, in confidence.</p>\n\
<p class=\"actions\"><a class=\"primary\" href=\"{}\">Report a concern</a>\
<a href=\"{}\">This should not be blocked</a></p>",
        details(n),
        escape(n.report_url),
        escape(n.review_url),
    );
    page("Blocked: this page is not allowed", &body)
}

/// The click-through page for a warned request.
pub fn warn_page(n: &Notice<'_>, continue_url: &str) -> String {
    let body = format!(
        "<h1>Are you sure you want to continue?</h1>\n\
<p>This page may not be suitable. If you continue, your visit will be recorded.</p>\n{}\n\
<p class=\"actions\"><a class=\"primary\" href=\"{}\">Continue to the page</a>\
<a href=\"{}\">Report a concern</a></p>",
        details(n),
        escape(continue_url),
        escape(n.report_url),
    );
    page("Warning: check before you continue", &body)
}

/// A plain notice page (errors, instructions).
pub fn notice_page(title: &str, paragraphs: &[&str]) -> String {
    let mut body = format!("<h1>{}</h1>\n", escape(title));
    for p in paragraphs {
        let _ = writeln!(body, "<p>{}</p>", escape(p));
    }
    page(title, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice<'a>(url: &'a str) -> Notice<'a> {
        Notice {
            url,
            categories: "Gambling",
            reason: "category Gambling (`casino.example` in sample)",
            reference: "LK-ABCD-1234",
            group: "learners-u18",
            user: Some("amy"),
            report_url: "http://lookout.invalid/report?ref=LK-ABCD-1234",
            review_url: "http://lookout.invalid/review?ref=LK-ABCD-1234",
        }
    }

    #[test]
    fn block_page_explains_and_escapes() {
        let html = block_page(&notice("http://x.example/<script>alert(1)</script>\"'"));
        assert!(html.contains("This page is blocked"));
        assert!(html.contains("Gambling"));
        assert!(html.contains("LK-ABCD-1234"));
        assert!(html.contains("Report a concern"));
        assert!(html.contains("This should not be blocked"));
        assert!(html.contains("amy (learners-u18)"));
        assert!(!html.contains("<script>"));
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#39;"));
    }

    #[test]
    fn warn_page_links_to_continue() {
        let html = warn_page(
            &notice("http://chat.example/"),
            "http://lookout.invalid/continue?a=1&b=2",
        );
        assert!(html.contains("href=\"http://lookout.invalid/continue?a=1&amp;b=2\""));
        assert!(html.contains("visit will be recorded"));
    }

    #[test]
    fn params_are_encoded() {
        assert_eq!(
            encode_param("http://a.b/c?d=e&f"),
            "http%3A%2F%2Fa.b%2Fc%3Fd%3De%26f"
        );
        assert_eq!(encode_param("ok-._~"), "ok-._~");
    }
}
