//! Table-driven tests of precedence, schedules and download rules.

use lookout_lists::parse::{parse, Format};

use super::*;

fn cats(slugs: &[&str]) -> CategorySet {
    slugs
        .iter()
        .map(|s| Category::from_slug(s).unwrap_or_else(|| panic!("unknown category {s}")))
        .collect()
}

fn index() -> Index {
    let mut builder = IndexBuilder::new();
    let mut sink = EntrySink::new();
    let lists: &[(&str, &[&str], &str)] = &[
        (
            "iwf",
            &["illegal-child-abuse"],
            "abuse.example\nfree-host.example/abuse/\n",
        ),
        (
            "ut1/gambling/domains",
            &["gambling"],
            "casino.com\nbet.example\n",
        ),
        ("ut1/games/domains", &["games"], "games.example\n"),
        (
            "ut1/social_networks/domains",
            &["social-media"],
            "social.example\n",
        ),
        ("ut1/press/domains", &["news"], "news.example\n"),
        (
            "blp/tiktok",
            &["tiktok", "social-media"],
            "tiktok.example\n",
        ),
    ];
    for &(name, categories, text) in lists {
        let id = builder
            .add_source(SourceInfo {
                name: name.into(),
                labels: cats(categories).bits(),
            })
            .unwrap();
        parse(Format::Urls, text.as_bytes(), |k, u| sink.add(id, k, u));
    }
    builder.build(vec![sink])
}

const EXE: &[&str] = &["exe", "msi", "bat", "js", "ps1", "scr"];

fn policy() -> Policy {
    let learners = GroupSpec {
        name: "learners".into(),
        block: cats(&["gambling", "tiktok", "games"]),
        warn: cats(&["social-media"]),
        // Allow-listing an illegal entry must not let it through.
        allow: vec![
            "abuse.example".into(),
            "casino.com/responsible-gambling".into(),
            "tools.example".into(),
        ],
        deny: vec!["news.example/bad".into(), "*.blocked.example".into()],
        blocked_extensions: EXE.iter().map(|s| s.to_string()).collect(),
        safe_search: true,
        youtube_restricted: true,
        schedules: vec![Schedule {
            name: "lessons".into(),
            days: [Weekday::Mon, Weekday::Tue].into_iter().collect(),
            from: 9 * 60,
            to: 16 * 60,
            action: Action::Block,
            categories: cats(&["social-media"]),
        }],
    };
    let staff = GroupSpec {
        name: "staff".into(),
        block: cats(&["gambling", "games"]),
        blocked_extensions: EXE.iter().map(|s| s.to_string()).collect(),
        schedules: vec![Schedule {
            name: "games after work".into(),
            days: WeekdaySet::ALL,
            from: 17 * 60,
            to: 1440,
            action: Action::Allow,
            categories: cats(&["games"]),
        }],
        ..GroupSpec::default()
    };
    let it = GroupSpec {
        name: "it-staff".into(),
        ..GroupSpec::default()
    };
    Policy::new(vec![
        Group::new(learners).unwrap(),
        Group::new(staff).unwrap(),
        Group::new(it).unwrap(),
    ])
    .unwrap()
}

const WED_NOON: LocalTime = LocalTime {
    weekday: Weekday::Wed,
    minute: 12 * 60,
};
const MON_TEN: LocalTime = LocalTime {
    weekday: Weekday::Mon,
    minute: 10 * 60,
};
const FRI_1730: LocalTime = LocalTime {
    weekday: Weekday::Fri,
    minute: 17 * 60 + 30,
};

