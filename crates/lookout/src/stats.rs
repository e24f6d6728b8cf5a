//! `lookout lists stats` and `lookout lists categories`.

use std::process::ExitCode;

use lookout_config::Config;
use lookout_lists::category::{blocklistproject_default, ut1_default, CATEGORIES};
use lookout_lists::Category;

pub(crate) fn run(config: &Config) -> anyhow::Result<ExitCode> {
    let loaded = crate::lists::load_available(&config.lists, None)?;
    let ix = &loaded.index;
    println!("Sources ({} files):", loaded.files.len());
    println!(
        "  {:<40} {:>8} {:>10} {:>9} {:>8}  categories",
        "list", "format", "entries", "rejected", "skipped"
    );
    for f in &loaded.files {
        let cats: Vec<&str> = f.categories.iter().map(|c| c.slug()).collect();
        println!(
            "  {:<40} {:>8} {:>10} {:>9} {:>8}  {}",
            f.name,
            f.format.name(),
            f.report.accepted,
            f.report.rejected,
            f.report.skipped,
            cats.join(",")
        );
    }
    let bad: Vec<_> = loaded
        .files
        .iter()
        .filter(|f| f.report.rejected > 0)
        .collect();
    if !bad.is_empty() {
        println!(
            "\nRejected lines (first {} per file):",
            lookout_lists::parse::REJECT_SAMPLES
        );
        for line in bad.iter().flat_map(|f| f.rejected_lines()) {
            println!("  {line}");
        }
    }
    println!("\nCategories (distinct entries):");
    println!("  {:<20} {:>10} {:>8}", "category", "hosts", "urls");
    for (c, hosts, urls) in loaded.category_counts() {
        println!("  {:<20} {:>10} {:>8}", c.slug(), hosts, urls);
    }
    let entries = ix.host_entries() + ix.path_entries();
    let bytes = ix.memory_bytes();
    println!("\nTotals:");
    println!("  entries accepted      {}", loaded.accepted());
    println!("  lines rejected        {}", loaded.rejected());
    println!("  distinct host entries {}", ix.host_entries());
    println!("  distinct URL entries  {}", ix.path_entries());
    println!("  source combinations   {}", ix.tag_count());
    println!(
        "  load time             {:.3} s",
        loaded.elapsed.as_secs_f64()
    );
    println!(
        "  index memory          {:.1} MiB ({:.1} bytes per distinct entry)",
        bytes as f64 / (1 << 20) as f64,
        if entries == 0 {
            0.0
        } else {
            bytes as f64 / entries as f64
        }
    );
    let cache = ix.host_cache_entries();
    if cache == 0 {
        println!(
            "  host cache            none (fewer than {} hosts, or [lists] host_cache = 0)",
            lookout_lists::HOST_CACHE_MIN_HOSTS
        );
    } else {
        println!(
            "  host cache            {cache} hosts ({:.1} MiB, in the index memory above)",
            ix.host_cache_bytes() as f64 / (1 << 20) as f64
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints the taxonomy and the default mappings of third-party list names.
pub(crate) fn categories() {
    const UT1: &[&str] = &[
        "adult",
        "agressif",
        "ai",
        "arjel",
        "associations_religieuses",
        "astrology",
        "audio-video",
        "bank",
        "bitcoin",
        "blog",
        "celebrity",
        "chat",
        "child",
        "cleaning",
        "cooking",
        "cryptojacking",
        "dangerous_material",
        "dating",
        "ddos",
        "dialer",
        "doh",
        "download",
        "drogue",
        "dynamic-dns",
        "educational_games",
        "examen_pix",
        "exceptions_liste_bu",
        "fakenews",
        "filehosting",
        "financial",
        "forums",
        "gambling",
        "games",
        "hacking",
        "jobsearch",
        "lingerie",
        "liste_blanche",
        "liste_bu",
        "malware",
        "manga",
        "marketingware",
        "mixed_adult",
        "mobile-phone",
        "phishing",
        "press",
        "publicite",
        "radio",
        "reaffected",
        "redirector",
        "remote-control",
        "residential-proxies",
        "sect",
        "sexual_education",
        "shopping",
        "shortener",
        "social_networks",
        "special",
        "sports",
        "stalkerware",
        "strict_redirector",
        "strong_redirector",
        "translation",
        "tricheur",
        "tricheur_pix",
        "update",
        "vpn",
        "warez",
        "webhosting",
        "webmail",
    ];
    const BLP: &[&str] = &[
        "abuse",
        "ads",
        "adobe",
        "basic",
        "crypto",
        "drugs",
        "facebook",
        "fortnite",
        "fraud",
        "gambling",
        "malware",
        "phishing",
        "piracy",
        "porn",
        "ransomware",
        "redirect",
        "scam",
        "smart-tv",
        "tiktok",
        "torrent",
        "tracking",
        "twitter",
        "vaping",
        "whatsapp",
        "youtube",
    ];
    println!("{:<20} {:<8} description", "category", "illegal");
    for c in CATEGORIES {
        println!(
            "{:<20} {:<8} {}",
            c.slug,
            if c.illegal { "yes" } else { "" },
            c.description
        );
    }
    let show =
        |title: &str, names: &[&str], map: fn(&str) -> Option<lookout_lists::CategorySet>| {
            println!("\n{title}:");
            for name in names {
                let cats: Vec<&str> = map(name)
                    .map(|s| s.iter().map(Category::slug).collect())
                    .unwrap_or_default();
                println!("  {:<26} -> {}", name, cats.join(", "));
            }
        };
    show(
        "UT1 folder mapping (UT1 blacklists, Université Toulouse Capitole, CC BY-SA 4.0)",
        UT1,
        ut1_default,
    );
    show(
        "Block List Project mapping (by file name)",
        BLP,
        blocklistproject_default,
    );
}
