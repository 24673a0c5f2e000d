//! An in-memory port for tests, benches and fuzzing: frames pushed into `inject` come out of
//! `recv`; frames the switch sends are collected for `take_sent`.

use std::collections::VecDeque;
use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering::Relaxed};
use std::sync::Mutex;

use super::{Link, Port, PortKind};

/// See the module documentation.
#[derive(Debug)]
pub struct MemPort {
    rx: Mutex<VecDeque<Vec<u8>>>,
    tx: Mutex<VecDeque<Vec<u8>>>,
    up: AtomicBool,
    /// What [`Port::link`] answers: 0 no opinion (the port does not follow a link), 1 up,
    /// 2 down, 3 gone.
    link: AtomicU8,
    mtu: u32,
    /// Queue limit on sent frames; beyond it `send` returns WouldBlock (a peer not reading).
    tx_limit: usize,
    vnet: bool,
}

impl Default for MemPort {
    fn default() -> Self {
        MemPort::new(1500)
    }
}

impl MemPort {
    /// A port with this MTU, up.
    pub fn new(mtu: u32) -> Self {
        MemPort {
            rx: Mutex::default(),
            tx: Mutex::default(),
            up: AtomicBool::new(true),
            link: AtomicU8::new(0),
            mtu,
            tx_limit: usize::MAX,
            vnet: false,
        }
    }

    /// Frames in and out of this port carry a 10-byte virtio_net_hdr (an offload port).
    pub fn with_vnet_hdr(mut self) -> Self {
        self.vnet = true;
        self
    }

    /// Limits the queue of sent frames not yet taken.
    pub fn with_tx_limit(mut self, n: usize) -> Self {
        self.tx_limit = n;
        self
    }

    /// Queues a frame for the switch to receive.
    pub fn inject(&self, frame: &[u8]) {
        self.rx.lock().unwrap().push_back(frame.to_vec());
    }

    /// Takes every frame the switch sent out of this port.
    pub fn take_sent(&self) -> Vec<Vec<u8>> {
        self.tx.lock().unwrap().drain(..).collect()
    }

    /// Simulates the interface going down (sends fail with EIO) or up.
    pub fn set_up(&self, up: bool) {
        self.up.store(up, Relaxed);
    }

    /// Makes the port follow a link, as a TAP does ([`Port::follows_link`]), starting with
    /// carrier: its state then comes from [`MemPort::set_link`], not from its reads and
    /// writes. Sends fail with EIO while the link is not up.
    pub fn with_link(self) -> Self {
        self.link.store(1, Relaxed);
        self
    }

    /// Simulates the link's admin state and carrier (for a port made [`MemPort::with_link`]).
    pub fn set_link(&self, l: Link) {
        self.link.store(
            match l {
                Link::Up => 1,
                Link::Down => 2,
                Link::Gone => 3,
            },
            Relaxed,
        );
        self.up.store(l == Link::Up, Relaxed);
    }
}

impl Port for MemPort {
    fn kind(&self) -> PortKind {
        PortKind::Mem
    }

    fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self.rx.lock().unwrap().pop_front() {
            Some(f) => {
                let n = f.len().min(buf.len());
                buf[..n].copy_from_slice(&f[..n]);
                Ok(n)
            }
            None => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    fn send(&self, frame: &[u8]) -> io::Result<()> {
        if !self.up.load(Relaxed) {
            return Err(io::Error::from_raw_os_error(libc::EIO));
        }
        let mut tx = self.tx.lock().unwrap();
        if tx.len() >= self.tx_limit {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        tx.push_back(frame.to_vec());
        Ok(())
    }

    fn poll_fd(&self) -> Option<RawFd> {
        None
    }

    fn mtu(&self) -> u32 {
        self.mtu
    }

    fn follows_link(&self) -> bool {
        self.link.load(Relaxed) != 0
    }

    fn link(&self) -> Option<Link> {
        match self.link.load(Relaxed) {
            1 => Some(Link::Up),
            2 => Some(Link::Down),
            3 => Some(Link::Gone),
            _ => None,
        }
    }

    fn vnet_hdr_len(&self) -> usize {
        if self.vnet {
            crate::offload::VNET_HDR_LEN
        } else {
            0
        }
    }
}
