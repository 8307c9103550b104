//! The box on the network: TLS with a local CA, the HTTP(S) accept loops, mDNS announcement.
//! Nothing here knows about schools.

pub mod mdns;
pub mod server;
pub mod tls;
pub mod watch;
