use super::*;

const GOOD: &str = r#"
[pipeline]
name = "northwind"
schedule = "daily 02:00 America/Chicago"

[peoplesoft]
host = "erp.example.com"
port = 8443
node = "PSFT_EP"
time_zone = "America/Chicago"
user = "ML_CONNECTOR"
password_env = "PEOPLESOFT_PASSWORD"

[[peoplesoft.blackout]]
from = "18:00"
to = "23:00"
label = "payroll run"

[destination]
kind = "sqlite"
path = "warehouse.db"

[defaults]
start = "2024-01-01T00:00:00Z"
max_window = "7d"

[[streams]]
name = "vendors"
domain = "vendors"

[[streams]]
name = "journal_lines"
domain = "journal_lines"
max_window = "1d"
"#;

#[test]
fn a_good_file_parses_with_defaults_applied() {
    let c = parse(GOOD).unwrap();
    assert_eq!(c.streams.len(), 2);
    assert_eq!(c.streams[0].max_window, Duration::days(7));
    assert_eq!(c.streams[1].max_window, Duration::days(1));
    assert_eq!(c.peoplesoft.blackouts.len(), 1);
    assert_eq!(c.peoplesoft.time_zone, chrono_tz::America::Chicago);
}

#[test]
fn capture_and_reconciliation_keys_are_read_in_order_and_checked() {
    let text = format!(
            "{GOOD}\n[[streams]]\nname = \"vouchers\"\nquery = \"ZZ_VOUCHERS\"\nkey = [\"VOUCHER_ID\"]\ncursor = \"LASTUPDDTTM\"\nfrom_prompt = \"BIND1\"\nto_prompt = \"BIND2\"\nprompt_format = \"date\"\nrange = \"between_inclusive\"\nfixed_prompts = {{ SETID = \"SHARE\", BU = \"US001\", AAA = \"x\" }}\nkey_prompts = [\"AFTER_VOUCHER\"]\nprofile_max_rows = 1000\non_duplicate = \"keep_last\"\ndeletes = \"hard\"\nsnapshot = \"daily 03:00\"\n[streams.mapping]\ntable = \"ps_vouchers\"\nprimary_key = [\"voucher_id\"]\ncursor_column = \"lastupddttm\"\ncolumns = [ {{ column = \"voucher_id\", source = \"VOUCHER_ID\", type = \"STRING\", nullable = false }}, {{ column = \"lastupddttm\", source = \"LASTUPDDTTM\", type = \"TIMESTAMP\" }} ]\n"
        );
    let c = parse(&text).unwrap_or_else(|p| panic!("{p:?}"));
    let v = &c.streams[2].capture;
    assert_eq!(v.from_prompt.as_deref(), Some("BIND1"));
    assert_eq!(v.prompt_format, Some(peoplesoft_client::PromptFormat::Date));
    assert_eq!(
        v.range,
        Some(peoplesoft_client::RangeSemantics::InclusiveBetween)
    );
    let names: Vec<&str> = v.fixed_prompts.iter().map(|p| p.0.as_str()).collect();
    assert_eq!(names, ["SETID", "BU", "AAA"], "in file order");
    assert_eq!(v.key_prompts, ["AFTER_VOUCHER"]);
    assert_eq!(v.profile_max_rows, Some(1000));
    assert_eq!(v.on_duplicate, sync_core::engine::DuplicatePolicy::KeepLast);
    assert_eq!(v.deletes, sync_core::DeletePolicy::Hard);
    assert!(v.reconcile.is_some());

    let bad = text
        .replace("prompt_format = \"date\"", "prompt_format = \"dates\"")
        .replace("deletes = \"hard\"", "deletes = \"purge\"")
        .replace("key = [\"VOUCHER_ID\"]\n", "");
    let problems = parse(&bad).unwrap_err();
    let line_of = |needle: &str| bad.lines().position(|l| l.contains(needle)).unwrap() + 1;
    assert!(problems
        .iter()
        .any(|p| p.line == line_of("prompt_format") && p.message.contains("`date`")));
    assert!(problems
        .iter()
        .any(|p| p.line == line_of("deletes =") && p.message.contains("purge")));
    assert!(problems
        .iter()
        .any(|p| p.message.contains("no `key`") && p.message.contains("write_mode")));
}

