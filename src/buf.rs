//! Frame buffers placed at a page boundary.
//!
//! Every buffer the frame path hands to the kernel (receive buffers, segmentation and VLAN
//! scratch, tunnel buffers, vhost copies) is a [`PageBuf`]: its first byte sits at the start of
//! a 4 KiB page, on purpose, not where the allocator happens to put it.
//!
//! Why: the kernel copies a frame written to a TAP into page-aligned skb pages with
//! `rep movsb`, and on CPUs with fast short `rep movsb` (FSRM, e.g. AMD EPYC) that copy is many
//! times slower when the destination lies a few bytes (under 64) past the source modulo 4 KiB.
//! glibc's memcpy avoids that case (`Avoid_Short_Distance_REP_MOVSB`); the kernel's user copy
//! does not. A TCP payload written from a buffer at page offset 0xfb0 starts at 0xfb0 + 10
//! (virtio_net_hdr) + 66 (headers) = 0xffc, four bytes before the page the kernel copies it
//! into: one TCP stream lost a quarter of its throughput to that (issue 27). From a page-aligned
//! buffer the payload starts 76 bytes into a page, so the destination is 4020 bytes "past" the
//! source: the fast case, whatever the allocator does.

use std::ops::{Deref, DerefMut};

/// The alignment of a [`PageBuf`]: one page on x86-64 and aarch64 (4 KiB).
pub const PAGE: usize = 4096;

/// A receive buffer's size: the largest frame any port can deliver.
pub const RX_BUF: usize = 65536 + 64;

/// A zeroed byte buffer of a fixed length whose first byte is page-aligned. Allocated once
/// (one page more than asked, to have room to align); moving it does not move its bytes.
pub struct PageBuf {
    raw: Box<[u8]>,
    start: usize,
    len: usize,
}

impl PageBuf {
    /// A zeroed buffer of `len` bytes starting at a page boundary.
    pub fn new(len: usize) -> PageBuf {
        let raw = vec![0u8; len + PAGE].into_boxed_slice();
        let misalign = raw.as_ptr() as usize % PAGE;
        let start = (PAGE - misalign) % PAGE;
        PageBuf { raw, start, len }
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Default for PageBuf {
    /// An empty buffer, which allocates nothing (a placeholder while a buffer is lent out).
    fn default() -> PageBuf {
        PageBuf {
            raw: Box::default(),
            start: 0,
            len: 0,
        }
    }
}

impl Deref for PageBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.raw[self.start..self.start + self.len]
    }
}

impl DerefMut for PageBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.raw[self.start..self.start + self.len]
    }
}

impl Clone for PageBuf {
    fn clone(&self) -> PageBuf {
        let mut b = PageBuf::new(self.len);
        b.copy_from_slice(self);
        b
    }
}

impl std::fmt::Debug for PageBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PageBuf").field("len", &self.len).finish()
    }
}

/// The offset of `p` in its page (0 for a page-aligned address); for tests and asserts.
pub fn page_offset(p: *const u8) -> usize {
    p as usize % PAGE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_at_a_page_whatever_the_allocator_did() {
        // allocations of odd sizes in between shift where the allocator puts the next one
        let mut keep = Vec::new();
        for pad in [1usize, 7, 100, 4000, 4095, 70000] {
            keep.push(vec![0u8; pad]);
            for len in [0usize, 1, 64, 4096, 65546, 65610] {
                let mut b = PageBuf::new(len);
                assert_eq!(page_offset(b.as_ptr()), 0, "len {len} after {pad}");
                assert_eq!(b.len(), len);
                assert!(b.iter().all(|&x| x == 0));
                if len > 0 {
                    b[len - 1] = 7;
                    let moved = b;
                    assert_eq!(page_offset(moved.as_ptr()), 0);
                    assert_eq!(moved[len - 1], 7);
                    let c = moved.clone();
                    assert_eq!(page_offset(c.as_ptr()), 0);
                    assert_eq!(&c[..], &moved[..]);
                }
            }
        }
    }
}
