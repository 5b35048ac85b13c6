//! Connections and the connect phase shared by every mode: nonblocking connects with a bounded
//! number of handshakes in flight (so the server's accept backlog never overflows into SYN
//! retransmits), the opening handshake, and a progress line.

use crate::ws::{self, FrameParser, Rng, Target};
use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use std::io::{self, ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// `--bind-ip`: the source address of every connection this process opens (each address has
/// its own ~28k ephemeral ports towards one server address).
static BIND_IP: OnceLock<IpAddr> = OnceLock::new();

pub fn set_bind_ip(ip: IpAddr) {
    let _ = BIND_IP.set(ip);
}

/// A nonblocking connect to `addr`, from `--bind-ip` when one was given.
pub fn connect_to(addr: SocketAddr) -> io::Result<TcpStream> {
    match BIND_IP.get() {
        Some(ip) => connect_from(*ip, addr),
        None => TcpStream::connect(addr),
    }
}

/// A nonblocking connect to `addr` from source address `ip` (bind before connect). The port is
/// left to connect(2) (IP_BIND_ADDRESS_NO_PORT), so ports are shared by the 4-tuple rule rather
/// than reserved per address at bind time.
pub fn connect_from(ip: IpAddr, addr: SocketAddr) -> io::Result<TcpStream> {
    use std::os::fd::FromRawFd;
    let (IpAddr::V4(src), SocketAddr::V4(dst)) = (ip, addr) else {
        return Err(io::Error::other("--bind-ip supports IPv4 only"));
    };
    let sin = |a: std::net::Ipv4Addr, port: u16| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(a.octets()),
        },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: plain socket calls on a descriptor this function owns; the addresses are local
    // structs of the size passed.
    unsafe {
        let fd = libc::socket(
            libc::AF_INET,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        );
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let stream = std::net::TcpStream::from_raw_fd(fd);
        let one: libc::c_int = 1;
        libc::setsockopt(
            fd,
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            &one as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
        let local = sin(src, 0);
        if libc::bind(fd, &local as *const _ as *const libc::sockaddr, len) != 0 {
            return Err(io::Error::last_os_error());
        }
        let remote = sin(*dst.ip(), dst.port());
        if libc::connect(fd, &remote as *const _ as *const libc::sockaddr, len) != 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINPROGRESS) {
                return Err(e);
            }
        }
        Ok(TcpStream::from_std(stream))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Connecting,
    Handshaking,
    Open,
    Closed,
}

pub struct Conn {
    pub sock: Option<TcpStream>,
    /// `wss://`: the TLS session (the buffers hold plaintext either way).
    pub tls: Option<Box<rustls::ClientConnection>>,
    pub state: State,
    /// Received bytes not yet consumed: `rbuf[..rlen]`.
    pub rbuf: Box<[u8]>,
    pub rlen: usize,
    /// Bytes to send: `wbuf[wpos..]`.
    pub wbuf: Vec<u8>,
    pub wpos: usize,
    pub accept: [u8; 28],
    pub parser: FrameParser,
    pub started: Instant,
}

pub enum ReadOutcome {
    /// `n` new bytes at `rbuf[rlen-n..rlen]`; `short` when the read did not fill the space
    /// (the socket is drained for now: with edge-triggered epoll a new event will come).
    Data {
        short: bool,
    },
    WouldBlock,
    Eof,
}

