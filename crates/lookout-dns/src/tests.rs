//! The engine on real DNS messages (encoded and decoded by hickory-proto).

use std::net::{Ipv4Addr, Ipv6Addr};

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use lookout_lists::parse::{parse, Format};
use lookout_lists::{Category, CategorySet, EntrySink, Index, IndexBuilder, SourceInfo};
use lookout_policy::{Group, GroupSpec, LocalTime, Policy, Weekday};

use super::*;

const BLOCK_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 80);
const BLOCK_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x80);

struct World {
    policy: Policy,
    index: Index,
}

fn world() -> World {
    let mut builder = IndexBuilder::new();
    let mut sink = EntrySink::new();
    let lists: &[(&str, Category, &str)] = &[
        ("gambling", Category::GAMBLING, "casino.example\n"),
        ("iwf", Category::ILLEGAL_CHILD_ABUSE, "abuse.example\n"),
        ("social", Category::SOCIAL_MEDIA, "social.example\n"),
    ];
    for &(name, category, text) in lists {
        let labels = CategorySet::one(category).bits();
        let id = builder
            .add_source(SourceInfo {
                name: name.into(),
                labels,
            })
            .unwrap();
        parse(Format::Domains, text.as_bytes(), |k, u| sink.add(id, k, u));
    }
    let learners = GroupSpec {
        name: "learners".into(),
        block: CategorySet::one(Category::GAMBLING),
        warn: CategorySet::one(Category::SOCIAL_MEDIA),
        safe_search: true,
        youtube_restricted: true,
        ..GroupSpec::default()
    };
    let it = GroupSpec {
        name: "it-staff".into(),
        ..GroupSpec::default()
    };
    let policy = Policy::new(vec![Group::new(learners).unwrap(), Group::new(it).unwrap()]).unwrap();
    World {
        policy,
        index: builder.build(vec![sink]),
    }
}

const AT: LocalTime = LocalTime {
    weekday: Weekday::Tue,
    minute: 600,
};

fn run(world: &World, group: &str, settings: &Settings, packet: &[u8]) -> Outcome {
    let ctx = Context {
        policy: &world.policy,
        index: &world.index,
        group: world.policy.group_id(group).unwrap(),
        at: AT,
        settings,
    };
    handle(packet, &ctx)
}

