//! Clocks. Deadlines, timers, heartbeats and the poll timeout run on a monotonic clock, so a
//! step of the system clock (NTP, an operator) neither closes every connection as idle nor
//! stalls timers. Wall time is only what `connection_info` and `stats` report.

use std::sync::OnceLock;
use std::time::Instant;

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// Milliseconds on the monotonic clock since the process set (the master sets the epoch before
/// it forks, so workers share it).
pub fn mono_ms() -> u64 {
    EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// Unix time in milliseconds (for reporting only).
pub fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_time_never_goes_back() {
        let a = mono_ms();
        std::thread::sleep(std::time::Duration::from_millis(5));
        let b = mono_ms();
        assert!(b >= a + 5, "{a} -> {b}");
        assert!(wall_ms() > 1_600_000_000_000);
    }
}
