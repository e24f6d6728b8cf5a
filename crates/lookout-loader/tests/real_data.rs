//! Real-data tests on the shared third-party lists (`../shared/data`): everything listed is
//! found, subdomains too, and unlisted neighbours are not, checked against a reference model.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::OnceLock;

use lookout_config::Config;
use lookout_lists::{Category, CategorySet, NormUrl};
use lookout_loader::Loaded;
use proptest::prelude::*;

fn data() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data");
    if dir.join("ut1").is_dir() {
        Some(dir)
    } else {
        // CI always has the shared data: there, its absence is a broken set-up, not a skip.
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but there is no shared data at {}",
            dir.display()
        );
        eprintln!(
            "SKIPPED: shared data not found at {} (it is always present for developers and CI)",
            dir.display()
        );
        None
    }
}

/// The full shared data, loaded once for all tests.
fn loaded() -> Option<&'static Loaded> {
    static LOADED: OnceLock<Option<Loaded>> = OnceLock::new();
    LOADED
        .get_or_init(|| {
            data()?;
            let path =
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/shared-data.toml");
            let config = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
            Some(lookout_loader::load(&config.lists).unwrap_or_else(|e| panic!("{e}")))
        })
        .as_ref()
}

fn lines(rel: &str) -> Vec<String> {
    let path = data().map(|d| d.join(rel)).expect("data");
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            l.strip_prefix("0.0.0.0 ")
                .unwrap_or(l)
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_owned()
        })
        .collect()
}

fn categories(loaded: &Loaded, url: &str) -> CategorySet {
    CategorySet::from_bits(loaded.index.lookup(&NormUrl::parse(url).expect(url)))
}

/// Every gambling domain of UT1 and the Block List Project, normalised.
fn gambling_model() -> &'static HashSet<String> {
    static MODEL: OnceLock<HashSet<String>> = OnceLock::new();
    MODEL.get_or_init(|| {
        let mut set: HashSet<String> = HashSet::new();
        for rel in [
            "ut1/gambling/domains",
            "ut1/arjel/domains",
            "blocklistproject/gambling.2020-09-02.txt",
        ] {
            set.extend(
                lines(rel)
                    .iter()
                    .filter_map(|d| NormUrl::parse(d).ok())
                    .map(|u| u.host().to_owned()),
            );
        }
        set
    })
}

/// Reference answer: is the host or one of its parent domains in the model?
fn model_lists(host: &str) -> bool {
    let set = gambling_model();
    let mut h = host;
    loop {
        if set.contains(h) {
            return true;
        }
        match h.split_once('.') {
            Some((_, rest)) if !rest.is_empty() => h = rest,
            _ => return false,
        }
    }
}

#[test]
fn the_whole_shared_data_loads_cleanly() {
    let Some(l) = loaded() else { return };
    assert_eq!(l.rejected(), 0, "the shared lists have no malformed lines");
    assert!(l.accepted() > 1_500_000, "{}", l.accepted());
    assert!(
        l.index.host_entries() > 1_000_000,
        "{}",
        l.index.host_entries()
    );
    assert!(
        l.index.path_entries() > 20_000,
        "{}",
        l.index.path_entries()
    );
    // The UT1 aliases (porn -> adult, drugs -> drogue, ...) are loaded once, under the real name.
    assert!(l.files.iter().any(|f| f.name == "ut1/drogue/domains"));
    assert!(!l
        .files
        .iter()
        .any(|f| f.name.starts_with("ut1/drugs/") || f.name.starts_with("ut1/porn/")));
}

#[test]
fn every_listed_gambling_domain_and_its_subdomains_are_found() {
    let Some(l) = loaded() else { return };
    let mut checked = 0;
    for rel in [
        "ut1/gambling/domains",
        "blocklistproject/gambling.2020-09-02.txt",
    ] {
        for d in lines(rel) {
            let ip = NormUrl::parse(&d)
                .is_ok_and(|u| u.host_kind() == lookout_lists::normalize::HostKind::Ip);
            let forms = if ip {
                vec![d.clone(), format!("http://{d}/x")]
            } else {
                vec![d.clone(), format!("www.{d}"), format!("http://a.b.{d}./x")]
            };
            for url in forms {
                assert!(
                    categories(l, &url).contains(Category::GAMBLING),
                    "{url} (from {rel})"
                );
            }
            checked += 1;
        }
    }
    assert!(checked > 90_000, "{checked}");
}

#[test]
fn every_listed_url_entry_is_found_at_segment_boundaries() {
    let Some(l) = loaded() else { return };
    for rel in ["ut1/phishing/urls", "ut1/games/urls", "ut1/adult/urls"] {
        for entry in lines(rel) {
            let Ok(u) = NormUrl::parse(&entry) else {
                continue;
            };
            let want = match rel {
                "ut1/phishing/urls" => Category::PHISHING,
                "ut1/games/urls" => Category::GAMES,
                _ => Category::PORNOGRAPHY,
            };
            assert!(
                categories(l, &format!("http://{entry}")).contains(want),
                "{entry} (from {rel})"
            );
            if u.query().is_none() {
                let below = format!("http://{}/below/page.html", u.as_str());
                assert!(categories(l, &below).contains(want), "{below} (from {rel})");
            }
        }
    }
}

