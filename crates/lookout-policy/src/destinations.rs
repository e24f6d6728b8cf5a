//! Where the gateway may connect on a client's behalf (server-side request forgery).
//!
//! A filtering gateway must never become a way into the machine it runs on or the networks
//! behind it. [`Destinations::check`] judges the address actually connected to (after name
//! resolution, so a public name that resolves to an internal address is caught):
//!
//! - never, whatever is configured: the unspecified address (`0.0.0.0/8`, `::`, which Linux
//!   connects to as this machine), multicast, broadcast and reserved addresses, link-local
//!   addresses (`169.254.0.0/16` with the cloud metadata service, `fe80::/10`), and Lookout's
//!   own listening sockets;
//! - unless an internal destination opens them to the client's group: loopback, this gateway's
//!   own interface addresses, and private ranges (RFC 1918, shared `100.64.0.0/10`, benchmark
//!   `198.18.0.0/15`, unique-local `fc00::/7`, site-local `fec0::/10`);
//! - everything else (the public internet) passes.
//!
//! IPv6 spellings of IPv4 addresses (mapped `::ffff:a.b.c.d`, compatible `::a.b.c.d`, NAT64
//! `64:ff9b::/96` and `64:ff9b:1::/48`, 6to4 `2002::/16`, Teredo `2001::/32`) are judged as the
//! IPv4 address they reach.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use arc_swap::ArcSwap;
use ipnet::IpNet;

use crate::GroupId;

/// What kind of address a destination is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddrClass {
    /// The public internet.
    Public,
    /// A private range (RFC 1918, shared, benchmark, unique-local, site-local).
    Private,
    /// This machine over loopback.
    Loopback,
    /// The local link (cloud metadata services live here).
    LinkLocal,
    /// `0.0.0.0/8` or `::`.
    Unspecified,
    /// Multicast or broadcast.
    Multicast,
    /// Reserved for future use or protocol assignments; never a web server.
    Reserved,
}

impl AddrClass {
    /// Of `ip`, judging IPv6 spellings of IPv4 addresses as the IPv4 address.
    pub fn of(ip: IpAddr) -> AddrClass {
        match effective(ip) {
            IpAddr::V4(v4) => class_v4(v4),
            IpAddr::V6(v6) => class_v6(v6),
        }
    }

    /// The class in words, e.g. "a loopback address (the gateway itself)".
    pub fn describe(self) -> &'static str {
        match self {
            AddrClass::Public => "a public address",
            AddrClass::Private => "a private network address",
            AddrClass::Loopback => "a loopback address (the gateway itself)",
            AddrClass::LinkLocal => {
                "a link-local address (the local link and cloud metadata services)"
            }
            AddrClass::Unspecified => "the unspecified address (the gateway itself)",
            AddrClass::Multicast => "a multicast or broadcast address",
            AddrClass::Reserved => "a reserved address",
        }
    }
}

/// The IPv4 address an IPv6 address reaches, if it is one of IPv4's spellings.
pub fn effective(ip: IpAddr) -> IpAddr {
    let IpAddr::V6(v6) = ip else {
        return ip;
    };
    let s = v6.segments();
    let o = v6.octets();
    let tail = Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    // ::ffff:a.b.c.d (mapped) and ::a.b.c.d (compatible, deprecated; not :: or ::1).
    if s[..5] == [0; 5] && (s[5] == 0xffff || (s[5] == 0 && u32::from(tail) > 1)) {
        return IpAddr::V4(tail);
    }
    // NAT64: the well-known prefix 64:ff9b::/96 and the local-use 64:ff9b:1::/48.
    if (s[..6] == [0x64, 0xff9b, 0, 0, 0, 0]) || (s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1) {
        return IpAddr::V4(tail);
    }
    // 6to4: 2002:AABB:CCDD::/48 carries AA.BB.CC.DD.
    if s[0] == 0x2002 {
        return IpAddr::V4(Ipv4Addr::new(o[2], o[3], o[4], o[5]));
    }
    // Teredo: 2001:0::/32, the client's address inverted in the last 32 bits.
    if s[0] == 0x2001 && s[1] == 0 {
        return IpAddr::V4(Ipv4Addr::from(!u32::from(tail)));
    }
    ip
}

