//! Directory sign-in: a user's name and password checked against LDAP or Active Directory,
//! and their Lookout group taken from the directory groups they belong to.
//!
//! One check: connect (`ldaps://`, or `ldap://` with StartTLS; plain `ldap://` only to this
//! machine, which the configuration enforces), bind as the service account (or anonymously),
//! search `base_dn` for the user with the configured filter (the name escaped, RFC 4515), find
//! the groups whose `member`/`uniqueMember` is the user (plus the user's own `memberOf`,
//! Active Directory's), then bind as the user with their password. An empty password is
//! refused before anything is sent (an LDAP bind with an empty password is an anonymous bind,
//! which many servers accept). Several entries for one name are an error, never a guess.

pub mod oidc;

use std::sync::Arc;
use std::time::Duration;

use ldap3::{ldap_escape, LdapConnAsync, LdapConnSettings, Scope, SearchEntry};

/// Where the directory is and how to read it.
#[derive(Clone, Debug)]
pub struct Settings {
    /// `ldaps://host:636` or `ldap://host:389`.
    pub url: String,
    /// Upgrade an `ldap://` connection with StartTLS.
    pub starttls: bool,
    /// The service account that searches (none: anonymous search).
    pub bind_dn: Option<String>,
    pub bind_password: Option<String>,
    /// Where users and groups are searched.
    pub base_dn: String,
    /// The user search filter with `{username}` where the (escaped) name goes.
    pub user_filter: String,
    /// Directory group DN → Lookout group, first match wins.
    pub groups: Vec<(String, String)>,
    /// The Lookout group of a directory user in none of `groups` (none: such users are
    /// refused).
    pub default_group: Option<String>,
    /// Connecting and each operation.
    pub timeout: Duration,
}

/// A user the directory accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Person {
    /// The name they signed in with, as given.
    pub username: String,
    /// `displayName` or `cn`.
    pub display_name: String,
    /// Their Lookout group.
    pub group: String,
    /// Their entry.
    pub dn: String,
}

/// What the directory said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Accepted(Person),
    /// No such user, or the wrong password.
    Refused,
    /// The password is right but the user is in no mapped group and there is no default.
    NoGroup {
        dn: String,
    },
}

/// The directory could not give an answer (the user may be fine: do not count it against
/// them, do not remember it).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DirectoryError {
    #[error("cannot set up TLS for the directory: {0}")]
    Tls(String),
    #[error("cannot reach the directory at {url}: {error}")]
    Unreachable { url: String, error: String },
    #[error("the directory refused Lookout's service account {dn}: {error}")]
    ServiceAccount { dn: String, error: String },
    #[error("searching the directory failed: {0}")]
    Search(String),
    #[error("{count} directory entries match `{username}`; the user filter must find one")]
    Ambiguous { username: String, count: usize },
    #[error("the directory answered the sign-in of {dn} with: {error}")]
    Bind { dn: String, error: String },
}

/// The LDAP result code for a wrong password (or an unknown DN).
const INVALID_CREDENTIALS: u32 = 49;

/// A directory Lookout checks passwords against.
#[derive(Clone, Debug)]
pub struct Directory {
    settings: Settings,
    tls: Arc<rustls::ClientConfig>,
}

