//! Lookout's DNS filter engine, sans-I/O: a query packet and the asker's group go in; out come
//! the bytes to answer with, or a question to put to the upstream resolver and a way to turn
//! its reply into the answer. Sockets, timeouts and the cache belong to the server.
//!
//! - Blocked names (the policy says block or warn: DNS cannot show a click-through) answer with
//!   the block-page address (A/AAAA) or NXDOMAIN, as configured.
//! - Safe search is enforced by CNAME for groups that have it: Google to
//!   `forcesafesearch.google.com`, YouTube to `restrict.youtube.com`, Bing to `strict.bing.com`,
//!   DuckDuckGo to `safe.duckduckgo.com`.
//! - Rebinding protection (as dnsmasq's `stop-dns-rebind`): an upstream answer that gives a
//!   public name an internal address (loopback, private, link-local…) has those addresses
//!   taken out, so a web page cannot turn a browser against the network it sits on. Names
//!   under [`Settings::internal_domains`], single-label names and private-use suffixes
//!   (`.local`, `.internal`, `.lan`, `.home.arpa`…) keep theirs.
//! - Anything malformed gets FORMERR when it has a readable header, and is dropped otherwise;
//!   nothing panics.

mod safesearch;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use lookout_lists::{Index, NormUrl};
use lookout_policy::{Action, AddrClass, Decision, GroupId, LocalTime, Policy};

pub use safesearch::safe_search_target;

/// How blocked names are answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockedAnswer {
    /// A and AAAA queries get the block-page server's address, so a browser shows why.
    BlockPage {
        /// The block-page server's IPv4 address.
        ipv4: Ipv4Addr,
        /// Its IPv6 address; without one, AAAA queries get an empty answer.
        ipv6: Option<Ipv6Addr>,
    },
    /// Every query for a blocked name gets NXDOMAIN.
    NxDomain,
}

/// DNS settings the engine needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// How blocked names are answered.
    pub blocked: BlockedAnswer,
    /// TTL of the answers Lookout makes up (block answers, safe-search CNAMEs), in seconds.
    pub ttl: u32,
    /// Take internal addresses out of upstream answers for public names.
    pub rebind_protection: bool,
    /// Domains whose names may have internal addresses (lower case, no trailing dot): the
    /// organisation's own, e.g. `college.internal`, and every name under them.
    pub internal_domains: Vec<String>,
    /// The gateway's address for the portal's name (`lookout.invalid`) and WPAD names
    /// (`wpad`, `wpad.<domain>`), which are then answered with it for every group.
    pub portal: Option<Ipv4Addr>,
}

/// Whether `host` (no trailing dot) is one of the gateway's own names: the portal's or a WPAD
/// name a browser looks up to find its proxy settings.
pub fn is_gateway_name(host: &str) -> bool {
    host.eq_ignore_ascii_case(PORTAL_NAME)
        || host.eq_ignore_ascii_case("wpad")
        || host
            .get(..5)
            .is_some_and(|p| p.eq_ignore_ascii_case("wpad."))
}

/// The name the portal and the gateway's own pages are reached by.
pub const PORTAL_NAME: &str = "lookout.invalid";

/// Suffixes for private use: their names may have internal addresses.
const PRIVATE_SUFFIXES: &[&str] = &[
    "local",
    "internal",
    "lan",
    "home.arpa",
    "localdomain",
    "localhost",
    "intranet",
    "corp",
    "home",
    "private",
];

impl Settings {
    /// Whether `name` (lower case, no trailing dot) may be answered with internal addresses.
    pub fn may_be_internal(&self, name: &str) -> bool {
        let under = |suffix: &str| {
            name == suffix
                || (name.len() > suffix.len()
                    && name.ends_with(suffix)
                    && name.as_bytes()[name.len() - suffix.len() - 1] == b'.')
        };
        !name.contains('.')
            || PRIVATE_SUFFIXES.iter().any(|s| under(s))
            || self.internal_domains.iter().any(|d| under(d))
    }
}