impl Conn {
    /// Writes as much of the pending output as the socket takes.
    pub fn flush(&mut self) -> io::Result<()> {
        let Some(sock) = self.sock.as_mut() else {
            return Err(ErrorKind::NotConnected.into());
        };
        if let Some(tls) = self.tls.as_mut() {
            crate::tls::flush(sock, tls, &self.wbuf[self.wpos..])?;
            self.wbuf.clear();
            self.wpos = 0;
            return Ok(());
        }
        while self.wpos < self.wbuf.len() {
            match sock.write(&self.wbuf[self.wpos..]) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(n) => self.wpos += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.wbuf.clear();
        self.wpos = 0;
        Ok(())
    }

    /// One read into the free part of `rbuf`.
    pub fn read_once(&mut self) -> io::Result<ReadOutcome> {
        let Some(sock) = self.sock.as_mut() else {
            return Err(ErrorKind::NotConnected.into());
        };
        let space = self.rbuf.len() - self.rlen;
        if space == 0 {
            return Err(io::Error::other("read buffer full"));
        }
        if let Some(tls) = self.tls.as_mut() {
            return crate::tls::read_once(sock, tls, &mut self.rbuf, &mut self.rlen);
        }
        loop {
            return match sock.read(&mut self.rbuf[self.rlen..]) {
                Ok(0) => Ok(ReadOutcome::Eof),
                Ok(n) => {
                    self.rlen += n;
                    Ok(ReadOutcome::Data { short: n < space })
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => Ok(ReadOutcome::WouldBlock),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => Err(e),
            };
        }
    }

    /// Drops the first `n` bytes of `rbuf`.
    pub fn consume(&mut self, n: usize) {
        if n > 0 {
            self.rbuf.copy_within(n..self.rlen, 0);
            self.rlen -= n;
        }
    }

    pub fn close(&mut self, poll: &Poll) {
        if let Some(mut s) = self.sock.take() {
            let _ = poll.registry().deregister(&mut s);
        }
        self.state = State::Closed;
    }

    pub fn is_open(&self) -> bool {
        self.state == State::Open
    }
}

/// A line on stderr at most once a second, once a phase has run for 2 s (`--quiet` off).
pub struct Progress {
    quiet: bool,
    tty: bool,
    start: Instant,
    last: Instant,
    printed: bool,
}

impl Progress {
    pub fn new(quiet: bool) -> Progress {
        // SAFETY: isatty on a standard descriptor.
        let tty = unsafe { libc::isatty(2) } == 1;
        let now = Instant::now();
        Progress {
            quiet,
            tty,
            start: now,
            last: now,
            printed: false,
        }
    }
    pub fn restart(&mut self) {
        self.finish();
        self.start = Instant::now();
        self.last = self.start;
    }
    pub fn tick(&mut self, now: Instant, line: impl FnOnce(f64) -> String) {
        if self.quiet
            || now.duration_since(self.start) < Duration::from_secs(2)
            || now.duration_since(self.last) < Duration::from_secs(1)
        {
            return;
        }
        self.last = now;
        let text = line(now.duration_since(self.start).as_secs_f64());
        if self.tty {
            eprint!("\r\x1b[K{text}");
        } else {
            eprintln!("{text}");
        }
        self.printed = true;
    }
    pub fn finish(&mut self) {
        if self.printed && self.tty {
            eprintln!();
        }
        self.printed = false;
    }
}

/// The byte a `--raw` connection sends and expects back before it counts as open.
const RAW_PROBE: u8 = b'*';

pub struct ConnectOpts {
    pub concurrency: usize,
    pub raw: bool,
    pub rbuf: usize,
    pub wbuf: usize,
    pub timeout: Duration,
}

pub struct Established {
    pub ok: usize,
    pub failed: usize,
    pub elapsed: Duration,
    /// Connect-to-101 time per successful connection, ns.
    pub latency: Histogram<u64>,
    pub first_error: Option<String>,
}

pub fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000_000, 3).expect("histogram bounds")
}

/// Opens `n` connections (appended to `conns`, token = index) and completes their handshakes.
pub fn establish(
    poll: &mut Poll,
    events: &mut Events,
    conns: &mut Vec<Conn>,
    target: &Target,
    n: usize,
    o: &ConnectOpts,
    progress: &mut Progress,
    label: &str,
) -> Established {
    let t0 = Instant::now();
    let mut rng = Rng::new();
    let mut res = Established {
        ok: 0,
        failed: 0,
        elapsed: Duration::ZERO,
        latency: new_hist(),
        first_error: None,
    };
    let mut started = 0usize;
    let mut inflight = 0usize;
    let mut last_scan = Instant::now();
    let fail = |res: &mut Established, e: String| {
        res.failed += 1;
        if res.first_error.is_none() {
            res.first_error = Some(e);
        }
    };
    while res.ok + res.failed < n {
        while inflight < o.concurrency && started < n {
            started += 1;
            let tls = match target
                .tls_name
                .as_deref()
                .map(crate::tls::connect)
                .transpose()
            {
                Ok(t) => t,
                Err(e) => {
                    fail(&mut res, e);
                    continue;
                }
            };
            match connect_to(target.addr) {
                Ok(mut s) => {
                    let _ = s.set_nodelay(true);
                    let tok = Token(conns.len());
                    if let Err(e) = poll.registry().register(
                        &mut s,
                        tok,
                        Interest::READABLE | Interest::WRITABLE,
                    ) {
                        fail(&mut res, format!("register: {e}"));
                        continue;
                    }
                    conns.push(Conn {
                        sock: Some(s),
                        tls,
                        state: State::Connecting,
                        rbuf: vec![0; o.rbuf].into_boxed_slice(),
                        rlen: 0,
                        wbuf: Vec::with_capacity(o.wbuf),
                        wpos: 0,
                        accept: [0; 28],
                        parser: FrameParser::default(),
                        started: Instant::now(),
                    });
                    inflight += 1;
                }
                Err(e) => fail(&mut res, format!("connect: {e}")),
            }
        }
        if let Err(e) = poll.poll(events, Some(Duration::from_millis(100))) {
            if e.kind() != ErrorKind::Interrupted {
                fail(&mut res, format!("poll: {e}"));
                break;
            }
        }
        for ev in events.iter() {
            let Some(c) = conns.get_mut(ev.token().0) else {
                continue;
            };
            if !matches!(c.state, State::Connecting | State::Handshaking) {
                continue;
            }
            match step(c, target, o.raw, &mut rng) {
                Ok(false) => {}
                Ok(true) => {
                    inflight -= 1;
                    res.ok += 1;
                    let _ = res
                        .latency
                        .record(c.started.elapsed().as_nanos().max(1) as u64);
                }
                Err(e) => {
                    inflight -= 1;
                    c.close(poll);
                    fail(&mut res, e);
                }
            }
        }
        let now = Instant::now();
        if now.duration_since(last_scan) >= Duration::from_millis(100) {
            last_scan = now;
            for c in conns.iter_mut() {
                if matches!(c.state, State::Connecting | State::Handshaking)
                    && now.duration_since(c.started) > o.timeout
                {
                    inflight -= 1;
                    c.close(poll);
                    fail(&mut res, "handshake timed out".into());
                }
            }
            progress.tick(now, |t| {
                format!(
                    "[{label} connect {t:.0}s] open={} failed={} in-flight={inflight}",
                    res.ok, res.failed
                )
            });
        }
    }
    res.elapsed = t0.elapsed();
    res
}

