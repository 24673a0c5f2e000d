//! Fuzz target `vlan_frame`: VLAN filtering through the whole frame path; the checks live in
//! `fuzz/harness.rs` (`check_vlan_frame`), which `tests/fuzz_regressions.rs` also replays.
#![no_main]

#[path = "../harness.rs"]
#[allow(dead_code)]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    harness::check_vlan_frame(data)
});
