//! Type-normalised value text for `ferry compare`.
//!
//! The same logical value reads back differently from different engines and types
//! (`1.50` vs `1.5000`, `t` vs `1`, `{"a": 1}` vs `{"a":1}`, CHAR padding). Both sides
//! are reduced to one canonical text before hashing, so a cross-engine copy compares
//! equal exactly when the values are equal.

use crate::{LogicalType, Value};
use xxhash_rust::xxh3::xxh3_128;

/// Appends the canonical form of `v` (read from a column of type `ty`) to `out`.
pub fn canonical(v: &Value, ty: &LogicalType, out: &mut Vec<u8>) {
    match v {
        Value::Null => out.extend_from_slice(b"\x00N"),
        Value::Bool(b) => out.push(if *b { b'1' } else { b'0' }),
        Value::Int(i) => out.extend_from_slice(i.to_string().as_bytes()),
        Value::UInt(u) => out.extend_from_slice(u.to_string().as_bytes()),
        Value::F32(f) => float(*f as f64, Some(*f), out),
        Value::F64(f) => float(*f, None, out),
        Value::Decimal(s) => out.extend_from_slice(decimal(s).as_bytes()),
        Value::Text(s) => {
            let s = if matches!(ty, LogicalType::Char(_)) {
                s.trim_end_matches(' ')
            } else {
                s
            };
            out.extend_from_slice(s.as_bytes())
        }
        Value::Bytes(b) => out.extend_from_slice(crate::value::hex(b).as_bytes()),
        Value::Time(s) | Value::Timestamp(s) | Value::TimestampTz(s) => {
            out.extend_from_slice(trim_fraction(s).as_bytes())
        }
        Value::Date(s) | Value::Interval(s) | Value::Bits(s) => out.extend_from_slice(s.as_bytes()),
        Value::Json(s) => match serde_json::from_str::<serde_json::Value>(s) {
            Ok(j) => json(&j, out),
            Err(_) => out.extend_from_slice(s.as_bytes()),
        },
    }
}

/// A JSON document with sorted keys, no spacing and every number in one form: the
/// same number reads `1e300` from MySQL and `1000…0` from jsonb, `0.10` and `1.0E-1`.
fn json(v: &serde_json::Value, out: &mut Vec<u8>) {
    use serde_json::Value as J;
    match v {
        J::Number(n) => out.extend_from_slice(number(&n.to_string()).as_bytes()),
        J::Array(a) => {
            out.push(b'[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                json(x, out);
            }
            out.push(b']');
        }
        J::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(J::String(k.clone()).to_string().as_bytes());
                out.push(b':');
                json(&m[k], out);
            }
            out.push(b'}');
        }
        other => out.extend_from_slice(other.to_string().as_bytes()),
    }
}

/// A JSON number's text as `[-]0.DIGITSeEXP` (no leading or trailing zeros in DIGITS);
/// zero (also `-0.0`) is `0`.
fn number(s: &str) -> String {
    let (neg, body) = match s.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, s),
    };
    let (mant, exp) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], body[i + 1..].parse::<i64>().unwrap_or(0)),
        None => (body, 0),
    };
    let (int, frac) = mant.split_once('.').unwrap_or((mant, ""));
    let digits: String = format!("{int}{frac}");
    let lead = digits.len() - digits.trim_start_matches('0').len();
    let digits = digits.trim_start_matches('0').trim_end_matches('0');
    if digits.is_empty() {
        return "0".into();
    }
    // value = 0.DIGITS × 10^point
    let point = int.len() as i64 - lead as i64 + exp;
    format!("{}0.{digits}e{point}", if neg { "-" } else { "" })
}

fn float(f: f64, single: Option<f32>, out: &mut Vec<u8>) {
    let s = if f.is_nan() {
        "NaN".to_string()
    } else if f.is_infinite() {
        if f > 0.0 { "Infinity" } else { "-Infinity" }.to_string()
    } else if let Some(x) = single {
        format!("{x:?}")
    } else {
        format!("{f:?}")
    };
    out.extend_from_slice(s.as_bytes());
}

/// `-001.2300` → `-1.23`; `0.000` → `0`; `NaN` unchanged.
pub fn decimal(s: &str) -> String {
    let (neg, body) = match s.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if !body
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_digit() || b == b'.')
    {
        return s.to_string();
    }
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    let int = int.trim_start_matches('0');
    let frac = frac.trim_end_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    let mut r = String::new();
    if neg && !(int == "0" && frac.is_empty()) {
        r.push('-');
    }
    r.push_str(int);
    if !frac.is_empty() {
        r.push('.');
        r.push_str(frac);
    }
    r
}

