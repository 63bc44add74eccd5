//! The in-memory catalog and the SQL engine: statements are tokenized and parsed with
//! `sqlparser` (Databricks dialect), literals decoded with Databricks' rules, and executed
//! against schemas and Delta-like tables held in memory.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use sqlparser::ast::{
    self, BinaryOperator, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, MergeAction,
    MergeClauseKind, MergeInsertKind, MergeUpdateKind, ObjectName, Query, SelectItem, SetExpr,
    Statement, TableFactor, UnaryOperator, Value,
};
use sqlparser::parser::{Parser, ParserOptions};
use sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer, Word};

use super::value::{
    cast, compare, escape_canonical, key_part, parse_number, store, unescape_string_literal,
    KeyPart, SqlType, StandInValue,
};
use super::volumes::{read_parquet, split_volume_path, Volume};

mod dialect {
    //! `DeltaDialect`: Databricks SQL plus `CREATE TABLE … USING DELTA`.
    #![allow(unreachable_pub, missing_docs)]
    use sqlparser::dialect::DatabricksDialect;

    sqlparser::derive_dialect!(
        DeltaDialect,
        DatabricksDialect,
        preserve_type_id = true,
        overrides = { supports_create_table_using = true }
    );
}
use dialect::DeltaDialect;

/// Why a statement failed, as Databricks reports it: an error class, a SQLSTATE and a
/// message. The response message is `[CLASS] message SQLSTATE: xxxxx`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlFailure {
    /// Error class, e.g. `PARSE_SYNTAX_ERROR`.
    pub error_class: String,
    /// SQLSTATE, e.g. `42601`.
    pub sql_state: String,
    /// Human-readable message (without class and SQLSTATE).
    pub message: String,
}

impl SqlFailure {
    pub(crate) fn new(class: &str, sql_state: &str, message: impl Into<String>) -> Self {
        Self {
            error_class: class.to_string(),
            sql_state: sql_state.to_string(),
            message: message.into(),
        }
    }

    fn syntax(message: impl Into<String>) -> Self {
        Self::new("PARSE_SYNTAX_ERROR", "42601", message)
    }

    fn unsupported(what: impl fmt::Display) -> Self {
        Self::new(
            "UNSUPPORTED_FEATURE",
            "0A000",
            format!("The stand-in does not support {what}."),
        )
    }

    /// The message as sent in `status.error.message`.
    pub fn full_message(&self) -> String {
        format!(
            "[{}] {} SQLSTATE: {}",
            self.error_class, self.message, self.sql_state
        )
    }
}

impl fmt::Display for SqlFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full_message())
    }
}

/// A column of a stand-in table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnSpec {
    /// Name, case preserved (matching is case-insensitive).
    pub name: String,
    /// Type.
    pub sql_type: SqlType,
    /// False for `NOT NULL` columns.
    pub nullable: bool,
}

/// What Databricks policy applies to duplicate keys in a MERGE source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MergeDuplicates {
    /// Fail whenever two source rows have the same ON-clause key, even when neither matches a
    /// target row (stricter than Databricks, catches a missing deduplication at once).
    #[default]
    FailAlways,
    /// Exactly Databricks: fail only when two source rows match the same target row; two
    /// unmatched duplicates are both inserted.
    FailWhenMatched,
}

pub(crate) struct KeyIndex {
    cols: Vec<usize>,
    map: HashMap<Vec<KeyPart>, Vec<usize>>,
}

pub(crate) struct Table {
    pub(crate) catalog: String,
    pub(crate) schema: String,
    pub(crate) name: String,
    pub(crate) columns: Vec<ColumnSpec>,
    pub(crate) rows: Vec<Vec<StandInValue>>,
    pub(crate) created_at_ms: i64,
    pub(crate) updated_at_ms: i64,
    pub(crate) table_id: String,
    index: Option<KeyIndex>,
}

impl Table {
    fn column_index(&self, name: &str) -> Option<usize> {
        self.columns
            .iter()
            .position(|c| c.name.eq_ignore_ascii_case(name))
    }

    pub(crate) fn full_name(&self) -> String {
        format!("{}.{}.{}", self.catalog, self.schema, self.name)
    }
}

/// Catalog → schema → table, all names lower case as Unity Catalog stores them.
#[derive(Default)]
pub(crate) struct Catalog {
    pub(crate) catalogs: BTreeMap<String, BTreeMap<String, BTreeMap<String, Table>>>,
    next_table_id: u64,
    /// Volumes by (catalog, schema, volume).
    pub(crate) volumes: BTreeMap<(String, String, String), Volume>,
    /// Files each table loaded with COPY INTO: (table full name, absolute file path).
    pub(crate) copy_history: HashSet<(String, String)>,
    /// `CREATE VOLUME` fails with INSUFFICIENT_PERMISSIONS.
    pub(crate) deny_create_volume: bool,
}

/// Session settings of one statement.
pub(crate) struct Session<'a> {
    pub(crate) catalog: &'a str,
    pub(crate) schema: &'a str,
    pub(crate) params: &'a HashMap<String, StandInValue>,
    pub(crate) merge_duplicates: MergeDuplicates,
    pub(crate) now_ms: i64,
}

/// A statement's result rows.
#[derive(Debug, Clone, Default)]
pub(crate) struct Output {
    pub(crate) columns: Vec<(String, SqlType)>,
    pub(crate) rows: Vec<Vec<StandInValue>>,
    /// Tables created by the statement (for Unity Catalog visibility lag).
    pub(crate) created: Vec<String>,
}

impl Output {
    fn counts(pairs: &[(&str, u64)]) -> Self {
        Output {
            columns: pairs
                .iter()
                .map(|(n, _)| (n.to_string(), SqlType::BigInt))
                .collect(),
            rows: vec![pairs
                .iter()
                .map(|(_, v)| StandInValue::BigInt(*v as i64))
                .collect()],
            created: vec![],
        }
    }
}

fn ident_value(w: &ast::Ident) -> String {
    w.value.clone()
}

fn name_parts(name: &ObjectName) -> Result<Vec<String>, SqlFailure> {
    name.0
        .iter()
        .map(|p| {
            p.as_ident()
                .map(ident_value)
                .ok_or_else(|| SqlFailure::unsupported(format!("the name {name}")))
        })
        .collect()
}

fn not_found_table(parts: &[String]) -> SqlFailure {
    SqlFailure::new(
        "TABLE_OR_VIEW_NOT_FOUND",
        "42P01",
        format!(
            "The table or view {} cannot be found. Verify the spelling and correctness of the schema and catalog.",
            parts
                .iter()
                .map(|p| format!("`{}`", p.replace('`', "``")))
                .collect::<Vec<_>>()
                .join(".")
        ),
    )
}

fn unresolved_column(name: &str) -> SqlFailure {
    SqlFailure::new(
        "UNRESOLVED_COLUMN.WITH_SUGGESTION",
        "42703",
        format!("A column, variable, or function parameter with name `{name}` cannot be resolved."),
    )
}

impl Catalog {
    pub(crate) fn ensure_catalog(&mut self, name: &str) {
        self.catalogs
            .entry(name.to_ascii_lowercase())
            .or_default()
            .entry("default".into())
            .or_default();
    }

    fn resolve_table_name(
        &self,
        parts: &[String],
        s: &Session<'_>,
    ) -> Result<(String, String, String), SqlFailure> {
        let lc = |x: &str| x.to_ascii_lowercase();
        match parts {
            [t] => Ok((lc(s.catalog), lc(s.schema), lc(t))),
            [sc, t] => Ok((lc(s.catalog), lc(sc), lc(t))),
            [c, sc, t] => Ok((lc(c), lc(sc), lc(t))),
            _ => Err(SqlFailure::new(
                "REQUIRES_SINGLE_PART_NAMESPACE",
                "42K05",
                format!("The name {} has too many parts.", parts.join(".")),
            )),
        }
    }

    fn check_schema(&self, c: &str, sc: &str) -> Result<(), SqlFailure> {
        let cat = self.catalogs.get(c).ok_or_else(|| {
            SqlFailure::new(
                "NO_SUCH_CATALOG_EXCEPTION",
                "42704",
                format!("The catalog '{c}' was not found."),
            )
        })?;
        if !cat.contains_key(sc) {
            return Err(SqlFailure::new(
                "SCHEMA_NOT_FOUND",
                "42704",
                format!("The schema `{c}`.`{sc}` cannot be found."),
            ));
        }
        Ok(())
    }

    pub(crate) fn table(&self, c: &str, sc: &str, t: &str) -> Option<&Table> {
        self.catalogs.get(c)?.get(sc)?.get(t)
    }

    fn table_mut(&mut self, c: &str, sc: &str, t: &str) -> Option<&mut Table> {
        self.catalogs.get_mut(c)?.get_mut(sc)?.get_mut(t)
    }

    fn lookup(&self, name: &ObjectName, s: &Session<'_>) -> Result<&Table, SqlFailure> {
        let parts = name_parts(name)?;
        let (c, sc, t) = self.resolve_table_name(&parts, s)?;
        self.table(&c, &sc, &t)
            .ok_or_else(|| not_found_table(&parts))
    }

    fn lookup_key(
        &self,
        name: &ObjectName,
        s: &Session<'_>,
    ) -> Result<(String, String, String), SqlFailure> {
        let parts = name_parts(name)?;
        let key = self.resolve_table_name(&parts, s)?;
        if self.table(&key.0, &key.1, &key.2).is_none() {
            return Err(not_found_table(&parts));
        }
        Ok(key)
    }

    /// Executes one SQL statement.
    pub(crate) fn execute(&mut self, sql: &str, s: &Session<'_>) -> Result<Output, SqlFailure> {
        let tokens = preprocess(sql)?;
        let words: Vec<&Token> = tokens.iter().map(|t| &t.token).collect();
        let kw = |i: usize, k: &str| matches!(words.get(i), Some(Token::Word(w)) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(k));
        if kw(0, "ALTER") && kw(1, "TABLE") {
            if let Some(pos) = (2..words.len()).find(|&i| kw(i, "ADD")) {
                if kw(pos + 1, "COLUMNS") || kw(pos + 1, "COLUMN") {
                    return self.alter_add_columns(&tokens, pos, s);
                }
            }
        }
        if kw(0, "CREATE") && kw(1, "VOLUME") {
            return self.create_volume(&words, s);
        }
        if kw(0, "COPY") && kw(1, "INTO") {
            return self.copy_into(&words, s);
        }
        if kw(0, "DESCRIBE") || kw(0, "DESC") {
            let mut i = 1;
            if kw(i, "TABLE") {
                i += 1;
            }
            if kw(i, "EXTENDED") {
                i += 1;
            }
            let parts = parse_name_tokens(&words[i..]).ok_or_else(|| {
                SqlFailure::syntax("Syntax error at or near DESCRIBE: expected a table name.")
            })?;
            let (c, sc, t) = self.resolve_table_name(&parts, s)?;
            let table = self
                .table(&c, &sc, &t)
                .ok_or_else(|| not_found_table(&parts))?;
            return Ok(Output {
                columns: vec![
                    ("col_name".into(), SqlType::String),
                    ("data_type".into(), SqlType::String),
                    ("comment".into(), SqlType::String),
                ],
                rows: table
                    .columns
                    .iter()
                    .map(|c| {
                        vec![
                            StandInValue::String(c.name.clone()),
                            StandInValue::String(c.sql_type.type_text()),
                            StandInValue::Null,
                        ]
                    })
                    .collect(),
                created: vec![],
            });
        }
        let mut statements = Parser::new(&DeltaDialect::new())
            .with_options(ParserOptions::new().with_unescape(false))
            .with_tokens_with_locations(tokens)
            .parse_statements()
            .map_err(|e| {
                SqlFailure::syntax(format!(
                    "Syntax error: {}",
                    e.to_string().trim_start_matches("sql parser error: ")
                ))
            })?;
        if statements.len() != 1 {
            return Err(SqlFailure::syntax(format!(
                "Syntax error at or near ';': expected one statement, found {}.",
                statements.len()
            )));
        }
        let statement = statements.remove(0);
        self.run(statement, s)
    }

