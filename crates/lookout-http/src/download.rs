//! Download control beyond the URL: the file name a `Content-Disposition` header gives, and
//! the file type the first bytes of a body reveal.

/// The first bytes [`sniff`] needs.
pub const SNIFF_LEN: usize = 8;

/// What the first bytes of a body show it to be, as the extension it counts as for a group's
/// `blocked_downloads`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniffed {
    /// A Windows program or library (`MZ`): counts as `exe`.
    WindowsProgram,
    /// An OLE compound file: Windows Installer packages (`msi`), but also old Office documents.
    Compound,
    /// A script with `#!`: counts as `sh`.
    Script,
    /// A Linux (ELF) or macOS (Mach-O) program: counts as `exe`.
    Program,
    /// A Windows shortcut: counts as `lnk`.
    Shortcut,
}

impl Sniffed {
    /// The extension this type counts as.
    pub fn extension(self) -> &'static str {
        match self {
            Sniffed::WindowsProgram | Sniffed::Program => "exe",
            Sniffed::Compound => "msi",
            Sniffed::Script => "sh",
            Sniffed::Shortcut => "lnk",
        }
    }

    /// Words for the block page.
    pub fn describe(self) -> &'static str {
        match self {
            Sniffed::WindowsProgram => "a Windows program",
            Sniffed::Compound => "a Windows Installer package",
            Sniffed::Script => "a script",
            Sniffed::Program => "a program",
            Sniffed::Shortcut => "a Windows shortcut",
        }
    }
}

/// Office formats that are OLE compound files too, and are documents, not installers.
const OLE_DOCUMENTS: &[&str] = &[
    "doc", "dot", "xls", "xlt", "ppt", "pot", "pps", "msg", "pub", "vsd", "mpp",
];

/// The type of a body starting with `prefix` (at least [`SNIFF_LEN`] bytes when the body has
/// them). `file_name` is the name the URL or `Content-Disposition` gives, if any: an OLE file
/// named like an Office document is not counted as an installer.
pub fn sniff(prefix: &[u8], file_name: Option<&str>) -> Option<Sniffed> {
    if prefix.starts_with(b"MZ") {
        return Some(Sniffed::WindowsProgram);
    }
    if prefix.starts_with(&[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1]) {
        let ext = file_name
            .and_then(|n| n.rsplit_once('.'))
            .map(|(_, e)| e.to_ascii_lowercase());
        let document = ext.is_some_and(|e| OLE_DOCUMENTS.contains(&e.as_str()));
        return (!document).then_some(Sniffed::Compound);
    }
    if prefix.starts_with(b"#!") {
        return Some(Sniffed::Script);
    }
    if prefix.starts_with(b"\x7fELF")
        || prefix.starts_with(&[0xCF, 0xFA, 0xED, 0xFE])
        || prefix.starts_with(&[0xCE, 0xFA, 0xED, 0xFE])
        || prefix.starts_with(&[0xFE, 0xED, 0xFA, 0xCF])
    {
        return Some(Sniffed::Program);
    }
    if prefix.starts_with(&[0x4C, 0, 0, 0, 0x01, 0x14, 0x02, 0]) {
        return Some(Sniffed::Shortcut);
    }
    None
}

/// The file name of a `Content-Disposition` header: `filename*` (RFC 6266 / 8187, UTF-8 or
/// ISO-8859-1, percent-encoded) wins over `filename` (token or quoted string). Any folder
/// part is dropped. `None` when there is no usable name.
pub fn disposition_filename(header: &[u8]) -> Option<String> {
    let header = String::from_utf8_lossy(header);
    let mut plain = None;
    let mut extended = None;
    for (name, value) in params(&header) {
        if name.eq_ignore_ascii_case("filename*") {
            extended = extended.or_else(|| decode_ext_value(&value));
        } else if name.eq_ignore_ascii_case("filename") {
            plain = plain.or(Some(value));
        }
    }
    let name = extended.or(plain)?;
    let name = name.rsplit(['/', '\\']).next().unwrap_or(&name).trim();
    (!name.is_empty()).then(|| name.to_owned())
}

