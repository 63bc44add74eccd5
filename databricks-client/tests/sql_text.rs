//! Exact SQL text for every statement shape, parsed back with sqlparser's Databricks dialect,
//! plus literal round-trip properties and batch splitting.
#![allow(missing_docs)]

mod common;

use chrono::TimeZone;
use common::job_schema;
use databricks_client::sql::{self, SqlError, TableName};
use proptest::prelude::*;
use sqlparser::ast::{Expr, SelectItem, SetExpr, Statement as Ast};
use sqlparser::dialect::DatabricksDialect;
use sqlparser::parser::Parser;
use sync_core::{ColumnDef, ColumnType, EffectiveDated, Row, TableSchema, Value, WriteMode};

sqlparser::derive_dialect!(
    DeltaDialect,
    DatabricksDialect,
    preserve_type_id = true,
    overrides = { supports_create_table_using = true }
);

fn parses(sql: &str) -> Vec<Ast> {
    Parser::parse_sql(&DeltaDialect::new(), sql).unwrap_or_else(|e| panic!("{e}\n{sql}"))
}

fn table() -> TableName {
    TableName::new("main", "erp", "vendors").unwrap()
}

fn schema() -> TableSchema {
    TableSchema {
        name: "vendors".into(),
        columns: vec![
            ColumnDef::new("id", ColumnType::BigInt).not_null(),
            ColumnDef::new("name", ColumnType::String),
            ColumnDef::new(
                "amt",
                ColumnType::Decimal {
                    precision: 18,
                    scale: 2,
                },
            ),
            ColumnDef::new("d", ColumnType::Date),
            ColumnDef::new("ts", ColumnType::Timestamp),
            ColumnDef::new("ok", ColumnType::Boolean),
        ],
        primary_key: vec!["id".into()],
        cursor_column: Some("ts".into()),
        write_mode: WriteMode::Upsert,
        effective_dating: None,
    }
}

fn row(id: i64, name: &str) -> Row {
    vec![
        Value::BigInt(id),
        Value::String(name.into()),
        Value::Decimal("1234.50".parse().unwrap()),
        Value::Date(chrono::NaiveDate::from_ymd_opt(2024, 1, 31).unwrap()),
        Value::Timestamp(chrono::Utc.with_ymd_and_hms(2024, 1, 31, 12, 0, 0).unwrap()),
        Value::Bool(true),
    ]
}

fn null_row(id: i64) -> Row {
    vec![
        Value::BigInt(id),
        Value::Null,
        Value::Null,
        Value::Null,
        Value::Null,
        Value::Null,
    ]
}

const BIG: usize = 1 << 20;

#[test]
fn create_schema_text() {
    let s = sql::create_schema(&table());
    assert_eq!(s, "CREATE SCHEMA IF NOT EXISTS `main`.`erp`");
    parses(&s);
}

#[test]
fn create_table_text() {
    let s = sql::create_table(&table(), &schema()).unwrap();
    assert_eq!(
        s,
        "CREATE TABLE IF NOT EXISTS `main`.`erp`.`vendors` (`id` BIGINT NOT NULL, `name` STRING, \
         `amt` DECIMAL(18,2), `d` DATE, `ts` TIMESTAMP, `ok` BOOLEAN) USING DELTA"
    );
    parses(&s);
}

#[test]
fn alter_add_columns_text() {
    // sqlparser cannot parse `ADD COLUMNS (...)`: exact text only.
    let s = sql::add_columns(
        &table(),
        &[
            ColumnDef::new("new`col", ColumnType::Int).not_null(),
            ColumnDef::new("note", ColumnType::String),
        ],
    )
    .unwrap();
    assert_eq!(
        s,
        "ALTER TABLE `main`.`erp`.`vendors` ADD COLUMNS (`new``col` INT, `note` STRING)"
    );
}

