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

/// A database URL quoted in an error, whether or not it parses: everything before its
/// last `@` is masked (user info, and a password with an unescaped `@`, `/`, `:` or
/// space, or behind a mistyped scheme such as `mysql//`, which [`redact`]'s pattern
/// would not recognise), the scheme kept when it is one.
pub fn redact_url(text: &str) -> String {
    let Some(at) = text.rfind('@') else {
        return text.to_string();
    };
    let scheme = text.split_once("://").map(|(s, _)| s).filter(|s| {
        s.len() < at
            && s.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+.-".contains(&b))
    });
    match scheme {
        Some(s) => format!("{s}://***@{}", &text[at + 1..]),
        None => format!("***@{}", &text[at + 1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::{redact, redact_url};

    /// Found by the `endpoint` fuzz target: a URL that does not parse was quoted with
    /// its password when the pattern of `redact` did not match it.
    #[test]
    fn an_invalid_url_is_quoted_without_its_password() {
        for (url, shown) in [
            ("mysql//u:s3cret@h/db", "***@h/db"),
            ("my sql://u:s3cret@h/db", "***@h/db"),
            ("mysql://u:s3cret@h:99999/db", "mysql://***@h:99999/db"),
            ("ftp://u:s3c@ret@h/db", "ftp://***@h/db"),
            ("mysql://u:s3 cret@h:x/db", "mysql://***@h:x/db"),
            ("s3cr%40://u:s3cret@[::1]:1/db", "***@[::1]:1/db"),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
            let e = crate::Endpoint::parse(url, "FERRY_TEST_NO_SUCH_VARIABLE").unwrap_err();
            assert!(!e.to_string().contains("s3"), "{url}: {e}");
        }
        assert_eq!(redact_url("postgres://h/db"), "postgres://h/db");
    }

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
