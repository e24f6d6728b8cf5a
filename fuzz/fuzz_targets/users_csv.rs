//! `lookout user import` on hostile CSV: every problem reported as `file:line: problem`, or
//! users that pass the store's own checks; never a panic.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match lookout_store::users_from_csv("users.csv", data, &["learners", "staff"]) {
        Ok(users) => {
            for u in users {
                assert!(lookout_store::normalize_username(&u.username).is_ok());
                assert!(["learners", "staff"].contains(&u.group.as_str()));
                if let Some(p) = &u.password {
                    assert!(lookout_store::check_password(p).is_ok());
                }
            }
        }
        Err(e) => assert!(e.starts_with("users.csv") || e.starts_with("nothing was imported"), "{e}"),
    }
});