#[test]
fn merge_text() {
    let stmts = sql::merge_statements(
        &table(),
        &schema(),
        &[row(1, "O'Brien \\ Co"), null_row(2)],
        BIG,
    )
    .unwrap();
    assert_eq!(stmts.len(), 1);
    assert_eq!(
        stmts[0],
        "MERGE INTO `main`.`erp`.`vendors` AS tgt USING (SELECT * FROM VALUES \
         (1, 'O\\'Brien \\\\ Co', CAST('1234.50' AS DECIMAL(18,2)), DATE'2024-01-31', TIMESTAMP'2024-01-31 12:00:00.000000+00:00', TRUE), \
         (2, CAST(NULL AS STRING), CAST(NULL AS DECIMAL(18,2)), CAST(NULL AS DATE), CAST(NULL AS TIMESTAMP), CAST(NULL AS BOOLEAN)) \
         AS v(`id`, `name`, `amt`, `d`, `ts`, `ok`)) AS src ON tgt.`id` <=> src.`id` \
         WHEN MATCHED THEN UPDATE SET tgt.`name` = src.`name`, tgt.`amt` = src.`amt`, tgt.`d` = src.`d`, tgt.`ts` = src.`ts`, tgt.`ok` = src.`ok` \
         WHEN NOT MATCHED THEN INSERT (`id`, `name`, `amt`, `d`, `ts`, `ok`) VALUES (src.`id`, src.`name`, src.`amt`, src.`d`, src.`ts`, src.`ok`)"
    );
    assert!(!stmts[0].contains("''"));
    let ast = parses(&stmts[0]);
    assert!(matches!(ast[0], Ast::Merge { .. }), "{:?}", ast[0]);
}

#[test]
fn bulk_merge_from_a_staged_file_text() {
    let path = "/Volumes/main/erp/staging/_ml_staging/vendors/run-1-v-0-1-ab.parquet";
    let s = sql::merge_from_file(&table(), &schema(), path).unwrap();
    assert_eq!(
        s,
        "MERGE INTO `main`.`erp`.`vendors` AS tgt USING (SELECT CAST(`id` AS BIGINT) AS `id`, CAST(`name` AS STRING) AS `name`, CAST(`amt` AS DECIMAL(18,2)) AS `amt`, CAST(`d` AS DATE) AS `d`, CAST(`ts` AS TIMESTAMP) AS `ts`, CAST(`ok` AS BOOLEAN) AS `ok` FROM read_files('/Volumes/main/erp/staging/_ml_staging/vendors/run-1-v-0-1-ab.parquet', format => 'parquet')) AS src ON tgt.`id` <=> src.`id` WHEN MATCHED THEN UPDATE SET tgt.`name` = src.`name`, tgt.`amt` = src.`amt`, tgt.`d` = src.`d`, tgt.`ts` = src.`ts`, tgt.`ok` = src.`ok` WHEN NOT MATCHED THEN INSERT (`id`, `name`, `amt`, `d`, `ts`, `ok`) VALUES (src.`id`, src.`name`, src.`amt`, src.`d`, src.`ts`, src.`ok`)"
    );
    // The clauses after the source are exactly the VALUES MERGE's.
    let values = sql::merge_statements(&table(), &schema(), &[row(1, "x")], BIG).unwrap();
    let clauses = |t: &str| t[t.find(" AS src ON ").unwrap()..].to_string();
    assert_eq!(clauses(&s), clauses(&values[0]));
    let ast = parses(&s);
    assert!(matches!(ast[0], Ast::Merge { .. }), "{:?}", ast[0]);
    let mut no_key = schema();
    no_key.primary_key.clear();
    assert!(sql::merge_from_file(&table(), &no_key, path).is_err());
}

/// sqlparser's Databricks dialect parses neither `COPY INTO` nor `CREATE VOLUME`: these two
/// are checked as exact text only.
#[test]
fn bulk_copy_into_and_create_volume_text() {
    let s = sql::copy_into(
        &table(),
        "/Volumes/main/erp/staging/_ml_staging/vendors",
        "run-1-v-0-1-ab.parquet",
    );
    assert_eq!(
        s,
        "COPY INTO `main`.`erp`.`vendors` FROM '/Volumes/main/erp/staging/_ml_staging/vendors/' FILEFORMAT = PARQUET FILES = ('run-1-v-0-1-ab.parquet')"
    );
    let v = sql::VolumeName::parse("main.erp.staging").unwrap();
    assert_eq!(
        sql::create_volume(&v),
        "CREATE VOLUME IF NOT EXISTS `main`.`erp`.`staging`"
    );
    assert_eq!(v.path(), "/Volumes/main/erp/staging");
    assert!(sql::VolumeName::parse("main.erp").is_err());
    assert!(sql::VolumeName::parse("main.erp.bad/name").is_err());
}

