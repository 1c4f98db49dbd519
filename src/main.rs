//! The `provgate` binary: parses arguments and dispatches to the library.

/// mimalloc: faster small allocations than glibc's malloc on the warm
/// admission path, and less memory kept resident; see Cargo.toml.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    provgate::cli::main()
}
