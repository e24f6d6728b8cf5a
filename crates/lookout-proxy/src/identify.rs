//! Who is asking: the client's network, proxy credentials, or the user signed in at the
//! client's address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use lookout_directory::Verdict;
use lookout_policy::{GroupId, Networks, Policy};
use lookout_store::{now_ms, Store, User};

/// Whether a network's clients must sign in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Login {
    /// Credentials, when sent, pick the user's group.
    Optional,
    /// The proxy asks for credentials unless the address has a signed-in user.
    Required,
    /// Browsers are sent to the portal to sign in at their address and accept the current
    /// e-safety briefing; credentials work too, but the briefing is still due first.
    Portal,
}

/// A client network's settings.
#[derive(Debug, Clone, Copy)]
pub struct ClientNet {
    /// Group of clients that have not signed in.
    pub group: GroupId,
    /// Whether they must sign in.
    pub login: Login,
}

/// The person (or device) behind a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Who {
    /// The client address.
    pub ip: IpAddr,
    /// The user, when known.
    pub user: Option<String>,
    /// The group whose policy applies.
    pub group: GroupId,
}

/// Why a request cannot be attributed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The address is in no configured network.
    NotServed,
    /// The network requires sign-in and none was given.
    NeedLogin,
    /// Credentials were given and are wrong (or the user is disabled).
    BadCredentials,
    /// A portal network's client that has not signed in.
    NeedPortal(GroupId),
    /// A portal network's user who has not accepted the current e-safety briefing.
    NeedBriefing(GroupId),
}

/// How long verified credentials and address look-ups are remembered.
const CACHE_TTL: Duration = Duration::from_secs(60);
/// The most remembered entries before expired ones are swept.
const CACHE_MAX: usize = 100_000;

/// A user name and group name, or `None` for "nobody".
type Found = Option<(String, String)>;
/// Remembered values with the time they were learned.
type TtlMap<K, V> = Mutex<HashMap<K, (Instant, V)>>;
/// Remembered look-ups with the time they were made.
type TtlCache<K> = TtlMap<K, Found>;

/// Maps requests to people, with caches in front of the (slow by design) password check and
/// the database.
pub struct Identifier {
    networks: Networks<ClientNet>,
    store: Option<Store>,
    /// The organisation's directory, asked when no local account accepts the password.
    directory: Option<std::sync::Arc<lookout_directory::Directory>>,
    seed: u64,
    /// Keyed hash of a `Proxy-Authorization` value → the user it verified as.
    credentials: TtlCache<u64>,
    /// Address → the user signed in there.
    addresses: TtlCache<IpAddr>,
    /// User → whether they accepted their group's current briefing, as of how many
    /// briefings the store had published (a new one makes the answer stale at once).
    briefed: TtlMap<String, (u64, bool)>,
}

fn remember<K: std::hash::Hash + Eq, V>(map: &Mutex<HashMap<K, (Instant, V)>>, k: K, v: V) {
    let mut m = map.lock().unwrap_or_else(|e| e.into_inner());
    if m.len() >= CACHE_MAX {
        m.retain(|_, (at, _)| at.elapsed() < CACHE_TTL);
        if m.len() >= CACHE_MAX {
            m.clear();
        }
    }
    m.insert(k, (Instant::now(), v));
}

fn recall<K, Q, V: Clone>(map: &Mutex<HashMap<K, (Instant, V)>>, k: &Q) -> Option<V>
where
    K: std::hash::Hash + Eq + std::borrow::Borrow<Q>,
    Q: std::hash::Hash + Eq + ?Sized,
{
    let m = map.lock().unwrap_or_else(|e| e.into_inner());
    m.get(k)
        .filter(|(at, _)| at.elapsed() < CACHE_TTL)
        .map(|(_, v)| v.clone())
}

impl Identifier {
    /// Networks and the user store (without one, only networks identify clients).
    pub fn new(networks: Networks<ClientNet>, store: Option<Store>) -> Identifier {
        Identifier {
            networks,
            store,
            directory: None,
            seed: rand::random(),
            credentials: Mutex::new(HashMap::new()),
            addresses: Mutex::new(HashMap::new()),
            briefed: Mutex::new(HashMap::new()),
        }
    }

    /// Also checks passwords against the organisation's directory (after local accounts).
    pub fn with_directory(mut self, directory: lookout_directory::Directory) -> Identifier {
        self.directory = Some(std::sync::Arc::new(directory));
        self
    }

