//! Sharing one incident with an authority (police, local authority): a JSON document signed
//! with the exporting DSL's key, as a download or inside a self-contained HTML page that
//! people can read and `lookout export verify` can check. Every export is audited, with the
//! document's SHA-256.

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use lookout_auth::canonical_json;
use maud::{html, PreEscaped, DOCTYPE};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::alerts::SAFEGUARDING;
use crate::pages::{csrf, page, when};
use crate::session::{PageError, Posted, Viewer};
use crate::{now_ms, Console};

/// The `kind` of an export document.
pub const EXPORT_KIND: &str = "lookout-incident-export";

/// `GET /incidents/{id}/export`.
pub(crate) async fn form(
    State(console): State<Console>,
    viewer: Viewer,
    Path(id): Path<i64>,
) -> Result<Html<String>, PageError> {
    viewer.require(SAFEGUARDING)?;
    let (incident, _) = console
        .store()
        .incident(id)
        .await?
        .ok_or_else(|| PageError::NotFound(format!("There is no incident {id}.")))?;
    let body = html! {
        p { "Export " strong { (incident.reference) } " for an authority that has asked for it. The export is signed with your key, so changes to it can be detected, and the export itself is recorded in the audit log." }
        form method="post" action={"/incidents/" (id) "/export"} class="stack narrow" {
            (csrf(&viewer.session.csrf))
            label for="requested_by" { "Who asked for it (name, organisation, their reference)" }
            input id="requested_by" name="requested_by" type="text" required maxlength="300";
            label for="purpose" { "Why it is being shared (lawful basis, purpose)" }
            textarea id="purpose" name="purpose" rows="3" required maxlength="2000" {}
            fieldset {
                legend { "Format" }
                label class="choice" { input type="radio" name="format" value="html" checked required; " A readable page (HTML, with the signed data inside)" }
                label class="choice" { input type="radio" name="format" value="json" required; " Data only (JSON)" }
            }
            button type="submit" { "Export and sign" }
        }
    };
    Ok(page(
        &viewer,
        &format!("Export {}", incident.reference),
        body,
    ))
}

#[derive(Deserialize)]
pub(crate) struct ExportForm {
    #[serde(default)]
    requested_by: String,
    #[serde(default)]
    purpose: String,
    #[serde(default)]
    format: String,
}

