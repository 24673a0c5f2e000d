//! Fuzz target `port_spec`: the port spec grammar (`--port`, the API's and the config file's
//! `spec`); the checks live in `fuzz/harness.rs` (`check_port_spec`), which
//! `tests/fuzz_regressions.rs` also replays.
#![no_main]

#[path = "../harness.rs"]
#[allow(dead_code)]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    harness::check_port_spec(data)
});