fn query(name: &str, qtype: RecordType) -> Vec<u8> {
    let mut m = Message::new(0x1234, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    m.to_vec().unwrap()
}

const PAGE: Settings = Settings {
    blocked: BlockedAnswer::BlockPage {
        ipv4: BLOCK_V4,
        ipv6: Some(BLOCK_V6),
    },
    ttl: 60,
    rebind_protection: true,
    portal: None,
    internal_domains: Vec::new(),
};
const PAGE_V4_ONLY: Settings = Settings {
    blocked: BlockedAnswer::BlockPage {
        ipv4: BLOCK_V4,
        ipv6: None,
    },
    ttl: 60,
    rebind_protection: true,
    portal: None,
    internal_domains: Vec::new(),
};
const NXDOMAIN: Settings = Settings {
    blocked: BlockedAnswer::NxDomain,
    ttl: 60,
    rebind_protection: true,
    portal: None,
    internal_domains: Vec::new(),
};

/// A response, summarised: `rcode answers...`.
fn summary(packet: &[u8]) -> String {
    let m = Message::from_vec(packet).expect("a valid response");
    assert_eq!(m.metadata.message_type, MessageType::Response);
    let mut out = format!("{:?}", m.metadata.response_code);
    for a in &m.answers {
        out.push_str(&format!(" {}={}", a.name, a.data));
    }
    out
}

fn respond(outcome: Outcome) -> (Vec<u8>, Option<Decision>) {
    match outcome {
        Outcome::Respond {
            packet, decision, ..
        } => (packet, decision),
        other => panic!("expected an answer, got {other:?}"),
    }
}

#[test]
fn blocked_names_get_the_block_page_or_nxdomain() {
    let w = world();
    let rows: &[(&str, &Settings, &str, RecordType, &str)] = &[
        (
            "learners",
            &PAGE,
            "www.casino.example.",
            RecordType::A,
            "NoError www.casino.example.=192.0.2.80",
        ),
        (
            "learners",
            &PAGE,
            "casino.example.",
            RecordType::AAAA,
            "NoError casino.example.=2001:db8::80",
        ),
        (
            "learners",
            &PAGE_V4_ONLY,
            "casino.example.",
            RecordType::AAAA,
            "NoError",
        ),
        (
            "learners",
            &PAGE,
            "casino.example.",
            RecordType::MX,
            "NoError",
        ),
        (
            "learners",
            &NXDOMAIN,
            "casino.example.",
            RecordType::A,
            "NXDomain",
        ),
        // Warned categories cannot click through in DNS: answered like blocked ones.
        (
            "learners",
            &PAGE,
            "social.example.",
            RecordType::A,
            "NoError social.example.=192.0.2.80",
        ),
        // Illegal content is blocked for every group.
        (
            "it-staff",
            &PAGE,
            "abuse.example.",
            RecordType::A,
            "NoError abuse.example.=192.0.2.80",
        ),
        // Case and spelling do not matter.
        (
            "learners",
            &PAGE,
            "WWW.CASINO.EXAMPLE.",
            RecordType::A,
            "NoError WWW.CASINO.EXAMPLE.=192.0.2.80",
        ),
    ];
    for &(group, settings, name, qtype, want) in rows {
        let (packet, decision) = respond(run(&w, group, settings, &query(name, qtype)));
        assert_eq!(summary(&packet), want, "{group} {name} {qtype}");
        let m = Message::from_vec(&packet).unwrap();
        assert_eq!(m.metadata.id, 0x1234);
        assert!(m.metadata.recursion_available && m.metadata.recursion_desired);
        assert_eq!(m.queries.len(), 1);
        assert_ne!(decision.expect("a decision").action, Action::Allow);
    }
}

/// A reply from the upstream resolver to `query_bytes`, answering with `answers`.
fn upstream_reply(query_bytes: &[u8], code: ResponseCode, answers: &[(&str, Ipv4Addr)]) -> Vec<u8> {
    let q = Message::from_vec(query_bytes).unwrap();
    let mut r = Message::response(q.metadata.id, OpCode::Query);
    r.metadata.response_code = code;
    r.add_queries(q.queries.iter().cloned());
    for &(name, ip) in answers {
        r.add_answer(Record::from_rdata(
            Name::from_ascii(name).unwrap(),
            300,
            RData::A(A(ip)),
        ));
    }
    r.to_vec().unwrap()
}

fn forward(outcome: Outcome) -> Pending {
    match outcome {
        Outcome::Forward(p) => *p,
        other => panic!("expected a forward, got {other:?}"),
    }
}

/// What `group` asking for `name` (type `qtype`) with the block page answer sends upstream.
fn forwarded(w: &World, group: &str, name: &str, qtype: RecordType) -> Pending {
    forward(run(w, group, &PAGE, &query(name, qtype)))
}

#[test]
fn allowed_names_are_forwarded_and_answered() {
    let w = world();
    let pending = forwarded(&w, "learners", "bbc.co.uk.", RecordType::A);
    assert_eq!(pending.decision.action, Action::Allow);
    let upstream = pending.upstream_query(0xbeef);
    let q = Message::from_vec(&upstream).unwrap();
    assert_eq!(q.metadata.id, 0xbeef);
    assert_eq!(q.queries[0].name().to_ascii(), "bbc.co.uk.");
    let ip = Ipv4Addr::new(203, 0, 113, 7);
    let answer = pending
        .complete(&upstream_reply(
            &upstream,
            ResponseCode::NoError,
            &[("bbc.co.uk.", ip)],
        ))
        .packet;
    assert_eq!(summary(&answer), "NoError bbc.co.uk.=203.0.113.7");
    assert_eq!(
        Message::from_vec(&answer).unwrap().metadata.id,
        0x1234,
        "the client's id, not upstream's"
    );
    // Upstream's NXDOMAIN passes through.
    let answer = pending
        .complete(&upstream_reply(&upstream, ResponseCode::NXDomain, &[]))
        .packet;
    assert_eq!(summary(&answer), "NXDomain");
}

#[test]
fn safe_search_is_a_cname_chain() {
    let w = world();
    let pending = forwarded(&w, "learners", "www.google.co.uk.", RecordType::A);
    let upstream = pending.upstream_query(7);
    assert_eq!(
        Message::from_vec(&upstream).unwrap().queries[0]
            .name()
            .to_ascii(),
        "forcesafesearch.google.com."
    );
    let ip = Ipv4Addr::new(216, 239, 38, 120);
    let answer = pending
        .complete(&upstream_reply(
            &upstream,
            ResponseCode::NoError,
            &[("forcesafesearch.google.com.", ip)],
        ))
        .packet;
    assert_eq!(
        summary(&answer),
        "NoError www.google.co.uk.=forcesafesearch.google.com. forcesafesearch.google.com.=216.239.38.120"
    );
    let pending = forwarded(&w, "learners", "m.youtube.com.", RecordType::AAAA);
    assert_eq!(
        pending.upstream_question().0.to_ascii(),
        "restrict.youtube.com."
    );
    // IT staff have safe search off: the name goes upstream unchanged.
    let pending = forwarded(&w, "it-staff", "www.google.com.", RecordType::A);
    assert_eq!(pending.upstream_question().0.to_ascii(), "www.google.com.");
}

#[test]
fn bad_upstream_replies_become_servfail() {
    let w = world();
    let pending = forwarded(&w, "learners", "ok.example.", RecordType::A);
    assert_eq!(summary(&pending.complete(b"garbage").packet), "ServFail");
    assert_eq!(summary(&pending.complete(&[]).packet), "ServFail");
    let other = query("other.example.", RecordType::A);
    let reply = upstream_reply(
        &other,
        ResponseCode::NoError,
        &[("other.example.", Ipv4Addr::LOCALHOST)],
    );
    assert_eq!(
        summary(&pending.complete(&reply).packet),
        "ServFail",
        "a reply to another question"
    );
    assert_eq!(summary(&pending.servfail()), "ServFail");
}

#[test]
fn hostile_packets_are_answered_or_dropped_never_trusted() {
    let w = world();
    let outcome = |packet: &[u8]| run(&w, "learners", &PAGE, packet);
    assert!(matches!(outcome(&[]), Outcome::Drop));
    assert!(
        matches!(outcome(&[0x12, 0x34, 0, 0, 0]), Outcome::Drop),
        "shorter than a header"
    );
    // A header promising a question that is not there: FORMERR with the same id.
    let mut truncated = query("casino.example.", RecordType::A);
    truncated.truncate(14);
    let (packet, decision) = respond(outcome(&truncated));
    assert_eq!(summary(&packet), "FormErr");
    assert_eq!(Message::from_vec(&packet).unwrap().metadata.id, 0x1234);
    assert!(decision.is_none());
    // A response sent to us is not answered (no ping-pong between servers).
    let mut response = query("a.example.", RecordType::A);
    response[2] |= 0x80;
    assert!(matches!(outcome(&response), Outcome::Drop));
    // Two questions: FORMERR.
    let mut two = Message::new(9, MessageType::Query, OpCode::Query);
    two.add_query(Query::query(
        Name::from_ascii("a.example.").unwrap(),
        RecordType::A,
    ));
    two.add_query(Query::query(
        Name::from_ascii("casino.example.").unwrap(),
        RecordType::A,
    ));
    assert_eq!(
        summary(&respond(outcome(&two.to_vec().unwrap())).0),
        "FormErr"
    );
    // Other operations: NOTIMP.
    let mut status = Message::new(9, MessageType::Query, OpCode::Status);
    status.add_query(Query::query(
        Name::from_ascii("a.example.").unwrap(),
        RecordType::A,
    ));
    assert_eq!(
        summary(&respond(outcome(&status.to_vec().unwrap())).0),
        "NotImp"
    );
}

#[test]
fn refusal_and_truncation() {
    let (packet, _) = respond(refuse(&query("a.example.", RecordType::A)));
    assert_eq!(summary(&packet), "Refused");
    assert_eq!(Message::from_vec(&packet).unwrap().metadata.id, 0x1234);
    assert!(matches!(refuse(&[1, 2, 3]), Outcome::Drop));

    let w = world();
    let pending = forwarded(&w, "learners", "big.example.", RecordType::A);
    let upstream = pending.upstream_query(1);
    let many: Vec<(&str, Ipv4Addr)> = (0..60)
        .map(|i| ("big.example.", Ipv4Addr::new(203, 0, 113, i)))
        .collect();
    let full = pending
        .complete(&upstream_reply(&upstream, ResponseCode::NoError, &many))
        .packet;
    assert!(full.len() > 512);
    let cut = fit_udp(full.clone(), 512);
    assert!(cut.len() <= 512);
    let m = Message::from_vec(&cut).unwrap();
    assert!(m.metadata.truncation);
    assert_eq!(m.queries.len(), 1);
    assert_eq!(fit_udp(full.clone(), 4096), full);
}

#[test]
fn cache_lifetimes() {
    let q = query("a.example.", RecordType::A);
    let ip = Ipv4Addr::new(192, 0, 2, 9);
    assert_eq!(
        cache_ttl(&upstream_reply(
            &q,
            ResponseCode::NoError,
            &[("a.example.", ip)]
        )),
        Some(300)
    );
    assert_eq!(
        cache_ttl(&upstream_reply(&q, ResponseCode::NXDomain, &[])),
        Some(60)
    );
    assert_eq!(
        cache_ttl(&upstream_reply(&q, ResponseCode::NoError, &[])),
        Some(60)
    );
    assert_eq!(
        cache_ttl(&upstream_reply(&q, ResponseCode::ServFail, &[])),
        None
    );
    assert_eq!(cache_ttl(b"junk"), None);
}

#[test]
fn rebinding_answers_lose_internal_addresses_for_public_names() {
    let w = world();
    let own = Settings {
        internal_domains: vec!["college.ac.uk".into()],
        ..PAGE
    };
    let off = Settings {
        rebind_protection: false,
        portal: None,
        ..PAGE
    };
    let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
    // (settings, name asked, upstream's addresses, answer summary, withheld)
    type Row<'a> = (&'a Settings, &'a str, &'a [&'a str], &'a str, &'a [&'a str]);
    let rows: &[Row] = &[
        (
            &PAGE,
            "www.rebind.test.",
            &["10.0.0.5"],
            "NoError",
            &["10.0.0.5"],
        ),
        (
            &PAGE,
            "www.rebind.test.",
            &["127.0.0.1"],
            "NoError",
            &["127.0.0.1"],
        ),
        (
            &PAGE,
            "www.rebind.test.",
            &["169.254.169.254"],
            "NoError",
            &["169.254.169.254"],
        ),
        (
            &PAGE,
            "www.rebind.test.",
            &["0.0.0.0"],
            "NoError",
            &["0.0.0.0"],
        ),
        (
            &PAGE,
            "www.rebind.test.",
            &["203.0.113.7", "192.168.1.1"],
            "NoError www.rebind.test.=203.0.113.7",
            &["192.168.1.1"],
        ),
        (
            &PAGE,
            "bbc.co.uk.",
            &["203.0.113.7"],
            "NoError bbc.co.uk.=203.0.113.7",
            &[],
        ),
        // Names of private use keep their internal addresses.
        (
            &PAGE,
            "moodle.college.internal.",
            &["10.0.0.5"],
            "NoError moodle.college.internal.=10.0.0.5",
            &[],
        ),
        (
            &PAGE,
            "printer.",
            &["10.0.0.9"],
            "NoError printer.=10.0.0.9",
            &[],
        ),
        (
            &PAGE,
            "nas.home.arpa.",
            &["192.168.1.2"],
            "NoError nas.home.arpa.=192.168.1.2",
            &[],
        ),
        // The organisation's own domain, when configured, and only under it.
        (
            &PAGE,
            "moodle.college.ac.uk.",
            &["10.0.0.5"],
            "NoError",
            &["10.0.0.5"],
        ),
        (
            &own,
            "moodle.college.ac.uk.",
            &["10.0.0.5"],
            "NoError moodle.college.ac.uk.=10.0.0.5",
            &[],
        ),
        (
            &own,
            "college.ac.uk.",
            &["10.0.0.5"],
            "NoError college.ac.uk.=10.0.0.5",
            &[],
        ),
        (
            &own,
            "notcollege.ac.uk.",
            &["10.0.0.5"],
            "NoError",
            &["10.0.0.5"],
        ),
        // Off: passed on as the upstream gave them.
        (
            &off,
            "www.rebind.test.",
            &["10.0.0.5"],
            "NoError www.rebind.test.=10.0.0.5",
            &[],
        ),
    ];
    for &(settings, name, addrs, want, withheld) in rows {
        let pending = forward(run(&w, "learners", settings, &query(name, RecordType::A)));
        let upstream = pending.upstream_query(1);
        let answers: Vec<(&str, Ipv4Addr)> = addrs.iter().map(|a| (name, ip(a))).collect();
        let reply = upstream_reply(&upstream, ResponseCode::NoError, &answers);
        let done = pending.complete(&reply);
        assert_eq!(summary(&done.packet), want, "{name} {addrs:?}");
        let got: Vec<String> = done.withheld.iter().map(|a| a.to_string()).collect();
        assert_eq!(got, withheld, "{name} {addrs:?}");
    }
}

