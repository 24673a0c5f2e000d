//! Fuzz target `api_bodies`: request bodies to every route that changes the switch, through
//! the real router; the checks live in `fuzz/harness.rs` (`check_api_bodies`), which
//! `tests/fuzz_regressions.rs` also replays.
#![no_main]

#[path = "../harness.rs"]
#[allow(dead_code)]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    harness::check_api_bodies(data)
});
