//! `free_port` gives ports a test can bind, outside the kernel's ephemeral range, never twice.

use std::collections::BTreeSet;

#[test]
fn free_ports_are_outside_the_ephemeral_range_bindable_and_never_given_twice() {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut bounds = s.split_whitespace().map(|p| p.parse::<u16>().ok());
            Some((bounds.next()??, bounds.next()??))
        });
    let mut given = BTreeSet::new();
    for _ in 0..50 {
        let port = lookout_testkit::free_port();
        if let Some((low, high)) = range {
            assert!(
                !(low..=high).contains(&port),
                "port {port} is in the ephemeral range {low}-{high}"
            );
        }
        assert!(port >= 15_000, "port {port}");
        assert!(given.insert(port), "port {port} given twice");
        std::net::TcpListener::bind(("127.0.0.1", port))
            .unwrap_or_else(|e| panic!("port {port} cannot be bound: {e}"));
    }
}
