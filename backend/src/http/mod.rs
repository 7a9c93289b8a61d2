//! The HTTP side: the guard in front of everything (Host, Origin, API
//! token, content type: see `guard`), the REST routes, readiness
//! (`ready`), step mode's held messages (`messages`), the recorded event
//! stream (`recording`), the dashboard's chaos run (`chaos`), a
//! transaction's evidence (`evidence`), the WebSocket stream, the OpenAPI document and
//! its interactive page (`ops`) and the dashboard's files, assembled by
//! `router`.

pub mod bodies;
pub mod chaos;
pub mod error;
pub mod evidence;
pub mod guard;
pub mod indoubt;
pub mod messages;
pub mod ops;
pub mod ready;
pub mod recording;
pub mod request;
pub mod router;
pub mod routes;
pub mod token;
pub mod view;
pub mod ws;

pub use error::ApiError;
pub use router::router;
