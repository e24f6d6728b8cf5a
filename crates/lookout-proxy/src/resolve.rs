//! Name resolution for origin servers: the configured static hosts first (like `/etc/hosts`,
//! for internal servers), then the system resolver. Which of the addresses may be reached is
//! `connect::reachable`'s business.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// Resolves origin host names.
#[derive(Debug, Clone, Default)]
pub struct Resolver {
    hosts: Arc<HashMap<String, IpAddr>>,
}

impl Resolver {
    /// A resolver with static `hosts` (lower-case names) in front of the system's.
    pub fn new(hosts: HashMap<String, IpAddr>) -> Resolver {
        let hosts = hosts
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect();
        Resolver {
            hosts: Arc::new(hosts),
        }
    }

    /// The addresses of `host` with `port`.
    pub async fn lookup(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if let Some(&ip) = self.hosts.get(&host.to_ascii_lowercase()) {
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        let found: Vec<SocketAddr> = tokio::net::lookup_host((host, port)).await?.collect();
        if found.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{host} has no address"),
            ));
        }
        Ok(found)
    }
}
