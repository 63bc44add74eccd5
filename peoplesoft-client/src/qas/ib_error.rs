//! Errors that arrive with HTTP 200 or without JSON: an `IBResponse type="error"` XML
//! document, an HTML gateway page, or a body that is neither.

use crate::error::{truncate_body, Error};

/// Classifies a non-JSON body: an `IBResponse` error document, an HTML page, or garbage.
pub(crate) fn non_json_error(status: u16, url: &str, body: &str) -> Option<Error> {
    let t = body.trim_start();
    if t.starts_with('<') {
        if body.contains("IBResponse") {
            return Some(parse_ib_response(status, url, body));
        }
        let mut end = t.len().min(512);
        while !t.is_char_boundary(end) {
            end -= 1;
        }
        let head = t[..end].to_ascii_lowercase();
        if head.contains("<html") || head.contains("<!doctype html") {
            return Some(Error::HtmlPage {
                status,
                url: url.to_string(),
                raw: truncate_body(body),
            });
        }
    }
    None
}

/// Extracts DefaultMessage / MessageSet / MessageID from `<IBResponse type="error">`.
pub(crate) fn parse_ib_response(status: u16, url: &str, body: &str) -> Error {
    let message = xml_text(body, "DefaultMessage")
        .filter(|m| !m.is_empty())
        .or_else(|| xml_text(body, "DefaultTitle"))
        .unwrap_or_else(|| "Integration Broker error (no DefaultMessage)".to_string());
    Error::IbResponse {
        status,
        url: url.to_string(),
        message,
        message_set: xml_text(body, "MessageSet").filter(|s| !s.is_empty()),
        message_id: xml_text(body, "MessageID").filter(|s| !s.is_empty()),
        raw: truncate_body(body),
    }
}

/// The text of the first `<tag>…</tag>` (CDATA unwrapped, basic entities decoded).
fn xml_text(body: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}");
    let start = body.find(&open)?;
    let after = &body[start + open.len()..];
    // `<tag>` or `<tag attr="…">`, not `<tagOther>`; `<tag/>` is empty.
    let first = after.chars().next()?;
    if first != '>' && !first.is_whitespace() && first != '/' {
        return None;
    }
    let gt = after.find('>')?;
    if after[..gt].ends_with('/') {
        return Some(String::new());
    }
    let content = &after[gt + 1..];
    let end = content.find(&format!("</{tag}>"))?;
    let mut text = content[..end].trim().to_string();
    if let Some(inner) = text
        .strip_prefix("<![CDATA[")
        .and_then(|r| r.strip_suffix("]]>"))
    {
        text = inner.to_string();
    } else {
        text = text
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&");
    }
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_detection_is_safe_on_multibyte_text() {
        let body = format!("<{}<html>", "é".repeat(400));
        assert!(non_json_error(200, "u", &body).is_none());
        let body = format!("<!DOCTYPE html><p>{}</p>", "ü".repeat(600));
        assert!(matches!(
            non_json_error(200, "u", &body),
            Some(Error::HtmlPage { .. })
        ));
    }

    #[test]
    fn ib_response_fields_are_extracted() {
        let body = r#"<?xml version="1.0"?><IBResponse type="error"><DefaultTitle>Integration Broker Response</DefaultTitle><StatusCode>20</StatusCode><MessageSet>158</MessageSet><MessageID>10001</MessageID><DefaultMessage><![CDATA[Unknown node PSFT_XX]]></DefaultMessage><MessageParameters/></IBResponse>"#;
        match parse_ib_response(200, "u", body) {
            Error::IbResponse {
                message,
                message_set,
                message_id,
                ..
            } => {
                assert_eq!(message, "Unknown node PSFT_XX");
                assert_eq!(message_set.as_deref(), Some("158"));
                assert_eq!(message_id.as_deref(), Some("10001"));
            }
            other => panic!("{other:?}"),
        }
    }
}
