//! [`NodeFd`]: a connection's id across nodes.

use std::fmt;
use std::str::FromStr;

use crate::runtime::table::Fd;

/// A connection of any node: the node's id and the fd there, written `node:fd` (e.g.
/// `ws1:4294967298`). Get one with [`WsCluster::id_of`](super::WsCluster::id_of) where the
/// connection is (in `on_open`, with the request's fd), hand it to whoever will push (a
/// client, a database row), and parse it back with `str::parse`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NodeFd {
    /// The node's id ([`RedisConfig::node_id`](super::RedisConfig::node_id)).
    pub node: String,
    /// The fd on that node.
    pub fd: Fd,
}

impl fmt::Display for NodeFd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.node, self.fd)
    }
}

/// A string that is not `node:fd`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a node:fd connection id: {0:?}")]
pub struct BadNodeFd(pub String);

impl FromStr for NodeFd {
    type Err = BadNodeFd;

    fn from_str(s: &str) -> Result<NodeFd, BadNodeFd> {
        let bad = || BadNodeFd(s.to_string());
        let (node, fd) = s.rsplit_once(':').ok_or_else(bad)?;
        if node.is_empty() {
            return Err(bad());
        }
        Ok(NodeFd {
            node: node.to_string(),
            fd: fd.parse().map_err(|_| bad())?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_print_and_parse() {
        let id = NodeFd {
            node: "ws1".into(),
            fd: 4294967298,
        };
        assert_eq!(id.to_string(), "ws1:4294967298");
        assert_eq!("ws1:4294967298".parse(), Ok(id));
        for bad in ["", "ws1", ":3", "ws1:x", "ws1:-1"] {
            assert!(bad.parse::<NodeFd>().is_err(), "{bad:?}");
        }
    }
}