    /// A directory sign-in: the user's local record (created or brought in step) if the
    /// directory accepts the password; `Ok(None)` if it refuses, or no directory is set;
    /// `Err` (with the reason, already logged) if the directory or the database could not
    /// answer: not the user's fault, not to be remembered.
    pub async fn directory_sign_in(
        &self,
        username: &str,
        password: &str,
        ip: IpAddr,
    ) -> Result<Option<User>, String> {
        let (Some(directory), Some(store)) = (&self.directory, &self.store) else {
            return Ok(None);
        };
        match directory.verify(username, password).await {
            Ok(Verdict::Accepted(p)) => {
                let person = lookout_store::DirectoryPerson {
                    username: &p.username,
                    display_name: &p.display_name,
                    group: Some(&p.group),
                    role: None,
                    email: None,
                    source: "directory",
                };
                match store.directory_user(&person, &ip.to_string()).await {
                    Ok(lookout_store::DirectoryRecord::Ready(user)) => Ok(Some(user)),
                    Ok(_) => Ok(None),
                    // A name Lookout cannot store is a refusal; a database failure is not.
                    Err(lookout_store::UserError::BadName(_)) => Ok(None),
                    Err(e) => {
                        tracing::warn!("directory sign-in of {username}: the database failed: {e}");
                        Err(e.to_string())
                    }
                }
            }
            Ok(Verdict::Refused) => Ok(None),
            Ok(Verdict::NoGroup { dn }) => {
                tracing::warn!("directory sign-in of {username} refused: {dn} is in none of the groups mapped in [[ldap.group]] and there is no default_group");
                Ok(None)
            }
            Err(e) => {
                tracing::warn!("directory sign-in of {username}: {e}");
                Err(e.to_string())
            }
        }
    }

    /// Forgets whether `user` accepted the briefing, e.g. once they have, so that their next
    /// request is let through at once.
    pub fn forget_briefing(&self, user: &str) {
        let mut m = self.briefed.lock().unwrap_or_else(|e| e.into_inner());
        m.remove(user);
    }

    /// Forgets what is remembered about `ip`, e.g. when a user signs in or out there, so
    /// the next request looks the address up again.
    pub fn forget_address(&self, ip: IpAddr) {
        let mut m = self.addresses.lock().unwrap_or_else(|e| e.into_inner());
        m.remove(&ip);
    }

    /// Forgets every remembered credential check and signed-in address: the accounts
    /// changed (a site gateway took its central's), so each is checked again at its next use.
    pub fn forget_accounts(&self) {
        self.credentials
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        self.addresses
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// The user store, if users are known.
    pub fn store(&self) -> Option<&Store> {
        self.store.as_ref()
    }

    /// The client's network, or `None` if Lookout does not serve it.
    pub fn network(&self, ip: IpAddr) -> Option<ClientNet> {
        self.networks.get(ip).copied()
    }

    /// Identifies a request from `ip` carrying `authorization` (a `Proxy-Authorization`
    /// value). A user whose group the policy lacks gets the network's group.
    pub async fn identify(
        &self,
        policy: &Policy,
        ip: IpAddr,
        authorization: Option<&[u8]>,
    ) -> Result<Who, Refusal> {
        let net = self.network(ip).ok_or(Refusal::NotServed)?;
        let as_user = |(user, group): (String, String)| Who {
            ip,
            group: policy.group_id(&group).unwrap_or(net.group),
            user: Some(user),
        };
        let found = match authorization {
            Some(header) => Some(
                self.check_credentials(header, ip)
                    .await
                    .ok_or(Refusal::BadCredentials)?,
            ),
            None => self.signed_in(ip).await,
        };
        if let Some(user) = found {
            if net.login == Login::Portal && !self.briefed(&user.0, &user.1).await {
                return Err(Refusal::NeedBriefing(net.group));
            }
            return Ok(as_user(user));
        }
        match net.login {
            Login::Required => Err(Refusal::NeedLogin),
            Login::Portal => Err(Refusal::NeedPortal(net.group)),
            Login::Optional => Ok(Who {
                ip,
                user: None,
                group: net.group,
            }),
        }
    }

    async fn check_credentials(&self, header: &[u8], ip: IpAddr) -> Option<(String, String)> {
        let key = xxhash_rust::xxh3::xxh3_64_with_seed(header, self.seed);
        if let Some(known) = recall(&self.credentials, &key) {
            return known;
        }
        let store = self.store.as_ref()?;
        let (user, password) = lookout_http::basic_credentials(header)?;
        let verified = match store.verify_password(&user, &password).await {
            Ok(Some(u)) => Some((u.username, u.group)),
            Ok(None) => match self.directory_sign_in(&user, &password, ip).await {
                Ok(found) => found.map(|u| (u.username, u.group)),
                Err(_) => return None,
            },
            // A database failure is not the user's fault: refuse now, do not remember it.
            Err(_) => return None,
        };
        remember(&self.credentials, key, verified.clone());
        verified
    }

    /// Whether `user` (of `group`) accepted the group's current briefing (or none was
    /// published). A database that cannot say is not the user's fault: let through, not
    /// remembered (the briefing is governance; the filtering still applies).
    async fn briefed(&self, user: &str, group: &str) -> bool {
        let Some(store) = self.store.as_ref() else {
            return true;
        };
        let published = store.briefings_published();
        if let Some((seen, known)) = recall(&self.briefed, user) {
            if seen == published {
                return known;
            }
        }
        match store.briefing_due(user, group).await {
            Ok(due) => {
                remember(&self.briefed, user.to_owned(), (published, due.is_none()));
                due.is_none()
            }
            Err(_) => true,
        }
    }

    async fn signed_in(&self, ip: IpAddr) -> Option<(String, String)> {
        let store = self.store.as_ref()?;
        if let Some(known) = recall(&self.addresses, &ip) {
            return known;
        }
        let found = store
            .user_at_address(ip, now_ms())
            .await
            .ok()?
            .map(|u| (u.username, u.group));
        remember(&self.addresses, ip, found.clone());
        found
    }
}
