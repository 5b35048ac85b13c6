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

/// Where a binary upgrade of a server stands (`prefork-ctl upgrade`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpgradeState {
    /// No upgrade was started.
    None,
    /// The new master (this pid) is starting.
    Running(u32),
    /// The new master exited before it took over; the old one serves on.
    Failed,
    /// The new master (this pid) has taken over.
    Done(u32),
}

/// A server's table, mapped once and read as often as needed (it outlives the master that
/// created it while any process maps it).
pub struct TableWatch(SharedTable);

impl TableWatch {
    /// Maps the table of the server whose master has pid `master_pid`.
    pub fn open(master_pid: u32) -> io::Result<TableWatch> {
        Ok(TableWatch(SharedTable::open_path(&table_path(
            master_pid,
        )?)?))
    }

    /// The upgrade state now.
    pub fn upgrade(&self) -> UpgradeState {
        use std::sync::atomic::Ordering;
        let g = self.0.global();
        let pid = g.upgrade_pid.load(Ordering::Acquire);
        match g.upgrade.load(Ordering::Acquire) {
            crate::runtime::master::UPGRADE_RUNNING => UpgradeState::Running(pid),
            crate::runtime::master::UPGRADE_FAILED => UpgradeState::Failed,
            crate::runtime::master::UPGRADE_DONE => UpgradeState::Done(pid),
            _ => UpgradeState::None,
        }
    }

    /// The pid of the last new master an upgrade started (0: none yet).
    pub fn upgrade_pid(&self) -> u32 {
        self.0
            .global()
            .upgrade_pid
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// The pid of the master of record.
    pub fn master_pid(&self) -> u32 {
        self.0
            .global()
            .master_pid
            .load(std::sync::atomic::Ordering::Acquire)
    }
}

/// Whether process `pid` exists and is not a zombie (exited, not yet reaped by its parent).
pub fn process_running(pid: i32) -> bool {
    let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false);
    // SAFETY: signal 0 only checks for existence.
    !zombie && unsafe { libc::kill(pid, 0) == 0 }
}
