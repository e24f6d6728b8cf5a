//! Search terms and safe search: which URLs are searches, what was searched for, and how to
//! rewrite a search request so that the engine's safe mode is on.

use std::borrow::Cow;

/// One search engine or video site: host test, search paths, the query parameter.
struct Engine {
    /// Whether the (canonical, lower-case) host belongs to the engine.
    host: fn(&str) -> bool,
    /// Paths that are searches (exact match).
    paths: &'static [&'static str],
    /// The parameter holding the search term.
    param: &'static str,
}

fn is_site(host: &str, domain: &str) -> bool {
    host == domain
        || host
            .strip_suffix(domain)
            .is_some_and(|sub| sub.ends_with('.'))
}

/// `google.<tld>` and `google.<sld>.<tld>` (google.co.uk, google.com.au), with any subdomain.
pub fn is_google(host: &str) -> bool {
    let labels: Vec<&str> = host.split('.').collect();
    let n = labels.len();
    (n >= 2 && labels[n - 2] == "google")
        || (n >= 3 && labels[n - 3] == "google" && matches!(labels[n - 2], "co" | "com"))
}

fn is_youtube(host: &str) -> bool {
    is_site(host, "youtube.com") || is_site(host, "youtube-nocookie.com")
}

const ENGINES: &[Engine] = &[
    Engine {
        host: is_google,
        paths: &["/search", "/webhp", "/images", "/"],
        param: "q",
    },
    Engine {
        host: |h| is_site(h, "bing.com"),
        paths: &[
            "/search",
            "/images/search",
            "/videos/search",
            "/news/search",
        ],
        param: "q",
    },
    Engine {
        host: |h| is_site(h, "duckduckgo.com"),
        paths: &["/", "/html", "/html/", "/lite", "/lite/"],
        param: "q",
    },
    Engine {
        host: is_youtube,
        paths: &["/results", "/search"],
        param: "search_query",
    },
    Engine {
        host: |h| is_site(h, "search.yahoo.com"),
        paths: &["/search", "/search/"],
        param: "p",
    },
    Engine {
        host: |h| is_site(h, "ecosia.org"),
        paths: &["/search"],
        param: "q",
    },
    Engine {
        host: |h| is_site(h, "search.brave.com"),
        paths: &["/search", "/images", "/videos"],
        param: "q",
    },
    Engine {
        host: |h| is_site(h, "startpage.com"),
        paths: &["/sp/search", "/do/search", "/search"],
        param: "query",
    },
    Engine {
        host: |h| h.split('.').any(|l| l == "yandex"),
        paths: &["/search", "/search/"],
        param: "text",
    },
    Engine {
        host: |h| is_site(h, "baidu.com"),
        paths: &["/s"],
        param: "wd",
    },
    Engine {
        host: |h| is_site(h, "wikipedia.org"),
        paths: &["/w/index.php", "/wiki/Special:Search"],
        param: "search",
    },
    Engine {
        host: |h| is_site(h, "tiktok.com"),
        paths: &["/search", "/search/video", "/search/user"],
        param: "q",
    },
    Engine {
        host: |h| is_site(h, "vimeo.com"),
        paths: &["/search"],
        param: "q",
    },
    Engine {
        host: |h| is_site(h, "twitch.tv"),
        paths: &["/search"],
        param: "term",
    },
    Engine {
        host: |h| is_site(h, "reddit.com"),
        paths: &["/search", "/search/"],
        param: "q",
    },
];

/// Decodes `%XX` and `+` in a query value; invalid UTF-8 is replaced.
pub fn decode_query_value(v: &str) -> String {
    crate::lossy_text(crate::percent_decode(v, true))
}

/// The first value of `param` in `query` (no `?`), raw.
fn param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query.split(['&', ';']).find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then_some(v)
    })
}

/// The search term of a request to a known search engine or video site, decoded and with
/// runs of white space collapsed; `None` for other URLs or an empty search.
pub fn search_term(host: &str, path: &str, query: Option<&str>) -> Option<String> {
    let query = query?;
    let engine = ENGINES
        .iter()
        .find(|e| (e.host)(host) && e.paths.contains(&path))?;
    let raw = param(query, engine.param)?;
    let term = decode_query_value(raw);
    let term: Vec<&str> = term.split_whitespace().collect();
    let term = term.join(" ");
    (!term.is_empty()).then(|| term.chars().take(1000).collect())
}

/// A header to add to requests to a site to force its safe mode.
pub fn safe_search_header(
    host: &str,
    youtube_restricted: bool,
) -> Option<(&'static str, &'static str)> {
    (youtube_restricted && is_youtube(host)).then_some(("youtube-restrict", "Strict"))
}