    fn run(&mut self, statement: Statement, s: &Session<'_>) -> Result<Output, SqlFailure> {
        match statement {
            Statement::CreateSchema {
                schema_name,
                if_not_exists,
                ..
            } => {
                let ast::SchemaName::Simple(name) = schema_name else {
                    return Err(SqlFailure::unsupported("CREATE SCHEMA with AUTHORIZATION"));
                };
                let parts = name_parts(&name)?;
                let (c, sc) = match parts.as_slice() {
                    [sc] => (s.catalog.to_ascii_lowercase(), sc.to_ascii_lowercase()),
                    [c, sc] => (c.to_ascii_lowercase(), sc.to_ascii_lowercase()),
                    _ => return Err(SqlFailure::syntax("invalid schema name")),
                };
                let cat = self.catalogs.get_mut(&c).ok_or_else(|| {
                    SqlFailure::new(
                        "NO_SUCH_CATALOG_EXCEPTION",
                        "42704",
                        format!("The catalog '{c}' was not found."),
                    )
                })?;
                if let std::collections::btree_map::Entry::Vacant(v) = cat.entry(sc.clone()) {
                    v.insert(BTreeMap::new());
                } else if !if_not_exists {
                    return Err(SqlFailure::new(
                        "SCHEMA_ALREADY_EXISTS",
                        "42P06",
                        format!("Cannot create schema `{c}`.`{sc}` because it already exists."),
                    ));
                }
                Ok(Output::default())
            }
            Statement::CreateTable(ct) => self.create_table(ct, s),
            Statement::Drop {
                object_type,
                if_exists,
                names,
                cascade,
                ..
            } => self.drop(object_type, if_exists, names, cascade, s),
            Statement::Merge(m) => self.merge(m, s),
            Statement::Insert(ins) => self.insert(ins, s),
            Statement::Delete(d) => self.delete(d, s),
            Statement::Update(u) => self.update(u, s),
            Statement::Query(q) => {
                let rel = self.query(&q, s)?;
                Ok(Output {
                    columns: rel
                        .columns
                        .iter()
                        .map(|c| (c.name.clone(), c.sql_type))
                        .collect(),
                    rows: rel.rows.into_owned(),
                    created: vec![],
                })
            }
            other => {
                let text = other.to_string();
                let first = text
                    .split_whitespace()
                    .take(2)
                    .collect::<Vec<_>>()
                    .join(" ");
                Err(SqlFailure::unsupported(format!(
                    "the statement `{first} …`"
                )))
            }
        }
    }

    fn create_table(
        &mut self,
        ct: ast::CreateTable,
        s: &Session<'_>,
    ) -> Result<Output, SqlFailure> {
        if ct.query.is_some() || ct.like.is_some() || ct.clone.is_some() {
            return Err(SqlFailure::unsupported("CREATE TABLE AS / LIKE / CLONE"));
        }
        let parts = name_parts(&ct.name)?;
        let (c, sc, t) = self.resolve_table_name(&parts, s)?;
        self.check_schema(&c, &sc)?;
        let mut columns: Vec<ColumnSpec> = Vec::new();
        for col in &ct.columns {
            let text = col.data_type.to_string();
            let sql_type = SqlType::parse(&text).ok_or_else(|| {
                SqlFailure::new(
                    "UNSUPPORTED_DATATYPE",
                    "0A000",
                    format!("Unsupported data type \"{text}\" (the stand-in stores STRING, INT, BIGINT, DECIMAL(p,s), DOUBLE, BOOLEAN, DATE, TIMESTAMP, TIMESTAMP_NTZ)."),
                )
            })?;
            let nullable = !col
                .options
                .iter()
                .any(|o| matches!(o.option, ast::ColumnOption::NotNull));
            if columns
                .iter()
                .any(|c| c.name.eq_ignore_ascii_case(&col.name.value))
            {
                return Err(SqlFailure::new(
                    "COLUMN_ALREADY_EXISTS",
                    "42711",
                    format!(
                        "The column `{}` already exists.",
                        col.name.value.to_ascii_lowercase()
                    ),
                ));
            }
            columns.push(ColumnSpec {
                name: col.name.value.clone(),
                sql_type,
                nullable,
            });
        }
        if columns.is_empty() {
            return Err(SqlFailure::syntax("CREATE TABLE needs a column list."));
        }
        let exists = self.table(&c, &sc, &t).is_some();
        if exists && !ct.or_replace {
            if ct.if_not_exists {
                return Ok(Output::default());
            }
            return Err(SqlFailure::new(
                "TABLE_OR_VIEW_ALREADY_EXISTS",
                "42P07",
                format!(
                    "Cannot create table or view `{c}`.`{sc}`.`{t}` because it already exists."
                ),
            ));
        }
        self.next_table_id += 1;
        let table = Table {
            catalog: c.clone(),
            schema: sc.clone(),
            name: t.clone(),
            columns,
            rows: Vec::new(),
            created_at_ms: s.now_ms,
            updated_at_ms: s.now_ms,
            table_id: format!("00000000-0000-4000-8000-{:012x}", self.next_table_id),
            index: None,
        };
        let full = table.full_name();
        self.catalogs
            .get_mut(&c)
            .and_then(|x| x.get_mut(&sc))
            .expect("checked")
            .insert(t, table);
        Ok(Output {
            created: vec![full],
            ..Output::default()
        })
    }

    fn drop(
        &mut self,
        object_type: ast::ObjectType,
        if_exists: bool,
        names: Vec<ObjectName>,
        cascade: bool,
        s: &Session<'_>,
    ) -> Result<Output, SqlFailure> {
        for name in names {
            let parts = name_parts(&name)?;
            match object_type {
                ast::ObjectType::Table => {
                    let (c, sc, t) = self.resolve_table_name(&parts, s)?;
                    let removed = self
                        .catalogs
                        .get_mut(&c)
                        .and_then(|x| x.get_mut(&sc))
                        .and_then(|x| x.remove(&t));
                    if removed.is_none() && !if_exists {
                        return Err(not_found_table(&parts));
                    }
                }
                ast::ObjectType::Schema => {
                    let (c, sc) = match parts.as_slice() {
                        [sc] => (s.catalog.to_ascii_lowercase(), sc.to_ascii_lowercase()),
                        [c, sc] => (c.to_ascii_lowercase(), sc.to_ascii_lowercase()),
                        _ => return Err(SqlFailure::syntax("invalid schema name")),
                    };
                    let state = self
                        .catalogs
                        .get(&c)
                        .and_then(|cat| cat.get(&sc))
                        .map(|x| x.is_empty());
                    match state {
                        None if if_exists => {}
                        None => {
                            return Err(SqlFailure::new(
                                "SCHEMA_NOT_FOUND",
                                "42704",
                                format!("The schema `{c}`.`{sc}` cannot be found."),
                            ))
                        }
                        Some(false) if !cascade => {
                            return Err(SqlFailure::new(
                                "SCHEMA_NOT_EMPTY",
                                "2BP01",
                                format!("Cannot drop a schema `{sc}` because it contains objects."),
                            ))
                        }
                        Some(_) => {
                            if let Some(cat) = self.catalogs.get_mut(&c) {
                                cat.remove(&sc);
                            }
                        }
                    }
                }
                other => return Err(SqlFailure::unsupported(format!("DROP {other}"))),
            }
        }
        Ok(Output::default())
    }

    fn alter_add_columns(
        &mut self,
        tokens: &[TokenWithSpan],
        add_pos: usize,
        s: &Session<'_>,
    ) -> Result<Output, SqlFailure> {
        let words: Vec<&Token> = tokens.iter().map(|t| &t.token).collect();
        let parts = parse_name_tokens(&words[2..add_pos])
            .ok_or_else(|| SqlFailure::syntax("Syntax error in ALTER TABLE: bad table name."))?;
        let (c, sc, t) = self.resolve_table_name(&parts, s)?;
        let mut i = add_pos + 2;
        let parens = matches!(words.get(i), Some(Token::LParen));
        if parens {
            i += 1;
        }
        let mut new_cols: Vec<ColumnSpec> = Vec::new();
        loop {
            let name = match words.get(i) {
                Some(Token::Word(w)) => w.value.clone(),
                _ => {
                    return Err(SqlFailure::syntax(
                        "Syntax error in ALTER TABLE ADD COLUMNS: expected a column name.",
                    ))
                }
            };
            i += 1;
            let mut depth = 0;
            let mut type_text = String::new();
            let mut extra = String::new();
            while let Some(tok) = words.get(i) {
                match tok {
                    Token::LParen => depth += 1,
                    Token::RParen if depth == 0 => break,
                    Token::RParen => depth -= 1,
                    Token::Comma if depth == 0 => break,
                    Token::Word(w)
                        if depth == 0
                            && !type_text.is_empty()
                            && (w.value.eq_ignore_ascii_case("NOT")
                                || w.value.eq_ignore_ascii_case("COMMENT")
                                || !extra.is_empty()) =>
                    {
                        extra.push_str(&w.value);
                        i += 1;
                        continue;
                    }
                    _ => {}
                }
                if extra.is_empty() {
                    type_text.push_str(&tok.to_string());
                }
                i += 1;
            }
            if extra.to_ascii_uppercase().starts_with("NOT") {
                return Err(SqlFailure::unsupported(
                    "adding a NOT NULL column with ALTER TABLE",
                ));
            }
            let sql_type = SqlType::parse(&type_text).ok_or_else(|| {
                SqlFailure::new(
                    "UNSUPPORTED_DATATYPE",
                    "0A000",
                    format!("Unsupported data type \"{type_text}\"."),
                )
            })?;
            new_cols.push(ColumnSpec {
                name,
                sql_type,
                nullable: true,
            });
            match words.get(i) {
                Some(Token::Comma) => i += 1,
                Some(Token::RParen) if parens => {
                    i += 1;
                    break;
                }
                None if !parens => break,
                _ => {
                    return Err(SqlFailure::syntax(
                        "Syntax error in ALTER TABLE ADD COLUMNS: expected ',' or ')'.",
                    ))
                }
            }
        }
        if i < words.len() && !matches!(words[i], Token::SemiColon) {
            return Err(SqlFailure::syntax(format!(
                "Syntax error at or near '{}'.",
                words[i]
            )));
        }
        let table = self
            .table_mut(&c, &sc, &t)
            .ok_or_else(|| not_found_table(&parts))?;
        let mut seen: HashSet<String> = table
            .columns
            .iter()
            .map(|c| c.name.to_ascii_lowercase())
            .collect();
        for col in &new_cols {
            if !seen.insert(col.name.to_ascii_lowercase()) {
                return Err(SqlFailure::new(
                    "FIELDS_ALREADY_EXISTS",
                    "42710",
                    format!("Cannot add column, because `{}` already exists.", col.name),
                ));
            }
        }
        let n = new_cols.len();
        table.columns.extend(new_cols);
        for row in &mut table.rows {
            row.extend(std::iter::repeat_n(StandInValue::Null, n));
        }
        table.updated_at_ms = s.now_ms;
        Ok(Output::default())
    }

