//! `install`: a downloaded file becomes the source's copy only if it checks out.

use std::io::Write;
use std::path::{Path, PathBuf};

use lookout_config::{Config, SourceConfig};

use super::{install, FetchError};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "lookout-subscription-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch folder");
    dir
}

/// A source as the configuration gives it, with its copy at `dir/<name>`.
fn source(dir: &Path, extra: &str) -> SourceConfig {
    let text = format!(
        "[[lists.source]]\nname = \"sub\"\nurl = \"https://lists.example/list\"\n{extra}\n[groups.staff]\n"
    );
    let mut config = Config::from_toml(&text).expect("config");
    config.resolve_paths(dir);
    let s = config.lists.sources.remove(0);
    s.at(dir.join("lists/sub"))
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).expect("gzip");
    e.finish().expect("gzip")
}

/// A tar of `(path, contents)` files and `(path, target)` symbolic links.
fn tar(files: &[(&str, &str)], links: &[(&str, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, text) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(text.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, path, text.as_bytes())
            .expect("tar file");
    }
    for (path, target) in links {
        let mut h = tar::Header::new_gnu();
        h.set_size(0);
        h.set_entry_type(tar::EntryType::Symlink);
        b.append_link(&mut h, path, target).expect("tar link");
    }
    b.into_inner().expect("tar")
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).expect("write download");
    p
}

fn domains(n: usize) -> String {
    (0..n).map(|i| format!("site{i}.example\n")).collect()
}

#[test]
fn a_plain_or_gzipped_list_becomes_the_copy() {
    let dir = scratch("single");
    let s = source(&dir, "categories = [\"gambling\"]");
    std::fs::create_dir_all(dir.join("lists")).expect("lists folder");
    let d = write(&dir, "d1", domains(10).as_bytes());
    assert_eq!(install(&d, &s, false, 0).expect("installs"), 10);
    assert_eq!(
        std::fs::read_to_string(dir.join("lists/sub")).expect("copy"),
        domains(10)
    );
    let d = write(&dir, "d2", &gzip(domains(12).as_bytes()));
    assert_eq!(install(&d, &s, false, 10).expect("installs"), 12);
    assert_eq!(
        std::fs::read_to_string(dir.join("lists/sub")).expect("copy"),
        domains(12)
    );
    // Nothing is left beside the copy but the copy.
    let left: Vec<_> = std::fs::read_dir(dir.join("lists"))
        .expect("lists")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(left, vec![std::ffi::OsString::from("sub")]);
}

/// What the error must be.
type Expect = fn(&FetchError) -> bool;

#[test]
fn a_bad_download_leaves_the_copy_in_use_alone() {
    let dir = scratch("bad");
    let s = source(&dir, "categories = [\"gambling\"]");
    std::fs::create_dir_all(dir.join("lists")).expect("lists folder");
    std::fs::write(dir.join("lists/sub"), domains(100)).expect("copy in use");
    let page = "<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n<body>\n<h1>Bad Gateway</h1>\n<p>The proxy server received an invalid response.</p>\n</body></html>\n";
    let cases: Vec<(&str, Vec<u8>, bool, Expect)> = vec![
        (
            "an error page",
            page.as_bytes().to_vec(),
            false,
            |e| matches!(e, FetchError::Bad { reason, .. } if reason.contains("not list entries") || reason.contains("no list entries")),
        ),
        (
            "an empty file",
            Vec::new(),
            false,
            |e| matches!(e, FetchError::Bad { reason, .. } if reason.contains("no list entries")),
        ),
        (
            "a cut-short gzip",
            gzip(domains(100).as_bytes())[..40].to_vec(),
            false,
            |e| matches!(e, FetchError::Bad { reason, .. } if reason.contains("cannot unpack")),
        ),
        (
            "a list that lost most of its entries",
            domains(30).into_bytes(),
            false,
            |e| {
                matches!(
                    e,
                    FetchError::Shrank {
                        new: 30,
                        old: 100,
                        ..
                    }
                )
            },
        ),
        (
            "a malformed line in a strict source",
            format!("{}not a domain!\n", domains(100)).into_bytes(),
            true,
            |e| matches!(e, FetchError::Bad { reason, .. } if reason.contains("strict")),
        ),
        (
            "an archive for a single list",
            tar(&[("sub", &domains(100))], &[]),
            false,
            |e| matches!(e, FetchError::Bad { reason, .. } if reason.contains("archive")),
        ),
    ];
    for (what, bytes, strict, expected) in cases {
        let d = write(&dir, "download", &bytes);
        let err = install(&d, &s, strict, 100).expect_err(what);
        assert!(expected(&err), "{what}: {err}");
        assert_eq!(
            std::fs::read_to_string(dir.join("lists/sub")).expect("copy"),
            domains(100),
            "{what}: the copy in use changed"
        );
        let left = std::fs::read_dir(dir.join("lists")).expect("lists").count();
        assert_eq!(left, 1, "{what}: scratch files left behind");
    }
}

