//! Live packet capture and port mirroring.
//!
//! - [`pcap`]: the pcapng / classic pcap writer and reader (pure, no I/O).
pub mod pcap;
