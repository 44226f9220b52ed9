//! The subcommands besides `run` (which is `crate::pipeline`).

pub mod keygen;
pub mod send;
pub mod transform;
pub mod unmask;