/// `POST /incidents/{id}/export`: the signed document, as a download.
pub(crate) async fn export(
    State(console): State<Console>,
    Path(id): Path<i64>,
    Posted(viewer, f): Posted<ExportForm>,
) -> Result<Response, PageError> {
    viewer.require(SAFEGUARDING)?;
    let (requested_by, purpose) = (f.requested_by.trim(), f.purpose.trim());
    if requested_by.is_empty() || purpose.is_empty() {
        return Err(PageError::BadForm(
            "Please say who asked for it and why it is being shared.".into(),
        ));
    }
    if !matches!(f.format.as_str(), "html" | "json") {
        return Err(PageError::BadForm(
            "Choose a format: a readable page or data only.".into(),
        ));
    }
    let store = console.store();
    let (incident, entries) = store
        .incident(id)
        .await?
        .ok_or_else(|| PageError::NotFound(format!("There is no incident {id}.")))?;
    let mut alerts = Vec::new();
    for e in entries.iter().filter(|e| e.kind == "alert") {
        if let Some(a) = e.body.get("alert").and_then(Value::as_i64) {
            if let Some((alert, findings)) = store.alert(a).await? {
                alerts.push(json!({
                    "id": alert.id, "reference": alert.reference, "category": alert.category,
                    "severity": alert.severity, "subject": alert.subject, "created_ms": alert.created_ms,
                    "findings": findings.iter().map(|f| json!({
                        "at_ms": f.finding.at_ms, "source": f.finding.source, "evidence": f.finding.evidence,
                        "context": f.finding.context, "location": f.finding.location,
                    })).collect::<Vec<_>>(),
                }));
            }
        }
    }
    let now = now_ms();
    let document = json!({
        "kind": EXPORT_KIND,
        "organisation": console.settings().organisation,
        "exported_ms": now,
        "exported_by": viewer.username(),
        "requested_by": requested_by,
        "purpose": purpose,
        "incident": {
            "id": incident.id, "reference": incident.reference, "title": incident.title,
            "category": incident.category, "status": incident.status,
            "opened_ms": incident.opened_ms, "opened_by": incident.opened_by,
        },
        "chronology": entries.iter().map(|e| json!({
            "entry": e.id, "at_ms": e.at_ms, "by": e.by_user, "kind": e.kind,
            "body": e.body, "corrects": e.corrects,
        })).collect::<Vec<_>>(),
        "alerts": alerts,
    });
    let (key_id, key) = crate::checks::signing_key(&console, &viewer).await?;
    let bytes = canonical_json(&document);
    let envelope = json!({
        "document": document,
        "signature": {
            "algorithm": "Ed25519",
            "signed": "canonical JSON of `document` (keys sorted, no white space)",
            "signer": viewer.username(),
            "key_id": key_id,
            "public_key": key.public(),
            "value": key.sign(&bytes),
        },
    });
    let digest = lookout_auth::secret_hash(&String::from_utf8_lossy(&bytes));
    store
        .audit(
            &viewer
                .audit("incident.export", format!("incident:{id}"))
                .detail(format!("{} for {requested_by}; sha256 {digest}", f.format)),
        )
        .await?;
    let json_text = serde_json::to_string_pretty(&envelope).unwrap_or_default();
    let (body, kind, ext) = match f.format.as_str() {
        "json" => (json_text, "application/json", "json"),
        _ => (
            export_page(&envelope, &json_text),
            "text/html; charset=utf-8",
            "html",
        ),
    };
    Ok((
        [
            (header::CONTENT_TYPE, kind.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!(
                    "attachment; filename=\"{}-export.{ext}\"",
                    incident.reference
                ),
            ),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        body,
    )
        .into_response())
}

/// The readable page: everything in the document, and the signed JSON itself.
fn export_page(envelope: &Value, json_text: &str) -> String {
    let d = &envelope["document"];
    let s = |v: &Value| v.as_str().unwrap_or("").to_owned();
    let t = |v: &Value| v.as_i64().map(when).unwrap_or_default();
    // `</` cannot appear inside the script element: JSON allows `<\/`.
    let embedded = json_text.replace("</", "<\\/");
    html! {
        (DOCTYPE)
        html lang="en-GB" {
            head {
                meta charset="utf-8";
                title { "Incident " (s(&d["incident"]["reference"])) " — export" }
                style { "body{font-family:system-ui,Arial,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;line-height:1.5}table{border-collapse:collapse;width:100%}td,th{border:1px solid #999;padding:.3rem .5rem;text-align:left;vertical-align:top}code{word-break:break-all}" }
            }
            body {
                h1 { "Incident " (s(&d["incident"]["reference"])) ": " (s(&d["incident"]["title"])) }
                p { strong { "OFFICIAL-SENSITIVE. " } "Shared by " (s(&d["organisation"])) " with " (s(&d["requested_by"])) " for: " (s(&d["purpose"])) }
                p { "Exported " (t(&d["exported_ms"])) " by " (s(&d["exported_by"])) ". Category " (s(&d["incident"]["category"])) "; status " (s(&d["incident"]["status"])) "." }
                h2 { "Chronology" }
                table {
                    tr { th { "#" } th { "When" } th { "Who" } th { "What" } }
                    @for e in d["chronology"].as_array().into_iter().flatten() {
                        tr {
                            td { (e["entry"]) }
                            td { (t(&e["at_ms"])) }
                            td { (s(&e["by"])) }
                            td { strong { (s(&e["kind"])) } @if let Some(c) = e["corrects"].as_i64() { " (corrects #" (c) ")" } br; code { (e["body"].to_string()) } }
                        }
                    }
                }
                @if d["alerts"].as_array().is_some_and(|a| !a.is_empty()) {
                    h2 { "Linked alerts" }
                    @for a in d["alerts"].as_array().into_iter().flatten() {
                        h3 { "Alert " (s(&a["reference"])) " (" (s(&a["category"])) ", " (s(&a["severity"])) ")" }
                        ul { @for f in a["findings"].as_array().into_iter().flatten() {
                            li { (t(&f["at_ms"])) " — " (s(&f["source"])) ": " (s(&f["context"])) }
                        } }
                    }
                }
                h2 { "Signature" }
                p { "Signed with Ed25519 by " (s(&envelope["signature"]["signer"])) ", public key " code { (s(&envelope["signature"]["public_key"])) } ". To check that nothing has been changed: " code { "lookout export verify THIS-FILE.html" } "." }
                script type="application/json" id="lookout-export" { (PreEscaped(embedded)) }
            }
        }
    }
    .into_string()
}

/// What a valid export says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportCheck {
    pub reference: String,
    pub signer: String,
    pub key_id: i64,
    pub public_key: String,
    pub exported_ms: i64,
}

