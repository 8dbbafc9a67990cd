//! A compiled rule's module over arbitrary batch frames: it must answer
//! with a well-formed output frame (an error per event it cannot decode),
//! never trap (see `weir::rules::compile::fuzzing`).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    weir::rules::compile::fuzzing::run_module(data);
});
