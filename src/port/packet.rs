//! `packet:IFNAME` ports: an existing interface attached by its kernel side with an AF_PACKET
//! socket (placeholder; see the module that replaces it).

use std::io;
use std::os::fd::RawFd;

use super::{Port, PortKind};

/// Why a packet port could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum PacketError {
    #[error("packet ports are not built yet")]
    Unsupported,
}

/// An interface attached with AF_PACKET.
#[derive(Debug)]
pub struct PacketPort {}

impl PacketPort {
    /// Attaches `ifname`.
    pub fn open(
        _ifname: &str,
        _mtu: Option<u32>,
        _offload: bool,
    ) -> Result<PacketPort, PacketError> {
        Err(PacketError::Unsupported)
    }
}

impl Port for PacketPort {
    fn kind(&self) -> PortKind {
        PortKind::Packet
    }
    fn recv(&self, _buf: &mut [u8]) -> io::Result<usize> {
        Err(io::ErrorKind::WouldBlock.into())
    }
    fn send(&self, _frame: &[u8]) -> io::Result<()> {
        Err(io::Error::from_raw_os_error(libc::ENETDOWN))
    }
    fn poll_fd(&self) -> Option<RawFd> {
        None
    }
    fn mtu(&self) -> u32 {
        1500
    }
}