#[test]
fn every_problem_is_reported_with_its_line() {
    let bad = GOOD
        .replace("port = 8443", "port = 70000")
        .replace(
            "time_zone = \"America/Chicago\"",
            "time_zone = \"Mars/Base\"",
        )
        .replace("max_window = \"1d\"", "max_window = \"1 fortnight\"")
        .replace("domain = \"vendors\"", "domain = \"vendorz\"");
    let problems = parse(&bad).unwrap_err();
    let text: Vec<String> = problems
        .iter()
        .map(|p| format!("{}: {}", p.line, p.message))
        .collect();
    assert_eq!(problems.len(), 4, "{text:#?}");
    let line = |needle: &str| bad.lines().position(|l| l.contains(needle)).unwrap() + 1;
    assert!(
        text.contains(&format!(
            "{}: `peoplesoft.port` must be 1-65535, not 70000",
            line("port = 70000")
        )),
        "{text:#?}"
    );
    assert!(
        text.iter()
            .any(|t| t.starts_with(&format!("{}: ", line("Mars/Base"))) && t.contains("Mars/Base")),
        "{text:#?}"
    );
    assert!(
        text.iter()
            .any(|t| t.starts_with(&format!("{}: ", line("1 fortnight")))
                && t.contains("max_window")),
        "{text:#?}"
    );
    assert!(
        text.iter()
            .any(|t| t.starts_with(&format!("{}: ", line("vendorz")))
                && t.contains("unknown domain")),
        "{text:#?}"
    );
}

#[test]
fn syntax_and_unknown_keys_are_errors_with_lines() {
    let p = parse("[pipeline]\nname = \"x\"\n[peoplesoft]\nhots = \"a\"\n").unwrap_err();
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].line, 4, "{p:?}");
    assert!(p[0].message.contains("hots"), "{p:?}");
}

#[test]
fn the_documented_example_file_is_valid() {
    let text = include_str!("../../pipeline.example.toml");
    let c = parse(text).unwrap_or_else(|p| panic!("{p:#?}"));
    assert_eq!(c.streams.len(), 6);
    assert_eq!(c.writeback.len(), 1);
    assert_eq!(c.peoplesoft.blackouts.len(), 1);
}

#[test]
fn secrets_must_be_env_references() {
    let bad = GOOD.replace(
        "password_env = \"PEOPLESOFT_PASSWORD\"",
        "password_env = \"hunter2 is my password\"",
    );
    let p = parse(&bad).unwrap_err();
    assert!(p[0].message.contains("environment variable"), "{p:?}");
    assert!(
        !p[0].message.contains("hunter2"),
        "the value is not echoed: {p:?}"
    );
}

#[test]
fn a_bad_default_is_reported_once_at_its_line() {
    let bad = GOOD.replace(
        "max_window = \"7d\"",
        "max_window = \"7d\"\nlookback = \"soon\"\nbatch_size = 0",
    ) + "\n[[streams]]\nname = \"customers\"\ndomain = \"customers\"\n";
    let problems = parse(&bad).unwrap_err();
    let line = |needle: &str| bad.lines().position(|l| l.contains(needle)).unwrap() + 1;
    let text: Vec<String> = problems
        .iter()
        .map(|p| format!("{}: {}", p.line, p.message))
        .collect();
    assert_eq!(problems.len(), 2, "{text:#?}");
    assert_eq!(problems[0].line, line("lookback = \"soon\""), "{text:#?}");
    assert!(
        problems[0].message.starts_with("[defaults] `lookback`"),
        "{text:#?}"
    );
    assert_eq!(problems[1].line, line("batch_size = 0"), "{text:#?}");
    assert!(
        problems[1].message.starts_with("[defaults] `batch_size`")
            && !problems[1].message.contains("stream `"),
        "{text:#?}"
    );
}