    /// Runs a query to a relation.
    fn query<'c>(&'c self, q: &Query, s: &Session<'_>) -> Result<Relation<'c>, SqlFailure> {
        if q.with.is_some() || q.fetch.is_some() || !q.locks.is_empty() {
            return Err(SqlFailure::unsupported("WITH / FETCH / FOR UPDATE"));
        }
        let (rel, select) = match q.body.as_ref() {
            SetExpr::Values(values) => {
                let rows = values
                    .rows
                    .iter()
                    .map(|r| {
                        r.content
                            .iter()
                            .map(|e| eval(e, &Scope::empty(), s.params))
                            .collect::<Result<Vec<_>, _>>()
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                (values_relation(rows, &[])?, None)
            }
            SetExpr::Select(select) => {
                if select.distinct.is_some()
                    || select.having.is_some()
                    || !matches!(&select.group_by, ast::GroupByExpr::Expressions(v, m) if v.is_empty() && m.is_empty())
                    || select.from.len() > 1
                {
                    return Err(SqlFailure::unsupported(
                        "DISTINCT, GROUP BY, HAVING or several FROM items",
                    ));
                }
                let rel = match select.from.first() {
                    None => Relation {
                        alias: String::new(),
                        table_name: None,
                        columns: vec![],
                        rows: Cow::Owned(vec![vec![]]),
                    },
                    Some(twj) => {
                        if !twj.joins.is_empty() {
                            return Err(SqlFailure::unsupported("JOIN"));
                        }
                        self.relation(&twj.relation, s)?
                    }
                };
                (rel, Some(select))
            }
            SetExpr::Query(inner) => (self.query(inner, s)?, None),
            other => {
                return Err(SqlFailure::unsupported(format!(
                    "the query form {}",
                    other.to_string().chars().take(40).collect::<String>()
                )))
            }
        };
        let Some(select) = select else {
            if q.order_by.is_some() || q.limit_clause.is_some() {
                return Err(SqlFailure::unsupported("ORDER BY / LIMIT on VALUES"));
            }
            return Ok(rel);
        };
        // WHERE
        let scope_of = |row: &[StandInValue]| Scope {
            sources: vec![Source {
                alias: rel.alias.clone(),
                table_name: rel.table_name.clone(),
                columns: &rel.columns,
                row: row.to_vec(),
            }],
        };
        let mut selected: Vec<usize> = Vec::new();
        for (i, row) in rel.rows.iter().enumerate() {
            let keep = match &select.selection {
                None => true,
                Some(cond) => truthy(&eval(cond, &scope_of(row), s.params)?),
            };
            if keep {
                selected.push(i);
            }
        }
        // Projection
        let is_agg = select.projection.iter().any(|item| match item {
            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
                aggregate_of(e).is_some()
            }
            _ => false,
        });
        let mut out_cols: Vec<ColumnSpec> = Vec::new();
        let mut out_rows: Vec<Vec<StandInValue>>;
        if is_agg {
            let mut row = Vec::new();
            for item in &select.projection {
                let (e, alias) = match item {
                    SelectItem::UnnamedExpr(e) => (e, None),
                    SelectItem::ExprWithAlias { expr, alias } => (expr, Some(alias.value.clone())),
                    _ => return Err(SqlFailure::unsupported("mixing aggregates and *")),
                };
                let (func, arg) = aggregate_of(e).ok_or_else(|| {
                    SqlFailure::new(
                        "MISSING_AGGREGATION",
                        "42803",
                        format!("The non-aggregating expression {e} is based on columns which are not participating in the GROUP BY clause."),
                    )
                })?;
                let mut values = Vec::new();
                if let Some(arg) = arg {
                    for &i in &selected {
                        values.push(eval(arg, &scope_of(&rel.rows[i]), s.params)?);
                    }
                }
                let (v, t) = match func.as_str() {
                    "count" => (
                        StandInValue::BigInt(if arg.is_none() {
                            selected.len() as i64
                        } else {
                            values.iter().filter(|v| !v.is_null()).count() as i64
                        }),
                        SqlType::BigInt,
                    ),
                    f => {
                        let want = if f == "min" {
                            Ordering::Less
                        } else {
                            Ordering::Greater
                        };
                        let mut best = StandInValue::Null;
                        for v in values {
                            if v.is_null() {
                                continue;
                            }
                            if best.is_null() || compare(&v, &best)? == Some(want) {
                                best = v;
                            }
                        }
                        let t = arg
                            .and_then(|a| column_type_of(a, &rel))
                            .or(best.natural_type())
                            .unwrap_or(SqlType::String);
                        (best, t)
                    }
                };
                out_cols.push(ColumnSpec {
                    name: alias.unwrap_or_else(|| e.to_string().to_ascii_lowercase()),
                    sql_type: t,
                    nullable: true,
                });
                row.push(v);
            }
            out_rows = vec![row];
        } else {
            // Order source rows first (ORDER BY may use columns not projected).
            if let Some(order) = &q.order_by {
                let ast::OrderByKind::Expressions(exprs) = &order.kind else {
                    return Err(SqlFailure::unsupported("ORDER BY ALL"));
                };
                let mut keyed: Vec<(Vec<StandInValue>, usize)> = Vec::with_capacity(selected.len());
                for &i in &selected {
                    let scope = scope_of(&rel.rows[i]);
                    let mut k = Vec::new();
                    for o in exprs {
                        k.push(eval_order_expr(
                            &o.expr,
                            &scope,
                            s.params,
                            &select.projection,
                        )?);
                    }
                    keyed.push((k, i));
                }
                sort_keyed(&mut keyed, exprs)?;
                selected = keyed.into_iter().map(|(_, i)| i).collect();
            }
            // Output columns.
            enum Proj<'e> {
                Col(usize),
                Expr(&'e Expr),
                /// A window function's values, by position in `selected`.
                Window(Vec<StandInValue>),
            }
            let mut projs: Vec<Proj<'_>> = Vec::new();
            for item in &select.projection {
                match item {
                    SelectItem::Wildcard(_) => {
                        for (i, c) in rel.columns.iter().enumerate() {
                            out_cols.push(c.clone());
                            projs.push(Proj::Col(i));
                        }
                    }
                    SelectItem::QualifiedWildcard(..) => {
                        for (i, c) in rel.columns.iter().enumerate() {
                            out_cols.push(c.clone());
                            projs.push(Proj::Col(i));
                        }
                    }
                    SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
                        let alias = match item {
                            SelectItem::ExprWithAlias { alias, .. } => Some(alias.value.clone()),
                            _ => None,
                        };
                        if let Expr::Function(f) = e {
                            if f.over.is_some() {
                                let values = row_numbers(
                                    f,
                                    &selected,
                                    &|i| scope_of(&rel.rows[i]),
                                    s.params,
                                )?;
                                out_cols.push(ColumnSpec {
                                    name: alias.unwrap_or_else(|| e.to_string()),
                                    sql_type: SqlType::Int,
                                    nullable: false,
                                });
                                projs.push(Proj::Window(values));
                                continue;
                            }
                        }
                        if let Some(i) = column_ref(e, &rel)? {
                            let mut c = rel.columns[i].clone();
                            if let Some(a) = alias {
                                c.name = a;
                            }
                            out_cols.push(c);
                            projs.push(Proj::Col(i));
                        } else {
                            let first = selected
                                .first()
                                .map(|&i| eval(e, &scope_of(&rel.rows[i]), s.params))
                                .transpose()?;
                            let t = match e {
                                Expr::Cast { data_type, .. } => {
                                    SqlType::parse(&data_type.to_string())
                                }
                                _ => None,
                            }
                            .or_else(|| first.as_ref().and_then(|v| v.natural_type()))
                            .unwrap_or(SqlType::String);
                            out_cols.push(ColumnSpec {
                                name: alias.unwrap_or_else(|| e.to_string()),
                                sql_type: t,
                                nullable: true,
                            });
                            projs.push(Proj::Expr(e));
                        }
                    }
                    other => return Err(SqlFailure::unsupported(format!("select item {other}"))),
                }
            }
            out_rows = Vec::with_capacity(selected.len());
            for (pos, &i) in selected.iter().enumerate() {
                let row = &rel.rows[i];
                let mut out = Vec::with_capacity(projs.len());
                for p in &projs {
                    out.push(match p {
                        Proj::Col(j) => row[*j].clone(),
                        Proj::Expr(e) => eval(e, &scope_of(row), s.params)?,
                        Proj::Window(values) => values[pos].clone(),
                    });
                }
                out_rows.push(out);
            }
        }
        if let Some(limit) = &q.limit_clause {
            let (limit, offset) = match limit {
                ast::LimitClause::LimitOffset { limit, offset, .. } => {
                    (limit.as_ref(), offset.as_ref().map(|o| &o.value))
                }
                ast::LimitClause::OffsetCommaLimit { offset, limit } => (Some(limit), Some(offset)),
            };
            let num = |e: &Expr| -> Result<usize, SqlFailure> {
                match eval(e, &Scope::empty(), s.params)? {
                    StandInValue::Int(n) if n >= 0 => Ok(n as usize),
                    StandInValue::BigInt(n) if n >= 0 => Ok(n as usize),
                    _ => Err(SqlFailure::new(
                        "INVALID_LIMIT_LIKE_EXPRESSION.IS_NEGATIVE",
                        "42K0E",
                        "The limit must be a non-negative integer.",
                    )),
                }
            };
            if let Some(o) = offset {
                let o = num(o)?.min(out_rows.len());
                out_rows.drain(..o);
            }
            if let Some(l) = limit {
                out_rows.truncate(num(l)?);
            }
        }
        Ok(Relation {
            alias: String::new(),
            table_name: None,
            columns: out_cols,
            rows: Cow::Owned(out_rows),
        })
    }