#[test]
fn merge_with_composite_key() {
    let mut s = schema();
    s.primary_key = vec!["id".into(), "d".into()];
    let stmts = sql::merge_statements(&table(), &s, &[row(1, "a")], BIG).unwrap();
    assert!(
        stmts[0].contains("ON tgt.`id` <=> src.`id` AND tgt.`d` <=> src.`d` WHEN MATCHED THEN UPDATE SET tgt.`name` = src.`name`, tgt.`amt` = src.`amt`, tgt.`ts`"),
        "{}",
        stmts[0]
    );
    parses(&stmts[0]);
}

fn job_table() -> TableName {
    TableName::new("main", "hr", "job").unwrap()
}

fn job_row(emplid: &str, rcd: i32, effdt: &str) -> Row {
    vec![
        Value::String(emplid.into()),
        Value::Int(rcd),
        Value::Date(effdt.parse().unwrap()),
        Value::Int(0),
        Value::Null,
        Value::Bool(true),
    ]
}

fn as_of() -> chrono::NaiveDate {
    "2026-03-01".parse().unwrap()
}

#[test]
fn current_flags_text_for_the_entities_of_a_batch() {
    let rows = [
        job_row("E'1", 0, "2026-01-01"),
        job_row("E'1", 0, "2026-02-01"), // same entity: listed once
        job_row("E2", 1, "2026-01-01"),
    ];
    let stmts =
        sql::current_flags_statements(&job_table(), &job_schema(), as_of(), Some(&rows), BIG)
            .unwrap();
    assert_eq!(stmts.len(), 1);
    assert_eq!(
        stmts[0],
        "MERGE INTO `main`.`hr`.`job` AS tgt USING (SELECT `emplid`, `empl_rcd`, `effdt`, `effseq`, \
         (`_ml_rank` = 1 AND `effdt` <= DATE'2026-03-01') AS `_ml_current` FROM (SELECT `emplid`, `empl_rcd`, `effdt`, `effseq`, \
         ROW_NUMBER() OVER (PARTITION BY `emplid`, `empl_rcd`, `effdt` <= DATE'2026-03-01' ORDER BY `effdt` DESC, `effseq` DESC) AS `_ml_rank` \
         FROM `main`.`hr`.`job` WHERE `emplid` IN ('E\\'1', 'E2') AND `empl_rcd` IN (0, 1)) AS ranked) AS src \
         ON tgt.`emplid` <=> src.`emplid` AND tgt.`empl_rcd` <=> src.`empl_rcd` AND tgt.`effdt` <=> src.`effdt` AND tgt.`effseq` <=> src.`effseq` \
         WHEN MATCHED AND NOT (tgt.`is_current` <=> src.`_ml_current`) THEN UPDATE SET tgt.`is_current` = src.`_ml_current`"
    );
    assert!(!stmts[0].contains("''"));
    let ast = parses(&stmts[0]);
    assert!(matches!(ast[0], Ast::Merge { .. }), "{:?}", ast[0]);
}

#[test]
fn current_flags_text_for_the_whole_table_and_single_column_entities() {
    let stmts =
        sql::current_flags_statements(&job_table(), &job_schema(), as_of(), None, BIG).unwrap();
    assert_eq!(stmts.len(), 1);
    assert!(
        stmts[0].contains("AS `_ml_rank` FROM `main`.`hr`.`job`) AS ranked) AS src ON"),
        "{}",
        stmts[0]
    );
    parses(&stmts[0]);

    // One entity column, no sequence: a plain IN list, ties broken by the rest of the key.
    let mut s = job_schema();
    s.effective_dating = Some(EffectiveDated::new(["emplid"], "effdt", "is_current"));
    let rows = [
        job_row("E1", 0, "2026-01-01"),
        job_row("E2", 0, "2026-01-01"),
    ];
    let stmts = sql::current_flags_statements(&job_table(), &s, as_of(), Some(&rows), BIG).unwrap();
    assert!(
        stmts[0].contains(
            "PARTITION BY `emplid`, `effdt` <= DATE'2026-03-01' ORDER BY `effdt` DESC, `empl_rcd`, `effseq`) AS `_ml_rank` \
             FROM `main`.`hr`.`job` WHERE `emplid` IN ('E1', 'E2')) AS ranked"
        ),
        "{}",
        stmts[0]
    );
    parses(&stmts[0]);
}

