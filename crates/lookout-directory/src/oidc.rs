//! OpenID Connect sign-in (Microsoft Entra ID, Google Workspace, any certified provider):
//! the authorization code flow with PKCE, a nonce and a state, the ID token checked by the
//! `openidconnect` crate (signature against the provider's published keys, issuer, audience,
//! expiry, nonce), then the person's Lookout role and group taken from their claims by
//! configured rules.
//!
//! The provider's metadata and keys are discovered on first use and again every hour; when
//! an ID token is signed with a key not yet seen (the provider rotated its keys) they are
//! discovered again once before the token is refused. A failed discovery keeps the copy in
//! hand. HTTP goes through reqwest with rustls and no redirects (a redirect from the token
//! endpoint is never followed with the code).

use std::time::{Duration, Instant};

use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreAuthenticationFlow, CoreErrorResponseType,
    CoreGenderClaim, CoreJsonWebKey, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm,
    CoreProviderMetadata, CoreRevocableToken, CoreRevocationErrorResponse,
    CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AdditionalClaims, AuthorizationCode, Client, ClientId, ClientSecret, CsrfToken,
    EmptyExtraTokenFields, EndpointMaybeSet, EndpointNotSet, EndpointSet, IdTokenFields, IssuerUrl,
    Nonce, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, StandardErrorResponse,
    StandardTokenResponse,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// How long discovered metadata and keys are used before they are fetched again.
const REDISCOVER_AFTER: Duration = Duration::from_secs(3600);

/// A claim rule: when the ID token's `claim` is `value` (or, for a list such as `groups`,
/// holds it), the person gets `to` (a console role or a Lookout group).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimRule {
    pub claim: String,
    pub value: String,
    pub to: String,
}

impl ClaimRule {
    fn matches(&self, claims: &Map<String, Value>) -> bool {
        match claims.get(&self.claim) {
            Some(Value::String(s)) => *s == self.value,
            Some(Value::Array(items)) => items
                .iter()
                .any(|i| i.as_str() == Some(self.value.as_str())),
            Some(Value::Bool(b)) => b.to_string() == self.value,
            _ => false,
        }
    }
}

/// The first rule that matches, if any.
fn first_match(rules: &[ClaimRule], claims: &Map<String, Value>) -> Option<String> {
    rules
        .iter()
        .find(|r| r.matches(claims))
        .map(|r| r.to.clone())
}

/// Who the provider is and how its people map to Lookout.
#[derive(Clone, Debug)]
pub struct OidcSettings {
    /// The issuer, e.g. `https://login.microsoftonline.com/<tenant id>/v2.0`.
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Option<String>,
    /// Where the provider sends the browser back (registered with the provider).
    pub redirect_url: String,
    /// Scopes asked for besides `openid`, `profile` and `email`.
    pub scopes: Vec<String>,
    /// The claim that gives the Lookout user name (`preferred_username` then `email` when
    /// unset or absent).
    pub username_claim: Option<String>,
    /// Claim rules giving a console role, first match wins.
    pub roles: Vec<ClaimRule>,
    /// Claim rules giving a Lookout group, first match wins.
    pub groups: Vec<ClaimRule>,
    /// The group of people no group rule matches (none: their record keeps its group, and a
    /// new record cannot be made).
    pub default_group: Option<String>,
    /// Connecting and each request to the provider.
    pub timeout: Duration,
    /// Extra roots to trust for the provider's HTTPS (a private CA), DER.
    pub extra_roots: Vec<Vec<u8>>,
}

/// The claims Lookout reads beyond the standard ones: all of them, kept as JSON, so that
/// rules can name any claim (`groups`, `roles`, `hd`, ...).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct OtherClaims(Map<String, Value>);

impl AdditionalClaims for OtherClaims {}

type TokenFields = IdTokenFields<
    OtherClaims,
    EmptyExtraTokenFields,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;
type TokenResponse = StandardTokenResponse<TokenFields, CoreTokenType>;
type OidcClient = Client<
    OtherClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    TokenResponse,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// A sign-in sent to the provider and not yet back: kept by the caller, keyed by `state`.
#[derive(Debug)]
pub struct Pending {
    /// The `state` parameter (random, 128 bits or more), to match the browser's return.
    pub state: String,
    nonce: Nonce,
    verifier: PkceCodeVerifier,
    /// When it was made (pending sign-ins expire).
    pub started: Instant,
}

