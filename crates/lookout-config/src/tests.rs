//! Configuration parsing and validation tests.

use super::*;

#[test]
fn example_parses_validates_and_compiles() {
    let config = Config::from_toml(EXAMPLE).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.lists.sources.len(), 6);
    assert_eq!(config.groups.len(), 6);
    let policy = config.policy().unwrap();
    for g in [
        "learners-u18",
        "learners",
        "customers",
        "guests",
        "staff",
        "it-staff",
    ] {
        assert!(policy.group_id(g).is_some(), "{g}");
    }
    let it = policy.group(policy.group_id("it-staff").unwrap());
    assert_eq!(it.forbidden_extension("setup.exe"), None);
    assert!(!it.safe_search);
    let learners = policy.group(policy.group_id("learners").unwrap());
    assert_eq!(learners.forbidden_extension("setup.exe"), Some("exe"));
    assert!(learners.safe_search && learners.youtube_restricted);
}

#[test]
fn empty_config_has_safe_defaults() {
    let config = Config::from_toml("").unwrap();
    let policy = config.policy().unwrap();
    let g = policy.group(policy.group_id("learners-u18").unwrap());
    assert!(g.safe_search && g.youtube_restricted);
    assert_eq!(g.forbidden_extension("x.msi"), Some("msi"));
    assert!(policy.group_id("it-staff").is_some());
    assert!(config.lists.sources.is_empty());
}

/// One row: configuration text, expected error text.
fn check_err(text: &str, want: &str) {
    match Config::from_toml(text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => {
            let got = e.to_string();
            assert!(
                got.contains(want),
                "error for\n{text}\nwas\n{got}\nwanted it to contain\n{want}"
            );
        }
    }
}

#[test]
fn mistakes_name_key_and_line() {
    // Unknown keys are refused by the parser, with line and the key.
    check_err("[lists]\nstrickt = true\n", "line 2");
    check_err("[lists]\nstrickt = true\n", "unknown field `strickt`");
    check_err("[groups.staff]\nblokc = []\n", "unknown field `blokc`");
    check_err("[server]\n", "unknown field `server`");
    check_err("[groups.staff]\nsafe_search = \"yes\"\n", "invalid type");
    check_err(
        "[groups.staff]\n\nblock = [\"gambling\",\n  \"gamblng\"]\n",
        "line 4: groups.staff.block: unknown category `gamblng`",
    );
    check_err(
        "[groups.staff]\nblock = []\nallow = [\"bad host.com\"]\n",
        "line 3: groups.staff.allow: `bad host.com`: `bad host.com` is not a valid host name",
    );
    check_err(
        "[groups.staff]\nblock = [\"games\"]\nwarn = [\"games\"]\n",
        "line 3: groups.staff.warn: `games` is also in `block`",
    );
    check_err(
        "[groups.g]\n[[groups.g.schedule]]\nname = \"x\"\nfrom = \"25:00\"\nto = \"10:00\"\naction = \"allow\"\ncategories = [\"games\"]\n",
        "line 4: groups.g.schedule[0].from: `25:00` is not a time of day as HH:MM",
    );
    check_err(
        "[groups.g]\n[[groups.g.schedule]]\nname = \"x\"\ndays = [\"mon\", \"funday\"]\nfrom = \"09:00\"\nto = \"10:00\"\naction = \"block\"\ncategories = [\"games\"]\n",
        "line 4: groups.g.schedule[0].days: `funday` is not a day",
    );
    check_err(
        "[groups.g]\n[[groups.g.schedule]]\nname = \"x\"\nfrom = \"09:00\"\nto = \"10:00\"\naction = \"sometimes\"\ncategories = [\"games\"]\n",
        "unknown variant `sometimes`",
    );
    check_err(
        "[groups.\"bad name\"]\n",
        "groups.bad name: group names may hold only",
    );
    check_err(
        "[groups.g]\nblocked_downloads = [\"exe\", \"e x e\"]\n",
        "line 2: groups.g.blocked_downloads: `e x e` is not a file extension",
    );
    check_err(
        "[groups.g]\n[lists]\n\nhost_cache = 16777217\n",
        "line 4: lists.host_cache: at most 16777216 hosts",
    );
    check_err("[groups.g]\n[lists]\nhost_cache = -1\n", "line 3");
}

