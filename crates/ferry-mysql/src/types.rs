//! MySQL/MariaDB types: column type → logical type, text-protocol bytes → [`Value`],
//! and [`Value`] → `LOAD DATA` field text.

use ferry_core::{LogicalType, Value};

/// Parses the labels of `enum('a','b')` / `set('x','y')`.
pub fn parse_labels(column_type: &str) -> Vec<String> {
    let inner = column_type
        .split_once('(')
        .and_then(|(_, r)| r.rsplit_once(')'))
        .map(|(i, _)| i)
        .unwrap_or("");
    let mut out = Vec::new();
    let b = inner.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\'' {
            let mut s = Vec::new();
            i += 1;
            while i < b.len() {
                if b[i] == b'\'' && b.get(i + 1) == Some(&b'\'') {
                    s.push(b'\'');
                    i += 2;
                } else if b[i] == b'\\' && i + 1 < b.len() {
                    s.push(b[i + 1]);
                    i += 2;
                } else if b[i] == b'\'' {
                    break;
                } else {
                    s.push(b[i]);
                    i += 1;
                }
            }
            out.push(String::from_utf8_lossy(&s).into_owned());
        }
        i += 1;
    }
    out
}

fn nums(column_type: &str) -> Vec<u32> {
    column_type
        .split_once('(')
        .and_then(|(_, r)| r.split_once(')'))
        .map(|(m, _)| m.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_default()
}

/// Maps `DATA_TYPE` / `COLUMN_TYPE` to a logical type.
pub fn logical_type(data_type: &str, column_type: &str) -> LogicalType {
    let unsigned = column_type.contains("unsigned");
    let m = nums(column_type);
    let fsp = m.first().copied().unwrap_or(0) as u8;
    match data_type {
        "tinyint" => LogicalType::Int { bytes: 1, unsigned },
        "smallint" => LogicalType::Int { bytes: 2, unsigned },
        "mediumint" => LogicalType::Int { bytes: 3, unsigned },
        "int" | "integer" => LogicalType::Int { bytes: 4, unsigned },
        "bigint" => LogicalType::Int { bytes: 8, unsigned },
        "decimal" | "numeric" => LogicalType::Decimal {
            precision: Some(m.first().copied().unwrap_or(10)),
            scale: Some(m.get(1).copied().unwrap_or(0)),
        },
        "float" => LogicalType::Float32,
        "double" | "real" => LogicalType::Float64,
        "bit" => LogicalType::Bit {
            len: m.first().copied().unwrap_or(1),
            varying: false,
        },
        "char" => LogicalType::Char(m.first().copied()),
        "varchar" => LogicalType::VarChar(m.first().copied()),
        "tinytext" | "text" | "mediumtext" | "longtext" => LogicalType::Text,
        "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => {
            LogicalType::Bytes
        }
        "date" => LogicalType::Date,
        "time" => LogicalType::Time(fsp),
        "datetime" => LogicalType::Timestamp(fsp),
        "timestamp" => LogicalType::TimestampTz(fsp),
        "year" => LogicalType::Year,
        "enum" => LogicalType::Enum(parse_labels(column_type)),
        "set" => LogicalType::Set(parse_labels(column_type)),
        "json" => LogicalType::Json,
        "uuid" => LogicalType::Uuid,
        "inet4" | "inet6" => LogicalType::Network,
        other => LogicalType::Unsupported(other.to_string()),
    }
}

/// True for MySQL/MariaDB spatial types. Same-engine copies carry their values as the
/// server's internal bytes (SRID + WKB), verbatim; other engines refuse them.
pub fn is_spatial(ty: &LogicalType) -> bool {
    matches!(ty, LogicalType::Unsupported(n) if matches!(
        n.as_str(),
        "geometry" | "point" | "linestring" | "polygon" | "multipoint" | "multilinestring"
            | "multipolygon" | "geometrycollection"
    ))
}

/// The length of a fixed-length `BINARY(n)` column (`None` for every other type).
/// MySQL/MariaDB store BINARY values padded with 0x00 to `n` bytes, but the binlog
/// carries them with the trailing zeros stripped: a reader must pad them again.
pub fn fixed_binary_len(column_type: &str) -> Option<usize> {
    let t = column_type.trim().to_ascii_lowercase();
    let rest = t.strip_prefix("binary")?.trim_start();
    if rest.is_empty() {
        // BINARY without a length is BINARY(1)
        return Some(1);
    }
    let n = rest.strip_prefix('(')?.split_once(')')?.0;
    n.trim().parse().ok()
}

/// The SELECT expression that reads a column exactly: FLOAT is widened to DOUBLE
/// because the text protocol prints FLOAT with only 6 significant digits.
pub fn select_expr(quoted: &str, ty: &LogicalType) -> String {
    match ty {
        LogicalType::Float32 => format!("CAST({quoted} AS DOUBLE)"),
        _ => quoted.to_string(),
    }
}

