//! The shared-data configuration and the request mixes of the `lists` benchmark, also read by
//! `examples/decide_requests.rs` (for `bench/decide-instructions.sh`), so that both measure the
//! same requests.

use std::path::PathBuf;

use lookout_config::Config;

/// `examples/shared-data.toml`, or `None` (said on standard error) without `../shared/data`.
pub(crate) fn config() -> Option<Config> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/shared-data.toml");
    if !PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/ut1")
        .is_dir()
    {
        eprintln!("SKIPPED: ../shared/data is missing");
        return None;
    }
    Some(Config::load(&path).unwrap_or_else(|e| panic!("{e}")))
}

/// A deterministic mix of 200,000 requests: a third listed hosts (with subdomains and paths),
/// a third unlisted neighbours of listed hosts, a third URL-entry hits and misses.
pub(crate) fn requests() -> Vec<String> {
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data");
    let read = |rel: &str| -> Vec<String> {
        std::fs::read_to_string(data.join(rel))
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| l.trim_start_matches("0.0.0.0 ").to_owned())
            .collect()
    };
    let domains: Vec<String> = [
        "ut1/gambling/domains",
        "ut1/malware/domains",
        "blocklistproject/domains-format/tracking-nl.txt",
    ]
    .iter()
    .flat_map(|r| read(r))
    .collect();
    let urls = read("ut1/phishing/urls");
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut rand = move |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n.max(1) as u64) as usize
    };
    (0..200_000)
        .map(|i| match i % 3 {
            0 => format!("http://www.{}/index.html", domains[rand(domains.len())]),
            1 => format!(
                "https://un{}listed.example/path/to/page?q=1",
                domains[rand(domains.len())]
            ),
            _ => format!("http://{}/x.php", urls[rand(urls.len())]),
        })
        .collect()
}

/// 200,000 requests drawn from the first 20,000 of `pool` with Zipf-like popularity (the k-th
/// most popular is requested in proportion to 1/k), as web traffic is: a few hosts get most
/// requests.
pub(crate) fn zipf(pool: &[String]) -> Vec<String> {
    let n = pool.len().min(20_000);
    let weights: Vec<f64> = (1..=n).map(|k| 1.0 / k as f64).collect();
    let total: f64 = weights.iter().sum();
    let mut cumulative = Vec::with_capacity(n);
    let mut acc = 0.0;
    for w in &weights {
        acc += w / total;
        cumulative.push(acc);
    }
    let mut state = 0x2545_f491_4f6c_dd1du64;
    (0..200_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let r = (state >> 11) as f64 / (1u64 << 53) as f64;
            pool[cumulative.partition_point(|&c| c < r).min(n - 1)].clone()
        })
        .collect()
}
