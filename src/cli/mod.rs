//! Command-line interface: argument parsing and dispatch.
//!
//! Each subcommand lives in its own module and returns an [`Exit`] code;
//! errors are printed once, with their full cause chain, by [`main`].

/// `println!` that treats a closed stdout (`provgate report | head`) as the
/// end of the output, not a crash (ripgrep's convention).
macro_rules! outln {
    ($($t:tt)*) => { $crate::cli::write_out(format_args!($($t)*), true) };
}

/// `print!`, likewise.
macro_rules! out {
    ($($t:tt)*) => { $crate::cli::write_out(format_args!($($t)*), false) };
}

/// `eprintln!` that never panics on a closed stderr.
macro_rules! errln {
    ($($t:tt)*) => { $crate::cli::write_err(format_args!($($t)*), true) };
}

/// `eprint!`, likewise.
macro_rules! err {
    ($($t:tt)*) => { $crate::cli::write_err(format_args!($($t)*), false) };
}

mod certs;
mod check;
mod conformance;
mod policy;
mod report;
mod serve;
mod verify;

pub use check::{markdown as check_markdown, table as check_table};

use std::io::IsTerminal as _;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

/// Process exit codes, as documented in the README and `check --help`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Allowed / verified.
    Ok = 0,
    /// Usage or operational error, or (for `check`) an image allowed
    /// without verification.
    Error = 1,
    /// Denied by policy, or verification failed.
    Denied = 2,
    /// No verifiable evidence.
    NoEvidence = 3,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        ExitCode::from(e as u8)
    }
}

/// provgate: verify Sigstore evidence on container images and enforce Rego contracts.
#[derive(Debug, Parser)]
#[command(name = "provgate", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTPS admission webhook and CI gate.
    Serve(serve::ServeArgs),
    /// Check images: the decision admission will give, with evidence.
    #[command(
        long_about = "Check images: the decision admission will give, with the evidence found, \
                      each bound contract's verdict and the lines admission would deny or warn \
                      with. Runs the local engine (--config, or the embedded defaults), or asks \
                      a running gate (--server).",
        after_long_help = check::EXIT_CODES
    )]
    Check(check::CheckArgs),
    /// Verify one Sigstore bundle against an artifact or digest, offline.
    Verify(verify::VerifyArgs),
    /// Contract development: run contract tests, evaluate a contract.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// Compliance of running workloads, and the impact of a contract change.
    Report(report::ReportArgs),
    /// Development certificates.
    #[command(subcommand)]
    Certs(certs::CertsCommand),
    /// The sigstore-conformance CLI protocol.
    #[command(subcommand)]
    Conformance(conformance::ConformanceCommand),
    /// Print shell completions.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// Runs the CLI on the process arguments.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run_serve(args),
        Command::Check(args) => {
            init_logging(false);
            check::run(args)
        }
        Command::Certs(cmd) => certs::run(cmd),
        Command::Report(args) => {
            init_logging(false);
            report::run(args)
        }
        Command::Verify(args) => verify::run(args),
        Command::Conformance(cmd) => conformance::run(cmd),
        Command::Policy(cmd) => policy::run(cmd),
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "provgate",
                &mut std::io::stdout(),
            );
            Ok(Exit::Ok)
        }
    };
    match result {
        Ok(exit) => exit.into(),
        Err(e) => {
            errln!("provgate: error: {e}");
            for h in &e.hints {
                errln!("provgate: hint: {h}");
            }
            Exit::Error.into()
        }
    }
}

/// An error and its sources as one line, `a: b: c`, skipping a source whose
/// text the previous message already contains.
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut last = out.clone();
    let mut next = e.source();
    while let Some(err) = next {
        let text = err.to_string();
        if !text.is_empty() && !last.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        last = text;
        next = err.source();
    }
    out
}

/// An operational error with context, printed once by [`main`] with its
/// whole cause chain and a line per hint (what fixes it).
#[derive(Debug)]
pub struct CliError {
    context: String,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
    hints: Vec<String>,
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.source {
            Some(s) => {
                let s: &(dyn std::error::Error + 'static) = s.as_ref();
                write!(f, "{}: {}", self.context, error_chain(s))
            }
            None => f.write_str(&self.context),
        }
    }
}

impl std::error::Error for CliError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl CliError {
    /// An error with a message only.
    fn msg(message: impl Into<String>) -> Self {
        CliError {
            context: message.into(),
            source: None,
            hints: Vec::new(),
        }
    }

    /// Adds a line saying what fixes the error.
    fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hints.push(hint.into());
        self
    }

    fn new(
        context: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        CliError {
            context: context.into(),
            source: Some(source.into()),
            hints: Vec::new(),
        }
    }
}

/// Writes to stdout; a broken pipe ends the process successfully.
pub(crate) fn write_out(args: std::fmt::Arguments<'_>, newline: bool) {
    use std::io::Write as _;
    let mut o = std::io::stdout().lock();
    let r = o
        .write_fmt(args)
        .and_then(|_| if newline { o.write_all(b"\n") } else { Ok(()) })
        .and_then(|_| o.flush());
    if let Err(e) = r
        && e.kind() == std::io::ErrorKind::BrokenPipe
    {
        std::process::exit(0);
    }
}

/// Writes to stderr, ignoring errors.
pub(crate) fn write_err(args: std::fmt::Arguments<'_>, newline: bool) {
    use std::io::Write as _;
    let mut e = std::io::stderr().lock();
    let _ = e
        .write_fmt(args)
        .and_then(|_| if newline { e.write_all(b"\n") } else { Ok(()) });
}

/// Installs the log subscriber on stderr: JSON lines for the server, and
/// for the CLI whenever stderr is not a terminal (CI logs, pipes); compact
/// warnings on a terminal, coloured unless `NO_COLOR` is set. `RUST_LOG`
/// overrides the level.
fn init_logging(server: bool) {
    use tracing_subscriber::EnvFilter;
    // rustls and its platform verifier log every refused certificate; the
    // CLI reports the same failure, with its fix, as its error.
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(if server {
            "info"
        } else {
            "warn,rustls=off,rustls_platform_verifier=off"
        })
    });
    let json = server || !std::io::stderr().is_terminal();
    let ansi = !json && check::color_for(&std::io::stderr());
    // A log line that cannot be written is dropped: tracing-subscriber's
    // default reports it with `eprintln!`, which panics on a closed stderr.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .log_internal_errors(false);
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.compact().without_time().try_init()
    };
}

/// Output formats of the read commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// Human-readable.
    Table,
    /// JSON with a versioned, documented schema.
    Json,
}

/// Prints a value as pretty JSON on stdout.
fn print_json<T: serde::Serialize>(value: &T) -> Result<(), CliError> {
    let text =
        serde_json::to_string_pretty(value).map_err(|e| CliError::new("encoding JSON", e))?;
    outln!("{text}");
    Ok(())
}

fn read_file(path: &std::path::Path) -> Result<Vec<u8>, CliError> {
    std::fs::read(path).map_err(|e| CliError::new(format!("cannot read {}", path.display()), e))
}
