//! Query Access Services (QAS) REST: request building and response parsing.
//!
//! The wire format follows practitioner code and Oracle's operation docs (see the crate docs):
//! `ExecuteQuery.v1/{PUBLIC|PRIVATE}/{QUERY}/JSON/NONFILE?isconnectedquery=N&maxrows=N
//! &prompt_uniquepromptname=P1,P2&prompt_fieldvalue=v1,v2&json_resp=true`.
//! The `JSON` result type and the response shape are practitioner-observed, not documented
//! by Oracle.
//!
//! - `request`: [`ExecuteQuery`], the URL of one call;
//! - `response`: the `ExecuteQuery` JSON answer, parsed in one pass (with a general fallback);
//! - `ib_error`: errors that arrive as an `IBResponse` XML document or an HTML gateway page;
//! - `prompts`: the `QueryPrompts.v1` answer.

mod ib_error;
mod prompts;
mod request;
mod response;

pub(crate) use ib_error::{non_json_error, parse_ib_response};
pub(crate) use prompts::parse_prompts;
pub use prompts::PromptInfo;
pub(crate) use request::encode;
pub use request::{ExecuteQuery, QueryOwner, DEFAULT_MAX_ROWS};
pub use response::QueryResult;
pub(crate) use response::{parse_execute_query_keys, quote_long_numbers, RowKeys};
