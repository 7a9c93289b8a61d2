//! What exists for speed, behind small interfaces the machines use: a hash
//! map whose views leave in key order ([`keyed::Keyed`]), the index of
//! remembered outcomes ([`remembered::Remembered`]), and the hasher both
//! are seeded with by the driver ([`hasher::HashSeed`]), and the bytes of
//! log records and checkpoints ([`codec`]). The machines in
//! `protocol` read as the protocol; how their state is kept fast is here.

pub mod codec;
pub mod hasher;
pub mod keyed;
pub mod remembered;
