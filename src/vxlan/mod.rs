//! VXLAN overlay: wire format.

pub mod wire;
