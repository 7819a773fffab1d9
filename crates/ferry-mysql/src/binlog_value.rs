//! Binlog row values → [`Value`]s, in exactly the text forms the full copy reads over
//! the text protocol, so a row means the same whichever path carried it.

use ferry_core::{Column, LogicalType, Value};
use mysql_async::binlog::value::BinlogValue;
use mysql_async::Value as My;

fn frac(us: u32, fsp: u8) -> String {
    if fsp == 0 {
        return String::new();
    }
    let digits = format!("{us:06}");
    format!(".{}", &digits[..fsp.min(6) as usize])
}

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian calendar.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// A `TIMESTAMP` binlog value (`seconds[.micros]` since the epoch) as UTC text.
fn timestamp_text(raw: &str, fsp: u8) -> Option<String> {
    let (secs, us) = match raw.split_once('.') {
        Some((s, u)) => (s.parse::<i64>().ok()?, u.parse::<u32>().ok()?),
        None => (raw.parse::<i64>().ok()?, 0),
    };
    if secs == 0 && us == 0 {
        return Some(format!("0000-00-00 00:00:00{}", frac(0, fsp)));
    }
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let t = secs.rem_euclid(86_400);
    Some(format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}{}",
        t / 3600,
        t / 60 % 60,
        t % 60,
        frac(us, fsp)
    ))
}

/// MySQL's `latin1` is Windows-1252.
fn cp1252(bytes: &[u8]) -> String {
    const HIGH: [char; 32] = [
        '€', '\u{81}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{8d}', 'Ž',
        '\u{8f}', '\u{90}', '‘', '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\u{9d}',
        'ž', 'Ÿ',
    ];
    bytes
        .iter()
        .map(|&b| match b {
            0x80..=0x9f => HIGH[(b - 0x80) as usize],
            _ => b as char,
        })
        .collect()
}

fn text(bytes: Vec<u8>, col: &Column) -> Result<String, String> {
    let cs = col.charset.as_deref().unwrap_or("utf8mb4");
    if cs.starts_with("utf8") || cs == "ascii" || cs == "binary" {
        String::from_utf8(bytes).map_err(|e| format!("value is not valid UTF-8: {e}"))
    } else if cs == "latin1" {
        Ok(cp1252(&bytes))
    } else {
        Err(format!(
            "character set {cs} is not supported by the incremental reader (utf8mb4, utf8mb3, ascii and latin1 are)"
        ))
    }
}

fn int_of(v: &My) -> Option<i64> {
    match v {
        My::Int(i) => Some(*i),
        My::UInt(u) => i64::try_from(*u).ok(),
        My::Bytes(b) => std::str::from_utf8(b).ok()?.trim().parse().ok(),
        _ => None,
    }
}

/// Reads the low `bytes` bytes of `raw` with the catalog's signedness: the decoder's
/// own signedness comes from table-map metadata that MariaDB does not always align
/// with the columns (a signed MEDIUMINT arrived as unsigned), the catalog is exact.
fn int_value(raw: u64, bytes: u8, unsigned: bool) -> Value {
    let bits = 8 * u32::from(bytes.clamp(1, 8));
    let low = if bits == 64 {
        raw
    } else {
        raw & ((1u64 << bits) - 1)
    };
    if unsigned {
        i64::try_from(low).map_or(Value::UInt(low), Value::Int)
    } else if bits < 64 && low >> (bits - 1) == 1 {
        Value::Int(low as i64 - (1i64 << bits))
    } else {
        Value::Int(low as i64)
    }
}