impl Directory {
    /// Trusts the system's certificate store (`SSL_CERT_FILE` honoured) for `ldaps` and
    /// StartTLS.
    pub fn new(settings: Settings) -> Result<Directory, DirectoryError> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| DirectoryError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        Ok(Directory {
            settings,
            tls: Arc::new(tls),
        })
    }

    /// Checks `password` for `username`.
    pub async fn verify(&self, username: &str, password: &str) -> Result<Verdict, DirectoryError> {
        if password.is_empty() || username.trim().is_empty() {
            return Ok(Verdict::Refused);
        }
        let s = &self.settings;
        let unreachable = |e: ldap3::LdapError| DirectoryError::Unreachable {
            url: s.url.clone(),
            error: e.to_string(),
        };
        let conn = LdapConnSettings::new()
            .set_conn_timeout(s.timeout)
            .set_starttls(s.starttls)
            .set_config(self.tls.clone());
        let (conn, mut ldap) = LdapConnAsync::with_settings(conn, &s.url)
            .await
            .map_err(unreachable)?;
        ldap3::drive!(conn);
        if let Some(dn) = &s.bind_dn {
            let pw = s.bind_password.as_deref().unwrap_or_default();
            let r = ldap
                .with_timeout(s.timeout)
                .simple_bind(dn, pw)
                .await
                .map_err(unreachable)?;
            if r.rc != 0 {
                return Err(DirectoryError::ServiceAccount {
                    dn: dn.clone(),
                    error: describe(r.rc, &r.text),
                });
            }
        }
        let filter = user_filter(&s.user_filter, username);
        let (entries, _) = ldap
            .with_timeout(s.timeout)
            .search(
                &s.base_dn,
                Scope::Subtree,
                &filter,
                vec!["displayName", "cn", "memberOf"],
            )
            .await
            .and_then(|r| r.success())
            .map_err(|e| DirectoryError::Search(e.to_string()))?;
        let entry = match entries.len() {
            0 => {
                let _ = ldap.unbind().await;
                return Ok(Verdict::Refused);
            }
            1 => SearchEntry::construct(entries.into_iter().next().expect("one entry")),
            count => {
                let _ = ldap.unbind().await;
                return Err(DirectoryError::Ambiguous {
                    username: username.to_owned(),
                    count,
                });
            }
        };
        // Groups are read before binding as the user (who may not be allowed to search).
        let member = ldap_escape(entry.dn.as_str());
        let (groups, _) = ldap
            .with_timeout(s.timeout)
            .search(
                &s.base_dn,
                Scope::Subtree,
                &format!("(|(member={member})(uniqueMember={member}))"),
                vec!["1.1"],
            )
            .await
            .and_then(|r| r.success())
            .map_err(|e| DirectoryError::Search(e.to_string()))?;
        let mut memberships: Vec<String> = groups
            .into_iter()
            .map(|g| SearchEntry::construct(g).dn)
            .collect();
        memberships.extend(entry.attrs.get("memberOf").cloned().unwrap_or_default());
        let bound = ldap
            .with_timeout(s.timeout)
            .simple_bind(&entry.dn, password)
            .await
            .map_err(unreachable)?;
        let _ = ldap.unbind().await;
        match bound.rc {
            0 => {}
            INVALID_CREDENTIALS => return Ok(Verdict::Refused),
            rc => {
                return Err(DirectoryError::Bind {
                    dn: entry.dn,
                    error: describe(rc, &bound.text),
                })
            }
        }
        let first = |k: &str| entry.attrs.get(k).and_then(|v| v.first()).cloned();
        let display_name = first("displayName")
            .or_else(|| first("cn"))
            .unwrap_or_default();
        match group_for(&memberships, &s.groups, s.default_group.as_deref()) {
            Some(group) => Ok(Verdict::Accepted(Person {
                username: username.to_owned(),
                display_name,
                group: group.to_owned(),
                dn: entry.dn,
            })),
            None => Ok(Verdict::NoGroup { dn: entry.dn }),
        }
    }
}

fn describe(rc: u32, text: &str) -> String {
    if text.is_empty() {
        format!("LDAP result {rc}")
    } else {
        format!("LDAP result {rc} ({text})")
    }
}

/// The search filter for `username`: `{username}` in `template` replaced by the name with
/// the filter's special characters escaped, so a name cannot change the filter.
pub fn user_filter(template: &str, username: &str) -> String {
    template.replace("{username}", &ldap_escape(username))
}

/// A DN compared the way directories do for these purposes: case and the spaces around
/// separators ignored.
fn dn_key(dn: &str) -> String {
    dn.split(',')
        .map(|rdn| {
            rdn.split('=')
                .map(|p| p.trim().to_lowercase())
                .collect::<Vec<_>>()
                .join("=")
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The Lookout group for a user in the directory groups `memberships`: the first mapping
/// whose DN is one of them, else `default`.
pub fn group_for<'a>(
    memberships: &[String],
    mapping: &'a [(String, String)],
    default: Option<&'a str>,
) -> Option<&'a str> {
    let mine: Vec<String> = memberships.iter().map(|m| dn_key(m)).collect();
    mapping
        .iter()
        .find(|(dn, _)| mine.contains(&dn_key(dn)))
        .map(|(_, g)| g.as_str())
        .or(default)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_name_cannot_change_the_filter() {
        let table = [
            ("amy", "(uid=amy)"),
            ("*", "(uid=\\2a)"),
            ("amy)(uid=*", "(uid=amy\\29\\28uid=\\2a)"),
            ("a\\b", "(uid=a\\5cb)"),
            ("nul\0", "(uid=nul\\00)"),
        ];
        for (name, want) in table {
            assert_eq!(user_filter("(uid={username})", name), want, "{name:?}");
        }
        assert_eq!(
            user_filter("(|(uid={username})(sAMAccountName={username}))", "bo*"),
            "(|(uid=bo\\2a)(sAMAccountName=bo\\2a))"
        );
    }

    #[test]
    fn the_first_mapped_group_wins_and_dns_compare_loosely() {
        let mapping = vec![
            (
                "CN=IT Staff,OU=Groups,DC=college,DC=test".to_owned(),
                "it-staff".to_owned(),
            ),
            (
                "cn=staff,ou=groups,dc=college,dc=test".to_owned(),
                "staff".to_owned(),
            ),
        ];
        let table: [(&[&str], Option<&str>, Option<&str>); 5] = [
            (
                &["cn=Staff, ou=Groups, dc=college, dc=test"],
                None,
                Some("staff"),
            ),
            (
                &[
                    "cn=staff,ou=groups,dc=college,dc=test",
                    "cn=it staff,ou=groups,dc=college,dc=test",
                ],
                None,
                Some("it-staff"),
            ),
            (&["cn=other,dc=college,dc=test"], None, None),
            (
                &["cn=other,dc=college,dc=test"],
                Some("learners"),
                Some("learners"),
            ),
            (&[], Some("learners"), Some("learners")),
        ];
        for (groups, default, want) in table {
            let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
            assert_eq!(group_for(&groups, &mapping, default), want, "{groups:?}");
        }
    }
}
