//! [`Record`]: a source record as it arrives, field name → JSON value, with field names
//! shared by the records of one page.

use std::fmt;
use std::sync::Arc;

use serde::de::{Deserialize, Deserializer};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value as Json};

/// The field names of a [`Record`]: sorted and distinct, shared (reference-counted) by every
/// record built from the same names.
///
/// A source that parses a page of rows with the same fields builds the names once and each
/// record holds only its values, so a row costs no allocation per field name. Cloning is a
/// reference-count increment; [`FieldNames::same`] tells two records share one set, which
/// lets a [`Mapper`](crate::Mapper) reuse a field layout without comparing names.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct FieldNames(Arc<Vec<String>>);

impl FieldNames {
    /// Names from any order; duplicates are kept once. The order of a record's fields is
    /// always the sorted order of their names.
    pub fn new<I, S>(names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut v: Vec<String> = names.into_iter().map(Into::into).collect();
        v.sort_unstable();
        v.dedup();
        Self(Arc::new(v))
    }

    /// Number of names.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are no names.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The names, sorted.
    pub fn as_slice(&self) -> &[String] {
        &self.0
    }

    /// The position of `name` in [`as_slice`](Self::as_slice).
    pub fn position(&self, name: &str) -> Option<usize> {
        self.0.binary_search_by(|n| n.as_str().cmp(name)).ok()
    }

    /// True when both are the very same shared set (not merely equal names).
    pub fn same(&self, other: &FieldNames) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl fmt::Debug for FieldNames {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.iter()).finish()
    }
}

/// A source record as it arrives: field name → JSON value, iterated in the sorted order of
/// the names (as a [`serde_json::Map`] is).
///
/// PeopleSoft and Databricks both deliver rows as flat JSON objects, so this is the common
/// currency between a [`Source`](crate::Source) and a [`Mapper`](crate::Mapper). It has the
/// map methods a connector needs (`get`, `insert`, `remove`, `iter`, …), converts from and to
/// [`serde_json::Map`] and [`serde_json::Value`], and serialises as a JSON object. A source
/// reading many rows with the same fields builds them with [`Record::from_parts`] over one
/// [`FieldNames`].
#[derive(Clone, Default)]
pub struct Record {
    names: FieldNames,
    values: Vec<Json>,
}

impl Record {
    /// An empty record.
    pub fn new() -> Self {
        Self::default()
    }

    /// A record of `values`, one per name of `names`, in the names' (sorted) order.
    ///
    /// # Panics
    /// When the counts differ: that is a bug in the calling source, not bad data.
    pub fn from_parts(names: FieldNames, values: Vec<Json>) -> Self {
        assert_eq!(
            names.len(),
            values.len(),
            "Record::from_parts: {} names but {} values",
            names.len(),
            values.len()
        );
        Self { names, values }
    }

    /// The names and values, in the names' order.
    pub fn into_parts(self) -> (FieldNames, Vec<Json>) {
        (self.names, self.values)
    }

    /// The field names (shared with the records built from the same set).
    pub fn names(&self) -> &FieldNames {
        &self.names
    }

    /// Shares `names` when they equal this record's names (true), so later records of the
    /// same source compare by pointer; otherwise leaves the record as it is (false).
    pub fn adopt_names(&mut self, names: &FieldNames) -> bool {
        if self.names.same(names) {
            return true;
        }
        if self.names != *names {
            return false;
        }
        self.names = names.clone();
        true
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// True when the record has no field.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&Json> {
        self.names.position(key).map(|i| &self.values[i])
    }

    /// The value of `key`, mutable.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Json> {
        self.names.position(key).map(|i| &mut self.values[i])
    }

    /// The stored name and value of `key`.
    pub fn get_key_value(&self, key: &str) -> Option<(&String, &Json)> {
        self.names
            .position(key)
            .map(|i| (&self.names.0[i], &self.values[i]))
    }

    /// True when the record has `key`.
    pub fn contains_key(&self, key: &str) -> bool {
        self.names.position(key).is_some()
    }

    /// Sets `key` to `value`, returning the previous value. A new key un-shares the names
    /// (copy on write).
    pub fn insert(&mut self, key: String, value: Json) -> Option<Json> {
        match self.names.0.binary_search(&key) {
            Ok(i) => Some(std::mem::replace(&mut self.values[i], value)),
            Err(i) => {
                Arc::make_mut(&mut self.names.0).insert(i, key);
                self.values.insert(i, value);
                None
            }
        }
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<Json> {
        let i = self.names.position(key)?;
        Arc::make_mut(&mut self.names.0).remove(i);
        Some(self.values.remove(i))
    }

    /// Keeps the fields for which `keep` returns true.
    pub fn retain(&mut self, mut keep: impl FnMut(&String, &mut Json) -> bool) {
        let mut names = Vec::with_capacity(self.len());
        let mut values = Vec::with_capacity(self.len());
        for (k, mut v) in std::mem::take(self) {
            if keep(&k, &mut v) {
                names.push(k);
                values.push(v);
            }
        }
        *self = Self {
            names: FieldNames(Arc::new(names)),
            values,
        };
    }

    /// The fields, in name order.
    pub fn iter(&self) -> Iter<'_> {
        Iter(self.names.0.iter().zip(self.values.iter()))
    }

    /// The names, in order.
    pub fn keys(&self) -> std::slice::Iter<'_, String> {
        self.names.0.iter()
    }

    /// The values, in name order.
    pub fn values(&self) -> std::slice::Iter<'_, Json> {
        self.values.iter()
    }

    /// The values, mutable, in name order.
    pub fn values_mut(&mut self) -> std::slice::IterMut<'_, Json> {
        self.values.iter_mut()
    }
}

