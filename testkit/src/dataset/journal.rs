//! An index-addressable generator of any number of journal lines, for benchmarks.

use std::ops::Range;
use std::sync::Arc;

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, TimeZone, Utc};
use rust_decimal::Decimal;
use serde_json::Value;

use super::gen::{journal_spec, long_description};
use super::{Row, TableSpec, BUSINESS_UNITS};
use crate::sitetime;

const BU_DEPTS: [&[&str]; 4] = [
    &["10000", "11000", "12000"],
    &["20100", "20200"],
    &["30100", "30200"],
    &["40100", "40200"],
];
const ACCOUNTS: &[&str] = &[
    "100100", "120000", "140000", "150000", "200000", "210000", "400000", "500100", "510000",
    "600100", "610000", "620000",
];
const STATUSES: &[&str] = &["P", "P", "P", "P", "P", "P", "N", "V"];
const DESCRS: &[&str] = &[
    "Accrue utilities",
    "Reclass freight to COGS",
    "Month-end labor accrual",
    "Depreciation — plant equipment",
    "Intercompany US001/CAN01",
    "Correcting entry per O'Brien's memo",
    "Scrap write-off\r\nsee ticket #4411",
    "Path C:\\GL\\uploads\\jan.csv",
    " ",
    "Müller GmbH invoice 2025-0042",
    "'; DROP TABLE x; --",
    "Inventory count adj. \"cycle 7\"",
    "東京精機 tooling rebate",
    "Freight Gary → Hamilton",
];

/// Any number of journal lines (table `journal_lines`, the same fields as the sample table),
/// computed from `(seed, index)` on demand: nothing is stored per row, so 10 million lines cost
/// no more memory than ten.
///
/// Lines come in journals of [`lines_per_journal`](JournalLines::lines_per_journal) (default 10)
/// that share one `DTTM_STAMP_SEC` and balance to zero. Index order is wire order (cursor, then
/// key). Journal `j` (0-based) has cursor `start + span * j / journals`; by default journals are
/// one second apart from 2026-01-05 00:00 site time (2026-01-05T06:00:00Z). Journal 4 carries
/// `12345678901234.56` / `-12345678901234.56`; the first line of journal 7, 1007, 2007, … has a
/// 3000-character description; the other descriptions include quotes, backslashes, CR/LF and
/// unicode.
#[derive(Debug, Clone)]
pub struct JournalLines {
    seed: u64,
    len: u64,
    per: u64,
    start: DateTime<Utc>,
    span_us: i64,
    spec: Arc<TableSpec>,
    descr_json: Vec<String>,
    long_json: String,
    keys: Vec<String>,
}

impl JournalLines {
    /// `len` lines from `seed`, journals one second apart from 2026-01-05 00:00 site time.
    pub fn new(seed: u64, len: u64) -> JournalLines {
        let start = Utc.with_ymd_and_hms(2026, 1, 5, 6, 0, 0).unwrap();
        let journals = len.div_ceil(10).max(1);
        JournalLines::with_layout(seed, len, 10, start, Duration::seconds(journals as i64))
    }

    /// `len` lines in journals of `lines_per_journal`, their cursors spread evenly over
    /// `[start, start + span)`.
    ///
    /// # Panics
    /// When `lines_per_journal` is 0, when `span` gives journals less than one microsecond
    /// apart, or when the span contains a daylight-saving fall-back (site-local time would not
    /// be monotonic, and the server serves this table by binary search on local time).
    pub fn with_layout(
        seed: u64,
        len: u64,
        lines_per_journal: u64,
        start: DateTime<Utc>,
        span: Duration,
    ) -> JournalLines {
        assert!(lines_per_journal > 0, "lines_per_journal must be positive");
        let span_us = span.num_microseconds().unwrap_or(i64::MAX);
        let journals = len.div_ceil(lines_per_journal).max(1);
        assert!(
            span_us >= journals as i64,
            "span {span} is too short for {journals} distinct journal cursors"
        );
        let mut t = start;
        let end = start + span;
        let mut off = offset_secs(t);
        while t < end {
            let next = (t + Duration::hours(1)).min(end);
            let o = offset_secs(next);
            assert!(
                o >= off,
                "journal span {start}..{end} crosses a daylight-saving fall-back near {next}"
            );
            off = o;
            t = next;
            if t == end {
                break;
            }
        }
        let json = |s: &str| serde_json::to_string(s).unwrap_or_default();
        let spec = journal_spec();
        let keys = spec
            .fields
            .iter()
            .map(|f| format!("\"{}\":", f.unique_name()))
            .collect();
        JournalLines {
            seed,
            len,
            per: lines_per_journal,
            start,
            span_us,
            spec: Arc::new(spec),
            descr_json: DESCRS.iter().map(|d| json(d)).collect(),
            long_json: json(&long_description()),
            keys,
        }
    }

