//! The listeners' TLS configurations: loaded before anything is bound (a bad file stops the
//! start), and again on every reload (`SIGUSR1`), so that the workers the reload starts serve
//! the renewed certificates. A reload whose files do not load keeps the running ones.

use std::sync::Arc;

use rustls::ServerConfig;

use super::{ListenSpec, Master};
use crate::runtime::handler::Handler;
use crate::runtime::settings::Settings;
use crate::runtime::tls::config::{self, TlsConfigError};

/// Each listener's configuration, `None` for a plain one: its own files, else (for a
/// WebSocket listener) the settings'.
pub(super) fn load_all(
    listeners: &[ListenSpec],
    settings: &Settings,
) -> Result<Vec<Option<Arc<ServerConfig>>>, TlsConfigError> {
    listeners.iter().map(|l| load_one(l, settings)).collect()
}

fn load_one(l: &ListenSpec, st: &Settings) -> Result<Option<Arc<ServerConfig>>, TlsConfigError> {
    let name = format!("{}:{}", l.host, l.port);
    let own = config::file_pair(&name, l.ssl_cert_file.as_deref(), l.ssl_key_file.as_deref())?;
    let files = match own {
        Some(f) => Some(f),
        None if l.websocket => config::file_pair(
            &name,
            st.ssl_cert_file.as_deref(),
            st.ssl_key_file.as_deref(),
        )?,
        None => None,
    };
    let Some((cert, key)) = files else {
        return Ok(None);
    };
    let cfg = config::load(&cert, &key)?;
    log::info!("{name}: TLS with {} and {}", cert.display(), key.display());
    Ok(Some(cfg))
}

impl<H: Handler> Master<H> {
    /// Loads the certificates again (after the configuration file, which may name others);
    /// workers forked from now on get them.
    pub(super) fn reload_tls(&mut self) {
        match load_all(&self.specs, &self.settings) {
            Ok(tls) => {
                if tls.iter().any(Option::is_some) {
                    log::info!("master: TLS certificates re-read");
                }
                self.tls = tls;
            }
            Err(e) => log::error!("master: keeping the running TLS certificates: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::tls::test_pki::TestPki;

    fn spec(websocket: bool) -> ListenSpec {
        ListenSpec {
            host: "127.0.0.1".into(),
            port: 1,
            websocket,
            ..ListenSpec::default()
        }
    }

    #[test]
    fn settings_apply_to_websocket_listeners_and_a_listeners_own_files_win() {
        let pki = TestPki::new("master-tls");
        let st = Settings {
            ssl_cert_file: Some(pki.cert.clone()),
            ssl_key_file: Some(pki.key.clone()),
            ..Settings::default()
        };
        let mut own = spec(false);
        own.ssl_cert_file = Some(pki.cert.clone());
        own.ssl_key_file = Some(pki.key.clone());
        let got = load_all(&[spec(true), spec(false), own], &st).unwrap();
        let tls: Vec<bool> = got.iter().map(Option::is_some).collect();
        assert_eq!(tls, [true, false, true]);
        let plain = load_all(&[spec(true)], &Settings::default()).unwrap();
        assert!(plain[0].is_none());
    }

    #[test]
    fn a_missing_half_or_a_bad_file_is_an_error_naming_it() {
        let pki = TestPki::new("master-tls-bad");
        let half = Settings {
            ssl_cert_file: Some(pki.cert.clone()),
            ..Settings::default()
        };
        let e = load_all(&[spec(true)], &half).unwrap_err().to_string();
        assert!(e.contains("ssl_key_file"), "{e}");
        let bad = Settings {
            ssl_cert_file: Some(pki.dir.join("nope.pem")),
            ssl_key_file: Some(pki.key.clone()),
            ..Settings::default()
        };
        let e = load_all(&[spec(true)], &bad).unwrap_err().to_string();
        assert!(e.contains("nope.pem"), "{e}");
    }
}
