//! OpenID Connect sign-in against a real OpenID Provider (oidc-provider, run by the testkit on
//! a loopback port): the code flow end to end, the claims mapped, and each way it can fail.

use std::time::Duration;

use lookout_directory::oidc::{ClaimRule, Oidc, OidcError, OidcSettings};
use lookout_testkit::{IdpOutcome, OidcProvider};
use serde_json::json;

const REDIRECT: &str = "http://127.0.0.1:9/sign-in/oidc/callback";

fn provider() -> Option<OidcProvider> {
    OidcProvider::start(
        &json!({
            "dsl": {"password": "pw-dsl", "claims": {
                "preferred_username": "dsl@college.example", "name": "Dee Ess", "email": "dsl@college.example",
                "email_verified": true, "groups": ["g-dsl", "g-staff"]}},
            "nobody": {"password": "pw-nobody", "claims": {"preferred_username": "nobody@college.example"}}
        }),
        &json!({"client_id": "lookout", "client_secret": "s3cret-s3cret-s3cret", "redirect_uris": [REDIRECT]}),
    )
}

fn settings(issuer: &str, secret: &str) -> OidcSettings {
    OidcSettings {
        issuer: issuer.into(),
        client_id: "lookout".into(),
        client_secret: Some(secret.into()),
        redirect_url: REDIRECT.into(),
        scopes: vec![],
        username_claim: None,
        roles: vec![ClaimRule {
            claim: "groups".into(),
            value: "g-dsl".into(),
            to: "dsl".into(),
        }],
        groups: vec![ClaimRule {
            claim: "groups".into(),
            value: "g-staff".into(),
            to: "staff".into(),
        }],
        default_group: None,
        timeout: Duration::from_secs(5),
        extra_roots: vec![],
    }
}

fn query(url: &str, name: &str) -> Option<String> {
    url::Url::parse(url)
        .ok()?
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

#[tokio::test]
async fn the_code_flow_gives_a_verified_person() {
    let Some(idp) = provider() else { return };
    let oidc = Oidc::new(settings(&idp.issuer, "s3cret-s3cret-s3cret")).unwrap();

    // (login, password, second factor, role, group)
    let cases = [
        ("dsl", "pw-dsl", true, Some("dsl"), Some("staff")),
        ("dsl", "pw-dsl", false, Some("dsl"), Some("staff")),
        ("nobody", "pw-nobody", false, None, None),
    ];
    for (login, password, mfa, role, group) in cases {
        let (url, pending) = oidc.begin().await.unwrap();
        assert_eq!(
            query(&url, "state").as_deref(),
            Some(pending.state.as_str())
        );
        assert_eq!(
            query(&url, "code_challenge_method").as_deref(),
            Some("S256")
        );
        let IdpOutcome::Back(back) = idp.sign_in(&url, login, password, mfa, false).await else {
            panic!("{login} was refused");
        };
        assert!(back.starts_with(REDIRECT), "{back}");
        assert_eq!(
            query(&back, "state").as_deref(),
            Some(pending.state.as_str())
        );
        let code = query(&back, "code").expect("a code");
        let id = oidc.finish(&code, pending).await.unwrap();
        assert_eq!(id.role.as_deref(), role, "{login}");
        assert_eq!(id.group.as_deref(), group, "{login}");
        assert_eq!(id.multi_factor, mfa, "{login}");
        assert_eq!(id.subject, login);
        if login == "dsl" {
            assert_eq!(id.username, "dsl@college.example");
            assert_eq!(id.display_name, "Dee Ess");
            assert_eq!(id.email.as_deref(), Some("dsl@college.example"));
        }
    }
}

#[tokio::test]
async fn a_code_is_bound_to_its_sign_in() {
    let Some(idp) = provider() else { return };
    let oidc = Oidc::new(settings(&idp.issuer, "s3cret-s3cret-s3cret")).unwrap();

    // A code taken to another sign-in (its PKCE verifier and nonce) is refused; with its
    // own it works.
    let (url, pending) = oidc.begin().await.unwrap();
    let (_, other) = oidc.begin().await.unwrap();
    let IdpOutcome::Back(back) = idp.sign_in(&url, "dsl", "pw-dsl", false, false).await else {
        panic!("refused")
    };
    let code = query(&back, "code").unwrap();
    let e = oidc.finish(&code, other).await.unwrap_err();
    assert!(matches!(e, OidcError::Exchange(_)), "{e}");
    assert!(e.to_string().contains("invalid_grant"), "{e}");
    let id = oidc.finish(&code, pending).await.unwrap();
    assert_eq!(id.subject, "dsl");
}

#[tokio::test]
async fn failures_are_named() {
    let Some(idp) = provider() else { return };

    // A wrong password stays at the provider.
    let oidc = Oidc::new(settings(&idp.issuer, "s3cret-s3cret-s3cret")).unwrap();
    let (url, _) = oidc.begin().await.unwrap();
    assert_eq!(
        idp.sign_in(&url, "dsl", "wrong", false, false).await,
        IdpOutcome::Refused(401)
    );

    // Cancelling comes back with an error, not a code.
    let (url, _) = oidc.begin().await.unwrap();
    let IdpOutcome::Back(back) = idp.sign_in(&url, "dsl", "pw-dsl", false, true).await else {
        panic!("no redirect")
    };
    assert_eq!(query(&back, "error").as_deref(), Some("access_denied"));
    assert_eq!(query(&back, "code"), None);

    // A wrong client secret: the code exchange fails and says so.
    let bad = Oidc::new(settings(&idp.issuer, "not-the-secret")).unwrap();
    let (url, pending) = bad.begin().await.unwrap();
    let IdpOutcome::Back(back) = idp.sign_in(&url, "dsl", "pw-dsl", false, false).await else {
        panic!("refused")
    };
    let e = bad
        .finish(&query(&back, "code").unwrap(), pending)
        .await
        .unwrap_err();
    assert!(matches!(e, OidcError::Exchange(_)), "{e}");
    assert!(e.to_string().contains("invalid_client"), "{e}");

    // A provider that is not there.
    let gone = Oidc::new(settings("http://127.0.0.1:9", "x")).unwrap();
    let e = gone.begin().await.unwrap_err();
    assert!(matches!(e, OidcError::Discovery { .. }), "{e}");
    assert!(e.to_string().contains("http://127.0.0.1:9"), "{e}");
}
