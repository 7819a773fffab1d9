//! Database URL parsing: any text is an endpoint or an error that says what is
//! wrong — never a panic, and never an error that quotes the URL's password.
#![no_main]

use libfuzzer_sys::fuzz_target;

/// The password of `scheme://user:password@host…` as the URL standard reads it: the
/// authority ends at the first `/`, `?` or `#` (or `\` for special schemes, which
/// ours are not), the user info at the authority's last `@`, the user at its first `:`.
fn password_in(text: &str) -> Option<&str> {
    // a mistyped scheme (`mysql//u:pw@h`): the user info starts the text
    let rest = text.split_once("://").map_or(text, |(_, r)| r);
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let (userinfo, _) = authority.rsplit_once('@')?;
    let (_, password) = userinfo.split_once(':')?;
    Some(password)
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match ferry_core::Endpoint::parse(text, "FERRY_FUZZ_PASSWORD_NOT_SET") {
        Ok(e) => {
            // what logs and errors print of an endpoint never holds its password
            if let Some(pw) = e.password.as_deref().filter(|p| p.len() >= 4) {
                let shown = format!("{e} {e:?}");
                if !text.replacen(pw, "", 1).contains(pw) && !e.host.contains(pw) {
                    assert!(
                        !shown.contains(pw)
                            || e.user.contains(pw)
                            || e.database.as_deref().is_some_and(|d| d.contains(pw)),
                        "{shown:?} shows the password {pw:?}"
                    );
                }
            }
        }
        Err(e) => {
            assert!(!e.message.is_empty(), "an error without a message");
            // a password that occurs once in the text must not be quoted back
            if let Some(pw) = password_in(text).filter(|p| p.len() >= 4) {
                // (unless the error's fixed wording holds the same text: it still
                // does with the password replaced)
                let fixed = ferry_core::Endpoint::parse(
                    &text.replacen(pw, "\u{7f}", 1),
                    "FERRY_FUZZ_PASSWORD_NOT_SET",
                )
                .err()
                .is_some_and(|e| e.to_string().contains(pw));
                if !text.replacen(pw, "", 1).contains(pw) && !fixed {
                    let shown = e.to_string();
                    assert!(
                        !shown.contains(pw),
                        "the error {shown:?} quotes the password {pw:?}"
                    );
                }
            }
        }
    }
});
