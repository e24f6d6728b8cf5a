//! The ingest API's body (`POST /api/v1/ingest`) on hostile JSON: a 400/422 naming the field,
//! or items within the documented limits; never a panic.

#![no_main]

use libfuzzer_sys::fuzz_target;

const NOW: i64 = 1_796_000_000_000;

fuzz_target!(|data: &[u8]| {
    match lookout_monitor::parse_ingest(data, NOW) {
        Ok(items) => {
            assert!(!items.is_empty() && items.len() <= 1000);
            for item in items {
                assert!(item.text.len() <= 64 * 1024);
                assert!(item.at_ms <= NOW + 3600 * 1000);
            }
        }
        Err(e) => {
            assert!(e.status == 400 || e.status == 422);
            assert!(!e.message.is_empty());
        }
    }
});
