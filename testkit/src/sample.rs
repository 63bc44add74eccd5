//! The sample site served by the testkit's PeopleSoft stand-in ("Northwind Forge", a
//! mid-sized manufacturer): its stream definitions, built the way a real site builds them —
//! start from the delivered domain defaults and fit them to the fields the site's queries
//! actually return.

use std::collections::HashSet;

use crate::dataset::{Dataset, FieldSpec, FieldType, TableSpec};
use crate::dataset::{
    TABLE_CUSTOMERS, TABLE_JOB, TABLE_JOURNAL_LINES, TABLE_PAYCHECKS, TABLE_PO_LINES, TABLE_VENDORS,
};
use peoplesoft_client::values::{mapping_from_field_metadata, FieldMeta};
use peoplesoft_client::{PromptFormat, QueryName, StreamDefinition};

/// The sample site's time zone (PeopleSoft stores local times).
pub const SITE_TIME_ZONE: &str = "America/Chicago";

/// (domain default, sample table) pairs, in load order.
pub fn sample_domains() -> Vec<(StreamDefinition, &'static str)> {
    vec![
        (StreamDefinition::vendors(), TABLE_VENDORS),
        (StreamDefinition::customers(), TABLE_CUSTOMERS),
        (StreamDefinition::purchase_order_lines(), TABLE_PO_LINES),
        (StreamDefinition::journal_lines(), TABLE_JOURNAL_LINES),
        (StreamDefinition::employees(), TABLE_JOB),
        (StreamDefinition::paychecks(), TABLE_PAYCHECKS),
    ]
}

fn meta(f: &FieldSpec) -> FieldMeta {
    FieldMeta {
        name: f.name.clone(),
        field_type: match f.field_type {
            FieldType::Character => "Character",
            FieldType::LongCharacter => "Long Character",
            FieldType::Number => "Number",
            FieldType::SignedNumber => "Signed Number",
            FieldType::Date => "Date",
            FieldType::DateTime => "Datetime",
        }
        .to_string(),
        length: f.length,
        decimals: f.decimals,
    }
}

/// Fits a domain default to the fields a site's query returns: keeps the default's column
/// mappings for fields the query has, derives columns for the query's other fields from their
/// PeopleSoft metadata, and takes the query's name, key and cursor field.
pub fn fit_to_query(
    mut def: StreamDefinition,
    spec: &TableSpec,
    time_zone: &str,
) -> StreamDefinition {
    let fields: HashSet<&str> = spec.fields.iter().map(|f| f.name.as_str()).collect();
    let flag = def
        .effective_dating
        .as_ref()
        .map(|e| e.current_flag_field.clone());
    def.mapping
        .columns
        .retain(|c| fields.contains(c.source.as_str()) || Some(&c.source) == flag.as_ref());
    let mapped: HashSet<String> = def
        .mapping
        .columns
        .iter()
        .map(|c| c.source.clone())
        .collect();
    let extra: Vec<FieldMeta> = spec
        .fields
        .iter()
        .filter(|f| !mapped.contains(&f.name))
        .map(meta)
        .collect();
    if !extra.is_empty() {
        let derived = mapping_from_field_metadata(def.mapping.table.clone(), &extra)
            .expect("sample field metadata maps to column types");
        def.mapping.columns.extend(derived.columns);
    }
    let snake = |s: &str| s.to_ascii_lowercase();
    def.key_fields = spec.key.clone();
    def.mapping.primary_key = spec.key.iter().map(|k| snake(k)).collect();
    def.cursor_field = spec.cursor.clone();
    def.mapping.cursor_column = Some(snake(&spec.cursor));
    def.query = QueryName::new(spec.query.clone()).expect("sample query names are valid");
    def.prompt_format = PromptFormat::NativeDateTime;
    def.sync_mapping_effective_dating();
    def.time_zone(time_zone).expect("valid zone")
}

/// The sample site's stream definitions.
pub fn sample_streams(dataset: &Dataset) -> Vec<StreamDefinition> {
    sample_domains()
        .into_iter()
        .map(|(def, table)| {
            let spec = dataset.table(table).expect("sample table").spec();
            fit_to_query(def, spec, SITE_TIME_ZONE)
        })
        .collect()
}
