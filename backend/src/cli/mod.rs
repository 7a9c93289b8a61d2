//! What `tpc` needs besides its flags: an HTTP client that words the
//! errors (`client`), and the formatting of answers for people (`show`).

pub mod client;
pub mod show;
