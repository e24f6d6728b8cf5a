//! Any bytes, in any list format: parsing never panics, every accepted entry is found by the
//! compiled index, the counts add up, and the text fed a piece at a time (cut after every
//! first, second, third or fourth newline) parses as it does whole.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lookout_lists::parse::{detect, parse, Format, Parser};
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
    let every = usize::from(selector / 5 % 4) + 1;
    let mut parser = Parser::new(format);
    let (mut start, mut pieces) = (0, Vec::new());
    for end in (0..text.len())
        .filter(|&i| text[i] == b'\n')
        .skip(every - 1)
        .step_by(every)
    {
        parser.feed(&text[start..=end], |_, url| pieces.push(url.to_string()));
        start = end + 1;
    }
    let in_pieces = parser.finish(&text[start..], |_, url| pieces.push(url.to_string()));
    assert_eq!(in_pieces, report, "fed a piece at every {every} newlines");
    assert_eq!(pieces.len() as u64, report.accepted);
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