/// Iterator over a record's `(name, value)` pairs, in name order.
#[derive(Debug, Clone)]
pub struct Iter<'a>(std::iter::Zip<std::slice::Iter<'a, String>, std::slice::Iter<'a, Json>>);

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a String, &'a Json);
    fn next(&mut self) -> Option<Self::Item> {
        self.0.next()
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
    fn nth(&mut self, n: usize) -> Option<Self::Item> {
        self.0.nth(n)
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.0.next_back()
    }
}

impl<'a> IntoIterator for &'a Record {
    type Item = (&'a String, &'a Json);
    type IntoIter = Iter<'a>;
    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl IntoIterator for Record {
    type Item = (String, Json);
    type IntoIter = std::iter::Zip<std::vec::IntoIter<String>, std::vec::IntoIter<Json>>;
    fn into_iter(self) -> Self::IntoIter {
        let names = Arc::try_unwrap(self.names.0).unwrap_or_else(|shared| (*shared).clone());
        names.into_iter().zip(self.values)
    }
}

impl FromIterator<(String, Json)> for Record {
    fn from_iter<I: IntoIterator<Item = (String, Json)>>(iter: I) -> Self {
        // Through a map: sorted, and the last of equal names wins, as with `serde_json::Map`.
        iter.into_iter().collect::<Map<String, Json>>().into()
    }
}

impl Extend<(String, Json)> for Record {
    fn extend<I: IntoIterator<Item = (String, Json)>>(&mut self, iter: I) {
        for (k, v) in iter {
            self.insert(k, v);
        }
    }
}

impl From<Map<String, Json>> for Record {
    fn from(map: Map<String, Json>) -> Self {
        // `serde_json::Map` iterates in sorted order without duplicates (unless the
        // `preserve_order` feature is on somewhere in the build: then sort here).
        let mut pairs: Vec<(String, Json)> = map.into_iter().collect();
        if !pairs.windows(2).all(|w| w[0].0 < w[1].0) {
            pairs.sort_by(|a, b| a.0.cmp(&b.0));
        }
        let (names, values) = pairs.into_iter().unzip();
        Self {
            names: FieldNames(Arc::new(names)),
            values,
        }
    }
}

impl TryFrom<Json> for Record {
    type Error = Json;
    /// A JSON object becomes a record; any other value is handed back.
    fn try_from(v: Json) -> Result<Self, Json> {
        match v {
            Json::Object(m) => Ok(m.into()),
            other => Err(other),
        }
    }
}

impl std::ops::Index<&str> for Record {
    type Output = Json;
    /// The value of `key`.
    ///
    /// # Panics
    /// When the record has no such key (as indexing a [`serde_json::Map`] does).
    fn index(&self, key: &str) -> &Json {
        self.get(key)
            .unwrap_or_else(|| panic!("the record has no field `{key}`"))
    }
}

impl From<Record> for Map<String, Json> {
    fn from(r: Record) -> Self {
        r.into_iter().collect()
    }
}

impl From<Record> for Json {
    fn from(r: Record) -> Self {
        Json::Object(r.into())
    }
}

impl PartialEq for Record {
    fn eq(&self, other: &Self) -> bool {
        (self.names.same(&other.names) || self.names == other.names) && self.values == other.values
    }
}

impl fmt::Debug for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl Serialize for Record {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.len()))?;
        for (k, v) in self {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

impl<'de> Deserialize<'de> for Record {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Map::<String, Json>::deserialize(d).map(Into::into)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rec(v: Json) -> Record {
        v.as_object().unwrap().clone().into()
    }

    #[test]
    fn behaves_like_a_json_map() {
        let mut r = rec(json!({"b": 2, "a": "x"}));
        assert_eq!(r.keys().map(String::as_str).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(r.get("b"), Some(&json!(2)));
        assert_eq!(r.insert("c".into(), json!(null)), None);
        assert_eq!(r.insert("a".into(), json!("y")), Some(json!("x")));
        assert_eq!(r.remove("b"), Some(json!(2)));
        assert!(!r.contains_key("b"));
        assert_eq!(serde_json::to_string(&r).unwrap(), r#"{"a":"y","c":null}"#);
        let back: Record = serde_json::from_str(r#"{"c":null,"a":"y"}"#).unwrap();
        assert_eq!(back, r);
        assert_eq!(Json::from(r.clone()), json!({"a": "y", "c": null}));
        r.retain(|k, _| k == "c");
        assert_eq!(r, rec(json!({"c": null})));
    }

    #[test]
    fn shared_names_are_copied_on_write_only() {
        let names = FieldNames::new(["B", "A", "B"]);
        assert_eq!(names.as_slice(), ["A", "B"]);
        let one = Record::from_parts(names.clone(), vec![json!(1), json!(2)]);
        let mut two = Record::from_parts(names.clone(), vec![json!(3), json!(4)]);
        assert!(one.names().same(two.names()));
        two.insert("C".into(), json!(5));
        assert!(!one.names().same(two.names()));
        assert_eq!(one.names().as_slice(), ["A", "B"]);
        let mut three = rec(json!({"A": 0, "B": 0}));
        assert!(!three.names().same(&names));
        assert!(three.adopt_names(&names));
        assert!(three.names().same(&names));
        assert!(!two.adopt_names(&names));
        assert_eq!(two.get("C"), Some(&json!(5)));
        // Equality is by content, not by sharing.
        assert_eq!(one, rec(json!({"A": 1, "B": 2})));
        assert_ne!(one, rec(json!({"A": 1, "B": 3})));
    }

    #[test]
    #[should_panic(expected = "2 names but 1 values")]
    fn parts_must_match() {
        let _ = Record::from_parts(FieldNames::new(["a", "b"]), vec![json!(1)]);
    }
}