/// Who is asking and under which rules.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// Every group's rules.
    pub policy: &'a Policy,
    /// The compiled lists.
    pub index: &'a Index,
    /// The asker's group.
    pub group: GroupId,
    /// The local time, for schedules.
    pub at: LocalTime,
    /// DNS settings.
    pub settings: &'a Settings,
}

/// What to do with a packet.
#[derive(Debug)]
pub enum Outcome {
    /// Send these bytes back to the client. The decision is there when a name was judged.
    Respond {
        /// The response packet.
        packet: Vec<u8>,
        /// The policy decision, for the activity log (none for malformed packets).
        decision: Option<Decision>,
        /// The question judged, when there is a decision.
        asked: Option<Asked>,
    },
    /// Ask the upstream resolver, then answer with [`Pending::complete`].
    Forward(Box<Pending>),
    /// Not even a header could be read: there is nobody to answer.
    Drop,
}

/// The question a decision is about, for the activity log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asked {
    /// The name asked, without the trailing dot.
    pub host: String,
    /// The record type asked for.
    pub qtype: RecordType,
}

/// A query waiting for the upstream resolver's reply.
#[derive(Debug)]
pub struct Pending {
    request: Message,
    /// The name to ask upstream (the safe-search target when rewritten).
    upstream_name: Name,
    /// The CNAME to put before the upstream's answers, when safe search rewrote the name.
    cname: Option<Record>,
    /// The decision taken (allowed), for the activity log.
    pub decision: Decision,
    /// The asker's group, for the activity log.
    pub group: GroupId,
    /// Whether internal addresses are taken out of the answer (rebinding protection is on and
    /// the name is not of private use).
    protect: bool,
    /// The question judged.
    pub asked: Asked,
}

impl Pending {
    /// The query to send upstream, with the caller's choice of message id (a fresh random one,
    /// so that replies can be matched and not spoofed).
    pub fn upstream_query(&self, id: u16) -> Vec<u8> {
        let mut query = Message::new(id, MessageType::Query, OpCode::Query);
        query.metadata.recursion_desired = true;
        let mut q = Query::query(self.upstream_name.clone(), self.question().query_type());
        q.set_query_class(self.question().query_class());
        query.add_query(q);
        query.to_vec().unwrap_or_default()
    }

    /// The name and type asked upstream, e.g. for a cache key.
    pub fn upstream_question(&self) -> (&Name, RecordType) {
        (&self.upstream_name, self.question().query_type())
    }

    fn question(&self) -> &Query {
        // `handle` only makes a `Pending` for a request with exactly one question.
        &self.request.queries[0]
    }

    /// The answer for the client, made from the upstream's reply. A reply that cannot be read,
    /// or that answers another question, gives SERVFAIL. Internal addresses given to a public
    /// name are taken out (rebinding protection) and listed in the result.
    pub fn complete(&self, upstream_reply: &[u8]) -> Completed {
        self.complete_aged(upstream_reply, 0)
    }

    /// [`Pending::complete`] for a reply kept `age` seconds (a cached one): the TTLs of its
    /// answer and authority records are `age` less, never below 0, as a resolver counts them
    /// down, so that the client does not keep the answer longer than its owner allowed.
    pub fn complete_aged(&self, upstream_reply: &[u8], age: u32) -> Completed {
        let done = |packet| Completed {
            packet,
            withheld: Vec::new(),
        };
        let Ok(mut reply) = Message::from_vec(upstream_reply) else {
            return done(self.servfail());
        };
        let answers_our_question = reply.metadata.message_type == MessageType::Response
            && reply.queries.len() == 1
            && reply.queries[0].name() == &self.upstream_name
            && reply.queries[0].query_type() == self.question().query_type();
        if !answers_our_question {
            return done(self.servfail());
        }
        let mut withheld = Vec::new();
        if self.protect {
            reply.answers.retain(|r| {
                let ip: IpAddr = match r.data {
                    RData::A(a) => a.0.into(),
                    RData::AAAA(a) => a.0.into(),
                    _ => return true,
                };
                let public = AddrClass::of(ip) == AddrClass::Public;
                if !public {
                    withheld.push(ip);
                }
                public
            });
        }
        if age > 0 {
            // Not the additional section: an OPT record's TTL field holds EDNS flags.
            for r in reply.answers.iter_mut().chain(reply.authorities.iter_mut()) {
                r.ttl = r.ttl.saturating_sub(age);
            }
        }
        let mut response = reply_to(&self.request, reply.metadata.response_code);
        if let Some(cname) = &self.cname {
            response.add_answer(cname.clone());
        }
        response.add_answers(reply.answers);
        if self.cname.is_none() {
            response.authorities = reply.authorities;
        }
        Completed {
            packet: encode(&response),
            withheld,
        }
    }

