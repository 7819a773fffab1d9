//! Which tables a task copies: `schema.table` globs with `*` and `?`.

use crate::{Error, Result};

/// Include/exclude globs over `schema.table`.
#[derive(Debug, Clone, Default)]
pub struct ObjectFilter {
    include: Vec<(String, String)>,
    exclude: Vec<(String, String)>,
}

fn split(pattern: &str) -> Result<(String, String)> {
    match pattern.split_once('.') {
        Some((s, t)) if !s.is_empty() && !t.is_empty() => Ok((s.to_string(), t.to_string())),
        _ => Err(Error::definite(format!(
            "object pattern {pattern:?} is not of the form schema.table"
        ))
        .with_hint(
            "write e.g. \"shop.*\" or \"*.orders\"; for MySQL/MariaDB the schema is the database",
        )),
    }
}

impl ObjectFilter {
    /// Builds a filter; an empty include list means "everything".
    pub fn new(include: &[String], exclude: &[String]) -> Result<Self> {
        Ok(ObjectFilter {
            include: include.iter().map(|p| split(p)).collect::<Result<_>>()?,
            exclude: exclude.iter().map(|p| split(p)).collect::<Result<_>>()?,
        })
    }

    /// True when `schema.table` is selected.
    pub fn matches(&self, schema: &str, table: &str) -> bool {
        let hit = |(s, t): &(String, String)| glob(s, schema) && glob(t, table);
        (self.include.is_empty() || self.include.iter().any(hit)) && !self.exclude.iter().any(hit)
    }

    /// The schemas named literally (no wildcard) by include patterns, if all are literal.
    pub fn literal_schemas(&self) -> Option<Vec<String>> {
        if self.include.is_empty() {
            return None;
        }
        let mut v: Vec<String> = Vec::new();
        for (s, _) in &self.include {
            if s.contains(['*', '?']) {
                return None;
            }
            if !v.contains(s) {
                v.push(s.clone());
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
}
