//! End-to-end checks of the Databricks stand-in over real HTTP (reqwest).

use std::time::Duration;

use ml_connector_testkit::databricks::{
    DatabricksStandIn, Endpoint, Fault, MergeDuplicates, SqlType, StandInConfig, StandInValue,
    StatementOutcome,
};
use serde_json::{json, Value};

const TABLE: &str = "`main`.`sales`.`orders`";

struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
    warehouse: String,
}

async fn fetch_token(http: &reqwest::Client, si: &DatabricksStandIn) -> reqwest::Response {
    http.post(si.token_endpoint())
        .basic_auth(si.client_id(), Some(si.client_secret()))
        .form(&[("grant_type", "client_credentials"), ("scope", "all-apis")])
        .send()
        .await
        .unwrap()
}

impl Api {
    async fn new(si: &DatabricksStandIn) -> Self {
        let http = reqwest::Client::new();
        let body: Value = fetch_token(&http, si).await.json().await.unwrap();
        Api {
            token: body["access_token"].as_str().unwrap().to_string(),
            http,
            base: si.uri(),
            warehouse: si.warehouse_id().to_string(),
        }
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    fn request(&self, sql: &str, params: Value) -> Value {
        json!({
            "statement": sql, "warehouse_id": self.warehouse, "catalog": "main", "schema": "sales",
            "parameters": params, "wait_timeout": "10s", "on_wait_timeout": "CONTINUE",
            "disposition": "INLINE", "format": "JSON_ARRAY",
        })
    }

    async fn sql(&self, sql: &str) -> Value {
        self.sql_with(sql, json!([])).await
    }

    async fn sql_with(&self, sql: &str, params: Value) -> Value {
        let (status, body) = self
            .post("/api/2.0/sql/statements", self.request(sql, params))
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    async fn ok(&self, sql: &str) -> Value {
        let body = self.sql(sql).await;
        assert_eq!(body["status"]["state"], "SUCCEEDED", "{sql}: {body}");
        body
    }
}

/// Renders a string literal the way databricks-client's `sql::string_literal` does.
fn lit(s: &str) -> String {
    let mut out = String::from("'");
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\0' => out.push_str("\\u0000"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

async fn setup(api: &Api) {
    api.ok("CREATE SCHEMA IF NOT EXISTS `main`.`sales`").await;
    api.ok(&format!(
        "CREATE TABLE IF NOT EXISTS {TABLE} (`id` BIGINT NOT NULL, `name` STRING, `amt` DECIMAL(38,2), `d` DATE, `ts` TIMESTAMP, `ok` BOOLEAN, `n` INT, `x` DOUBLE) USING DELTA"
    ))
    .await;
}

fn merge_sql(rows: &[String]) -> String {
    format!(
        "MERGE INTO {TABLE} AS tgt USING (SELECT * FROM VALUES {} AS v(`id`, `name`, `amt`, `d`, `ts`, `ok`, `n`, `x`)) AS src ON tgt.`id` <=> src.`id` WHEN MATCHED THEN UPDATE SET tgt.`name` = src.`name`, tgt.`amt` = src.`amt`, tgt.`d` = src.`d`, tgt.`ts` = src.`ts`, tgt.`ok` = src.`ok`, tgt.`n` = src.`n`, tgt.`x` = src.`x` WHEN NOT MATCHED THEN INSERT (`id`, `name`, `amt`, `d`, `ts`, `ok`, `n`, `x`) VALUES (src.`id`, src.`name`, src.`amt`, src.`d`, src.`ts`, src.`ok`, src.`n`, src.`x`)",
        rows.join(", ")
    )
}

fn row(id: i64, name: &str, amt: &str) -> String {
    format!(
        "({id}, {}, CAST('{amt}' AS DECIMAL(38,2)), DATE'2024-01-31', TIMESTAMP'2024-01-31 23:05:09.000123+00:00', TRUE, -5, CAST('0.1' AS DOUBLE))",
        lit(name)
    )
}

fn counts(body: &Value) -> Vec<(String, String)> {
    let cols = body["manifest"]["schema"]["columns"].as_array().unwrap();
    let data = body["result"]["data_array"][0].as_array().unwrap();
    cols.iter()
        .zip(data)
        .map(|(c, v)| {
            (
                c["name"].as_str().unwrap().to_string(),
                v.as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn token_flow_discovery_credentials_and_pat() {
    let si = DatabricksStandIn::start_with(StandInConfig::new().pat("dapi-test-pat")).await;
    let http = reqwest::Client::new();
    let disc: Value = http
        .get(format!(
            "{}/oidc/.well-known/oauth-authorization-server",
            si.uri()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(disc["token_endpoint"], si.token_endpoint());
    assert!(disc["authorization_endpoint"].is_string());

    let r = fetch_token(&http, &si).await;
    assert_eq!(r.status(), 200);
    let t1: Value = r.json().await.unwrap();
    assert_eq!(t1["expires_in"], json!("3600"));
    assert_eq!(t1["token_type"], "Bearer");
    assert_eq!(t1["scope"], "all-apis");
    let t2: Value = fetch_token(&http, &si).await.json().await.unwrap();
    assert_ne!(t1["access_token"], t2["access_token"]);
    assert_eq!(si.token_fetch_count(), 2);

    // Wrong secret, missing Basic auth, wrong content type, wrong grant.
    let bad = http
        .post(si.token_endpoint())
        .basic_auth(si.client_id(), Some("nope"))
        .form(&[("grant_type", "client_credentials"), ("scope", "all-apis")])
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 401);
    let body: Value = bad.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");
    let no_auth = http
        .post(si.token_endpoint())
        .form(&[("grant_type", "client_credentials"), ("scope", "all-apis")])
        .send()
        .await
        .unwrap();
    assert_eq!(no_auth.status(), 401);
    let json_body = http
        .post(si.token_endpoint())
        .basic_auth(si.client_id(), Some(si.client_secret()))
        .json(&json!({"grant_type": "client_credentials", "scope": "all-apis"}))
        .send()
        .await
        .unwrap();
    assert_eq!(json_body.status(), 400);
    let grant = http
        .post(si.token_endpoint())
        .basic_auth(si.client_id(), Some(si.client_secret()))
        .form(&[("grant_type", "password"), ("scope", "all-apis")])
        .send()
        .await
        .unwrap();
    assert_eq!(grant.status(), 400);
    assert_eq!(si.token_fetch_count(), 2);

    // Tokens and the PAT work on the API; anything else is 401 UNAUTHENTICATED.
    let wh = format!("{}/api/2.0/sql/warehouses/{}", si.uri(), si.warehouse_id());
    for (tok, want) in [
        (t1["access_token"].as_str().unwrap(), 200),
        ("dapi-test-pat", 200),
        ("made-up", 401),
    ] {
        let r = http.get(&wh).bearer_auth(tok).send().await.unwrap();
        assert_eq!(r.status().as_u16(), want, "{tok}");
        let body: Value = r.json().await.unwrap();
        if want == 401 {
            assert_eq!(body["error_code"], "UNAUTHENTICATED");
        } else {
            assert_eq!(body["state"], "RUNNING");
        }
    }
    let r = http.get(&wh).send().await.unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn tokens_expire_by_the_paused_tokio_clock() {
    let si =
        DatabricksStandIn::start_with(StandInConfig::new().token_ttl(Duration::from_secs(600)))
            .await;
    let api = Api::new(&si).await;
    let wh = format!("/api/2.0/sql/warehouses/{}", si.warehouse_id());
    assert_eq!(api.get(&wh).await.0, 200);
    tokio::time::advance(Duration::from_secs(601)).await;
    let (status, body) = api.get(&wh).await;
    assert_eq!(status, 401);
    assert_eq!(body["error_code"], "UNAUTHENTICATED");
    // A fresh token works again.
    let api = Api::new(&si).await;
    assert_eq!(api.get(&wh).await.0, 200);
}

#[tokio::test]
async fn create_merge_select_round_trip_with_hostile_strings_and_exact_decimals() {
    let si = DatabricksStandIn::start().await;
    let api = Api::new(&si).await;
    setup(&api).await;
    let hostile = [
        "O'Brien",
        r"back\slash \\ double",
        "line\nbreak\ttab\rcr",
        "unicode é 日本 👍",
        "'; DROP TABLE x; --",
        "nul\0byte",
        r"\'",
        "",
    ];
    let amounts = [
        "123456789012345678901234567.89",
        "-0.01",
        "0.00",
        "1.10",
        "99.99",
        "-5",
        "7.5",
        "1",
    ];
    let rows: Vec<String> = hostile
        .iter()
        .zip(amounts)
        .enumerate()
        .map(|(i, (h, a))| row(i as i64 + 1, h, a))
        .collect();
    let body = api.ok(&merge_sql(&rows)).await;
    assert_eq!(
        counts(&body),
        vec![
            ("num_affected_rows".into(), "8".into()),
            ("num_updated_rows".into(), "0".into()),
            ("num_deleted_rows".into(), "0".into()),
            ("num_inserted_rows".into(), "8".into()),
        ]
    );
    assert_eq!(
        body["manifest"]["schema"]["columns"][0]["type_name"],
        "LONG"
    );
    // Re-running is idempotent: all updates.
    let body = api.ok(&merge_sql(&rows)).await;
    assert_eq!(counts(&body)[1], ("num_updated_rows".into(), "8".into()));
    assert_eq!(si.row_count("main.sales.orders"), Some(8));
    assert_eq!(
        si.duplicate_keys("main.sales.orders", &["id"]),
        Some(vec![])
    );

    let body = api
        .sql_with(
            &format!("SELECT `id`, `name`, `amt`, `d`, `ts`, `ok`, `n`, `x` FROM {TABLE} WHERE `ts` >= :window_from AND `ts` < :window_to ORDER BY `id`"),
            json!([
                {"name": "window_from", "value": "2024-01-31T00:00:00.000000Z", "type": "TIMESTAMP"},
                {"name": "window_to", "value": "2024-02-01T00:00:00.000000Z", "type": "TIMESTAMP"},
            ]),
        )
        .await;
    assert_eq!(body["status"]["state"], "SUCCEEDED", "{body}");
    let cols = &body["manifest"]["schema"]["columns"];
    assert_eq!(cols[2]["type_name"], "DECIMAL");
    assert_eq!(cols[2]["type_text"], "DECIMAL(38,2)");
    assert_eq!(cols[2]["position"], 2);
    let data = body["result"]["data_array"].as_array().unwrap();
    assert_eq!(data.len(), 8);
    for (i, r) in data.iter().enumerate() {
        assert_eq!(r[0], json!((i + 1).to_string()));
        assert_eq!(r[1], json!(hostile[i]), "row {i}");
        assert_eq!(r[3], "2024-01-31");
        assert_eq!(r[4], "2024-01-31T23:05:09.000123Z");
        assert_eq!(r[5], "true");
        assert_eq!(r[6], "-5");
        assert_eq!(r[7], "0.1");
    }
    let amts: Vec<&str> = data.iter().map(|r| r[2].as_str().unwrap()).collect();
    assert_eq!(
        amts,
        [
            "123456789012345678901234567.89",
            "-0.01",
            "0.00",
            "1.10",
            "99.99",
            "-5.00",
            "7.50",
            "1.00"
        ]
    );
    // Typed inspection.
    let stored = si.rows("main.sales.orders").unwrap();
    assert_eq!(stored[4]["name"], StandInValue::String(hostile[4].into()));
    assert_eq!(
        stored[0]["amt"],
        StandInValue::Decimal("123456789012345678901234567.89".parse().unwrap())
    );
    // The other table is still there: nothing was injected.
    assert_eq!(si.tables(), vec!["main.sales.orders".to_string()]);

    // COUNT(*) in a window, NULL handling and a parameterised insert.
    let body = api
        .sql_with(
            &format!("INSERT INTO {TABLE} (`id`, `name`, `amt`) VALUES (:id, :name, :amt)"),
            json!([
                {"name": "id", "value": "100", "type": "BIGINT"},
                {"name": "name", "value": null},
                {"name": "amt", "value": "12.345", "type": "DECIMAL(6,3)"},
            ]),
        )
        .await;
    assert_eq!(
        counts(&body),
        vec![
            ("num_affected_rows".into(), "1".into()),
            ("num_inserted_rows".into(), "1".into())
        ]
    );
    let body = api
        .ok(&format!(
            "SELECT `name`, `amt`, `d` FROM {TABLE} WHERE `id` = 100"
        ))
        .await;
    assert_eq!(body["result"]["data_array"], json!([[null, "12.35", null]]));
    let body = api
        .sql_with(
            &format!("SELECT COUNT(*) AS `row_count` FROM {TABLE} WHERE CAST(`d` AS TIMESTAMP_NTZ) >= :window_from AND CAST(`d` AS TIMESTAMP_NTZ) < :window_to"),
            json!([
                {"name": "window_from", "value": "2024-01-31 00:00:00.000000", "type": "TIMESTAMP_NTZ"},
                {"name": "window_to", "value": "2024-02-01 00:00:00.000000", "type": "TIMESTAMP_NTZ"},
            ]),
        )
        .await;
    assert_eq!(body["result"]["data_array"], json!([["8"]]));
    assert_eq!(
        body["manifest"]["schema"]["columns"][0]["name"],
        "row_count"
    );

    // ALTER TABLE ADD COLUMNS is visible in the schema and in Unity Catalog.
    api.ok(&format!(
        "ALTER TABLE {TABLE} ADD COLUMNS (`extra` STRING, `e2` DECIMAL(10, 4))"
    ))
    .await;
    let schema = si.table_schema("main.sales.orders").unwrap();
    assert_eq!(schema.len(), 10);
    assert_eq!(
        schema[9].sql_type,
        SqlType::Decimal {
            precision: 10,
            scale: 4
        }
    );
    let (status, info) = api
        .get("/api/2.1/unity-catalog/tables/main.sales.orders")
        .await;
    assert_eq!(status, 200);
    assert_eq!(info["full_name"], "main.sales.orders");
    assert_eq!(info["columns"][2]["type_text"], "decimal(38,2)");
    assert_eq!(info["columns"][0]["type_name"], "LONG");
    assert_eq!(info["columns"][0]["nullable"], false);
    assert_eq!(info["columns"][9]["name"], "e2");
    let (status, body) = api
        .get("/api/2.1/unity-catalog/tables/main.sales.nope")
        .await;
    assert_eq!(status, 404);
    assert_eq!(body["error_code"], "TABLE_DOES_NOT_EXIST");

    // The log holds every statement with its outcome, in order.
    let body = api.ok("DESCRIBE TABLE main.sales.orders").await;
    assert_eq!(
        body["result"]["data_array"][2],
        json!(["amt", "decimal(38,2)", null])
    );
    let log = si.statements();
    assert_eq!(log.len(), 10);
    assert!(log[2].sql.starts_with("MERGE INTO"));
    assert!(log
        .iter()
        .all(|s| matches!(s.outcome, StatementOutcome::Succeeded { .. })));
    assert_eq!(log[5].parameters[1].value, None);
}

#[tokio::test]
async fn duplicate_source_keys_fail_the_merge_over_http_200() {
    let si = DatabricksStandIn::start().await;
    let api = Api::new(&si).await;
    setup(&api).await;
    api.ok(&merge_sql(&[row(1, "a", "1")])).await;
    let body = api
        .sql(&merge_sql(&[row(1, "b", "2"), row(1, "c", "3")]))
        .await;
    assert_eq!(body["status"]["state"], "FAILED");
    assert_eq!(body["status"]["error"]["error_code"], "BAD_REQUEST");
    let msg = body["status"]["error"]["message"].as_str().unwrap();
    assert!(
        msg.starts_with("[DELTA_MULTIPLE_SOURCE_ROW_MATCHING_TARGET_ROW_IN_MERGE]"),
        "{msg}"
    );
    // Nothing was applied.
    assert_eq!(
        si.rows("main.sales.orders").unwrap()[0]["name"],
        StandInValue::String("a".into())
    );
    // Strict mode (default) also fails for unmatched duplicates.
    let body = api
        .sql(&merge_sql(&[row(7, "b", "2"), row(7, "c", "3")]))
        .await;
    assert_eq!(body["status"]["state"], "FAILED");
    assert_eq!(si.row_count("main.sales.orders"), Some(1));

    // Databricks-exact mode inserts unmatched duplicates, which the inspection finds.
    let si = DatabricksStandIn::start_with(
        StandInConfig::new().merge_duplicates(MergeDuplicates::FailWhenMatched),
    )
    .await;
    let api = Api::new(&si).await;
    setup(&api).await;
    api.ok(&merge_sql(&[row(7, "b", "2"), row(7, "c", "3")]))
        .await;
    assert_eq!(
        si.duplicate_keys("main.sales.orders", &["id"]),
        Some(vec![vec![StandInValue::BigInt(7)]])
    );
}

#[tokio::test]
async fn sql_errors_are_failed_statements() {
    let si = DatabricksStandIn::start().await;
    let api = Api::new(&si).await;
    setup(&api).await;
    for (sql, class, state) in [
        ("SELEC 1", "PARSE_SYNTAX_ERROR", "42601"),
        ("SELECT 1; SELECT 2", "PARSE_SYNTAX_ERROR", "42601"),
        ("SELECT * FROM main.sales.missing", "TABLE_OR_VIEW_NOT_FOUND", "42P01"),
        ("SELECT nope FROM main.sales.orders", "UNRESOLVED_COLUMN.WITH_SUGGESTION", "42703"),
        ("GRANT SELECT ON TABLE main.sales.orders TO `x`", "UNSUPPORTED_FEATURE", "0A000"),
        ("INSERT INTO main.sales.orders (`id`, `name`) VALUES (1, 2)", "INCOMPATIBLE_DATA_FOR_TABLE.CANNOT_SAFELY_CAST", "KD000"),
        ("INSERT INTO main.sales.orders (`name`) VALUES ('x')", "DELTA_NOT_NULL_CONSTRAINT_VIOLATED", "23502"),
        ("SELECT :missing AS v", "UNBOUND_SQL_PARAMETER", "42P02"),
        ("MERGE INTO main.sales.orders AS tgt USING (VALUES (1)) AS src(id) ON tgt.id = src.id WHEN NOT MATCHED THEN INSERT *", "COLUMN_ALIASES_NOT_ALLOWED", "42601"),
    ] {
        let body = api.sql(sql).await;
        assert_eq!(body["status"]["state"], "FAILED", "{sql}: {body}");
        assert_eq!(body["status"]["sql_state"], state, "{sql}: {body}");
        let msg = body["status"]["error"]["message"].as_str().unwrap();
        assert!(msg.starts_with(&format!("[{class}]")), "{sql}: {msg}");
        assert!(msg.ends_with(&format!("SQLSTATE: {state}")), "{msg}");
    }
    assert_eq!(si.row_count("main.sales.orders"), Some(0));
}

#[tokio::test]
async fn large_results_are_chunked_and_row_limit_truncates() {
    let si = DatabricksStandIn::start_with(StandInConfig::new().rows_per_chunk(3)).await;
    let api = Api::new(&si).await;
    setup(&api).await;
    let rows: Vec<String> = (1..=10).map(|i| row(i, &format!("n{i}"), "1")).collect();
    api.ok(&merge_sql(&rows)).await;
    let body = api
        .ok(&format!("SELECT `id` FROM {TABLE} ORDER BY `id` DESC"))
        .await;
    let m = &body["manifest"];
    assert_eq!(m["total_chunk_count"], 4);
    assert_eq!(m["total_row_count"], 10);
    assert_eq!(
        m["chunks"][3],
        json!({"chunk_index": 3, "row_offset": 9, "row_count": 1})
    );
    let mut ids: Vec<String> = Vec::new();
    let mut chunk = body["result"].clone();
    loop {
        for r in chunk["data_array"].as_array().unwrap() {
            ids.push(r[0].as_str().unwrap().to_string());
        }
        let Some(link) = chunk["next_chunk_internal_link"].as_str() else {
            break;
        };
        let (status, next) = api.get(link).await;
        assert_eq!(status, 200);
        chunk = next;
    }
    let want: Vec<String> = (1..=10).rev().map(|i: i32| i.to_string()).collect();
    assert_eq!(ids, want);
    // Chunk 0 can be fetched again, out of order.
    let id = body["statement_id"].as_str().unwrap();
    let (_, c0) = api
        .get(&format!("/api/2.0/sql/statements/{id}/result/chunks/0"))
        .await;
    assert_eq!(c0["row_count"], 3);

    let mut req = api.request(&format!("SELECT * FROM {TABLE}"), json!([]));
    req["row_limit"] = json!(4);
    let (_, body) = api.post("/api/2.0/sql/statements", req).await;
    assert_eq!(body["manifest"]["truncated"], true);
    assert_eq!(body["manifest"]["total_row_count"], 4);

    // No rows: no chunks and an empty result.
    let body = api
        .ok(&format!("SELECT * FROM {TABLE} WHERE `id` < 0"))
        .await;
    assert_eq!(body["manifest"]["total_chunk_count"], 0);
    assert_eq!(body["result"], json!({}));
}

#[tokio::test]
async fn polling_pending_running_succeeded_and_cancel() {
    let si = DatabricksStandIn::start().await;
    let api = Api::new(&si).await;
    setup(&api).await;
    si.queue_next_statements(1, 2);
    let body = api.sql(&merge_sql(&[row(1, "a", "1")])).await;
    assert_eq!(body["status"]["state"], "PENDING");
    let id = body["statement_id"].as_str().unwrap().to_string();
    let path = format!("/api/2.0/sql/statements/{id}");
    assert_eq!(api.get(&path).await.1["status"]["state"], "RUNNING");
    assert_eq!(api.get(&path).await.1["status"]["state"], "RUNNING");
    assert_eq!(si.row_count("main.sales.orders"), Some(0), "not run yet");
    let (_, done) = api.get(&path).await;
    assert_eq!(done["status"]["state"], "SUCCEEDED");
    assert_eq!(counts(&done)[3].1, "1");
    assert_eq!(si.row_count("main.sales.orders"), Some(1));
    // Polling again gives the same terminal answer.
    assert_eq!(api.get(&path).await.1["status"]["state"], "SUCCEEDED");

    // wait_timeout 0s: PENDING, then the result on the first poll.
    let mut req = api.request(&format!("SELECT COUNT(*) FROM {TABLE}"), json!([]));
    req["wait_timeout"] = json!("0s");
    let (_, body) = api.post("/api/2.0/sql/statements", req).await;
    assert_eq!(body["status"]["state"], "PENDING");
    let (_, done) = api
        .get(&format!(
            "/api/2.0/sql/statements/{}",
            body["statement_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(done["result"]["data_array"], json!([["1"]]));

    // A statement that runs until canceled is never applied.
    si.hang_next_statements(1);
    let body = api.sql(&merge_sql(&[row(2, "b", "1")])).await;
    assert_eq!(body["status"]["state"], "RUNNING");
    let id = body["statement_id"].as_str().unwrap().to_string();
    for _ in 0..3 {
        assert_eq!(
            api.get(&format!("/api/2.0/sql/statements/{id}")).await.1["status"]["state"],
            "RUNNING"
        );
    }
    let (status, _) = api
        .post(&format!("/api/2.0/sql/statements/{id}/cancel"), json!({}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        api.get(&format!("/api/2.0/sql/statements/{id}")).await.1["status"]["state"],
        "CANCELED"
    );
    assert_eq!(si.row_count("main.sales.orders"), Some(1));
    assert_eq!(
        si.statements().last().unwrap().outcome,
        StatementOutcome::Canceled
    );
    let (status, body) = api.get("/api/2.0/sql/statements/unknown-id").await;
    assert_eq!(status, 404);
    assert_eq!(body["error_code"], "RESOURCE_DOES_NOT_EXIST");
}

#[tokio::test]
async fn faults_do_not_apply_the_statement() {
    let si = DatabricksStandIn::start().await;
    let api = Api::new(&si).await;
    setup(&api).await;
    let insert = format!("INSERT INTO {TABLE} (`id`) VALUES (1)");

    si.inject(
        Fault::RateLimited {
            retry_after: Duration::from_secs(7),
        },
        1,
    );
    let r = api
        .http
        .post(format!("{}/api/2.0/sql/statements", api.base))
        .bearer_auth(&api.token)
        .json(&api.request(&insert, json!([])))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "7");

    si.inject(Fault::Unavailable, 1);
    let (status, body) = api
        .post("/api/2.0/sql/statements", api.request(&insert, json!([])))
        .await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (503, Some("TEMPORARILY_UNAVAILABLE"))
    );

    si.inject(Fault::InternalErrorHtml, 1);
    let r = api
        .http
        .post(format!("{}/api/2.0/sql/statements", api.base))
        .bearer_auth(&api.token)
        .json(&api.request(&insert, json!([])))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 500);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(r.text().await.unwrap().contains("<html>"));

    si.inject(
        Fault::StatementFailed {
            error_code: "ABORTED".into(),
            sql_state: "2D521".into(),
            message:
                "[DELTA_CONCURRENT_APPEND] Files were added by a concurrent update. SQLSTATE: 2D521"
                    .into(),
        },
        1,
    );
    let body = api.sql(&insert).await;
    assert_eq!(body["status"]["state"], "FAILED");
    assert_eq!(body["status"]["sql_state"], "2D521");
    assert_eq!(body["status"]["error"]["error_code"], "ABORTED");

    // A delayed answer makes the client's read timeout fire; nothing is applied.
    si.inject(Fault::Delay(Duration::from_secs(5)), 1);
    let err = api
        .http
        .post(format!("{}/api/2.0/sql/statements", api.base))
        .bearer_auth(&api.token)
        .timeout(Duration::from_millis(300))
        .json(&api.request(&insert, json!([])))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert_eq!(si.row_count("main.sales.orders"), Some(0));

    // Faults on other endpoints.
    si.inject_at(Endpoint::Warehouse, Fault::Unavailable, 2);
    let wh = format!("/api/2.0/sql/warehouses/{}", si.warehouse_id());
    assert_eq!(api.get(&wh).await.0, 503);
    assert_eq!(api.get(&wh).await.0, 503);
    assert_eq!(api.get(&wh).await.0, 200);
    si.inject_at(
        Endpoint::Token,
        Fault::RateLimited {
            retry_after: Duration::from_secs(1),
        },
        1,
    );
    let r = fetch_token(&api.http, &si).await;
    assert_eq!(r.status(), 429);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request");

    // Token expires mid-run: 401 until a new token is fetched.
    si.inject(Fault::ExpireTokens, 1);
    let (status, body) = api
        .post("/api/2.0/sql/statements", api.request(&insert, json!([])))
        .await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (401, Some("UNAUTHENTICATED"))
    );
    let api = Api::new(&si).await;
    assert_eq!(si.row_count("main.sales.orders"), Some(0));

    // Apply-then-time-out: a blind retry of a non-idempotent INSERT applies it twice.
    si.inject(Fault::ApplyThenDelay(Duration::from_secs(5)), 1);
    let err = api
        .http
        .post(format!("{}/api/2.0/sql/statements", api.base))
        .bearer_auth(&api.token)
        .timeout(Duration::from_millis(300))
        .json(&api.request(&insert, json!([])))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout());
    assert_eq!(si.row_count("main.sales.orders"), Some(1));
    api.ok(&insert).await;
    assert_eq!(
        si.duplicate_keys("main.sales.orders", &["id"]),
        Some(vec![vec![StandInValue::BigInt(1)]])
    );
    si.clear_faults();
    assert!(si.request_count(Endpoint::ExecuteStatement) >= 9);
}

#[tokio::test]
async fn statement_size_and_parameter_limits() {
    let si = DatabricksStandIn::start_with(StandInConfig::new().max_statement_bytes(1000)).await;
    let api = Api::new(&si).await;
    setup(&api).await;
    let big = format!("SELECT '{}'", "x".repeat(1000));
    let (status, body) = api
        .post("/api/2.0/sql/statements", api.request(&big, json!([])))
        .await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (400, Some("BAD_REQUEST"))
    );
    let params: Vec<Value> = (0..257)
        .map(|i| json!({"name": format!("p{i}"), "value": "1", "type": "INT"}))
        .collect();
    let (status, body) = api
        .post(
            "/api/2.0/sql/statements",
            api.request("SELECT :p0", json!(params)),
        )
        .await;
    assert_eq!(status, 400);
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("the limit is 256"));
    let params: Vec<Value> = (0..256)
        .map(|i| json!({"name": format!("p{i}"), "value": i.to_string(), "type": "INT"}))
        .collect();
    let body = api.sql_with("SELECT :p255 AS v", json!(params)).await;
    assert_eq!(body["result"]["data_array"], json!([["255"]]));
    let (status, _) = api
        .post(
            "/api/2.0/sql/statements",
            json!({"statement": "SELECT 1", "warehouse_id": "nope"}),
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn jobs_run_now_is_idempotent_per_token() {
    let si = DatabricksStandIn::start().await;
    let api = Api::new(&si).await;
    let req = |tok: &str| json!({"job_id": 42, "job_parameters": {"run": "r1"}, "idempotency_token": tok});
    let (s1, a) = api.post("/api/2.1/jobs/run-now", req("mlc-r1-abc")).await;
    let (s2, b) = api.post("/api/2.1/jobs/run-now", req("mlc-r1-abc")).await;
    let (_, c) = api.post("/api/2.1/jobs/run-now", req("mlc-r2-def")).await;
    assert_eq!((s1, s2), (200, 200));
    assert_eq!(a, b);
    assert_ne!(a["run_id"], c["run_id"]);
    assert_eq!(c["number_in_job"], 2);
    let runs = si.job_runs();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0].requests, 2);
    assert_eq!(runs[0].job_parameters["run"], "r1");
    assert_eq!(si.run_now_count(), 3);
    let (status, _) = api
        .post("/api/2.1/jobs/run-now", req(&"x".repeat(65)))
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn unity_catalog_list_pages_include_empty_pages_and_warehouse_state() {
    let si = DatabricksStandIn::start_with(
        StandInConfig::new()
            .uc_page_size(2)
            .uc_empty_pages(true)
            .uc_visibility_lag(1),
    )
    .await;
    let api = Api::new(&si).await;
    api.ok("CREATE SCHEMA IF NOT EXISTS main.hr").await;
    for t in ["a", "b", "c"] {
        api.ok(&format!(
            "CREATE TABLE IF NOT EXISTS main.hr.{t} (id INT) USING DELTA"
        ))
        .await;
    }
    // Visibility lag: the first read of a new table is a 404.
    let (status, _) = api.get("/api/2.1/unity-catalog/tables/main.hr.a").await;
    assert_eq!(status, 404);
    let (status, _) = api.get("/api/2.1/unity-catalog/tables/main.hr.a").await;
    assert_eq!(status, 200);
    let mut names = Vec::new();
    let mut token: Option<String> = None;
    let mut empty_pages = 0;
    loop {
        let mut path =
            "/api/2.1/unity-catalog/tables?catalog_name=main&schema_name=hr&max_results=0"
                .to_string();
        if let Some(t) = &token {
            path.push_str(&format!("&page_token={t}"));
        }
        let (status, page) = api.get(&path).await;
        assert_eq!(status, 200);
        let tables = page["tables"].as_array().unwrap();
        if tables.is_empty() {
            empty_pages += 1;
        }
        names.extend(
            tables
                .iter()
                .map(|t| t["name"].as_str().unwrap().to_string()),
        );
        match page["next_page_token"].as_str() {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
    }
    assert_eq!(names, ["a", "b", "c"]);
    assert!(empty_pages >= 1);

    let (_, wh) = api
        .get(&format!("/api/2.0/sql/warehouses/{}", si.warehouse_id()))
        .await;
    assert_eq!(wh["state"], "RUNNING");
    si.set_warehouse_state(si.warehouse_id(), "STOPPED");
    let (_, wh) = api
        .get(&format!("/api/2.0/sql/warehouses/{}", si.warehouse_id()))
        .await;
    assert_eq!(wh["state"], "STOPPED");
    let (status, body) = api.get("/api/2.0/sql/warehouses/unknown").await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (404, Some("RESOURCE_DOES_NOT_EXIST"))
    );
}

#[tokio::test]
async fn thousands_of_statements_stay_fast() {
    let si = DatabricksStandIn::start_with(StandInConfig::new().log_sql_prefix(64)).await;
    let api = Api::new(&si).await;
    setup(&api).await;
    let started = std::time::Instant::now();
    for batch in 0..1000i64 {
        let rows: Vec<String> = (0..5).map(|i| row(batch * 3 + i, "name", "1.5")).collect();
        let body = api.sql(&merge_sql(&rows)).await;
        assert_eq!(body["status"]["state"], "SUCCEEDED");
    }
    assert_eq!(si.row_count("main.sales.orders"), Some(3002));
    assert_eq!(
        si.duplicate_keys("main.sales.orders", &["id"]),
        Some(vec![])
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
}

/// The module documentation's example, kept in sync here.
#[tokio::test(flavor = "current_thread")]
async fn module_doc_example() {
    let standin = DatabricksStandIn::start().await;
    standin
        .execute_sql("CREATE SCHEMA IF NOT EXISTS main.sales")
        .unwrap();
    standin
        .execute_sql(
            "CREATE TABLE main.sales.orders (id BIGINT NOT NULL, amt DECIMAL(10,2)) USING DELTA",
        )
        .unwrap();
    standin
        .execute_sql("INSERT INTO main.sales.orders VALUES (1, CAST('12.5' AS DECIMAL(10,2)))")
        .unwrap();
    let rows = standin.rows("main.sales.orders").unwrap();
    assert_eq!(rows[0]["amt"].to_cell().as_deref(), Some("12.50"));
    assert_eq!(rows[0]["id"], StandInValue::BigInt(1));
    assert!(standin.uri().starts_with("http://127.0.0.1:"));
    // Direct SQL is not logged as an HTTP statement.
    assert!(standin.statements().is_empty());
}

#[tokio::test]
async fn files_api_on_volumes_with_the_real_wire_shapes() {
    let si = DatabricksStandIn::start_with(StandInConfig::new().files_page_size(2)).await;
    let api = Api::new(&si).await;
    setup(&api).await;
    let file = "/api/2.0/fs/files/Volumes/main/sales/stage/d%20ir/a%2Bb.bin";
    let put = |path: &str, body: Vec<u8>| {
        api.http
            .put(format!("{}{path}?overwrite=true", api.base))
            .bearer_auth(&api.token)
            .header("content-type", "application/octet-stream")
            .body(body)
            .send()
    };
    // No such volume yet.
    let r = put(file, vec![1, 2, 3]).await.unwrap();
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error_code"], "RESOURCE_DOES_NOT_EXIST");

    api.ok("CREATE VOLUME IF NOT EXISTS `main`.`sales`.`stage`")
        .await;
    api.ok("CREATE VOLUME IF NOT EXISTS `main`.`sales`.`stage`")
        .await;
    assert_eq!(
        api.sql("CREATE VOLUME `main`.`sales`.`stage`").await["status"]["state"],
        "FAILED"
    );
    assert!(si.has_volume("main.sales.stage"));
    assert_eq!(put(file, vec![1, 2, 3]).await.unwrap().status(), 204);
    for i in 0..3 {
        let p = format!("/api/2.0/fs/files/Volumes/main/sales/stage/d%20ir/f{i}");
        assert_eq!(put(&p, vec![0; i]).await.unwrap().status(), 204);
    }
    assert_eq!(
        si.volume_files("main.sales.stage").unwrap()[0],
        ("/Volumes/main/sales/stage/d ir/a+b.bin".to_string(), 3)
    );
    assert_eq!(
        si.uploads()[0].content_type.as_deref(),
        Some("application/octet-stream")
    );

    // Listing: direct children, paged by next_page_token.
    let (status, root) = api
        .get("/api/2.0/fs/directories/Volumes/main/sales/stage")
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        root["contents"][0]["path"],
        "/Volumes/main/sales/stage/d ir/"
    );
    assert_eq!(root["contents"][0]["is_directory"], true);
    let mut names = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let q = token
            .as_ref()
            .map(|t| format!("?page_token={t}"))
            .unwrap_or_default();
        let (status, page) = api
            .get(&format!(
                "/api/2.0/fs/directories/Volumes/main/sales/stage/d%20ir{q}"
            ))
            .await;
        assert_eq!(status, 200);
        for e in page["contents"].as_array().unwrap() {
            assert_eq!(e["is_directory"], false);
            names.push(e["name"].as_str().unwrap().to_string());
        }
        match page["next_page_token"].as_str() {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
    }
    assert_eq!(names, ["a+b.bin", "f0", "f1", "f2"]);
    assert_eq!(
        api.get("/api/2.0/fs/directories/Volumes/main/sales/stage/nope")
            .await
            .0,
        404
    );

    // Download, HEAD, delete.
    let r = api
        .http
        .get(format!("{}{file}", api.base))
        .bearer_auth(&api.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap().as_ref(), &[1, 2, 3]);
    let r = api
        .http
        .head(format!("{}{file}", api.base))
        .bearer_auth(&api.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let del = || {
        api.http
            .delete(format!("{}{file}", api.base))
            .bearer_auth(&api.token)
            .send()
    };
    assert_eq!(del().await.unwrap().status(), 204);
    assert_eq!(del().await.unwrap().status(), 404);

    // read_files needs Parquet; a missing path is PATH_NOT_FOUND.
    let bad = api
        .sql("SELECT * FROM read_files('/Volumes/main/sales/stage/d ir/f2', format => 'parquet')")
        .await;
    assert_eq!(bad["status"]["state"], "FAILED");
    let missing = api
        .sql("SELECT * FROM read_files('/Volumes/main/sales/stage/none.parquet', format => 'parquet')")
        .await;
    assert!(missing["status"]["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("[PATH_NOT_FOUND]"));

    // Denied and faulted.
    si.set_deny_files(true);
    let r = put(file, vec![1]).await.unwrap();
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error_code"], "PERMISSION_DENIED");
    si.set_deny_files(false);
    si.inject_at(Endpoint::UploadFile, Fault::Unavailable, 1);
    assert_eq!(put(file, vec![1]).await.unwrap().status(), 503);
    assert_eq!(put(file, vec![1]).await.unwrap().status(), 204);
    assert_eq!(si.request_count(Endpoint::UploadFile), 8);
}
