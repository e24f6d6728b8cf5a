//! Name resolution for origin servers: the configured static hosts first (like `/etc/hosts`,
//! for internal servers), then the system resolver. A resolver for a group only ever returns
//! addresses that group may be connected to (see [`Destinations`]).

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use lookout_policy::{Destinations, GroupId};

/// Resolves origin host names.
#[derive(Debug, Clone, Default)]
pub struct Resolver {
    hosts: Arc<HashMap<String, IpAddr>>,
    /// When set, addresses the group may not reach are dropped, and a name with none left is
    /// an error carrying the [`lookout_policy::Refused`].
    guard: Option<(Destinations, GroupId)>,
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
            guard: None,
        }
    }

    /// This resolver, returning only addresses `group` may be connected to.
    pub fn for_group(&self, destinations: Destinations, group: GroupId) -> Resolver {
        Resolver {
            hosts: self.hosts.clone(),
            guard: Some((destinations, group)),
        }
    }

    /// The addresses of `host` with `port`, those the group may not reach left out (an
    /// error naming the first refusal when none is left).
    pub async fn lookup(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        let found = self.lookup_all(host, port).await?;
        match &self.guard {
            None => Ok(found),
            Some((destinations, group)) => {
                destinations.filter(*group, found).map_err(io::Error::other)
            }
        }
    }

    async fn lookup_all(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
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
