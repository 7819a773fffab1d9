//! Log positions (`lsn:X/Y`, `binlog:file:pos[;gtid:…]`) are stored as text on the
//! target and given by users as `start_position`: any text parses to a position
//! whose text form parses back to the same position, or is refused — never a panic.
#![no_main]

use ferry_core::Position;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = ferry_core::position::parse_lsn(text);
    // two positions: the first part before a NUL, the rest after it
    let (a, b) = text.split_once('\0').unwrap_or((text, "lsn:0/0"));
    let pa = Position::parse(a);
    let pb = Position::parse(b);
    for p in [&pa, &pb].into_iter().flatten() {
        let shown = p.to_string();
        let again = Position::parse(&shown)
            .unwrap_or_else(|e| panic!("{p:?} prints as {shown:?}, which does not parse: {e}"));
        assert_eq!(&again, p, "{shown:?} does not round-trip");
    }
    if let (Ok(pa), Ok(pb)) = (&pa, &pb) {
        let _ = pa.reached(pb);
        let _ = pa.bytes_after(pb);
    }
});