const CUSTOM: &str = r#"
[[streams]]
name = "vouchers"
query = "ZZ_VOUCHERS"
key = ["BUSINESS_UNIT", "VOUCHER_ID"]
cursor = "LASTUPDDTTM"
[streams.mapping]
table = "ps_vouchers"
primary_key = ["business_unit", "voucher_id"]
cursor_column = "lastupddttm"
columns = [
  { column = "business_unit", source = "BUSINESS_UNIT", type = "STRING", nullable = false },
  { column = "voucher_id", source = "VOUCHER_ID", type = "STRING", nullable = false },
  { column = "gross_amt", source = "GROSS_AMT", type = "DECIMAL(26,3)" },
  { column = "lastupddttm", source = "LASTUPDDTTM", type = "TIMESTAMP" },
]
"#;

#[test]
fn a_custom_mapping_parses() {
    let c = parse(&format!("{GOOD}{CUSTOM}")).unwrap_or_else(|p| panic!("{p:#?}"));
    assert_eq!(
        match &c.streams[2].kind {
            StreamKind::Custom { mapping, .. } => mapping.columns.len(),
            other => panic!("{other:?}"),
        },
        4
    );
}

#[test]
fn a_mapping_problem_points_at_the_columns_line() {
    for (from, to, needle) in [
        // A type error inside one column.
        (
            "type = \"DECIMAL(26,3)\"",
            "type = \"MONEY\"",
            "{ column = \"gross_amt\"",
        ),
        // A value of the wrong TOML type.
        (
            "nullable = false },\n  { column = \"gross",
            "nullable = \"no\" },\n  { column = \"gross",
            "{ column = \"voucher_id\"",
        ),
        // A problem found when the mapping is compiled: a column mapped twice.
        (
            "column = \"lastupddttm\", source",
            "column = \"gross_amt\", source",
            "LASTUPDDTTM\", type = \"TIMESTAMP",
        ),
    ] {
        let text = format!("{GOOD}{}", CUSTOM.replace(from, to));
        assert!(text.contains(to), "{to}");
        let problems = parse(&text).unwrap_err();
        let want = text.lines().position(|l| l.contains(needle)).unwrap() + 1;
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert_eq!(problems[0].line, want, "{to}: {problems:#?}");
        assert!(problems[0].message.contains("vouchers"), "{problems:#?}");
    }
}

/// `GOOD` with a Databricks destination (the write-back reads a governed Databricks table).
fn good_databricks() -> String {
    GOOD.replace(
        "kind = \"sqlite\"\npath = \"warehouse.db\"",
        "kind = \"databricks\"\ncatalog = \"main\"\nschema = \"erp\"",
    )
}

const WRITEBACK: &str = r#"
[[writeback]]
name = "vendor_master"
table = "main.mdm.vendor_master"
keys = [
  { column = "setid", ci_field = "SETID" },
  { column = "vendor_id", ci_field = "VENDOR_ID" },
]
fields = [
  { column = "name1", ci_field = "NAME1" },
  { column = "credit_limit", ci_field = "CREDIT_LIMIT", type = "DECIMAL(15,2)" },
]
modified_at_column = "modified_at"
modified_by_column = "modified_by"
integration_identity = ["ML_CONNECTOR", "mlc-service-principal"]
conflict_policy = "hold_for_review"
[writeback.ci]
name = "VNDR_ID"
stamp_field = "LASTUPDDTTM"
check_key = { SETID = "SHARE", VENDOR_ID = "0000000001" }
"#;