    fn relation<'c>(
        &'c self,
        tf: &TableFactor,
        s: &Session<'_>,
    ) -> Result<Relation<'c>, SqlFailure> {
        match tf {
            TableFactor::Table {
                name, alias, args, ..
            } => {
                if let Some(args) = args {
                    let fname = name_parts(name)?.join(".");
                    if !fname.eq_ignore_ascii_case("read_files") {
                        return Err(SqlFailure::unsupported(format!(
                            "the table-valued function {fname}"
                        )));
                    }
                    let (columns, rows) = self.read_files(&args.args, s)?;
                    if alias.as_ref().is_some_and(|a| !a.columns.is_empty()) {
                        return Err(SqlFailure::unsupported("column aliases on read_files"));
                    }
                    return Ok(Relation {
                        alias: alias
                            .as_ref()
                            .map(|a| a.name.value.to_ascii_lowercase())
                            .unwrap_or_else(|| "read_files".into()),
                        table_name: None,
                        columns,
                        rows: Cow::Owned(rows),
                    });
                }
                let table = self.lookup(name, s)?;
                if alias.as_ref().is_some_and(|a| !a.columns.is_empty()) {
                    return Err(SqlFailure::unsupported("column aliases on a table"));
                }
                Ok(Relation {
                    alias: alias
                        .as_ref()
                        .map(|a| a.name.value.to_ascii_lowercase())
                        .unwrap_or_else(|| table.name.clone()),
                    table_name: Some(table.name.clone()),
                    columns: table.columns.clone(),
                    rows: Cow::Borrowed(table.rows.as_slice()),
                })
            }
            TableFactor::Derived {
                subquery, alias, ..
            } => {
                let mut rel = self.query(subquery, s)?;
                if let Some(a) = alias {
                    rel.alias = a.name.value.to_ascii_lowercase();
                    if !a.columns.is_empty() {
                        if a.columns.len() != rel.columns.len() {
                            return Err(SqlFailure::new(
                                "ASSIGNMENT_ARITY_MISMATCH",
                                "42802",
                                format!(
                                    "The number of columns or variables assigned or aliased: {} does not match the number of source expressions: {}.",
                                    a.columns.len(),
                                    rel.columns.len()
                                ),
                            ));
                        }
                        for (c, n) in rel.columns.iter_mut().zip(&a.columns) {
                            c.name = n.name.value.clone();
                        }
                    }
                }
                Ok(rel)
            }
            other => Err(SqlFailure::unsupported(format!("the source {other}"))),
        }
    }

    /// The files of `path` (a file, or every file under a directory), or PATH_NOT_FOUND.
    fn volume_files(&self, path: &str) -> Result<Vec<(String, &[u8])>, SqlFailure> {
        let not_found = || {
            SqlFailure::new(
                "PATH_NOT_FOUND",
                "42K03",
                format!("Path does not exist: {path}."),
            )
        };
        let (c, sc, v, rel) = split_volume_path(path).ok_or_else(not_found)?;
        let vol = self
            .volumes
            .get(&(c.clone(), sc.clone(), v.clone()))
            .ok_or_else(not_found)?;
        let root = format!("/Volumes/{c}/{sc}/{v}");
        if let Some(f) = vol.files.get(&rel) {
            return Ok(vec![(format!("{root}/{rel}"), f.data.as_slice())]);
        }
        if !vol.is_dir(&rel) {
            return Err(not_found());
        }
        let prefix = if rel.is_empty() {
            String::new()
        } else {
            format!("{rel}/")
        };
        Ok(vol
            .files
            .iter()
            .filter(|(k, _)| k.starts_with(&prefix))
            .map(|(k, f)| (format!("{root}/{k}"), f.data.as_slice()))
            .collect())
    }

    /// `read_files('<path>', format => 'parquet')`: every row of the Parquet file(s), typed.
    fn read_files(
        &self,
        args: &[FunctionArg],
        s: &Session<'_>,
    ) -> Result<(Vec<ColumnSpec>, Vec<Vec<StandInValue>>), SqlFailure> {
        let text = |e: &FunctionArgExpr| -> Result<String, SqlFailure> {
            match e {
                FunctionArgExpr::Expr(e) => match eval(e, &Scope::empty(), s.params)? {
                    StandInValue::String(v) => Ok(v),
                    other => Err(SqlFailure::new(
                        "DATATYPE_MISMATCH",
                        "42K09",
                        format!("read_files expects string arguments, got {other:?}."),
                    )),
                },
                _ => Err(SqlFailure::syntax("read_files: unexpected argument")),
            }
        };
        let mut path = None;
        let mut format = None;
        for a in args {
            match a {
                FunctionArg::Unnamed(e) if path.is_none() => path = Some(text(e)?),
                FunctionArg::Named { name, arg, .. } => {
                    let v = text(arg)?;
                    match name.value.to_ascii_lowercase().as_str() {
                        "format" => format = Some(v.to_ascii_lowercase()),
                        other => {
                            return Err(SqlFailure::unsupported(format!(
                                "the read_files option {other}"
                            )))
                        }
                    }
                }
                other => {
                    return Err(SqlFailure::unsupported(format!(
                        "the read_files argument {other}"
                    )))
                }
            }
        }
        let path = path.ok_or_else(|| SqlFailure::syntax("read_files needs a path"))?;
        if format.as_deref() != Some("parquet") {
            return Err(SqlFailure::unsupported(
                "read_files without format => 'parquet'",
            ));
        }
        let files = self.volume_files(&path)?;
        let mut columns: Option<Vec<ColumnSpec>> = None;
        let mut rows = Vec::new();
        for (_, data) in files {
            let (cols, mut r) = read_parquet(data)?;
            match &columns {
                None => columns = Some(cols),
                Some(c) if *c == cols => {}
                Some(_) => {
                    return Err(SqlFailure::unsupported(
                        "read_files over files with different schemas",
                    ))
                }
            }
            rows.append(&mut r);
        }
        let columns = columns.ok_or_else(|| {
            SqlFailure::new(
                "UNABLE_TO_INFER_SCHEMA",
                "42KD9",
                format!(
                    "Unable to infer schema for Parquet at {path}. It must be specified manually."
                ),
            )
        })?;
        Ok((columns, rows))
    }

    /// `CREATE VOLUME [IF NOT EXISTS] name` (a managed volume).
    fn create_volume(&mut self, words: &[&Token], s: &Session<'_>) -> Result<Output, SqlFailure> {
        let kw = |i: usize, k: &str| matches!(words.get(i), Some(Token::Word(w)) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(k));
        let mut i = 2;
        let if_not_exists = kw(2, "IF") && kw(3, "NOT") && kw(4, "EXISTS");
        if if_not_exists {
            i = 5;
        }
        let parts = parse_name_tokens(&words[i..]).ok_or_else(|| {
            SqlFailure::syntax("Syntax error in CREATE VOLUME: expected a volume name.")
        })?;
        let (c, sc, v) = self.resolve_table_name(&parts, s)?;
        self.check_schema(&c, &sc)?;
        if self.deny_create_volume {
            return Err(SqlFailure::new(
                "INSUFFICIENT_PERMISSIONS",
                "42501",
                format!("Insufficient privileges: User does not have CREATE VOLUME on Schema '{c}.{sc}'."),
            ));
        }
        match self.volumes.entry((c.clone(), sc.clone(), v.clone())) {
            std::collections::btree_map::Entry::Occupied(_) if !if_not_exists => {
                return Err(SqlFailure::new(
                    "VOLUME_ALREADY_EXISTS",
                    "42000",
                    format!("Cannot create volume `{c}`.`{sc}`.`{v}` because it already exists."),
                ));
            }
            std::collections::btree_map::Entry::Occupied(_) => {}
            std::collections::btree_map::Entry::Vacant(e) => {
                e.insert(Volume::default());
            }
        }
        Ok(Output::default())
    }

    /// `COPY INTO t FROM '<dir>' FILEFORMAT = PARQUET [FILES = ('a', …)]`: appends the rows
    /// of each file not loaded into `t` before (by path); columns match by name.
    fn copy_into(&mut self, words: &[&Token], s: &Session<'_>) -> Result<Output, SqlFailure> {
        let kw = |i: usize, k: &str| matches!(words.get(i), Some(Token::Word(w)) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(k));
        let string = |i: usize| match words.get(i) {
            Some(Token::SingleQuotedString(raw)) => Some(unescape_string_literal(raw, '\'')),
            _ => None,
        };
        let from = (2..words.len())
            .find(|&i| kw(i, "FROM"))
            .ok_or_else(|| SqlFailure::syntax("Syntax error in COPY INTO: expected FROM."))?;
        let parts = parse_name_tokens(&words[2..from])
            .ok_or_else(|| SqlFailure::syntax("Syntax error in COPY INTO: bad table name."))?;
        let (c, sc, t) = self.resolve_table_name(&parts, s)?;
        if self.table(&c, &sc, &t).is_none() {
            return Err(not_found_table(&parts));
        }
        let dir = string(from + 1).ok_or_else(|| {
            SqlFailure::syntax("Syntax error in COPY INTO: expected a path string after FROM.")
        })?;
        let mut i = from + 2;
        let mut format = None;
        let mut files: Option<Vec<String>> = None;
        while i < words.len() {
            if kw(i, "FILEFORMAT") && matches!(words.get(i + 1), Some(Token::Eq)) {
                if let Some(Token::Word(w)) = words.get(i + 2) {
                    format = Some(w.value.to_ascii_uppercase());
                }
                i += 3;
            } else if kw(i, "FILES") && matches!(words.get(i + 1), Some(Token::Eq)) {
                let mut j = i + 2;
                if !matches!(words.get(j), Some(Token::LParen)) {
                    return Err(SqlFailure::syntax(
                        "Syntax error in COPY INTO: FILES = (…).",
                    ));
                }
                j += 1;
                let mut list = Vec::new();
                loop {
                    list.push(string(j).ok_or_else(|| {
                        SqlFailure::syntax("Syntax error in COPY INTO: FILES takes strings.")
                    })?);
                    j += 1;
                    match words.get(j) {
                        Some(Token::Comma) => j += 1,
                        Some(Token::RParen) => break,
                        _ => {
                            return Err(SqlFailure::syntax(
                                "Syntax error in COPY INTO: unclosed FILES list.",
                            ))
                        }
                    }
                }
                files = Some(list);
                i = j + 1;
            } else if matches!(words.get(i), Some(Token::SemiColon)) && i + 1 == words.len() {
                i += 1;
            } else {
                return Err(SqlFailure::unsupported(format!(
                    "the COPY INTO clause at {:?}",
                    words.get(i)
                )));
            }
        }
        if format.as_deref() != Some("PARQUET") {
            return Err(SqlFailure::unsupported(
                "COPY INTO without FILEFORMAT = PARQUET",
            ));
        }
        let paths: Vec<String> = match files {
            Some(names) => {
                let base = dir.trim_end_matches('/');
                names.iter().map(|n| format!("{base}/{n}")).collect()
            }
            None => self
                .volume_files(&dir)?
                .into_iter()
                .map(|(p, _)| p)
                .collect(),
        };
        let full = format!("{c}.{sc}.{t}");
        let table = self.table(&c, &sc, &t).expect("checked");
        let mut new_rows = Vec::new();
        let mut loaded = Vec::new();
        for path in paths {
            if self.copy_history.contains(&(full.clone(), path.clone())) {
                continue;
            }
            let data = self.volume_files(&path)?;
            let (cols, rows) = read_parquet(data[0].1)?;
            let targets: Vec<usize> = cols
                .iter()
                .map(|col| {
                    table.column_index(&col.name).ok_or_else(|| {
                        SqlFailure::new(
                            "COPY_INTO_SCHEMA_MISMATCH_WITH_TARGET_TABLE",
                            "42KDG",
                            format!(
                                "The file {path} has the column `{}`, which the table `{full}` does not have.",
                                col.name
                            ),
                        )
                    })
                })
                .collect::<Result<_, _>>()?;
            for src in rows {
                let mut row = vec![StandInValue::Null; table.columns.len()];
                for (v, &ti) in src.iter().zip(&targets) {
                    row[ti] = store(v, table.columns[ti].sql_type, &table.columns[ti].name)?;
                }
                check_not_null(table, &row)?;
                new_rows.push(row);
            }
            loaded.push(path);
        }
        let n = new_rows.len() as u64;
        let table = self.table_mut(&c, &sc, &t).expect("checked");
        append_rows(table, new_rows);
        table.updated_at_ms = s.now_ms;
        for p in loaded {
            self.copy_history.insert((full.clone(), p));
        }
        Ok(Output::counts(&[
            ("num_affected_rows", n),
            ("num_inserted_rows", n),
            ("num_skipped_corrupt_files", 0),
        ]))
    }

    fn insert(&mut self, ins: ast::Insert, s: &Session<'_>) -> Result<Output, SqlFailure> {
        if ins.overwrite || ins.on.is_some() || !ins.assignments.is_empty() || ins.by_name {
            return Err(SqlFailure::unsupported(
                "INSERT OVERWRITE / BY NAME / ON CONFLICT",
            ));
        }
        let ast::TableObject::TableName(name) = &ins.table else {
            return Err(SqlFailure::unsupported("INSERT INTO a table function"));
        };
        let (c, sc, t) = self.lookup_key(name, s)?;
        let source = ins
            .source
            .as_ref()
            .ok_or_else(|| SqlFailure::syntax("INSERT needs VALUES or a query."))?;
        let rel = self.query(source, s)?;
        let table = self.table(&c, &sc, &t).expect("checked");
        let targets: Vec<usize> = if ins.columns.is_empty() {
            (0..table.columns.len()).collect()
        } else {
            ins.columns
                .iter()
                .map(|n| {
                    let n = name_parts(n)?.pop().unwrap_or_default();
                    table.column_index(&n).ok_or_else(|| unresolved_column(&n))
                })
                .collect::<Result<_, _>>()?
        };
        if rel.columns.len() != targets.len() {
            return Err(SqlFailure::new(
                "INSERT_COLUMN_ARITY_MISMATCH.TOO_MANY_DATA_COLUMNS",
                "21S01",
                format!(
                    "Cannot write to `{}`.`{}`.`{}`: the table or the column list has {} columns but the inserted data has {}.",
                    c, sc, t, targets.len(), rel.columns.len()
                ),
            ));
        }
        let mut new_rows = Vec::with_capacity(rel.rows.len());
        for src in rel.rows.iter() {
            let mut row = vec![StandInValue::Null; table.columns.len()];
            for (v, &ti) in src.iter().zip(&targets) {
                row[ti] = store(v, table.columns[ti].sql_type, &table.columns[ti].name)?;
            }
            check_not_null(table, &row)?;
            new_rows.push(row);
        }
        let n = new_rows.len() as u64;
        let table = self.table_mut(&c, &sc, &t).expect("checked");
        append_rows(table, new_rows);
        table.updated_at_ms = s.now_ms;
        Ok(Output::counts(&[
            ("num_affected_rows", n),
            ("num_inserted_rows", n),
        ]))
    }

    fn delete(&mut self, d: ast::Delete, s: &Session<'_>) -> Result<Output, SqlFailure> {
        let from = match &d.from {
            ast::FromTable::WithFromKeyword(v) | ast::FromTable::WithoutKeyword(v) => v,
        };
        if from.len() != 1 || !from[0].joins.is_empty() || d.using.is_some() {
            return Err(SqlFailure::unsupported("DELETE with several tables"));
        }
        let TableFactor::Table { name, .. } = &from[0].relation else {
            return Err(SqlFailure::unsupported("DELETE from a subquery"));
        };
        let (c, sc, t) = self.lookup_key(name, s)?;
        let table = self.table(&c, &sc, &t).expect("checked");
        let mut keep = Vec::with_capacity(table.rows.len());
        for row in &table.rows {
            let del = match &d.selection {
                None => true,
                Some(cond) => {
                    let scope = Scope {
                        sources: vec![Source {
                            alias: table.name.clone(),
                            table_name: Some(table.name.clone()),
                            columns: &table.columns,
                            row: row.clone(),
                        }],
                    };
                    truthy(&eval(cond, &scope, s.params)?)
                }
            };
            keep.push(!del);
        }
        let table = self.table_mut(&c, &sc, &t).expect("checked");
        let before = table.rows.len();
        let mut it = keep.into_iter();
        table.rows.retain(|_| it.next().unwrap_or(true));
        let n = (before - table.rows.len()) as u64;
        if n > 0 {
            table.index = None;
        }
        table.updated_at_ms = s.now_ms;
        Ok(Output::counts(&[("num_affected_rows", n)]))
    }

    /// `UPDATE t SET c = expr, … [WHERE cond]` on one table: the affected-row count is what a
    /// compare-and-set (a lease's `WHERE version = v`) checks.
    fn update(&mut self, u: ast::Update, s: &Session<'_>) -> Result<Output, SqlFailure> {
        if u.from.is_some() || !u.table.joins.is_empty() || u.returning.is_some() {
            return Err(SqlFailure::unsupported(
                "UPDATE with FROM, joins or RETURNING",
            ));
        }
        let TableFactor::Table { name, alias, .. } = &u.table.relation else {
            return Err(SqlFailure::unsupported("UPDATE of a subquery"));
        };
        let (c, sc, t) = self.lookup_key(name, s)?;
        let table = self.table(&c, &sc, &t).expect("checked");
        let alias = alias
            .as_ref()
            .map(|a| a.name.value.clone())
            .unwrap_or_else(|| table.name.clone());
        let mut targets = Vec::with_capacity(u.assignments.len());
        for a in &u.assignments {
            let ast::AssignmentTarget::ColumnName(n) = &a.target else {
                return Err(SqlFailure::unsupported("tuple assignment"));
            };
            let parts = name_parts(n)?;
            let col = parts.last().cloned().unwrap_or_default();
            let ci = table
                .column_index(&col)
                .ok_or_else(|| unresolved_column(&col))?;
            targets.push((ci, &a.value));
        }
        let mut updates: Vec<(usize, Vec<StandInValue>)> = Vec::new();
        for (ri, row) in table.rows.iter().enumerate() {
            let scope = Scope {
                sources: vec![Source {
                    alias: alias.clone(),
                    table_name: Some(table.name.clone()),
                    columns: &table.columns,
                    row: row.clone(),
                }],
            };
            if let Some(cond) = &u.selection {
                if !truthy(&eval(cond, &scope, s.params)?) {
                    continue;
                }
            }
            let mut next = row.clone();
            for (ci, e) in &targets {
                let v = eval(e, &scope, s.params)?;
                let col = &table.columns[*ci];
                next[*ci] = store(&v, col.sql_type, &col.name)?;
            }
            check_not_null(table, &next)?;
            updates.push((ri, next));
        }
        let n = updates.len() as u64;
        let table = self.table_mut(&c, &sc, &t).expect("checked");
        for (ri, row) in updates {
            table.rows[ri] = row;
        }
        if n > 0 {
            table.index = None;
        }
        table.updated_at_ms = s.now_ms;
        Ok(Output::counts(&[
            ("num_affected_rows", n),
            ("num_updated_rows", n),
        ]))
    }

    fn merge(&mut self, m: ast::Merge, s: &Session<'_>) -> Result<Output, SqlFailure> {
        let TableFactor::Table {
            name: target_name,
            alias: target_alias,
            ..
        } = &m.table
        else {
            return Err(SqlFailure::unsupported("MERGE into a subquery"));
        };
        if let TableFactor::Derived { alias: Some(a), .. } = &m.source {
            if !a.columns.is_empty() {
                return Err(SqlFailure::new(
                    "COLUMN_ALIASES_NOT_ALLOWED",
                    "42601",
                    "Column aliases are not allowed in MERGE.",
                ));
            }
        }
        let (c, sc, t) = self.lookup_key(target_name, s)?;
        let src = self.relation(&m.source, s)?;
        let table = self.table(&c, &sc, &t).expect("checked");
        let tgt_alias = target_alias
            .as_ref()
            .map(|a| a.name.value.to_ascii_lowercase())
            .unwrap_or_else(|| table.name.clone());
        let src_alias = src.alias.clone();

        // Equi-join keys: tgt.col (= | <=>) src.col joined by AND.
        let mut conjuncts = Vec::new();
        split_and(&m.on, &mut conjuncts);
        let mut keys: Vec<(usize, usize, bool)> = Vec::new(); // (target col, source col, null-safe)
        let resolve_side = |e: &Expr| -> Option<(bool, usize)> {
            let parts: Vec<String> = match e {
                Expr::CompoundIdentifier(ids) => {
                    ids.iter().map(|i| i.value.to_ascii_lowercase()).collect()
                }
                Expr::Identifier(i) => vec![i.value.to_ascii_lowercase()],
                _ => return None,
            };
            let (q, col) = match parts.as_slice() {
                [col] => (None, col),
                [q, col] => (Some(q.as_str()), col),
                _ => return None,
            };
            let in_t = table.column_index(col);
            let in_s = src
                .columns
                .iter()
                .position(|c| c.name.eq_ignore_ascii_case(col));
            match q {
                Some(q) if q == tgt_alias => in_t.map(|i| (true, i)),
                Some(q) if q == src_alias => in_s.map(|i| (false, i)),
                None => match (in_t, in_s) {
                    (Some(i), None) => Some((true, i)),
                    (None, Some(i)) => Some((false, i)),
                    _ => None,
                },
                _ => None,
            }
        };
        let mut equi = true;
        for cj in &conjuncts {
            if let Expr::BinaryOp { left, op, right } = cj {
                let ns = match op {
                    BinaryOperator::Eq => Some(false),
                    BinaryOperator::Spaceship => Some(true),
                    _ => None,
                };
                if let (Some(ns), Some(l), Some(r)) = (ns, resolve_side(left), resolve_side(right))
                {
                    match (l, r) {
                        ((true, ti), (false, si)) | ((false, si), (true, ti)) => {
                            keys.push((ti, si, ns));
                            continue;
                        }
                        _ => {}
                    }
                }
            }
            equi = false;
        }
        if keys.is_empty() {
            equi = false;
        }

        // Source rows → matching target rows.
        let src_key = |row: &[StandInValue]| -> Result<Option<Vec<KeyPart>>, SqlFailure> {
            let mut k = Vec::with_capacity(keys.len());
            for &(ti, si, ns) in &keys {
                let v = cast(&row[si], table.columns[ti].sql_type)?;
                if v.is_null() && !ns {
                    return Ok(None);
                }
                k.push(key_part(&v));
            }
            Ok(Some(k))
        };
        let mut matches: Vec<Vec<usize>> = Vec::with_capacity(src.rows.len());
        let mut source_keys: HashMap<Vec<KeyPart>, usize> = HashMap::new();
        let mut dup_source: Option<usize> = None;
        if equi {
            let key_cols: Vec<usize> = keys.iter().map(|k| k.0).collect();
            let fresh_index;
            let index = match &table.index {
                Some(ix) if ix.cols == key_cols => &ix.map,
                _ => {
                    fresh_index = build_index(&table.rows, &key_cols);
                    &fresh_index
                }
            };
            for (i, row) in src.rows.iter().enumerate() {
                match src_key(row)? {
                    None => matches.push(vec![]),
                    Some(k) => {
                        let mut hit = index.get(&k).cloned().unwrap_or_default();
                        // `=` never matches a NULL target key.
                        hit.retain(|&ti| {
                            keys.iter()
                                .all(|&(tc, _, ns)| ns || !table.rows[ti][tc].is_null())
                        });
                        if source_keys.insert(k, i).is_some() && dup_source.is_none() {
                            dup_source = Some(i);
                        }
                        matches.push(hit);
                    }
                }
            }
        } else {
            for srow in src.rows.iter() {
                let mut hit = Vec::new();
                for (ti, trow) in table.rows.iter().enumerate() {
                    let scope = merge_scope(&tgt_alias, table, trow, &src_alias, &src, srow);
                    if truthy(&eval(&m.on, &scope, s.params)?) {
                        hit.push(ti);
                    }
                }
                matches.push(hit);
            }
        }
        let has_matched_clause = m
            .clauses
            .iter()
            .any(|c| matches!(c.clause_kind, MergeClauseKind::Matched));
        let dup_error = || {
            SqlFailure::new(
                "DELTA_MULTIPLE_SOURCE_ROW_MATCHING_TARGET_ROW_IN_MERGE",
                "21506",
                "Cannot perform Merge as multiple source rows matched and attempted to modify the same target row in the Delta table in possibly conflicting ways. By SQL semantics of Merge, when multiple source rows match on the same target row, the result may be ambiguous as it is unclear which source row should be used to update or delete the matching target row. You can preprocess the source table to eliminate the possibility of multiple matches.",
            )
        };
        if dup_source.is_some() && s.merge_duplicates == MergeDuplicates::FailAlways {
            return Err(dup_error());
        }
        if has_matched_clause {
            let mut hit_by: HashSet<usize> = HashSet::new();
            for hits in &matches {
                for &t in hits {
                    if !hit_by.insert(t) {
                        return Err(dup_error());
                    }
                }
            }
        }

        // Plan the changes.
        let mut updates: Vec<(usize, Vec<StandInValue>)> = Vec::new();
        let mut deletes: HashSet<usize> = HashSet::new();
        let mut inserts: Vec<Vec<StandInValue>> = Vec::new();
        let mut matched_targets: HashSet<usize> = HashSet::new();
        let col_of_target = |n: &ObjectName| -> Result<usize, SqlFailure> {
            let parts = name_parts(n)?;
            let col = parts.last().cloned().unwrap_or_default();
            if parts.len() == 2 && !parts[0].eq_ignore_ascii_case(&tgt_alias) {
                return Err(unresolved_column(&parts.join(".")));
            }
            table
                .column_index(&col)
                .ok_or_else(|| unresolved_column(&col))
        };
        let src_col = |name: &str| {
            src.columns
                .iter()
                .position(|c| c.name.eq_ignore_ascii_case(name))
                .ok_or_else(|| {
                    SqlFailure::new(
                        "DELTA_MERGE_UNRESOLVED_EXPRESSION",
                        "42601",
                        format!(
                            "Cannot resolve {tgt_alias}.{name} in UPDATE/INSERT clause given columns {}.",
                            src.columns
                                .iter()
                                .map(|c| format!("{src_alias}.{}", c.name))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    )
                })
        };
        for (si, srow) in src.rows.iter().enumerate() {
            let hits = &matches[si];
            if hits.is_empty() {
                for clause in &m.clauses {
                    if !matches!(
                        clause.clause_kind,
                        MergeClauseKind::NotMatched | MergeClauseKind::NotMatchedByTarget
                    ) {
                        continue;
                    }
                    let null_row = vec![StandInValue::Null; table.columns.len()];
                    let scope = merge_scope(&tgt_alias, table, &null_row, &src_alias, &src, srow);
                    if let Some(p) = &clause.predicate {
                        if !truthy(&eval(p, &scope, s.params)?) {
                            continue;
                        }
                    }
                    let MergeAction::Insert(ins) = &clause.action else {
                        return Err(SqlFailure::syntax("WHEN NOT MATCHED needs INSERT."));
                    };
                    let mut row = vec![StandInValue::Null; table.columns.len()];
                    match &ins.kind {
                        MergeInsertKind::Wildcard => {
                            for (ti, col) in table.columns.iter().enumerate() {
                                let v = &srow[src_col(&col.name)?];
                                row[ti] = store(v, col.sql_type, &col.name)?;
                            }
                        }
                        MergeInsertKind::Values(values) => {
                            let exprs = values
                                .rows
                                .first()
                                .map(|r| &r.content)
                                .ok_or_else(|| SqlFailure::syntax("INSERT needs VALUES."))?;
                            let cols: Vec<usize> = if ins.columns.is_empty() {
                                (0..table.columns.len()).collect()
                            } else {
                                ins.columns
                                    .iter()
                                    .map(col_of_target)
                                    .collect::<Result<_, _>>()?
                            };
                            if cols.len() != exprs.len() {
                                return Err(SqlFailure::new(
                                    "DELTA_MERGE_INSERT_ARITY",
                                    "42802",
                                    "The INSERT clause of MERGE has a different number of columns and values.",
                                ));
                            }
                            for (&ti, e) in cols.iter().zip(exprs) {
                                let v = eval(e, &scope, s.params)?;
                                let col = &table.columns[ti];
                                row[ti] = store(&v, col.sql_type, &col.name)?;
                            }
                        }
                        MergeInsertKind::Row => return Err(SqlFailure::unsupported("INSERT ROW")),
                    }
                    check_not_null(table, &row)?;
                    inserts.push(row);
                    break;
                }
                continue;
            }
            for &ti in hits {
                matched_targets.insert(ti);
                let trow = &table.rows[ti];
                for clause in &m.clauses {
                    if !matches!(clause.clause_kind, MergeClauseKind::Matched) {
                        continue;
                    }
                    let scope = merge_scope(&tgt_alias, table, trow, &src_alias, &src, srow);
                    if let Some(p) = &clause.predicate {
                        if !truthy(&eval(p, &scope, s.params)?) {
                            continue;
                        }
                    }
                    match &clause.action {
                        MergeAction::Delete { .. } => {
                            deletes.insert(ti);
                        }
                        MergeAction::Update(u) => {
                            let mut row = trow.clone();
                            match &u.kind {
                                MergeUpdateKind::Set(assignments) => {
                                    for a in assignments {
                                        let ast::AssignmentTarget::ColumnName(n) = &a.target else {
                                            return Err(SqlFailure::unsupported(
                                                "tuple assignment",
                                            ));
                                        };
                                        let ci = col_of_target(n)?;
                                        let v = eval(&a.value, &scope, s.params)?;
                                        let col = &table.columns[ci];
                                        row[ci] = store(&v, col.sql_type, &col.name)?;
                                    }
                                }
                                _ => {
                                    // UPDATE SET *
                                    for (ci, col) in table.columns.iter().enumerate() {
                                        let v = &srow[src_col(&col.name)?];
                                        row[ci] = store(v, col.sql_type, &col.name)?;
                                    }
                                }
                            }
                            check_not_null(table, &row)?;
                            updates.push((ti, row));
                        }
                        _ => return Err(SqlFailure::unsupported("this WHEN MATCHED action")),
                    }
                    break;
                }
            }
        }
        let by_source = m
            .clauses
            .iter()
            .any(|c| matches!(c.clause_kind, MergeClauseKind::NotMatchedBySource));
        if by_source {
            let null_src = vec![StandInValue::Null; src.columns.len()];
            for (ti, trow) in table.rows.iter().enumerate() {
                if matched_targets.contains(&ti) {
                    continue;
                }
                for clause in &m.clauses {
                    if !matches!(clause.clause_kind, MergeClauseKind::NotMatchedBySource) {
                        continue;
                    }
                    let scope = merge_scope(&tgt_alias, table, trow, &src_alias, &src, &null_src);
                    if let Some(p) = &clause.predicate {
                        if !truthy(&eval(p, &scope, s.params)?) {
                            continue;
                        }
                    }
                    match &clause.action {
                        MergeAction::Delete { .. } => {
                            deletes.insert(ti);
                        }
                        MergeAction::Update(u) => {
                            let MergeUpdateKind::Set(assignments) = &u.kind else {
                                return Err(SqlFailure::syntax("UPDATE SET * needs a source row."));
                            };
                            let mut row = trow.clone();
                            for a in assignments {
                                let ast::AssignmentTarget::ColumnName(n) = &a.target else {
                                    return Err(SqlFailure::unsupported("tuple assignment"));
                                };
                                let ci = col_of_target(n)?;
                                let v = eval(&a.value, &scope, s.params)?;
                                let col = &table.columns[ci];
                                row[ci] = store(&v, col.sql_type, &col.name)?;
                            }
                            check_not_null(table, &row)?;
                            updates.push((ti, row));
                        }
                        _ => {
                            return Err(SqlFailure::unsupported(
                                "this WHEN NOT MATCHED BY SOURCE action",
                            ))
                        }
                    }
                    break;
                }
            }
        }
        let key_cols: Vec<usize> = keys.iter().map(|k| k.0).collect();
        let updated_keys = updates
            .iter()
            .any(|(ti, row)| key_cols.iter().any(|&k| row[k] != table.rows[*ti][k]));
        drop(src);
        let (nu, nd, ni) = (
            updates.len() as u64,
            deletes.len() as u64,
            inserts.len() as u64,
        );
        // Apply.
        let table = self.table_mut(&c, &sc, &t).expect("checked");
        for (ti, row) in updates {
            table.rows[ti] = row;
        }
        if updated_keys {
            table.index = None;
        }
        if !deletes.is_empty() {
            let mut i = 0;
            table.rows.retain(|_| {
                let keep = !deletes.contains(&i);
                i += 1;
                keep
            });
            table.index = None;
        }
        if equi && table.index.as_ref().is_none_or(|ix| ix.cols != key_cols) {
            table.index = Some(KeyIndex {
                map: build_index(&table.rows, &key_cols),
                cols: key_cols,
            });
        }
        append_rows(table, inserts);
        table.updated_at_ms = s.now_ms;
        Ok(Output::counts(&[
            ("num_affected_rows", nu + nd + ni),
            ("num_updated_rows", nu),
            ("num_deleted_rows", nd),
            ("num_inserted_rows", ni),
        ]))
    }
}

