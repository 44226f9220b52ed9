use std::process::ExitCode;

use clap::Parser;
use maskflow::cli::{self, Cli};

fn main() -> ExitCode {
    let cli = Cli::parse();
    maskflow::logging::init(cli.log_format);
    match cli::execute(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("maskflow: error: {e}");
            ExitCode::FAILURE
        }
    }
}