/// One row: group, time, URL, expected `action rule [category]`.
fn check(rows: &[(&str, LocalTime, &str, &str)]) {
    let (policy, index) = (policy(), index());
    for &(group, at, url, want) in rows {
        let id = policy.group_id(group).unwrap();
        let d = match NormUrl::parse(url) {
            Ok(u) => policy.decide(&index, id, &u, at),
            Err(e) => Policy::decide_invalid(e),
        };
        let category = match &d.reason {
            Reason::Illegal { category, .. } | Reason::Category { category, .. } => {
                format!(" {category}")
            }
            Reason::Download { extension } => format!(" .{extension}"),
            _ => String::new(),
        };
        let got = format!("{} {}{category}", d.action, d.reason.rule());
        assert_eq!(got, want, "{group} {at} {url}: {}", d.reason);
        // The brief decision is the same but for the list entry it does not name.
        let brief = match NormUrl::parse(url) {
            Ok(u) => policy.decide_briefly(&index, id, &u, at),
            Err(e) => Policy::decide_invalid(e),
        };
        let mut unexplained = d.clone();
        if let Reason::Illegal { matched, .. } | Reason::Category { matched, .. } =
            &mut unexplained.reason
        {
            *matched = None;
        }
        assert_eq!(brief, unexplained, "{group} {at} {url}");
    }
}

/// A blocked request's decision names the list entry; the brief one does not.
#[test]
fn brief_decisions_leave_out_the_entry() {
    let (policy, index) = (policy(), index());
    let url = NormUrl::parse("http://casino.com/slots").unwrap();
    let id = policy.group_id("learners").unwrap();
    let full = policy.decide(&index, id, &url, WED_NOON);
    let brief = policy.decide_briefly(&index, id, &url, WED_NOON);
    let matched = |d: &Decision| match &d.reason {
        Reason::Category { matched, .. } => matched.as_ref().map(|m| m.entry.clone()),
        other => panic!("{other:?}"),
    };
    assert_eq!(matched(&full).as_deref(), Some("casino.com"));
    assert_eq!(matched(&brief), None);
}

#[test]
fn precedence() {
    check(&[
        // illegal > allow, for every group, IT staff included
        (
            "learners",
            WED_NOON,
            "http://abuse.example/",
            "block illegal illegal-child-abuse",
        ),
        (
            "it-staff",
            WED_NOON,
            "http://www.abuse.example/x",
            "block illegal illegal-child-abuse",
        ),
        (
            "it-staff",
            WED_NOON,
            "http://free-host.example/abuse/1.jpg",
            "block illegal illegal-child-abuse",
        ),
        (
            "it-staff",
            WED_NOON,
            "http://free-host.example/other",
            "allow default",
        ),
        // deny > allow and categories
        (
            "learners",
            WED_NOON,
            "http://news.example/bad/page",
            "block deny-list",
        ),
        (
            "learners",
            WED_NOON,
            "http://x.blocked.example/",
            "block deny-list",
        ),
        (
            "learners",
            WED_NOON,
            "http://news.example/good",
            "allow category news",
        ),
        // allow > category
        (
            "learners",
            WED_NOON,
            "http://casino.com/responsible-gambling/help",
            "allow allow-list",
        ),
        (
            "learners",
            WED_NOON,
            "http://casino.com/slots",
            "block category gambling",
        ),
        // the strictest category wins: tiktok (block) over social-media (warn)
        (
            "learners",
            WED_NOON,
            "http://tiktok.example/",
            "block category tiktok",
        ),
        (
            "learners",
            WED_NOON,
            "http://social.example/",
            "warn category social-media",
        ),
        (
            "staff",
            WED_NOON,
            "http://social.example/",
            "allow category social-media",
        ),
        (
            "learners",
            WED_NOON,
            "http://unlisted.example/",
            "allow default",
        ),
        (
            "learners",
            WED_NOON,
            "http://exa mple/",
            "block invalid-url",
        ),
    ]);
}