    /// SERVFAIL for the client: the upstream failed or did not answer in time.
    pub fn servfail(&self) -> Vec<u8> {
        encode(&reply_to(&self.request, ResponseCode::ServFail))
    }
}

/// A client's answer made from an upstream reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completed {
    /// The response packet.
    pub packet: Vec<u8>,
    /// Internal addresses the upstream gave a public name, taken out (rebinding protection).
    pub withheld: Vec<IpAddr>,
}

/// A response to `request` with its id, question and recursion flag.
fn reply_to(request: &Message, code: ResponseCode) -> Message {
    let mut response = Message::response(request.metadata.id, request.metadata.op_code);
    response.metadata.recursion_desired = request.metadata.recursion_desired;
    response.metadata.recursion_available = true;
    response.metadata.response_code = code;
    response.add_queries(request.queries.iter().cloned());
    response
}

fn encode(message: &Message) -> Vec<u8> {
    // Encoding a message made from a decoded one, or from valid names, does not fail; if it
    // ever did, an empty packet is dropped by the server rather than sent.
    message.to_vec().unwrap_or_default()
}

/// A bare header error for a packet whose body could not be read.
fn header_error(packet: &[u8], code: ResponseCode) -> Outcome {
    if packet.len() < 12 {
        return Outcome::Drop;
    }
    // A response to a response would let two servers bounce packets forever.
    if packet[2] & 0x80 != 0 {
        return Outcome::Drop;
    }
    let id = u16::from_be_bytes([packet[0], packet[1]]);
    let op_code = OpCode::from_u8((packet[2] >> 3) & 0x0f);
    let response = Message::error_msg(id, op_code, code);
    Outcome::Respond {
        packet: encode(&response),
        decision: None,
        asked: None,
    }
}

/// REFUSED for a client Lookout does not serve (outside every configured network), so that
/// the filter is never an open resolver. Unreadable packets and responses are dropped.
pub fn refuse(packet: &[u8]) -> Outcome {
    match Message::from_vec(packet) {
        Ok(request) if request.metadata.message_type == MessageType::Query => {
            let packet = encode(&reply_to(&request, ResponseCode::Refused));
            Outcome::Respond {
                packet,
                decision: None,
                asked: None,
            }
        }
        Ok(_) => Outcome::Drop,
        Err(_) => header_error(packet, ResponseCode::Refused),
    }
}

/// Fits a response into `max` bytes for UDP: a longer one is cut to its header and question
/// with the TC bit set, telling the client to ask again over TCP.
pub fn fit_udp(response: Vec<u8>, max: usize) -> Vec<u8> {
    if response.len() <= max {
        return response;
    }
    match Message::from_vec(&response) {
        Ok(message) => encode(&message.truncate()),
        Err(_) => Vec::new(),
    }
}

/// How long an upstream reply may be reused, in seconds: its smallest answer TTL, a minute
/// for "no such name/record", at most an hour; `None` for replies not to cache (SERVFAIL,
/// REFUSED, unreadable).
pub fn cache_ttl(reply: &[u8]) -> Option<u32> {
    let reply = Message::from_vec(reply).ok()?;
    let ttl = match reply.metadata.response_code {
        ResponseCode::NoError if !reply.answers.is_empty() => {
            reply.answers.iter().map(|r| r.ttl).min()?
        }
        ResponseCode::NoError | ResponseCode::NXDomain => 60,
        _ => return None,
    };
    Some(ttl.min(3600))
}

