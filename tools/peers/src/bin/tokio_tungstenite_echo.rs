//! Peer: a tokio `current_thread` runtime + tokio-tungstenite echo server (single-threaded).
//!
//! `tokio_tungstenite_echo --host 127.0.0.1 --port 0`

use futures_util::{SinkExt, StreamExt};
use peers::{announce, raise_nofile, PeerArgs};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;

async fn serve(stream: TcpStream) {
    let _ = stream.set_nodelay(true);
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
            // Pings are answered (and closes echoed) by tungstenite itself on the next write/flush.
            Ok(Message::Close(_)) => {
                let _ = ws.flush().await;
            }
            Ok(_) => {}
            Err(_) => return,
        }
    }
}

fn main() -> std::io::Result<()> {
    let args = PeerArgs::parse_args();
    raise_nofile();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = TcpListener::bind(args.addr()).await?;
        announce(listener.local_addr()?);
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    tokio::spawn(serve(stream));
                }
                Err(e) => {
                    eprintln!("accept: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
            }
        }
    })
}
