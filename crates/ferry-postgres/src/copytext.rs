//! PostgreSQL's COPY text format: one row per line, tab-separated, `\N` for NULL,
//! backslash escapes for `\`, tab, newline and carriage return.

/// Splits one COPY text line (without its newline) into unescaped fields.
/// `None` marks a NULL field.
pub fn split_line(line: &[u8]) -> Vec<Option<Vec<u8>>> {
    let mut out = Vec::new();
    for raw in line.split(|&b| b == b'\t') {
        if raw == b"\\N" {
            out.push(None);
            continue;
        }
        let mut f = Vec::with_capacity(raw.len());
        let mut i = 0;
        while i < raw.len() {
            let b = raw[i];
            if b == b'\\' && i + 1 < raw.len() {
                i += 1;
                f.push(match raw[i] {
                    b'n' => b'\n',
                    b't' => b'\t',
                    b'r' => b'\r',
                    b'b' => 8,
                    b'f' => 12,
                    b'v' => 11,
                    other => other,
                });
            } else {
                f.push(b);
            }
            i += 1;
        }
        out.push(Some(f));
    }
    out
}

/// Appends `field` escaped for COPY text input.
pub fn escape_into(out: &mut Vec<u8>, field: &[u8]) {
    for &b in field {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            _ => out.push(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn escape_then_split_round_trips(fields in proptest::collection::vec(
            proptest::option::of(proptest::collection::vec(1u8..=255, 0..40)), 1..6)) {
            let mut line = Vec::new();
            for (i, f) in fields.iter().enumerate() {
                if i > 0 { line.push(b'\t'); }
                match f {
                    None => line.extend_from_slice(b"\\N"),
                    Some(v) => escape_into(&mut line, v),
                }
            }
            prop_assert_eq!(split_line(&line), fields);
        }
    }
}
