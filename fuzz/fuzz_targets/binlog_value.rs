//! The binlog value converter turns each cell the binlog decoder reads from a
//! MySQL/MariaDB server into Ferry's value for the column's type: any cell, for any
//! column, converts or is refused with a message — never a panic.
#![no_main]

use arbitrary::{Arbitrary, Result, Unstructured};
use ferry_core::{Column, LogicalType};
use libfuzzer_sys::fuzz_target;
use mysql_async::binlog::value::BinlogValue;
use mysql_async::Value as My;

/// A cell as the decoder hands it over (JSON cells aside: their own decoder).
#[derive(Debug, Arbitrary)]
enum Cell {
    Null,
    Bytes(Vec<u8>),
    Int(i64),
    UInt(u64),
    Float(f32),
    Double(f64),
    Date(u16, u8, u8, u8, u8, u8, u32),
    Time(bool, u32, u8, u8, u8, u32),
}

impl Cell {
    fn value(self) -> My {
        match self {
            Cell::Null => My::NULL,
            Cell::Bytes(b) => My::Bytes(b),
            Cell::Int(i) => My::Int(i),
            Cell::UInt(u) => My::UInt(u),
            Cell::Float(f) => My::Float(f),
            Cell::Double(f) => My::Double(f),
            Cell::Date(y, mo, d, h, mi, s, us) => My::Date(y, mo, d, h, mi, s, us),
            // mysql_async's own Debug of a TIME overflows past 178 956 970 days; a
            // binlog TIME is at most 838:59:59 anyway
            Cell::Time(neg, days, h, m, s, us) => My::Time(neg, days % 100_000_000, h, m, s, us),
        }
    }
}

/// A column type as the MySQL catalog reader maps one (within MySQL's own limits:
/// SET ≤ 64 members, ENUM ≤ 65535 labels, BIT ≤ 64, fractional seconds ≤ 6).
fn logical(u: &mut Unstructured<'_>) -> Result<LogicalType> {
    let labels = |u: &mut Unstructured<'_>, max: usize| -> Result<Vec<String>> {
        let n = u.int_in_range(0..=max)?;
        (0..n).map(|i| Ok(format!("l{i}"))).collect()
    };
    Ok(match u.int_in_range(0..=20)? {
        0 => LogicalType::Bool,
        1 => LogicalType::Int {
            bytes: *u.choose(&[1, 2, 3, 4, 8])?,
            unsigned: u.arbitrary()?,
        },
        2 => LogicalType::Decimal {
            precision: Some(u.int_in_range(1..=65)?),
            scale: Some(u.int_in_range(0..=30)?),
        },
        3 => LogicalType::Float32,
        4 => LogicalType::Float64,
        5 => LogicalType::Char(Some(u.int_in_range(0..=255)?)),
        6 => LogicalType::VarChar(Some(u.int_in_range(0..=65535)?)),
        7 => LogicalType::Text,
        8 => LogicalType::Bytes,
        9 => LogicalType::Date,
        10 => LogicalType::Time(u.int_in_range(0..=6)?),
        11 => LogicalType::Timestamp(u.int_in_range(0..=6)?),
        12 => LogicalType::TimestampTz(u.int_in_range(0..=6)?),
        13 => LogicalType::Year,
        14 => LogicalType::Bit {
            len: u.int_in_range(1..=64)?,
            varying: false,
        },
        15 => LogicalType::Enum(labels(u, 300)?),
        16 => LogicalType::Set(labels(u, 64)?),
        17 => LogicalType::Json,
        18 => LogicalType::Uuid,
        19 => LogicalType::Unsupported("geometry".into()),
        _ => LogicalType::Network,
    })
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(logical) = logical(&mut u) else { return };
    let native = match &logical {
        LogicalType::Bytes => *u
            .choose(&["binary(16)", "varbinary(255)", "blob"])
            .unwrap_or(&"blob"),
        LogicalType::Unsupported(_) => "geometry",
        _ => "t",
    };
    let mut col = Column::new("c", native, logical);
    col.charset = u
        .choose(&[
            None,
            Some("utf8mb4"),
            Some("latin1"),
            Some("ascii"),
            Some("sjis"),
        ])
        .ok()
        .cloned()
        .flatten()
        .map(String::from);
    let Ok(cell) = Cell::arbitrary(&mut u) else {
        return;
    };
    let v = if u.arbitrary().unwrap_or(false) {
        None
    } else {
        Some(BinlogValue::Value(cell.value()))
    };
    if let Err(e) = ferry_mysql::binlog_value::convert(v, &col) {
        assert!(!e.is_empty(), "an error without a message");
    }
});