#[test]
fn current_flags_split_under_the_byte_limit_and_need_effective_dating() {
    let rows: Vec<Row> = (0..200)
        .map(|i| job_row(&format!("E{i:05}"), 0, "2026-01-01"))
        .collect();
    let one = sql::current_flags_statements(&job_table(), &job_schema(), as_of(), Some(&rows), BIG)
        .unwrap();
    assert_eq!(one.len(), 1);
    let limit = one[0].len() / 3;
    let many =
        sql::current_flags_statements(&job_table(), &job_schema(), as_of(), Some(&rows), limit)
            .unwrap();
    assert!(many.len() >= 3, "{}", many.len());
    for st in &many {
        assert!(st.len() <= limit);
        parses(st);
    }
    let listed: usize = many.iter().map(|s| s.matches("'E0").count()).sum();
    assert_eq!(listed, 200);
    // One entity too large for the limit is an error, not a silent skip.
    let e = sql::current_flags_statements(&job_table(), &job_schema(), as_of(), Some(&rows), 100)
        .unwrap_err();
    assert!(matches!(e, SqlError::RowTooLarge { .. }), "{e}");

    let e = sql::current_flags_statements(&table(), &schema(), as_of(), None, BIG).unwrap_err();
    assert!(e.to_string().contains("not effective-dated"), "{e}");
}

#[test]
fn insert_text() {
    let stmts =
        sql::insert_statements(&table(), &schema(), &[row(1, "a"), null_row(2)], BIG).unwrap();
    assert_eq!(
        stmts,
        vec!["INSERT INTO `main`.`erp`.`vendors` (`id`, `name`, `amt`, `d`, `ts`, `ok`) VALUES \
              (1, 'a', CAST('1234.50' AS DECIMAL(18,2)), DATE'2024-01-31', TIMESTAMP'2024-01-31 12:00:00.000000+00:00', TRUE), \
              (2, CAST(NULL AS STRING), CAST(NULL AS DECIMAL(18,2)), CAST(NULL AS DATE), CAST(NULL AS TIMESTAMP), CAST(NULL AS BOOLEAN))"
            .to_string()]
    );
    parses(&stmts[0]);
}

#[test]
fn select_and_count_text() {
    let s = schema();
    let ts = &s.columns[4];
    let sel = sql::select_window(&table(), &s.columns[..2], ts);
    assert_eq!(
        sel,
        "SELECT `id`, `name` FROM `main`.`erp`.`vendors` WHERE `ts` >= :window_from AND `ts` < :window_to ORDER BY `ts`"
    );
    parses(&sel);
    let cnt = sql::count_in_window(&table(), ts);
    assert_eq!(
        cnt,
        "SELECT COUNT(*) AS `row_count` FROM `main`.`erp`.`vendors` WHERE `ts` >= :window_from AND `ts` < :window_to"
    );
    parses(&cnt);
    let d = &s.columns[3];
    let cnt = sql::count_in_window(&table(), d);
    assert_eq!(
        cnt,
        "SELECT COUNT(*) AS `row_count` FROM `main`.`erp`.`vendors` WHERE CAST(`d` AS TIMESTAMP_NTZ) >= :window_from AND CAST(`d` AS TIMESTAMP_NTZ) < :window_to"
    );
    parses(&cnt);
}

#[test]
fn select_where_equal_text() {
    let s = sql::select_where_equal(
        &table(),
        &["entry_json"],
        &["pipeline", "stream"],
        &["started_at", "attempt"],
    );
    assert_eq!(
        s,
        "SELECT `entry_json` FROM `main`.`erp`.`vendors` WHERE `pipeline` = :pipeline AND `stream` = :stream ORDER BY `started_at`, `attempt`"
    );
    parses(&s);
    let s = sql::select_where_equal(&table(), &["a", "b`c"], &[], &[]);
    assert_eq!(s, "SELECT `a`, `b``c` FROM `main`.`erp`.`vendors`");
    parses(&s);
}

#[test]
fn rows_that_do_not_fit_the_schema_are_rejected() {
    let mut bad = row(1, "a");
    bad[2] = Value::String("12.50".into());
    let err = sql::merge_statements(&table(), &schema(), &[bad], BIG).unwrap_err();
    assert_eq!(
        err.to_string(),
        "table main.erp.vendors, row 0: column `amt` is DECIMAL(18,2) but the value is STRING"
    );
    let mut bad = row(1, "a");
    bad[0] = Value::Null;
    let err = sql::insert_statements(&table(), &schema(), &[bad], BIG).unwrap_err();
    assert!(err.to_string().contains("`id` is NOT NULL"), "{err}");
    let err = sql::insert_statements(&table(), &schema(), &[vec![Value::Int(1)]], BIG).unwrap_err();
    assert!(
        err.to_string()
            .contains("1 values but the schema has 6 columns"),
        "{err}"
    );
}

