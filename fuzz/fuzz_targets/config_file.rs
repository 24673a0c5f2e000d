//! Fuzz target `config_file`: the TOML configuration file's text, raw or built from its real
//! keys and tables; the checks live in `fuzz/harness.rs` (`check_config_file`), which
//! `tests/fuzz_regressions.rs` also replays.
#![no_main]

#[path = "../harness.rs"]
#[allow(dead_code)]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    harness::check_config_file(data)
});
