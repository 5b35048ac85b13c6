//! The command lines of the examples (clap): `--host H --port P --workers N`, and
//! `--ssl-cert-file CERT --ssl-key-file KEY` for `wss://` on the same port, shared as
//! [`ExampleArgs`], which each example flattens into its own parser next to its extra flags:
//!
//! ```
//! use clap::Parser;
//! use prefork_ws::cli::{self, ExampleArgs};
//!
//! /// What the example does (shown by --help).
//! #[derive(Parser)]
//! struct Args {
//!     #[command(flatten)]
//!     common: ExampleArgs,
//!     /// An extra flag.
//!     #[arg(long, default_value_t = 5)]
//!     check: u64,
//! }
//!
//! let args: Args = cli::try_parse_from(["demo", "--workers=2", "--check", "1"], 9502).unwrap();
//! assert_eq!((args.common.port, args.common.workers, args.check), (9502, 2, 1));
//! ```

use std::ffi::OsString;
use std::path::PathBuf;

use clap::Parser;

/// `--host`, `--port`, `--workers`, `--ssl-cert-file`, `--ssl-key-file`. `--port` has no
/// default here: [`parse`] gives it the example's.
#[derive(Debug, Clone, clap::Args)]
pub struct ExampleArgs {
    /// Address to listen on.
    #[arg(long, value_name = "HOST", default_value = "0.0.0.0")]
    pub host: String,
    /// Port to listen on (0 picks a free port, printed at start).
    #[arg(long, value_name = "PORT")]
    pub port: u16,
    /// Number of worker processes, at least 1 (the default is the CPU count).
    #[arg(long, value_name = "N", default_value_t = cpu_count(), value_parser = at_least_one)]
    pub workers: usize,
    /// Also serve `GET /metrics` (Prometheus / OpenMetrics text) on this port.
    #[arg(long, value_name = "PORT")]
    pub metrics_port: Option<u16>,
    /// PEM certificate chain (server certificate first): the WebSocket port speaks TLS,
    /// `wss://` and `https://` (`ssl_cert_file`; needs --ssl-key-file).
    #[arg(long, value_name = "CERT", requires = "ssl_key_file")]
    pub ssl_cert_file: Option<PathBuf>,
    /// PEM private key of --ssl-cert-file (`ssl_key_file`).
    #[arg(long, value_name = "KEY", requires = "ssl_cert_file")]
    pub ssl_key_file: Option<PathBuf>,
}

fn cpu_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn at_least_one(s: &str) -> Result<usize, String> {
    match s.parse() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("{e}")),
    }
}

/// Parses `std::env::args()` into an example's parser `T` (which flattens [`ExampleArgs`]),
/// with `default_port` as the default of `--port`. `--help` prints the help and exits 0; bad
/// input prints the error and usage and exits 2.
pub fn parse<T: Parser>(default_port: u16) -> T {
    try_parse_from(std::env::args_os(), default_port).unwrap_or_else(|e| e.exit())
}

/// Like [`parse`], from an argument list that starts with the program name.
pub fn try_parse_from<T, I, S>(args: I, default_port: u16) -> Result<T, clap::Error>
where
    T: Parser,
    I: IntoIterator<Item = S>,
    S: Into<OsString> + Clone,
{
    // clap takes a runtime default only as a `'static` string (without its `string` feature);
    // a few bytes per parse, once per process.
    let port: &'static str = Box::leak(default_port.to_string().into_boxed_str());
    let mut cmd = T::command().mut_arg("port", |a| a.required(false).default_value(port));
    let mut matches = cmd.try_get_matches_from_mut(args)?;
    T::from_arg_matches_mut(&mut matches).map_err(|e| e.format(&mut cmd))
}

impl ExampleArgs {
    /// `settings` with `worker_num` from `--workers`, and the TLS files when given.
    pub fn settings(&self, settings: crate::Settings) -> crate::Settings {
        crate::Settings {
            worker_num: self.workers,
            ssl_cert_file: self
                .ssl_cert_file
                .clone()
                .or(settings.ssl_cert_file.clone()),
            ssl_key_file: self.ssl_key_file.clone().or(settings.ssl_key_file.clone()),
            metrics_port: self.metrics_port.or(settings.metrics_port),
            ..settings
        }
    }

    /// A server on `--host`/`--port` with `settings` (see [`settings`](Self::settings)).
    pub fn server(&self, settings: crate::Settings) -> crate::Server {
        let mut server = crate::Server::new(&self.host, self.port);
        server.set(self.settings(settings));
        server
    }

    /// Starts the server; on failure prints `name: error` and exits with status 1.
    pub fn run(server: crate::Server, name: &str) {
        if let Err(e) = server.start() {
            eprintln!("{name}: {e}");
            std::process::exit(1);
        }
    }

    /// Initialises env_logger with `info` as the default level.
    pub fn init_logging() {
        let _ = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
            .try_init();
    }
}

