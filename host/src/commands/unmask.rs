use std::io::{BufRead, Write};
use std::path::PathBuf;

use maskflow_transform::Transformer;

use crate::error::{Error, Result};
use crate::keys::{self, KeyArgs};

/// Recovers clear values from masks (authorised operators only: needs the key).
#[derive(Debug, Clone, clap::Args)]
pub struct UnmaskArgs {
    #[command(flatten)]
    pub key: KeyArgs,
    /// The mapping the masks were made with, if not the built-in one (for its column nonces).
    #[arg(long, value_name = "PATH")]
    pub mapping: Option<PathBuf>,
    /// Also print which column (or `raw_body`) each value came from, tab-separated.
    #[arg(long)]
    pub with_column: bool,
    /// Masks (`k1.…`); read one per line from stdin when none are given.
    pub values: Vec<String>,
}

/// Prints one clear value per mask. Returns how many could not be unmasked.
pub fn run(args: UnmaskArgs) -> Result<usize> {
    let (config, _) = keys::transform_config(&keys::load(&args.key)?, args.mapping.as_deref(), 0)?;
    let transformer = Transformer::new(config)?;
    let stdin_values;
    let values: Box<dyn Iterator<Item = String>> = if args.values.is_empty() {
        stdin_values = std::io::stdin().lock().lines().map_while(|l| l.ok()).filter(|l| !l.trim().is_empty());
        Box::new(stdin_values)
    } else {
        Box::new(args.values.into_iter())
    };
    let mut out = std::io::stdout().lock();
    let mut failed = 0;
    for value in values {
        match transformer.unmask(&value) {
            Ok(clear) => {
                if args.with_column {
                    write!(out, "{}\t", clear.column).map_err(Error::io("stdout"))?;
                }
                out.write_all(&clear.value).and_then(|()| writeln!(out)).map_err(Error::io("stdout"))?;
            }
            Err(e) => {
                failed += 1;
                eprintln!("maskflow: cannot unmask `{}`: {e}", abbreviate(&value));
            }
        }
    }
    Ok(failed)
}

/// A mask is not secret, but keep error lines short.
fn abbreviate(mask: &str) -> String {
    let mask = mask.trim();
    if mask.chars().count() > 24 {
        format!("{}…", mask.chars().take(24).collect::<String>())
    } else {
        mask.to_owned()
    }
}
