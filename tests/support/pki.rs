//! Test-only certificates, generated at test time with rcgen (nothing private is committed):
//! a CA, and a server certificate it signs for `localhost` and `127.0.0.1`. Shared by the
//! unit tests (src/runtime/tls), the integration tests (tests/support) and the `test_certs`
//! example that the Python, Node and browser tests run to get their files.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

/// The files of a test CA and of the server certificate it signed.
pub struct TestPki {
    /// Where the files are.
    pub dir: PathBuf,
    /// The CA certificate (PEM): what clients trust.
    pub ca: PathBuf,
    /// The server certificate chain (PEM): the server certificate, then the CA.
    pub cert: PathBuf,
    /// The server's private key (PEM, PKCS#8).
    pub key: PathBuf,
    /// The CA certificate (DER), for rustls root stores.
    pub ca_der: Vec<u8>,
    /// Remove `dir` on drop (a fresh temporary directory).
    remove: bool,
}

impl TestPki {
    /// A fresh set in a new temporary directory named after `tag`, removed on drop.
    pub fn new(tag: &str) -> TestPki {
        let dir = std::env::temp_dir().join(format!(
            "prefork-ws-pki-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let mut pki = TestPki::write_to(&dir);
        pki.remove = true;
        pki
    }

    /// A fresh set written to `dir` (created if needed), which is kept.
    pub fn write_to(dir: &Path) -> TestPki {
        std::fs::create_dir_all(dir).expect("create the PKI directory");
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "prefork-ws test CA (test only)");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
        let issuer = Issuer::new(ca_params, ca_key);

        let key = KeyPair::generate().expect("server key");
        let mut params = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
            .expect("server params");
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        let cert = params.signed_by(&key, &issuer).expect("server certificate");

        let pki = TestPki {
            dir: dir.to_path_buf(),
            ca: dir.join("ca.pem"),
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
            ca_der: ca_cert.der().to_vec(),
            remove: false,
        };
        let write = |p: &Path, s: String| std::fs::write(p, s).expect("write a PEM file");
        write(&pki.ca, ca_cert.pem());
        write(&pki.cert, format!("{}{}", cert.pem(), ca_cert.pem()));
        write(&pki.key, key.serialize_pem());
        pki
    }
}

impl Drop for TestPki {
    fn drop(&mut self) {
        if self.remove {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
