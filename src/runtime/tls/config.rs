//! A listener's certificate chain and private key (PEM files, Swoole's `ssl_cert_file` and
//! `ssl_key_file`) turned into a rustls server configuration: ring provider, TLS 1.2 and 1.3
//! with rustls's safe defaults, ALPN `http/1.1` (WebSocket and plain HTTP share the port).
//!
//! The master loads every listener's files before it binds anything, so a bad file stops the
//! start with an error naming the file; on a reload (`SIGUSR1`) it loads them again, and a
//! file that no longer loads keeps the running certificates (and says why).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;

/// Why a listener's TLS configuration cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    /// One of the two settings is given without the other.
    #[error("listener {listener}: {given} is set but {missing} is not (TLS needs both)")]
    Incomplete {
        /// `host:port` of the listener.
        listener: String,
        /// The setting that is given.
        given: &'static str,
        /// The setting that is missing.
        missing: &'static str,
    },
    /// A file cannot be read, or holds no usable PEM item.
    #[error("cannot load {setting} {}: {reason}", path.display())]
    File {
        /// `ssl_cert_file` or `ssl_key_file`.
        setting: &'static str,
        /// The file as configured.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// rustls refuses the pair: the key does not belong to the certificate, or its type is
    /// not supported.
    #[error("ssl_cert_file {} with ssl_key_file {}: {reason}", cert.display(), key.display())]
    Pair {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// rustls's reason.
        reason: String,
    },
}

/// The certificate and key files of a listener, checked to come in pairs: `Ok(None)` when
/// neither is set.
pub(crate) fn file_pair(
    listener: &str,
    cert: Option<&Path>,
    key: Option<&Path>,
) -> Result<Option<(PathBuf, PathBuf)>, TlsConfigError> {
    let incomplete = |given, missing| TlsConfigError::Incomplete {
        listener: listener.to_string(),
        given,
        missing,
    };
    match (cert, key) {
        (None, None) => Ok(None),
        (Some(c), Some(k)) => Ok(Some((c.to_path_buf(), k.to_path_buf()))),
        (Some(_), None) => Err(incomplete("ssl_cert_file", "ssl_key_file")),
        (None, Some(_)) => Err(incomplete("ssl_key_file", "ssl_cert_file")),
    }
}

/// Reads `cert` (the chain, leaf first) and `key` into a server configuration.
pub(crate) fn load(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsConfigError> {
    let chain = load_chain(cert)?;
    let key_der = load_key(key)?;
    let pair = |e: rustls::Error| TlsConfigError::Pair {
        cert: cert.to_path_buf(),
        key: key.to_path_buf(),
        reason: pair_reason(&e),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(pair)?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(pair)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn load_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let err = |reason: String| TlsConfigError::File {
        setting: "ssl_cert_file",
        path: path.to_path_buf(),
        reason,
    };
    let chain = CertificateDer::pem_file_iter(path)
        .and_then(|items| items.collect::<Result<Vec<_>, _>>())
        .map_err(|e| err(pem_reason(e, "CERTIFICATE")))?;
    if chain.is_empty() {
        return Err(err(pem_reason(pem::Error::NoItemsFound, "CERTIFICATE")));
    }
    Ok(chain)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsConfigError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| TlsConfigError::File {
        setting: "ssl_key_file",
        path: path.to_path_buf(),
        reason: pem_reason(e, "PRIVATE KEY"),
    })
}

/// rustls's refusal of a certificate and key, in words.
fn pair_reason(e: &rustls::Error) -> String {
    use rustls::InconsistentKeys;
    match e {
        rustls::Error::InconsistentKeys(InconsistentKeys::KeyMismatch) => {
            "the private key does not belong to the certificate".into()
        }
        other => other.to_string(),
    }
}

/// A PEM error in words; `label` names the section that was looked for.
fn pem_reason(e: pem::Error, label: &str) -> String {
    match e {
        pem::Error::Io(io) => io.to_string(),
        pem::Error::NoItemsFound => format!("no PEM `{label}` section in the file"),
        other => format!("not a valid PEM file ({other})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::tls::test_pki::TestPki;

    #[test]
    fn a_good_pair_loads_with_alpn_http_1_1() {
        let pki = TestPki::new("config-good");
        let cfg = load(&pki.cert, &pki.key).unwrap();
        assert_eq!(cfg.alpn_protocols, vec![b"http/1.1".to_vec()]);
    }

    #[test]
    fn every_bad_file_is_named_with_its_setting() {
        let pki = TestPki::new("config-bad");
        let missing = pki.dir.join("missing.pem");
        let garbage = pki.dir.join("garbage.pem");
        std::fs::write(&garbage, "this is not PEM\n").unwrap();
        let truncated = pki.dir.join("truncated.pem");
        let text = std::fs::read_to_string(&pki.cert).unwrap();
        std::fs::write(&truncated, &text[..text.len() / 2]).unwrap();
        let cases = [
            (load(&missing, &pki.key), "ssl_cert_file", &missing),
            (load(&garbage, &pki.key), "ssl_cert_file", &garbage),
            (load(&truncated, &pki.key), "ssl_cert_file", &truncated),
            (load(&pki.key, &pki.key), "ssl_cert_file", &pki.key),
            (load(&pki.cert, &missing), "ssl_key_file", &missing),
            (load(&pki.cert, &garbage), "ssl_key_file", &garbage),
            (load(&pki.cert, &pki.cert), "ssl_key_file", &pki.cert),
        ];
        for (res, setting, path) in cases {
            let e = res.unwrap_err().to_string();
            let want = format!("cannot load {setting} {}: ", path.display());
            assert!(e.starts_with(&want), "{e}");
        }
    }

    #[test]
    fn a_key_of_another_certificate_is_refused_naming_both_files() {
        let a = TestPki::new("config-pair-a");
        let b = TestPki::new("config-pair-b");
        let e = load(&a.cert, &b.key).unwrap_err().to_string();
        assert!(
            e.ends_with(": the private key does not belong to the certificate"),
            "{e}"
        );
        assert!(e.contains(&a.cert.display().to_string()), "{e}");
        assert!(e.contains(&b.key.display().to_string()), "{e}");
    }

    #[test]
    fn the_two_settings_come_in_pairs() {
        let p = Path::new("/x.pem");
        assert!(file_pair("h:1", None, None).unwrap().is_none());
        assert!(file_pair("h:1", Some(p), Some(p)).unwrap().is_some());
        let e = file_pair("h:1", Some(p), None).unwrap_err().to_string();
        assert_eq!(
            e,
            "listener h:1: ssl_cert_file is set but ssl_key_file is not (TLS needs both)"
        );
        let e = file_pair("h:1", None, Some(p)).unwrap_err().to_string();
        assert!(
            e.contains("ssl_key_file is set but ssl_cert_file is not"),
            "{e}"
        );
    }
}
