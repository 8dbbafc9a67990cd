//! The rule compiler over arbitrary rule files (TOML, or `sql \0 template
//! \0 key`): it must either give a module the runtime accepts or an error
//! with a message, never panic (see `weir::rules::compile::fuzzing`).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    weir::rules::compile::fuzzing::compile_rule(data);
});
