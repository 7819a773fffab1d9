//! The `pgoutput` decoder reads bytes a PostgreSQL server sends over a replication
//! connection: any bytes decode to a message or an error — never a panic, and never
//! an allocation sized by a length field the bytes do not back.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ferry_postgres::pgoutput::parse(bytes::Bytes::copy_from_slice(data));
});
