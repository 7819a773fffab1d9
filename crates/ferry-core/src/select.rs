//! Which tables a task copies: `schema.table` globs with `*` and `?`.
//!
//! A name part in double quotes is taken literally — no wildcards, and a dot inside it
//! belongs to the name: `"a.b".*` selects every table of the schema `a.b`, and
//! `shop."order.items"` one table whose name has a dot. `""` inside quotes stands for
//! one `"`. An unquoted pattern must have exactly one dot, so a pattern that could
//! split two ways (`a.b.c`) is refused instead of silently matching one reading.

use crate::{Error, Result, TableId};

/// One side (schema or table) of a pattern.
#[derive(Debug, Clone, PartialEq)]
enum Part {
    /// Unquoted: `*` and `?` are wildcards.
    Glob(String),
    /// Quoted: matched exactly.
    Exact(String),
}

impl Part {
    fn matches(&self, text: &str) -> bool {
        match self {
            Part::Glob(p) => glob(p, text),
            Part::Exact(s) => s == text,
        }
    }

    fn literal(&self) -> Option<&str> {
        match self {
            Part::Glob(p) if p.contains(['*', '?']) => None,
            Part::Glob(p) | Part::Exact(p) => Some(p),
        }
    }
}

/// One include or exclude pattern, with the text the user wrote (for messages).
#[derive(Debug, Clone)]
struct Pattern {
    text: String,
    schema: Part,
    table: Part,
}

impl Pattern {
    fn matches(&self, schema: &str, table: &str) -> bool {
        self.schema.matches(schema) && self.table.matches(table)
    }
}

/// Splits `text` into name parts at unquoted dots; `"…"` parts are exact.
/// `None` when a quote is unbalanced or text follows a closing quote.
fn parts(text: &str) -> Option<Vec<Part>> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        if chars.peek() == Some(&'"') {
            chars.next();
            let mut s = String::new();
            loop {
                match chars.next()? {
                    '"' if chars.peek() == Some(&'"') => {
                        chars.next();
                        s.push('"');
                    }
                    '"' => break,
                    c => s.push(c),
                }
            }
            out.push(Part::Exact(s));
            match chars.next() {
                None => return Some(out),
                Some('.') => {}
                Some(_) => return None,
            }
        } else {
            let mut s = String::new();
            loop {
                match chars.next() {
                    None => {
                        out.push(Part::Glob(s));
                        return Some(out);
                    }
                    Some('.') => break,
                    Some(c) => s.push(c),
                }
            }
            out.push(Part::Glob(s));
        }
    }
}

fn pattern(text: &str) -> Result<Pattern> {
    let bad = |why: &str| {
        Error::definite(format!("object pattern {text:?} {why}")).with_hint(
            "write schema.table, e.g. \"shop.*\" or \"*.orders\" (for MySQL/MariaDB the schema is \
             the database); put a name that contains a dot in double quotes: '\"a.b\".*'",
        )
    };
    let p = parts(text).ok_or_else(|| bad("has an unbalanced or misplaced double quote"))?;
    let empty = |p: &Part| matches!(p, Part::Glob(s) if s.is_empty());
    match <[Part; 2]>::try_from(p) {
        Ok([schema, table]) if !empty(&schema) && !empty(&table) => Ok(Pattern {
            text: text.to_string(),
            schema,
            table,
        }),
        Ok(_) => Err(bad("is not of the form schema.table")),
        Err(p) if p.len() > 2 => Err(bad(
            "has more than one dot outside double quotes, so it could name different tables",
        )),
        Err(_) => Err(bad("is not of the form schema.table")),
    }
}

/// Include/exclude globs over `schema.table`.
#[derive(Debug, Clone, Default)]
pub struct ObjectFilter {
    include: Vec<Pattern>,
    exclude: Vec<Pattern>,
}

impl ObjectFilter {
    /// Builds a filter; an empty include list means "everything".
    pub fn new(include: &[String], exclude: &[String]) -> Result<Self> {
        Ok(ObjectFilter {
            include: include.iter().map(|p| pattern(p)).collect::<Result<_>>()?,
            exclude: exclude.iter().map(|p| pattern(p)).collect::<Result<_>>()?,
        })
    }

    /// A filter selecting exactly one table, whatever characters its names hold
    /// (dots, `*`, quotes): for reading one known table back from a catalog.
    pub fn table(id: &TableId) -> Self {
        ObjectFilter {
            include: vec![Pattern {
                text: id.to_string(),
                schema: Part::Exact(id.schema.clone()),
                table: Part::Exact(id.name.clone()),
            }],
            exclude: vec![],
        }
    }

