//! `SqliteSink` against real SQLite databases.
#![cfg(feature = "sqlite")]

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use rust_decimal::Decimal;
use sync_core::sqlite::SqliteSink;
use sync_core::{Batch, ColumnDef, ColumnType, Row, Sink, TableSchema, Value, Window, WriteMode};

fn t(h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, h, m, 0).unwrap()
}

fn schema(name: &str) -> TableSchema {
    TableSchema {
        name: name.into(),
        columns: vec![
            ColumnDef::new("id", ColumnType::BigInt).not_null(),
            ColumnDef::new("name", ColumnType::String),
            ColumnDef::new(
                "amount",
                ColumnType::Decimal {
                    precision: 38,
                    scale: 2,
                },
            ),
            ColumnDef::new("ratio", ColumnType::Double),
            ColumnDef::new("active", ColumnType::Boolean),
            ColumnDef::new("as_of", ColumnType::Date),
            ColumnDef::new("updated", ColumnType::Timestamp),
        ],
        primary_key: vec!["id".into()],
        cursor_column: Some("updated".into()),
        write_mode: WriteMode::Upsert,
        effective_dating: None,
    }
}

fn row(id: i64, name: &str, amount: &str, updated: DateTime<Utc>) -> Row {
    vec![
        Value::BigInt(id),
        Value::String(name.into()),
        Value::Decimal(amount.parse().unwrap()),
        Value::Double(0.5),
        Value::Bool(id % 2 == 0),
        Value::Date(NaiveDate::from_ymd_opt(2026, 3, 1).unwrap()),
        Value::Timestamp(updated),
    ]
}

fn batch(rows: Vec<Row>) -> Batch {
    Batch {
        rows,
        window: Window::new(t(0, 0), t(23, 0)),
        run_id: "run-1".into(),
        stream: "s".into(),
        as_of: None,
    }
}

