//! The `provgate` binary: parses arguments and dispatches to the library.

fn main() -> std::process::ExitCode {
    provgate::cli::main()
}
