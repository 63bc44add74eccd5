//! Unity Catalog metadata and DDL: read a table's columns, list tables page by page, and
//! make sure a catalog-schema-table exists with every column of a [`TableSchema`].

use std::time::Duration;

use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use reqwest::Method;
use serde::Deserialize;
use sync_core::http::Idempotency;
use sync_core::{ColumnDef, ColumnType, TableSchema};

use crate::client::DatabricksClient;
use crate::error::{Error, Result};
use crate::sql::{self, TableName};
use crate::statement::Statement;

/// Path of the Unity Catalog tables endpoint.
pub const TABLES_PATH: &str = "/api/2.1/unity-catalog/tables";

/// A column as Unity Catalog describes it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ColumnInfo {
    /// Column name (case preserved).
    pub name: String,
    /// SQL type text, e.g. `decimal(18,2)`.
    #[serde(default)]
    pub type_text: Option<String>,
    /// Type name, e.g. `DECIMAL`.
    #[serde(default)]
    pub type_name: Option<String>,
    /// 0-based position.
    #[serde(default)]
    pub position: Option<u32>,
    /// Whether NULL is allowed.
    #[serde(default)]
    pub nullable: Option<bool>,
}

/// A table as Unity Catalog describes it (the fields this crate uses).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TableInfo {
    /// Table name.
    pub name: String,
    /// Catalog.
    #[serde(default)]
    pub catalog_name: Option<String>,
    /// Schema.
    #[serde(default)]
    pub schema_name: Option<String>,
    /// `catalog.schema.table`.
    #[serde(default)]
    pub full_name: Option<String>,
    /// `MANAGED`, `EXTERNAL`, `VIEW`, …
    #[serde(default)]
    pub table_type: Option<String>,
    /// `DELTA`, …
    #[serde(default)]
    pub data_source_format: Option<String>,
    /// Columns (absent when listed with `omit_columns`).
    #[serde(default)]
    pub columns: Vec<ColumnInfo>,
}

#[derive(Deserialize)]
struct TablePage {
    #[serde(default)]
    tables: Vec<TableInfo>,
    #[serde(default)]
    next_page_token: Option<String>,
}

/// What [`DatabricksClient::ensure_table`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnsureReport {
    /// Statement ids of the DDL that ran.
    pub statement_ids: Vec<String>,
    /// Columns added with `ALTER TABLE … ADD COLUMNS`.
    pub added_columns: Vec<String>,
}

impl DatabricksClient {
    /// The table's metadata, or `None` when Unity Catalog answers 404.
    pub async fn table(&self, name: &TableName) -> Result<Option<TableInfo>> {
        let mut url = self.url(TABLES_PATH);
        url.path_segments_mut()
            .map_err(|_| Error::Decode {
                what: "host URL".into(),
                message: "cannot be a base".into(),
                raw: None,
            })?
            .push(&name.full_name());
        match self
            .send_json::<TableInfo>(Method::GET, url, None, Idempotency::Idempotent)
            .await
        {
            Ok(t) => Ok(Some(t)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every table of `catalog.schema`, following `next_page_token` until it is absent (a
    /// page may be empty and still carry a token).
    pub fn list_tables(
        &self,
        catalog: &str,
        schema: &str,
    ) -> BoxStream<'static, Result<TableInfo>> {
        let client = self.clone();
        let (catalog, schema) = (catalog.to_string(), schema.to_string());
        stream::try_unfold(Some(None::<String>), move |token| {
            let client = client.clone();
            let (catalog, schema) = (catalog.clone(), schema.clone());
            async move {
                let Some(token) = token else {
                    return Ok(None);
                };
                let mut url = client.url(TABLES_PATH);
                {
                    let mut q = url.query_pairs_mut();
                    q.append_pair("catalog_name", &catalog)
                        .append_pair("schema_name", &schema)
                        .append_pair("max_results", "0");
                    if let Some(t) = &token {
                        q.append_pair("page_token", t);
                    }
                }
                let page: TablePage = client
                    .send_json(Method::GET, url, None, Idempotency::Idempotent)
                    .await?;
                let next = page.next_page_token.filter(|t| !t.is_empty()).map(Some);
                Ok::<_, Error>(Some((page.tables, next)))
            }
        })
        .map_ok(|tables| stream::iter(tables.into_iter().map(Ok)))
        .try_flatten()
        .boxed()
    }

    /// Makes sure `name` exists with every column of `schema`:
    /// `CREATE SCHEMA IF NOT EXISTS`, `CREATE TABLE IF NOT EXISTS … USING DELTA` (a managed
    /// table), then reads the columns from Unity Catalog and adds the missing ones with
    /// `ALTER TABLE … ADD COLUMNS` — a separate step, before any data statement. An existing
    /// column whose type differs is an [`Error::SchemaMismatch`].
    pub async fn ensure_table(
        &self,
        name: &TableName,
        schema: &TableSchema,
    ) -> Result<EnsureReport> {
        let mut report = EnsureReport::default();
        let r = self
            .execute(&Statement::new(sql::create_schema(name)).idempotent(true))
            .await?;
        report.statement_ids.push(r.statement_id().to_string());
        let r = self
            .execute(&Statement::new(sql::create_table(name, schema)?).idempotent(true))
            .await?;
        report.statement_ids.push(r.statement_id().to_string());

        // A new table can take a moment to show in Unity Catalog.
        let mut info = None;
        for attempt in 0..5u32 {
            if let Some(t) = self.table(name).await? {
                info = Some(t);
                break;
            }
            tokio::time::sleep(Duration::from_millis(500) * (attempt + 1)).await;
        }
        let info = info.ok_or_else(|| Error::Api {
            method: "GET".into(),
            path: format!("{TABLES_PATH}/{}", name.full_name()),
            error: Box::new(crate::error::ApiError {
                status: 404,
                error_code: Some("TABLE_DOES_NOT_EXIST".into()),
                message: "the table was created but Unity Catalog does not show it".into(),
                details: vec![],
                raw_body: None,
            }),
        })?;
        let missing = missing_columns(name, schema, &info.columns)?;
        if !missing.is_empty() {
            let r = self
                .execute(&Statement::new(sql::add_columns(name, &missing)?))
                .await?;
            report.statement_ids.push(r.statement_id().to_string());
            report.added_columns = missing.into_iter().map(|c| c.name).collect();
            tracing::info!(table = %name.full_name(), added = ?report.added_columns, "added columns");
        }
        Ok(report)
    }
}

/// The schema columns the table lacks (names compared case-insensitively); an error when a
/// column exists with another type.
pub fn missing_columns(
    name: &TableName,
    schema: &TableSchema,
    existing: &[ColumnInfo],
) -> Result<Vec<ColumnDef>> {
    let mut missing = Vec::new();
    for c in &schema.columns {
        match existing
            .iter()
            .find(|e| e.name.eq_ignore_ascii_case(&c.name))
        {
            None => missing.push(c.clone()),
            Some(e) => {
                let text = e
                    .type_text
                    .as_deref()
                    .or(e.type_name.as_deref())
                    .unwrap_or("");
                let same = text.parse::<ColumnType>().ok() == Some(c.column_type);
                if !same {
                    return Err(Error::SchemaMismatch {
                        table: name.full_name(),
                        column: c.name.clone(),
                        expected: c.column_type.to_string(),
                        found: text.to_string(),
                    });
                }
            }
        }
    }
    Ok(missing)
}
