//! Signals turned into bytes on a self-pipe, so both the master loop and worker reactors can
//! wait for them together with their other events.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, Ordering};

use nix::sys::signal::{self, SaFlags, SigAction, SigHandler, SigSet, Signal};

static WRITE_FD: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(sig: libc::c_int) {
    let fd = WRITE_FD.load(Ordering::Relaxed);
    if fd >= 0 {
        let b = sig as u8;
        // SAFETY: write(2) is async-signal-safe; errors (full pipe) are ignored on purpose.
        unsafe {
            libc::write(fd, (&b as *const u8).cast(), 1);
        }
    }
}

/// The read end of the self-pipe; the write end is kept alive inside it.
pub(crate) struct SignalPipe {
    read: OwnedFd,
    _write: OwnedFd,
}

impl SignalPipe {
    /// Routes `signals` to a fresh pipe (replacing the routing of an earlier pipe, e.g. the
    /// master's after fork) and ignores SIGPIPE.
    pub fn install(signals: &[Signal]) -> io::Result<SignalPipe> {
        let (read, write) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_NONBLOCK | nix::fcntl::OFlag::O_CLOEXEC)
                .map_err(io::Error::from)?;
        WRITE_FD.store(write.as_raw_fd(), Ordering::Relaxed);
        let act = SigAction::new(
            SigHandler::Handler(on_signal),
            SaFlags::SA_RESTART,
            SigSet::empty(),
        );
        for &s in signals {
            // SAFETY: the handler only calls write(2).
            unsafe { signal::sigaction(s, &act) }.map_err(io::Error::from)?;
        }
        let ign = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
        // SAFETY: ignoring SIGPIPE is always sound.
        unsafe { signal::sigaction(Signal::SIGPIPE, &ign) }.map_err(io::Error::from)?;
        signal::sigprocmask(
            signal::SigmaskHow::SIG_SETMASK,
            Some(&SigSet::empty()),
            None,
        )
        .map_err(io::Error::from)?;
        Ok(SignalPipe {
            read,
            _write: write,
        })
    }

    pub fn fd(&self) -> RawFd {
        self.read.as_raw_fd()
    }

    /// Signals received since the last call.
    pub fn drain(&self) -> Vec<Signal> {
        let mut out = Vec::new();
        let mut buf = [0u8; 64];
        loop {
            match nix::unistd::read(&self.read, &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend(
                    buf[..n]
                        .iter()
                        .filter_map(|&b| Signal::try_from(b as i32).ok()),
                ),
            }
        }
        out
    }
}

/// In a freshly forked child: the inherited handlers must no longer write to the parent's
/// pipe (a signal arriving before the child installs its own would be taken by the master as
/// its own). Until `install`, such signals are dropped.
pub(crate) fn detach_from_parent() {
    WRITE_FD.store(-1, Ordering::Relaxed);
}

/// Restores default dispositions (used by a freshly forked worker before installing its own).
pub(crate) fn reset(signals: &[Signal]) {
    let dfl = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    for &s in signals {
        // SAFETY: restoring the default disposition is always sound.
        let _ = unsafe { signal::sigaction(s, &dfl) };
    }
}
