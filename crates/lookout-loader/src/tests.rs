//! Loader tests on small fixture trees written to a temporary folder.

use std::fs;

use lookout_config::Config;
use lookout_lists::NormUrl;

use super::*;

/// A fresh temporary folder, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("lookout-loader-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn write(&self, rel: &str, text: &str) {
        let path = self.0.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn config(dir: &TempDir, text: &str) -> Config {
    let mut c = Config::from_toml(text).unwrap_or_else(|e| panic!("{e}"));
    c.resolve_paths(&dir.0);
    c
}

fn fixture(tag: &str) -> TempDir {
    let d = TempDir::new(tag);
    d.write("ut1/gambling/domains", "casino.com\nbet.example\n");
    d.write("ut1/gambling/urls", "example.org/casino/\n");
    d.write("ut1/gambling/usage", "black\n");
    d.write("ut1/drogue/domains", "weed.example\nbad line here\n");
    d.write("ut1/drugs", "drogue\n"); // an alias stored as text
    d.write("ut1/global_usage", "# documentation, not a category\n");
    d.write("ut1/unknown_cat/domains", "x.example\n");
    d.write("blp/gambling.txt", "# hosts\n0.0.0.0 slots.example\n");
    d.write(
        "blp/domains-format/phishing-nl.txt",
        "# domains\nphish.example\n",
    );
    d.write("blp/README.md", "not a list\n");
    d.write("iwf.txt", "abuse.example/x/\n");
    d
}

const SOURCES: &str = r#"
[[lists.source]]
name = "ut1"
path = "ut1"
format = "ut1"
[[lists.source]]
name = "blp"
path = "blp"
format = "blocklistproject"
[[lists.source]]
name = "iwf"
path = "iwf.txt"
categories = ["illegal-child-abuse"]
"#;

#[test]
fn loads_folders_files_and_aliases() {
    let d = fixture("basic");
    let loaded = load(&config(&d, SOURCES).lists).unwrap();
    let names: Vec<_> = loaded.files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "ut1/drogue/domains",
            "ut1/gambling/domains",
            "ut1/gambling/urls",
            "blp/gambling",
            "blp/phishing-nl",
            "iwf"
        ],
        "the `drugs` alias is loaded once, as `drogue`; unknown folders are skipped"
    );
    let iwf = &loaded.files[5];
    assert_eq!(iwf.format, Format::Urls, "detected");
    assert_eq!(loaded.files[3].format, Format::Hosts, "detected");
    assert_eq!(loaded.rejected(), 1);
    let drogue = &loaded.files[0].report;
    assert_eq!(
        (drogue.samples[0].line, drogue.samples[0].text.as_str()),
        (2, "bad line here")
    );

    let cats =
        |url: &str| CategorySet::from_bits(loaded.index.lookup(&NormUrl::parse(url).unwrap()));
    assert_eq!(cats("www.casino.com"), CategorySet::one(Category::GAMBLING));
    assert_eq!(cats("slots.example"), CategorySet::one(Category::GAMBLING));
    assert_eq!(cats("weed.example"), CategorySet::one(Category::DRUGS));
    assert_eq!(cats("phish.example"), CategorySet::one(Category::PHISHING));
    assert_eq!(
        cats("abuse.example/x/y.jpg"),
        CategorySet::one(Category::ILLEGAL_CHILD_ABUSE)
    );
    assert_eq!(cats("x.example"), CategorySet::EMPTY);
    let counts = loaded.category_counts();
    assert!(counts.contains(&(Category::GAMBLING, 3, 1)), "{counts:?}");
}

/// However many threads load them (more than there are files too), the same lists give the
/// same files, reports and index.
#[test]
fn the_thread_count_changes_nothing_but_speed() {
    let d = fixture("threads");
    let lists = config(&d, SOURCES).lists;
    let urls = [
        "www.casino.com",
        "slots.example",
        "weed.example",
        "abuse.example/x/y.jpg",
        "example.org/casino/page",
        "x.example",
    ];
    let seen = |loaded: &Loaded| {
        let files: Vec<_> = loaded
            .files
            .iter()
            .map(|f| {
                (
                    f.name.clone(),
                    f.format,
                    f.report.accepted,
                    f.report.rejected,
                )
            })
            .collect();
        let labels: Vec<u64> = urls
            .iter()
            .map(|u| loaded.index.lookup(&NormUrl::parse(u).unwrap()))
            .collect();
        (
            files,
            labels,
            loaded.index.host_entries(),
            loaded.index.path_entries(),
        )
    };
    let all = seen(&load(&lists).unwrap());
    for threads in [0, 1, 2, 64] {
        assert_eq!(
            seen(&load_with_threads(&lists, threads).unwrap()),
            all,
            "{threads} threads"
        );
    }
}

#[test]
fn strict_mode_names_file_and_line_and_loads_nothing() {
    let d = fixture("strict");
    let mut text = SOURCES.to_owned();
    text.insert_str(0, "[lists]\nstrict = true\n");
    let err = load(&config(&d, &text).lists).unwrap_err().to_string();
    assert!(
        err.contains("ut1/drogue/domains: 1 malformed line(s)"),
        "{err}"
    );
    assert!(
        err.contains("drogue/domains:2: unexpected space inside an entry: bad line here"),
        "{err}"
    );
}

