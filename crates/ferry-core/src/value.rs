//! One column value in flight between engines.
//!
//! Temporal and decimal values are carried as their exact text (ISO forms), never as
//! floats or lossy structs: MySQL's zero dates and 838-hour TIMEs, PostgreSQL's BC dates,
//! `infinity` and unconstrained NUMERIC all survive unchanged until a target decides
//! whether it can hold them — and refuses loudly if it cannot.

/// A column value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL NULL (distinct from the empty string).
    Null,
    /// BOOLEAN.
    Bool(bool),
    /// Any signed integer type.
    Int(i64),
    /// Unsigned integers beyond `i64` (MySQL BIGINT UNSIGNED).
    UInt(u64),
    /// Single-precision float.
    F32(f32),
    /// Double-precision float.
    F64(f64),
    /// Exact decimal text: `-12.3400`, or `NaN` / `Infinity` / `-Infinity`.
    Decimal(String),
    /// Character data (always valid UTF-8 here: sources convert their charsets).
    Text(String),
    /// Binary data.
    Bytes(Vec<u8>),
    /// `YYYY-MM-DD` (maybe `0000-00-00`, `… BC`, `infinity`).
    Date(String),
    /// Time of day or duration: `[-]H+:MM:SS[.ffffff]`.
    Time(String),
    /// Timestamp without time zone: `YYYY-MM-DD HH:MM:SS[.ffffff]`.
    Timestamp(String),
    /// Instant in UTC: `YYYY-MM-DD HH:MM:SS[.ffffff]` (no offset; always UTC).
    TimestampTz(String),
    /// PostgreSQL interval in its `postgres` output style.
    Interval(String),
    /// JSON document text.
    Json(String),
    /// Bit string, most significant bit first: `0101`.
    Bits(String),
}

impl Value {
    /// True for SQL NULL.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// A short human rendering for error messages (truncated, binary as hex).
    pub fn describe(&self) -> String {
        let s = match self {
            Value::Null => "NULL".to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::UInt(u) => u.to_string(),
            Value::F32(f) => f.to_string(),
            Value::F64(f) => f.to_string(),
            Value::Bytes(b) => format!("0x{}", hex(&b[..b.len().min(32)])),
            Value::Decimal(s)
            | Value::Text(s)
            | Value::Date(s)
            | Value::Time(s)
            | Value::Timestamp(s)
            | Value::TimestampTz(s)
            | Value::Interval(s)
            | Value::Json(s)
            | Value::Bits(s) => format!("{s:?}"),
        };
        if s.chars().count() > 80 {
            format!("{}…", s.chars().take(80).collect::<String>())
        } else {
            s
        }
    }
}

/// Lower-case hex of `b`.
pub fn hex(b: &[u8]) -> String {
    const D: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for &x in b {
        s.push(D[(x >> 4) as usize] as char);
        s.push(D[(x & 15) as usize] as char);
    }
    s
}

/// Decodes hex text (either case); `None` if malformed.
pub fn unhex(s: &[u8]) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    fn nib(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    s.chunks(2)
        .map(|p| Some((nib(p[0])? << 4) | nib(p[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn hex_round_trips(b in proptest::collection::vec(any::<u8>(), 0..200)) {
            prop_assert_eq!(unhex(hex(&b).as_bytes()).unwrap(), b);
        }
    }

    #[test]
    fn describe_truncates() {
        let v = Value::Text("x".repeat(200));
        assert!(v.describe().ends_with('…'));
        assert_eq!(Value::Bytes(vec![0xde, 0xad]).describe(), "0xdead");
    }
}