#[test]
fn merge_never_receives_duplicate_keys() {
    let rows = vec![row(1, "a"), row(2, "b"), row(1, "c")];
    let err = sql::merge_statements(&table(), &schema(), &rows, BIG).unwrap_err();
    assert_eq!(
        err,
        SqlError::DuplicateKey {
            table: "main.erp.vendors".into(),
            key: "id=1".into(),
            first: 0,
            second: 2
        }
    );
    // Decimal keys compare by value, as Databricks does: 1.5 and 1.50 are the same key.
    let s = TableSchema {
        name: "t".into(),
        columns: vec![ColumnDef::new(
            "k",
            ColumnType::Decimal {
                precision: 9,
                scale: 2,
            },
        )],
        primary_key: vec!["k".into()],
        cursor_column: None,
        write_mode: WriteMode::Upsert,
        effective_dating: None,
    };
    let rows = vec![
        vec![Value::Decimal("1.5".parse().unwrap())],
        vec![Value::Decimal("1.50".parse().unwrap())],
    ];
    assert!(matches!(
        sql::merge_statements(&table(), &s, &rows, BIG),
        Err(SqlError::DuplicateKey { .. })
    ));
}

#[test]
fn batches_are_split_under_the_byte_limit() {
    let rows: Vec<Row> = (0..500)
        .map(|i| row(i, &"x".repeat((i % 37) as usize * 10)))
        .collect();
    for limit in [2_000usize, 5_000, 20_000] {
        for (kind, stmts) in [
            (
                "merge",
                sql::merge_statements(&table(), &schema(), &rows, limit).unwrap(),
            ),
            (
                "insert",
                sql::insert_statements(&table(), &schema(), &rows, limit).unwrap(),
            ),
        ] {
            assert!(stmts.len() > 1, "{kind} {limit}");
            for s in &stmts {
                assert!(s.len() <= limit, "{kind}: {} > {limit}", s.len());
                parses(s);
            }
            // Every row is sent exactly once, in order.
            let ids: Vec<i64> = stmts
                .iter()
                .flat_map(|s| {
                    s.match_indices("), (")
                        .map(|(i, _)| i)
                        .chain(s.find("VALUES (").map(|i| i + 4))
                        .collect::<Vec<_>>()
                        .into_iter()
                        .filter_map(move |i| {
                            let rest = &s[i + 4..];
                            rest.split(',').next()?.trim().parse().ok()
                        })
                })
                .collect();
            let mut ids = ids;
            // Within one statement the `VALUES (` match comes last; order per statement.
            ids.sort();
            assert_eq!(ids, (0..500).collect::<Vec<_>>(), "{kind} {limit}");
        }
    }
    let err = sql::merge_statements(&table(), &schema(), &[row(1, &"y".repeat(3000))], 2_000)
        .unwrap_err();
    assert!(
        matches!(
            err,
            SqlError::RowTooLarge {
                row: 0,
                limit: 2_000,
                ..
            }
        ),
        "{err:?}"
    );
}

/// A reference reader of Databricks string literals, following the documented escapes:
/// `\0 \b \n \r \t \Z`, `\%` and `\_` keep the backslash, `\uXXXX`, octal `\ooo`, `\<c>` is
/// `<c>`; adjacent literals concatenate (so `''` is *not* a quote).
fn databricks_unescape(lit: &str) -> Option<String> {
    let mut out = String::new();
    let mut chars = lit.chars().peekable();
    let mut any = false;
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        match chars.next() {
            None if any => return Some(out),
            Some('\'') => any = true,
            _ => return None,
        }
        loop {
            match chars.next()? {
                '\'' => break,
                '\\' => match chars.next()? {
                    '0' => out.push('\0'),
                    'b' => out.push('\u{8}'),
                    'n' => out.push('\n'),
                    'r' => out.push('\r'),
                    't' => out.push('\t'),
                    'Z' => out.push('\u{1a}'),
                    '%' => out.push_str("\\%"),
                    '_' => out.push_str("\\_"),
                    'u' => {
                        let hex: String = (0..4).map(|_| chars.next()).collect::<Option<_>>()?;
                        out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                    }
                    c => out.push(c),
                },
                c => out.push(c),
            }
        }
    }
}

