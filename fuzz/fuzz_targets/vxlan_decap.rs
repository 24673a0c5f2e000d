//! Fuzz target `vxlan_decap`: a thin wrapper; the checks live in `fuzz/harness.rs`, which
//! `tests/fuzz_regressions.rs` also uses to replay crashes and the seed corpus.
#![no_main]

#[path = "../harness.rs"]
#[allow(dead_code)]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    harness::check_vxlan_decap(data)
});
