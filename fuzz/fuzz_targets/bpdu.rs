//! Fuzz target `bpdu`: the BPDU decoder and the RSTP bridge fed arbitrary BPDUs; the checks
//! live in `fuzz/harness.rs` (`check_bpdu`), which `tests/fuzz_regressions.rs` also replays.
#![no_main]

#[path = "../harness.rs"]
#[allow(dead_code)]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    harness::check_bpdu(data)
});
