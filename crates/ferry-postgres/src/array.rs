//! PostgreSQL array text (`{1,2,NULL}`, `{{"a b","c"},{…}}`) to JSON, which is how
//! arrays travel to engines without arrays (documented in docs/type-mapping.md).

/// How array elements become JSON scalars.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElementKind {
    /// Numbers stay JSON numbers (`NaN`/`Infinity` become strings).
    Number,
    /// `t`/`f` become `true`/`false`.
    Bool,
    /// Everything else is a JSON string.
    Text,
    /// json/jsonb elements are embedded as JSON.
    Json,
}

/// Converts PostgreSQL array text to JSON text; `None` when the text is malformed.
pub fn array_to_json(text: &str, kind: ElementKind) -> Option<String> {
    let s = text.trim();
    // optional dimension decoration: [1:2]={…}
    let s = match s.find("={") {
        Some(i) if s.starts_with('[') => &s[i + 1..],
        _ => s,
    };
    let mut p = Parser {
        b: s.as_bytes(),
        i: 0,
    };
    let v = p.array(kind)?;
    (p.i == p.b.len()).then_some(v.to_string())
}

struct Parser<'a> {
    b: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn array(&mut self, kind: ElementKind) -> Option<serde_json::Value> {
        if self.b.get(self.i) != Some(&b'{') {
            return None;
        }
        self.i += 1;
        let mut items = Vec::new();
        if self.b.get(self.i) == Some(&b'}') {
            self.i += 1;
            return Some(serde_json::Value::Array(items));
        }
        loop {
            let item = match self.b.get(self.i)? {
                b'{' => self.array(kind)?,
                b'"' => {
                    let s = self.quoted()?;
                    scalar(&s, kind, true)?
                }
                _ => {
                    let start = self.i;
                    while !matches!(self.b.get(self.i)?, b',' | b'}') {
                        self.i += 1;
                    }
                    let raw = std::str::from_utf8(&self.b[start..self.i]).ok()?;
                    if raw == "NULL" {
                        serde_json::Value::Null
                    } else {
                        scalar(raw, kind, false)?
                    }
                }
            };
            items.push(item);
            match self.b.get(self.i)? {
                b',' => self.i += 1,
                b'}' => {
                    self.i += 1;
                    return Some(serde_json::Value::Array(items));
                }
                _ => return None,
            }
        }
    }

    fn quoted(&mut self) -> Option<String> {
        self.i += 1;
        let mut out = Vec::new();
        loop {
            match *self.b.get(self.i)? {
                b'\\' => {
                    out.push(*self.b.get(self.i + 1)?);
                    self.i += 2;
                }
                b'"' => {
                    self.i += 1;
                    return String::from_utf8(out).ok();
                }
                c => {
                    out.push(c);
                    self.i += 1;
                }
            }
        }
    }
}

fn scalar(s: &str, kind: ElementKind, quoted: bool) -> Option<serde_json::Value> {
    Some(match kind {
        ElementKind::Bool if !quoted => serde_json::Value::Bool(s == "t"),
        ElementKind::Number => match serde_json::from_str::<serde_json::Number>(s) {
            Ok(n) => serde_json::Value::Number(n),
            Err(_) => serde_json::Value::String(s.to_string()),
        },
        ElementKind::Json => serde_json::from_str(s).ok()?,
        _ => serde_json::Value::String(s.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_arrays() {
        assert_eq!(
            array_to_json("{1,2,NULL}", ElementKind::Number).unwrap(),
            "[1,2,null]"
        );
        assert_eq!(
            array_to_json(r#"{"a b","c\"d",NULL,"NULL"}"#, ElementKind::Text).unwrap(),
            r#"["a b","c\"d",null,"NULL"]"#
        );
        assert_eq!(
            array_to_json("{{1,2},{3,4}}", ElementKind::Number).unwrap(),
            "[[1,2],[3,4]]"
        );
        assert_eq!(
            array_to_json("{t,f}", ElementKind::Bool).unwrap(),
            "[true,false]"
        );
        assert_eq!(
            array_to_json("[0:1]={7,8}", ElementKind::Number).unwrap(),
            "[7,8]"
        );
        assert_eq!(array_to_json("{}", ElementKind::Text).unwrap(), "[]");
        assert!(array_to_json("{1,2", ElementKind::Number).is_none());
    }
}