#[test]
fn a_writeback_stream_parses_with_the_documented_cirt_defaults() {
    let c = parse(&format!("{}{WRITEBACK}", good_databricks())).unwrap_or_else(|p| panic!("{p:?}"));
    let w = &c.writeback[0];
    assert_eq!(w.table.full_name(), "main.mdm.vendor_master");
    assert_eq!(w.target.get, "CIRT_VNDR_ID_G_GET.v1/{SETID}/{VENDOR_ID}");
    assert_eq!(w.target.create, "CIRT_VNDR_ID_C_POST.v1");
    assert_eq!(w.target.update, "CIRT_VNDR_ID_U_PUT.v1");
    assert_eq!(w.target.modified_at_column.as_deref(), Some("modified_at"));
    assert_eq!(w.target.echo.integration_oprids.len(), 2);
    assert_eq!(
        w.target.conflict_policy,
        peoplesoft_client::writeback::ConflictPolicy::HoldForReview
    );
    assert_eq!(
        w.target.time_zone, "America/Chicago",
        "peoplesoft.time_zone"
    );
    assert_eq!(w.key_columns, ["setid", "vendor_id"]);
    assert!(w.columns.contains(&(
        "credit_limit".into(),
        sync_core::ColumnType::Decimal {
            precision: 15,
            scale: 2
        }
    )));
    assert_eq!(w.check_key.len(), 2);
    assert_eq!(w.batch_size, 500);
}

#[test]
fn writeback_problems_are_all_reported_with_their_lines() {
    let bad = WRITEBACK
        .replace("main.mdm.vendor_master", "vendor_master")
        .replace("hold_for_review", "steward_wins")
        .replace("DECIMAL(15,2)", "MONEY")
        .replace("VENDOR_ID = \"0000000001\"", "VENDOR = \"1\"")
        .replace("modified_by_column = \"modified_by\"\n", "");
    let text = format!("{}{bad}", good_databricks());
    let p = parse(&text).unwrap_err();
    let has = |line: usize, s: &str| {
        assert!(
            p.iter().any(|x| x.line == line && x.message.contains(s)),
            "line {line}: {s}: {p:#?}"
        )
    };
    let table = 1 + text
        .lines()
        .position(|l| l.starts_with("table = "))
        .unwrap();
    has(table, "`table` must be `catalog.schema.table`");
    has(table + 5, "`fields` column `credit_limit`");
    has(
        table + 10,
        "`integration_identity` needs `modified_by_column`",
    );
    has(table + 11, "`conflict_policy` must be");
    has(
        table + 15,
        "`ci.check_key` field `VENDOR` is not a key field",
    );
    // A write-back needs the governed table in Databricks.
    let p = parse(&format!("{GOOD}{WRITEBACK}")).unwrap_err();
    assert!(
        p.iter().any(|x| x
            .message
            .contains("needs `destination.kind = \"databricks\"`")),
        "{p:#?}"
    );
}

#[test]
fn a_governed_table_that_is_also_a_forward_table_is_rejected() {
    let text = format!(
        "{}{}",
        good_databricks(),
        WRITEBACK.replace("main.mdm.vendor_master", "main.erp.ps_vendors")
    );
    let p = parse(&text).unwrap_err();
    assert_eq!(p.len(), 1, "{p:#?}");
    assert!(
        p[0].message
            .contains("is also the table of forward stream `vendors`. A forward MERGE would overwrite a steward's edit"),
        "{p:#?}"
    );
    assert_eq!(
        p[0].line,
        1 + text
            .lines()
            .position(|l| l.starts_with("table = "))
            .unwrap()
    );
}

#[test]
fn seed_from_needs_a_forward_stream_with_the_writeback_columns() {
    let ok = WRITEBACK
        .replace("{ column = \"credit_limit\", ci_field = \"CREDIT_LIMIT\", type = \"DECIMAL(15,2)\" },\n", "")
        .replace("[writeback.ci]", "seed_from = \"vendors\"\n[writeback.ci]");
    let c = parse(&format!("{}{ok}", good_databricks())).unwrap_or_else(|p| panic!("{p:#?}"));
    assert_eq!(c.writeback[0].seed_from.as_deref(), Some("vendors"));
    let bad = WRITEBACK.replace("[writeback.ci]", "seed_from = \"vendors\"\n[writeback.ci]");
    let p = parse(&format!("{}{bad}", good_databricks())).unwrap_err();
    assert!(
        p.iter().any(|x| x
            .message
            .contains("`seed_from` stream `vendors` has no column(s) credit_limit")),
        "{p:#?}"
    );
    let bad = WRITEBACK.replace("[writeback.ci]", "seed_from = \"vendorz\"\n[writeback.ci]");
    let p = parse(&format!("{}{bad}", good_databricks())).unwrap_err();
    assert!(
        p.iter()
            .any(|x| x.message.contains("names no `[[streams]]` entry")),
        "{p:#?}"
    );
}

