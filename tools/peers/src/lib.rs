//! Shared bits of the peer servers: the `--host --port` command line, the fd limit, and the
//! `listening at HOST:PORT` line the bench script waits for.

use std::io::Write;

/// `--host H --port P` (port 0 picks a free port; the real one is printed).
#[derive(clap::Parser, Debug, Clone)]
pub struct PeerArgs {
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    #[arg(long, default_value_t = 9503)]
    pub port: u16,
}

impl PeerArgs {
    pub fn parse_args() -> PeerArgs {
        <PeerArgs as clap::Parser>::parse()
    }
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// Raises the soft RLIMIT_NOFILE to the hard limit (10,000 idle connections need it).
pub fn raise_nofile() {
    // SAFETY: plain getrlimit/setrlimit on a local struct.
    unsafe {
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 && r.rlim_cur < r.rlim_max {
            r.rlim_cur = r.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
}

/// Prints `listening at HOST:PORT` on stdout and flushes it.
pub fn announce(addr: std::net::SocketAddr) {
    println!("listening at {}:{}", addr.ip(), addr.port());
    let _ = std::io::stdout().flush();
}