/// Sorts `(sort key, payload)` pairs by ORDER BY `exprs` (ASC puts NULLs first, DESC last,
/// unless `NULLS FIRST/LAST` says otherwise); stable, so ties keep their order.
fn sort_keyed<T>(
    keyed: &mut [(Vec<StandInValue>, T)],
    exprs: &[ast::OrderByExpr],
) -> Result<(), SqlFailure> {
    let mut err = None;
    keyed.sort_by(|(a, _), (b, _)| {
        for (j, o) in exprs.iter().enumerate() {
            let desc = matches!(o.options.sort, Some(ast::OrderBySort::Desc));
            let nulls_first = o.options.nulls_first.unwrap_or(!desc);
            let ord = match (a[j].is_null(), b[j].is_null()) {
                (true, true) => Ordering::Equal,
                (true, false) => {
                    if nulls_first {
                        Ordering::Less
                    } else {
                        Ordering::Greater
                    }
                }
                (false, true) => {
                    if nulls_first {
                        Ordering::Greater
                    } else {
                        Ordering::Less
                    }
                }
                (false, false) => {
                    let o = match compare(&a[j], &b[j]) {
                        Ok(o) => o.unwrap_or(Ordering::Equal),
                        Err(e) => {
                            err = Some(e);
                            Ordering::Equal
                        }
                    };
                    if desc {
                        o.reverse()
                    } else {
                        o
                    }
                }
            };
            if ord != Ordering::Equal {
                return ord;
            }
        }
        Ordering::Equal
    });
    match err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// `ROW_NUMBER() OVER (PARTITION BY … ORDER BY …)` over the selected rows (the only window
/// function the stand-in knows), by position in `selected`.
fn row_numbers<'s>(
    f: &ast::Function,
    selected: &[usize],
    scope_of: &dyn Fn(usize) -> Scope<'s>,
    params: &HashMap<String, StandInValue>,
) -> Result<Vec<StandInValue>, SqlFailure> {
    let name = f.name.to_string().to_ascii_lowercase();
    let no_args = match &f.args {
        FunctionArguments::None => true,
        FunctionArguments::List(l) => l.args.is_empty(),
        FunctionArguments::Subquery(_) => false,
    };
    if name != "row_number" || !no_args {
        return Err(SqlFailure::unsupported(format!("the window function {f}")));
    }
    let Some(ast::WindowType::WindowSpec(spec)) = &f.over else {
        return Err(SqlFailure::unsupported("named windows"));
    };
    if spec.window_frame.is_some() {
        return Err(SqlFailure::unsupported("window frames"));
    }
    let mut partitions: HashMap<Vec<KeyPart>, Vec<(Vec<StandInValue>, usize)>> = HashMap::new();
    for (pos, &i) in selected.iter().enumerate() {
        let scope = scope_of(i);
        let mut part = Vec::with_capacity(spec.partition_by.len());
        for e in &spec.partition_by {
            part.push(key_part(&eval(e, &scope, params)?));
        }
        let mut order = Vec::with_capacity(spec.order_by.len());
        for o in &spec.order_by {
            order.push(eval(&o.expr, &scope, params)?);
        }
        partitions.entry(part).or_default().push((order, pos));
    }
    let mut out = vec![StandInValue::Null; selected.len()];
    for mut rows in partitions.into_values() {
        sort_keyed(&mut rows, &spec.order_by)?;
        for (n, (_, pos)) in rows.into_iter().enumerate() {
            out[pos] = StandInValue::Int(n as i32 + 1);
        }
    }
    Ok(out)
}