#[test]
fn bulk_settings_default_the_batch_size_and_every_problem_has_its_line() {
    // No volume: bulk stays off, batches keep the 5 000-row default.
    let c = parse(&good_databricks()).unwrap();
    assert!(matches!(
        &c.destination,
        Destination::Databricks { bulk: None, .. }
    ));
    assert_eq!(c.streams[0].batch_size, DEFAULT_BATCH_SIZE);

    // A volume name in the destination's catalog and schema turns bulk on (auto).
    let with_volume = good_databricks().replace(
        "schema = \"erp\"",
        "schema = \"erp\"\nvolume = \"staging\"\nbulk_threshold = 30000\ncreate_volume = true",
    );
    let c = parse(&with_volume).unwrap_or_else(|p| panic!("{p:?}"));
    let Destination::Databricks { bulk: Some(b), .. } = &c.destination else {
        panic!("bulk is on: {:?}", c.destination);
    };
    assert_eq!(
        (b.volume.as_str(), b.threshold, b.create_volume),
        ("main.erp.staging", 30_000, true)
    );
    assert_eq!(c.streams[0].batch_size, BULK_BATCH_SIZE);
    // A stream's own batch size still wins.
    let own = with_volume.replace(
        "max_window = \"1d\"",
        "max_window = \"1d\"\nbatch_size = 2000",
    );
    let c = parse(&own).unwrap();
    assert_eq!(
        (c.streams[0].batch_size, c.streams[1].batch_size),
        (BULK_BATCH_SIZE, 2_000)
    );

    // A full volume name, and `bulk = "off"`.
    let full = good_databricks().replace(
        "schema = \"erp\"",
        "schema = \"erp\"\nvolume = \"landing.raw.files\"",
    );
    let c = parse(&full).unwrap();
    assert!(
        matches!(&c.destination, Destination::Databricks { bulk: Some(b), .. } if b.volume == "landing.raw.files" && b.threshold == DEFAULT_BULK_THRESHOLD)
    );
    let off = full.replace("volume = ", "bulk = \"off\"\nvolume = ");
    let c = parse(&off).unwrap();
    assert!(matches!(
        &c.destination,
        Destination::Databricks { bulk: None, .. }
    ));
    assert_eq!(c.streams[0].batch_size, DEFAULT_BATCH_SIZE);

    // Problems, each at its line.
    let bad = good_databricks().replace(
        "schema = \"erp\"",
        "schema = \"erp\"\nbulk = \"always\"\nbulk_threshold = 0\nvolume = \"a.b\"",
    );
    let problems = parse(&bad).unwrap_err();
    let line_of = |needle: &str| bad.lines().position(|l| l.contains(needle)).unwrap() + 1;
    for (needle, says) in [
        ("bulk = ", "`auto`, `on` or `off`"),
        ("bulk_threshold", "1-10000000"),
        ("volume = ", "catalog.schema.volume"),
    ] {
        assert!(
            problems
                .iter()
                .any(|p| p.line == line_of(needle) && p.message.contains(says)),
            "{needle}: {problems:?}"
        );
    }
    let on_without_volume =
        good_databricks().replace("schema = \"erp\"", "schema = \"erp\"\nbulk = \"on\"");
    let problems = parse(&on_without_volume).unwrap_err();
    assert!(problems
        .iter()
        .any(|p| p.message.contains("needs `destination.volume`")));
    let sqlite = GOOD.replace(
        "path = \"warehouse.db\"",
        "path = \"warehouse.db\"\nvolume = \"v\"",
    );
    let problems = parse(&sqlite).unwrap_err();
    assert!(problems.iter().any(|p| p.line
        == sqlite
            .lines()
            .position(|l| l.starts_with("volume"))
            .unwrap()
            + 1
        && p.message.contains("kind = \"databricks\"")));
}
