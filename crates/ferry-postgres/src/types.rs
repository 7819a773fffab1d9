//! PostgreSQL types: native type → logical type, COPY text → [`Value`], and
//! [`Value`] → COPY text for a target column.

use crate::array::{array_to_json, ElementKind};
use crate::copytext::escape_into;
use ferry_core::{value::unhex, LogicalType, Value};

/// What the catalog tells about one column's type.
#[derive(Debug, Clone)]
pub struct PgTypeInfo {
    /// `pg_type.typname` (for arrays, the element's name is in `elem`).
    pub typname: String,
    /// `format_type(atttypid, atttypmod)`.
    pub formatted: String,
    /// `pg_type.typtype` (`b` base, `e` enum, `d` domain, …).
    pub typtype: String,
    /// Enum labels, in order.
    pub enum_labels: Vec<String>,
    /// For arrays: the element type's name and typtype.
    pub elem: Option<(String, String)>,
}

fn modifier(formatted: &str) -> Vec<u32> {
    formatted
        .split_once('(')
        .and_then(|(_, r)| r.split_once(')'))
        .map(|(m, _)| m.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_default()
}

fn base_logical(name: &str, formatted: &str, typtype: &str, labels: &[String]) -> LogicalType {
    let m = modifier(formatted);
    let fsp = m.first().map(|&p| p as u8).unwrap_or(6);
    if typtype == "e" {
        return LogicalType::Enum(labels.to_vec());
    }
    match name {
        "bool" => LogicalType::Bool,
        "int2" => LogicalType::Int {
            bytes: 2,
            unsigned: false,
        },
        "int4" => LogicalType::Int {
            bytes: 4,
            unsigned: false,
        },
        "int8" => LogicalType::Int {
            bytes: 8,
            unsigned: false,
        },
        "numeric" => LogicalType::Decimal {
            precision: m.first().copied(),
            scale: m.get(1).copied().or(m.first().map(|_| 0)),
        },
        "float4" => LogicalType::Float32,
        "float8" => LogicalType::Float64,
        "bpchar" => LogicalType::Char(m.first().copied()),
        "varchar" => LogicalType::VarChar(m.first().copied()),
        "name" => LogicalType::VarChar(Some(63)),
        "text" | "citext" => LogicalType::Text,
        "bytea" => LogicalType::Bytes,
        "date" => LogicalType::Date,
        "time" => LogicalType::Time(fsp),
        "timetz" => LogicalType::TimeTz(fsp),
        "timestamp" => LogicalType::Timestamp(fsp),
        "timestamptz" => LogicalType::TimestampTz(fsp),
        "interval" => LogicalType::Interval,
        "bit" => LogicalType::Bit {
            len: m.first().copied().unwrap_or(1),
            varying: false,
        },
        "varbit" => LogicalType::Bit {
            len: m.first().copied().unwrap_or(0),
            varying: true,
        },
        "json" | "jsonb" => LogicalType::Json,
        "uuid" => LogicalType::Uuid,
        "inet" | "cidr" | "macaddr" | "macaddr8" => LogicalType::Network,
        other => LogicalType::Unsupported(other.to_string()),
    }
}

/// Maps a column's catalog type to its logical type.
pub fn logical_type(t: &PgTypeInfo) -> LogicalType {
    match &t.elem {
        Some((ename, etyptype)) => LogicalType::Array(Box::new(base_logical(
            ename,
            t.formatted.trim_end_matches("[]"),
            etyptype,
            &t.enum_labels,
        ))),
        None => base_logical(&t.typname, &t.formatted, &t.typtype, &t.enum_labels),
    }
}

fn element_kind(t: &LogicalType) -> ElementKind {
    match t {
        LogicalType::Int { .. }
        | LogicalType::Decimal { .. }
        | LogicalType::Float32
        | LogicalType::Float64 => ElementKind::Number,
        LogicalType::Bool => ElementKind::Bool,
        LogicalType::Json => ElementKind::Json,
        _ => ElementKind::Text,
    }
}

fn float_text(s: &str) -> Option<f64> {
    match s {
        "NaN" => Some(f64::NAN),
        "Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        _ => s.parse().ok(),
    }
}

/// Parses one field of `COPY … TO STDOUT` text output into a value.
pub fn parse_text(field: Option<Vec<u8>>, ty: &LogicalType) -> Result<Value, String> {
    let Some(raw) = field else {
        return Ok(Value::Null);
    };
    let s = String::from_utf8(raw).map_err(|_| "value is not valid UTF-8".to_string())?;
    let bad = |s: &str| format!("cannot read PostgreSQL value {s:?} as {ty:?}");
    Ok(match ty {
        LogicalType::Bool => Value::Bool(s == "t"),
        LogicalType::Int { .. } => Value::Int(s.parse().map_err(|_| bad(&s))?),
        LogicalType::Decimal { .. } => Value::Decimal(s),
        LogicalType::Float32 => Value::F32(float_text(&s).ok_or_else(|| bad(&s))? as f32),
        LogicalType::Float64 => Value::F64(float_text(&s).ok_or_else(|| bad(&s))?),
        LogicalType::Bytes => Value::Bytes(
            s.strip_prefix("\\x")
                .and_then(|h| unhex(h.as_bytes()))
                .ok_or_else(|| bad(&s))?,
        ),
        LogicalType::Date => Value::Date(s),
        LogicalType::Time(_) => Value::Time(s),
        LogicalType::Timestamp(_) => Value::Timestamp(s),
        LogicalType::TimestampTz(_) => {
            let (body, bc) = match s.strip_suffix(" BC") {
                Some(b) => (b, " BC"),
                None => (s.as_str(), ""),
            };
            let body = body.strip_suffix("+00").unwrap_or(body);
            Value::TimestampTz(format!("{body}{bc}"))
        }
        LogicalType::Interval => Value::Interval(s),
        LogicalType::Bit { .. } => Value::Bits(s),
        LogicalType::Json => Value::Json(s),
        LogicalType::Array(elem) => {
            Value::Json(array_to_json(&s, element_kind(elem)).ok_or_else(|| bad(&s))?)
        }
        _ => Value::Text(s),
    })
}

fn zero_date(s: &str) -> bool {
    s.starts_with("0000-") || s.get(4..8) == Some("-00-") || s.get(7..10) == Some("-00")
}

/// Appends `v` as COPY text input for a column of type `ty`; `Err` says why the
/// value cannot be stored (the caller adds table, column and key).
pub fn encode_text(v: &Value, ty: &LogicalType, out: &mut Vec<u8>) -> Result<(), String> {
    match v {
        Value::Null => out.extend_from_slice(b"\\N"),
        Value::Bool(b) => match ty {
            LogicalType::Bool => out.push(if *b { b't' } else { b'f' }),
            _ => out.push(if *b { b'1' } else { b'0' }),
        },
        Value::Int(i) => match ty {
            LogicalType::Bool => out.push(if *i != 0 { b't' } else { b'f' }),
            _ => out.extend_from_slice(i.to_string().as_bytes()),
        },
        Value::UInt(u) => out.extend_from_slice(u.to_string().as_bytes()),
        Value::F32(f) => float_out(*f as f64, format!("{f:?}"), out),
        Value::F64(f) => float_out(*f, format!("{f:?}"), out),
        Value::Decimal(s) | Value::Interval(s) | Value::Bits(s) => {
            out.extend_from_slice(s.as_bytes())
        }
        Value::Text(s) | Value::Json(s) => {
            if s.contains('\0') {
                return Err("PostgreSQL text cannot contain the NUL character (0x00)".into());
            }
            escape_into(out, s.as_bytes())
        }
        Value::Bytes(b) => {
            out.extend_from_slice(b"\\\\x");
            out.extend_from_slice(ferry_core::value::hex(b).as_bytes());
        }
        Value::Date(s) | Value::Timestamp(s) => {
            if zero_date(s) {
                return Err(format!(
                    "zero date {s:?} has no PostgreSQL equivalent; fix it on the source \
                     (UPDATE … SET col = NULL WHERE col = '0000-00-00') or exclude the table"
                ));
            }
            out.extend_from_slice(s.as_bytes())
        }
        Value::TimestampTz(s) => {
            if zero_date(s) {
                return Err(format!("zero timestamp {s:?} has no PostgreSQL equivalent"));
            }
            match s.strip_suffix(" BC") {
                Some(b) => out.extend_from_slice(format!("{b}+00 BC").as_bytes()),
                None => out.extend_from_slice(format!("{s}+00").as_bytes()),
            }
        }
        Value::Time(s) => out.extend_from_slice(s.as_bytes()),
    }
    Ok(())
}

fn float_out(f: f64, shortest: String, out: &mut Vec<u8>) {
    if f.is_nan() {
        out.extend_from_slice(b"NaN")
    } else if f.is_infinite() {
        out.extend_from_slice(if f > 0.0 { b"Infinity" } else { b"-Infinity" })
    } else {
        out.extend_from_slice(shortest.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round(v: Value, ty: LogicalType) -> Value {
        let mut out = Vec::new();
        encode_text(&v, &ty, &mut out).unwrap();
        let fields = crate::copytext::split_line(&out);
        parse_text(fields.into_iter().next().unwrap(), &ty).unwrap()
    }

    proptest! {
        #[test]
        fn floats_round_trip(f in any::<f64>()) {
            let back = round(Value::F64(f), LogicalType::Float64);
            match back {
                Value::F64(b) => prop_assert!(b == f || (b.is_nan() && f.is_nan())),
                other => prop_assert!(false, "{other:?}"),
            }
        }

        #[test]
        fn f32_round_trip(f in any::<f32>()) {
            let back = round(Value::F32(f), LogicalType::Float32);
            match back {
                Value::F32(b) => prop_assert!(b == f || (b.is_nan() && f.is_nan())),
                other => prop_assert!(false, "{other:?}"),
            }
        }

        #[test]
        fn text_round_trips(s in "[^\u{0}]{0,50}") {
            prop_assert_eq!(round(Value::Text(s.clone()), LogicalType::Text), Value::Text(s));
        }

        #[test]
        fn bytes_round_trip(b in proptest::collection::vec(any::<u8>(), 0..64)) {
            prop_assert_eq!(round(Value::Bytes(b.clone()), LogicalType::Bytes), Value::Bytes(b));
        }
    }

    #[test]
    fn refuses_what_postgres_cannot_hold() {
        let mut o = Vec::new();
        assert!(encode_text(
            &Value::Date("0000-00-00".into()),
            &LogicalType::Date,
            &mut o
        )
        .is_err());
        assert!(encode_text(&Value::Text("a\0b".into()), &LogicalType::Text, &mut o).is_err());
        assert!(encode_text(
            &Value::Timestamp("2024-00-10 00:00:00".into()),
            &LogicalType::Timestamp(0),
            &mut o
        )
        .is_err());
    }

    #[test]
    fn maps_catalog_types() {
        let info = |n: &str, f: &str| PgTypeInfo {
            typname: n.into(),
            formatted: f.into(),
            typtype: "b".into(),
            enum_labels: vec![],
            elem: None,
        };
        assert_eq!(
            logical_type(&info("numeric", "numeric(10,2)")),
            LogicalType::Decimal {
                precision: Some(10),
                scale: Some(2)
            }
        );
        assert_eq!(
            logical_type(&info("numeric", "numeric")),
            LogicalType::Decimal {
                precision: None,
                scale: None
            }
        );
        assert_eq!(
            logical_type(&info("timestamptz", "timestamp(3) with time zone")),
            LogicalType::TimestampTz(3)
        );
        assert_eq!(
            logical_type(&info("varchar", "character varying(20)")),
            LogicalType::VarChar(Some(20))
        );
    }
}
