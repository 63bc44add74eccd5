//! The stable row hash stored in `_ml_row_hash`.

use crate::schema::TableSchema;
use crate::value::Value;

/// The mapped column whose value the target derives on its own, left out of the row hash:
/// the current flag of an effective-dated table (the sink recomputes it across windows).
pub(crate) fn derived_column(schema: &TableSchema) -> Option<usize> {
    schema
        .effective_dating
        .as_ref()
        .and_then(|ed| schema.index_of(&ed.current_column))
}

/// The stable hash of a row, stored in `_ml_row_hash`: 32 lowercase hex digits.
///
/// It is XXH3-128 ([`xxhash-rust`](https://docs.rs/xxhash-rust), seed 0) over the row's
/// canonical text: each value's [`Value::write_canonical`] form, concatenated in column
/// order with nothing in between. The canonical forms are type-tagged and self-delimiting:
///
/// | Value | Canonical text |
/// |---|---|
/// | NULL | `N;` |
/// | string `s` | `S{byte length}:{s};` |
/// | INT / BIGINT | `I{n};` / `L{n};` |
/// | DECIMAL | `D{normalised decimal};` (`1.50` → `D1.5;`) |
/// | DOUBLE | `F{IEEE-754 bits as u64};` |
/// | BOOLEAN | `B1;` / `B0;` |
/// | DATE | `T{YYYY-MM-DD};` |
/// | TIMESTAMP | `Z{microseconds since the Unix epoch};` |
///
/// The value is stable across runs, platforms and Rust versions (unlike `std`'s hasher) and
/// is part of the stored data: a sink or a tool outside this crate that computes it the same
/// way gets the same text. Rows written before 0.2 hold an older form; compare stored hashes
/// with [`row_hash_matches`], which accepts both.
pub fn row_hash(row: &[Value]) -> String {
    row_hash_except(row, None)
}

/// True when `stored` is the hash of `row`: its [`row_hash`], or the form written by
/// versions before 0.2 (two FNV-1a lanes over the same canonical text), so data loaded before
/// an upgrade is not reported as changed. New hashes are always written in the current form.
pub fn row_hash_matches(stored: &str, row: &[Value]) -> bool {
    let text = canonical_text(row, None);
    stored == format_hash(&text) || stored == legacy_hash(&text)
}

/// [`row_hash`] without the column at `skip`: a value the target derives on its own (the
/// current flag of an effective-dated table) must not make a row look changed.
pub(crate) fn row_hash_except(row: &[Value], skip: Option<usize>) -> String {
    // Called once per loaded row: the canonical text goes into one buffer per thread.
    thread_local! {
        static TEXT: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
    }
    TEXT.with_borrow_mut(|text| {
        text.clear();
        write_canonical_text(text, row, skip);
        format_hash(text)
    })
}

/// [`row_hash_matches`] without the column at `skip`.
pub(crate) fn row_hash_matches_except(stored: &str, row: &[Value], skip: Option<usize>) -> bool {
    let text = canonical_text(row, skip);
    stored == format_hash(&text) || stored == legacy_hash(&text)
}

/// The pre-0.2 form of [`row_hash_except`], to recognise rows keyed by their hash before an
/// upgrade (streams without a primary key).
pub(crate) fn legacy_row_hash_except(row: &[Value], skip: Option<usize>) -> String {
    legacy_hash(&canonical_text(row, skip))
}

/// The row's canonical text, without the column at `skip`.
fn canonical_text(row: &[Value], skip: Option<usize>) -> String {
    let mut text = String::with_capacity(row.len() * 16);
    write_canonical_text(&mut text, row, skip);
    text
}

fn write_canonical_text(text: &mut String, row: &[Value], skip: Option<usize>) {
    for (i, v) in row.iter().enumerate() {
        if Some(i) != skip {
            v.write_canonical(text);
        }
    }
}

/// XXH3-128 of `text` as 32 lowercase hex digits (what `format!("{:032x}")` gives).
fn format_hash(text: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let h = xxhash_rust::xxh3::xxh3_128(text.as_bytes());
    let mut out = String::with_capacity(32);
    for shift in (0..32).rev() {
        out.push(char::from(HEX[((h >> (shift * 4)) & 0xf) as usize]));
    }
    out
}

/// The row hash written before 0.2 (two FNV-1a lanes): read-only compatibility, so stored
/// hashes keep matching; never written.
fn legacy_hash(text: &str) -> String {
    let mut a: u64 = 0xcbf2_9ce4_8422_2325;
    let mut b: u64 = 0x6c62_272e_07bb_0142;
    for &byte in text.as_bytes() {
        a = (a ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
        b = (b ^ u64::from(byte))
            .wrapping_mul(0x0000_0100_0000_01b3)
            .rotate_left(5);
    }
    format!("{a:016x}{b:016x}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn hex_form_is_the_formatted_one() {
        for text in ["", "N;", "S3:abc;L-12;", "Z1767225600000000;"] {
            assert_eq!(
                super::format_hash(text),
                format!("{:032x}", xxhash_rust::xxh3::xxh3_128(text.as_bytes()))
            );
        }
    }

    use super::*;

    fn sample() -> Vec<Value> {
        vec![Value::String("x".into()), Value::BigInt(1)]
    }

    #[test]
    fn row_hash_is_stable_and_sensitive() {
        let a = sample();
        let b = vec![Value::String("x".into()), Value::BigInt(2)];
        assert_eq!(row_hash(&a), row_hash(&a.clone()));
        assert_ne!(row_hash(&a), row_hash(&b));
        assert_eq!(row_hash(&a).len(), 32);
        // Pinned: the hash is part of the stored data and must never change.
        assert_eq!(canonical_text(&a, None), "S1:x;L1;");
        assert_eq!(row_hash(&[]), "99aa06d3014798d86001c324468d497f");
        assert_eq!(row_hash(&a), "8b325a15b7cdbba67ae7ddf95f1f6b1f");
    }

    #[test]
    fn hashes_stored_before_0_2_still_match() {
        let a = sample();
        // What 0.1 wrote for these rows (pinned in its own tests).
        assert!(row_hash_matches(
            &("cbf29ce484222325".to_string() + "6c62272e07bb0142"),
            &[]
        ));
        assert!(row_hash_matches(&legacy_hash("S1:x;L1;"), &a));
        assert!(row_hash_matches(&row_hash(&a), &a));
        assert!(!row_hash_matches(&row_hash(&[]), &a));
        assert!(row_hash_matches_except(
            &row_hash(&a[..1]),
            &[a[0].clone(), Value::Bool(true)],
            Some(1)
        ));
    }
}
