//! Page text for monitoring: the title and the visible text of an HTML page, without scripts,
//! styles or markup. Not a full HTML parser: it reads tags and entities well enough for
//! scanning words, on any bytes, in one pass, never panicking.

/// What a page says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PageText {
    pub title: String,
    /// Visible text, whitespace collapsed.
    pub text: String,
}

/// Elements whose content is never visible text.
const HIDDEN: &[&str] = &["script", "style", "noscript", "template", "svg", "head"];

/// Extracts the title and visible text of an HTML document (bytes as UTF-8, lossily).
pub fn html_text(html: &[u8]) -> PageText {
    let s = String::from_utf8_lossy(html);
    let mut out = PageText::default();
    let mut hidden: Option<String> = None;
    let mut in_title = false;
    let mut rest: &str = &s;
    while !rest.is_empty() {
        let Some(lt) = rest.find('<') else {
            push_text(&mut out, rest, hidden.is_some(), in_title);
            break;
        };
        push_text(&mut out, &rest[..lt], hidden.is_some(), in_title);
        rest = &rest[lt..];
        if let Some(r) = rest.strip_prefix("<!--") {
            rest = r.find("-->").map_or("", |e| &r[e + 3..]);
            continue;
        }
        let Some(gt) = rest.find('>') else { break };
        let tag = &rest[1..gt];
        rest = &rest[gt + 1..];
        let closing = tag.starts_with('/');
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        if let Some(h) = &hidden {
            // Inside a hidden element only its own end tag matters (the title lives in head).
            if closing && *h == name {
                hidden = None;
            } else if name == "title" && h == "head" {
                in_title = !closing;
            }
            continue;
        }
        if name == "title" {
            in_title = !closing;
        } else if !closing && HIDDEN.contains(&name.as_str()) && !tag.ends_with('/') {
            hidden = Some(name);
        } else {
            // Block-level tags separate words.
            out.text.push(' ');
        }
    }
    out.title = collapse(&decode_entities(&out.title));
    out.text = collapse(&decode_entities(&out.text));
    out
}

fn push_text(out: &mut PageText, t: &str, hidden: bool, in_title: bool) {
    if in_title {
        out.title.push_str(t);
    } else if !hidden {
        out.text.push_str(t);
    }
}

fn collapse(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `&amp;` `&lt;` `&gt;` `&quot;` `&apos;` `&nbsp;` and numeric references; others kept.
fn decode_entities(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let end = rest[1..].find(';').map(|e| e + 1).filter(|&e| e <= 10);
        let decoded = end.and_then(|e| {
            let name = &rest[1..e];
            let c = match name {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" | "#39" => Some('\''),
                "nbsp" => Some(' '),
                _ => name.strip_prefix('#').and_then(|n| {
                    let v = match n.strip_prefix(['x', 'X']) {
                        Some(h) => u32::from_str_radix(h, 16).ok(),
                        None => n.parse().ok(),
                    };
                    v.and_then(char::from_u32)
                }),
            };
            c.map(|c| (c, e))
        });
        match decoded {
            Some((c, e)) => {
                out.push(c);
                rest = &rest[e + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn title_and_visible_text() {
        let table = [
            (
                "<html><head><title>How &amp; why</title><style>p{}</style></head><body><p>Hello<br>world</p><script>var x='hidden';</script></body></html>",
                ("How & why", "Hello world"),
            ),
            ("<title>T</title>no head", ("T", "no head")),
            ("<p>a<!-- secret -->b</p>", ("", "ab")),
            ("<svg><text>icon</text></svg>visible", ("", "visible")),
            ("caf&#233; &#x41; &bogus; &", ("", "café A &bogus; &")),
            ("<p unclosed", ("", "")),
            ("plain text", ("", "plain text")),
            ("<div>one</div><div>two</div>", ("", "one two")),
        ];
        for (html, (title, text)) in table {
            let p = html_text(html.as_bytes());
            assert_eq!((p.title.as_str(), p.text.as_str()), (title, text), "{html}");
        }
        // Bytes that are not UTF-8 or not HTML do not panic.
        let _ = html_text(&[
            0xff, b'<', 0xfe, b'>', b'&', b'#', b'9', b'9', b'9', b'9', b'9', b'9', b'9', b';',
        ]);
    }
}
