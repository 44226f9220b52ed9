use std::process::ExitCode;

fn main() -> ExitCode {
    maskflow::main()
}