    /// The table description (name `journal_lines`, query `MLC_JOURNAL_LINES`).
    pub fn spec(&self) -> &TableSpec {
        &self.spec
    }

    /// Number of lines.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when there are no lines.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Lines per journal.
    pub fn lines_per_journal(&self) -> u64 {
        self.per
    }

    fn journals(&self) -> u64 {
        self.len.div_ceil(self.per).max(1)
    }

    fn journal_cursor(&self, j: u64) -> DateTime<Utc> {
        let us = (self.span_us as i128 * j as i128 / self.journals() as i128) as i64;
        self.start + Duration::microseconds(us)
    }

    /// The cursor (`DTTM_STAMP_SEC`) of line `i`.
    pub fn cursor(&self, i: u64) -> DateTime<Utc> {
        self.journal_cursor(i / self.per)
    }

    /// The first and the last cursor, or `None` when empty.
    pub fn cursor_range(&self) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        (self.len > 0).then(|| (self.cursor(0), self.cursor(self.len - 1)))
    }

    /// The index range of the lines with site-local cursor in `[from, to)` (open when `None`):
    /// exactly what the QAS stand-in serves for those prompt values.
    pub fn index_range_local(
        &self,
        from: Option<NaiveDateTime>,
        to: Option<NaiveDateTime>,
    ) -> Range<u64> {
        let first_at_or_after = |bound: Option<NaiveDateTime>, dflt: u64| -> u64 {
            let Some(b) = bound else { return dflt };
            let (mut lo, mut hi) = (0u64, self.journals());
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                if sitetime::to_local(self.journal_cursor(mid)) < b {
                    lo = mid + 1;
                } else {
                    hi = mid;
                }
            }
            (lo * self.per).min(self.len)
        };
        let a = first_at_or_after(from, 0);
        let b = first_at_or_after(to, self.len);
        a..b.max(a)
    }

    /// The index range of the lines whose UTC cursor is in `[from, to)`.
    pub fn index_range(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Range<u64> {
        self.index_range_local(Some(sitetime::to_local(from)), Some(sitetime::to_local(to)))
    }

    /// Line `i` as a [`Row`].
    ///
    /// # Panics
    /// When `i >= len`.
    pub fn row(&self, i: u64) -> Row {
        assert!(i < self.len, "line {i} out of range (len {})", self.len);
        let j = Journal::new(self, i / self.per);
        let l = (i % self.per) as usize;
        let cursor = self.journal_cursor(j.index);
        let descr = match j.descr(l) {
            Descr::Long => long_description(),
            Descr::Pool(k) => DESCRS[k].to_string(),
        };
        let amt = Value::String(Decimal::new(j.amounts[l], 2).to_string());
        let vals = vec![
            Value::String(j.bu.to_string()),
            Value::String(format!("{:010}", j.index + 1)),
            Value::String(sitetime::date_text(j.date)),
            Value::from(0),
            Value::from(l as i64 + 1),
            Value::String("ACTUALS".into()),
            Value::String(j.account(l).to_string()),
            Value::String(j.dept(l).to_string()),
            amt.clone(),
            amt,
            Value::String(j.currency.to_string()),
            Value::String(descr),
            Value::String(j.status.to_string()),
            Value::Null,
        ];
        Row::new(Arc::clone(&self.spec), vals, cursor)
    }

    /// All lines in order, generated one at a time.
    pub fn iter(&self) -> impl Iterator<Item = Row> + '_ {
        (0..self.len).map(move |i| self.row(i))
    }

    /// Appends the wire JSON of lines `range` to `out`, comma-separated, numbered from
    /// `first_rownumber`: the server's fast path (no intermediate values).
    pub(crate) fn write_json(&self, range: Range<u64>, first_rownumber: u64, out: &mut Vec<u8>) {
        let mut rownumber = first_rownumber;
        let mut i = range.start;
        let mut first = true;
        let mut scratch = String::with_capacity(32);
        while i < range.end {
            let j = Journal::new(self, i / self.per);
            let cursor_text = sitetime::native(self.journal_cursor(j.index));
            let journal_id = format!("{:010}", j.index + 1);
            let date = date_text(j.date);
            let l_end = ((j.index + 1) * self.per).min(range.end);
            while i < l_end {
                let l = (i % self.per) as usize;
                if !first {
                    out.push(b',');
                }
                first = false;
                out.extend_from_slice(b"{\"attr:rownumber\":");
                push_u64(out, rownumber);
                let k = &self.keys;
                let str_field = |out: &mut Vec<u8>, idx: usize, v: &str| {
                    out.push(b',');
                    out.extend_from_slice(k[idx].as_bytes());
                    out.push(b'"');
                    out.extend_from_slice(v.as_bytes());
                    out.push(b'"');
                };
                str_field(out, 0, j.bu);
                str_field(out, 1, &journal_id);
                str_field(out, 2, &date);
                out.push(b',');
                out.extend_from_slice(k[3].as_bytes());
                out.push(b'0');
                out.push(b',');
                out.extend_from_slice(k[4].as_bytes());
                push_u64(out, l as u64 + 1);
                str_field(out, 5, "ACTUALS");
                str_field(out, 6, j.account(l));
                str_field(out, 7, j.dept(l));
                scratch.clear();
                push_cents(&mut scratch, j.amounts[l]);
                str_field(out, 8, &scratch);
                str_field(out, 9, &scratch);
                str_field(out, 10, j.currency);
                out.push(b',');
                out.extend_from_slice(k[11].as_bytes());
                match j.descr(l) {
                    Descr::Long => out.extend_from_slice(self.long_json.as_bytes()),
                    Descr::Pool(d) => out.extend_from_slice(self.descr_json[d].as_bytes()),
                }
                str_field(out, 12, j.status);
                str_field(out, 13, &cursor_text);
                out.push(b'}');
                rownumber += 1;
                i += 1;
            }
        }
    }
}