/// Checks an export (the JSON, or the HTML page with the JSON inside): the signature must
/// match the document under the public key it names. Whether that key is really the signer's
/// is for the caller to check against the organisation's keys.
pub fn verify_export(text: &str) -> Result<ExportCheck, String> {
    let is_page = !text.trim_start().starts_with('{');
    let json = match !is_page {
        true => text.to_owned(),
        false => {
            let marker = "id=\"lookout-export\">";
            let start = text
                .find(marker)
                .ok_or("no signed Lookout export inside this file")?
                + marker.len();
            let end = text[start..]
                .find("</script>")
                .ok_or("the signed data in this page is cut short")?;
            text[start..start + end].replace("<\\/", "</")
        }
    };
    let envelope: Value = serde_json::from_str(&json)
        .map_err(|e| format!("the signed data is not valid JSON: {e}"))?;
    let document = &envelope["document"];
    if document["kind"] != EXPORT_KIND {
        return Err("this is not a Lookout incident export".into());
    }
    let sig = &envelope["signature"];
    let field = |v: &Value, name: &str| {
        v.as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("the signature has no {name}"))
    };
    let public_key = field(&sig["public_key"], "public key")?;
    let value = field(&sig["value"], "value")?;
    lookout_auth::verify_signature(&public_key, &canonical_json(document), &value)
        .map_err(|e| e.to_string())?;
    let signer = field(&sig["signer"], "signer")?;
    if document["exported_by"].as_str() != Some(signer.as_str()) {
        return Err("the signer is not the person the document says exported it".into());
    }
    // The readable part of a page must be exactly what the signed data renders to.
    if is_page && export_page(&envelope, &json) != text {
        return Err(
            "the readable part of the page was changed: it no longer matches the signed data"
                .into(),
        );
    }
    Ok(ExportCheck {
        reference: document["incident"]["reference"]
            .as_str()
            .unwrap_or("")
            .to_owned(),
        signer,
        key_id: sig["key_id"].as_i64().unwrap_or(0),
        public_key,
        exported_ms: document["exported_ms"].as_i64().unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn export(html: bool) -> String {
        let key = lookout_auth::SigningKey::generate();
        let document = json!({"kind": EXPORT_KIND, "exported_by": "dee", "exported_ms": 5,
            "incident": {"reference": "INC-2026-0001"}, "chronology": [{"body": {"text": "</script><b>x"}}]});
        let envelope = json!({"document": document, "signature": {"signer": "dee", "key_id": 3,
            "public_key": key.public(), "value": key.sign(&canonical_json(&document))}});
        let text = serde_json::to_string_pretty(&envelope).unwrap();
        if html {
            export_page(&envelope, &text)
        } else {
            text
        }
    }

    #[test]
    fn exports_verify_and_tampering_is_found() {
        for html in [false, true] {
            let good = export(html);
            let ok = verify_export(&good).unwrap();
            assert_eq!(
                (ok.reference.as_str(), ok.signer.as_str(), ok.key_id),
                ("INC-2026-0001", "dee", 3)
            );
            let table = [
                (
                    good.replacen("INC-2026-0001", "INC-2026-0002", 1),
                    if html {
                        "readable part"
                    } else {
                        "does not match"
                    },
                ),
                (
                    good.replacen("\"exported_by\": \"dee\"", "\"exported_by\": \"eve\"", 1),
                    "does not match",
                ),
                (
                    good.replace(EXPORT_KIND, "something-else"),
                    "not a Lookout incident export",
                ),
                (
                    good.replacen("dee", "dee ", 1),
                    if html { "readable part" } else { "" },
                ),
                (
                    "<html>nothing</html>".to_owned(),
                    "no signed Lookout export",
                ),
                ("{not json".to_owned(), "not valid JSON"),
            ];
            for (text, want) in table {
                let err = verify_export(&text).unwrap_err();
                assert!(err.contains(want), "html={html}: {err}");
            }
        }
        // The page cannot be broken out of by text in the record.
        let page = export(true);
        assert!(!page.contains("</script><b>"));
    }
}