/// `; name=value` pairs after the disposition type, quoted strings unescaped.
fn params(header: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = match header.find(';') {
        Some(i) => &header[i + 1..],
        None => return out,
    };
    loop {
        rest = rest.trim_start_matches([' ', '\t', ';']);
        if rest.is_empty() {
            return out;
        }
        let Some(eq) = rest.find(['=', ';']) else {
            return out;
        };
        if rest.as_bytes()[eq] == b';' {
            rest = &rest[eq..];
            continue;
        }
        let name = rest[..eq].trim().to_owned();
        rest = rest[eq + 1..].trim_start();
        let value;
        if let Some(q) = rest.strip_prefix('"') {
            let mut v = String::new();
            let mut chars = q.char_indices();
            let mut end = q.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            v.push(n);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => v.push(c),
                }
            }
            value = v;
            rest = &q[end.min(q.len())..];
        } else {
            let end = rest.find(';').unwrap_or(rest.len());
            value = rest[..end].trim().to_owned();
            rest = &rest[end..];
        }
        out.push((name, value));
    }
}

/// `charset'lang'percent-encoded` (RFC 8187).
fn decode_ext_value(v: &str) -> Option<String> {
    let mut parts = v.splitn(3, '\'');
    let charset = parts.next()?;
    let _lang = parts.next()?;
    let encoded = parts.next()?;
    let bytes = crate::percent_decode(encoded, false);
    if charset.eq_ignore_ascii_case("utf-8") {
        Some(crate::lossy_text(bytes))
    } else if charset.eq_ignore_ascii_case("iso-8859-1") {
        Some(bytes.iter().map(|&b| char::from(b)).collect())
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffing_first_bytes() {
        let ole = [0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];
        for (name, prefix, file, want) in [
            (
                "pe",
                &b"MZ\x90\x00\x03\x00\x00\x00"[..],
                None,
                Some(Sniffed::WindowsProgram),
            ),
            (
                "pe named pdf",
                b"MZ\x90\x00",
                Some("report.pdf"),
                Some(Sniffed::WindowsProgram),
            ),
            ("msi", &ole[..], Some("setup.msi"), Some(Sniffed::Compound)),
            ("ole unnamed", &ole[..], None, Some(Sniffed::Compound)),
            ("old word doc", &ole[..], Some("minutes.DOC"), None),
            ("shebang", b"#!/bin/sh\n", None, Some(Sniffed::Script)),
            (
                "elf",
                b"\x7fELF\x02\x01\x01\x00",
                None,
                Some(Sniffed::Program),
            ),
            (
                "macho",
                &[0xCF, 0xFA, 0xED, 0xFE, 7, 0, 0, 1][..],
                None,
                Some(Sniffed::Program),
            ),
            (
                "lnk",
                &[0x4C, 0, 0, 0, 0x01, 0x14, 0x02, 0][..],
                None,
                Some(Sniffed::Shortcut),
            ),
            ("pdf", b"%PDF-1.7", None, None),
            ("html", b"<!doctype html>", None, None),
            ("zip", b"PK\x03\x04", None, None),
            ("empty", b"", None, None),
            ("M only", b"M", None, None),
        ] {
            assert_eq!(sniff(prefix, file), want, "{name}");
        }
        assert_eq!(Sniffed::Compound.extension(), "msi");
    }

    #[test]
    fn content_disposition_file_names() {
        for (header, want) in [
            ("attachment; filename=setup.exe", Some("setup.exe")),
            (
                "attachment; filename=\"my setup.exe\"",
                Some("my setup.exe"),
            ),
            ("attachment;filename=\"a\\\"b.exe\"", Some("a\"b.exe")),
            (
                "attachment; filename=\"x.pdf\"; filename*=UTF-8''payload%20%E2%82%AC.exe",
                Some("payload €.exe"),
            ),
            (
                "attachment; filename*=utf-8''x.ps1; filename=x.txt",
                Some("x.ps1"),
            ),
            (
                "attachment; filename*=iso-8859-1'en'%A3rates.bat",
                Some("£rates.bat"),
            ),
            (
                "attachment; filename*=koi8-r''x.exe; filename=safe.txt",
                Some("safe.txt"),
            ),
            (
                "attachment; filename=\"..\\\\..\\\\windows\\\\evil.exe\"",
                Some("evil.exe"),
            ),
            ("attachment; filename=\"/etc/passwd\"", Some("passwd")),
            ("inline", None),
            ("attachment; filename=", None),
            ("attachment; filename=\"", None),
            ("attachment; size=3; ; filename = y.msi", Some("y.msi")),
            (
                "attachment; filename=\"unterminated.exe",
                Some("unterminated.exe"),
            ),
            ("", None),
        ] {
            assert_eq!(
                disposition_filename(header.as_bytes()).as_deref(),
                want,
                "{header}"
            );
        }
    }
}
