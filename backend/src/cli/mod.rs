//! What `tpc` needs besides its flags: an HTTP client that words the
//! errors (`client`), the certificates it trusts over https (`tls`), the
//! live event stream (`watch`), and the formatting of answers for people
//! (`show`).

pub mod client;
pub mod show;
pub mod tls;
pub mod watch;
