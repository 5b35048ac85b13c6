//! Writes a test-only CA and a server certificate for `localhost` and `127.0.0.1` into a
//! directory: `ca.pem` (what clients trust), `cert.pem` (the chain), `key.pem`. The Python,
//! Node and browser TLS tests run it; nothing private is committed.
//!
//! `cargo run --example test_certs -- DIR`

mod pki;

fn main() {
    let Some(dir) = std::env::args_os().nth(1) else {
        eprintln!("usage: test_certs DIR");
        std::process::exit(2);
    };
    let pki = pki::TestPki::write_to(std::path::Path::new(&dir));
    println!("{}", pki.ca.display());
    println!("{}", pki.cert.display());
    println!("{}", pki.key.display());
}