/// Converts one text-protocol cell of a column of type `ty` into a value.
pub fn parse_cell(cell: Option<mysql_async::Value>, ty: &LogicalType) -> Result<Value, String> {
    let raw = match cell {
        None | Some(mysql_async::Value::NULL) => return Ok(Value::Null),
        Some(mysql_async::Value::Bytes(b)) => b,
        Some(other) => other.as_sql(true).into_bytes(),
    };
    let text =
        |b: Vec<u8>| String::from_utf8(b).map_err(|e| format!("value is not valid UTF-8: {e}"));
    let bad = |s: &[u8]| format!("cannot read {:?} as {ty:?}", String::from_utf8_lossy(s));
    Ok(match ty {
        LogicalType::Int {
            unsigned: true,
            bytes: 8,
        } => {
            let s = std::str::from_utf8(&raw).map_err(|_| bad(&raw))?;
            match s.parse::<i64>() {
                Ok(i) => Value::Int(i),
                Err(_) => Value::UInt(s.parse().map_err(|_| bad(&raw))?),
            }
        }
        LogicalType::Int { .. } | LogicalType::Year => Value::Int(
            std::str::from_utf8(&raw)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| bad(&raw))?,
        ),
        LogicalType::Decimal { .. } => Value::Decimal(text(raw)?),
        LogicalType::Float32 => Value::F32(
            std::str::from_utf8(&raw)
                .ok()
                .and_then(|s| s.parse::<f64>().ok())
                .ok_or_else(|| bad(&raw))? as f32,
        ),
        LogicalType::Float64 => Value::F64(
            std::str::from_utf8(&raw)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| bad(&raw))?,
        ),
        LogicalType::Bytes => Value::Bytes(raw),
        t if is_spatial(t) => Value::Bytes(raw),
        LogicalType::Bit { len, .. } => {
            let mut n: u64 = 0;
            for b in &raw {
                n = (n << 8) | *b as u64;
            }
            Value::Bits(format!("{n:0width$b}", width = *len as usize))
        }
        LogicalType::Date => Value::Date(text(raw)?),
        LogicalType::Time(_) => Value::Time(text(raw)?),
        LogicalType::Timestamp(_) => Value::Timestamp(text(raw)?),
        LogicalType::TimestampTz(_) => Value::TimestampTz(text(raw)?),
        LogicalType::Json => Value::Json(text(raw)?),
        _ => Value::Text(text(raw)?),
    })
}

/// `(M, D)` of a `FLOAT(M,D)` / `DOUBLE(M,D)` column type, whose values MySQL rounds to
/// `D` decimals and bounds by ±(10^(M-D) − 10^-D) on input.
pub fn declared_float(native_type: &str) -> Option<(u32, u32)> {
    let t = native_type.trim().to_ascii_lowercase();
    if !(t.starts_with("float(") || t.starts_with("double(") || t.starts_with("real(")) {
        return None;
    }
    match nums(&t)[..] {
        [m, d] if d < 31 && m >= d => Some((m, d)),
        _ => None,
    }
}

/// Makes a float stored in a `FLOAT(M,D)`/`DOUBLE(M,D)` column writable again into
/// the same column type. The stored binary float may lie just beyond the declared
/// bound (`-99999999.99` in FLOAT(10,2) is stored as the float -100000000), which
/// the server refuses on input; the bound itself rounds to the very same float, so it
/// is written instead — the stored value stays bit for bit the same. `None`: write the
/// value as it is; an error: the column cannot hold it.
pub fn fit_declared_float(v: &Value, m: u32, d: u32) -> Result<Option<Value>, String> {
    let (x, single) = match v {
        Value::F32(f) => (f64::from(*f), true),
        Value::F64(f) => (*f, false),
        _ => return Ok(None),
    };
    if !x.is_finite() {
        return Ok(None);
    }
    let max = 10f64.powi((m - d) as i32) - 10f64.powi(-(d as i32));
    if x.abs() <= max {
        return Ok(None);
    }
    let bound = if x < 0.0 { -max } else { max };
    let same = if single {
        (bound as f32) == (x as f32)
    } else {
        bound == x
    };
    if !same {
        return Err(format!(
            "the value is beyond the column's declared range of ±{max:.prec$}",
            prec = d as usize
        ));
    }
    Ok(Some(Value::Decimal(format!(
        "{bound:.prec$}",
        prec = d as usize
    ))))
}

