//! Secrets never reach logs, errors or output: every URL we print goes through here.

use regex::Regex;
use std::sync::OnceLock;

/// Replaces the password of every `scheme://user:password@host` in `text` with `***`.
pub fn redact(text: &str) -> String {
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = RE.get_or_init(|| {
        Regex::new(r"(?P<pre>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)[^@\s]*@").expect("valid regex")
    });
    let once = re.replace_all(text, "${pre}***@").into_owned();
    // libpq-style `password=...` key/value pairs
    static KV: OnceLock<Regex> = OnceLock::new();
    let kv = KV.get_or_init(|| Regex::new(r"(?i)(password\s*=\s*)\S+").expect("valid regex"));
    kv.replace_all(&once, "${1}***").into_owned()
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn hides_passwords() {
        assert_eq!(
            redact("connect mysql://root:s3cr%40t@db:3306/shop failed"),
            "connect mysql://root:***@db:3306/shop failed"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(
            redact("host=x password=abc user=y"),
            "host=x password=*** user=y"
        );
    }
}
