//! The task-file parser: any text a user (or an API caller, as `spec`) sends is
//! either a task or a definite error with a message — never a panic. The same text
//! also goes through the DR switchover's rewrite of a stored spec.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match ferry_core::TaskSpec::from_yaml(text) {
        Ok(spec) => {
            // a parsed spec turns round (a DR switchover) without a panic
            let back = spec.reversed();
            assert_eq!(back.source.engine, spec.target.engine);
        }
        Err(e) => assert!(!e.message.is_empty(), "an error without a message"),
    }
    let _ = ferry_core::spec::reverse_spec_text(text);
});