/// The query with the engine's safe-search parameter forced on, or `None` if the URL is not
/// a search on an engine Lookout knows (or is already safe).
pub fn force_safe_search(host: &str, path: &str, query: Option<&str>) -> Option<String> {
    let (name, value): (&str, &str) = if is_google(host)
        && matches!(path, "/search" | "/webhp" | "/images" | "/")
    {
        ("safe", "active")
    } else if is_site(host, "bing.com") && path.ends_with("search") {
        ("adlt", "strict")
    } else if is_site(host, "duckduckgo.com") && query.is_some_and(|q| param(q, "q").is_some()) {
        ("kp", "1")
    } else if is_site(host, "search.yahoo.com") && path.starts_with("/search") {
        ("vm", "r")
    } else if is_site(host, "search.brave.com") {
        ("safesearch", "strict")
    } else if is_site(host, "ecosia.org") && path == "/search" {
        ("sfs", "true")
    } else {
        return None;
    };
    let query = query.unwrap_or("");
    let mut out: Vec<Cow<'_, str>> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .filter(|p| p.split_once('=').map_or(*p, |(k, _)| k) != name)
        .map(Cow::Borrowed)
        .collect();
    out.push(Cow::Owned(format!("{name}={value}")));
    let new = out.join("&");
    (new != query).then_some(new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_terms_of_engines_and_video_sites() {
        for (host, path, query, want) in [
            (
                "www.google.com",
                "/search",
                "q=how+to+self+harm&oq=x",
                Some("how to self harm"),
            ),
            (
                "www.google.co.uk",
                "/search",
                "client=f&q=caf%C3%A9%20bets",
                Some("café bets"),
            ),
            ("google.com.au", "/search", "q=a", Some("a")),
            (
                "www.bing.com",
                "/search",
                "q=knife&form=QBLH",
                Some("knife"),
            ),
            ("duckduckgo.com", "/", "q=vpn+free&ia=web", Some("vpn free")),
            ("html.duckduckgo.com", "/html", "q=x", Some("x")),
            (
                "www.youtube.com",
                "/results",
                "search_query=drill+music",
                Some("drill music"),
            ),
            (
                "m.youtube.com",
                "/results",
                "search_query=%F0%9F%94%AA",
                Some("🔪"),
            ),
            ("uk.search.yahoo.com", "/search", "p=casino", Some("casino")),
            ("www.ecosia.org", "/search", "q=trees", Some("trees")),
            (
                "en.wikipedia.org",
                "/w/index.php",
                "search=isis&title=Special",
                Some("isis"),
            ),
            ("www.tiktok.com", "/search", "q=diet", Some("diet")),
            ("yandex.ru", "/search", "text=x", Some("x")),
            ("www.google.com", "/search", "q=++", None),
            ("www.google.com", "/maps", "q=x", None),
            ("www.google.com", "/search", "oq=x", None),
            ("notgoogle.com", "/search", "q=x", None),
            ("google.evil.com", "/search", "q=x", None),
            ("www.bing.com.evil", "/search", "q=x", None),
            ("www.google.com", "/search", "q=%zz%", Some("%zz%")),
            ("www.google.com", "/search", "q=100%", Some("100%")),
        ] {
            assert_eq!(
                search_term(host, path, Some(query)).as_deref(),
                want,
                "{host}{path}?{query}"
            );
        }
        assert_eq!(search_term("www.google.com", "/search", None), None);
    }

    #[test]
    fn safe_search_is_forced() {
        for (host, path, query, want) in [
            (
                "www.google.com",
                "/search",
                Some("q=x"),
                Some("q=x&safe=active"),
            ),
            (
                "www.google.co.uk",
                "/search",
                Some("q=x&safe=off"),
                Some("q=x&safe=active"),
            ),
            ("www.google.com", "/search", Some("safe=active"), None),
            ("www.google.com", "/search", None, Some("safe=active")),
            (
                "www.bing.com",
                "/search",
                Some("q=x&adlt=off"),
                Some("q=x&adlt=strict"),
            ),
            ("duckduckgo.com", "/", Some("q=x&kp=-2"), Some("q=x&kp=1")),
            ("duckduckgo.com", "/", Some("ia=web"), None),
            ("search.yahoo.com", "/search", Some("p=x"), Some("p=x&vm=r")),
            ("www.google.com", "/maps", Some("q=x"), None),
            ("www.example.com", "/search", Some("q=x"), None),
        ] {
            assert_eq!(
                force_safe_search(host, path, query).as_deref(),
                want,
                "{host}{path}?{query:?}"
            );
        }
    }

    #[test]
    fn youtube_gets_the_restrict_header() {
        assert_eq!(
            safe_search_header("www.youtube.com", true),
            Some(("youtube-restrict", "Strict"))
        );
        assert_eq!(safe_search_header("www.youtube.com", false), None);
        assert_eq!(safe_search_header("youtube.com.evil", true), None);
    }
}