/// Converts one binlog cell of column `col`.
pub fn convert(v: Option<BinlogValue<'_>>, col: &Column) -> Result<Value, String> {
    let v = match v {
        None | Some(BinlogValue::Value(My::NULL)) => return Ok(Value::Null),
        Some(BinlogValue::Value(v)) => v,
        Some(BinlogValue::Jsonb(j)) => {
            let json = serde_json::Value::try_from(j).map_err(|e| format!("bad JSON in binlog: {e}"))?;
            return Ok(Value::Json(json.to_string()));
        }
        Some(BinlogValue::JsonDiff(_)) => {
            return Err("partial JSON updates are not supported; set binlog_row_value_options = '' on the source".into())
        }
    };
    let bad = |v: &My| format!("unexpected binlog value {v:?} for {:?}", col.logical);
    Ok(match &col.logical {
        LogicalType::Int { bytes, unsigned } => {
            let raw = match v {
                My::UInt(u) => u,
                My::Int(i) => i as u64,
                ref other => int_of(other).ok_or_else(|| bad(other))? as u64,
            };
            int_value(raw, *bytes, *unsigned)
        }
        // the binlog holds a YEAR as one byte, 0 for 0000 and 1..=255 for 1901..=2155;
        // the decoder adds 1900 to every byte, so its 1900 is the year 0000
        LogicalType::Year => match int_of(&v).ok_or_else(|| bad(&v))? {
            1900 => Value::Int(0),
            y => Value::Int(y),
        },
        LogicalType::Bool => Value::Int(int_of(&v).ok_or_else(|| bad(&v))?),
        LogicalType::Decimal { .. } => match v {
            My::Bytes(b) => Value::Decimal(String::from_utf8(b).map_err(|e| e.to_string())?),
            other => return Err(bad(&other)),
        },
        LogicalType::Float32 => match v {
            My::Float(f) => Value::F32(f),
            My::Double(f) => Value::F32(f as f32),
            other => return Err(bad(&other)),
        },
        LogicalType::Float64 => match v {
            My::Double(f) => Value::F64(f),
            My::Float(f) => Value::F64(f as f64),
            other => return Err(bad(&other)),
        },
        LogicalType::Bit { len, .. } => match v {
            My::Bytes(b) => {
                let mut n: u64 = 0;
                for x in &b {
                    n = (n << 8) | *x as u64;
                }
                Value::Bits(format!("{n:0width$b}", width = *len as usize))
            }
            other => return Err(bad(&other)),
        },
        LogicalType::Date => match v {
            My::Date(y, m, d, ..) => Value::Date(format!("{y:04}-{m:02}-{d:02}")),
            other => return Err(bad(&other)),
        },
        LogicalType::Timestamp(fsp) => match v {
            My::Date(y, mo, d, h, mi, s, us) => Value::Timestamp(format!(
                "{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}{}",
                frac(us, *fsp)
            )),
            other => return Err(bad(&other)),
        },
        LogicalType::TimestampTz(fsp) => match v {
            My::Bytes(b) => Value::TimestampTz(
                timestamp_text(&String::from_utf8_lossy(&b), *fsp)
                    .ok_or_else(|| format!("bad TIMESTAMP {:?}", String::from_utf8_lossy(&b)))?,
            ),
            My::Int(0) => Value::TimestampTz(format!("0000-00-00 00:00:00{}", frac(0, *fsp))),
            My::Int(i) => Value::TimestampTz(
                timestamp_text(&i.to_string(), *fsp).ok_or_else(|| bad(&My::Int(i)))?,
            ),
            other => return Err(bad(&other)),
        },
        LogicalType::Time(fsp) => match v {
            My::Time(neg, days, h, m, s, us) => Value::Time(format!(
                "{}{:02}:{m:02}:{s:02}{}",
                if neg { "-" } else { "" },
                u64::from(days) * 24 + u64::from(h),
                frac(us, *fsp)
            )),
            other => return Err(bad(&other)),
        },
        LogicalType::Enum(labels) => {
            let i = int_of(&v).ok_or_else(|| bad(&v))?;
            Value::Text(if i <= 0 {
                String::new()
            } else {
                labels
                    .get(i as usize - 1)
                    .cloned()
                    .ok_or_else(|| format!("ENUM index {i} is beyond the column's labels"))?
            })
        }
        LogicalType::Set(labels) => {
            let mask = match &v {
                My::Bytes(b) => b.iter().rev().fold(0u64, |acc, x| (acc << 8) | *x as u64),
                other => int_of(other).ok_or_else(|| bad(other))? as u64,
            };
            let members: Vec<&str> = labels
                .iter()
                .enumerate()
                .filter(|(i, _)| mask & (1 << i) != 0)
                .map(|(_, l)| l.as_str())
                .collect();
            Value::Text(members.join(","))
        }
        t if crate::types::is_spatial(t) => match v {
            My::Bytes(b) => Value::Bytes(b),
            other => return Err(bad(&other)),
        },
        LogicalType::Bytes => match v {
            My::Bytes(mut b) => {
                // the binlog strips BINARY(n)'s trailing 0x00 padding; the stored
                // value (what SELECT and the full copy read) has all n bytes
                if let Some(n) = crate::types::fixed_binary_len(&col.native_type) {
                    if b.len() < n {
                        b.resize(n, 0);
                    }
                }
                Value::Bytes(b)
            }
            other => return Err(bad(&other)),
        },
        LogicalType::Json => match v {
            My::Bytes(b) => Value::Json(text(b, col)?),
            other => return Err(bad(&other)),
        },
        LogicalType::Uuid | LogicalType::Network => {
            return Err(format!(
                "{} columns are not supported by the incremental reader yet",
                col.native_type
            ))
        }
        _ => match v {
            My::Bytes(b) => Value::Text(text(b, col)?),
            other => return Err(bad(&other)),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `binlog_value` fuzz target: a TIME's hours were `days * 24` in
    /// 32 bits, which overflows (a panic in a debug build) for a day count the
    /// decoder can hand over; now in 64 bits.
    #[test]
    fn a_time_with_many_days_does_not_overflow() {
        let col = Column::new("c", "time", LogicalType::Time(0));
        let v = My::Time(true, 200_000_000, 1, 2, 3, 0);
        assert_eq!(
            convert(Some(BinlogValue::Value(v)), &col).unwrap(),
            Value::Time("-4800000001:02:03".into())
        );
    }

    #[test]
    fn timestamps_are_utc_text() {
        assert_eq!(timestamp_text("0", 0).unwrap(), "0000-00-00 00:00:00");
        assert_eq!(timestamp_text("1", 0).unwrap(), "1970-01-01 00:00:01");
        assert_eq!(
            timestamp_text("2147483647.500000", 3).unwrap(),
            "2038-01-19 03:14:07.500"
        );
        assert_eq!(
            timestamp_text("951782400.123456", 6).unwrap(),
            "2000-02-29 00:00:00.123456"
        );
    }

    #[test]
    fn integers_take_the_catalogs_signedness() {
        assert_eq!(int_value(8_388_608, 3, false), Value::Int(-8_388_608));
        assert_eq!(
            int_value((-8_388_608i64) as u64, 3, false),
            Value::Int(-8_388_608)
        );
        assert_eq!(int_value((-1i64) as u64, 3, true), Value::Int(16_777_215));
        assert_eq!(int_value(128, 1, false), Value::Int(-128));
        assert_eq!(int_value(255, 1, true), Value::Int(255));
        assert_eq!(int_value(u64::MAX, 8, true), Value::UInt(u64::MAX));
        assert_eq!(int_value(u64::MAX, 8, false), Value::Int(-1));
        assert_eq!(int_value(4_294_967_295, 4, true), Value::Int(4_294_967_295));
        assert_eq!(
            int_value(2_147_483_647, 4, false),
            Value::Int(2_147_483_647)
        );
    }

    fn column(native: &str, logical: LogicalType) -> Column {
        Column::new("c", native, logical)
    }

    #[test]
    fn year_zero_is_not_1900() {
        let y = column("year", LogicalType::Year);
        let cell = |s: &str| Some(BinlogValue::Value(My::Bytes(s.as_bytes().to_vec())));
        assert_eq!(convert(cell("1900"), &y).unwrap(), Value::Int(0));
        assert_eq!(convert(cell("1901"), &y).unwrap(), Value::Int(1901));
        assert_eq!(convert(cell("2155"), &y).unwrap(), Value::Int(2155));
    }

    #[test]
    fn spatial_values_are_bytes() {
        let g = column("point", LogicalType::Unsupported("point".into()));
        let raw = vec![0u8, 0, 0, 0, 1, 1, 0, 0, 0, 0xff];
        assert_eq!(
            convert(Some(BinlogValue::Value(My::Bytes(raw.clone()))), &g).unwrap(),
            Value::Bytes(raw)
        );
    }

    #[test]
    fn binary_n_gets_its_padding_back() {
        let col = |native: &str| Column {
            charset: Some("binary".into()),
            ..Column::new("b", native, LogicalType::Bytes)
        };
        let cell = |b: &[u8]| Some(BinlogValue::Value(My::Bytes(b.to_vec())));
        assert_eq!(
            convert(cell(b"ef"), &col("binary(4)")).unwrap(),
            Value::Bytes(b"ef\0\0".to_vec())
        );
        assert_eq!(
            convert(cell(b""), &col("binary(3)")).unwrap(),
            Value::Bytes(vec![0, 0, 0])
        );
        assert_eq!(
            convert(cell(b"abcd"), &col("binary(4)")).unwrap(),
            Value::Bytes(b"abcd".to_vec())
        );
        // VARBINARY and BLOB keep exactly what was stored
        assert_eq!(
            convert(cell(b"e\0"), &col("varbinary(4)")).unwrap(),
            Value::Bytes(b"e\0".to_vec())
        );
        assert_eq!(
            convert(cell(b""), &col("blob")).unwrap(),
            Value::Bytes(vec![])
        );
    }

    #[test]
    fn latin1_is_cp1252() {
        assert_eq!(cp1252(&[0x80, b'a', 0xe9]), "€aé");
    }
}