#[test]
fn per_source_strict_applies_to_that_source_only() {
    let d = fixture("strict-source");
    d.write("iwf.txt", "abuse.example/x/\nnot a url\n");
    let text = SOURCES.replace(
        "categories = [\"illegal-child-abuse\"]",
        "categories = [\"illegal-child-abuse\"]\nstrict = true",
    );
    let err = load(&config(&d, &text).lists).unwrap_err().to_string();
    assert!(err.contains("iwf: 1 malformed line(s)"), "{err}");
    assert!(!err.contains("drogue"), "{err}");
}

#[test]
fn missing_paths_are_named() {
    let d = TempDir::new("missing");
    let text =
        "[[lists.source]]\nname = \"gone\"\npath = \"nope.txt\"\ncategories = [\"adverts\"]\n";
    let err = load(&config(&d, text).lists).unwrap_err().to_string();
    assert!(err.starts_with("list source `gone`: cannot read "), "{err}");
    assert!(err.contains("nope.txt"), "{err}");

    let text = "[[lists.source]]\nname = \"u\"\npath = \"ut1\"\nformat = \"ut1\"\n";
    d.write("ut1/README", "x");
    let err = load(&config(&d, text).lists).unwrap_err().to_string();
    assert!(err.contains("no lists found"), "{err}");
}

#[cfg(unix)]
#[test]
fn real_symlinks_are_followed() {
    let d = TempDir::new("symlink");
    d.write("ut1/adult/urls", "example.net/adult/\n");
    std::os::unix::fs::symlink("adult", d.0.join("ut1/porn")).unwrap();
    let text = "[[lists.source]]\nname = \"u\"\npath = \"ut1\"\nformat = \"ut1\"\n";
    let loaded = load(&config(&d, text).lists).unwrap();
    let names: Vec<_> = loaded.files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["u/adult/urls"]);
}

#[test]
fn a_misspelt_folder_name_is_an_error_not_a_silent_gap() {
    let d = fixture("misspelt");
    for key in [
        "include = [\"gambing\"]",
        "exclude = [\"drogue\", \"gambing\"]",
        "[lists.source.map]\ngambing = [\"gambling\"]",
    ] {
        let text =
            format!("[[lists.source]]\nname = \"ut1\"\npath = \"ut1\"\nformat = \"ut1\"\n{key}\n");
        let err = load(&config(&d, &text).lists).unwrap_err().to_string();
        assert!(
            err.starts_with("list source `ut1`: `gambing` is not a list in "),
            "{key}: {err}"
        );
        assert!(
            err.contains("(it has: drogue, drugs, gambling, unknown_cat)"),
            "{key}: {err}"
        );
    }
    // An alias is as good as the folder's own name.
    let text = "[[lists.source]]\nname = \"ut1\"\npath = \"ut1\"\nformat = \"ut1\"\ninclude = [\"drugs\"]\n";
    let loaded = load(&config(&d, text).lists).unwrap();
    let names: Vec<_> = loaded.files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["ut1/drogue/domains"]);
    let text = "[[lists.source]]\nname = \"b\"\npath = \"blp\"\nformat = \"blocklistproject\"\ninclude = [\"gamblin\"]\n";
    let err = load(&config(&d, text).lists).unwrap_err().to_string();
    assert!(err.contains("`gamblin` is not a list"), "{err}");
}

/// A file read a block at a time parses as it does whole: every entry in order, every count
/// and rejected line number, the format detected, whatever the block size (smaller than one
/// line, a few lines, the whole file, a size the file is a multiple of).
#[test]
fn a_file_read_in_blocks_parses_as_whole() {
    let dir = TempDir::new("blocks");
    let mut text =
        String::from("\u{feff}# a hosts file\r\n0.0.0.0 casino.example www.casino.example\n");
    // Longer than the first read (`DETECT_BYTES`), so that small blocks follow it.
    for i in 0..4000 {
        text.push_str(&format!("0.0.0.0 host{i}.example\n"));
        if i % 97 == 0 {
            text.push_str("not-an-address bad.example\n\n");
        }
    }
    text.push_str("0.0.0.0 a-very-long-line-that-is-longer-than-several-blocks.example # note\n");
    text.push_str("0.0.0.0 last.example");
    dir.write("hosts.txt", &text);
    let path = dir.0.join("hosts.txt");
    let collect = |block: usize, format: Option<Format>| {
        let mut entries = Vec::new();
        let outcome = parse_file(&path, format, block, |kind, url: &NormUrl| {
            entries.push((kind, url.to_string()))
        })
        .unwrap();
        (outcome, entries)
    };
    let mut whole_entries = Vec::new();
    let whole = parse::parse(Format::Hosts, text.as_bytes(), |kind, url| {
        whole_entries.push((kind, url.to_string()))
    });
    assert!(text.len() > DETECT_BYTES, "{}", text.len());
    assert!(whole.accepted > 4000 && whole.rejected >= 3, "{whole:?}");
    for block in [
        1,
        7,
        64,
        4096,
        text.len() - DETECT_BYTES,
        text.len(),
        1 << 20,
    ] {
        for format in [None, Some(Format::Hosts)] {
            let ((got_format, report), entries) = collect(block, format);
            assert_eq!(got_format, Format::Hosts, "block {block}");
            assert_eq!(report, whole, "block {block}");
            assert!(entries == whole_entries, "block {block}");
        }
    }
}
