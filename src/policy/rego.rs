//! Rego evaluation on regorus, one engine (or VM) per worker thread.
//!
//! A [`RegoProgram`] is compiled (checked) once per contract revision. Each
//! thread that evaluates it builds its own `regorus::Engine` from the source
//! the first time and keeps it in a thread-local cache: clones of one engine
//! share an `Arc`'d AST and contend across threads (measured in
//! `notes/rust-crates.md`), independent engines do not.
//!
//! [`RegoProgram::evaluate`] uses regorus's tree-walking interpreter.
//! regorus's compiled mode, the RVM (bytecode for a register VM), is faster
//! but not used, for two reasons found by comparing the two on the library
//! (`docs/benchmarks.md` has the numbers; [`RegoProgram::evaluate_with`]
//! keeps it callable for benchmarks and the tests below):
//! - errors: the interpreter stops at the first runtime error (a builtin type
//!   error, a division by zero), and the contract denies with "contract
//!   evaluation failed". The RVM of regorus 0.14.1, like OPA, makes the rule
//!   body that raised the error undefined and goes on: a `deny` body that
//!   errors is no deny, so a contract that relies on errors would allow;
//! - a defect: in regorus 0.14.1 a rule or function whose first body fails
//!   on an undefined `x := …` is undefined, where its `else` applies. The
//!   library's `normalize_severity("9.8")` hits it, so `vuln-threshold`
//!   misses CVSS-scored findings under the RVM.
//!
//! The RVM path here runs with strict builtin errors and without the VM's
//! instruction-count limit (25,000 by default; the time limit bounds it, as
//! in the interpreter), answers the `crypto.sha256` extension through host
//! calls, and compiles one VM program per thread, for the same reason as the
//! engines.
//!
//! Evaluation is bounded by regorus's execution timer. An evaluation error,
//! a timeout, or an undefined `deny` is reported as [`PolicyError`], which the
//! decision layer turns into a deny that says so (fail closed).

use std::cell::RefCell;
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use regorus::Value;
use regorus::languages::rego::compiler::Compiler;
use regorus::rvm::vm::{ExecutionMode, SuspendReason};
use regorus::rvm::{Instruction, RegoVM};
use serde::Serialize;
use sha2::Digest as _;

use super::contract::{CONTRACT_PACKAGE, RegoModule};
use super::input::PolicyInput;

/// Violations (deny or warn results) kept per rule; more are summarised.
const MAX_VIOLATIONS: usize = 50;
/// Characters kept per message field.
const MAX_FIELD: usize = 1000;
/// Engines (and, apart, VMs) kept per thread before the cache is cleared.
const MAX_ENGINES_PER_THREAD: usize = 256;
/// Host-side builtins: [`add_extensions`] registers them on engines, and the
/// RVM compiler turns their calls into host calls that [`run_vm`] answers.
const EXTENSIONS: [(&str, usize); 1] = [("crypto.sha256", 1)];

/// One `deny`/`warn` result of a contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Violation {
    /// What is wrong, one sentence.
    pub msg: String,
    /// A short requirement id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requirement: Option<String>,
    /// What the team must do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

/// The result of evaluating one contract.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RegoOutcome {
    /// `deny` results.
    pub deny: Vec<Violation>,
    /// `warn` results.
    pub warn: Vec<Violation>,
}

/// Why evaluation produced no decision.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The Rego does not compile.
    #[error("contract does not compile: {0}")]
    Compile(String),
    /// Evaluation failed (a runtime error, or the time limit).
    #[error("contract evaluation failed: {0}")]
    Eval(String),
    /// `deny` is undefined.
    #[error("contract produced no decision (data.{CONTRACT_PACKAGE}.deny is undefined)")]
    Undefined,
    /// A result is not a string or `{msg, requirement, fix}` object.
    #[error("contract returned a malformed {rule} result: {detail}")]
    Malformed {
        /// `deny` or `warn`.
        rule: &'static str,
        /// What was wrong.
        detail: String,
    },
}