#[test]
fn the_gateways_own_names_are_answered_with_its_address_when_set() {
    let w = world();
    let gateway = Ipv4Addr::new(10, 0, 0, 1);
    let with = Settings {
        portal: Some(gateway),
        ..NXDOMAIN
    };
    let rows: &[(&str, RecordType, &str)] = &[
        (
            "lookout.invalid.",
            RecordType::A,
            "NoError lookout.invalid.=10.0.0.1",
        ),
        (
            "LOOKOUT.INVALID.",
            RecordType::A,
            "NoError LOOKOUT.INVALID.=10.0.0.1",
        ),
        ("wpad.", RecordType::A, "NoError wpad.=10.0.0.1"),
        (
            "wpad.college.lan.",
            RecordType::A,
            "NoError wpad.college.lan.=10.0.0.1",
        ),
        (
            "WPAD.college.ac.uk.",
            RecordType::A,
            "NoError WPAD.college.ac.uk.=10.0.0.1",
        ),
        // No IPv6 address for the gateway: "no such record", so the browser uses IPv4.
        ("wpad.college.lan.", RecordType::AAAA, "NoError"),
    ];
    for &(name, qtype, want) in rows {
        for group in ["learners", "it-staff"] {
            let (packet, decision) = respond(run(&w, group, &with, &query(name, qtype)));
            assert_eq!(summary(&packet), want, "{group} {name} {qtype}");
            assert!(decision.is_none(), "not a filtering decision");
        }
    }
    // Names that only look alike are filtered as usual; without the setting nothing changes.
    for (settings, name) in [
        (&with, "wpadx.college.lan."),
        (&with, "notwpad.college.lan."),
        (&with, "lookout.invalid.example."),
        (&NXDOMAIN, "wpad.college.lan."),
        (&NXDOMAIN, "lookout.invalid."),
    ] {
        assert!(
            matches!(
                run(&w, "learners", settings, &query(name, RecordType::A)),
                Outcome::Forward(_)
            ),
            "{name}"
        );
    }
}