fn sqlparser_string(lit: &str) -> String {
    let ast = parses(&format!("SELECT {lit}"));
    let Ast::Query(q) = &ast[0] else { panic!() };
    let SetExpr::Select(sel) = q.body.as_ref() else {
        panic!()
    };
    let SelectItem::UnnamedExpr(Expr::Value(v)) = &sel.projection[0] else {
        panic!("{:?}", sel.projection[0])
    };
    match &v.value {
        sqlparser::ast::Value::SingleQuotedString(s) => s.clone(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn reference_unescaper_shows_the_double_quote_trap() {
    assert_eq!(databricks_unescape("'a''b'").as_deref(), Some("ab"));
    assert_eq!(databricks_unescape(r"'a\'b'").as_deref(), Some("a'b"));
    assert_eq!(databricks_unescape(r"'a\u0000b'").as_deref(), Some("a\0b"));
    assert_eq!(
        databricks_unescape(&sql::string_literal("a\0b")).as_deref(),
        Some("a\0b")
    );
}

fn tricky_char() -> impl Strategy<Value = char> {
    prop_oneof![
        Just('\''),
        Just('\\'),
        Just('"'),
        Just('`'),
        Just('\n'),
        Just('\r'),
        Just('\t'),
        Just('%'),
        Just('_'),
        Just('u'),
        Just('0'),
        Just('7'),
        Just('é'),
        Just('中'),
        Just('🦀'),
        (1u32..0x20).prop_map(|c| char::from_u32(c).unwrap()),
        Just('\u{7f}'),
        any::<char>().prop_filter("no NUL", |c| *c != '\0'),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn string_literals_round_trip(chars in proptest::collection::vec(tricky_char(), 0..40)) {
        let s: String = chars.into_iter().collect();
        let lit = sql::string_literal(&s);
        // Every quote inside is escaped with a backslash: never `''`.
        prop_assert!(!lit[1..lit.len() - 1].contains("''"));
        let back = databricks_unescape(&lit);
        prop_assert_eq!(back.as_deref(), Some(s.as_str()));
        prop_assert_eq!(sqlparser_string(&lit), s.clone());
        // And inside a whole generated statement.
        let stmts = sql::merge_statements(&table(), &schema(), &[row(1, &s)], BIG).unwrap();
        parses(&stmts[0]);
    }
}

#[test]
fn delete_and_row_hash_statements_text_and_parse() {
    let at = chrono::Utc.with_ymd_and_hms(2026, 11, 2, 4, 0, 0).unwrap();
    let keys = vec![vec![Value::BigInt(7)], vec![Value::BigInt(9)]];
    let soft = sql::delete_statements(&table(), &schema(), &keys, Some(at), BIG).unwrap();
    assert_eq!(
        soft,
        vec![
            "MERGE INTO `main`.`erp`.`vendors` AS tgt USING (SELECT * FROM VALUES (7), (9) AS v(`id`)) AS src ON tgt.`id` <=> src.`id` WHEN MATCHED AND tgt.`_ml_deleted_at` IS NULL THEN UPDATE SET tgt.`_ml_deleted_at` = TIMESTAMP'2026-11-02 04:00:00.000000+00:00'".to_string()
        ]
    );
    parses(&soft[0]);
    let hard = sql::delete_statements(&table(), &schema(), &keys, None, BIG).unwrap();
    assert!(hard[0].ends_with("WHEN MATCHED THEN DELETE"), "{}", hard[0]);
    parses(&hard[0]);
    // Split under the statement size limit, every piece a whole statement.
    let many: Vec<Row> = (0..500).map(|i| vec![Value::BigInt(i)]).collect();
    let pieces = sql::delete_statements(&table(), &schema(), &many, None, 2_000).unwrap();
    assert!(pieces.len() > 1);
    for p in &pieces {
        assert!(p.len() <= 2_000);
        parses(p);
    }

    let all = sql::select_row_hashes(&table(), &schema(), None).unwrap();
    assert_eq!(
        all,
        "SELECT `id`, `_ml_row_hash` FROM `main`.`erp`.`vendors` WHERE `_ml_deleted_at` IS NULL"
    );
    parses(&all);
    let cursor = &schema().columns[4];
    let windowed = sql::select_row_hashes(&table(), &schema(), Some(cursor)).unwrap();
    assert!(windowed.contains(" AND "), "{windowed}");
    parses(&windowed);
}