/// Extensions registered on every engine.
pub fn add_extensions(engine: &mut regorus::Engine) -> Result<(), String> {
    for (name, arity) in EXTENSIONS {
        let arity = u8::try_from(arity).map_err(|e| e.to_string())?;
        engine
            .add_extension(
                name.into(),
                arity,
                Box::new(move |args: Vec<Value>| {
                    call_extension(name, &args).map_err(|e| anyhow::anyhow!(e))
                }),
            )
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Runs the extension `name` (one of [`EXTENSIONS`]) on `args`.
fn call_extension(name: &str, args: &[Value]) -> Result<Value, String> {
    match name {
        "crypto.sha256" => {
            let [arg] = args else {
                return Err("crypto.sha256 expects one argument".into());
            };
            let s = arg
                .as_string()
                .map_err(|_| "crypto.sha256 expects a string".to_owned())?;
            Ok(Value::from(hex::encode(sha2::Sha256::digest(s.as_bytes()))))
        }
        other => Err(format!("unknown extension {other}")),
    }
}

/// Which regorus evaluator runs a program's `deny` and `warn`, in
/// [`RegoProgram::evaluate_with`] (benchmarks and differential tests).
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvalMode {
    /// The tree-walking interpreter, which [`RegoProgram::evaluate`] uses: a
    /// runtime error anywhere is an evaluation error, so the contract denies.
    Interpreter,
    /// The RVM: the policy compiled to bytecode; not used (see the module
    /// documentation).
    Rvm,
}

/// A compiled contract program.
#[derive(Debug)]
pub struct RegoProgram {
    id: u64,
    modules: Arc<Vec<RegoModule>>,
    data: Option<serde_json::Value>,
    timeout: Duration,
    has_deny: bool,
    has_warn: bool,
    /// Whether `deny`/`warn` compile for the RVM (else why not), once known.
    rvm: OnceLock<Result<(), String>>,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// One thread's RVM for one program.
struct Vm {
    vm: RegoVM,
    /// The program calls host extensions, so it runs in suspendable mode.
    host_calls: bool,
}

thread_local! {
    static ENGINES: RefCell<HashMap<u64, regorus::Engine>> = RefCell::new(HashMap::new());
    static VMS: RefCell<HashMap<u64, Vm>> = RefCell::new(HashMap::new());
}

fn rule_path(rule: &str) -> String {
    format!("data.{CONTRACT_PACKAGE}.{rule}")
}

impl RegoProgram {
    /// Compiles `modules` (with optional `data`) and checks that the contract
    /// package defines `deny` or `warn`.
    pub fn compile(
        modules: Vec<RegoModule>,
        data: Option<serde_json::Value>,
        timeout: Duration,
    ) -> Result<Self, PolicyError> {
        let program = Self::compile_modules(modules, data, timeout)?;
        let in_package = program.modules.iter().any(|m| {
            m.text
                .lines()
                .any(|l| l.trim() == format!("package {CONTRACT_PACKAGE}"))
        });
        if !in_package {
            return Err(PolicyError::Compile(format!(
                "no module declares `package {CONTRACT_PACKAGE}`"
            )));
        }
        Ok(program)
    }

    /// Compiles `modules` without requiring a contract package (the shared
    /// library's own tests).
    pub fn compile_modules(
        modules: Vec<RegoModule>,
        data: Option<serde_json::Value>,
        timeout: Duration,
    ) -> Result<Self, PolicyError> {
        let mut program = RegoProgram {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            modules: Arc::new(modules),
            data,
            timeout,
            has_deny: false,
            has_warn: false,
            rvm: OnceLock::new(),
        };
        let engine = program.build()?;
        let declares = |rule: &str| {
            program.modules.iter().any(|m| {
                engine
                    .has_declared_rule_rooted_at(&m.path, rule)
                    .unwrap_or(false)
            })
        };
        program.has_deny = declares("deny");
        program.has_warn = declares("warn");
        Ok(program)
    }

    /// Whether the RVM can run this program's `deny` and `warn`, or why not
    /// (compiled once, on first use). For benchmarks and tests: see the
    /// module documentation.
    #[doc(hidden)]
    pub fn rvm_check(&self) -> Result<(), &str> {
        self.rvm
            .get_or_init(|| self.build_vm().map(|_| ()))
            .as_ref()
            .map(|_| ())
            .map_err(String::as_str)
    }

    /// The entry points evaluated: `deny` and `warn`, those declared.
    fn entry_points(&self) -> Vec<String> {
        [("deny", self.has_deny), ("warn", self.has_warn)]
            .into_iter()
            .filter(|(_, declared)| *declared)
            .map(|(rule, _)| rule_path(rule))
            .collect()
    }

    /// Builds a VM running this program's `deny` and `warn`, compiled from
    /// the sources (not shared: see the module documentation).
    fn build_vm(&self) -> Result<Vm, String> {
        let entries = self.entry_points();
        let Some(first) = entries.first() else {
            return Err(format!(
                "no deny or warn rule in package {CONTRACT_PACKAGE}"
            ));
        };
        let mut engine = self.build().map_err(|e| e.to_string())?;
        let compiled = engine
            .compile_with_entrypoint(&first.as_str().into())
            .map_err(|e| e.to_string())?;
        let entry_refs: Vec<&str> = entries.iter().map(String::as_str).collect();
        let program =
            Compiler::compile_from_policy_with_host_await(&compiled, &entry_refs, &EXTENSIONS)
                .map_err(|e| format!("the RVM compiler rejects the contract: {e}"))?;
        let host_calls = program
            .instructions
            .iter()
            .any(|i| matches!(i, Instruction::HostAwait { .. }));
        let mut vm = RegoVM::new();
        vm.load_program(program);
        if let Some(data) = &self.data {
            vm.set_data(Value::from(data.clone()))
                .map_err(|e| e.to_string())?;
        }
        // As the interpreter: builtin errors are errors (never undefined).
        vm.set_strict_builtin_errors(true);
        // The time limit bounds evaluation; the VM's default instruction
        // limit (25,000) would fail ordinary contracts on large inputs.
        vm.set_max_instructions(usize::MAX);
        vm.set_execution_timer_config(Some(self.timer()));
        if host_calls {
            vm.set_execution_mode(ExecutionMode::Suspendable);
        }
        Ok(Vm { vm, host_calls })
    }

    fn timer(&self) -> regorus::utils::limits::ExecutionTimerConfig {
        regorus::utils::limits::ExecutionTimerConfig {
            limit: self.timeout,
            check_interval: NonZeroU32::new(64).unwrap_or(NonZeroU32::MIN),
        }
    }

    /// Builds a fresh engine from the sources.
    fn build(&self) -> Result<regorus::Engine, PolicyError> {
        let mut engine = regorus::Engine::new();
        add_extensions(&mut engine).map_err(PolicyError::Compile)?;
        for m in self.modules.iter() {
            engine
                .add_policy(m.path.clone(), m.text.clone())
                .map_err(|e| PolicyError::Compile(e.to_string()))?;
        }
        if let Some(data) = &self.data {
            engine
                .add_data(Value::from(data.clone()))
                .map_err(|e| PolicyError::Compile(e.to_string()))?;
        }
        engine.set_execution_timer_config(self.timer());
        Ok(engine)
    }

    /// Runs `f` with this thread's engine for the program.
    pub fn with_engine<T>(
        &self,
        f: impl FnOnce(&mut regorus::Engine) -> Result<T, PolicyError>,
    ) -> Result<T, PolicyError> {
        ENGINES.with(|cell| {
            let mut map = cell.borrow_mut();
            if !map.contains_key(&self.id) {
                if map.len() >= MAX_ENGINES_PER_THREAD {
                    map.clear();
                }
                map.insert(self.id, self.build()?);
            }
            match map.get_mut(&self.id) {
                Some(engine) => f(engine),
                None => Err(PolicyError::Eval("engine cache".into())),
            }
        })
    }

    /// Evaluates `deny` and `warn` over a policy input. The input type can
    /// only be built from admitted, verified evidence (or through the named
    /// testing door), so no unverified byte reaches Rego.
    pub fn evaluate(&self, input: &PolicyInput) -> Result<RegoOutcome, PolicyError> {
        self.evaluate_value(input.value().clone(), EvalMode::Interpreter)
    }

    /// Evaluates `deny` and `warn` over a policy input with the evaluator
    /// `mode`, for benchmarks and differential tests. [`EvalMode::Rvm`] on a
    /// program the RVM cannot compile is a [`PolicyError::Compile`].
    #[doc(hidden)]
    pub fn evaluate_with(
        &self,
        input: &PolicyInput,
        mode: EvalMode,
    ) -> Result<RegoOutcome, PolicyError> {
        self.evaluate_value(input.value().clone(), mode)
    }

    /// The evaluation core.
    fn evaluate_value(&self, input: Value, mode: EvalMode) -> Result<RegoOutcome, PolicyError> {
        let (deny, warn) = match mode {
            EvalMode::Rvm => self.eval_rvm(input)?,
            EvalMode::Interpreter => self.eval_interpreter(input)?,
        };
        let deny = match deny {
            Value::Undefined if self.has_warn => Vec::new(),
            Value::Undefined => return Err(PolicyError::Undefined),
            v => violations(&v, "deny")?,
        };
        let warn = match warn {
            Value::Undefined => Vec::new(),
            v => violations(&v, "warn")?,
        };
        Ok(RegoOutcome { deny, warn })
    }

    /// `deny` and `warn` (`Undefined` when not declared) by the interpreter.
    fn eval_interpreter(&self, input: Value) -> Result<(Value, Value), PolicyError> {
        let (has_deny, has_warn) = (self.has_deny, self.has_warn);
        self.with_engine(|engine| {
            engine.set_input(input);
            // regorus refuses to evaluate a rule no module declares.
            let mut eval = |declared: bool, rule: &str| {
                if declared {
                    engine
                        .eval_rule(rule_path(rule))
                        .map_err(|e| PolicyError::Eval(e.to_string()))
                } else {
                    Ok(Value::Undefined)
                }
            };
            let deny = eval(has_deny, "deny")?;
            let warn = eval(has_warn, "warn")?;
            Ok((deny, warn))
        })
    }

    /// `deny` and `warn` (`Undefined` when not declared) by this thread's VM.
    fn eval_rvm(&self, input: Value) -> Result<(Value, Value), PolicyError> {
        if let Err(reason) = self.rvm_check() {
            return Err(PolicyError::Compile(reason.to_owned()));
        }
        VMS.with(|cell| {
            let mut map = cell.borrow_mut();
            if !map.contains_key(&self.id) {
                if map.len() >= MAX_ENGINES_PER_THREAD {
                    map.clear();
                }
                map.insert(self.id, self.build_vm().map_err(PolicyError::Compile)?);
            }
            let Some(vm) = map.get_mut(&self.id) else {
                return Err(PolicyError::Eval("VM cache".into()));
            };
            vm.vm.set_input(input);
            let mut run = |declared: bool, rule: &str| -> Result<Value, PolicyError> {
                if declared {
                    run_vm(vm, &rule_path(rule), self.timeout)
                } else {
                    Ok(Value::Undefined)
                }
            };
            let deny = run(self.has_deny, "deny")?;
            let warn = run(self.has_warn, "warn")?;
            // Do not keep the input (evidence) alive in the cache.
            vm.vm.set_input(Value::Undefined);
            Ok((deny, warn))
        })
    }
}

/// Runs `entry` on `vm`, answering its host calls ([`EXTENSIONS`]) until
/// `timeout` has passed.
fn run_vm(vm: &mut Vm, entry: &str, timeout: Duration) -> Result<Value, PolicyError> {
    let started = std::time::Instant::now();
    let eval_error = |e: regorus::rvm::vm::VmError| PolicyError::Eval(e.to_string());
    let mut result = vm
        .vm
        .execute_entry_point_by_name(entry)
        .map_err(eval_error)?;
    if !vm.host_calls {
        return Ok(result);
    }
    // Each host call suspends the VM. The VM's timer bounds each run between
    // two calls; this deadline bounds them all.
    while let Some(SuspendReason::HostAwait {
        argument,
        identifier,
        ..
    }) = vm.vm.suspend_reason()
    {
        if started.elapsed() > timeout {
            return Err(PolicyError::Eval(format!(
                "execution exceeded the time limit of {timeout:?}"
            )));
        }
        let name = identifier.as_string().map_err(|_| {
            PolicyError::Eval(format!("host call with a non-string name {identifier}"))
        })?;
        let args: Vec<Value> = match argument {
            Value::Array(a) => a.iter().cloned().collect(),
            other => vec![other.clone()],
        };
        let value =
            call_extension(name, &args).map_err(|e| PolicyError::Eval(format!("{name}: {e}")))?;
        result = vm.vm.resume(Some(value)).map_err(eval_error)?;
    }
    if let Some(reason) = vm.vm.suspend_reason() {
        return Err(PolicyError::Eval(format!(
            "the VM suspended unexpectedly: {reason:?}"
        )));
    }
    Ok(result)
}

fn clip(s: &str) -> String {
    if s.chars().count() <= MAX_FIELD {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(MAX_FIELD).collect();
        t.push('…');
        t
    }
}

fn violations(v: &Value, rule: &'static str) -> Result<Vec<Violation>, PolicyError> {
    let malformed = |detail: String| PolicyError::Malformed { rule, detail };
    let items: Vec<Value> = match v {
        Value::Set(s) => s.iter().cloned().collect(),
        Value::Array(a) => a.iter().cloned().collect(),
        Value::Bool(false) | Value::Null => Vec::new(),
        other => return Err(malformed(format!("expected a set, got {}", short(other)))),
    };
    let total = items.len();
    let mut out = Vec::new();
    for item in items.into_iter().take(MAX_VIOLATIONS) {
        let violation = match &item {
            Value::String(s) => Violation {
                msg: clip(s),
                requirement: None,
                fix: None,
            },
            Value::Object(_) => {
                let field = |name: &str| -> Result<Option<String>, PolicyError> {
                    match &item[name] {
                        Value::Undefined | Value::Null => Ok(None),
                        Value::String(s) => Ok(Some(clip(s))),
                        other => Err(malformed(format!(
                            "{name} is {}, not a string",
                            short(other)
                        ))),
                    }
                };
                let msg = field("msg")?
                    .ok_or_else(|| malformed(format!("object without msg: {}", short(&item))))?;
                Violation {
                    msg,
                    requirement: field("requirement")?,
                    fix: field("fix")?,
                }
            }
            other => {
                return Err(malformed(format!(
                    "expected a string or object, got {}",
                    short(other)
                )));
            }
        };
        out.push(violation);
    }
    if total > MAX_VIOLATIONS {
        out.push(Violation {
            msg: format!("… and {} more {rule} results", total - MAX_VIOLATIONS),
            requirement: None,
            fix: None,
        });
    }
    out.sort_by(|a, b| a.msg.cmp(&b.msg));
    Ok(out)
}

fn short(v: &Value) -> String {
    let s = v.to_json_str().unwrap_or_else(|_| "?".into());
    s.chars().take(200).collect()
}

#[cfg(test)]
#[path = "rego_tests.rs"]
mod tests;
