//! Why the data path stopped (exit 5): the stage behind it fails on everything, so going on
//! would turn the whole queue into rejections. Nothing of the batch in hand was recorded or
//! deleted; a restarted host sees the same run of failures in the ledger and stops again.

use thiserror::Error;

use crate::runtime::ModuleError;
use crate::sink::PostgresError;

#[derive(Debug, Error)]
pub enum Stop {
    /// A module that never transformed anything is not trusted to judge single messages.
    #[error(
        "the module failed on every message it was given ({failed}); nothing was deleted. \
         Check --module, --module-timeout-ms and --module-memory-mb"
    )]
    ModuleNeverWorked {
        failed: usize,
        #[source]
        last: Option<ModuleError>,
    },
    #[error(
        "the module failed on the last {streak} messages or more, with nothing transformed in \
         between; nothing was deleted. Check --module, --module-timeout-ms and --module-memory-mb"
    )]
    ModuleFailsEverything { streak: usize },
    #[error(
        "PostgreSQL refused the last {streak} rows or more, with no row accepted in between; \
         none was recorded and nothing was deleted. The table does not accept what the module \
         writes: check its constraints, partitions and column types"
    )]
    TableRefusesEverything {
        streak: usize,
        #[source]
        first: PostgresError,
    },
    #[error(
        "{left} masks under {from} remain after {passes} passes: rows keep arriving under an old \
         key, so a host still masks with it. Restart every host with `{to}` first in its key \
         file, then rerun `maskflow rekey` (it resumes where it stopped)"
    )]
    RekeyOutpaced { left: i64, from: String, passes: usize, to: String },
    #[error(
        "{left} masks under {from} could not be re-masked ({distinct} distinct): they do not \
         unmask with the key file's keys (damaged, or made by another key of the same id), or \
         their new mask would be longer than the column allows; they are left as they were"
    )]
    RekeyUnreadable { left: i64, from: String, distinct: usize },
}
