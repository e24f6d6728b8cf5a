//! Which names to point at a search engine's or YouTube's enforced-safe address, as the
//! engines document for networks that must lock safe search on.

/// The safe-search name that `host` (lower-case, no trailing dot) must resolve as, if any.
/// `safe_search` covers Google, Bing and DuckDuckGo; `youtube_restricted` covers YouTube.
pub fn safe_search_target(
    host: &str,
    safe_search: bool,
    youtube_restricted: bool,
) -> Option<&'static str> {
    if youtube_restricted && is_youtube(host) {
        return Some("restrict.youtube.com");
    }
    if !safe_search {
        return None;
    }
    if is_google_search(host) {
        return Some("forcesafesearch.google.com");
    }
    match host {
        "bing.com" | "www.bing.com" => Some("strict.bing.com"),
        "duckduckgo.com"
        | "www.duckduckgo.com"
        | "start.duckduckgo.com"
        | "html.duckduckgo.com" => Some("safe.duckduckgo.com"),
        _ => None,
    }
}

fn is_youtube(host: &str) -> bool {
    matches!(
        host,
        "youtube.com"
            | "www.youtube.com"
            | "m.youtube.com"
            | "youtubei.googleapis.com"
            | "youtube.googleapis.com"
            | "www.youtube-nocookie.com"
    )
}

/// `google.com`, `www.google.com` and Google's country sites: `google.de`, `google.co.uk`,
/// `google.com.au`, with or without `www.`.
fn is_google_search(host: &str) -> bool {
    let host = host.strip_prefix("www.").unwrap_or(host);
    let Some(tail) = host.strip_prefix("google.") else {
        return false;
    };
    let country = |s: &str| s.len() == 2 && s.bytes().all(|b| b.is_ascii_lowercase());
    match tail.split_once('.') {
        None => tail == "com" || country(tail),
        Some(("co" | "com", cc)) => country(cc),
        Some(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::safe_search_target;

    #[test]
    fn targets() {
        let rows: &[(&str, bool, bool, Option<&str>)] = &[
            (
                "www.google.com",
                true,
                true,
                Some("forcesafesearch.google.com"),
            ),
            (
                "google.com",
                true,
                false,
                Some("forcesafesearch.google.com"),
            ),
            (
                "www.google.co.uk",
                true,
                false,
                Some("forcesafesearch.google.com"),
            ),
            (
                "google.com.au",
                true,
                false,
                Some("forcesafesearch.google.com"),
            ),
            (
                "www.google.de",
                true,
                false,
                Some("forcesafesearch.google.com"),
            ),
            ("www.google.com", false, true, None),
            ("mail.google.com", true, true, None),
            ("google.evil.example", true, true, None),
            ("notgoogle.com", true, true, None),
            ("www.youtube.com", false, true, Some("restrict.youtube.com")),
            ("m.youtube.com", true, true, Some("restrict.youtube.com")),
            (
                "youtubei.googleapis.com",
                false,
                true,
                Some("restrict.youtube.com"),
            ),
            ("www.youtube.com", true, false, None),
            ("www.bing.com", true, false, Some("strict.bing.com")),
            ("duckduckgo.com", true, false, Some("safe.duckduckgo.com")),
            ("bbc.co.uk", true, true, None),
        ];
        for &(host, safe, yt, want) in rows {
            assert_eq!(
                safe_search_target(host, safe, yt),
                want,
                "{host} safe={safe} youtube={yt}"
            );
        }
    }
}