#[test]
fn schedules() {
    check(&[
        (
            "learners",
            MON_TEN,
            "http://social.example/",
            "block schedule social-media",
        ),
        (
            "learners",
            LocalTime {
                minute: 16 * 60,
                ..MON_TEN
            },
            "http://social.example/",
            "warn category social-media",
        ),
        (
            "learners",
            LocalTime {
                minute: 9 * 60 - 1,
                ..MON_TEN
            },
            "http://social.example/",
            "warn category social-media",
        ),
        (
            "staff",
            WED_NOON,
            "http://games.example/",
            "block category games",
        ),
        (
            "staff",
            FRI_1730,
            "http://games.example/",
            "allow schedule games",
        ),
        (
            "staff",
            LocalTime {
                minute: 1439,
                ..FRI_1730
            },
            "http://games.example/",
            "allow schedule games",
        ),
        (
            "learners",
            FRI_1730,
            "http://games.example/",
            "block category games",
        ),
    ]);
}

#[test]
fn downloads() {
    check(&[
        (
            "learners",
            WED_NOON,
            "http://tools.example/setup.exe",
            "block download .exe",
        ),
        (
            "learners",
            WED_NOON,
            "http://tools.example/Setup.EXE?x=1",
            "block download .exe",
        ),
        (
            "learners",
            WED_NOON,
            "http://tools.example/setup.exe.",
            "block download .exe",
        ),
        (
            "learners",
            WED_NOON,
            "http://tools.example/setup.exe%20",
            "block download .exe",
        ),
        (
            "learners",
            WED_NOON,
            "http://tools.example/setup%2eexe",
            "block download .exe",
        ),
        (
            "learners",
            WED_NOON,
            "http://tools.example/run.ps1;jsessionid=1",
            "block download .ps1",
        ),
        (
            "learners",
            WED_NOON,
            "http://tools.example/app.js",
            "block download .js",
        ),
        (
            "learners",
            WED_NOON,
            "http://tools.example/notes.pdf",
            "allow allow-list",
        ),
        (
            "learners",
            WED_NOON,
            "http://tools.example/json",
            "allow allow-list",
        ),
        (
            "learners",
            WED_NOON,
            "http://tools.example/.exe",
            "block download .exe",
        ),
        (
            "staff",
            WED_NOON,
            "http://x.example/a.msi",
            "block download .msi",
        ),
        (
            "it-staff",
            WED_NOON,
            "http://x.example/a.msi",
            "allow default",
        ),
    ]);
}

/// A group forbidding extensions of every length the packed search treats apart: short, 15
/// bytes (the longest packed), 16 and more (searched as strings).
fn extension_group(extensions: &[&str]) -> Group {
    Group::new(GroupSpec {
        name: "g".into(),
        blocked_extensions: extensions.iter().map(|s| s.to_string()).collect(),
        ..GroupSpec::default()
    })
    .expect("group")
}

#[test]
fn forbidden_extensions_of_any_length() {
    let g = extension_group(&[
        ".EXE",
        "js",
        "fifteen-bytes15",
        "sixteen-bytes-16",
        "a-much-longer-extension",
    ]);
    for (name, want) in [
        ("setup.exe", Some("exe")),
        ("setup.ExE", Some("ExE")),
        ("setup.ex", None),
        ("setup.exee", None),
        ("setup.xe", None),
        ("setup", None),
        ("setup.", None),
        ("", None),
        (".js", Some("js")),
        ("a.js. . .", Some("js")),
        ("a.js%20.%20", Some("js")),
        ("a.js;v=1.exe", Some("js")),
        ("a.exe;v=1", Some("exe")),
        ("a.exe0", None),
        ("a.exe.0", None),
        ("a.EXE.%20", Some("EXE")),
        ("a.j", None),
        ("a.\0js", None),
        ("a.\0\0js", None),
        ("x.fifteen-bytes15", Some("fifteen-bytes15")),
        ("x.FIFTEEN-BYTES15", Some("FIFTEEN-BYTES15")),
        ("x.fifteen-bytes1", None),
        ("x.sixteen-bytes-16", Some("sixteen-bytes-16")),
        ("x.Sixteen-Bytes-16", Some("Sixteen-Bytes-16")),
        ("x.sixteen-bytes-1", None),
        ("x.a-much-longer-extension", Some("a-much-longer-extension")),
        ("x.a-much-longer-extensio", None),
        ("übung.exe", Some("exe")),
        ("x.éxe", None),
    ] {
        assert_eq!(g.forbidden_extension(name), want, "{name:?}");
    }
    assert!(extension_group(&["sixteen-bytes-16"]).blocks_downloads());
    assert!(!extension_group(&[]).blocks_downloads());
}