/// `12:00:00.500000` → `12:00:00.5`; `12:00:00.000` → `12:00:00`.
pub fn trim_fraction(s: &str) -> &str {
    // the fraction sits after the last ':'-separated seconds field; a zone suffix
    // never reaches here (instants are carried in UTC without an offset)
    match s.rfind('.') {
        Some(dot) if s[dot + 1..].bytes().all(|b| b.is_ascii_digit()) && s[..dot].contains(':') => {
            let t = s.trim_end_matches('0');
            t.strip_suffix('.').unwrap_or(t)
        }
        _ => s,
    }
}

/// An order-independent digest of a multiset of rows: the wrapping sum of each row's
/// 128-bit hash, plus the row count. Equal multisets give equal digests whatever order
/// either side returns its rows in; duplicates count (a sum does not cancel them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Digest {
    /// Rows seen.
    pub rows: u64,
    /// Wrapping sum of row hashes.
    pub sum: u128,
}

impl Digest {
    /// Adds one row, given as values and their column types.
    pub fn add_row(&mut self, values: &[Value], types: &[&LogicalType], buf: &mut Vec<u8>) {
        buf.clear();
        for (v, t) in values.iter().zip(types) {
            canonical(v, t, buf);
            buf.push(0x1f);
        }
        self.rows += 1;
        self.sum = self.sum.wrapping_add(xxh3_128(buf));
    }

    /// Combines two digests of disjoint row sets.
    pub fn merge(&mut self, other: Digest) {
        self.rows += other.rows;
        self.sum = self.sum.wrapping_add(other.sum);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_numbers_in_one_form() {
        assert_eq!(number("1e300"), number(&format!("1{}", "0".repeat(300))));
        assert_eq!(number("-1.5E-10"), number("-0.00000000015"));
        assert_eq!(number("0.10"), number("0.1"));
        assert_eq!(number("-0.0"), "0");
        assert_eq!(number("120"), "0.12e3");
        assert_ne!(number("12"), number("1.2"));
        let c = |s: &str| {
            let mut o = Vec::new();
            canonical(&Value::Json(s.into()), &LogicalType::Json, &mut o);
            o
        };
        assert_eq!(
            c(r#"{"b": [1e-7, 0.10], "a": "x"}"#),
            c(r#"{"a":"x","b":[1.0E-7,0.1]}"#)
        );
    }
    use proptest::prelude::*;

    fn canon(v: Value, t: LogicalType) -> String {
        let mut o = Vec::new();
        canonical(&v, &t, &mut o);
        String::from_utf8(o).unwrap()
    }

    #[test]
    fn normalises_across_engines() {
        assert_eq!(decimal("1.5000"), "1.5");
        assert_eq!(decimal("-0.000"), "0");
        assert_eq!(decimal("007"), "7");
        assert_eq!(decimal("NaN"), "NaN");
        assert_eq!(
            trim_fraction("2024-01-01 12:00:00.500000"),
            "2024-01-01 12:00:00.5"
        );
        assert_eq!(trim_fraction("838:59:59.000000"), "838:59:59");
        assert_eq!(trim_fraction("2024-01-01"), "2024-01-01");
        assert_eq!(
            canon(
                Value::Json(r#"{"b": 1, "a": [1, 2]}"#.into()),
                LogicalType::Json
            ),
            canon(
                Value::Json(r#"{"a":[1,2],"b":1}"#.into()),
                LogicalType::Json
            )
        );
        assert_eq!(
            canon(Value::Bool(true), LogicalType::Bool),
            canon(
                Value::Int(1),
                LogicalType::Int {
                    bytes: 1,
                    unsigned: false
                }
            )
        );
        assert_eq!(
            canon(Value::Text("ab   ".into()), LogicalType::Char(Some(5))),
            canon(Value::Text("ab".into()), LogicalType::Char(Some(5)))
        );
        assert_ne!(
            canon(Value::Text("".into()), LogicalType::Text),
            canon(Value::Null, LogicalType::Text)
        );
    }

    #[test]
    fn digest_is_order_independent_but_counts_duplicates() {
        let t = LogicalType::Text;
        let mut buf = Vec::new();
        let rows: Vec<Vec<Value>> = (0..5).map(|i| vec![Value::Int(i)]).collect();
        let (mut a, mut b, mut c) = (Digest::default(), Digest::default(), Digest::default());
        for r in &rows {
            a.add_row(r, &[&t], &mut buf);
        }
        for r in rows.iter().rev() {
            b.add_row(r, &[&t], &mut buf);
        }
        assert_eq!(a, b);
        for r in rows.iter().chain(rows.iter().take(1)) {
            c.add_row(r, &[&t], &mut buf);
        }
        assert_ne!(a, c);
    }

    proptest! {
        #[test]
        fn decimal_canonical_is_idempotent(i in any::<i64>(), f in 0u32..1_000_000, z in 0usize..5) {
            let s = format!("{i}.{f:06}{}", "0".repeat(z));
            let once = decimal(&s);
            prop_assert_eq!(decimal(&once), once.clone());
            let back: f64 = once.parse().unwrap();
            let orig: f64 = s.parse().unwrap();
            prop_assert_eq!(back, orig);
        }
    }
}