fn class_v4(ip: Ipv4Addr) -> AddrClass {
    let o = ip.octets();
    match o {
        [0, ..] => AddrClass::Unspecified,
        [127, ..] => AddrClass::Loopback,
        [169, 254, ..] => AddrClass::LinkLocal,
        [10, ..] | [192, 168, ..] => AddrClass::Private,
        [172, b, ..] if (16..32).contains(&b) => AddrClass::Private,
        [100, b, ..] if (64..128).contains(&b) => AddrClass::Private,
        [198, b, ..] if b == 18 || b == 19 => AddrClass::Private,
        [192, 0, 0, _] => AddrClass::Reserved,
        [224..=239, ..] | [255, 255, 255, 255] => AddrClass::Multicast,
        [240..=255, ..] => AddrClass::Reserved,
        _ => AddrClass::Public,
    }
}

fn class_v6(ip: Ipv6Addr) -> AddrClass {
    let s = ip.segments();
    if ip.is_unspecified() {
        AddrClass::Unspecified
    } else if ip.is_loopback() {
        AddrClass::Loopback
    } else if s[0] & 0xff00 == 0xff00 {
        AddrClass::Multicast
    } else if s[0] & 0xffc0 == 0xfe80 {
        AddrClass::LinkLocal
    } else if s[0] & 0xfe00 == 0xfc00 || s[0] & 0xffc0 == 0xfec0 {
        AddrClass::Private
    } else if s[0] & 0xe000 != 0x2000 {
        // Outside 2000::/3, the only global unicast space assigned.
        AddrClass::Reserved
    } else {
        AddrClass::Public
    }
}

/// An internal destination some groups may reach (`[[proxy.internal]]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Internal {
    /// The addresses.
    pub net: IpNet,
    /// The groups that may reach it; empty: every group.
    pub groups: Vec<GroupId>,
    /// The ports they may reach; empty: every port.
    pub ports: Vec<u16>,
}

impl Internal {
    fn opens(&self, group: GroupId, ip: IpAddr, port: u16) -> bool {
        (self.net.contains(&ip) || self.net.contains(&effective(ip)))
            && (self.groups.is_empty() || self.groups.contains(&group))
            && (self.ports.is_empty() || self.ports.contains(&port))
    }
}

/// Why a destination was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The address refused.
    pub addr: SocketAddr,
    /// What it is.
    pub why: RefusedWhy,
}

/// The kind of refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusedWhy {
    /// One of Lookout's own listening sockets.
    OwnService,
    /// One of the gateway's own addresses, not opened to the group.
    OwnAddress,
    /// An address of this class that is never reached.
    Never(AddrClass),
    /// An internal address of this class not opened to the group.
    NotOpened(AddrClass),
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let addr = self.addr;
        match self.why {
            RefusedWhy::OwnService => write!(f, "{addr} is one of Lookout's own services"),
            RefusedWhy::OwnAddress => write!(
                f,
                "{addr} is the gateway's own address, which the proxy does not reach for this group"
            ),
            RefusedWhy::Never(class) => {
                write!(
                    f,
                    "{addr} is {}, which the proxy never reaches",
                    class.describe()
                )
            }
            RefusedWhy::NotOpened(class) => write!(
                f,
                "{addr} is {}, not opened to this group ([[proxy.internal]])",
                class.describe()
            ),
        }
    }
}

impl std::error::Error for Refused {}

/// The destination rules: internal destinations per group, the gateway's own addresses and
/// listening sockets. Cheap to clone (shared).
#[derive(Debug, Clone, Default)]
pub struct Destinations {
    internal: Arc<Vec<Internal>>,
    listeners: Arc<ArcSwap<Vec<SocketAddr>>>,
    own: Arc<ArcSwap<Vec<IpAddr>>>,
}

impl Destinations {
    /// Rules with `internal` destinations and Lookout's own `listeners`.
    pub fn new(internal: Vec<Internal>, listeners: Vec<SocketAddr>) -> Destinations {
        Destinations {
            internal: Arc::new(internal),
            listeners: Arc::new(ArcSwap::from_pointee(listeners)),
            own: Arc::default(),
        }
    }

    /// Adds one of Lookout's own listening sockets (as bound: the port a `:0` got).
    pub fn add_listener(&self, addr: SocketAddr) {
        self.listeners.rcu(|l| {
            let mut l = Vec::clone(l);
            l.push(addr);
            l
        });
    }

