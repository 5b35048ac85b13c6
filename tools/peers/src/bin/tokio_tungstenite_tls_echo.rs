//! Peer: the tokio-tungstenite echo server behind tokio-rustls (ring), on a tokio
//! `current_thread` runtime (single-threaded), ALPN `http/1.1`: what prefork-ws's TLS echo is
//! compared against.
//!
//! `tokio_tungstenite_tls_echo --host 127.0.0.1 --port 0 --cert CERT --key KEY`

use std::path::PathBuf;
use std::sync::Arc;

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use peers::{announce, raise_nofile};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::Message;

/// `--host H --port P --cert CERT --key KEY` (PEM files).
#[derive(Parser, Debug)]
struct Args {
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    #[arg(long, default_value_t = 9504)]
    port: u16,
    /// Certificate chain (PEM).
    #[arg(long)]
    cert: PathBuf,
    /// Private key (PEM).
    #[arg(long)]
    key: PathBuf,
}

fn acceptor(a: &Args) -> Result<TlsAcceptor, String> {
    let chain = CertificateDer::pem_file_iter(&a.cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", a.cert.display()))?;
    let key =
        PrivateKeyDer::from_pem_file(&a.key).map_err(|e| format!("{}: {e}", a.key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| e.to_string())?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(cfg)))
}

async fn serve(stream: TcpStream, tls: TlsAcceptor) {
    let _ = stream.set_nodelay(true);
    let Ok(stream) = tls.accept(stream).await else {
        return;
    };
    let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    while let Some(msg) = ws.next().await {
        match msg {
            Ok(m @ (Message::Text(_) | Message::Binary(_))) => {
                if ws.send(m).await.is_err() {
                    return;
                }
            }
            Ok(Message::Close(_)) => {
                let _ = ws.flush().await;
            }
            Ok(_) => {}
            Err(_) => return,
        }
    }
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let tls = acceptor(&args).map_err(std::io::Error::other)?;
    raise_nofile();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = TcpListener::bind(format!("{}:{}", args.host, args.port)).await?;
        announce(listener.local_addr()?);
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    tokio::spawn(serve(stream, tls.clone()));
                }
                Err(e) => {
                    eprintln!("accept: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
            }
        }
    })
}
