//! Reading a running server's shared table from outside (the control tool's `status`).

use std::io;
use std::path::PathBuf;

use crate::runtime::table::{SharedTable, Stats, TABLE_NAME};

/// Finds the table memfd among the master's descriptors (`/proc/<pid>/fd/*`).
fn table_path(master_pid: u32) -> io::Result<PathBuf> {
    let dir = PathBuf::from(format!("/proc/{master_pid}/fd"));
    for entry in std::fs::read_dir(&dir)? {
        let path = entry?.path();
        if let Ok(target) = std::fs::read_link(&path) {
            if target
                .to_string_lossy()
                .starts_with(&format!("/memfd:{TABLE_NAME}"))
            {
                return Ok(path);
            }
        }
    }
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        format!("process {master_pid} is not a prefork-ws master (no {TABLE_NAME})"),
    ))
}

/// The metrics text (`GET /metrics`'s) of the server whose master has pid `master_pid`.
pub fn metrics_of(master_pid: u32) -> io::Result<String> {
    let t = SharedTable::open_path(&table_path(master_pid)?)?;
    Ok(crate::runtime::metrics::render(&t))
}

/// Statistics of the server whose master has pid `master_pid`, read from its shared table.
pub fn stats_of(master_pid: u32) -> io::Result<Stats> {
    let t = SharedTable::open_path(&table_path(master_pid)?)?;
    Ok(t.stats())
}