    /// Replaces the gateway's own interface addresses (they change with DHCP; the server
    /// refreshes them).
    pub fn set_own_addresses(&self, addrs: Vec<IpAddr>) {
        self.own.store(Arc::new(addrs));
    }

    /// The gateway's own interface addresses as last set.
    pub fn own_addresses(&self) -> Arc<Vec<IpAddr>> {
        self.own.load_full()
    }

    /// Whether a client of `group` may be connected to `addr`.
    pub fn check(&self, group: GroupId, addr: SocketAddr) -> Result<(), Refused> {
        let ip = addr.ip();
        let eff = effective(ip);
        let class = AddrClass::of(ip);
        let refuse = |why| Err(Refused { addr, why });
        let own = self.own.load();
        let is_own = class == AddrClass::Loopback || own.contains(&ip) || own.contains(&eff);
        let own_service = self.listeners.load().iter().any(|l| {
            l.port() == addr.port()
                && (l.ip() == ip
                    || l.ip() == eff
                    || ((l.ip().is_unspecified() || AddrClass::of(l.ip()) == AddrClass::Loopback)
                        && is_own))
        });
        if own_service {
            return refuse(RefusedWhy::OwnService);
        }
        match class {
            AddrClass::Unspecified
            | AddrClass::LinkLocal
            | AddrClass::Multicast
            | AddrClass::Reserved => return refuse(RefusedWhy::Never(class)),
            _ => {}
        }
        let opened = || {
            self.internal
                .iter()
                .any(|i| i.opens(group, ip, addr.port()))
        };
        if is_own && class != AddrClass::Loopback {
            return if opened() {
                Ok(())
            } else {
                refuse(RefusedWhy::OwnAddress)
            };
        }
        match class {
            AddrClass::Public => Ok(()),
            _ if opened() => Ok(()),
            _ => refuse(RefusedWhy::NotOpened(class)),
        }
    }

