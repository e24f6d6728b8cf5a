//! Any string as a URL: normalising never panics, the canonical form is a fixed point
//! (normalising it again changes nothing), and the parts are consistent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lookout_lists::NormUrl;

fuzz_target!(|input: &str| {
    let Ok(url) = NormUrl::parse(input) else {
        return;
    };
    let again =
        NormUrl::parse(url.as_str()).unwrap_or_else(|e| panic!("{url:?} does not re-parse: {e}"));
    assert_eq!(again.as_str(), url.as_str(), "not a fixed point: {input:?}");
    assert!(url.as_str().is_ascii());
    assert!(url.host_end() <= url.path_end() && url.path_end() <= url.as_str().len());
    let _ = url.file_name();
    url.each_domain(|s, labels| {
        assert!(s < url.host_end() && labels >= 1);
        true
    });
    url.find_prefix_end(usize::MAX, usize::MAX, |e| {
        assert!(e > url.host_end() && e <= url.as_str().len());
        false
    });
});