fn offset_secs(t: DateTime<Utc>) -> i32 {
    use chrono::Offset;
    t.with_timezone(&sitetime::SITE_TIME_ZONE)
        .offset()
        .fix()
        .local_minus_utc()
}

fn mix(mut z: u64) -> u64 {
    // splitmix64 finaliser
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

enum Descr {
    Long,
    Pool(usize),
}

struct Journal {
    index: u64,
    h: u64,
    bu_i: usize,
    bu: &'static str,
    date: NaiveDate,
    status: &'static str,
    currency: &'static str,
    amounts: Vec<i64>,
}

impl Journal {
    fn new(g: &JournalLines, index: u64) -> Journal {
        let h = mix(g.seed ^ mix(index));
        let bu_i = (h % 4) as usize;
        let lines = (g.len - index * g.per).min(g.per) as usize;
        let date = sitetime::to_local(g.journal_cursor(index)).date()
            - Duration::days(((h >> 8) % 3) as i64);
        let mut amounts = Vec::with_capacity(lines);
        if index == 4 && lines >= 2 {
            amounts.push(1_234_567_890_123_456);
            amounts.push(-1_234_567_890_123_456);
            amounts.resize(lines, 0);
        } else {
            for l in 0..lines.saturating_sub(1) {
                let x = mix(h ^ (l as u64 + 1));
                let c = (x % 50_000_000) as i64 + 1;
                amounts.push(if x & (1 << 40) != 0 { -c } else { c });
            }
            if lines >= 2 {
                let sum: i64 = amounts.iter().sum();
                amounts.push(-sum);
            } else if lines == 1 {
                amounts.push((mix(h ^ 99) % 10_000_000) as i64 - 5_000_000);
            }
        }
        Journal {
            index,
            h,
            bu_i,
            bu: BUSINESS_UNITS[bu_i],
            date,
            status: STATUSES[((h >> 16) % STATUSES.len() as u64) as usize],
            currency: if bu_i == 3 { "CAD" } else { "USD" },
            amounts,
        }
    }

    fn line_hash(&self, l: usize) -> u64 {
        mix(self.h ^ ((l as u64 + 1) << 32))
    }

    fn account(&self, l: usize) -> &'static str {
        ACCOUNTS[(self.line_hash(l) % ACCOUNTS.len() as u64) as usize]
    }

    fn dept(&self, l: usize) -> &'static str {
        let d = BU_DEPTS[self.bu_i];
        d[((self.line_hash(l) >> 12) % d.len() as u64) as usize]
    }

    fn descr(&self, l: usize) -> Descr {
        if self.index % 1000 == 7 && l == 0 {
            Descr::Long
        } else {
            Descr::Pool(((self.line_hash(l) >> 24) % DESCRS.len() as u64) as usize)
        }
    }
}

fn push_u64(out: &mut Vec<u8>, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// `-1234.05` from `-123405`, the same text as `Decimal::new(c, 2).to_string()`.
fn push_cents(out: &mut String, c: i64) {
    let mut buf = [0u8; 24];
    let mut i = buf.len();
    let mut a = c.unsigned_abs();
    for k in 0.. {
        if k == 2 {
            i -= 1;
            buf[i] = b'.';
        }
        i -= 1;
        buf[i] = b'0' + (a % 10) as u8;
        a /= 10;
        if a == 0 && k >= 2 {
            break;
        }
    }
    if c < 0 {
        i -= 1;
        buf[i] = b'-';
    }
    // Only ASCII digits, '.' and '-' were written.
    out.push_str(std::str::from_utf8(&buf[i..]).unwrap_or_default());
}

fn date_text(d: NaiveDate) -> String {
    let mut s = String::with_capacity(10);
    use std::fmt::Write as _;
    let _ = write!(s, "{:04}-{:02}-{:02}", d.year(), d.month(), d.day());
    s
}

#[cfg(test)]
pub(super) fn push_cents_for_test(out: &mut String, c: i64) {
    push_cents(out, c)
}