    /// The addresses of `addrs` a client of `group` may be connected to, or the first
    /// refusal when there are none.
    pub fn filter(
        &self,
        group: GroupId,
        addrs: impl IntoIterator<Item = SocketAddr>,
    ) -> Result<Vec<SocketAddr>, Refused> {
        let mut ok = Vec::new();
        let mut first = None;
        for a in addrs {
            match self.check(group, a) {
                Ok(()) => ok.push(a),
                Err(e) => {
                    first.get_or_insert(e);
                }
            }
        }
        match (ok.is_empty(), first) {
            (true, Some(e)) => Err(e),
            _ => Ok(ok),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn classes() {
        use AddrClass::*;
        let table = [
            ("8.8.8.8", Public),
            ("0.0.0.0", Unspecified),
            ("0.1.2.3", Unspecified),
            ("127.0.0.1", Loopback),
            ("127.255.0.9", Loopback),
            ("169.254.169.254", LinkLocal),
            ("10.1.2.3", Private),
            ("172.16.0.1", Private),
            ("172.31.255.255", Private),
            ("172.32.0.1", Public),
            ("192.168.1.1", Private),
            ("100.64.0.1", Private),
            ("100.128.0.1", Public),
            ("198.18.0.1", Private),
            ("192.0.0.170", Reserved),
            ("224.0.0.1", Multicast),
            ("255.255.255.255", Multicast),
            ("240.0.0.1", Reserved),
            ("::", Unspecified),
            ("::1", Loopback),
            ("fe80::1", LinkLocal),
            ("fd00::1", Private),
            ("fec0::1", Private),
            ("ff02::1", Multicast),
            ("2606:4700::1111", Public),
            ("::ffff:127.0.0.1", Loopback),
            ("::ffff:169.254.169.254", LinkLocal),
            ("::127.0.0.1", Loopback),
            ("::ffff:0.0.0.0", Unspecified),
            ("64:ff9b::a9fe:a9fe", LinkLocal),
            ("64:ff9b:1::7f00:1", Loopback),
            ("64:ff9b::808:808", Public),
            ("2002:7f00:1::", Loopback),
            ("2002:a00:1::1", Private),
            ("2001:0:4136:e378:8000:63bf:80ff:fffe", Loopback),
            ("100::1", Reserved),
        ];
        for (ip, want) in table {
            assert_eq!(AddrClass::of(ip.parse().unwrap()), want, "{ip}");
        }
    }

    #[test]
    fn checks() {
        let staff = GroupId(1);
        let learners = GroupId(0);
        let d = Destinations::new(
            vec![
                Internal {
                    net: "10.20.0.0/16".parse().unwrap(),
                    groups: vec![],
                    ports: vec![80, 443],
                },
                Internal {
                    net: "192.168.5.7/32".parse().unwrap(),
                    groups: vec![staff],
                    ports: vec![],
                },
                Internal {
                    net: "127.0.0.0/8".parse().unwrap(),
                    groups: vec![staff],
                    ports: vec![],
                },
                Internal {
                    net: "169.254.0.0/16".parse().unwrap(),
                    groups: vec![],
                    ports: vec![],
                },
            ],
            vec![sa("0.0.0.0:3128"), sa("127.0.0.1:8080")],
        );
        d.set_own_addresses(vec!["10.9.0.1".parse().unwrap()]);
        let table: &[(GroupId, &str, Result<(), RefusedWhy>)] = &[
            (learners, "93.184.216.34:80", Ok(())),
            (learners, "10.20.1.1:443", Ok(())),
            (
                learners,
                "10.20.1.1:22",
                Err(RefusedWhy::NotOpened(AddrClass::Private)),
            ),
            (learners, "[::ffff:10.20.1.1]:80", Ok(())),
            (
                learners,
                "10.21.0.1:80",
                Err(RefusedWhy::NotOpened(AddrClass::Private)),
            ),
            (
                learners,
                "192.168.5.7:631",
                Err(RefusedWhy::NotOpened(AddrClass::Private)),
            ),
            (staff, "192.168.5.7:631", Ok(())),
            (
                learners,
                "127.0.0.5:80",
                Err(RefusedWhy::NotOpened(AddrClass::Loopback)),
            ),
            (
                learners,
                "[::1]:80",
                Err(RefusedWhy::NotOpened(AddrClass::Loopback)),
            ),
            (
                learners,
                "[64:ff9b::7f00:5]:80",
                Err(RefusedWhy::NotOpened(AddrClass::Loopback)),
            ),
            (staff, "127.0.0.5:80", Ok(())),
            // Opened loopback still never reaches Lookout's own services.
            (staff, "127.0.0.1:8080", Err(RefusedWhy::OwnService)),
            (staff, "127.0.0.9:3128", Err(RefusedWhy::OwnService)),
            (
                staff,
                "[::ffff:127.0.0.1]:3128",
                Err(RefusedWhy::OwnService),
            ),
            (learners, "10.9.0.1:3128", Err(RefusedWhy::OwnService)),
            (learners, "10.9.0.1:22", Err(RefusedWhy::OwnAddress)),
            // Link-local cannot be opened, even by configuration.
            (
                staff,
                "169.254.169.254:80",
                Err(RefusedWhy::Never(AddrClass::LinkLocal)),
            ),
            (
                staff,
                "0.0.0.0:80",
                Err(RefusedWhy::Never(AddrClass::Unspecified)),
            ),
            (
                staff,
                "[::]:80",
                Err(RefusedWhy::Never(AddrClass::Unspecified)),
            ),
            (
                staff,
                "224.0.0.1:80",
                Err(RefusedWhy::Never(AddrClass::Multicast)),
            ),
            (
                staff,
                "[fe80::1]:80",
                Err(RefusedWhy::Never(AddrClass::LinkLocal)),
            ),
        ];
        for (group, addr, want) in table {
            let got = d.check(*group, sa(addr)).map_err(|r| r.why);
            assert_eq!(&got, want, "{addr} for group {}", group.0);
        }
        let why = d
            .check(learners, sa("127.0.0.5:80"))
            .unwrap_err()
            .to_string();
        assert!(
            why.contains("127.0.0.5:80") && why.contains("loopback"),
            "{why}"
        );
        // Filtering keeps what may be reached, or says why nothing may.
        assert_eq!(
            d.filter(learners, [sa("127.0.0.1:80"), sa("93.184.216.34:80")]),
            Ok(vec![sa("93.184.216.34:80")])
        );
        assert_eq!(
            d.filter(learners, [sa("127.0.0.1:80")]).unwrap_err().why,
            RefusedWhy::NotOpened(AddrClass::Loopback)
        );
    }
}