/// A person the provider vouched for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// From the username claim, as the provider gave it.
    pub username: String,
    /// `name`, else the user name.
    pub display_name: String,
    /// `email`, when the provider gave one and said it is verified (or did not say).
    pub email: Option<String>,
    /// The provider's subject identifier.
    pub subject: String,
    /// The role the first matching role rule gives.
    pub role: Option<String>,
    /// The group the first matching group rule gives, else the default group.
    pub group: Option<String>,
    /// The provider says it used more than one factor (`amr` holds `mfa`).
    pub multi_factor: bool,
    /// The claim values the rules read, for the audit log (`groups` etc.).
    pub matched_on: Vec<String>,
}

impl Identity {
    /// The claims the rules read, for a refusal's audit entry.
    pub fn claims_read(&self) -> String {
        if self.matched_on.is_empty() {
            "no claim the rules read".to_owned()
        } else {
            self.matched_on.join(", ")
        }
    }
}

/// Something went wrong talking to the provider or with what it sent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OidcError {
    #[error("the OpenID Connect settings are not usable: {0}")]
    Settings(String),
    #[error("cannot read the sign-in provider's metadata at {issuer}: {error}")]
    Discovery { issuer: String, error: String },
    #[error("the sign-in provider refused the sign-in: {error}{}", description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Provider {
        error: String,
        description: Option<String>,
    },
    #[error("exchanging the sign-in code failed: {0}")]
    Exchange(String),
    #[error("the sign-in provider's ID token was not accepted: {0}")]
    IdToken(String),
    #[error("the ID token has no `{0}` claim to take the user name from")]
    NoUsername(String),
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !out.contains(&more) {
            out.push_str(": ");
            out.push_str(&more);
        }
        source = s.source();
    }
    out
}

/// An OpenID Connect relying party.
#[derive(Debug)]
pub struct Oidc {
    settings: OidcSettings,
    http: reqwest::Client,
    issuer: IssuerUrl,
    redirect: RedirectUrl,
    client: tokio::sync::Mutex<Option<(Instant, OidcClient)>>,
}

impl Oidc {
    /// Checks the settings; nothing is fetched until the first sign-in.
    pub fn new(settings: OidcSettings) -> Result<Oidc, OidcError> {
        let issuer = IssuerUrl::new(settings.issuer.clone())
            .map_err(|e| OidcError::Settings(format!("issuer `{}`: {e}", settings.issuer)))?;
        let redirect = RedirectUrl::new(settings.redirect_url.clone()).map_err(|e| {
            OidcError::Settings(format!("redirect URL `{}`: {e}", settings.redirect_url))
        })?;
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(settings.timeout)
            .timeout(settings.timeout)
            .user_agent(concat!("lookout/", env!("CARGO_PKG_VERSION")));
        for der in &settings.extra_roots {
            let cert = reqwest::Certificate::from_der(der)
                .map_err(|e| OidcError::Settings(format!("a CA certificate: {e}")))?;
            builder = builder.add_root_certificate(cert);
        }
        let http = builder
            .build()
            .map_err(|e| OidcError::Settings(chain(&e)))?;
        Ok(Oidc {
            settings,
            http,
            issuer,
            redirect,
            client: tokio::sync::Mutex::new(None),
        })
    }

    /// The settings in use.
    pub fn settings(&self) -> &OidcSettings {
        &self.settings
    }

    /// The client from discovered metadata: the one in hand while it is fresh (or when a new
    /// discovery fails and `force` is not set).
    async fn client(&self, force: bool) -> Result<OidcClient, OidcError> {
        let mut held = self.client.lock().await;
        if let Some((at, client)) = held.as_ref() {
            if !force && at.elapsed() < REDISCOVER_AFTER {
                return Ok(client.clone());
            }
        }
        match CoreProviderMetadata::discover_async(self.issuer.clone(), &self.http).await {
            Ok(metadata) => {
                let client = OidcClient::from_provider_metadata(
                    metadata,
                    ClientId::new(self.settings.client_id.clone()),
                    self.settings.client_secret.clone().map(ClientSecret::new),
                )
                .set_redirect_uri(self.redirect.clone());
                *held = Some((Instant::now(), client.clone()));
                Ok(client)
            }
            Err(e) => {
                let error = OidcError::Discovery {
                    issuer: self.settings.issuer.clone(),
                    error: chain(&e),
                };
                match held.as_ref() {
                    Some((_, client)) if !force => {
                        tracing::warn!("{error}; the metadata fetched earlier is still used");
                        Ok(client.clone())
                    }
                    _ => Err(error),
                }
            }
        }
    }

    /// Starts a sign-in: the provider's URL to send the browser to, and what must be kept
    /// until it comes back.
    pub async fn begin(&self) -> Result<(String, Pending), OidcError> {
        let client = self.client(false).await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scope(Scope::new("profile".into()))
            .add_scope(Scope::new("email".into()))
            .set_pkce_challenge(challenge);
        for s in &self.settings.scopes {
            request = request.add_scope(Scope::new(s.clone()));
        }
        let (url, state, nonce) = request.url();
        Ok((
            url.to_string(),
            Pending {
                state: state.secret().clone(),
                nonce,
                verifier,
                started: Instant::now(),
            },
        ))
    }

