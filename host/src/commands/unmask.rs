use std::io::{BufRead, Write};

use maskflow_transform::{Config, Transformer};

use crate::error::{Error, Result};

/// `maskflow unmask`: the transform config (keys, mapping), and what to unmask.
pub struct UnmaskConfig {
    pub config: Config,
    pub with_column: bool,
    /// Read one per line from stdin when empty.
    pub values: Vec<String>,
}

/// Prints one clear value per mask. Returns how many could not be unmasked.
pub fn run(args: UnmaskConfig) -> Result<usize> {
    let transformer = Transformer::new(args.config)?;
    let stdin_values;
    let values: Box<dyn Iterator<Item = String>> = if args.values.is_empty() {
        stdin_values =
            std::io::stdin().lock().lines().map_while(|l| l.ok()).filter(|l| !l.trim().is_empty());
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
                out.write_all(&clear.value)
                    .and_then(|()| writeln!(out))
                    .map_err(Error::io("stdout"))?;
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
