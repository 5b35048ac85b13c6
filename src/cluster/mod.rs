//! More than one node (feature `redis`): nodes behind a load balancer share broadcasts,
//! pushes and Socket.IO rooms through Redis pub/sub. See [`redis`].

pub mod redis;
