//! The subcommands besides `run` (which is `crate::pipeline`). Each takes a plain config
//! struct built by `crate::cli`.

pub mod keygen;
pub mod keys;
pub mod mask;
pub mod prune;
pub mod rekey;
pub mod send;
pub mod transform;
pub mod unmask;
