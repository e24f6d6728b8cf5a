//! Scans one of the benchmark texts (`prose`, `plain` or `risky`, as `benches/scan.rs` reads
//! them) in 64 KiB pages, a given number of times, for `bench/scan-instructions.sh` to count
//! the instructions of under callgrind: a fixed amount of work, where criterion runs as many
//! iterations as fit in its time.
//!
//!     cargo run --release -p lookout-scan --example scan_pages -- risky 2

use lookout_scan::{Library, Scanner, Scratch};

#[path = "../benches/texts/mod.rs"]
mod texts;

/// As the bench and the `lookout` binary allocate.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// The scans counted (the script counts this function only): every page, `passes` times.
#[inline(never)]
fn counted(scanner: &Scanner, scratch: &mut Scratch, pages: &[&str], passes: usize) -> usize {
    let mut findings = 0;
    for _ in 0..passes {
        for page in pages {
            findings += scanner.scan_with(scratch, page).len();
        }
    }
    findings
}

fn main() {
    let mut args = std::env::args().skip(1);
    let name = args.next().unwrap_or_default();
    let text = match name.as_str() {
        "prose" => texts::prose(),
        "plain" => texts::plain(),
        "risky" => texts::risky(),
        _ => {
            eprintln!("usage: scan_pages prose|plain|risky [passes]");
            std::process::exit(2);
        }
    };
    let passes = match args.next().map(|p| p.parse::<usize>()) {
        None => 1,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("passes: a whole number of at least 1");
            std::process::exit(2);
        }
    };
    let scanner = match Library::builtin().compile() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    let pages = texts::split(&text, 64 * 1024);
    let mut scratch = Scratch::default();
    // Once uncounted (not through `counted`), so that the buffers have grown and the counted
    // passes are alike.
    let warm: usize = pages
        .iter()
        .map(|page| scanner.scan_with(&mut scratch, page).len())
        .sum();
    let findings = counted(&scanner, &mut scratch, &pages, passes);
    println!(
        "{name}: {} bytes in {} pages, {passes} passes, {} findings a pass",
        text.len(),
        pages.len(),
        findings / passes
    );
    if findings != warm * passes {
        eprintln!("the same pages gave other findings: {warm} once, {findings} in {passes} passes");
        std::process::exit(1);
    }
}
