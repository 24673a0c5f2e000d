//! The Internet checksum (RFC 1071) and the IPv4/IPv6 pseudo-header, for every module that
//! checks or writes TCP, UDP, IP, IGMP or ICMP checksums (offloads, GRO, VXLAN, the PMTU probe).
//!
//! Kept hand-written rather than smoltcp's `wire::ip::checksum::data`: summing 32-bit words
//! into eight independent sums is what segmenting a GSO frame for a port without offloads and
//! a tunnel's receive coalescing spend their time on (every byte is summed), and it is several
//! times faster than a 16-bit word loop (measured in `sum16_is_faster_than_word_by_word`, a
//! timing printed, not asserted).

/// Internet checksum accumulation (ones' complement sum of 16-bit big-endian words).
///
/// 32-bit words in the machine's byte order into eight independent 64-bit sums, then the 0 to
/// 31 bytes left (an odd last byte zero-padded, as the high half of its big-endian word), the
/// sums folded to 16 bits and byte-swapped to big-endian. Why that is the same sum: RFC 1071
/// section 2 (B) and (C): the ones' complement sum does not depend on byte order (swap the
/// bytes of every word and the sum comes out swapped) and may be taken over longer words,
/// folded at the end (a 32-bit word is hi * 2^16 + lo = hi + lo modulo 2^16 - 1). Eight sums
/// without carries (a 64-bit sum of 32-bit words cannot overflow before 2^32 of them, 16 GiB
/// per lane) leave no dependency chain between additions: about twice the speed of one
/// 64-bit add-with-carry chain of big-endian words (the previous version; best of 200 runs
/// over 1,448 bytes on this EPYC: 25 vs 12.5 GB/s). Summing a tunnel's TCP payloads is
/// where a VXLAN port spends a good part of its time (issue 27: 12% of the receiving
/// switch's profile, in `vxlan::gro`, and most of `Segmenter::write`'s 14% on the sending
/// one). The result is folded to 16 bits (at most 0xffff, in a `u32`), so a caller may add a
/// few more 16-bit values (a protocol number, a length) without overflow before its [`fold`].
/// (Folded only to 32 bits, a sum near `u32::MAX` plus a length overflowed: the `vlan_frame`
/// fuzz target's first crash, with pseudo-header addresses summing that high; a remote VTEP's
/// packet could do the same in `vxlan::gro`.)
pub(crate) fn sum16(acc: u32, data: &[u8]) -> u32 {
    let mut lanes = [0u64; 8];
    let mut chunks = data.chunks_exact(32);
    for c in &mut chunks {
        for (j, lane) in lanes.iter_mut().enumerate() {
            let w = [c[4 * j], c[4 * j + 1], c[4 * j + 2], c[4 * j + 3]];
            *lane += u64::from(u32::from_ne_bytes(w));
        }
    }
    let mut words = chunks.remainder().chunks_exact(4);
    for (w, lane) in (&mut words).zip(lanes.iter_mut()) {
        *lane += u64::from(u32::from_ne_bytes([w[0], w[1], w[2], w[3]]));
    }
    let mut last = [0u8; 4];
    last[..words.remainder().len()].copy_from_slice(words.remainder());
    let mut sum = u64::from(u32::from_ne_bytes(last));
    for v in lanes {
        let (s, carry) = sum.overflowing_add(v);
        sum = s + u64::from(carry);
    }
    // 64 -> 16 bits, keeping the value modulo 2^16 - 1; then to big-endian, plus `acc`
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    let be = u16::from_be(sum as u16);
    let mut r = u64::from(be) + u64::from(acc);
    while r > 0xffff {
        r = (r & 0xffff) + (r >> 16);
    }
    r as u32
}

/// The ones' complement sum of `data` added to `acc`, not yet folded (for [`csum_fold`]).
pub fn csum_add(acc: u32, data: &[u8]) -> u32 {
    sum16(acc, data)
}

/// Folds a sum of [`csum_add`] to 16 bits (not complemented).
pub fn csum_fold(acc: u32) -> u16 {
    fold(acc)
}

pub(crate) fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// Pseudo-header sum (RFC 793, RFC 8200 section 8.1) of an L4 segment of `l4_len` bytes with
/// protocol `proto`, after the IPv4 or IPv6 header that starts `ip`; not folded, so a caller
/// may add the segment's own sum before [`csum_fold`]. `ip` must hold the addresses (20 or 40
/// bytes).
pub fn pseudo(ip: &[u8], v6: bool, proto: u8, l4_len: usize) -> u32 {
    let addrs = if v6 { &ip[8..40] } else { &ip[12..20] };
    sum16(0, addrs) + u32::from(proto) + (l4_len as u32 & 0xffff) + (l4_len as u32 >> 16)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The checksum word by word, as RFC 1071 defines it.
    fn sum16_words(mut acc: u64, data: &[u8]) -> u16 {
        for c in data.chunks(2) {
            acc += u64::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
        }
        while acc > 0xffff {
            acc = (acc & 0xffff) + (acc >> 16);
        }
        acc as u16
    }

    #[test]
    fn sums_stay_addable_with_all_ones_addresses() {
        // IPv4 and IPv6 pseudo-headers whose addresses are all ones: the address sum must
        // leave room for the protocol and the length (the `vlan_frame` fuzz crash)
        let frame = [0xffu8; 14 + 40];
        for (v6, span) in [(false, 26..34), (true, 22..54)] {
            assert!(sum16(0, &frame[span.clone()]) <= 0xffff);
            let p = pseudo(&frame[14..], v6, 17, 65535);
            assert_eq!(fold(p), sum16_words(17 + 65535, &frame[span]), "v6 {v6}");
        }
    }

    #[test]
    fn sum16_equals_the_word_by_word_sum() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let data: Vec<u8> = (0..4099)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        for len in (0..64).chain([1499, 1500, 4096, 4099]) {
            for acc in [0u32, 1, 0xffff, 0x1_2345, u32::MAX] {
                assert_eq!(
                    fold(sum16(acc, &data[..len])),
                    sum16_words(u64::from(acc), &data[..len]),
                    "len {len} acc {acc:#x}"
                );
            }
        }
        let ones = vec![0xffu8; 65536];
        assert_eq!(
            fold(sum16(u32::MAX, &ones)),
            sum16_words(u64::from(u32::MAX), &ones)
        );
    }

    #[test]
    fn sum16_is_faster_than_word_by_word() {
        let data = vec![0xa5u8; 65536];
        let t = std::time::Instant::now();
        let mut x = 0u32;
        for i in 0..200u32 {
            x = x.wrapping_add(u32::from(fold(sum16(i, &data))));
        }
        let fast = t.elapsed();
        let t = std::time::Instant::now();
        let mut y = 0u32;
        for i in 0..200u32 {
            y = y.wrapping_add(u32::from(sum16_words(u64::from(i), &data)));
        }
        let words = t.elapsed();
        assert_eq!(x, y);
        eprintln!("64 KiB x 200: sum16 {fast:?}, word by word {words:?}");
    }
}
