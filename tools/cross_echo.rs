//! Benchmark server for cross-worker pushes: every message is handed to the *other* worker
//! (`send_message`), which pushes it back to the sender's fd (a cross-worker `push`), so each
//! echo crosses between workers twice. Compare its server CPU per message with the `echo`
//! example at `--workers 2` to get the cost of a crossing.
//!
//! `cargo run --release --example cross_echo -- --port 9502 --workers 2`

use clap::Parser;
use prefork_ws::cli::{self, ExampleArgs};
use prefork_ws::{OpCode, Settings, FLAG_FIN};

/// Benchmark server: each echo crosses between the workers twice.
#[derive(Parser)]
struct Args {
    #[command(flatten)]
    common: ExampleArgs,
}

fn main() {
    ExampleArgs::init_logging();
    let args: Args = cli::parse(9502);
    let mut server = args.common.server(Settings {
        ..Settings::default()
    });
    server.on_message(|server, frame| {
        let me = server.worker_id().unwrap_or(0);
        let mut msg = Vec::with_capacity(frame.data.len() + 9);
        msg.extend_from_slice(&frame.fd.to_le_bytes());
        msg.push(frame.opcode.as_u8());
        msg.extend_from_slice(frame.data);
        server.send_message(msg, (me + 1) % 2);
    });
    server.on_pipe_message(|server, _from, data| {
        if data.len() < 9 {
            return;
        }
        let fd = u64::from_le_bytes(data[..8].try_into().unwrap_or_default());
        let opcode = OpCode::from_u8(data[8]).unwrap_or(OpCode::Binary);
        server.push(fd, &data[9..], opcode, FLAG_FIN);
    });
    ExampleArgs::run(server, "cross_echo");
}