    /// Finishes a sign-in with the code the browser brought back: exchanges it, checks the
    /// ID token, and maps the person.
    pub async fn finish(&self, code: &str, pending: Pending) -> Result<Identity, OidcError> {
        let client = self.client(false).await?;
        let response = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| OidcError::Exchange(chain(&e)))?
            .set_pkce_verifier(pending.verifier)
            .request_async(&self.http)
            .await
            .map_err(|e| OidcError::Exchange(chain(&e)))?;
        let Some(token) = response.extra_fields().id_token() else {
            return Err(OidcError::IdToken(
                "the token response has no ID token".into(),
            ));
        };
        let verifier = client.id_token_verifier();
        let claims = match token.claims(&verifier, &pending.nonce) {
            Ok(c) => c.clone(),
            Err(first) => {
                // A key this client has not seen: the provider may have rotated its keys.
                let fresh = self.client(true).await?;
                let verifier = fresh.id_token_verifier();
                let claims = token
                    .claims(&verifier, &pending.nonce)
                    .map_err(|e| {
                        OidcError::IdToken(format!("{} (before new keys: {})", chain(&e), first))
                    })?
                    .clone();
                claims
            }
        };
        let mut all = claims.additional_claims().0.clone();
        let standard = serde_json::to_value(&claims)
            .ok()
            .and_then(|v| v.as_object().cloned())
            .unwrap_or_default();
        for (k, v) in standard {
            all.entry(k).or_insert(v);
        }
        identity(&self.settings, &all)
    }
}

/// How long a hand-off from the console to the portal stays redeemable.
const HANDOFF_FOR: Duration = Duration::from_secs(120);
/// Most hand-offs outstanding at once.
const HANDOFF_MAX: usize = 10_000;

/// One-use hand-offs of a signed-in person from the console (which runs the provider's
/// sign-in over HTTPS) to the portal (which sees the device's own address): the console
/// grants a random token for a user name, the portal redeems it once, within two minutes.
#[derive(Debug, Default)]
pub struct Handoff {
    grants: std::sync::Mutex<std::collections::HashMap<String, (String, Instant)>>,
}

impl Handoff {
    /// A token that [`Handoff::redeem`] turns into `username` once; `None` when too many are
    /// outstanding.
    pub fn grant(&self, username: &str) -> Option<String> {
        let mut m = self.grants.lock().unwrap_or_else(|e| e.into_inner());
        if m.len() >= HANDOFF_MAX {
            m.retain(|_, (_, at)| at.elapsed() < HANDOFF_FOR);
            if m.len() >= HANDOFF_MAX {
                return None;
            }
        }
        let token = CsrfToken::new_random().secret().clone();
        m.insert(token.clone(), (username.to_owned(), Instant::now()));
        Some(token)
    }

    /// The user name granted under `token`, if it is fresh; the token is gone either way.
    pub fn redeem(&self, token: &str) -> Option<String> {
        let mut m = self.grants.lock().unwrap_or_else(|e| e.into_inner());
        let (name, at) = m.remove(token)?;
        (at.elapsed() < HANDOFF_FOR).then_some(name)
    }
}

