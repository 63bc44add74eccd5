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

/// A stable 128-bit hash (two FNV-1a lanes) of a row's canonical form, as 32 hex digits.
/// Stable across runs, platforms and Rust versions, unlike `std`'s hasher.
pub fn row_hash(row: &[Value]) -> String {
    row_hash_except(row, None)
}

/// [`row_hash`] without the column at `skip`: a value the target derives on its own (the
/// current flag of an effective-dated table) must not make a row look changed.
pub(crate) fn row_hash_except(row: &[Value], skip: Option<usize>) -> String {
    let mut text = String::with_capacity(row.len() * 16);
    for (i, v) in row.iter().enumerate() {
        if Some(i) == skip {
            continue;
        }
        v.write_canonical(&mut text);
    }
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
    use super::*;

    #[test]
    fn row_hash_is_stable_and_sensitive() {
        let a = vec![Value::String("x".into()), Value::BigInt(1)];
        let b = vec![Value::String("x".into()), Value::BigInt(2)];
        assert_eq!(row_hash(&a), row_hash(&a.clone()));
        assert_ne!(row_hash(&a), row_hash(&b));
        assert_eq!(row_hash(&a).len(), 32);
        // Pinned: the hash is part of the stored data and must never change.
        assert_eq!(
            row_hash(&[]),
            "cbf29ce484222325".to_string() + "6c62272e07bb0142"
        );
    }
}
