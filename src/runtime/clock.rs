//! Clocks. Deadlines, timers, heartbeats and the poll timeout run on a monotonic clock, so a
//! step of the system clock (NTP, an operator) neither closes every connection as idle nor
//! stalls timers. Wall time is only what `connection_info` and `stats` report.

/// Milliseconds on the system's monotonic clock (`CLOCK_MONOTONIC`, since boot): the same
/// in every process, so deadlines and last-receive times keep their meaning when a
/// connection moves to a worker of another master (a binary upgrade).
pub fn mono_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
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