/// How a target column is fed from `LOAD DATA`: directly, or through a user variable
/// and a conversion (binary data travels as hex, bits as a binary-digit string).
pub fn load_conversion(ty: &LogicalType) -> Option<&'static str> {
    match ty {
        LogicalType::Bytes => Some("UNHEX({})"),
        t if is_spatial(t) => Some("UNHEX({})"),
        LogicalType::Bit {
            varying: false,
            len,
        } if *len <= 64 => Some("CAST(CONV({}, 2, 10) AS UNSIGNED)"),
        _ => None,
    }
}

/// Whether a text-protocol cell of a column of type `ty` (read by [`select_expr`]) is,
/// escaped, exactly the `LOAD DATA` field [`encode_field`] would write for its
/// decoded value (between two MySQL/MariaDB servers): integers, exact decimals,
/// dates and times, text, JSON. Floats (widened and fitted to a declared bound),
/// binary, bit, spatial and YEAR values take the decoding path.
pub fn text_passes_through(ty: &LogicalType) -> bool {
    !matches!(
        ty,
        LogicalType::Float32
            | LogicalType::Float64
            | LogicalType::Bytes
            | LogicalType::Bit { .. }
            | LogicalType::Year
            | LogicalType::Decimal {
                precision: None,
                ..
            }
    ) && !is_spatial(ty)
}

/// Escapes `s` as a `LOAD DATA` field (backslash escapes, tab-separated lines).
pub(crate) fn escape_into(out: &mut Vec<u8>, s: &[u8]) {
    for &b in s {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            0 => out.extend_from_slice(b"\\0"),
            _ => out.push(b),
        }
    }
}

fn bad_date(s: &str) -> Option<String> {
    if s.ends_with(" BC") {
        return Some("MySQL/MariaDB dates cannot be before year 1 (BC)".into());
    }
    if s.contains("infinity") {
        return Some("MySQL/MariaDB have no infinite dates".into());
    }
    let year = s.split('-').next().unwrap_or("");
    if year.len() > 4 {
        return Some("MySQL/MariaDB dates end at year 9999".into());
    }
    None
}

/// Checks an exact decimal fits DECIMAL(65,30) (used for unconstrained NUMERIC).
fn fits_decimal_65_30(s: &str) -> bool {
    let body = s.trim_start_matches(['-', '+']);
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    int.trim_start_matches('0').len() <= 35 && frac.trim_end_matches('0').len() <= 30
}