/// Advances one connection's connect/handshake; Ok(true) when it has just become open.
pub fn step(c: &mut Conn, t: &Target, raw: bool, rng: &mut Rng) -> Result<bool, String> {
    if c.state == State::Connecting {
        let s = c.sock.as_mut().ok_or("no socket")?;
        match s.take_error() {
            Ok(Some(e)) | Err(e) => return Err(format!("connect: {e}")),
            Ok(None) => {}
        }
        match s.peer_addr() {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::NotConnected => return Ok(false),
            Err(e) => return Err(format!("connect: {e}")),
        }
        if raw {
            // Plain TCP: one byte there and back, so "open" means the server has accepted and
            // served the connection (a bare connect completes in the kernel's accept queue).
            c.wbuf.push(RAW_PROBE);
        } else {
            let (key, accept) = ws::new_key(rng);
            c.accept = accept;
            ws::write_request(&mut c.wbuf, t, &key);
        }
        c.state = State::Handshaking;
    }
    c.flush().map_err(|e| format!("handshake write: {e}"))?;
    loop {
        match c.read_once().map_err(|e| format!("handshake read: {e}"))? {
            ReadOutcome::Eof => return Err("connection closed during handshake".into()),
            ReadOutcome::WouldBlock => return Ok(false),
            ReadOutcome::Data { .. } if raw => {
                if c.rbuf[0] != RAW_PROBE {
                    return Err("raw probe byte came back different".into());
                }
                c.consume(1);
                c.state = State::Open;
                return Ok(true);
            }
            ReadOutcome::Data { .. } => {
                if let Some(i) = c.rbuf[..c.rlen].windows(4).position(|w| w == b"\r\n\r\n") {
                    let end = i + 4;
                    ws::check_response(&c.rbuf[..end], &c.accept)?;
                    c.consume(end);
                    c.state = State::Open;
                    return Ok(true);
                }
                if c.rlen == c.rbuf.len() {
                    return Err("handshake response too large".into());
                }
            }
        }
    }
}

/// Services an idle open connection: discards data, answers pings, notices closes. Returns
/// false when the connection is gone.
pub fn drain_idle(c: &mut Conn) -> bool {
    loop {
        match c.read_once() {
            Ok(ReadOutcome::Data { short, .. }) => {
                let Conn {
                    rbuf,
                    rlen,
                    parser,
                    wbuf,
                    ..
                } = c;
                let mut alive = true;
                let used = parser.feed(&rbuf[..*rlen], |ev| match ev {
                    ws::Ev::Ping(p) => {
                        ws::write_frame(wbuf, ws::OP_PONG, p);
                        true
                    }
                    ws::Ev::Close(_) | ws::Ev::Error(_) => {
                        alive = false;
                        false
                    }
                    _ => true,
                });
                c.consume(used);
                if !alive || c.flush().is_err() {
                    return false;
                }
                if short {
                    return true;
                }
            }
            Ok(ReadOutcome::WouldBlock) => return c.flush().is_ok(),
            Ok(ReadOutcome::Eof) | Err(_) => return false,
        }
    }
}

/// Raises the soft RLIMIT_NOFILE to the hard limit.
pub fn raise_nofile() -> u64 {
    // SAFETY: plain getrlimit/setrlimit on a local struct.
    unsafe {
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) != 0 {
            return 0;
        }
        if r.rlim_cur < r.rlim_max {
            r.rlim_cur = r.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
        r.rlim_cur as u64
    }
}