fn dump(sink: &SqliteSink, table: &str) -> Vec<Vec<String>> {
    sink.with_connection(|c| {
        let sql = format!(
            "SELECT * FROM {} ORDER BY 1",
            sync_core::sqlite::quote_identifier(table)
        );
        let mut stmt = c.prepare(&sql).unwrap();
        let n = stmt.column_count();
        stmt.query_map([], |r| {
            Ok((0..n)
                .map(|i| match r.get_ref(i).unwrap() {
                    rusqlite::types::ValueRef::Null => "NULL".to_string(),
                    rusqlite::types::ValueRef::Integer(v) => format!("i:{v}"),
                    rusqlite::types::ValueRef::Real(v) => format!("r:{v}"),
                    rusqlite::types::ValueRef::Text(v) => {
                        format!("t:{}", String::from_utf8_lossy(v))
                    }
                    rusqlite::types::ValueRef::Blob(_) => "blob".to_string(),
                })
                .collect())
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
    })
}

#[tokio::test]
async fn upserting_the_same_batch_twice_is_idempotent() {
    let sink = SqliteSink::in_memory().unwrap();
    let s = schema("vendors");
    sink.prepare(&s).await.unwrap();
    sink.prepare(&s).await.unwrap();
    let b = batch(vec![
        row(1, "Acme", "10.5", t(1, 0)),
        row(2, "Globex", "-0.01", t(2, 0)),
    ]);
    let r1 = sink.write(&s, &b).await.unwrap();
    let first = dump(&sink, "vendors");
    let r2 = sink.write(&s, &b).await.unwrap();
    assert_eq!(dump(&sink, "vendors"), first);
    assert_eq!(first.len(), 2);
    assert_eq!(
        first[0],
        [
            "i:1",
            "t:Acme",
            "t:10.50",
            "r:0.5",
            "i:0",
            "t:2026-03-01",
            "t:2026-03-01T01:00:00.000000Z"
        ]
    );
    assert_eq!(r1.rows_written, 2);
    assert_eq!(r1.statement_ids, ["sqlite:vendors:1"]);
    assert_eq!(r2.statement_ids, ["sqlite:vendors:2"]);

    // A changed row updates by key.
    sink.write(&s, &batch(vec![row(2, "Globex Corp", "7", t(3, 0))]))
        .await
        .unwrap();
    let after = dump(&sink, "vendors");
    assert_eq!(after.len(), 2);
    assert_eq!(after[1][1], "t:Globex Corp");
    assert_eq!(after[1][2], "t:7.00");
}

#[tokio::test]
async fn decimals_round_trip_as_exact_text() {
    let sink = SqliteSink::in_memory().unwrap();
    let s = schema("money");
    sink.prepare(&s).await.unwrap();
    let amounts = [
        "12345678901234567890.12",
        "0.1",
        "-99999999999999999999.99",
        "0",
    ];
    let rows = amounts
        .iter()
        .enumerate()
        .map(|(i, a)| row(i as i64, "x", a, t(1, 0)))
        .collect();
    sink.write(&s, &batch(rows)).await.unwrap();
    let stored: Vec<String> = dump(&sink, "money")
        .into_iter()
        .map(|r| r[2].clone())
        .collect();
    assert_eq!(
        stored,
        [
            "t:12345678901234567890.12",
            "t:0.10",
            "t:-99999999999999999999.99",
            "t:0.00"
        ]
    );
    let back: Decimal = stored[0].trim_start_matches("t:").parse().unwrap();
    assert_eq!(back, "12345678901234567890.12".parse::<Decimal>().unwrap());
}

#[tokio::test]
async fn columns_added_to_the_schema_are_added_to_the_table() {
    let sink = SqliteSink::in_memory().unwrap();
    let mut s = schema("grow");
    sink.prepare(&s).await.unwrap();
    sink.write(&s, &batch(vec![row(1, "a", "1", t(1, 0))]))
        .await
        .unwrap();
    s.columns
        .push(ColumnDef::new("region", ColumnType::String).not_null());
    sink.prepare(&s).await.unwrap();
    let mut r = row(2, "b", "2", t(2, 0));
    r.push(Value::String("EMEA".into()));
    sink.write(&s, &batch(vec![r])).await.unwrap();
    let rows = dump(&sink, "grow");
    assert_eq!(rows[0].len(), 8);
    assert_eq!(rows[0][7], "NULL");
    assert_eq!(rows[1][7], "t:EMEA");
}

#[tokio::test]
async fn count_uses_the_half_open_window_on_the_cursor() {
    let sink = SqliteSink::in_memory().unwrap();
    let s = schema("counted");
    sink.prepare(&s).await.unwrap();
    let rows = (0..10).map(|i| row(i, "x", "1", t(i as u32, 30))).collect();
    sink.write(&s, &batch(rows)).await.unwrap();
    // Rows at 02:30, 03:30, 04:30 are in [02:30, 05:30); 05:30 is not.
    assert_eq!(
        sink.count(&s, Window::new(t(2, 30), t(5, 30)))
            .await
            .unwrap(),
        Some(3)
    );
    assert_eq!(
        sink.count(&s, Window::new(t(2, 31), t(5, 31)))
            .await
            .unwrap(),
        Some(3)
    );
    assert_eq!(
        sink.count(&s, Window::new(t(0, 0), t(23, 0)))
            .await
            .unwrap(),
        Some(10)
    );

    // A DATE cursor counts dates whose midnight is in the window.
    let mut by_date = schema("counted");
    by_date.cursor_column = Some("as_of".into());
    let day = |d: u32, h: u32| Utc.with_ymd_and_hms(2026, 3, d, h, 0, 0).unwrap();
    assert_eq!(
        sink.count(&by_date, Window::new(day(1, 0), day(2, 0)))
            .await
            .unwrap(),
        Some(10)
    );
    assert_eq!(
        sink.count(&by_date, Window::new(day(1, 1), day(2, 0)))
            .await
            .unwrap(),
        Some(0)
    );
    assert_eq!(
        sink.count(&by_date, Window::new(day(1, 0), day(1, 1)))
            .await
            .unwrap(),
        Some(10)
    );

    let mut no_cursor = schema("counted");
    no_cursor.cursor_column = None;
    assert_eq!(
        sink.count(&no_cursor, Window::new(t(0, 0), t(1, 0)))
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn odd_table_and_column_names_are_quoted() {
    let sink = SqliteSink::in_memory().unwrap();
    let s = TableSchema {
        name: "we\"ird tab.le; DROP".into(),
        columns: vec![
            ColumnDef::new("select", ColumnType::String).not_null(),
            ColumnDef::new("a\"b", ColumnType::Int),
            ColumnDef::new("with space", ColumnType::Timestamp),
        ],
        primary_key: vec!["select".into()],
        cursor_column: Some("with space".into()),
        write_mode: WriteMode::Upsert,
        effective_dating: None,
    };
    sink.prepare(&s).await.unwrap();
    let rows = vec![vec![
        Value::String("k".into()),
        Value::Int(1),
        Value::Timestamp(t(1, 0)),
    ]];
    sink.write(&s, &batch(rows.clone())).await.unwrap();
    sink.write(&s, &batch(rows)).await.unwrap();
    assert_eq!(
        dump(&sink, "we\"ird tab.le; DROP"),
        vec![vec!["t:k", "i:1", "t:2026-03-01T01:00:00.000000Z"]]
    );
    assert_eq!(
        sink.count(&s, Window::new(t(0, 0), t(2, 0))).await.unwrap(),
        Some(1)
    );
}

#[tokio::test]
async fn append_mode_inserts_every_time() {
    let sink = SqliteSink::in_memory().unwrap();
    let mut s = schema("events");
    s.write_mode = WriteMode::Append;
    sink.prepare(&s).await.unwrap();
    let b = batch(vec![row(1, "a", "1", t(1, 0))]);
    sink.write(&s, &b).await.unwrap();
    sink.write(&s, &b).await.unwrap();
    assert_eq!(dump(&sink, "events").len(), 2);
}

#[tokio::test]
async fn bad_rows_fail_the_batch_and_roll_it_back() {
    let sink = SqliteSink::in_memory().unwrap();
    let s = schema("strict");
    sink.prepare(&s).await.unwrap();
    let mut bad = row(2, "b", "1", t(1, 0));
    bad[0] = Value::Null; // NOT NULL key
    let err = sink
        .write(&s, &batch(vec![row(1, "a", "1", t(1, 0)), bad]))
        .await
        .unwrap_err();
    assert!(err.message().contains("strict"), "{err}");
    assert_eq!(
        dump(&sink, "strict").len(),
        0,
        "the whole batch is one transaction"
    );
    let short = vec![vec![Value::BigInt(1)]];
    let err = sink.write(&s, &batch(short)).await.unwrap_err();
    assert!(err.message().contains("row 1 has 1 values"), "{err}");
}

#[tokio::test]
async fn a_file_database_keeps_committed_rows_and_uses_wal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("local.db");
    let s = schema("kept");
    {
        let sink = SqliteSink::open(&path).unwrap();
        sink.prepare(&s).await.unwrap();
        sink.write(&s, &batch(vec![row(1, "a", "1", t(1, 0))]))
            .await
            .unwrap();
        let mode: String = sink
            .with_connection(|c| c.query_row("PRAGMA journal_mode", [], |r| r.get(0)))
            .unwrap();
        assert_eq!(mode, "wal");
    }
    let sink = SqliteSink::open(&path).unwrap().with_full_sync().unwrap();
    assert_eq!(dump(&sink, "kept").len(), 1);
}

#[tokio::test]
async fn large_batches_use_multi_row_statements_and_stay_idempotent() {
    let sink = SqliteSink::in_memory().unwrap();
    let s = schema("large");
    sink.prepare(&s).await.unwrap();
    // 150 rows: two statements of 64 rows, then 22 single-row statements.
    let rows: Vec<Row> = (0..150)
        .map(|i| row(i, &format!("n{i}"), &format!("{i}.25"), t(1, 0)))
        .collect();
    let receipt = sink.write(&s, &batch(rows.clone())).await.unwrap();
    assert_eq!(receipt.rows_written, 150);
    let first = dump(&sink, "large");
    sink.write(&s, &batch(rows)).await.unwrap();
    assert_eq!(dump(&sink, "large"), first);
    assert_eq!(first.len(), 150);
    assert_eq!(first[0][1], "t:n0");
    assert_eq!(first[100][2], "t:100.25");
    assert_eq!(first[149][1], "t:n149");
    // A key repeated inside one multi-row statement: the later row wins, as with single rows.
    let mut dupes: Vec<Row> = (0..64).map(|i| row(i, "old", "1", t(1, 0))).collect();
    dupes[63] = row(5, "newest", "2", t(2, 0));
    sink.write(&s, &batch(dupes)).await.unwrap();
    let after = dump(&sink, "large");
    assert_eq!(after.len(), 150);
    assert_eq!(after[5][1], "t:newest");
    assert_eq!(after[6][1], "t:old");
}
