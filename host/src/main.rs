use std::process::ExitCode;

fn main() -> ExitCode {
    maskflow::cli::main()
}
