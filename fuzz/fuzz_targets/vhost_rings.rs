//! Fuzz target `vhost_rings`: the vhost-user device's descriptor-chain and virtio_net_hdr
//! handling on mock rings built from the input (guest TX chains, and frames into guest RX
//! buffers). A guest is untrusted input: nothing may panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    tapswitch::port::vhost::fuzz::fuzz_tx(data);
    tapswitch::port::vhost::fuzz::fuzz_rx(data);
});
