//! Directory sign-in against a real OpenLDAP server (`slapd`) on loopback.

use std::time::Duration;

use lookout_directory::{Directory, DirectoryError, Settings, Verdict};
use lookout_testkit::Slapd;

const SUFFIX: &str = "dc=college,dc=test";

/// People and groups as a college's directory has them: an IT technician, a teacher, a
/// learner, someone in no group, and two entries answering to one name.
const LDIF: &str = "dn: dc=college,dc=test
objectClass: dcObject
objectClass: organization
o: College
dc: college

dn: ou=people,dc=college,dc=test
objectClass: organizationalUnit
ou: people

dn: ou=groups,dc=college,dc=test
objectClass: organizationalUnit
ou: groups

dn: uid=ian,ou=people,dc=college,dc=test
objectClass: inetOrgPerson
uid: ian
cn: Ian Tech
sn: Tech
displayName: Ian the Technician
userPassword: ians-password

dn: uid=tess,ou=people,dc=college,dc=test
objectClass: inetOrgPerson
uid: tess
cn: Tess Teacher
sn: Teacher
userPassword: tess-password

dn: uid=leo,ou=people,dc=college,dc=test
objectClass: inetOrgPerson
uid: leo
cn: Leo Learner
sn: Learner
userPassword: leos-password

dn: uid=nora,ou=people,dc=college,dc=test
objectClass: inetOrgPerson
uid: nora
cn: Nora Nogroup
sn: Nogroup
userPassword: noras-password

dn: cn=twin one,ou=people,dc=college,dc=test
objectClass: inetOrgPerson
uid: twin
cn: twin one
sn: One
userPassword: twin-password

dn: cn=twin two,ou=people,dc=college,dc=test
objectClass: inetOrgPerson
uid: twin
cn: twin two
sn: Two
userPassword: twin-password

dn: cn=IT Staff,ou=groups,dc=college,dc=test
objectClass: groupOfNames
cn: IT Staff
member: uid=ian,ou=people,dc=college,dc=test

dn: cn=Staff,ou=groups,dc=college,dc=test
objectClass: groupOfNames
cn: Staff
member: uid=ian,ou=people,dc=college,dc=test
member: uid=tess,ou=people,dc=college,dc=test

dn: cn=Learners,ou=groups,dc=college,dc=test
objectClass: groupOfNames
cn: Learners
member: uid=leo,ou=people,dc=college,dc=test
";

fn settings(url: &str) -> Settings {
    Settings {
        url: url.to_owned(),
        starttls: false,
        bind_dn: Some(format!("cn=admin,{SUFFIX}")),
        bind_password: Some("admin".into()),
        base_dn: SUFFIX.into(),
        user_filter: "(|(uid={username})(sAMAccountName={username}))".into(),
        groups: vec![
            (format!("cn=IT Staff,ou=groups,{SUFFIX}"), "it-staff".into()),
            (format!("cn=Staff,ou=groups,{SUFFIX}"), "staff".into()),
            (format!("cn=Learners,ou=groups,{SUFFIX}"), "learners".into()),
        ],
        default_group: None,
        timeout: Duration::from_secs(5),
    }
}

#[tokio::test]
async fn passwords_and_groups_come_from_the_directory() {
    // sAMAccountName is not in OpenLDAP's schemas: the filter uses uid only here.
    let Some(slapd) = Slapd::start(SUFFIX, LDIF) else {
        return;
    };
    let mut s = settings(&slapd.url);
    s.user_filter = "(uid={username})".into();
    let dir = Directory::new(s.clone()).unwrap();
    let accepted = |v: Verdict| match v {
        Verdict::Accepted(p) => (p.group, p.display_name),
        other => panic!("{other:?}"),
    };
    let table = [
        ("ian", "ians-password", ("it-staff", "Ian the Technician")),
        ("tess", "tess-password", ("staff", "Tess Teacher")),
        ("leo", "leos-password", ("learners", "Leo Learner")),
    ];
    for (user, pw, (group, name)) in table {
        let (g, n) = accepted(dir.verify(user, pw).await.unwrap());
        assert_eq!((g.as_str(), n.as_str()), (group, name), "{user}");
    }
    // Refused: a wrong or empty password, an unknown name, a filter injection.
    for (user, pw) in [
        ("ian", "wrong"),
        ("ian", ""),
        ("nobody", "x"),
        ("*", "ians-password"),
        ("ian)(uid=*", "ians-password"),
    ] {
        assert_eq!(
            dir.verify(user, pw).await.unwrap(),
            Verdict::Refused,
            "{user} {pw}"
        );
    }
    // In no mapped group: refused unless there is a default group.
    assert!(matches!(
        dir.verify("nora", "noras-password").await.unwrap(),
        Verdict::NoGroup { .. }
    ));
    let with_default = Directory::new(Settings {
        default_group: Some("guests".into()),
        ..s.clone()
    })
    .unwrap();
    assert_eq!(
        accepted(with_default.verify("nora", "noras-password").await.unwrap()).0,
        "guests"
    );
    // Two entries answer to one name: an error, never a guess.
    assert!(matches!(
        dir.verify("twin", "twin-password").await,
        Err(DirectoryError::Ambiguous { count: 2, .. })
    ));
    // A wrong service account password, and a directory that is not there: errors naming it.
    let bad_service = Directory::new(Settings {
        bind_password: Some("nope".into()),
        ..s.clone()
    })
    .unwrap();
    let e = bad_service
        .verify("ian", "ians-password")
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("refused Lookout's service account"),
        "{e}"
    );
    drop(slapd);
    let e = dir.verify("ian", "ians-password").await.unwrap_err();
    assert!(e.to_string().contains("cannot reach the directory"), "{e}");
}
