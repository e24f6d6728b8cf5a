//! Which activity-log events are scanned, and as what text.

use lookout_store::{Event, Subject};

use crate::{Job, Source};

/// File types whose URLs are not worth scanning: page resources, media, fonts.
const STATIC: &[&str] = &[
    "js", "mjs", "css", "png", "jpg", "jpeg", "gif", "webp", "avif", "svg", "ico", "woff", "woff2",
    "ttf", "otf", "eot", "mp4", "webm", "m4s", "ts", "mp3", "aac", "wasm", "map", "json",
];

/// The text to scan for an event: its search term if it has one, else the words of a page
/// URL's path and query (`/how-to-kill-yourself?x=1` → `how-to-kill-yourself x=1`). DNS
/// events and page resources (scripts, images, fonts, media) are not scanned.
pub fn job_for_event(e: &Event) -> Option<Job> {
    if e.service != "proxy" {
        return None;
    }
    let subject = Subject {
        username: e.username.clone(),
        client_ip: Some(e.client_ip.clone()),
        device: None,
        group: e.group.as_str().to_owned(),
        site: None,
    };
    let (source, text) = match &e.search_term {
        Some(term) if !term.trim().is_empty() => (Source::Search, term.clone()),
        _ => (Source::Url, url_words(&e.url)?),
    };
    Some(Job {
        at_ms: e.at_ms,
        source,
        text,
        location: e.url.clone(),
        subject,
    })
}

/// The decoded path and query of a page URL, or `None` for resources and bare hosts.
fn url_words(url: &str) -> Option<String> {
    // A byte search for `://`: `split_once` with a string pattern prepares a general
    // substring search each call, which cost more than the search.
    let scheme_end = url.as_bytes().windows(3).position(|w| w == b"://");
    let rest = scheme_end.map_or(url, |i| &url[i + 3..]);
    let path = &rest[rest.find('/')?..];
    let path = path.split('#').next().unwrap_or(path);
    let (p, query) = path.split_once('?').unwrap_or((path, ""));
    let last = p.rsplit('/').next().unwrap_or("");
    if let Some((_, ext)) = last.rsplit_once('.') {
        if STATIC.iter().any(|s| ext.eq_ignore_ascii_case(s)) {
            return None;
        }
    }
    if !path.bytes().any(|b| b.is_ascii_alphabetic() || b >= 0x80) {
        return None;
    }
    // Path and query decoded into one buffer, made text without a copy when it is UTF-8 (the
    // space between them ends any broken sequence, so replacing as a whole or in parts is
    // the same).
    let mut bytes = Vec::with_capacity(p.len() + 1 + query.len());
    lookout_http::percent_decode_into(p, false, &mut bytes);
    if !query.is_empty() {
        bytes.push(b' ');
        lookout_http::percent_decode_into(query, true, &mut bytes);
    }
    Some(lookout_http::lossy_text(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(url: &str, term: Option<&str>, service: &'static str) -> Event {
        Event {
            at_ms: 1,
            reference: String::new(),
            service,
            client_ip: "10.0.0.7".into(),
            username: Some("amy".into()),
            group: "learners-u18".into(),
            method: "GET".into(),
            url: url.into(),
            host: "example.com".into(),
            search_term: term.map(str::to_owned),
            categories: "".into(),
            action: "allow".into(),
            rule: "".into(),
            reason: "".into(),
            status: Some(200),
            bytes: 0,
        }
    }

    #[test]
    fn what_is_scanned() {
        type Row = (
            &'static str,
            Option<&'static str>,
            &'static str,
            Option<(Source, &'static str)>,
        );
        let table: &[Row] = &[
            (
                "https://www.google.com/search?q=x",
                Some("how to die"),
                "proxy",
                Some((Source::Search, "how to die")),
            ),
            (
                "http://example.com/how-to-kill-yourself",
                None,
                "proxy",
                Some((Source::Url, "/how-to-kill-yourself")),
            ),
            (
                "http://example.com/a%20b?c=d+e",
                None,
                "proxy",
                Some((Source::Url, "/a b c=d e")),
            ),
            (
                "http://example.com/%FF%FEabc?q=%E2%82&r=%E2%82%AC",
                None,
                "proxy",
                Some((Source::Url, "/\u{FFFD}\u{FFFD}abc q=\u{FFFD}&r=€")),
            ),
            (
                "http://example.com/caf%C3?%A9=1",
                None,
                "proxy",
                Some((Source::Url, "/caf\u{FFFD} \u{FFFD}=1")),
            ),
            (
                "example.com/no-scheme?x",
                None,
                "proxy",
                Some((Source::Url, "/no-scheme x")),
            ),
            ("http://example.com/app.min.js", None, "proxy", None),
            ("http://example.com/IMG.PNG?x=1", None, "proxy", None),
            ("http://example.com/", None, "proxy", None),
            ("example.com:443", None, "proxy", None),
            ("suicide.example", None, "dns", None),
        ];
        for (url, term, service, want) in table {
            let got = job_for_event(&event(url, *term, service)).map(|j| (j.source, j.text));
            assert_eq!(got, want.map(|(s, t)| (s, t.to_owned())), "{url}");
        }
    }
}