#[test]
fn lookalike_neighbours_are_not_listed() {
    let Some(l) = loaded() else { return };
    let mut checked = 0;
    for d in lines("ut1/gambling/domains").iter().take(5000) {
        for neighbour in [
            format!("not{d}"),
            format!("{d}x"),
            format!("{d}.example-unlisted"),
        ] {
            let Ok(url) = NormUrl::parse(&neighbour) else {
                continue;
            }; // e.g. `not1.2.3.4`
            let host = url.host().to_owned();
            let listed = categories(l, &neighbour).contains(Category::GAMBLING);
            assert_eq!(listed, model_lists(&host), "{neighbour}");
            checked += usize::from(!listed);
        }
    }
    assert!(checked > 10_000, "most neighbours are unlisted: {checked}");
    // The issue's own example: casino.com is listed by UT1; notcasino.com and casino.co are not.
    assert!(categories(l, "casino.com").contains(Category::GAMBLING));
    assert!(categories(l, "https://www.casino.com/").contains(Category::GAMBLING));
    for unlisted in [
        "notcasino.com",
        "casino.co",
        "casino.com.example-unlisted",
        "casinocom",
    ] {
        assert!(
            !model_lists(unlisted),
            "{unlisted} is in the model: pick another example"
        );
        assert!(
            !categories(l, unlisted).contains(Category::GAMBLING),
            "{unlisted}"
        );
    }
}

/// A host derived from a listed one by a mutation that may or may not keep it listed.
fn mutated() -> impl Strategy<Value = String> {
    let n = gambling_model().len();
    let names: Vec<String> = {
        let mut v: Vec<String> = gambling_model().iter().cloned().collect();
        v.sort();
        v
    };
    (0..n.max(1), 0..7u8, "[a-z0-9]{1,8}").prop_map(move |(i, how, word)| {
        let d = &names[i % names.len()];
        match how {
            0 => d.clone(),
            1 => format!("{word}.{d}"),
            2 => format!("{word}{d}"),
            3 => format!("{d}{word}"),
            4 => d
                .split_once('.')
                .map_or(d.clone(), |(_, rest)| rest.to_owned()),
            5 => format!(
                "{}.{word}",
                d.rsplit_once('.').map_or(d.as_str(), |(head, _)| head)
            ),
            _ => d.to_uppercase() + ".",
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 20_000, ..ProptestConfig::default() })]

    #[test]
    fn index_agrees_with_the_reference_model(host in mutated()) {
        let Some(l) = loaded() else { return Ok(()) };
        let Ok(url) = NormUrl::parse(&host) else { return Ok(()) };
        let got = categories(l, &host).contains(Category::GAMBLING);
        prop_assert_eq!(got, model_lists(url.host()), "{}", host);
    }
}

/// The whole UT1 folder published as UT1 publishes it (`blacklists.tar.gz`, one top folder)
/// installs as a subscription's copy that loads exactly as the folder itself does.
#[test]
fn ut1_as_a_tar_gz_subscription_loads_like_the_folder() {
    let Some(data) = data() else { return };
    let dir = std::env::temp_dir().join(format!("lookout-ut1-subscription-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let archive = dir.join("blacklists.tar.gz");
    {
        let gz = flate2::write::GzEncoder::new(
            std::fs::File::create(&archive).unwrap(),
            flate2::Compression::fast(),
        );
        let mut tar = tar::Builder::new(gz);
        // Links are stored as links, as in UT1's own archive.
        tar.follow_symlinks(false);
        tar.append_dir_all("blacklists", data.join("ut1")).unwrap();
        tar.into_inner().unwrap().finish().unwrap();
    }
    let text = format!(
        "[[lists.source]]\nname = \"ut1\"\nformat = \"ut1\"\nurl = \"https://dsi.example/blacklists.tar.gz\"\n[serve]\ndata_dir = \"{}\"\n[groups.staff]\n",
        dir.display()
    );
    let config = Config::from_toml(&text).unwrap_or_else(|e| panic!("{e}"));
    let source = &config.lists.sources[0];
    let entries = lookout_loader::subscription::install(&archive, source, false, 0)
        .unwrap_or_else(|e| panic!("{e}"));
    let direct = lookout_loader::load(&lookout_config::ListsConfig {
        strict: false,
        sources: vec![source.at(data.join("ut1"))],
        ..Default::default()
    })
    .unwrap();
    assert_eq!(entries, direct.accepted());
    assert!(entries > 800_000, "{entries}");
    let copy = lookout_loader::load(&config.lists).unwrap();
    assert_eq!(copy.accepted(), direct.accepted());
    assert_eq!(copy.index.host_entries(), direct.index.host_entries());
    assert_eq!(copy.files.len(), direct.files.len());
    let _ = std::fs::remove_dir_all(&dir);
}
