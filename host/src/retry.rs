//! Capped exponential backoff with jitter, for outages of SQS or PostgreSQL.

use std::time::Duration;

use rand::Rng;

pub(crate) struct Backoff {
    next: Duration,
}

const FIRST: Duration = Duration::from_millis(100);
const CAP: Duration = Duration::from_secs(5);

impl Backoff {
    pub(crate) fn new() -> Self {
        Backoff { next: FIRST }
    }

    /// The next wait: doubling from 100 ms to 5 s, each with up to 25% jitter so that many
    /// workers do not retry in lockstep.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(CAP);
        base + base.mul_f64(rand::rng().random_range(0.0..0.25))
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}
