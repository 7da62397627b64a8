//! The scenarios of BENCHMARKS.md, and the soak run.

pub mod inbox;
pub mod latency;
pub mod polling;
pub mod soak;
pub mod streams;
pub mod usertasks;
pub mod writes;