proptest::proptest! {
    /// The packed search finds what comparing lower-cased strings finds, over names and
    /// extension sets drawn from a small alphabet (so that near misses are common) with lengths
    /// around the 15 bytes that are packed.
    #[test]
    fn forbidden_extension_agrees_with_comparing_strings(
        extensions in proptest::collection::vec("[aAb\\x00]{0,17}", 0..6),
        name in "[aAbB.; \\x00é]{0,24}(\\.[aAb\\x00]{0,17})?(%20|\\.| )?",
    ) {
        let refs: Vec<&str> = extensions.iter().map(String::as_str).collect();
        let g = extension_group(&refs);
        let mut base = name.split(';').next().unwrap_or_default();
        while let Some(t) = base.strip_suffix(['.', ' ']).or_else(|| base.strip_suffix("%20")) {
            base = t;
        }
        let want = base.rsplit_once('.').map(|(_, ext)| ext).filter(|ext| {
            extensions
                .iter()
                .any(|e| e.trim_start_matches('.').eq_ignore_ascii_case(ext))
        });
        proptest::prop_assert_eq!(g.forbidden_extension(&name), want);
    }
}

#[test]
fn illegal_categories_cannot_be_overridden() {
    let illegal = cats(&["illegal-terrorism"]);
    let warn = GroupSpec {
        name: "g".into(),
        warn: illegal,
        ..GroupSpec::default()
    };
    assert!(matches!(
        Group::new(warn),
        Err(PolicyError::IllegalOverride { .. })
    ));
    let schedule = Schedule {
        name: "evenings".into(),
        days: WeekdaySet::ALL,
        from: 0,
        to: 1440,
        action: Action::Allow,
        categories: illegal,
    };
    let sched = GroupSpec {
        name: "g".into(),
        schedules: vec![schedule],
        ..GroupSpec::default()
    };
    let err = Group::new(sched).unwrap_err();
    assert_eq!(
        err.to_string(),
        "group `g`: illegal-terrorism is illegal content and is always blocked; it cannot be changed by schedule `evenings`"
    );
    // A group that does not mention illegal categories still blocks them.
    let g = Group::new(GroupSpec {
        name: "g".into(),
        ..GroupSpec::default()
    })
    .unwrap();
    assert!(g.block.contains(Category::ILLEGAL_CHILD_ABUSE));
}

#[test]
fn reasons_name_source_and_entry() {
    let (policy, index) = (policy(), index());
    let id = policy.group_id("learners").unwrap();
    let d = policy.decide(
        &index,
        id,
        &NormUrl::parse("https://www.casino.com/x").unwrap(),
        WED_NOON,
    );
    assert_eq!(
        d.reason.to_string(),
        "category Gambling (`casino.com` in ut1/gambling/domains)"
    );
    let d = policy.decide(
        &index,
        id,
        &NormUrl::parse("news.example/bad").unwrap(),
        WED_NOON,
    );
    assert_eq!(
        d.reason.to_string(),
        "on the group's deny list (`news.example/bad` in groups.learners.deny)"
    );
}