fn build_index(rows: &[Vec<StandInValue>], cols: &[usize]) -> HashMap<Vec<KeyPart>, Vec<usize>> {
    let mut map: HashMap<Vec<KeyPart>, Vec<usize>> = HashMap::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        map.entry(cols.iter().map(|&c| key_part(&row[c])).collect())
            .or_default()
            .push(i);
    }
    map
}

fn append_rows(table: &mut Table, rows: Vec<Vec<StandInValue>>) {
    for row in rows {
        if let Some(ix) = &mut table.index {
            let k = ix.cols.iter().map(|&c| key_part(&row[c])).collect();
            ix.map.entry(k).or_default().push(table.rows.len());
        }
        table.rows.push(row);
    }
}

fn check_not_null(table: &Table, row: &[StandInValue]) -> Result<(), SqlFailure> {
    for (c, v) in table.columns.iter().zip(row) {
        if !c.nullable && v.is_null() {
            return Err(SqlFailure::new(
                "DELTA_NOT_NULL_CONSTRAINT_VIOLATED",
                "23502",
                format!("NOT NULL constraint violated for column: {}.", c.name),
            ));
        }
    }
    Ok(())
}

fn merge_scope<'a>(
    tgt_alias: &str,
    table: &'a Table,
    trow: &[StandInValue],
    src_alias: &str,
    src: &'a Relation<'_>,
    srow: &[StandInValue],
) -> Scope<'a> {
    Scope {
        sources: vec![
            Source {
                alias: tgt_alias.to_string(),
                table_name: Some(table.name.clone()),
                columns: &table.columns,
                row: trow.to_vec(),
            },
            Source {
                alias: src_alias.to_string(),
                table_name: src.table_name.clone(),
                columns: &src.columns,
                row: srow.to_vec(),
            },
        ],
    }
}

fn split_and<'e>(e: &'e Expr, out: &mut Vec<&'e Expr>) {
    match e {
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => {
            split_and(left, out);
            split_and(right, out);
        }
        Expr::Nested(inner) => split_and(inner, out),
        other => out.push(other),
    }
}

/// A relation: named, typed columns and rows.
pub(crate) struct Relation<'c> {
    alias: String,
    table_name: Option<String>,
    columns: Vec<ColumnSpec>,
    rows: Cow<'c, [Vec<StandInValue>]>,
}

