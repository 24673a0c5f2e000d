//! Storm control: a token bucket per port and kind of flood (broadcast, multicast, unknown
//! unicast) on ingress. Frames over the rate are dropped (`storm`) instead of flooded.
//!
//! Each bucket is refilled by elapsed time at `rate` frames a second and holds at most a
//! tenth of a second's worth (at least one frame), so a burst cannot exceed the rate by more
//! than that. Several dataplane workers take tokens from one bucket at once (the queues of a
//! multiqueue port, the peers of a datagram hub), so the tokens and the time of the last
//! refill live in one `AtomicU64` changed with compare-and-swap: no token is spent twice and
//! no refill counted twice. The API changes the rate while frames pass.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::forwarding::FloodKind;

/// Tokens are counted in thousandths of a frame.
const MILLI: u64 = 1000;
/// A stamp this far (ms) behind the bucket's is not a worker that read the clock a moment
/// earlier but a bucket that was just set up or idle for weeks (the 32-bit stamp wrapped):
/// the bucket is full.
const STALE_MS: i32 = 1000;

/// Tokens (high 32 bits, thousandths of a frame) and the switch clock's millisecond of the
/// last refill (low 32 bits, wrapping) of one bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct State {
    tokens: u32,
    stamp: u32,
}

impl State {
    fn pack(self) -> u64 {
        (u64::from(self.tokens) << 32) | u64::from(self.stamp)
    }
    fn unpack(v: u64) -> State {
        State {
            tokens: (v >> 32) as u32,
            stamp: v as u32,
        }
    }
}

/// One kind's limit on one port.
#[derive(Debug, Default)]
pub struct StormBucket {
    /// Frames per second; 0 = no limit.
    rate: AtomicU64,
    /// [`State`], packed.
    state: AtomicU64,
}

impl StormBucket {
    /// The limit in frames per second (0: none).
    pub fn rate(&self) -> u64 {
        self.rate.load(Relaxed)
    }

    /// Sets the limit (0: none); the bucket starts full.
    pub fn set_rate(&self, pps: u64) {
        self.rate.store(pps, Relaxed);
        // stamp 0: the first frame finds it stale and full
        self.state.store(
            State {
                tokens: Self::burst(pps),
                stamp: 0,
            }
            .pack(),
            Relaxed,
        );
    }

    /// A tenth of a second's worth of frames, at least one, in thousandths (at most
    /// `u32::MAX`: a burst of 4.29 million frames, for rates above 42.9 million frames/s).
    fn burst(pps: u64) -> u32 {
        ((pps / 10).max(1) * MILLI).min(u64::from(u32::MAX)) as u32
    }

    /// The state after a frame at `now` (32-bit ms) asks for a token, and whether it got one.
    fn next(s: State, now: u32, rate: u64) -> (State, bool) {
        let burst = Self::burst(rate);
        let elapsed = now.wrapping_sub(s.stamp) as i32;
        let s = if elapsed < -STALE_MS {
            State {
                tokens: burst,
                stamp: now,
            }
        } else if elapsed <= 0 {
            // another worker refilled up to a moment later than our clock read: no refill
            s
        } else {
            // rate frames/s = rate thousandths/ms
            let add = (elapsed as u64).saturating_mul(rate);
            State {
                tokens: (u64::from(s.tokens).saturating_add(add)).min(u64::from(burst)) as u32,
                stamp: now,
            }
        };
        match s.tokens.checked_sub(MILLI as u32) {
            Some(t) => (State { tokens: t, ..s }, true),
            None => (s, false),
        }
    }

    /// Takes one frame's token at `now_ms`; false when the port is over its rate.
    pub fn admit(&self, now_ms: u64) -> bool {
        let rate = self.rate.load(Relaxed);
        if rate == 0 {
            return true;
        }
        let now = now_ms as u32;
        let mut cur = self.state.load(Relaxed);
        loop {
            let (s, ok) = Self::next(State::unpack(cur), now, rate);
            let new = s.pack();
            if new == cur {
                return ok;
            }
            match self.state.compare_exchange_weak(cur, new, Relaxed, Relaxed) {
                Ok(_) => return ok,
                Err(seen) => cur = seen,
            }
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

    #[test]
    fn a_stale_stamp_means_a_full_bucket_and_the_clock_may_wrap() {
        let b = StormBucket::default();
        b.set_rate(10);
        // 30 days of uptime: the 32-bit stamp of a fresh bucket is far behind
        let t = 30 * 86_400_000u64;
        assert!(b.admit(t), "a fresh bucket is full");
        assert!(!b.admit(t), "one frame of burst at 10/s");
        // a worker whose clock read is a millisecond older refills nothing
        assert!(!b.admit(t - 1));
        assert!(b.admit(t + 100), "100 ms at 10/s is one frame");
        // across the wrap of the 32-bit millisecond stamp
        let w = (1u64 << 32) - 50;
        b.set_rate(10);
        assert!(b.admit(w));
        assert!(!b.admit(w + 60));
        assert!(b.admit(w + 150));
    }

    /// Several workers take tokens from one bucket while the clock runs: together they never
    /// get more than the burst plus the rate times the time that passed.
    #[test]
    fn concurrent_workers_never_exceed_rate_times_time_plus_burst() {
        use std::sync::atomic::AtomicBool;
        use std::sync::Arc;
        // a high rate: tokens are there most of the time, so workers take them side by side
        const RATE: u64 = 1_000_000;
        const TRIES_PER_MS: u64 = 20_000;
        for round in 0..10 {
            let b = Arc::new(StormBucket::default());
            b.set_rate(RATE);
            let clock = Arc::new(AtomicU64::new(10_000));
            let tries = Arc::new(AtomicU64::new(0));
            let stop = Arc::new(AtomicBool::new(false));
            let workers: Vec<_> = (0..4)
                .map(|_| {
                    let (b, clock, tries, stop) =
                        (b.clone(), clock.clone(), tries.clone(), stop.clone());
                    std::thread::spawn(move || {
                        let mut n = 0u64;
                        while !stop.load(Relaxed) {
                            for _ in 0..100 {
                                if b.admit(clock.load(Relaxed)) {
                                    n += 1;
                                }
                            }
                            tries.fetch_add(100, Relaxed);
                        }
                        n
                    })
                })
                .collect();
            // 100 ms of switch time; a millisecond passes once the workers tried 20000 times
            // (so a busy machine slows the clock, not the test's meaning)
            let t = std::time::Instant::now();
            for ms in 1..=100 {
                while tries.load(Relaxed) < ms * TRIES_PER_MS
                    && t.elapsed() < std::time::Duration::from_secs(30)
                {
                    std::hint::spin_loop();
                }
                clock.fetch_add(1, Relaxed);
            }
            stop.store(true, Relaxed);
            let admitted: u64 = workers.into_iter().map(|w| w.join().unwrap()).sum();
            let elapsed_ms = clock.load(Relaxed) - 10_000;
            let bound = RATE / 10 + RATE * elapsed_ms / 1000;
            assert!(
                admitted <= bound,
                "round {round}: {admitted} frames admitted, at most {bound} allowed \
                 (burst {} + {RATE}/s over {elapsed_ms} ms)",
                RATE / 10
            );
            assert!(
                tries.load(Relaxed) >= 100 * TRIES_PER_MS && admitted >= RATE / 10,
                "round {round}: positive control: the burst at least ({admitted})"
            );
        }
    }
}
