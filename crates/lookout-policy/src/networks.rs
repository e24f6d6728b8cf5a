//! Client networks: which group (or other setting) a client address gets.

use std::net::IpAddr;

use ipnet::IpNet;

/// Address ranges and what each means; the most specific range containing a client wins.
/// IPv4-mapped IPv6 clients (`::ffff:10.0.0.1`) are matched as IPv4.
#[derive(Debug, Clone)]
pub struct Networks<T> {
    networks: Vec<(IpNet, T)>,
}

impl<T> Default for Networks<T> {
    fn default() -> Self {
        Networks {
            networks: Vec::new(),
        }
    }
}

impl<T> Networks<T> {
    /// The ranges and their values, in any order.
    pub fn new(mut networks: Vec<(IpNet, T)>) -> Networks<T> {
        networks.sort_by_key(|(net, _)| std::cmp::Reverse(net.prefix_len()));
        Networks { networks }
    }

    /// Whether no range is configured.
    pub fn is_empty(&self) -> bool {
        self.networks.is_empty()
    }

    /// The value of the most specific range holding `ip`, or `None` for a client Lookout
    /// does not serve.
    pub fn get(&self, ip: IpAddr) -> Option<&T> {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.networks
            .iter()
            .find(|(net, _)| net.contains(&ip))
            .map(|(_, v)| v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn most_specific_network_wins() {
        let nets = Networks::new(vec![
            ("10.0.0.0/8".parse().unwrap(), "wide"),
            ("10.1.2.0/24".parse().unwrap(), "narrow"),
            ("::1/128".parse().unwrap(), "loopback6"),
        ]);
        for (ip, want) in [
            ("10.9.9.9", Some("wide")),
            ("10.1.2.3", Some("narrow")),
            ("::ffff:10.1.2.3", Some("narrow")),
            ("::1", Some("loopback6")),
            ("11.0.0.1", None),
            ("127.0.0.1", None),
        ] {
            assert_eq!(nets.get(ip.parse().unwrap()).copied(), want, "{ip}");
        }
    }
}
