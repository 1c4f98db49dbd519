//! `provgate policy test`: runs `test_*` rules, as `opa test` does.
//!
//! For each contract, the engine gets the shared library, the contract's
//! modules, its `*_test.rego` files and `data.testdata.<stem>` from
//! `testdata/*.json`. Every rule named `test_*` in a test module is
//! evaluated; it passes when it is `true`.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::contract::{Contract, RegoModule};
use super::input::{InputError, PolicyInput};
use super::rego::{PolicyError, RegoOutcome, RegoProgram};

/// The testing door to the policy boundary: any JSON document becomes a
/// [`PolicyInput`] without verification. For `provgate policy eval`,
/// `policy test` and benchmarks only; the decision path builds inputs with
/// [`PolicyInput::build`] from admitted, verified evidence.
pub fn unverified_input(json: &serde_json::Value) -> Result<PolicyInput, InputError> {
    PolicyInput::unverified(json)
}

/// The JSON Schema of `provgate.dev/policy-input/v1`.
pub const POLICY_INPUT_SCHEMA: &str = include_str!("../../docs/policy-input.schema.json");

/// Checks a hand-made input against the policy-input schema; each error
/// names the field (a JSON pointer) and what is wrong with it.
pub fn validate_input(json: &serde_json::Value) -> Result<(), Vec<String>> {
    static VALIDATOR: std::sync::OnceLock<Result<jsonschema::Validator, String>> =
        std::sync::OnceLock::new();
    let validator = VALIDATOR.get_or_init(|| {
        let schema: serde_json::Value =
            serde_json::from_str(POLICY_INPUT_SCHEMA).map_err(|e| e.to_string())?;
        jsonschema::validator_for(&schema).map_err(|e| e.to_string())
    });
    let validator = validator
        .as_ref()
        .map_err(|e| vec![format!("the policy-input schema does not compile: {e}")])?;
    let errors: Vec<String> = validator
        .iter_errors(json)
        .take(20)
        .map(|e| {
            let at = e.instance_path().to_string();
            format!("{}: {e}", if at.is_empty() { "/" } else { &at })
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// Evaluates `program` over an unverified JSON input (see
/// [`unverified_input`]).
pub fn evaluate_unverified(
    program: &RegoProgram,
    json: &serde_json::Value,
) -> Result<RegoOutcome, PolicyError> {
    let input = unverified_input(json).map_err(|e| PolicyError::Eval(e.to_string()))?;
    program.evaluate(&input)
}

/// One test's result.
#[derive(Debug, Clone, Serialize)]
pub struct TestResult {
    /// `contract/package.rule`.
    pub name: String,
    /// Whether it passed.
    pub passed: bool,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Duration in microseconds.
    pub micros: u64,
}

/// Finds `package` and `test_*` rule names in a test module.
pub(crate) fn test_rules(m: &RegoModule) -> (String, Vec<String>) {
    let mut package = String::new();
    let mut rules = Vec::new();
    for line in m.text.lines() {
        let t = line.trim_start();
        if let Some(p) = t.strip_prefix("package ") {
            package = p.trim().to_owned();
        }
        // Rule heads start at column 0: `test_x if {`, `test_x := …`.
        if line.starts_with("test_") {
            let name: String = line
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !rules.contains(&name) {
                rules.push(name);
            }
        }
    }
    (package, rules)
}

/// A test result that fails when the contract's Rego reads a request-context
/// field its `contract.yaml` does not declare (`context:`): its input never
/// carries one, so the Rego would silently see it absent, and the verdict
/// cache would share the verdict across requests that differ in it.
pub fn check_context_reads(contract: &Contract) -> TestResult {
    let started = Instant::now();
    let name = format!("{}: context declaration", contract.name());
    let declared: Vec<String> = contract
        .spec
        .context
        .iter()
        .map(|f| f.to_string())
        .collect();
    let (passed, detail) = match super::analysis::context_reads(&contract.modules) {
        Err(e) => (false, Some(e.to_string())),
        Ok(reads) => {
            let missing = super::analysis::undeclared(&reads, &declared);
            if missing.is_empty() {
                (true, None)
            } else {
                let mut d = format!(
                    "the Rego reads input.context fields that contract.yaml does not declare: {}; add them to `context:` (the input carries only declared fields)",
                    missing.join(", ")
                );
                if reads.reads_everything() {
                    d.push_str(&format!(
                        "; it reads the context in ways that cannot be followed, at: {}",
                        reads.dynamic.join("; ")
                    ));
                }
                (false, Some(d))
            }
        }
    };
    TestResult {
        name,
        passed,
        detail,
        micros: started.elapsed().as_micros() as u64,
    }
}

/// Runs the tests of `contract`.
pub fn run(contract: &Contract, timeout: Duration) -> Vec<TestResult> {
    run_modules(
        contract.name(),
        contract.modules.clone(),
        &contract.tests,
        Some(serde_json::json!({"testdata": contract.testdata})),
        timeout,
    )
}

/// Runs the tests in `tests` against `modules`.
pub fn run_modules(
    label: &str,
    mut modules: Vec<RegoModule>,
    tests: &[RegoModule],
    data: Option<serde_json::Value>,
    timeout: Duration,
) -> Vec<TestResult> {
    modules.extend(tests.iter().cloned());
    let program = match RegoProgram::compile_modules(modules, data, timeout) {
        Ok(p) => p,
        Err(e) => {
            return vec![TestResult {
                name: format!("{label}: compile"),
                passed: false,
                detail: Some(e.to_string()),
                micros: 0,
            }];
        }
    };
    let mut out = Vec::new();
    for t in tests {
        let (package, rules) = test_rules(t);
        for rule in rules {
            let started = Instant::now();
            let result = program.with_engine(|engine| {
                engine.set_input(regorus::Value::new_object());
                engine
                    .eval_rule(format!("data.{package}.{rule}"))
                    .map_err(|e| super::rego::PolicyError::Eval(e.to_string()))
            });
            let (passed, detail) = match result {
                Ok(regorus::Value::Bool(true)) => (true, None),
                Ok(regorus::Value::Undefined) => (
                    false,
                    Some("undefined (a condition in the test body failed)".into()),
                ),
                Ok(other) => (
                    false,
                    Some(format!(
                        "evaluated to {}",
                        other.to_json_str().unwrap_or_default()
                    )),
                ),
                Err(e) => (false, Some(e.to_string())),
            };
            out.push(TestResult {
                name: format!("{label}: {package}.{rule}"),
                passed,
                detail,
                micros: started.elapsed().as_micros() as u64,
            });
        }
    }
    out
}
