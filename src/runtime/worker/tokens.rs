//! The reactor's token layout, computed from the worker's sizes so that ranges can never run
//! into each other: connections `[0, slots)`, then one token per listening socket, one per IPC
//! target region (write readiness of a full channel), then the fixed ones.

use mio::Token;

/// What a token stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    Conn(usize),
    Listener(usize),
    IpcTx(usize),
    IpcRx,
    Waker,
    Signal,
    Unknown,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Tokens {
    slots: usize,
    listeners: usize,
    regions: usize,
}

impl Tokens {
    /// `None` if the layout does not fit in a token (it always does on 64-bit targets with the
    /// limits the master checks; this keeps overflow impossible rather than unlikely).
    pub fn new(slots: usize, listeners: usize, regions: usize) -> Option<Tokens> {
        slots
            .checked_add(listeners)?
            .checked_add(regions)?
            .checked_add(3)?;
        Some(Tokens {
            slots,
            listeners,
            regions,
        })
    }

    pub fn listener(&self, i: usize) -> Token {
        debug_assert!(i < self.listeners);
        Token(self.slots + i)
    }

    pub fn ipc_tx(&self, region: usize) -> Token {
        debug_assert!(region < self.regions);
        Token(self.slots + self.listeners + region)
    }

    fn fixed(&self) -> usize {
        self.slots + self.listeners + self.regions
    }

    pub fn ipc_rx(&self) -> Token {
        Token(self.fixed())
    }

    pub fn waker(&self) -> Token {
        Token(self.fixed() + 1)
    }

    pub fn signal(&self) -> Token {
        Token(self.fixed() + 2)
    }

    pub fn classify(&self, t: Token) -> Source {
        let k = t.0;
        let fixed = self.fixed();
        if k < self.slots {
            Source::Conn(k)
        } else if k < self.slots + self.listeners {
            Source::Listener(k - self.slots)
        } else if k < fixed {
            Source::IpcTx(k - self.slots - self.listeners)
        } else {
            match k - fixed {
                0 => Source::IpcRx,
                1 => Source::Waker,
                2 => Source::Signal,
                _ => Source::Unknown,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_never_overlap_even_with_many_listeners_and_ports() {
        // 300 ports × 20 workers = 6,000 listening sockets: past the old fixed 4,096 range.
        let t = Tokens::new(20_000, 6_000, 40).unwrap();
        assert_eq!(t.classify(Token(0)), Source::Conn(0));
        assert_eq!(t.classify(Token(19_999)), Source::Conn(19_999));
        assert_eq!(t.classify(t.listener(0)), Source::Listener(0));
        assert_eq!(t.classify(t.listener(5_999)), Source::Listener(5_999));
        assert_eq!(t.classify(t.ipc_tx(0)), Source::IpcTx(0));
        assert_eq!(t.classify(t.ipc_tx(39)), Source::IpcTx(39));
        assert_eq!(t.classify(t.ipc_rx()), Source::IpcRx);
        assert_eq!(t.classify(t.waker()), Source::Waker);
        assert_eq!(t.classify(t.signal()), Source::Signal);
        assert_eq!(t.classify(Token(t.signal().0 + 1)), Source::Unknown);
        assert!(Tokens::new(usize::MAX - 2, 1, 1).is_none());
    }
}
