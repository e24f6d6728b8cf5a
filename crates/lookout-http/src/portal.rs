//! The portal's pages (sign in; the e-safety briefing and acceptable-use terms; signed in),
//! the organisation's Markdown made safe to show, form bodies, and the proxy auto-configuration
//! (PAC) file.

use std::fmt::Write;

use pulldown_cmark::{CowStr, Event, LinkType, Options, Parser, Tag, TagEnd};

use crate::pages::{escape, page};

/// Where the portal lives on the proxy's own pages.
pub const PORTAL_PATH: &str = "/portal";

/// The organisation's Markdown as HTML that cannot run or load anything: raw HTML is shown as
/// text, links keep only `http`, `https`, `mailto` and `tel` addresses (others lose their
/// address), and images become their description.
pub fn markdown_html(md: &str) -> String {
    // An image's description arrives as text between its start and end, which are dropped.
    let events = Parser::new_ext(md, Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH)
        .filter_map(|e| match e {
            Event::Html(t) | Event::InlineHtml(t) => Some(Event::Text(t)),
            Event::Start(Tag::Image { .. }) | Event::End(TagEnd::Image) => None,
            Event::Start(Tag::Link {
                link_type,
                dest_url,
                title,
                id,
            }) => Some(Event::Start(Tag::Link {
                link_type: if safe_link(&dest_url) {
                    link_type
                } else {
                    LinkType::Inline
                },
                dest_url: if safe_link(&dest_url) {
                    dest_url
                } else {
                    CowStr::Borrowed("#")
                },
                title,
                id,
            })),
            other => Some(other),
        });
    let mut out = String::with_capacity(md.len() * 3 / 2);
    pulldown_cmark::html::push_html(&mut out, events);
    out
}

fn safe_link(url: &str) -> bool {
    let lower = url.trim().to_ascii_lowercase();
    ["http://", "https://", "mailto:", "tel:"]
        .iter()
        .any(|s| lower.starts_with(s))
}

/// The fields of an `application/x-www-form-urlencoded` body.
pub fn form_fields(body: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(body).into_owned().collect()
}

/// The first value of `name` in `fields`.
pub fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn hidden(name: &str, value: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
        escape(name),
        escape(value)
    )
}

/// The sign-in page. `token` ties the form to this address (a page elsewhere cannot post it);
/// `to` is where the person was going; `allowed` the sites open before sign-in; `provider`
/// the organisation's sign-in provider, when the portal offers it (its name, and the link
/// that starts it, carrying its own ticket).
pub fn sign_in_page(
    token: &str,
    to: &str,
    problem: Option<&str>,
    allowed: &[String],
    provider: Option<(&str, &str)>,
) -> String {
    let mut body = String::from(
        "<h1>Sign in to use the internet</h1>\n\
<p>Internet access on this network is filtered and recorded under the organisation's e-safety \
policy. Sign in with your user name and password.</p>\n",
    );
    if let Some(p) = problem {
        let _ = writeln!(
            body,
            "<p class=\"problem\" role=\"alert\">{}</p>",
            escape(p)
        );
    }
    let _ = writeln!(
        body,
        "<form method=\"post\" action=\"{PORTAL_PATH}/sign-in\">{}{}\
<label for=\"username\">User name</label>\
<input id=\"username\" name=\"username\" autocomplete=\"username\" required autofocus>\
<label for=\"password\">Password</label>\
<input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required>\
<p class=\"actions\"><button type=\"submit\">Sign in</button></p></form>",
        hidden("token", token),
        hidden("to", to),
    );
    if let Some((label, href)) = provider {
        let _ = writeln!(
            body,
            "<p>or</p><p class=\"actions\"><a class=\"button\" id=\"sign-in-provider\" href=\"{}\">Sign in with {}</a></p>",
            escape(href),
            escape(label)
        );
    }
    if !allowed.is_empty() {
        body.push_str("<p>Open without signing in:</p><ul>");
        for host in allowed {
            let _ = write!(
                body,
                "<li><a href=\"http://{0}/\">{0}</a></li>",
                escape(host)
            );
        }
        body.push_str("</ul>\n");
    }
    page("Sign in to use the internet", &body)
}

/// What the briefing page shows.
#[derive(Debug, Clone, Copy)]
pub struct BriefingView<'a> {
    pub title: &'a str,
    /// Markdown.
    pub briefing: &'a str,
    /// Markdown.
    pub terms: &'a str,
    pub version: i64,
    /// Who is accepting.
    pub user: &'a str,
}

/// The e-safety briefing and the acceptable-use terms, with the box to tick.
pub fn briefing_page(b: &BriefingView<'_>, token: &str, to: &str, problem: Option<&str>) -> String {
    let mut body = format!(
        "<h1>{}</h1>\n<p class=\"who\">Signed in as {} · version {}</p>\n",
        escape(b.title),
        escape(b.user),
        b.version
    );
    if let Some(p) = problem {
        let _ = writeln!(
            body,
            "<p class=\"problem\" role=\"alert\">{}</p>",
            escape(p)
        );
    }
    let _ = write!(
        body,
        "<section class=\"briefing\">{}</section>\n<h2>Acceptable use</h2>\n\
<section class=\"terms\">{}</section>\n\
<form method=\"post\" action=\"{PORTAL_PATH}/accept\">{}{}{}\
<label class=\"choice\"><input type=\"checkbox\" name=\"accept\" value=\"yes\" required> \
I have read the e-safety briefing and I agree to the acceptable-use terms.</label>\
<p class=\"actions\"><button type=\"submit\">Accept and continue</button></p></form>\n",
        markdown_html(b.briefing),
        markdown_html(b.terms),
        hidden("token", token),
        hidden("to", to),
        hidden("version", &b.version.to_string()),
    );
    page(b.title, &body)
}