fn values_relation(
    rows: Vec<Vec<StandInValue>>,
    names: &[String],
) -> Result<Relation<'static>, SqlFailure> {
    let width = rows.first().map(Vec::len).unwrap_or(0);
    if rows.iter().any(|r| r.len() != width) {
        return Err(SqlFailure::new(
            "INVALID_INLINE_TABLE.NUM_COLUMNS_MISMATCH",
            "42000",
            "Invalid inline table: the rows have different numbers of columns.",
        ));
    }
    let columns = (0..width)
        .map(|i| ColumnSpec {
            name: names
                .get(i)
                .cloned()
                .unwrap_or_else(|| format!("col{}", i + 1)),
            sql_type: rows
                .iter()
                .find_map(|r| r[i].natural_type())
                .unwrap_or(SqlType::String),
            nullable: true,
        })
        .collect();
    Ok(Relation {
        alias: String::new(),
        table_name: None,
        columns,
        rows: Cow::Owned(rows),
    })
}

struct Source<'a> {
    alias: String,
    table_name: Option<String>,
    columns: &'a [ColumnSpec],
    row: Vec<StandInValue>,
}

struct Scope<'a> {
    sources: Vec<Source<'a>>,
}

impl Scope<'_> {
    fn empty() -> Self {
        Scope { sources: vec![] }
    }

    fn resolve(&self, parts: &[String]) -> Result<StandInValue, SqlFailure> {
        let (qual, col) = match parts {
            [col] => (None, col),
            [.., q, col] => (Some(q), col),
            [] => return Err(unresolved_column("")),
        };
        let mut found = None;
        for s in &self.sources {
            if let Some(q) = qual {
                if !q.eq_ignore_ascii_case(&s.alias)
                    && !s
                        .table_name
                        .as_ref()
                        .is_some_and(|t| t.eq_ignore_ascii_case(q))
                {
                    continue;
                }
            }
            if let Some(i) = s
                .columns
                .iter()
                .position(|c| c.name.eq_ignore_ascii_case(col))
            {
                if found.is_some() {
                    return Err(SqlFailure::new(
                        "AMBIGUOUS_REFERENCE",
                        "42702",
                        format!("Reference `{col}` is ambiguous."),
                    ));
                }
                found = Some(s.row[i].clone());
            }
        }
        found.ok_or_else(|| unresolved_column(&parts.join(".")))
    }
}

fn truthy(v: &StandInValue) -> bool {
    matches!(v, StandInValue::Boolean(true))
}

fn column_ref(e: &Expr, rel: &Relation<'_>) -> Result<Option<usize>, SqlFailure> {
    let (q, col) = match e {
        Expr::Identifier(i) => (None, &i.value),
        Expr::CompoundIdentifier(ids) if ids.len() >= 2 => {
            (Some(&ids[ids.len() - 2].value), &ids[ids.len() - 1].value)
        }
        _ => return Ok(None),
    };
    if let Some(q) = q {
        let ok = q.eq_ignore_ascii_case(&rel.alias)
            || rel
                .table_name
                .as_ref()
                .is_some_and(|t| t.eq_ignore_ascii_case(q));
        if !ok {
            return Err(unresolved_column(&format!("{q}.{col}")));
        }
    }
    rel.columns
        .iter()
        .position(|c| c.name.eq_ignore_ascii_case(col))
        .map(Some)
        .ok_or_else(|| unresolved_column(col))
}

fn column_type_of(e: &Expr, rel: &Relation<'_>) -> Option<SqlType> {
    column_ref(e, rel)
        .ok()
        .flatten()
        .map(|i| rel.columns[i].sql_type)
}

/// `(function, argument)` for COUNT / MIN / MAX; argument `None` for `COUNT(*)`.
fn aggregate_of(e: &Expr) -> Option<(String, Option<&Expr>)> {
    let Expr::Function(f) = e else { return None };
    let name = f.name.to_string().to_ascii_lowercase();
    if !matches!(name.as_str(), "count" | "min" | "max") {
        return None;
    }
    let FunctionArguments::List(list) = &f.args else {
        return None;
    };
    match list.args.as_slice() {
        [FunctionArg::Unnamed(FunctionArgExpr::Wildcard)] if name == "count" => Some((name, None)),
        [FunctionArg::Unnamed(FunctionArgExpr::Expr(a))] => {
            if name == "count"
                && matches!(a, Expr::Value(v) if matches!(v.value, Value::Number(..)))
            {
                Some((name, None))
            } else {
                Some((name, Some(a)))
            }
        }
        _ => None,
    }
}

fn eval_order_expr(
    e: &Expr,
    scope: &Scope<'_>,
    params: &HashMap<String, StandInValue>,
    projection: &[SelectItem],
) -> Result<StandInValue, SqlFailure> {
    match eval(e, scope, params) {
        Err(err) if err.error_class.starts_with("UNRESOLVED_COLUMN") => {
            // ORDER BY a projection alias.
            if let Expr::Identifier(i) = e {
                for item in projection {
                    if let SelectItem::ExprWithAlias { expr, alias } = item {
                        if alias.value.eq_ignore_ascii_case(&i.value) {
                            return eval(expr, scope, params);
                        }
                    }
                }
            }
            Err(err)
        }
        other => other,
    }
}

fn string_of_value(v: &Value) -> Option<String> {
    match v {
        Value::SingleQuotedString(s) => Some(unescape_string_literal(s, '\'')),
        _ => None,
    }
}

fn eval(
    e: &Expr,
    scope: &Scope<'_>,
    params: &HashMap<String, StandInValue>,
) -> Result<StandInValue, SqlFailure> {
    use StandInValue as V;
    Ok(match e {
        Expr::Value(v) => match &v.value {
            Value::Number(n, long) => {
                if *long {
                    parse_number(&format!("{n}L"))?
                } else {
                    parse_number(n)?
                }
            }
            Value::SingleQuotedString(s) => V::String(unescape_string_literal(s, '\'')),
            Value::Boolean(b) => V::Boolean(*b),
            Value::Null => V::Null,
            Value::Placeholder(p) => {
                let name = p.trim_start_matches([':', '$', '@']);
                if p.starts_with('?') || name.is_empty() {
                    return Err(SqlFailure::new(
                        "UNBOUND_SQL_PARAMETER",
                        "42P02",
                        "Positional parameters (?) are not supported by the Statement Execution API.",
                    ));
                }
                params.get(name).cloned().ok_or_else(|| {
                    SqlFailure::new(
                        "UNBOUND_SQL_PARAMETER",
                        "42P02",
                        format!("Found the unbound parameter: {name}. Please, fix `args` and provide a mapping of the parameter to either a SQL literal or collection constructor functions such as `map()`, `array()`, `struct()`."),
                    )
                })?
            }
            other => return Err(SqlFailure::unsupported(format!("the literal {other}"))),
        },
        Expr::TypedString(ts) => {
            let text = string_of_value(&ts.value.value)
                .ok_or_else(|| SqlFailure::unsupported("this typed literal"))?;
            let t = SqlType::parse(&ts.data_type.to_string())
                .ok_or_else(|| SqlFailure::unsupported(format!("{} literals", ts.data_type)))?;
            cast(&V::String(text), t).map_err(|mut err| {
                err.error_class = "INVALID_TYPED_LITERAL".into();
                err.sql_state = "42604".into();
                err
            })?
        }
        Expr::Cast {
            kind,
            expr,
            data_type,
            format,
        } => {
            if format.is_some() {
                return Err(SqlFailure::unsupported("CAST … FORMAT"));
            }
            let t = SqlType::parse(&data_type.to_string())
                .ok_or_else(|| SqlFailure::unsupported(format!("casts to {data_type}")))?;
            let v = eval(expr, scope, params)?;
            match kind {
                ast::CastKind::TryCast | ast::CastKind::SafeCast => cast(&v, t).unwrap_or(V::Null),
                _ => cast(&v, t)?,
            }
        }
        Expr::Nested(inner) => eval(inner, scope, params)?,
        Expr::UnaryOp { op, expr } => {
            let v = eval(expr, scope, params)?;
            match (op, v) {
                (UnaryOperator::Plus, v) => v,
                (UnaryOperator::Minus, V::Int(i)) => match i.checked_neg() {
                    Some(n) => V::Int(n),
                    None => V::BigInt(-(i as i64)),
                },
                (UnaryOperator::Minus, V::BigInt(i)) => {
                    V::BigInt(i.checked_neg().ok_or_else(|| {
                        SqlFailure::new("ARITHMETIC_OVERFLOW", "22003", "long overflow")
                    })?)
                }
                (UnaryOperator::Minus, V::Decimal(d)) => V::Decimal(-d),
                (UnaryOperator::Minus, V::Double(d)) => V::Double(-d),
                (UnaryOperator::Minus, V::Null) => V::Null,
                (UnaryOperator::Not, V::Boolean(b)) => V::Boolean(!b),
                (UnaryOperator::Not, V::Null) => V::Null,
                (op, v) => {
                    return Err(SqlFailure::new(
                        "DATATYPE_MISMATCH.UNEXPECTED_INPUT_TYPE",
                        "42K09",
                        format!("Cannot apply {op} to {v}."),
                    ))
                }
            }
        }
        Expr::Identifier(i) => scope.resolve(std::slice::from_ref(&i.value))?,
        Expr::CompoundIdentifier(ids) => {
            scope.resolve(&ids.iter().map(|i| i.value.clone()).collect::<Vec<_>>())?
        }
        Expr::IsNull(inner) => V::Boolean(eval(inner, scope, params)?.is_null()),
        Expr::IsNotNull(inner) => V::Boolean(!eval(inner, scope, params)?.is_null()),
        Expr::BinaryOp { left, op, right } => {
            let l = eval(left, scope, params)?;
            match op {
                BinaryOperator::And => {
                    if matches!(l, V::Boolean(false)) {
                        return Ok(V::Boolean(false));
                    }
                    let r = eval(right, scope, params)?;
                    return Ok(match (l, r) {
                        (_, V::Boolean(false)) => V::Boolean(false),
                        (V::Boolean(true), V::Boolean(true)) => V::Boolean(true),
                        _ => V::Null,
                    });
                }
                BinaryOperator::Or => {
                    if matches!(l, V::Boolean(true)) {
                        return Ok(V::Boolean(true));
                    }
                    let r = eval(right, scope, params)?;
                    return Ok(match (l, r) {
                        (_, V::Boolean(true)) => V::Boolean(true),
                        (V::Boolean(false), V::Boolean(false)) => V::Boolean(false),
                        _ => V::Null,
                    });
                }
                _ => {}
            }
            let r = eval(right, scope, params)?;
            if matches!(op, BinaryOperator::Spaceship) {
                return Ok(V::Boolean(match (l.is_null(), r.is_null()) {
                    (true, true) => true,
                    (false, false) => compare(&l, &r)? == Some(Ordering::Equal),
                    _ => false,
                }));
            }
            if matches!(op, BinaryOperator::StringConcat) {
                return Ok(match (l, r) {
                    (V::Null, _) | (_, V::Null) => V::Null,
                    (a, b) => V::String(format!("{a}{b}")),
                });
            }
            let Some(ord) = compare(&l, &r)? else {
                return Ok(V::Null);
            };
            V::Boolean(match op {
                BinaryOperator::Eq => ord == Ordering::Equal,
                BinaryOperator::NotEq => ord != Ordering::Equal,
                BinaryOperator::Lt => ord == Ordering::Less,
                BinaryOperator::LtEq => ord != Ordering::Greater,
                BinaryOperator::Gt => ord == Ordering::Greater,
                BinaryOperator::GtEq => ord != Ordering::Less,
                other => return Err(SqlFailure::unsupported(format!("the operator {other}"))),
            })
        }
        Expr::Between {
            expr,
            negated,
            low,
            high,
        } => {
            let v = eval(expr, scope, params)?;
            let lo = compare(&v, &eval(low, scope, params)?)?;
            let hi = compare(&v, &eval(high, scope, params)?)?;
            match (lo, hi) {
                (Some(a), Some(b)) => {
                    V::Boolean((a != Ordering::Less && b != Ordering::Greater) != *negated)
                }
                _ => V::Null,
            }
        }
        Expr::In {
            expr,
            target: ast::InTarget::List(list),
            negated,
            ..
        } if matches!(expr.as_ref(), Expr::Tuple(_)) => {
            // `(a, b) IN ((1, 2), (3, 4))`: equal when every element is; NULL when some
            // element compares as unknown and no tuple matches.
            let Expr::Tuple(items) = expr.as_ref() else {
                unreachable!("guarded")
            };
            let left = items
                .iter()
                .map(|e| eval(e, scope, params))
                .collect::<Result<Vec<_>, _>>()?;
            let mut any_null = false;
            for item in list {
                let Expr::Tuple(right) = item else {
                    return Err(SqlFailure::new(
                        "DATATYPE_MISMATCH.DATA_DIFF_TYPES",
                        "42K09",
                        format!("Cannot compare a tuple with {item}."),
                    ));
                };
                if right.len() != left.len() {
                    return Err(SqlFailure::new(
                        "DATATYPE_MISMATCH.DATA_DIFF_TYPES",
                        "42K09",
                        "The IN tuples have different numbers of elements.",
                    ));
                }
                let mut all = Some(true);
                for (l, r) in left.iter().zip(right) {
                    match compare(l, &eval(r, scope, params)?)? {
                        Some(Ordering::Equal) => {}
                        None => all = all.and(None),
                        Some(_) => {
                            all = Some(false);
                            break;
                        }
                    }
                }
                match all {
                    Some(true) => return Ok(V::Boolean(!*negated)),
                    None => any_null = true,
                    Some(false) => {}
                }
            }
            if any_null {
                V::Null
            } else {
                V::Boolean(*negated)
            }
        }
        Expr::In {
            expr,
            target: ast::InTarget::List(list),
            negated,
            ..
        } => {
            let v = eval(expr, scope, params)?;
            if v.is_null() {
                return Ok(V::Null);
            }
            let mut any_null = false;
            for item in list {
                match compare(&v, &eval(item, scope, params)?)? {
                    Some(Ordering::Equal) => return Ok(V::Boolean(!*negated)),
                    None => any_null = true,
                    _ => {}
                }
            }
            if any_null {
                V::Null
            } else {
                V::Boolean(*negated)
            }
        }
        other => {
            return Err(SqlFailure::unsupported(format!(
                "the expression `{}`",
                other.to_string().chars().take(60).collect::<String>()
            )))
        }
    })
}

