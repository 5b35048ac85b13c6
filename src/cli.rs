//! The command-line shape shared by the examples: `--host H --port P --workers N`.

/// Parsed `--host`, `--port`, `--workers` (plus any other `--key value` pairs).
#[derive(Debug, Clone)]
pub struct ExampleArgs {
    /// `--host` (default `0.0.0.0`).
    pub host: String,
    /// `--port` (0 picks a free port, printed at start).
    pub port: u16,
    /// `--workers` (default: CPU count).
    pub workers: usize,
    /// Other `--key value` pairs, in order.
    pub extra: Vec<(String, String)>,
}

impl ExampleArgs {
    /// Parses `std::env::args()`, with the given default port. Exits with a usage line on
    /// malformed input.
    pub fn parse(default_port: u16) -> ExampleArgs {
        match Self::parse_from(std::env::args().skip(1), default_port) {
            Ok(a) => a,
            Err(e) => {
                eprintln!("{e}\nusage: [--host H] [--port P] [--workers N]");
                std::process::exit(2);
            }
        }
    }

    /// Parses an argument list (without the program name).
    pub fn parse_from(
        args: impl IntoIterator<Item = String>,
        default_port: u16,
    ) -> Result<ExampleArgs, String> {
        let mut a = ExampleArgs {
            host: "0.0.0.0".into(),
            port: default_port,
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            extra: Vec::new(),
        };
        let mut it = args.into_iter();
        while let Some(k) = it.next() {
            let key = k.trim_start_matches('-').to_string();
            if key == k {
                return Err(format!("unexpected argument {k}"));
            }
            let (key, v) = match key.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (key, it.next().ok_or_else(|| format!("{k} needs a value"))?),
            };
            match key.as_str() {
                "host" => a.host = v,
                "port" => a.port = v.parse().map_err(|_| format!("bad port {v}"))?,
                "workers" => {
                    a.workers = v.parse().map_err(|_| format!("bad worker count {v}"))?;
                    if a.workers == 0 {
                        return Err("--workers must be at least 1".into());
                    }
                }
                _ => a.extra.push((key, v)),
            }
        }
        Ok(a)
    }

    /// The value of an extra `--key value`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.extra
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A server on `--host`/`--port` with `settings`, its `worker_num` taken from `--workers`.
    pub fn server(&self, settings: crate::Settings) -> crate::Server {
        let mut server = crate::Server::new(&self.host, self.port);
        server.set(crate::Settings {
            worker_num: self.workers,
            ..settings
        });
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

#[cfg(test)]
mod tests {
    use super::*;

    fn p(v: &[&str]) -> Result<ExampleArgs, String> {
        ExampleArgs::parse_from(v.iter().map(|s| s.to_string()), 9502)
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
        ])
        .unwrap();
        assert_eq!((a.host.as_str(), a.port, a.workers), ("127.0.0.1", 0, 2));
        assert_eq!(a.get("pid-file"), Some("/tmp/x"));
    }

    #[test]
    fn rejects_bad_values() {
        assert!(p(&["--port", "x"]).is_err());
        assert!(p(&["--workers", "0"]).is_err());
        assert!(p(&["--port"]).is_err());
        assert!(p(&["stray"]).is_err());
    }
}