/// `[lists] host_cache`: the default when absent, what was written otherwise (the index
/// rounds it to a power of two), 0 for none.
#[test]
fn host_cache_setting() {
    let rows: &[(&str, usize)] = &[
        ("", lookout_lists::DEFAULT_HOST_CACHE),
        ("host_cache = 0", 0),
        ("host_cache = 250000", 250_000),
        ("host_cache = 16777216", lookout_lists::MAX_HOST_CACHE),
    ];
    for &(line, want) in rows {
        let text = format!("[groups.g]\n[lists]\n{line}\n");
        let config = Config::from_toml(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(config.lists.host_cache(), want, "{line}");
    }
}

#[test]
fn illegal_content_cannot_be_switched_off() {
    check_err(
        "[groups.staff]\nwarn = [\"illegal-child-abuse\"]\n",
        "line 2: groups.staff.warn: `illegal-child-abuse` is illegal content and is always blocked",
    );
    check_err(
        "[groups.g]\n[[groups.g.schedule]]\nname = \"x\"\nfrom = \"09:00\"\nto = \"10:00\"\naction = \"allow\"\ncategories = [\"illegal-terrorism\"]\n",
        "line 7: groups.g.schedule[0].categories: `illegal-terrorism` is illegal content",
    );
    // There is no key that could turn illegal blocking off.
    check_err(
        "[groups.g]\nallow_illegal = true\n",
        "unknown field `allow_illegal`",
    );
    // Leaving illegal categories out of `block` still blocks them.
    let config =
        Config::from_toml("[groups.g]\nblock = []\nallow = [\"abuse.example\"]\n").unwrap();
    let policy = config.policy().unwrap();
    let mut builder = lookout_lists::IndexBuilder::new();
    let labels = CategorySet::one(Category::ILLEGAL_CHILD_ABUSE).bits();
    let id = builder
        .add_source(lookout_lists::SourceInfo {
            name: "iwf".into(),
            labels,
        })
        .unwrap();
    let mut sink = lookout_lists::EntrySink::new();
    sink.add(
        id,
        lookout_lists::EntryKind::Block,
        &NormUrl::parse("abuse.example").unwrap(),
    );
    let index = builder.build(vec![sink]);
    let at = LocalTime {
        weekday: Weekday::Mon,
        minute: 600,
    };
    let url = NormUrl::parse("http://abuse.example/").unwrap();
    let d = policy.decide(&index, policy.group_id("g").unwrap(), &url, at);
    assert_eq!(d.action, Action::Block);
    assert_eq!(d.reason.rule(), "illegal");
}

#[test]
fn source_rules() {
    check_err(
        "[[lists.source]]\nname = \"x\"\npath = \"x.txt\"\n",
        "line 2: lists.source[0].categories: source `x` is a single list: say which categories",
    );
    check_err(
        "[[lists.source]]\nname = \"u\"\npath = \"ut1\"\nformat = \"ut1\"\ncategories = [\"gambling\"]\n",
        "line 5: lists.source[0].categories: folder sources take their categories from folder",
    );
    check_err(
        "[[lists.source]]\nname = \"a\"\npath = \"a\"\ncategories = [\"ads\"]\n",
        "line 4: lists.source[0].categories: unknown category `ads`",
    );
    check_err(
        "[[lists.source]]\nname = \"a\"\npath = \"a\"\ncategories = [\"adverts\"]\n[[lists.source]]\nname = \"a\"\npath = \"b\"\ncategories = [\"adverts\"]\n",
        "line 6: lists.source[1].name: another source is already named `a`",
    );
    check_err(
        "[[lists.source]]\nname = \"a\"\npath = \"a\"\nformat = \"csv\"\n",
        "unknown variant `csv`",
    );
    check_err(
        "[[lists.source]]\nname = \"a\"\npath = \"a\"\ncategories = [\"adverts\"]\ninclude = [\"x\"]\n",
        "line 5: lists.source[0].include: only folder sources",
    );
}

#[test]
fn subscription_rules() {
    let src = |extra: &str| {
        format!("[[lists.source]]\nname = \"s\"\ncategories = [\"gambling\"]\n{extra}\n")
    };
    let table = [
        ("", "line 2: lists.source[0].name: a source needs a `path` (a file or folder) or a `url`"),
        ("url = \"http://lists.example.org/x.txt\"", "line 4: lists.source[0].url: `http://lists.example.org/x.txt`: lists are downloaded over https:// only"),
        ("url = \"ftp://lists.example.org/x.txt\"", "`ftp:` addresses are not downloaded"),
        ("url = \"not a url\"", "line 4: lists.source[0].url: `not a url` is not a web address"),
        ("url = \"https://x.example/l\"\nrefresh_minutes = 1", "line 5: lists.source[0].refresh_minutes: between 5 and 10080 minutes"),
        ("path = \"x.txt\"\nrefresh_minutes = 60", "line 5: lists.source[0].refresh_minutes: only a source with a `url` is refreshed"),
    ];
    for (extra, want) in table {
        check_err(&src(extra), want);
    }
    check_err(
        "[[lists.source]]\nname = \"../x\"\ncategories = [\"gambling\"]\nurl = \"https://x.example/l\"\n",
        "line 2: lists.source[0].name: the downloaded copy is kept in a file named after the source",
    );
    // Accepted: https, plain http from this machine; the copy goes to the data folder
    // unless a path is given; daily unless told.
    let mut config = Config::from_toml(
        "[serve]\ndata_dir = \"data\"\n[[lists.source]]\nname = \"a\"\ncategories = [\"gambling\"]\nurl = \"https://lists.example.org/a.txt\"\n[[lists.source]]\nname = \"b\"\ncategories = [\"gambling\"]\nurl = \"http://127.0.0.1:8000/b.txt\"\npath = \"mirror/b.txt\"\nrefresh_minutes = 60\n[[lists.source]]\nname = \"c\"\ncategories = [\"gambling\"]\nurl = \"http://localhost/c.txt\"\n",
    )
    .expect("valid subscriptions");
    config.resolve_paths(Path::new("/etc/lookout"));
    let s = &config.lists.sources;
    assert_eq!(s[0].path.get_ref(), Path::new("/etc/lookout/data/lists/a"));
    assert_eq!(s[1].path.get_ref(), Path::new("/etc/lookout/mirror/b.txt"));
    assert_eq!(s[0].refresh(), std::time::Duration::from_secs(86_400));
    assert_eq!(s[1].refresh(), std::time::Duration::from_secs(3_600));
}

#[test]
fn folder_mapping() {
    let config = Config::from_toml(EXAMPLE).unwrap();
    let ut1 = &config.lists.sources[0];
    assert_eq!(
        ut1.categories_for(&["gambling"]),
        Some(CategorySet::one(Category::GAMBLING))
    );
    assert_eq!(
        ut1.categories_for(&["tricheur"]),
        Some(CategorySet::one(Category::CHEATING))
    );
    assert_eq!(
        ut1.categories_for(&["special"]),
        None,
        "mapped to [] = skipped"
    );
    assert_eq!(ut1.categories_for(&["liste_bu"]), None, "excluded");
    assert_eq!(ut1.categories_for(&["not-a-category"]), None);
    let blp = &config.lists.sources[1];
    assert_eq!(
        blp.categories_for(&["tiktok"]),
        Some(CategorySet::one(Category::TIKTOK))
    );
}

#[test]
fn relative_paths_resolve_against_the_config_folder() {
    let mut config = Config::from_toml(EXAMPLE).unwrap();
    config.resolve_paths(Path::new("/etc/lookout"));
    let local = &config.lists.sources[4];
    assert_eq!(
        local.path.get_ref(),
        Path::new("/etc/lookout/lists/local.adblock")
    );
    assert_eq!(
        config.lists.sources[0].path.get_ref(),
        Path::new("/var/lib/lookout/lists/ut1")
    );
}

#[test]
fn gateway_defaults_are_safe_and_local() {
    let config = Config::from_toml("").unwrap();
    assert_eq!(config.proxy_listen().to_string(), "127.0.0.1:3128");
    assert_eq!(config.dns_listen().to_string(), "127.0.0.1:5353");
    let nets = config.networks();
    assert_eq!(nets.len(), 2);
    assert!(nets.iter().all(|n| n.group == "learners-u18"));
    assert!(nets.iter().all(|n| n.net.addr().is_loopback()));
    assert_eq!(config.proxy.connect_ports, [443]);
    assert!(
        config.proxy.internal.is_empty(),
        "nothing internal is opened by default"
    );
    assert!(config.dns.rebind_protection);
    assert!(config.proxy.inspect.groups.is_empty());
    let never = never_inspected(&config.proxy.inspect);
    assert!(never.contains(Category::from_slug("banking").unwrap()));
    assert_eq!(config.dns.blocked_answer, BlockedAnswerConfig::Nxdomain);
}

#[test]
fn example_gateway_sections() {
    let config = Config::from_toml(EXAMPLE).unwrap();
    assert_eq!(config.networks().len(), 4);
    assert_eq!(config.networks()[0].login, LoginMode::Required);
    assert_eq!(config.dns_upstreams().len(), 2);
    assert_eq!(config.dns_upstreams()[0].to_string(), "9.9.9.9:53");
    assert_eq!(config.proxy_listen().to_string(), "0.0.0.0:3128");
    assert_eq!(
        config.proxy.hosts["moodle.college.internal"].to_string(),
        "10.0.0.20"
    );
}

/// The example's commented `[oidc]` block, uncommented, is a valid configuration.
#[test]
fn example_oidc_block_is_valid_once_uncommented() {
    let block: String = EXAMPLE
        .lines()
        .skip_while(|l| *l != "# [oidc]")
        .take_while(|l| l.starts_with('#'))
        .map(|l| format!("{}\n", l.trim_start_matches('#').trim_start()))
        .collect();
    assert!(
        block.starts_with("[oidc]\n") && block.contains("[[oidc.group]]"),
        "{block}"
    );
    let config = Config::from_toml(&format!("{EXAMPLE}\n{block}")).unwrap();
    let o = config.oidc.unwrap();
    assert_eq!((o.roles.len(), o.groups.len()), (2, 1));
    assert_eq!(o.roles[1].claim, "hd");
}

#[test]
fn gateway_mistakes_name_key_and_line() {
    for (text, want) in [
        (
            "[proxy]\nlisten = \"localhost\"\n",
            "line 2: proxy.listen: `localhost` is not an address",
        ),
        ("[proxy]\nlisten = \"1.2.3.4:99999\"\n", "proxy.listen"),
        ("[proxy]\nlistn = \"1.2.3.4:1\"\n", "unknown field `listn`"),
        (
            "[proxy]\nmax_header_bytes = 100\n",
            "proxy.max_header_bytes: must be at least 8192",
        ),
        (
            "[proxy]\nheader_timeout_secs = 0\n",
            "proxy.header_timeout_secs",
        ),
        (
            "[proxy]\nconsole_url = \"lookout.local\"\n",
            "must start with http://",
        ),
        (
            "[proxy.inspect]\ngroups = [\"nobody\"]\n",
            "line 2: proxy.inspect.groups: no group is named `nobody`",
        ),
        (
            "[proxy.inspect]\nnever = [\"bank\"]\n",
            "unknown category `bank`",
        ),
        (
            "[dns]\nupstreams = [\"dns.google\"]\n",
            "line 2: dns.upstreams: `dns.google` is not an IP address",
        ),
        (
            "[dns]\nblocked_answer = \"block-page\"\n",
            "dns.block_page_ipv4",
        ),
        (
            "[dns]\nblocked_answer = \"refuse\"\n",
            "unknown variant `refuse`",
        ),
        ("[dns]\nblock_page_ipv4 = \"10.0.0\"\n", "block_page_ipv4"),
        (
            "[[networks]]\ncidr = \"10.0.0.0/33\"\ngroup = \"staff\"\n",
            "line 2: networks[0].cidr",
        ),
        (
            "[[networks]]\ncidr = \"10.0.0.0/8\"\ngroup = \"teachers\"\n",
            "line 3: networks[0].group: no group is named `teachers`",
        ),
        (
            "[[networks]]\ncidr = \"10.0.0.0/8\"\ngroup = \"staff\"\nlogin = \"yes\"\n",
            "unknown variant `yes`",
        ),
        (
            "[[networks]]\ncidr = \"10.0.0.0/8\"\n",
            "missing field `group`",
        ),
        (
            "[proxy.hosts]\n\"a b\" = \"10.0.0.1\"\n",
            "proxy.hosts: `a b` is not a host name",
        ),
        (
            "[proxy.hosts]\n\"a.test\" = \"10.0.0\"\n",
            "invalid IP address",
        ),
        (
            "[log]\nqueue = 0\n",
            "log: `queue` and `batch` must be at least 1",
        ),
        (
            "[log]\nflush_ms = 5000\n",
            "log: `flush_ms` must be at most 1000",
        ),
        (
            "[[proxy.internal]]\ncidr = \"intranet\"\n",
            "line 2: proxy.internal[0].cidr: `intranet` is not an address range",
        ),
        (
            "[[proxy.internal]]\ncidr = \"169.254.0.0/16\"\n",
            "proxy.internal[0].cidr: `169.254.0.0/16` starts with a link-local address",
        ),
        (
            "[[proxy.internal]]\ncidr = \"0.0.0.0/0\"\n",
            "starts with the unspecified address (the gateway itself), which the proxy never reaches",
        ),
        (
            "[[proxy.internal]]\ncidr = \"10.0.0.0/8\"\ngroups = [\"teachers\"]\n",
            "line 3: proxy.internal[0].groups: no group is named `teachers`",
        ),
        (
            "[[proxy.internal]]\ncidr = \"10.0.0.0/8\"\nports = [0]\n",
            "proxy.internal[0].ports: ports are 1 to 65535",
        ),
        (
            "[[proxy.internal]]\ncidr = \"10.0.0.0/8\"\nport = 80\n",
            "unknown field `port`",
        ),
        (
            "[dns]\ninternal_domains = [\"college internal\"]\n",
            "line 2: dns.internal_domains: `college internal` is not a domain name",
        ),
        (
            "[portal]\nallow = [\"childline.org.uk\", \"help line\"]\n",
            "line 2: portal.allow: `help line` is not a domain name",
        ),
        ("[portal]\nhours = 0\n", "portal.hours: must be between 1 and 336"),
        (
            "[log.syslog]\nserver = \"siem box\"\n",
            "line 2: log.syslog.server: `siem box` is not an address and port",
        ),
        (
            "[log.syslog]\nserver = \"10.0.5.20\"\nprotocol = \"tls\"\n",
            "line 3: log.syslog.protocol: `tls`: expected \"udp\" or \"tcp\"",
        ),
        (
            "[log.syslog]\nserver = \"10.0.5.20\"\nformat = \"leef\"\n",
            "line 3: log.syslog.format: `leef`: expected \"cef\" or \"rfc5424\"",
        ),
        (
            "[console]\nmetrics_allow = [\"10.0.5.0/24\", \"prometheus box\"]\n",
            "line 2: console.metrics_allow: `prometheus box` is not an address or network",
        ),
        (
            "[console]\ntls_cert = \"console.pem\"\n",
            "line 2: console.tls_key: tls_cert is set but tls_key is not",
        ),
        (
            "[console]\nlisten = \"0.0.0.0:8443\"\ntls_key = \"key.pem\"\n",
            "line 3: console.tls_cert: tls_key is set but tls_cert is not",
        ),
        ("[retention]\nalerts_days = 2\n", "alerts must be kept at least 7 days"),
        ("[retention]\nactivity_days = 99999\n", "retention.activity_days: must be at most 36500"),
        ("[retention]\nactivity = 30\n", "unknown field `activity`"),
        ("[portal]\nlisten = \"port eighty\"\n", "portal.listen: `port eighty` is not an address and port"),
        ("[portal]\naddress = \"gateway\"\n", "invalid IPv4 address syntax"),
        ("[training]\nremind_every_days = 0\n", "training.remind_every_days: must be from 1 to 90"),
        ("[training]\nremind = true\n", "unknown field `remind`"),
        ("[portal]\nhour = 8\n", "unknown field `hour`"),
        (
            "[[networks]]\ncidr = \"10.0.0.0/8\"\ngroup = \"guests\"\nlogin = \"captive\"\n",
            "unknown variant `captive`",
        ),
    ] {
        check_err(text, want);
    }
}

#[test]
fn portal_networks_and_their_settings() {
    let config = Config::from_toml(
        "[[networks]]\ncidr = \"10.99.0.0/24\"\ngroup = \"guests\"\nlogin = \"portal\"\n\
         [portal]\nallow = [\"childline.org.uk\", \"samaritans.org.\"]\nhours = 4\n",
    )
    .unwrap();
    assert_eq!(config.networks()[0].login, LoginMode::Portal);
    assert_eq!(config.portal.hours, 4);
    assert_eq!(config.portal.allow.len(), 2);
    assert_eq!(Config::from_toml("").unwrap().portal.hours, 8);
}

#[test]
fn single_hosts_and_ports_are_accepted() {
    let config = Config::from_toml(
        "[[networks]]\ncidr = \"192.168.4.7\"\ngroup = \"guests\"\n[dns]\nupstreams = [\"[::1]:5300\", \"10.0.0.1\"]\n",
    )
    .unwrap();
    assert_eq!(config.networks()[0].net.to_string(), "192.168.4.7/32");
    assert_eq!(config.dns_upstreams()[0].to_string(), "[::1]:5300");
    assert_eq!(config.dns_upstreams()[1].to_string(), "10.0.0.1:53");
}

#[test]
fn serve_needs_a_group_for_the_default_networks() {
    let config = Config::from_toml("[groups.staff]\n").unwrap();
    let e = config.validate_serve().unwrap_err().to_string();
    assert!(
        e.contains("say which client networks may use Lookout"),
        "{e}"
    );
    assert!(Config::default().validate_serve().is_ok());
}

#[test]
fn monitoring_mistakes_name_key_and_line() {
    let table = [
        (
            "[alerts]\ndefault_threshold = \"urgent\"\n",
            "line 2: alerts.default_threshold: `urgent` is not advisory, caution, danger or off",
        ),
        (
            "[alerts.thresholds]\nlearners-u18 = \"hi\"\n",
            "line 2: alerts.thresholds.learners-u18",
        ),
        (
            "[alerts.thresholds]\nlerners = \"danger\"\n",
            "no group `lerners` is defined",
        ),
        (
            "[alerts]\ngroup_window_minutes = 0\n",
            "alerts.group_window_minutes",
        ),
        (
            "[alerts.email]\nserver = \"smtp\"\nfrom = \"a@b\"\nto = [\"c@d\"]\n",
            "line 2: alerts.email.server",
        ),
        (
            "[alerts.email]\nserver = \"smtp:25\"\ntls = \"ssl\"\nfrom = \"a@b\"\nto = [\"c@d\"]\n",
            "line 3: alerts.email.tls",
        ),
        (
            "[alerts.email]\nserver = \"smtp:25\"\nfrom = \"a@b\"\nto = [\"dsl team\"]\n",
            "`dsl team` is not an email address",
        ),
        (
            "[alerts.email]\nserver = \"smtp:25\"\nfrom = \"a@b\"\nto = []\n",
            "alerts.email.to",
        ),
        (
            "[alerts.webhook]\nurl = \"teams.example\"\n",
            "line 2: alerts.webhook.url",
        ),
        (
            "[alerts.digest]\nevery = \"hourly\"\n",
            "line 2: alerts.digest.every",
        ),
        (
            "[alerts.digest]\nat = \"7am\"\n",
            "line 2: alerts.digest.at",
        ),
        (
            "[console]\nlisten = \"everywhere\"\n",
            "line 2: console.listen",
        ),
        ("[scan]\nbuiltin = false\n", "risk detection has no phrases"),
        (
            "[[scan.e2guardian]]\nfile = \"w\"\ncategory = \"drgs\"\n",
            "line 3: scan.e2guardian[0].category",
        ),
        ("[alerts]\nemial = 1\n", "unknown field `emial`"),
        (
            "[scan.model]\nthreshold = 1.5\n",
            "line 2: scan.model.threshold: a score between 0 and 1",
        ),
        ("[scan.model]\ndanger = -0.1\n", "line 2: scan.model.danger"),
        (
            "[scan.model]\nthreshold = 0.3\nveto = 0.4\n",
            "line 3: scan.model.veto: must not be above scan.model.threshold",
        ),
        ("[scan.model]\ngate = 3.0\n", "line 2: scan.model.gate"),
        ("[scan.model]\nworkers = 0\n", "scan.model.workers"),
        ("[scan.model]\nqueue = 0\n", "scan.model.queue"),
        ("[scan.model]\nthreshold = \"high\"\n", "line 2, column 13"),
        ("[scan.model]\nmodel = 1\n", "unknown field `model`"),
    ];
    for (text, want) in table {
        check_err(text, want);
    }
    let ok = Config::from_toml(
        "[alerts.email]\nserver = \"smtp.college.ac.uk:587\"\nfrom = \"Lookout <l@c.ac.uk>\"\nto = [\"dsl@c.ac.uk\"]\n\
         [alerts.thresholds]\nstaff = \"danger\"\nguests = \"off\"\n",
    )
    .unwrap();
    assert_eq!(ok.alerts.email.unwrap().tls.get_ref(), "starttls");
    assert_eq!(parse_threshold("off"), Ok(None));
    assert_eq!(parse_hhmm("07:30"), Some(450));
    assert_eq!(parse_hhmm("24:00"), None);
}

#[test]
fn console_settings_and_their_mistakes() {
    let table = [
        ("", false),
        (
            "[console]\nurl = \"https://safeguarding.college.test\"\n",
            true,
        ),
        (
            "[console]\nurl = \"https://x.test\"\nsecure_cookies = false\n",
            false,
        ),
        ("[console]\nsecure_cookies = true\n", true),
    ];
    for (text, secure) in table {
        let c = Config::from_toml(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(c.console_secure_cookies(), secure, "{text}");
    }
    // Without `url`, links name the address the console listens on.
    let urls = [
        ("", "http://127.0.0.1:8080", true, false),
        (
            "[console]\nlisten = \"127.0.0.1:9443\"\n",
            "http://127.0.0.1:9443",
            false,
            false,
        ),
        (
            "[console]\nlisten = \"10.1.2.3:80\"\n",
            "http://10.1.2.3",
            false,
            false,
        ),
        (
            "[console]\nlisten = \"10.1.2.3\"\n",
            "http://10.1.2.3:8080",
            false,
            false,
        ),
        (
            "[console]\nlisten = \"[2001:db8::5]:8080\"\n",
            "http://[2001:db8::5]:8080",
            false,
            false,
        ),
        (
            "[console]\nlisten = \"10.1.2.3:443\"\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"\n",
            "https://10.1.2.3",
            false,
            false,
        ),
        (
            "[console]\nlisten = \"0.0.0.0:8080\"\n",
            "http://127.0.0.1:8080",
            false,
            true,
        ),
        (
            "[console]\nlisten = \"[::]:8080\"\n",
            "http://[::1]:8080",
            false,
            true,
        ),
        (
            "[console]\nlisten = \"0.0.0.0:8080\"\nurl = \"https://lookout.college.test\"\n",
            "https://lookout.college.test",
            false,
            false,
        ),
    ];
    for (text, url, default, local_only) in urls {
        let c = Config::from_toml(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(c.console.url, url, "{text}");
        assert_eq!(c.console.url_is_local_only(), local_only, "{text}");
        if default {
            assert_eq!(
                c.console.url,
                Config::default().console.url,
                "the default config agrees"
            );
        }
    }
    check_err("[console]\nidle_minutes = 0\n", "console.idle_minutes");
    check_err("[console]\nsession_hours = 1000\n", "console.session_hours");
    check_err("[console]\ncontact = [\"x\"]\n", "contact");
}

#[test]
fn directory_sign_in_settings_and_their_mistakes() {
    let base = "[groups.staff]\n[groups.learners]\n[ldap]\n";
    let ok = "url = \"ldaps://dc1.college.test\"\nbase_dn = \"DC=college,DC=test\"\n[[ldap.group]]\ndn = \"CN=Staff,DC=college,DC=test\"\ngroup = \"staff\"\n";
    let mut config = Config::from_toml(&format!("{base}{ok}")).expect("valid");
    config.resolve_paths(Path::new("/etc/lookout"));
    let l = config.ldap.as_ref().expect("ldap");
    assert_eq!(l.user_filter.get_ref(), "(sAMAccountName={username})");
    assert_eq!(l.timeout_secs, 5);
    // StartTLS, a loopback plain connection, a password file beside the configuration.
    let mut config = Config::from_toml(
        &format!("{base}url = \"ldap://dc1.college.test\"\nstarttls = true\nbase_dn = \"DC=x\"\nbind_dn = \"CN=lookout,DC=x\"\nbind_password_file = \"ldap-password\"\ndefault_group = \"learners\"\n"),
    )
    .expect("starttls");
    config.resolve_paths(Path::new("/etc/lookout"));
    assert_eq!(
        config.ldap.unwrap().bind_password_file.unwrap().get_ref(),
        Path::new("/etc/lookout/ldap-password")
    );
    Config::from_toml(&format!(
        "{base}url = \"ldap://127.0.0.1:3899\"\nbase_dn = \"DC=x\"\ndefault_group = \"learners\"\n"
    ))
    .expect("loopback");
    let table = [
        ("url = \"ldap://dc1.college.test\"\nbase_dn = \"DC=x\"\ndefault_group = \"staff\"\n", "line 4: ldap.url: passwords would cross the network unencrypted"),
        ("url = \"http://dc1\"\nbase_dn = \"DC=x\"\ndefault_group = \"staff\"\n", "`http:` is not a directory address"),
        ("url = \"ldaps://dc1\"\nstarttls = true\nbase_dn = \"DC=x\"\ndefault_group = \"staff\"\n", "ldap.starttls: ldaps:// is already encrypted"),
        ("url = \"ldaps://dc1\"\nbase_dn = \"DC=x\"\nuser_filter = \"uid=x\"\ndefault_group = \"staff\"\n", "line 6: ldap.user_filter: a filter in parentheses with {username}"),
        ("url = \"ldaps://dc1\"\nbase_dn = \"DC=x\"\nbind_password_file = \"p\"\ndefault_group = \"staff\"\n", "line 6: ldap.bind_password_file: the password is for the service account"),
        ("url = \"ldaps://dc1\"\nbase_dn = \"DC=x\"\ndefault_group = \"teachers\"\n", "line 6: ldap.default_group: no group `teachers` is configured"),
        ("url = \"ldaps://dc1\"\nbase_dn = \"DC=x\"\n[[ldap.group]]\ndn = \"CN=x\"\ngroup = \"staf\"\n", "line 8: ldap.group[0].group: no group `staf` is configured"),
        ("url = \"ldaps://dc1\"\nbase_dn = \"DC=x\"\n", "ldap: map at least one directory group"),
        ("url = \"ldaps://dc1\"\nbase_dn = \"DC=x\"\ndefault_group = \"staff\"\ntimeout_secs = 0\n", "ldap.timeout_secs: between 1 and 60"),
        ("url = \"ldaps://dc1\"\n", "missing field `base_dn`"),
    ];
    for (text, want) in table {
        check_err(&format!("{base}{text}"), want);
    }
}

#[test]
fn openid_connect_settings_and_their_mistakes() {
    let base = "[groups.staff]\n[groups.learners]\n[console]\nurl = \"https://lookout.college.test\"\n[oidc]\n";
    let ok = "issuer = \"https://login.microsoftonline.com/0000-tenant/v2.0\"\nclient_id = \"abc\"\nclient_secret_file = \"oidc-secret\"\n[[oidc.role]]\nvalue = \"g-dsl\"\nrole = \"dsl\"\n[[oidc.group]]\nclaim = \"hd\"\nvalue = \"college.test\"\ngroup = \"staff\"\n";
    let mut config = Config::from_toml(&format!("{base}{ok}")).expect("valid");
    config.resolve_paths(Path::new("/etc/lookout"));
    let o = config.oidc.as_ref().expect("oidc");
    assert_eq!(o.roles[0].claim, "groups");
    assert_eq!(o.groups[0].claim, "hd");
    assert!(o.trust_provider_mfa);
    assert_eq!(
        o.client_secret_file.as_ref().unwrap().get_ref(),
        Path::new("/etc/lookout/oidc-secret")
    );
    // A provider on this machine may be plain http (tests, a local IdP).
    Config::from_toml(
        "[groups.staff]\n[oidc]\nissuer = \"http://127.0.0.1:8080\"\nclient_id = \"x\"\n[[oidc.role]]\nvalue = \"v\"\nrole = \"staff\"\n",
    )
    .expect("loopback");
    let role = "[[oidc.role]]\nvalue = \"v\"\nrole = \"staff\"\n";
    let table = [
        (format!("issuer = \"http://login.example.test\"\nclient_id = \"x\"\n{role}"), "line 6: oidc.issuer: the issuer must be an https:// address"),
        (format!("issuer = \"https://login.microsoftonline.com/common/v2.0\"\nclient_id = \"x\"\n{role}"), "oidc.issuer: name one tenant"),
        (format!("issuer = \"https://id.example.test\"\nclient_id = \" \"\n{role}"), "line 7: oidc.client_id"),
        ("issuer = \"https://id.example.test\"\nclient_id = \"x\"\n".to_owned(), "oidc: map at least one claim value to a console role"),
        ("issuer = \"https://id.example.test\"\nclient_id = \"x\"\n[[oidc.role]]\nvalue = \"v\"\nrole = \"boss\"\n".to_owned(), "line 10: oidc.role[0].role: "),
        ("issuer = \"https://id.example.test\"\nclient_id = \"x\"\n[[oidc.role]]\nvalue = \"v\"\n".to_owned(), "oidc.role[0]: set role"),
        (format!("issuer = \"https://id.example.test\"\nclient_id = \"x\"\n{role}[[oidc.group]]\nvalue = \"v\"\ngroup = \"teachers\"\n"), "line 13: oidc.group[0].group: no group `teachers` is configured"),
        (format!("issuer = \"https://id.example.test\"\nclient_id = \"x\"\ndefault_group = \"nobody\"\n{role}"), "oidc.default_group: no group `nobody`"),
        (format!("issuer = \"https://id.example.test\"\nclient_id = \"x\"\ntimeout_secs = 0\n{role}"), "oidc.timeout_secs: between 1 and 60"),
        (format!("issuer = \"https://id.example.test\"\nclient_id = \"x\"\nsecret = \"x\"\n{role}"), "unknown field `secret`"),
    ];
    for (text, want) in &table {
        check_err(&format!("{base}{text}"), want);
    }
    check_err(
        &format!("[groups.staff]\n[console]\nenabled = false\n[oidc]\nissuer = \"https://id.example.test\"\nclient_id = \"x\"\nportal = true\n{role}"),
        "oidc.portal: the portal's sign-in through the provider runs on the console",
    );
    // The console must be reached over HTTPS for the provider to send people back to it.
    check_err(
        &format!("[groups.staff]\n[console]\nurl = \"http://lookout.college.test\"\n[oidc]\nissuer = \"https://id.example.test\"\nclient_id = \"x\"\n{role}"),
        "console.url: `http://lookout.college.test`: OpenID Connect sign-in sends people back",
    );
}

/// `[store]`: a PostgreSQL address with a database name, its password in the URL or in a file
/// (not both); anything else is named with its key and line.
#[test]
fn store_urls_are_checked() {
    let config = Config::from_toml(
        "[store]\nurl = \"postgres://lookout@db.college.test/lookout?sslmode=verify-full\"\npassword_file = \"db-password\"\n",
    )
    .expect("a PostgreSQL address");
    assert_eq!(
        config.store.url.unwrap().get_ref(),
        "postgres://lookout@db.college.test/lookout?sslmode=verify-full"
    );
    assert!(
        Config::from_toml("").unwrap().store.url.is_none(),
        "SQLite by default"
    );
    let mut relative = Config::from_toml(
        "[store]\nurl = \"postgresql://lookout@db/lookout\"\npassword_file = \"db-password\"\n",
    )
    .unwrap();
    relative.resolve_paths(std::path::Path::new("/etc/lookout"));
    assert_eq!(
        relative.store.password_file.unwrap().get_ref(),
        std::path::Path::new("/etc/lookout/db-password")
    );
    let table = [
        (
            "[store]\nurl = \"mysql://db/lookout\"\n",
            "line 2: store.url: `mysql:` is not a PostgreSQL address",
        ),
        (
            "[store]\nurl = \"sqlite:///var/lib/lookout/lookout.db\"\n",
            "leave store.url out for SQLite",
        ),
        (
            "[store]\nurl = \"db.college.test\"\n",
            "line 2: store.url: not a database address",
        ),
        (
            "[store]\nurl = \"postgres://lookout@db.college.test\"\n",
            "line 2: store.url: name the database",
        ),
        (
            "[store]\nurl = \"postgres://lookout:secret@db/lookout\"\npassword_file = \"p\"\n",
            "the password is both in the address and in store.password_file",
        ),
        (
            "[store]\npassword_file = \"p\"\n",
            "line 2: store.password_file: the password is for a PostgreSQL server",
        ),
        (
            "[store]\nadress = \"postgres://db/lookout\"\n",
            "unknown field `adress`",
        ),
    ];
    for (text, want) in table {
        check_err(text, want);
    }
}