/// Maps verified ID token claims to a person (sans-I/O: the rules alone).
pub fn identity(
    settings: &OidcSettings,
    claims: &Map<String, Value>,
) -> Result<Identity, OidcError> {
    let text = |name: &str| {
        claims
            .get(name)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    // An address the provider says it has not verified is never a name nor a contact (an
    // unverified `email` is how accounts get taken over across tenants).
    let email_verified = claims
        .get("email_verified")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let email = text("email").filter(|_| email_verified);
    let username = match &settings.username_claim {
        Some(c) => text(c).ok_or_else(|| OidcError::NoUsername(c.clone()))?,
        None => text("preferred_username")
            .or_else(|| email.clone())
            .ok_or_else(|| OidcError::NoUsername("preferred_username".into()))?,
    };
    let multi_factor = claims
        .get("amr")
        .and_then(Value::as_array)
        .is_some_and(|a| a.iter().any(|m| m.as_str() == Some("mfa")));
    let role = first_match(&settings.roles, claims);
    let group = first_match(&settings.groups, claims).or_else(|| settings.default_group.clone());
    let mut matched_on: Vec<String> = settings
        .roles
        .iter()
        .chain(&settings.groups)
        .map(|r| r.claim.clone())
        .collect();
    matched_on.sort();
    matched_on.dedup();
    let matched_on = matched_on
        .into_iter()
        .filter_map(|c| claims.get(&c).map(|v| format!("{c}={v}")))
        .collect();
    Ok(Identity {
        display_name: text("name").unwrap_or_else(|| username.clone()),
        username,
        email,
        subject: text("sub").unwrap_or_default(),
        role,
        group,
        multi_factor,
        matched_on,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(claim: &str, value: &str, to: &str) -> ClaimRule {
        ClaimRule {
            claim: claim.into(),
            value: value.into(),
            to: to.into(),
        }
    }

    fn settings() -> OidcSettings {
        OidcSettings {
            issuer: "https://login.example.test/tenant/v2.0".into(),
            client_id: "lookout".into(),
            client_secret: None,
            redirect_url: "https://lookout.example.test/sign-in/oidc/callback".into(),
            scopes: vec![],
            username_claim: None,
            roles: vec![
                rule("groups", "dsl-team", "dsl"),
                rule("groups", "it", "it-admin"),
                rule("hd", "college.example", "staff"),
            ],
            groups: vec![
                rule("groups", "it", "it-staff"),
                rule("roles", "Teacher", "staff"),
            ],
            default_group: Some("adult-learners".into()),
            timeout: Duration::from_secs(5),
            extra_roots: vec![],
        }
    }

    #[test]
    fn claims_map_to_people() {
        let s = settings();
        // (claims, username, role, group, multi-factor)
        type Case = (
            Value,
            &'static str,
            Option<&'static str>,
            Option<&'static str>,
            bool,
        );
        let cases: &[Case] = &[
            (
                json!({"sub": "1", "preferred_username": "dsl@college.example", "groups": ["x", "dsl-team", "it"], "amr": ["pwd", "mfa"]}),
                "dsl@college.example",
                Some("dsl"),
                Some("it-staff"),
                true,
            ),
            (
                json!({"sub": "2", "email": "t@college.example", "hd": "college.example", "roles": ["Teacher"], "amr": ["pwd"]}),
                "t@college.example",
                Some("staff"),
                Some("staff"),
                false,
            ),
            (
                json!({"sub": "3", "preferred_username": " learner ", "groups": "dsl"}),
                "learner",
                None,
                Some("adult-learners"),
                false,
            ),
            // A role value inside a string claim must match whole, not as a substring.
            (
                json!({"sub": "4", "preferred_username": "x", "hd": "college.example.evil"}),
                "x",
                None,
                Some("adult-learners"),
                false,
            ),
        ];
        for (claims, username, role, group, mfa) in cases {
            let id = identity(&s, claims.as_object().unwrap()).unwrap();
            assert_eq!(id.username, *username, "{claims}");
            assert_eq!(id.role.as_deref(), *role, "{claims}");
            assert_eq!(id.group.as_deref(), *group, "{claims}");
            assert_eq!(id.multi_factor, *mfa, "{claims}");
        }
    }

    #[test]
    fn no_username_claim_is_an_error() {
        let mut s = settings();
        let claims = json!({"sub": "1", "name": "A"});
        assert!(matches!(
            identity(&s, claims.as_object().unwrap()),
            Err(OidcError::NoUsername(c)) if c == "preferred_username"
        ));
        s.username_claim = Some("upn".into());
        let claims = json!({"sub": "1", "preferred_username": "a"});
        assert!(matches!(
            identity(&s, claims.as_object().unwrap()),
            Err(OidcError::NoUsername(c)) if c == "upn"
        ));
    }

    #[test]
    fn an_unverified_email_is_not_kept() {
        let s = settings();
        let claims = json!({"sub": "1", "preferred_username": "a", "email": "a@x.example", "email_verified": false});
        assert_eq!(
            identity(&s, claims.as_object().unwrap()).unwrap().email,
            None
        );
        let claims = json!({"sub": "1", "email": "a@x.example", "email_verified": false});
        assert!(identity(&s, claims.as_object().unwrap()).is_err());
    }

    #[test]
    fn a_handoff_is_redeemed_once() {
        let h = Handoff::default();
        let a = h.grant("amy").unwrap();
        let b = h.grant("bob").unwrap();
        assert_ne!(a, b);
        assert!(a.len() >= 22, "{a}");
        assert_eq!(h.redeem("made-up"), None);
        assert_eq!(h.redeem(&a).as_deref(), Some("amy"));
        assert_eq!(h.redeem(&a), None, "once only");
        assert_eq!(h.redeem(&b).as_deref(), Some("bob"));
    }

    #[test]
    fn bad_settings_are_named() {
        let mut s = settings();
        s.issuer = "not a url".into();
        let e = Oidc::new(s).unwrap_err().to_string();
        assert!(e.contains("issuer `not a url`"), "{e}");
    }
}
