//! `provgate policy test|eval`: the contract author's dev loop.
//!
//! `test` runs every `test_*` rule of a contract's `*_test.rego` modules, as
//! `opa test` does, and exits non-zero when one fails. `eval` evaluates one
//! contract over a policy input document and prints the decision with the
//! same wording admission uses.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Subcommand};
use serde::Serialize;

use super::{CliError, Exit, Output, read_file};
use crate::policy::contract::{self, Contract};
use crate::policy::{RegoProgram, testing};

/// `provgate policy …`.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Run the `test_*` rules of contracts (like `opa test`).
    Test(TestArgs),
    /// Evaluate one contract over a policy input file.
    Eval(EvalArgs),
}

/// Arguments of `provgate policy test`.
#[derive(Debug, Args)]
pub struct TestArgs {
    /// A contract directory, or a directory of contract directories
    /// (default: the embedded library).
    dir: Option<PathBuf>,
    /// Only run tests whose name contains this string.
    #[arg(long)]
    run: Option<String>,
    /// Print passing tests too.
    #[arg(long, short)]
    verbose: bool,
    /// Time limit per evaluation, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    timeout_ms: u64,
    /// Output format.
    #[arg(long, short, value_enum, default_value_t = Output::Table)]
    output: Output,
}

/// Arguments of `provgate policy eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The contract: a directory, or the name of a built-in contract.
    #[arg(long)]
    contract: String,
    /// A `provgate.dev/policy-input/v1` JSON document (`-` for stdin).
    #[arg(long)]
    input: PathBuf,
    /// Time limit of the evaluation, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    timeout_ms: u64,
    /// Evaluate even when the input does not match
    /// docs/policy-input.schema.json (a partial, hand-made document).
    #[arg(long)]
    skip_validation: bool,
    /// Output format.
    #[arg(long, short, value_enum, default_value_t = Output::Table)]
    output: Output,
}

/// Runs `provgate policy …`.
pub fn run(cmd: PolicyCommand) -> Result<Exit, CliError> {
    match cmd {
        PolicyCommand::Test(a) => test(a),
        PolicyCommand::Eval(a) => eval(a),
    }
}

fn load(dir: Option<&Path>) -> Result<Vec<Contract>, CliError> {
    match dir {
        None => contract::builtin_contracts().map_err(|e| CliError::new("built-in contracts", e)),
        Some(d) => {
            contract::load_tree(d).map_err(|e| CliError::new(format!("loading {}", d.display()), e))
        }
    }
}

#[derive(Serialize)]
struct TestReport {
    passed: usize,
    failed: usize,
    results: Vec<testing::TestResult>,
}

fn test(args: TestArgs) -> Result<Exit, CliError> {
    let timeout = Duration::from_millis(args.timeout_ms);
    // A tree with its own `lib/` (like `policies/`) is tested with that
    // library, and its library tests run too: an edited library is what
    // its contracts are tested against, and no test is silently skipped.
    let tree_lib = match args.dir.as_deref() {
        Some(d) => contract::tree_library(d)
            .map_err(|e| CliError::new(format!("loading {}/lib", d.display()), e))?,
        None => None,
    };
    let contracts = match (&args.dir, &tree_lib) {
        (Some(d), Some(lib)) => contract::load_tree_with_library(d, &lib.modules)
            .map_err(|e| CliError::new(format!("loading {}", d.display()), e))?,
        _ => load(args.dir.as_deref())?,
    };
    let mut results = Vec::new();
    match (&args.dir, &tree_lib) {
        (None, _) => results.extend(testing::run_modules(
            "lib",
            contract::library(),
            &contract::library_tests(),
            None,
            timeout,
        )),
        (Some(_), Some(lib)) => {
            results.extend(testing::run_modules(
                "lib",
                lib.modules.clone(),
                &lib.tests,
                None,
                timeout,
            ));
        }
        (Some(_), None) => {}
    }

    // A contract whose Rego reads request-context fields it does not
    // declare fails: its input never carries them.
    for c in &contracts {
        results.push(testing::check_context_reads(c));
    }
    let mut without_tests = Vec::new();
    for c in &contracts {
        if c.tests.is_empty() {
            without_tests.push(c.name().to_owned());
        }
        results.extend(testing::run(c, timeout));
    }
    if let Some(filter) = &args.run {
        // A contract that does not compile is always reported.
        results.retain(|r| r.name.contains(filter.as_str()) || r.name.ends_with(": compile"));
    }
    let failed = results.iter().filter(|r| !r.passed).count();
    let passed = results.len() - failed;
    let none_found = results.is_empty();
    match args.output {
        Output::Json => super::print_json(&TestReport {
            passed,
            failed,
            results,
        })?,
        Output::Table => {
            for r in &results {
                if !r.passed {
                    outln!("FAIL {} ({} µs)", r.name, r.micros);
                    if let Some(d) = &r.detail {
                        outln!("     {d}");
                    }
                } else if args.verbose {
                    outln!("PASS {} ({} µs)", r.name, r.micros);
                }
            }
            for name in &without_tests {
                outln!("WARN contract {name} has no *_test.rego");
            }
            outln!("{}", "-".repeat(60));
            outln!("PASS: {passed}/{}", results.len());
            if failed > 0 {
                outln!("FAIL: {failed}/{}", results.len());
            }
        }
    }
    if none_found {
        errln!("provgate: no tests found");
        return Ok(Exit::Error);
    }
    Ok(if failed > 0 { Exit::Denied } else { Exit::Ok })
}

