//! The configuration file on hostile input: parsing and every check must give a clear error
//! (naming the key, with a line where there is one) or a configuration whose policy, networks
//! and listen addresses can be built; never a panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use lookout_config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::from_toml(text) {
        Ok(config) => {
            // A configuration that passed its checks builds everything `serve` builds.
            if let Err(e) = config.policy() {
                panic!("validated, yet the policy cannot be built: {e}");
            }
            let _ = config.networks();
            let _ = config.proxy_listen();
            let _ = config.dns_listen();
            let _ = config.dns_upstreams();
            let _ = config.validate_serve();
            for i in &config.proxy.internal {
                assert!(i.net().is_some(), "a checked internal range parses");
            }
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
});
