//! Socket.IO protocol codecs (placeholder; filled in by the next commits).
