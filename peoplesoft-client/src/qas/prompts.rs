//! Parsing the `QueryPrompts.v1` answer.

use serde::Serialize;

use super::ib_error::non_json_error;
use crate::error::{truncate_body, Error};

/// One prompt of a query, from `QueryPrompts.v1`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct PromptInfo {
    /// `UniquePromptName`: the name to send in `prompt_uniquepromptname`.
    pub unique_prompt_name: String,
    /// `FieldName`.
    pub field_name: String,
    /// `HeadingText`.
    pub heading_text: String,
    /// `FieldType` (e.g. Date, Datetime, Character, Number).
    pub field_type: String,
    /// `FormatText`.
    pub format_text: String,
    /// `FieldLength`.
    pub field_length: Option<u32>,
    /// `FieldDecimal`.
    pub field_decimal: Option<u32>,
}

/// Parses a `QueryPrompts.v1` JSON body tolerantly: any object anywhere in the document that
/// has a `UniquePromptName` or `FieldName` key (any case, with or without an `attr:` prefix)
/// is one prompt. Values may be strings or numbers.
pub(crate) fn parse_prompts(url: &str, body: &str) -> Result<Vec<PromptInfo>, Error> {
    if let Some(e) = non_json_error(200, url, body) {
        return Err(e);
    }
    let v: serde_json::Value = serde_json::from_str(body).map_err(|e| Error::InvalidResponse {
        url: url.to_string(),
        reason: format!("not valid JSON (cut off?): {e}"),
        raw: truncate_body(body),
    })?;
    if let Some(s) = v.get("status").and_then(|s| s.as_str()) {
        if !s.eq_ignore_ascii_case("success") {
            return Err(Error::QueryStatus {
                status: s.to_string(),
                url: url.to_string(),
                raw: truncate_body(body),
            });
        }
    }
    let mut out = Vec::new();
    collect_prompts(&v, &mut out);
    Ok(out)
}

fn collect_prompts(v: &serde_json::Value, out: &mut Vec<PromptInfo>) {
    match v {
        serde_json::Value::Array(a) => a.iter().for_each(|x| collect_prompts(x, out)),
        serde_json::Value::Object(m) => {
            let get = |k: &str| {
                m.iter()
                    .find(|(key, _)| {
                        let key = key.rsplit(':').next().unwrap_or(key);
                        key.eq_ignore_ascii_case(k)
                    })
                    .map(|(_, v)| v)
            };
            let text = |k: &str| match get(k) {
                Some(serde_json::Value::String(s)) => s.trim().to_string(),
                Some(serde_json::Value::Number(n)) => n.to_string(),
                _ => String::new(),
            };
            let num = |k: &str| {
                let t = text(k);
                t.parse::<u32>().ok()
            };
            if get("UniquePromptName").is_some() || get("FieldName").is_some() {
                out.push(PromptInfo {
                    unique_prompt_name: text("UniquePromptName"),
                    field_name: text("FieldName"),
                    heading_text: text("HeadingText"),
                    field_type: text("FieldType"),
                    format_text: text("FormatText"),
                    field_length: num("FieldLength"),
                    field_decimal: num("FieldDecimal"),
                });
            } else {
                m.values().for_each(|x| collect_prompts(x, out));
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_parse_in_any_case() {
        let body = r#"{"status":"success","data":{"queryprompts":{"prompt":[
            {"fieldname":"LASTUPDDTTM","headingtext":"From","fieldtype":"Datetime","formattext":"","fieldlength":26,"fielddecimal":0,"uniquepromptname":"FROM_DTTM"},
            {"FieldName":"LASTUPDDTTM","HeadingText":"To","FieldType":"Datetime","UniquePromptName":"TO_DTTM","FieldLength":"26"}]}}}"#;
        let p = parse_prompts("u", body).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].unique_prompt_name, "FROM_DTTM");
        assert_eq!(p[0].field_length, Some(26));
        assert_eq!(p[1].unique_prompt_name, "TO_DTTM");
        assert_eq!(p[1].field_length, Some(26));
        assert_eq!(p[1].heading_text, "To");
    }
}
