//! Recovery of the sink's disk buffer over arbitrary bytes: the scan of a
//! segment file and of a marks file must never panic, and what it trusts
//! must hold up (see `weir::sink::fuzzing`).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    weir::sink::fuzzing::check_recovery(data);
});
