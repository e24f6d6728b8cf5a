//! Normalises and decides one of the `lists` benchmark's request mixes (`uniform` or `zipf`,
//! as `benches/lists.rs` builds them), a given number of passes, for
//! `bench/decide-instructions.sh` to count the instructions of under callgrind: a fixed amount
//! of work, where criterion runs as many iterations as fit in its time.
//!
//!     cargo run --release -p lookout-loader --example decide_requests -- uniform 2

use lookout_lists::{Index, NormUrl};
use lookout_policy::{Action, GroupId, LocalTime, Policy, Weekday};

#[path = "../benches/requests/mod.rs"]
mod requests;

/// As the bench and the `lookout` binary allocate.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// The decisions counted (the script counts this function only): every request, `passes`
/// times, as the bench's `normalise+decide` does once an iteration.
#[inline(never)]
fn counted(
    policy: &Policy,
    index: &Index,
    group: GroupId,
    requests: &[String],
    passes: usize,
) -> usize {
    let at = LocalTime {
        weekday: Weekday::Wed,
        minute: 600,
    };
    let mut url = NormUrl::default();
    let mut blocked = 0;
    for _ in 0..passes {
        for r in requests {
            if url.parse_into(r).is_ok() {
                let d = policy.decide(index, group, &url, at);
                blocked += usize::from(d.action == Action::Block);
            }
        }
    }
    blocked
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mix = args.next().unwrap_or_default();
    let passes: usize = args.next().and_then(|p| p.parse().ok()).unwrap_or(2);
    let Some(config) = requests::config() else {
        std::process::exit(2);
    };
    let all = requests::requests();
    let requests = match mix.as_str() {
        "uniform" => all,
        "zipf" => requests::zipf(&all),
        _ => {
            eprintln!("usage: decide_requests uniform|zipf [passes]");
            std::process::exit(2);
        }
    };
    let loaded = lookout_loader::load(&config.lists).expect("the shared lists load");
    let policy = config.policy().expect("the example policy");
    let learners = policy.group_id("learners-u18").expect("group learners-u18");
    let blocked = counted(&policy, &loaded.index, learners, &requests, passes);
    println!(
        "{mix}: {} requests, {passes} passes, {blocked} blocked",
        requests.len()
    );
}