#[derive(Serialize)]
struct EvalReport<'a> {
    contract: &'a str,
    version: &'a str,
    verdict: &'static str,
    deny: &'a [crate::policy::Violation],
    warn: &'a [crate::policy::Violation],
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

fn eval(args: EvalArgs) -> Result<Exit, CliError> {
    let dir = Path::new(&args.contract);
    let contract = if dir.is_dir() {
        contract::load_dir(dir)
            .map_err(|e| CliError::new(format!("loading {}", dir.display()), e))?
    } else {
        load(None)?
            .into_iter()
            .find(|c| c.name() == args.contract)
            .ok_or_else(|| {
                CliError::msg(format!(
                    "{:?} is neither a contract directory nor a built-in contract",
                    args.contract
                ))
            })?
    };
    let bytes = if args.input.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)
            .map_err(|e| CliError::new("reading stdin", e))?;
        buf
    } else {
        read_file(&args.input)?
    };
    let input: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| CliError::new("parsing --input", e))?;
    // A malformed input is the input's fault, not the contract's: say which
    // field before the contract gets to misread it.
    if !args.skip_validation
        && let Err(errors) = testing::validate_input(&input)
    {
        return Err(CliError::msg(format!(
            "--input is not a provgate.dev/policy-input/v1 document (docs/policy-input.schema.json):\n  {}\n(get a real one with `provgate check IMAGE --dump-input DIR`, or pass --skip-validation for a partial document)",
            errors.join("\n  ")
        )));
    }
    let program = RegoProgram::compile(
        contract.modules.clone(),
        None,
        Duration::from_millis(args.timeout_ms),
    )
    .map_err(|e| CliError::new(format!("contract {}", contract.name()), e))?;
    let result = crate::policy::testing::evaluate_unverified(&program, &input);
    let (verdict, deny, warn, error) = match &result {
        Ok(o) if !o.deny.is_empty() => ("deny", o.deny.as_slice(), o.warn.as_slice(), None),
        Ok(o) if !o.warn.is_empty() => ("warn", &[][..], o.warn.as_slice(), None),
        Ok(_) => ("pass", &[][..], &[][..], None),
        Err(e) => ("error", &[][..], &[][..], Some(e.to_string())),
    };
    match args.output {
        Output::Json => super::print_json(&EvalReport {
            contract: contract.name(),
            version: contract.version(),
            verdict,
            deny,
            warn,
            error: error.clone(),
        })?,
        Output::Table => {
            outln!(
                "contract {} {}: {verdict}",
                contract.name(),
                contract.version()
            );
            for v in deny {
                outln!("  deny: {}", crate::respond::wording::violation_text(v));
            }
            for v in warn {
                outln!("  warn: {}", crate::respond::wording::violation_text(v));
            }
            if let Some(e) = &error {
                outln!("  error: {e} (a failed evaluation denies)");
            }
        }
    }
    Ok(match verdict {
        "deny" | "error" => Exit::Denied,
        _ => Exit::Ok,
    })
}
