//! Storm control: a token bucket per port and kind of flood (broadcast, multicast, unknown
//! unicast) on ingress. Frames over the rate are dropped (`storm`) instead of flooded.
//!
//! Each bucket is refilled by elapsed time at `rate` frames a second and holds at most a
//! tenth of a second's worth (at least one frame), so a burst cannot exceed the rate by more
//! than that. Only the thread that reads the port touches its buckets; the atomics let the
//! API change the rate while it runs.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::switch::FloodKind;

/// Tokens are counted in thousandths of a frame.
const MILLI: u64 = 1000;

/// One kind's limit on one port.
#[derive(Debug, Default)]
pub struct StormBucket {
    /// Frames per second; 0 = no limit.
    rate: AtomicU64,
    /// Thousandths of a frame available.
    tokens: AtomicU64,
    /// Milliseconds (switch clock) of the last refill.
    last_ms: AtomicU64,
}

impl StormBucket {
    /// The limit in frames per second (0: none).
    pub fn rate(&self) -> u64 {
        self.rate.load(Relaxed)
    }

    /// Sets the limit (0: none); the bucket starts full.
    pub fn set_rate(&self, pps: u64) {
        self.rate.store(pps, Relaxed);
        self.tokens.store(Self::burst(pps), Relaxed);
        self.last_ms.store(0, Relaxed);
    }

    fn burst(pps: u64) -> u64 {
        (pps / 10).max(1) * MILLI
    }

    /// Takes one frame's token at `now_ms`; false when the port is over its rate.
    pub fn admit(&self, now_ms: u64) -> bool {
        let rate = self.rate.load(Relaxed);
        if rate == 0 {
            return true;
        }
        let last = self.last_ms.load(Relaxed);
        let mut tokens = self.tokens.load(Relaxed);
        if now_ms > last {
            // rate frames/s = rate milli-frames/ms
            tokens = (tokens + (now_ms - last) * rate).min(Self::burst(rate));
            self.last_ms.store(now_ms, Relaxed);
        }
        if tokens >= MILLI {
            self.tokens.store(tokens - MILLI, Relaxed);
            true
        } else {
            self.tokens.store(tokens, Relaxed);
            false
        }
    }
}

/// The three buckets of a port, by [`FloodKind`].
#[derive(Debug, Default)]
pub struct Storm {
    buckets: [StormBucket; 3],
}

impl Storm {
    /// The bucket of one kind.
    pub fn bucket(&self, k: FloodKind) -> &StormBucket {
        &self.buckets[k as usize]
    }

    /// Whether any limit is set.
    pub fn any(&self) -> bool {
        self.buckets.iter().any(|b| b.rate() != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_keeps_the_rate_with_a_tenth_of_a_second_burst() {
        let b = StormBucket::default();
        assert!(b.admit(0), "no limit");
        b.set_rate(100);
        // a full bucket: 10 frames at once
        let burst = (0..50).filter(|_| b.admit(1000)).count();
        assert_eq!(burst, 10);
        // then 100 frames a second: over 2 s of 1000 tries each ms, about 200
        let mut n = 0;
        for ms in 1001..=3000 {
            if b.admit(ms) {
                n += 1;
            }
        }
        assert!((195..=205).contains(&n), "{n}");
        b.set_rate(0);
        assert!(b.admit(3000));
    }
}
