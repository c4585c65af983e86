//! GCRA, the generic cell rate algorithm: a whole rate limit in one number
//! per key, the theoretical arrival time (TAT) of the next turn.
//!
//! Why GCRA and not a token bucket: the two admit the same requests (GCRA is
//! a token bucket seen from the clock), but GCRA keeps one number instead of
//! a count and a refill time, so the Redis script reads and writes one key,
//! and a refusal says at once how long until the next turn, which is what a
//! waiting attempt needs. Waiting is a reservation: the turn is taken now,
//! for a time to come, so waiters are served in order and never race.
//!
//! The same function runs in Rust (the local limiter, the fallback, the
//! in-memory store) and, line for line, in the Lua of the Redis store.

/// What a request for turns got. A [`Store`](super::Store) of one's own
/// builds it with [`Grant::granted`], [`Grant::refused`] or
/// [`Grant::paused`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Grant {
    /// Turns granted: 0 when refused.
    pub turns: u32,
    /// Granted: how long the first turn must wait (0: now). Refused: how
    /// long until a turn (or until the pause ends).
    pub wait_us: u64,
    /// Refused because the key is paused (a shared `Retry-After`).
    pub paused: bool,
}

impl Grant {
    /// `turns` turns (at least 1), the first after `wait_us`.
    pub fn granted(turns: u32, wait_us: u64) -> Grant {
        Grant {
            turns: turns.max(1),
            wait_us,
            paused: false,
        }
    }

    /// Nothing, with the next turn `wait_us` away.
    pub fn refused(wait_us: u64) -> Grant {
        Grant {
            turns: 0,
            wait_us,
            paused: false,
        }
    }

    /// Refused while the key is paused for `remaining_us`.
    pub fn paused(remaining_us: u64) -> Grant {
        Grant {
            turns: 0,
            wait_us: remaining_us,
            paused: true,
        }
    }
}

/// The rate: one turn every `emission_us`, `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Microseconds between turns at the steady rate (at least 1).
    pub emission_us: u64,
    /// The most turns at once.
    pub burst: u32,
}

impl Rate {
    /// `per_second` turns a second (validated: 0.001 to 1,000,000).
    pub fn new(per_second: f64, burst: u32) -> Rate {
        let emission = (1e6 / per_second).round();
        Rate {
            emission_us: if emission.is_finite() {
                (emission as u64).max(1)
            } else {
                1
            },
            burst: burst.max(1),
        }
    }
}

/// Takes up to `turns` turns at `now_us` from a key whose TAT is `tat_us`
/// (0 for a key never used), and returns the new TAT and the grant.
///
/// Turns available now are granted up to `turns`. When none is, one turn is
/// reserved for when it comes if that is within `max_wait_us`; otherwise
/// nothing is granted and the TAT is left as it was.
pub fn take(tat_us: u64, now_us: u64, rate: Rate, turns: u32, max_wait_us: u64) -> (u64, Grant) {
    let t = rate.emission_us;
    let span = t.saturating_mul(u64::from(rate.burst));
    let tat = tat_us.max(now_us);
    // Turns whose time has come: those with tat + i*t - burst*t <= now.
    let room = now_us.saturating_add(span).saturating_sub(tat) / t;
    if room >= 1 {
        let granted = room.min(u64::from(turns.max(1))) as u32;
        let new_tat = tat.saturating_add(t.saturating_mul(u64::from(granted)));
        return (
            new_tat,
            Grant {
                turns: granted,
                wait_us: 0,
                paused: false,
            },
        );
    }
    let wait = tat
        .saturating_add(t)
        .saturating_sub(span)
        .saturating_sub(now_us);
    if wait > max_wait_us {
        return (
            tat_us,
            Grant {
                turns: 0,
                wait_us: wait,
                paused: false,
            },
        );
    }
    (
        tat.saturating_add(t),
        Grant {
            turns: 1,
            wait_us: wait,
            paused: false,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000;

    #[test]
    fn a_burst_then_the_steady_rate() {
        let rate = Rate::new(10.0, 5);
        let mut tat = 0;
        let now = 10 * SECOND;
        let mut granted = 0;
        for _ in 0..10 {
            let (next, grant) = take(tat, now, rate, 1, 0);
            tat = next;
            granted += grant.turns;
        }
        assert_eq!(granted, 5, "a burst of 5 at once, then nothing");
        let (_, refused) = take(tat, now, rate, 1, 0);
        assert_eq!((refused.turns, refused.wait_us), (0, 100_000));
        // 100 ms later, one more.
        let (_, later) = take(tat, now + 100_000, rate, 1, 0);
        assert_eq!(later.turns, 1);
    }

    #[test]
    fn over_any_second_no_more_than_rate_plus_burst() {
        let rate = Rate::new(200.0, 10);
        let mut tat = 0;
        let mut admitted = Vec::new();
        // A request every 100 us (10,000/s) for 3 s.
        for i in 0..30_000u64 {
            let now = SECOND + i * 100;
            let (next, grant) = take(tat, now, rate, 1, 0);
            tat = next;
            if grant.turns == 1 {
                admitted.push(now);
            }
        }
        for (i, &start) in admitted.iter().enumerate() {
            let in_second = admitted[i..]
                .iter()
                .take_while(|&&t| t < start + SECOND)
                .count();
            assert!(in_second <= 210, "{in_second} turns in one second");
        }
        assert!(admitted.len() >= 600, "{}", admitted.len());
    }

    #[test]
    fn waits_are_reservations_in_order() {
        let rate = Rate::new(10.0, 1);
        let (tat, first) = take(0, SECOND, rate, 1, SECOND);
        assert_eq!((first.turns, first.wait_us), (1, 0));
        let (tat, second) = take(tat, SECOND, rate, 1, SECOND);
        assert_eq!((second.turns, second.wait_us), (1, 100_000));
        let (tat, third) = take(tat, SECOND, rate, 1, SECOND);
        assert_eq!((third.turns, third.wait_us), (1, 200_000));
        // Too long a wait is refused and reserves nothing.
        let (same, refused) = take(tat, SECOND, rate, 1, 250_000);
        assert_eq!((refused.turns, refused.wait_us, same), (0, 300_000, tat));
    }

    #[test]
    fn leases_take_what_is_there_up_to_the_ask() {
        let rate = Rate::new(1000.0, 20);
        let (tat, lease) = take(0, SECOND, rate, 5, 0);
        assert_eq!(lease.turns, 5);
        let (tat, lease) = take(tat, SECOND, rate, 50, 0);
        assert_eq!(lease.turns, 15, "the rest of the burst");
        let (_, lease) = take(tat, SECOND + 2_000, rate, 5, 0);
        assert_eq!(lease.turns, 2, "two turns came in 2 ms");
    }

    #[test]
    fn extremes_do_not_overflow() {
        let slow = Rate::new(0.001, 100_000);
        let fast = Rate::new(1_000_000.0, 1);
        assert_eq!(fast.emission_us, 1);
        for rate in [slow, fast] {
            for (tat, now) in [(0, 0), (u64::MAX, 0), (0, u64::MAX), (u64::MAX, u64::MAX)] {
                let _ = take(tat, now, rate, 1000, u64::MAX);
            }
        }
    }
}
