//! Every form the safeguarding console accepts, decoded from hostile bytes (with and without
//! the CSRF token), and the field parsers its handlers use; never a panic.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = lookout_console::fuzzing::forms(data);
});
