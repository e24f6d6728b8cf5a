//! Any bytes as a DNS query, and any bytes as the upstream's reply: the engine never panics,
//! and whatever it sends back is a well-formed DNS response.
#![no_main]

use std::net::Ipv4Addr;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use lookout_dns::{cache_ttl, fit_udp, handle, refuse, BlockedAnswer, Context, Outcome, Settings};
use lookout_lists::{
    Category, CategorySet, EntryKind, EntrySink, Index, IndexBuilder, NormUrl, SourceInfo,
};
use lookout_policy::{Group, GroupSpec, LocalTime, Policy, Weekday};

fn world() -> &'static (Policy, Index) {
    static WORLD: OnceLock<(Policy, Index)> = OnceLock::new();
    WORLD.get_or_init(|| {
        let mut builder = IndexBuilder::new();
        let labels = CategorySet::one(Category::GAMBLING).bits();
        let id = builder
            .add_source(SourceInfo {
                name: "g".into(),
                labels,
            })
            .unwrap();
        let mut sink = EntrySink::new();
        sink.add(
            id,
            EntryKind::Block,
            &NormUrl::parse("casino.example").unwrap(),
        );
        let spec = GroupSpec {
            name: "g".into(),
            block: CategorySet::one(Category::GAMBLING),
            safe_search: true,
            youtube_restricted: true,
            ..GroupSpec::default()
        };
        (
            Policy::new(vec![Group::new(spec).unwrap()]).unwrap(),
            builder.build(vec![sink]),
        )
    })
}

/// A response carries at least a header with the response bit set.
fn assert_response(packet: &[u8]) {
    assert!(
        packet.len() >= 12 && packet[2] & 0x80 != 0,
        "not a DNS response: {packet:?}"
    );
}

fuzz_target!(|data: &[u8]| {
    let (policy, index) = world();
    let settings = Settings {
        blocked: BlockedAnswer::BlockPage {
            ipv4: Ipv4Addr::new(192, 0, 2, 1),
            ipv6: None,
        },
        ttl: 60,
        rebind_protection: true,
        internal_domains: Vec::new(),
        // The gateway's own names are answered before any decision: fuzzed too.
        portal: Some(Ipv4Addr::new(10, 0, 0, 1)),
    };
    let ctx = Context {
        policy,
        index,
        group: policy.group_id("g").unwrap(),
        at: LocalTime {
            weekday: Weekday::Mon,
            minute: 0,
        },
        settings: &settings,
    };
    let split = data.first().map_or(0, |&b| b as usize).min(data.len());
    let (query, reply) = data.split_at(split);
    let _ = cache_ttl(reply);
    if let Outcome::Respond { packet, .. } = refuse(query) {
        assert_response(&packet);
    }
    match handle(query, &ctx) {
        Outcome::Respond { packet, .. } => {
            assert_response(&packet);
            let cut = fit_udp(packet, 512);
            assert!(cut.len() <= 512);
        }
        Outcome::Forward(pending) => {
            let _ = pending.upstream_query(1);
            let answer = pending.complete(reply).packet;
            assert_response(&answer);
            let cut = fit_udp(answer, 512);
            assert!(cut.is_empty() || (cut.len() <= 512 && cut[2] & 0x80 != 0));
            assert_response(&pending.servfail());
        }
        Outcome::Drop => {}
    }
});