    /// True when `schema.table` is selected.
    pub fn matches(&self, schema: &str, table: &str) -> bool {
        let hit = |p: &Pattern| p.matches(schema, table);
        (self.include.is_empty() || self.include.iter().any(hit)) && !self.exclude.iter().any(hit)
    }

    /// The include patterns (as written) that select none of `selected` — a typo or a
    /// quoting mistake that would otherwise leave tables out without a word.
    pub fn unmatched_includes<'a>(
        &'a self,
        selected: impl IntoIterator<Item = &'a TableId> + Clone,
    ) -> Vec<&'a str> {
        self.include
            .iter()
            .filter(|p| {
                !selected
                    .clone()
                    .into_iter()
                    .any(|t| p.matches(&t.schema, &t.name))
            })
            .map(|p| p.text.as_str())
            .collect()
    }

    /// The exclude patterns (as written) that leave out none of `all` (every table of
    /// the source, before selection) that the include patterns select: a typo there
    /// copies what the user meant to leave out.
    pub fn unmatched_excludes<'a>(&'a self, all: &[TableId]) -> Vec<&'a str> {
        let included = |t: &TableId| {
            self.include.is_empty() || self.include.iter().any(|p| p.matches(&t.schema, &t.name))
        };
        self.exclude
            .iter()
            .filter(|p| {
                !all.iter()
                    .any(|t| included(t) && p.matches(&t.schema, &t.name))
            })
            .map(|p| p.text.as_str())
            .collect()
    }

    /// The schemas named literally (no wildcard) by include patterns, if all are literal.
    pub fn literal_schemas(&self) -> Option<Vec<String>> {
        if self.include.is_empty() {
            return None;
        }
        let mut v: Vec<String> = Vec::new();
        for p in &self.include {
            let s = p.schema.literal()?;
            if !v.iter().any(|x| x == s) {
                v.push(s.to_string());
            }
        }
        Some(v)
    }
}

/// Glob match with `*` (any run) and `?` (one character).
pub fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob("*", ""));
        assert!(glob("audit_*", "audit_log"));
        assert!(!glob("audit_*", "orders"));
        assert!(glob("a?c*", "abcdef"));
        assert!(glob("*x*y", "axxbxy"));
        assert!(!glob("*x*y", "axxbxyz"));
    }

    #[test]
    fn filter() {
        let f = ObjectFilter::new(&["shop.*".into()], &["shop.audit_*".into()]).unwrap();
        assert!(f.matches("shop", "orders"));
        assert!(!f.matches("shop", "audit_x"));
        assert!(!f.matches("other", "orders"));
        assert_eq!(f.literal_schemas(), Some(vec!["shop".to_string()]));
        assert!(ObjectFilter::new(&["noschema".into()], &[]).is_err());
        assert!(ObjectFilter::default().matches("a", "b"));
    }

    #[test]
    fn quoted_names_hold_dots() {
        let f = ObjectFilter::new(&["\"a.b\".*".into()], &[]).unwrap();
        assert!(f.matches("a.b", "t"));
        assert!(!f.matches("a", "b.t"));
        assert_eq!(f.literal_schemas(), Some(vec!["a.b".to_string()]));
        let f = ObjectFilter::new(&["s.\"x.y\"".into(), "\"q\"\"*\".t".into()], &[]).unwrap();
        assert!(f.matches("s", "x.y"));
        assert!(f.matches("q\"*", "t"));
        assert!(!f.matches("q\"z", "t"), "quoted parts have no wildcards");
        // one reading would be silently chosen: refused
        for bad in ["a.b.*", "\"a.b", "\"a\"b.t", "\"a\".", ".t"] {
            assert!(ObjectFilter::new(&[bad.into()], &[]).is_err(), "{bad}");
        }
    }

    #[test]
    fn exact_table_filter_and_unmatched_patterns() {
        let id = TableId::new("a.b", "c*");
        let f = ObjectFilter::table(&id);
        assert!(f.matches("a.b", "c*"));
        assert!(!f.matches("a.b", "cd"));
        let f = ObjectFilter::new(&["shop.*".into(), "shpo.*".into()], &[]).unwrap();
        let ids = [TableId::new("shop", "orders")];
        assert_eq!(f.unmatched_includes(&ids), vec!["shpo.*"]);
        let f = ObjectFilter::new(
            &["shop.*".into()],
            &["shop.audti_*".into(), "shop.o*".into()],
        )
        .unwrap();
        assert_eq!(f.unmatched_excludes(&ids), vec!["shop.audti_*"]);
    }
}
