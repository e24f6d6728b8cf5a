//! Any bytes, in any list format: parsing never panics, every accepted entry is found by the
//! compiled index, and the counts add up.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lookout_lists::parse::{detect, parse, Format};
use lookout_lists::{EntryKind, EntrySink, IndexBuilder, NormUrl, SourceInfo};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, text)) = data.split_first() else {
        return;
    };
    let format = match selector % 5 {
        0 => Format::Domains,
        1 => Format::Urls,
        2 => Format::Hosts,
        3 => Format::Adblock,
        _ => detect(text),
    };
    let mut builder = IndexBuilder::new();
    let source = builder
        .add_source(SourceInfo {
            name: "fuzz".into(),
            labels: 1,
        })
        .unwrap();
    let mut sink = EntrySink::new();
    let mut blocks = Vec::new();
    let report = parse(format, text, |kind, url| {
        sink.add(source, kind, url);
        if kind == EntryKind::Block {
            blocks.push(url.clone());
        }
    });
    assert!(report.samples.len() as u64 <= report.rejected);
    assert!(report.accepted as usize >= blocks.len());
    let has_exceptions = report.accepted as usize != blocks.len();
    let index = builder.build(vec![sink]);
    for url in &blocks {
        // An entry is found by a request for itself (unless an exception removes it).
        let again = NormUrl::parse(url.as_str()).expect("a canonical entry re-parses");
        if !has_exceptions {
            assert_eq!(index.lookup(&again), 1, "{again}");
        }
    }
});