#[test]
fn a_folder_arrives_as_an_archive_and_replaces_the_old_folder() {
    let dir = scratch("folder");
    let s = source(&dir, "format = \"ut1\"");
    std::fs::create_dir_all(dir.join("lists/sub/gambling")).expect("old copy");
    std::fs::write(dir.join("lists/sub/gambling/domains"), domains(4)).expect("old copy");
    let archive = tar(
        &[
            ("blacklists/gambling/domains", &domains(5)),
            ("blacklists/gambling/urls", "site1.example/poker\n"),
            ("blacklists/drogue/domains", "drugs.example\n"),
        ],
        // UT1's aliases are symbolic links to sibling folders; an escaping link is dropped.
        &[
            ("blacklists/drugs", "drogue"),
            ("blacklists/etc", "../../etc"),
        ],
    );
    let d = write(&dir, "download.tar.gz", &gzip(&archive));
    assert_eq!(install(&d, &s, false, 4).expect("installs"), 7);
    let copy = dir.join("lists/sub");
    assert_eq!(
        std::fs::read_to_string(copy.join("gambling/domains")).expect("new copy"),
        domains(5)
    );
    assert_eq!(
        std::fs::read_to_string(copy.join("drugs")).expect("alias"),
        "drogue"
    );
    assert!(!copy.join("etc").exists(), "an escaping link was kept");
    // The alias works: `include` may name it.
    let aliased = source(&dir, "format = \"ut1\"\ninclude = [\"drugs\"]").at(copy.clone());
    let loaded = crate::load(&lookout_config::ListsConfig {
        strict: false,
        sources: vec![aliased],
        ..Default::default()
    })
    .expect("loads by alias");
    assert_eq!(loaded.accepted(), 1);
    let left: Vec<_> = std::fs::read_dir(dir.join("lists"))
        .expect("lists")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(left, vec![std::ffi::OsString::from("sub")]);
}

#[test]
fn an_archive_naming_files_outside_its_folder_is_refused() {
    let dir = scratch("escape");
    let s = source(&dir, "format = \"ut1\"");
    std::fs::create_dir_all(dir.join("lists")).expect("lists folder");
    // tar::Builder refuses `..`, so the name is written into the header by hand.
    let mut h = tar::Header::new_old();
    h.as_old_mut().name[..17].copy_from_slice(b"../escaped/domain");
    h.set_size(5);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    let mut b = tar::Builder::new(Vec::new());
    b.append(&h, &b"x.com"[..]).expect("tar");
    let d = write(&dir, "download.tar", &b.into_inner().expect("tar"));
    let err = install(&d, &s, false, 0).expect_err("refused");
    assert!(err.to_string().contains("outside its folder"), "{err}");
    assert!(!dir.join("escaped").exists());
    assert!(!dir.join("lists/escaped").exists());
    assert!(!dir.join("lists/sub").exists());
}

#[test]
fn a_folder_source_needs_an_archive() {
    let dir = scratch("needs-archive");
    let s = source(&dir, "format = \"blocklistproject\"");
    let d = write(&dir, "download", domains(3).as_bytes());
    let err = install(&d, &s, false, 0).expect_err("refused");
    assert!(err.to_string().contains("not a tar archive"), "{err}");
}