/// Reads a dotted name from tokens (`a`, `a.b`, `` `a`.`b`.`c` ``).
fn parse_name_tokens(tokens: &[&Token]) -> Option<Vec<String>> {
    let mut parts = Vec::new();
    let mut expect_word = true;
    for t in tokens {
        match (t, expect_word) {
            (Token::Word(w), true) => {
                parts.push(w.value.clone());
                expect_word = false;
            }
            (Token::Period, false) => expect_word = true,
            (Token::SemiColon, false) => break,
            _ => return None,
        }
    }
    (!parts.is_empty() && !expect_word).then_some(parts)
}

fn is_numeric_literal_word(w: &Word) -> bool {
    if w.quote_style.is_some() {
        return false;
    }
    let up = w.value.to_ascii_uppercase();
    let body = up
        .strip_suffix("BD")
        .or_else(|| up.strip_suffix(['L', 'S', 'Y', 'D', 'F']));
    match body {
        Some(b) => {
            !b.is_empty()
                && b.starts_with(|c: char| c.is_ascii_digit() || c == '.')
                && b.chars().all(|c| c.is_ascii_digit() || c == '.')
                && b.chars().filter(|&c| c == '.').count() <= 1
        }
        None => false,
    }
}

/// Tokenizes without unescaping, then: decodes every string literal with Databricks' rules
/// and re-emits it in a canonical escaped form, merging adjacent literals (they concatenate);
/// turns `123BD`, `1.5D`, `5L`, … into number tokens; drops whitespace and comments.
fn preprocess(sql: &str) -> Result<Vec<TokenWithSpan>, SqlFailure> {
    let dialect = DeltaDialect::new();
    let tokens = Tokenizer::new(&dialect, sql)
        .with_unescape(false)
        .tokenize_with_location()
        .map_err(|e| SqlFailure::syntax(format!("Syntax error: {e}")))?;
    let mut out: Vec<TokenWithSpan> = Vec::with_capacity(tokens.len());
    // The decoded value of the last token when it is a string literal.
    let mut last_string: Option<String> = None;
    for t in tokens {
        let decoded = match &t.token {
            Token::Whitespace(_) => continue,
            Token::SingleQuotedString(raw) => Some(unescape_string_literal(raw, '\'')),
            Token::DoubleQuotedString(raw) => Some(unescape_string_literal(raw, '"')),
            Token::SingleQuotedRawStringLiteral(raw) | Token::DoubleQuotedRawStringLiteral(raw) => {
                Some(raw.clone())
            }
            _ => None,
        };
        if let Some(v) = decoded {
            if let Some(prev) = last_string.take() {
                let merged = prev + &v;
                let last = out.last_mut().expect("a string token was pushed");
                last.token = Token::SingleQuotedString(escape_canonical(&merged));
                last_string = Some(merged);
            } else {
                out.push(TokenWithSpan {
                    token: Token::SingleQuotedString(escape_canonical(&v)),
                    span: t.span,
                });
                last_string = Some(v);
            }
            continue;
        }
        last_string = None;
        match t.token {
            Token::Word(ref w) if is_numeric_literal_word(w) => out.push(TokenWithSpan {
                token: Token::Number(w.value.clone(), false),
                span: t.span,
            }),
            _ => out.push(t),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(params: &HashMap<String, StandInValue>) -> Session<'_> {
        Session {
            catalog: "main",
            schema: "default",
            params,
            merge_duplicates: MergeDuplicates::FailAlways,
            now_ms: 0,
        }
    }

    #[test]
    fn row_number_over_partitions_tuple_in_and_a_self_merge_recompute_flags() {
        let mut cat = Catalog::default();
        cat.ensure_catalog("main");
        let p = HashMap::new();
        let s = session(&p);
        cat.execute("CREATE SCHEMA IF NOT EXISTS `main`.`s`", &s)
            .unwrap();
        cat.execute(
            "CREATE TABLE IF NOT EXISTS `main`.`s`.`job` (`e` STRING NOT NULL, `r` INT NOT NULL, `d` DATE NOT NULL, `q` INT NOT NULL, `cur` BOOLEAN) USING DELTA",
            &s,
        )
        .unwrap();
        cat.execute(
            "INSERT INTO `main`.`s`.`job` (`e`, `r`, `d`, `q`, `cur`) VALUES \
             ('A', 0, DATE'2026-01-01', 0, TRUE), ('A', 0, DATE'2026-02-01', 0, TRUE), \
             ('A', 0, DATE'2026-02-01', 1, TRUE), ('A', 0, DATE'2026-09-01', 0, FALSE), \
             ('B', 0, DATE'2026-01-01', 0, TRUE), ('C', 0, DATE'2026-01-01', 0, FALSE)",
            &s,
        )
        .unwrap();
        let ranks = cat
            .execute(
                "SELECT `d`, `q`, ROW_NUMBER() OVER (PARTITION BY `e`, `r` ORDER BY `d` DESC, `q` DESC) AS `n` \
                 FROM `main`.`s`.`job` WHERE (`e`, `r`) IN (('A', 0), ('Z', 9)) ORDER BY `d`, `q`",
                &s,
            )
            .unwrap();
        let n: Vec<String> = ranks.rows.iter().map(|r| r[2].to_cell().unwrap()).collect();
        assert_eq!(n, ["4", "3", "2", "1"]);
        // The statement DatabricksSink sends: A and B only (C keeps its stale flag).
        let recompute = "MERGE INTO `main`.`s`.`job` AS tgt USING (SELECT `e`, `r`, `d`, `q`, (`_ml_rank` = 1 AND `d` <= DATE'2026-03-01') AS `_ml_current` \
             FROM (SELECT `e`, `r`, `d`, `q`, ROW_NUMBER() OVER (PARTITION BY `e`, `r`, `d` <= DATE'2026-03-01' ORDER BY `d` DESC, `q` DESC) AS `_ml_rank` \
             FROM `main`.`s`.`job` WHERE `e` IN ('A', 'B') AND `r` IN (0)) AS ranked) AS src \
             ON tgt.`e` <=> src.`e` AND tgt.`r` <=> src.`r` AND tgt.`d` <=> src.`d` AND tgt.`q` <=> src.`q` \
             WHEN MATCHED AND NOT (tgt.`cur` <=> src.`_ml_current`) THEN UPDATE SET tgt.`cur` = src.`_ml_current`";
        let out = cat.execute(recompute, &s).unwrap();
        assert_eq!(out.rows[0][1], StandInValue::BigInt(2), "{:?}", out.rows);
        let out = cat.execute(recompute, &s).unwrap();
        assert_eq!(out.rows[0][1], StandInValue::BigInt(0), "idempotent");
        let flags = cat
            .execute(
                "SELECT `e`, `d`, `q`, `cur` FROM `main`.`s`.`job` ORDER BY `e`, `d`, `q`",
                &s,
            )
            .unwrap();
        let flags: Vec<String> = flags
            .rows
            .iter()
            .map(|r| {
                r.iter()
                    .map(|v| v.to_cell().unwrap_or_default())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        assert_eq!(
            flags,
            [
                "A 2026-01-01 0 false",
                "A 2026-02-01 0 false",
                "A 2026-02-01 1 true",
                "A 2026-09-01 0 false",
                "B 2026-01-01 0 true",
                "C 2026-01-01 0 false",
            ]
        );
    }

    #[test]
    fn create_merge_select() {
        let mut cat = Catalog::default();
        cat.ensure_catalog("main");
        let p = HashMap::new();
        let s = session(&p);
        cat.execute("CREATE SCHEMA IF NOT EXISTS `main`.`s`", &s)
            .unwrap();
        cat.execute(
            "CREATE TABLE IF NOT EXISTS `main`.`s`.`t` (`id` BIGINT NOT NULL, `name` STRING, `amt` DECIMAL(18,2)) USING DELTA",
            &s,
        )
        .unwrap();
        let merge = "MERGE INTO `main`.`s`.`t` AS tgt USING (SELECT * FROM VALUES (1, 'a\\'b' 'c', CAST('12.5' AS DECIMAL(18,2))), (2, NULL, 3BD) AS v(`id`, `name`, `amt`)) AS src ON tgt.`id` <=> src.`id` WHEN MATCHED THEN UPDATE SET tgt.`name` = src.`name`, tgt.`amt` = src.`amt` WHEN NOT MATCHED THEN INSERT (`id`, `name`, `amt`) VALUES (src.`id`, src.`name`, src.`amt`)";
        let out = cat.execute(merge, &s).unwrap();
        assert_eq!(out.rows[0][3], StandInValue::BigInt(2));
        let out = cat.execute(merge, &s).unwrap();
        assert_eq!(out.rows[0][1], StandInValue::BigInt(2));
        let out = cat
            .execute(
                "SELECT `name`, amt FROM main.s.t WHERE id >= 1 ORDER BY id DESC",
                &s,
            )
            .unwrap();
        assert_eq!(out.rows.len(), 2);
        assert_eq!(out.rows[1][0], StandInValue::String("a'bc".into()));
        assert_eq!(out.rows[1][1].to_cell().unwrap(), "12.50");
        assert_eq!(out.rows[0][1].to_cell().unwrap(), "3.00");
        cat.execute(
            "ALTER TABLE main.s.t ADD COLUMNS (`x` DECIMAL(10, 2), y STRING)",
            &s,
        )
        .unwrap();
        let out = cat
            .execute("SELECT COUNT(*) AS `row_count` FROM main.s.t", &s)
            .unwrap();
        assert_eq!(out.rows, vec![vec![StandInValue::BigInt(2)]]);
        let err = cat
            .execute(
                "MERGE INTO main.s.t AS tgt USING (SELECT * FROM VALUES (5, 'a'), (5, 'b') AS v(id, name)) AS src ON tgt.id <=> src.id WHEN NOT MATCHED THEN INSERT *",
                &s,
            )
            .unwrap_err();
        assert_eq!(
            err.error_class,
            "DELTA_MULTIPLE_SOURCE_ROW_MATCHING_TARGET_ROW_IN_MERGE"
        );
        let err = cat.execute("SELECT 1; SELECT 2", &s).unwrap_err();
        assert_eq!(err.error_class, "PARSE_SYNTAX_ERROR");
    }
}