/// After sign-in: who, how long it lasts (a sentence), where to go on, and how to sign out.
pub fn signed_in_page(user: &str, until: &str, to: &str, token: &str) -> String {
    let mut body = format!(
        "<h1>You are signed in</h1>\n<p>Signed in as {} on this device. {}</p>\n",
        escape(user),
        escape(until)
    );
    if !to.is_empty() {
        let _ = writeln!(
            body,
            "<p class=\"actions\"><a class=\"primary\" href=\"{}\">Continue to {}</a></p>",
            escape(to),
            escape(to)
        );
    }
    let _ = writeln!(
        body,
        "<form method=\"post\" action=\"{PORTAL_PATH}/sign-out\">{}\
<p>On a shared computer, sign out when you finish: <button type=\"submit\">Sign out</button></p></form>",
        hidden("token", token)
    );
    page("You are signed in", &body)
}

/// A proxy auto-configuration file: `direct` hosts (and plain names, `.local`) go direct,
/// everything else through `proxy` (`host:port`), with no fallback to going direct, so a
/// stopped proxy never means unfiltered access.
pub fn pac_file(proxy: &str, direct: &[String]) -> String {
    let mut out = String::from(
        "// Lookout e-safety filter: proxy auto-configuration.\n\
function FindProxyForURL(url, host) {\n\
  if (isPlainHostName(host) || dnsDomainIs(host, \".local\")) return \"DIRECT\";\n",
    );
    for h in direct {
        // Host names only (checked by the caller); quotes and backslashes cannot appear.
        let h: String = h
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
            .collect();
        let _ = writeln!(out, "  if (host == \"{h}\") return \"DIRECT\";");
    }
    let proxy: String = proxy
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
        .collect();
    let _ = write!(out, "  return \"PROXY {proxy}\";\n}}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_cannot_run_or_load_anything() {
        for (md, must, must_not) in [
            (
                "# Be safe\n\nTalk to **someone**.",
                "<h1>Be safe</h1>",
                "<script",
            ),
            ("<script>alert(1)</script>", "&lt;script&gt;", "<script"),
            ("hi <img src=x onerror=alert(1)> there", "&lt;img", "<img"),
            ("[click](javascript:alert(1))", "href=\"#\"", "javascript:"),
            ("[click](JaVaScRiPt:alert(1))", "href=\"#\"", "avascript"),
            (
                "[data](data:text/html;base64,PHNjcmlwdD4=)",
                "href=\"#\"",
                "data:",
            ),
            (
                "![a tracker](http://evil.example/p.png)",
                "a tracker",
                "<img",
            ),
            (
                "[Childline](https://www.childline.org.uk/)",
                "href=\"https://www.childline.org.uk/\"",
                "href=\"#\"",
            ),
            (
                "Call [116 123](tel:116123)",
                "href=\"tel:116123\"",
                "href=\"#\"",
            ),
            (
                "<a href=\"javascript:x\">x</a>",
                "&lt;a href=",
                "<a href=\"javascript",
            ),
            ("[x][r]\n\n[r]: vbscript:msgbox", "href=\"#\"", "vbscript"),
        ] {
            let html = markdown_html(md);
            assert!(html.contains(must), "{md:?} → {html}");
            assert!(!html.contains(must_not), "{md:?} → {html}");
        }
    }

    #[test]
    fn pages_escape_what_they_show() {
        let evil = "\"><script>x</script>";
        for html in [
            sign_in_page(
                evil,
                evil,
                Some(evil),
                &[evil.to_owned()],
                Some((evil, evil)),
            ),
            briefing_page(
                &BriefingView {
                    title: evil,
                    briefing: "hi",
                    terms: "ok",
                    version: 3,
                    user: evil,
                },
                evil,
                evil,
                Some(evil),
            ),
            signed_in_page(evil, evil, evil, evil),
        ] {
            assert!(!html.contains("<script>x"), "{html}");
        }
    }

    #[test]
    fn form_bodies_and_pac() {
        let f = form_fields(b"username=amy&password=a+b%26c&to=http%3A%2F%2Fx.test%2F");
        assert_eq!(field(&f, "password"), Some("a b&c"));
        assert_eq!(field(&f, "to"), Some("http://x.test/"));
        assert_eq!(field(&f, "nothing"), None);
        assert!(form_fields(b"%ff%fe=\xff&&=").len() <= 3);
        let pac = pac_file(
            "10.10.0.1:3128",
            &["console.college.test".into(), "a\"b".into()],
        );
        assert!(pac.contains("return \"PROXY 10.10.0.1:3128\";"), "{pac}");
        assert!(pac.contains("host == \"console.college.test\""), "{pac}");
        assert!(pac.contains("host == \"ab\""), "{pac}");
        assert!(
            !pac.contains("; DIRECT"),
            "never falls back to direct: {pac}"
        );
    }
}