/// `Reason::text`, what the log keeps, is the reason's `to_string` for every kind of reason,
/// and borrows (allocates nothing) only where that text has no detail.
#[test]
fn reason_text_is_its_display_borrowed_without_detail() {
    let (policy, index) = (policy(), index());
    let id = policy.group_id("learners").unwrap();
    let decided = |url: &str| {
        policy
            .decide(&index, id, &NormUrl::parse(url).unwrap(), WED_NOON)
            .reason
    };
    let table: Vec<(Reason, bool)> = vec![
        (Reason::NoRule, true),
        (decided("https://www.casino.com/x"), false),
        (decided("news.example/bad"), false),
        (decided("http://unlisted.example/"), true),
        (
            Reason::Download {
                extension: "exe".into(),
            },
            false,
        ),
        (
            Reason::Destination("127.0.0.1 is the gateway".into()),
            false,
        ),
    ];
    for (reason, borrowed) in table {
        let text = reason.text();
        assert_eq!(text, reason.to_string(), "{reason:?}");
        assert_eq!(matches!(text, Cow::Borrowed(_)), borrowed, "{reason:?}");
    }
}

/// A group's name is interned: groups of one name, in policies built apart (a reload), share
/// one copy, which events borrow.
#[test]
fn group_names_are_interned_once() {
    let group = |name: &str| {
        Group::new(GroupSpec {
            name: name.into(),
            ..GroupSpec::default()
        })
        .unwrap()
    };
    let (a, b, c) = (
        group("interned-a"),
        group("interned-a"),
        group("interned-b"),
    );
    assert_eq!(a.name(), "interned-a");
    assert!(std::ptr::eq(a.name(), b.name()));
    assert_eq!(c.name(), "interned-b");
    assert!(!std::ptr::eq(a.name(), c.name()));
    assert!(std::ptr::eq(intern("interned-b".to_owned()), c.name()));
}

#[test]
fn bad_list_entries_are_named() {
    let spec = GroupSpec {
        name: "g".into(),
        allow: vec!["ok.com".into(), "bad host".into()],
        ..GroupSpec::default()
    };
    assert_eq!(
        Group::new(spec).unwrap_err().to_string(),
        "group `g`: allow entry `bad host`: `bad host` is not a valid host name or IP address"
    );
}

#[test]
fn hhmm() {
    let t = |s, want| assert_eq!(LocalTime::parse_hhmm(s), want, "{s}");
    t("00:00", Some(0));
    t("17:30", Some(1050));
    t("9:05", Some(545));
    t("24:00", Some(1440));
    t("24:01", None);
    t("12:60", None);
    t("1230", None);
    t("12:3", None);
}

#[test]
fn entries_allowed_after_review_apply_at_once_but_never_to_illegal_content() {
    let (policy, index) = (policy(), index());
    let learners = policy.group_id("learners").unwrap();
    let decide = |url: &str| {
        let d = policy.decide(&index, learners, &NormUrl::parse(url).unwrap(), WED_NOON);
        (d.action, d.reason.rule())
    };
    assert_eq!(
        decide("http://games.example/maths"),
        (Action::Block, "category")
    );
    let g = policy.group(learners);
    g.set_reviewed_allows(&["games.example/maths".into(), "abuse.example".into()])
        .unwrap();
    let table = [
        (
            "http://games.example/maths/fractions",
            (Action::Allow, "allow-list"),
        ),
        ("http://games.example/other", (Action::Block, "category")),
        ("http://abuse.example/", (Action::Block, "illegal")),
    ];
    for (url, want) in table {
        assert_eq!(decide(url), want, "{url}");
    }
    let d = policy.decide(
        &index,
        learners,
        &NormUrl::parse("http://games.example/maths").unwrap(),
        WED_NOON,
    );
    assert_eq!(
        d.reason.matched().map(|m| m.source.to_string()),
        Some("groups.learners.reviewed".to_owned())
    );
    // A bad entry changes nothing; an empty list takes the allowances away.
    assert!(g
        .set_reviewed_allows(&["games.example/maths".into(), "http://[bad".into()])
        .is_err());
    assert_eq!(
        decide("http://games.example/maths"),
        (Action::Allow, "allow-list")
    );
    g.set_reviewed_allows(&[]).unwrap();
    assert_eq!(
        decide("http://games.example/maths"),
        (Action::Block, "category")
    );
}