/// Judges one query packet.
pub fn handle(packet: &[u8], ctx: &Context<'_>) -> Outcome {
    let Ok(request) = Message::from_vec(packet) else {
        return header_error(packet, ResponseCode::FormErr);
    };
    if request.metadata.message_type != MessageType::Query {
        return Outcome::Drop;
    }
    if request.metadata.op_code != OpCode::Query {
        let response = reply_to(&request, ResponseCode::NotImp);
        return Outcome::Respond {
            packet: encode(&response),
            decision: None,
            asked: None,
        };
    }
    if request.queries.len() != 1 {
        let response = reply_to(&request, ResponseCode::FormErr);
        return Outcome::Respond {
            packet: encode(&response),
            decision: None,
            asked: None,
        };
    }
    let question = &request.queries[0];
    let ascii = question.name().to_ascii();
    let host = ascii.trim_end_matches('.');
    if let Some(ipv4) = ctx.settings.portal.filter(|_| is_gateway_name(host)) {
        return Outcome::Respond {
            packet: address_answer(&request, ipv4, None, ctx.settings.ttl),
            decision: None,
            asked: None,
        };
    }
    let decision = match NormUrl::parse(host) {
        Ok(url) => ctx.policy.decide(ctx.index, ctx.group, &url, ctx.at),
        Err(e) => Policy::decide_invalid(e),
    };
    let asked = Asked {
        host: host.to_owned(),
        qtype: question.query_type(),
    };
    if decision.action != Action::Allow {
        let packet = blocked(&request, &ctx.settings.blocked, ctx.settings.ttl);
        return Outcome::Respond {
            packet,
            decision: Some(decision),
            asked: Some(asked),
        };
    }
    let group = ctx.policy.group(ctx.group);
    let target = safe_search_target(host, group.safe_search, group.youtube_restricted)
        .and_then(|t| Name::from_ascii(format!("{t}.")).ok());
    let (upstream_name, cname) = match target {
        Some(target) => {
            let record = Record::from_rdata(
                question.name().clone(),
                ctx.settings.ttl,
                RData::CNAME(CNAME(target.clone())),
            );
            (target, Some(record))
        }
        None => (question.name().clone(), None),
    };
    let protect = ctx.settings.rebind_protection
        && !ctx
            .settings
            .may_be_internal(&asked.host.to_ascii_lowercase());
    Outcome::Forward(Box::new(Pending {
        request,
        upstream_name,
        cname,
        decision,
        group: ctx.group,
        protect,
        asked,
    }))
}

/// The answer for a blocked name.
fn blocked(request: &Message, how: &BlockedAnswer, ttl: u32) -> Vec<u8> {
    match *how {
        BlockedAnswer::NxDomain => encode(&reply_to(request, ResponseCode::NXDomain)),
        BlockedAnswer::BlockPage { ipv4, ipv6 } => address_answer(request, ipv4, ipv6, ttl),
    }
}

/// The question's name answered with these addresses (the block page's, or the gateway's for
/// its own names). Other record types, and AAAA without an IPv6 address, get "no such record"
/// (NOERROR, no answer), so nothing else about the name leaks through, e.g. HTTPS records
/// with other addresses.
fn address_answer(request: &Message, ipv4: Ipv4Addr, ipv6: Option<Ipv6Addr>, ttl: u32) -> Vec<u8> {
    let question = &request.queries[0];
    let name = question.name().clone();
    let mut r = reply_to(request, ResponseCode::NoError);
    let data = match (question.query_type(), ipv6) {
        (RecordType::A, _) => Some(RData::A(A(ipv4))),
        (RecordType::AAAA, Some(ipv6)) => Some(RData::AAAA(AAAA(ipv6))),
        _ => None,
    };
    if let Some(data) = data {
        r.add_answer(Record::from_rdata(name, ttl, data));
    }
    encode(&r)
}

#[cfg(test)]
mod tests;
