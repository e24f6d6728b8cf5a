//! Entry points for the fuzz targets (`fuzz/fuzz_targets/console_forms.rs`): every form the
//! console accepts, decoded from hostile bytes, and the field parsers the handlers use. Not an
//! API; hidden from the documentation.

use crate::session::{decode_form, CSRF_FIELD};

/// Decodes `body` (with a matching CSRF field put in front) as every posted form and runs the
/// pure field checks on each field's text. Returns how many forms decoded.
pub fn forms(body: &[u8]) -> usize {
    let mut full = format!("{CSRF_FIELD}=t&").into_bytes();
    full.extend_from_slice(body);
    let mut decoded = 0;
    // Without the token, nothing decodes. `decode_form` checks the token before it reads the
    // form's own fields, in code shared by every form type, so one type shows it (checking
    // each of the 22 parsed the body 22 more times per input, slowing every run).
    assert!(decode_form::<Vec<(String, String)>>(body, "t").is_err() || body_has_token(body));
    macro_rules! each {
        ($($t:ty),* $(,)?) => {
            $(
                if decode_form::<$t>(&full, "t").is_ok() {
                    decoded += 1;
                }
            )*
        };
    }
    each!(
        crate::alerts::ReviewForm,
        crate::alerts::DismissForm,
        crate::checks::CheckForm,
        crate::checks::CosignForm,
        crate::concerns::ConcernForm,
        crate::export::ExportForm,
        crate::incidents::EntryForm,
        crate::incidents::NewIncident,
        crate::reviews::RequestForm,
        crate::reviews::Decision,
        crate::signin::SignInForm,
        crate::signin::NewPasswordForm,
        crate::signin::CodeForm,
        crate::users::NewUserForm,
        crate::users::RoleForm,
        crate::users::ContactForm,
        crate::briefings::BriefingForm,
        crate::incidents::HoldForm,
        crate::registers::AccountForm,
        crate::registers::AdminForm,
        crate::registers::AssessmentForm,
        crate::registers::PolicyForm,
        crate::signing::KeyForm,
    );
    // The provider's answer (a GET to the callback: no token).
    let _ = serde_urlencoded::from_bytes::<crate::oidc::Callback>(body);
    // The activity search's query string (a GET: no token) and its checks.
    if let Ok(q) = serde_urlencoded_query(body) {
        if let Ok(f) = crate::activity::filter(&q) {
            assert!(f.limit.is_some());
            if let (Some(a), Some(b)) = (f.since_ms, f.until_ms) {
                assert!(b > a);
            }
        }
    }
    if let Ok(f) = decode_form::<crate::registers::AssessmentForm>(&full, "t") {
        if let Ok(fields) = f.checked() {
            assert!(!fields.name.is_empty() && !fields.name.contains('\n'));
        }
    }
    // The register's field checks and its CSV cells.
    if let Ok(f) = decode_form::<crate::registers::AccountForm>(&full, "t") {
        if let Ok(fields) = f.checked() {
            assert!(!fields.platform.is_empty() && !fields.platform.contains('\n'));
        }
    }
    // Training: the course form (repeated fields) and the quiz in every field.
    if let Ok(pairs) = decode_form::<Vec<(String, String)>>(&full, "t") {
        let groups = ["staff".to_owned(), "learners".to_owned()];
        if let Ok(c) = crate::training::course_from_form(&pairs, &groups) {
            assert!(!c.title.is_empty() && !c.title.contains('\n'));
            assert!(!c.roles.is_empty() || !c.groups.is_empty());
            assert!((0..=100).contains(&c.pass_percent));
        }
        for (_, value) in &pairs {
            if let Ok(quiz) = crate::training::Quiz::parse(value) {
                for q in &quiz.0 {
                    assert!(q.answers.len() >= 2 && q.right < q.answers.len());
                }
                let (right, of) = quiz.grade(&pairs);
                assert!(right <= of && of == quiz.0.len() as i64);
            }
        }
    }
    if let Ok(pairs) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(body) {
        for (_, value) in pairs {
            crate::incidents::check_fields(&value);
            let cell = lookout_store::csv_cell(&value);
            // A cell never starts a formula, and quotes are balanced.
            assert!(
                !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                "{cell:?}"
            );
            assert_eq!(cell.matches('"').count() % 2, 0, "{cell:?}");
        }
    }
    decoded
}

fn body_has_token(body: &[u8]) -> bool {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .is_ok_and(|p| p.iter().any(|(k, v)| k == CSRF_FIELD && v == "t"))
}

/// A query string as axum's `Query` reads it.
fn serde_urlencoded_query(body: &[u8]) -> Result<crate::activity::ActivityQuery, ()> {
    let text = std::str::from_utf8(body).map_err(|_| ())?;
    axum::extract::Query::<crate::activity::ActivityQuery>::try_from_uri(
        &format!("/activity?{text}").parse().map_err(|_| ())?,
    )
    .map(|q| q.0)
    .map_err(|_| ())
}