/// A cached reply's records lose the seconds it was kept, answers and authorities alike, and
/// stop at 0; the client's id and question are the same at any age.
#[test]
fn cached_replies_count_their_ttls_down() {
    use hickory_proto::rr::rdata::SOA;
    let w = world();
    let pending = forwarded(&w, "learners", "bbc.co.uk.", RecordType::A);
    let upstream = pending.upstream_query(9);
    let mut reply = Message::from_vec(&upstream_reply(
        &upstream,
        ResponseCode::NoError,
        &[("bbc.co.uk.", Ipv4Addr::new(203, 0, 113, 7))],
    ))
    .unwrap();
    let zone = Name::from_ascii("co.uk.").unwrap();
    reply.add_authority(Record::from_rdata(
        zone.clone(),
        50,
        RData::SOA(SOA::new(zone.clone(), zone, 1, 3600, 600, 86400, 60)),
    ));
    let reply = reply.to_vec().unwrap();
    // (age, answer TTL, authority TTL); the answer was given with 300 and 50.
    for (age, answer_ttl, authority_ttl) in [
        (0, 300, 50),
        (1, 299, 49),
        (50, 250, 0),
        (299, 1, 0),
        (300, 0, 0),
        (u32::MAX, 0, 0),
    ] {
        let done = pending.complete_aged(&reply, age);
        let m = Message::from_vec(&done.packet).unwrap();
        assert_eq!(
            summary(&done.packet),
            "NoError bbc.co.uk.=203.0.113.7",
            "{age}"
        );
        assert_eq!(m.metadata.id, 0x1234, "{age}");
        assert_eq!(m.answers[0].ttl, answer_ttl, "age {age}: answer");
        assert_eq!(m.authorities[0].ttl, authority_ttl, "age {age}: authority");
    }
    assert_eq!(pending.complete(&reply), pending.complete_aged(&reply, 0));
}