/// `--redis URL`, `--node-id ID`, `--presence-ttl MS` (feature `redis`): flatten it next to
/// [`ExampleArgs`]; without `--redis` the example is one node and needs no Redis.
#[cfg(feature = "redis")]
#[derive(Debug, Clone, clap::Args)]
pub struct RedisArgs {
    /// Share broadcasts and rooms with the other nodes of this Redis (`redis://HOST:PORT`).
    #[arg(long, value_name = "URL")]
    pub redis: Option<String>,
    /// This node's id (letters, digits, `_.-`; random if not given).
    #[arg(long, value_name = "ID", requires = "redis")]
    pub node_id: Option<String>,
    /// How long this node's presence key outlives a crash, in ms (default 10000).
    #[arg(long, value_name = "MS", requires = "redis")]
    pub presence_ttl: Option<u64>,
    /// Streams mode: one Redis stream instead of pub/sub, nothing lost while a node's
    /// connection is away (all nodes must use it; Node's adapters do not understand it).
    #[arg(long, requires = "redis")]
    pub redis_streams: bool,
}

#[cfg(feature = "redis")]
impl RedisArgs {
    /// The configuration the flags give (`None` without `--redis`); an invalid one prints
    /// the error and exits with status 2.
    pub fn config(&self) -> Option<crate::cluster::redis::RedisConfig> {
        let url = self.redis.as_ref()?;
        let mut c = crate::cluster::redis::RedisConfig::new(url.clone());
        if let Some(id) = &self.node_id {
            c = c.node_id(id.clone());
        }
        if let Some(ms) = self.presence_ttl {
            c = c.presence_ttl(ms);
        }
        c = c.streams(self.redis_streams);
        if let Err(e) = c.validate() {
            eprintln!("{e}");
            std::process::exit(2);
        }
        Some(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::ErrorKind;

    /// An example's parser: the common flags plus extras of each kind the examples use.
    #[derive(Debug, Parser)]
    struct Args {
        #[command(flatten)]
        common: ExampleArgs,
        #[arg(long)]
        pid_file: Option<std::path::PathBuf>,
        #[arg(long, default_value_t = 5)]
        check: u64,
        #[arg(
            long,
            action = clap::ArgAction::Set,
            num_args = 0..=1,
            default_value_t = false,
            default_missing_value = "true",
            value_parser = clap::builder::BoolishValueParser::new(),
        )]
        with_request: bool,
    }

    fn p(v: &[&str]) -> Result<Args, clap::Error> {
        try_parse_from(std::iter::once("ex").chain(v.iter().copied()), 9502)
    }

    #[test]
    fn parses_host_port_workers_and_extras() {
        let a = p(&[
            "--host",
            "127.0.0.1",
            "--port=0",
            "--workers",
            "2",
            "--pid-file",
            "/tmp/x",
            "--check=1",
        ])
        .unwrap();
        let c = &a.common;
        assert_eq!((c.host.as_str(), c.port, c.workers), ("127.0.0.1", 0, 2));
        assert_eq!(a.pid_file.as_deref(), Some(std::path::Path::new("/tmp/x")));
        assert_eq!((a.check, a.with_request), (1, false));
    }

    #[test]
    fn defaults_come_from_the_example_and_the_machine() {
        let a = p(&[]).unwrap();
        assert_eq!((a.common.host.as_str(), a.common.port), ("0.0.0.0", 9502));
        assert_eq!(a.common.workers, cpu_count());
        assert_eq!((a.pid_file, a.check), (None, 5));
        let help = p(&["--help"]).unwrap_err().to_string();
        assert!(help.contains("--port <PORT>"), "{help}");
        assert!(help.contains("[default: 9502]"), "{help}");
    }

    #[test]
    fn a_boolean_extra_takes_an_optional_value() {
        assert!(p(&["--with-request"]).unwrap().with_request);
        assert!(p(&["--with-request", "1"]).unwrap().with_request);
        assert!(
            p(&["--with-request", "--workers", "1"])
                .unwrap()
                .with_request
        );
        assert!(!p(&["--with-request=false"]).unwrap().with_request);
        assert!(p(&["--with-request", "maybe"]).is_err());
    }

    #[test]
    fn tls_files_come_in_pairs_and_reach_the_settings() {
        let a = p(&["--ssl-cert-file", "/c.pem", "--ssl-key-file", "/k.pem"]).unwrap();
        let s = a.common.settings(crate::Settings::default());
        assert_eq!(
            s.ssl_cert_file.as_deref(),
            Some(std::path::Path::new("/c.pem"))
        );
        assert_eq!(
            s.ssl_key_file.as_deref(),
            Some(std::path::Path::new("/k.pem"))
        );
        assert_eq!(s.worker_num, a.common.workers);
        let plain = p(&[]).unwrap().common.settings(crate::Settings::default());
        assert!(plain.ssl_cert_file.is_none() && plain.ssl_key_file.is_none());
        let kind = |v: &[&str]| p(v).unwrap_err().kind();
        assert_eq!(
            kind(&["--ssl-cert-file", "/c.pem"]),
            ErrorKind::MissingRequiredArgument
        );
        assert_eq!(
            kind(&["--ssl-key-file", "/k.pem"]),
            ErrorKind::MissingRequiredArgument
        );
    }

    #[test]
    fn rejects_bad_values() {
        let kind = |v: &[&str]| p(v).unwrap_err().kind();
        assert_eq!(kind(&["--port", "x"]), ErrorKind::ValueValidation);
        assert_eq!(kind(&["--workers", "0"]), ErrorKind::ValueValidation);
        assert_eq!(kind(&["--port"]), ErrorKind::InvalidValue);
        assert_eq!(kind(&["stray"]), ErrorKind::UnknownArgument);
        assert_eq!(kind(&["--no-such-flag", "1"]), ErrorKind::UnknownArgument);
        assert_eq!(kind(&["--help"]), ErrorKind::DisplayHelp);
    }
}