/// Appends `v` as one LOAD DATA field for a column of (source) type `ty`.
pub fn encode_field(v: &Value, ty: &LogicalType, out: &mut Vec<u8>) -> Result<(), String> {
    match v {
        Value::Null => out.extend_from_slice(b"\\N"),
        Value::Bool(b) => out.push(if *b { b'1' } else { b'0' }),
        // four digits: a 1- or 2-digit YEAR string means 2000..2069 / 1970..1999
        Value::Int(i) if *ty == LogicalType::Year => {
            out.extend_from_slice(format!("{i:04}").as_bytes())
        }
        Value::Int(i) => out.extend_from_slice(i.to_string().as_bytes()),
        Value::UInt(u) => out.extend_from_slice(u.to_string().as_bytes()),
        // widened: MySQL parses the text as a double, and the shortest f32 text of
        // FLT_MAX (3.4028235e38) lies above FLT_MAX as a double
        Value::F32(f) if f.is_finite() => {
            out.extend_from_slice(format!("{:?}", *f as f64).as_bytes())
        }
        Value::F64(f) if f.is_finite() => out.extend_from_slice(format!("{f:?}").as_bytes()),
        Value::F32(_) | Value::F64(_) => {
            return Err("MySQL/MariaDB floats cannot hold NaN or Infinity".into());
        }
        Value::Decimal(s) => {
            if !s
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_digit() || b == b'-' || b == b'.')
            {
                return Err("MySQL/MariaDB DECIMAL cannot hold NaN or Infinity".into());
            }
            if matches!(
                ty,
                LogicalType::Decimal {
                    precision: None,
                    ..
                }
            ) && !fits_decimal_65_30(s)
            {
                return Err("unconstrained NUMERIC is mapped to DECIMAL(65,30), which cannot hold this value exactly".into());
            }
            out.extend_from_slice(s.as_bytes())
        }
        Value::Bytes(b) => out.extend_from_slice(ferry_core::value::hex(b).as_bytes()),
        Value::Date(s) | Value::Timestamp(s) | Value::TimestampTz(s) => {
            if let Some(why) = bad_date(s) {
                return Err(why);
            }
            out.extend_from_slice(s.as_bytes())
        }
        Value::Text(s) | Value::Json(s) | Value::Interval(s) | Value::Time(s) => {
            escape_into(out, s.as_bytes())
        }
        Value::Bits(s) => match ty {
            LogicalType::Bit {
                varying: false,
                len,
            } if *len <= 64 => {
                out.extend_from_slice(if s.is_empty() { b"0" } else { s.as_bytes() })
            }
            _ => out.extend_from_slice(s.as_bytes()),
        },
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn years_keep_four_digits() {
        let mut o = Vec::new();
        encode_field(&Value::Int(0), &LogicalType::Year, &mut o).unwrap();
        assert_eq!(o, b"0000");
    }

    #[test]
    fn declared_floats_round_trip() {
        assert_eq!(declared_float("float(10,2)"), Some((10, 2)));
        assert_eq!(declared_float("double(20,4) unsigned"), Some((20, 4)));
        assert_eq!(declared_float("float"), None);
        assert_eq!(declared_float("double precision"), None);
        // stored as the float -1e8, just beyond the bound -99999999.99
        let stored = Value::F32(-99_999_999.99f64 as f32);
        assert_eq!(
            fit_declared_float(&stored, 10, 2).unwrap(),
            Some(Value::Decimal("-99999999.99".into()))
        );
        assert_eq!(fit_declared_float(&Value::F32(1.5), 10, 2).unwrap(), None);
        assert!(fit_declared_float(&Value::F32(2e8), 10, 2).is_err());
        assert_eq!(fit_declared_float(&Value::F64(99.99), 4, 2).unwrap(), None);
    }

    #[test]
    fn binary_lengths() {
        assert_eq!(fixed_binary_len("binary(4)"), Some(4));
        assert_eq!(fixed_binary_len("BINARY(16)"), Some(16));
        assert_eq!(fixed_binary_len("binary"), Some(1));
        assert_eq!(fixed_binary_len("varbinary(4)"), None);
        assert_eq!(fixed_binary_len("blob"), None);
        assert_eq!(fixed_binary_len("char(4)"), None);
    }

    #[test]
    fn labels() {
        assert_eq!(
            parse_labels("enum('a','b''c','d,e')"),
            vec!["a", "b'c", "d,e"]
        );
        assert_eq!(parse_labels("set('x')"), vec!["x"]);
    }

    #[test]
    fn types() {
        assert_eq!(
            logical_type("bigint", "bigint(20) unsigned"),
            LogicalType::Int {
                bytes: 8,
                unsigned: true
            }
        );
        assert_eq!(
            logical_type("decimal", "decimal(65,30)"),
            LogicalType::Decimal {
                precision: Some(65),
                scale: Some(30)
            }
        );
        assert_eq!(
            logical_type("datetime", "datetime(6)"),
            LogicalType::Timestamp(6)
        );
        assert_eq!(
            logical_type("bit", "bit(12)"),
            LogicalType::Bit {
                len: 12,
                varying: false
            }
        );
    }

    #[test]
    fn cells() {
        let b = |s: &str| Some(mysql_async::Value::Bytes(s.as_bytes().to_vec()));
        assert_eq!(
            parse_cell(
                b("18446744073709551615"),
                &LogicalType::Int {
                    bytes: 8,
                    unsigned: true
                }
            )
            .unwrap(),
            Value::UInt(u64::MAX)
        );
        assert_eq!(
            parse_cell(
                Some(mysql_async::Value::Bytes(vec![1, 2])),
                &LogicalType::Bit {
                    len: 10,
                    varying: false
                }
            )
            .unwrap(),
            Value::Bits("0100000010".into())
        );
        assert_eq!(parse_cell(None, &LogicalType::Text).unwrap(), Value::Null);
        assert_eq!(
            parse_cell(b(""), &LogicalType::Text).unwrap(),
            Value::Text(String::new())
        );
    }

    #[test]
    fn refuses_what_mysql_cannot_hold() {
        let mut o = Vec::new();
        assert!(encode_field(&Value::F64(f64::NAN), &LogicalType::Float64, &mut o).is_err());
        assert!(encode_field(
            &Value::Decimal("NaN".into()),
            &LogicalType::Decimal {
                precision: None,
                scale: None
            },
            &mut o
        )
        .is_err());
        let huge = format!("1{}", "0".repeat(40));
        assert!(encode_field(
            &Value::Decimal(huge),
            &LogicalType::Decimal {
                precision: None,
                scale: None
            },
            &mut o
        )
        .is_err());
        assert!(encode_field(
            &Value::Date("0044-03-15 BC".into()),
            &LogicalType::Date,
            &mut o
        )
        .is_err());
        assert!(encode_field(&Value::Date("infinity".into()), &LogicalType::Date, &mut o).is_err());
    }

    proptest! {
        #[test]
        fn escaped_text_has_no_raw_separators(s in ".{0,40}") {
            let mut o = Vec::new();
            encode_field(&Value::Text(s), &LogicalType::Text, &mut o).unwrap();
            prop_assert!(!o.contains(&b'\t') && !o.contains(&b'\n') && !o.contains(&0));
        }
    }
}
