//! Criterion benchmark of the DNS engine on the full shared lists: queries judged per second
//! (decode, normalise, look up, decide, encode a block answer or an upstream question).

use std::net::Ipv4Addr;
use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use lookout_config::Config;
use lookout_dns::{handle, BlockedAnswer, Context, Outcome, Settings};
use lookout_policy::{LocalTime, Weekday};

fn bench(c: &mut Criterion) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    if !root.join("../shared/data/ut1").is_dir() {
        eprintln!("SKIPPED: ../shared/data is missing");
        return;
    }
    let config = Config::load(&root.join("examples/shared-data.toml")).expect("config");
    let loaded = lookout_loader::load(&config.lists).expect("lists");
    let policy = config.policy().expect("policy");
    let settings = Settings {
        blocked: BlockedAnswer::BlockPage {
            ipv4: Ipv4Addr::new(192, 0, 2, 80),
            ipv6: None,
        },
        ttl: 60,
        rebind_protection: true,
        portal: None,
        internal_domains: Vec::new(),
    };
    let ctx = Context {
        policy: &policy,
        index: &loaded.index,
        group: policy.group_id("learners-u18").expect("group"),
        at: LocalTime {
            weekday: Weekday::Wed,
            minute: 600,
        },
        settings: &settings,
    };
    // Half listed names (blocked), half their unlisted neighbours (forwarded).
    let domains =
        std::fs::read_to_string(root.join("../shared/data/ut1/gambling/domains")).expect("list");
    let packets: Vec<Vec<u8>> = domains
        .lines()
        .take(5000)
        .enumerate()
        .map(|(i, d)| {
            let name = if i % 2 == 0 {
                format!("www.{d}.")
            } else {
                format!("not{d}.")
            };
            let mut m = Message::new(i as u16, MessageType::Query, OpCode::Query);
            m.add_query(Query::query(
                Name::from_ascii(&name).expect("name"),
                RecordType::A,
            ));
            m.to_vec().expect("encode")
        })
        .collect();
    let mut group = c.benchmark_group("dns");
    group.throughput(Throughput::Elements(packets.len() as u64));
    group.bench_function("handle", |b| {
        b.iter(|| {
            packets
                .iter()
                .map(|p| match handle(p, &ctx) {
                    Outcome::Respond { packet, .. } => packet.len(),
                    Outcome::Forward(pending) => pending.upstream_query(1).len(),
                    Outcome::Drop => 0,
                })
                .sum::<usize>()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
