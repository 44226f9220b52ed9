//! The subcommands besides `run` (which is `crate::pipeline`). Each takes a plain config
//! struct built by `crate::cli`.

pub(crate) mod keygen;
pub(crate) mod keys;
pub(crate) mod mask;
pub(crate) mod prune;
pub(crate) mod rejections;
pub(crate) mod rekey;
pub(crate) mod replay;
pub(crate) mod send;
pub(crate) mod transform;
pub(crate) mod unmask;
