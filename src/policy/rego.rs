//! Rego evaluation on regorus, one engine per worker thread.
//!
//! A [`RegoProgram`] is compiled (checked) once per contract revision. Each
//! thread that evaluates it builds its own `regorus::Engine` from the source
//! the first time and keeps it in a thread-local cache: clones of one engine
//! share an `Arc`'d AST and contend across threads (measured in
//! `notes/rust-crates.md`), independent engines do not.
//!
//! Evaluation is bounded by regorus's execution timer. An evaluation error,
//! a timeout, or an undefined `deny` is reported as [`PolicyError`], which the
//! decision layer turns into a deny that says so (fail closed).

use std::cell::RefCell;
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use regorus::Value;
use serde::Serialize;
use sha2::Digest as _;

use super::contract::{CONTRACT_PACKAGE, RegoModule};
use super::input::PolicyInput;

/// Violations (deny or warn results) kept per rule; more are summarised.
const MAX_VIOLATIONS: usize = 50;
/// Characters kept per message field.
const MAX_FIELD: usize = 1000;
/// Engines kept per thread before the cache is cleared.
const MAX_ENGINES_PER_THREAD: usize = 256;

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
    engine
        .add_extension(
            "crypto.sha256".into(),
            1,
            Box::new(|args: Vec<Value>| {
                let Some(arg) = args.first() else {
                    anyhow::bail!("crypto.sha256 expects one argument");
                };
                let s = arg
                    .as_string()
                    .map_err(|_| anyhow::anyhow!("crypto.sha256 expects a string"))?;
                Ok(Value::from(hex::encode(sha2::Sha256::digest(s.as_bytes()))))
            }),
        )
        .map_err(|e| e.to_string())
}

/// A compiled contract program.
#[derive(Debug)]
pub struct RegoProgram {
    id: u64,
    modules: Arc<Vec<RegoModule>>,
    data: Option<serde_json::Value>,
    timeout: Duration,
    has_warn: bool,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    static ENGINES: RefCell<HashMap<u64, regorus::Engine>> = RefCell::new(HashMap::new());
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
            has_warn: false,
        };
        let engine = program.build()?;
        program.has_warn = program.modules.iter().any(|m| {
            engine
                .has_declared_rule_rooted_at(&m.path, "warn")
                .unwrap_or(false)
        });
        Ok(program)
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
        engine.set_execution_timer_config(regorus::utils::limits::ExecutionTimerConfig {
            limit: self.timeout,
            check_interval: NonZeroU32::new(64).unwrap_or(NonZeroU32::MIN),
        });
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
        self.eval_value(input.value().clone())
    }

    /// Evaluates `deny` and `warn` over any value (the core of
    /// [`RegoProgram::evaluate`]).
    fn eval_value(&self, input: Value) -> Result<RegoOutcome, PolicyError> {
        let has_warn = self.has_warn;
        self.with_engine(|engine| {
            engine.set_input(input);
            let deny = engine
                .eval_rule(format!("data.{CONTRACT_PACKAGE}.deny"))
                .map_err(|e| PolicyError::Eval(e.to_string()))?;
            let deny = match deny {
                Value::Undefined if has_warn => Vec::new(),
                Value::Undefined => return Err(PolicyError::Undefined),
                v => violations(&v, "deny")?,
            };
            let warn = if has_warn {
                match engine
                    .eval_rule(format!("data.{CONTRACT_PACKAGE}.warn"))
                    .map_err(|e| PolicyError::Eval(e.to_string()))?
                {
                    Value::Undefined => Vec::new(),
                    v => violations(&v, "warn")?,
                }
            } else {
                Vec::new()
            };
            Ok(RegoOutcome { deny, warn })
        })
    }
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
mod tests {
    use super::*;

    fn program(text: &str) -> RegoProgram {
        RegoProgram::compile(
            vec![RegoModule {
                path: "t.rego".into(),
                text: text.into(),
            }],
            None,
            Duration::from_millis(500),
        )
        .unwrap()
    }

    #[test]
    fn no_matching_rule_is_an_empty_deny_set() {
        let p = program("package provgate.contract\ndeny contains \"x\" if { input.bad }\n");
        let out = p
            .eval_value(Value::from(serde_json::json!({"bad": false})))
            .unwrap();
        assert!(out.deny.is_empty());
        let out = p
            .eval_value(Value::from(serde_json::json!({"bad": true})))
            .unwrap();
        assert_eq!(
            out.deny,
            vec![Violation {
                msg: "x".into(),
                requirement: None,
                fix: None
            }]
        );
    }

    #[test]
    fn structured_and_string_violations() {
        let p = program(
            "package provgate.contract\n\
             deny contains {\"msg\": \"m\", \"requirement\": \"r\", \"fix\": \"f\"} if { true }\n\
             warn contains \"w\" if { true }\n",
        );
        let out = p.eval_value(Value::new_object()).unwrap();
        assert_eq!(out.deny[0].requirement.as_deref(), Some("r"));
        assert_eq!(out.warn[0].msg, "w");
    }

    #[test]
    fn runtime_errors_and_malformed_results_are_errors() {
        let p = program("package provgate.contract\ndeny contains x if { x := 1 / input.zero }\n");
        assert!(matches!(
            p.eval_value(Value::from(serde_json::json!({"zero": 0}))),
            Err(PolicyError::Eval(_))
        ));
        let p = program("package provgate.contract\ndeny contains 42 if { true }\n");
        assert!(matches!(
            p.eval_value(Value::new_object()),
            Err(PolicyError::Malformed { .. })
        ));
        let p = program("package provgate.contract\ndeny contains {\"fix\": \"f\"} if { true }\n");
        assert!(matches!(
            p.eval_value(Value::new_object()),
            Err(PolicyError::Malformed { .. })
        ));
    }

    #[test]
    fn a_runaway_policy_hits_the_time_limit() {
        let p = RegoProgram::compile(
            vec![RegoModule {
                path: "t.rego".into(),
                text: "package provgate.contract\ndeny contains x if { some i in numbers.range(1, 100000000); x := sprintf(\"%d\", [i]); x == \"never\" }\n".into(),
            }],
            None,
            Duration::from_millis(50),
        )
        .unwrap();
        assert!(matches!(
            p.eval_value(Value::new_object()),
            Err(PolicyError::Eval(_))
        ));
    }

    #[test]
    fn crypto_sha256_extension() {
        let p = program(
            "package provgate.contract\ndeny contains crypto.sha256(\"hello\") if { true }\n",
        );
        let out = p.eval_value(Value::new_object()).unwrap();
        assert_eq!(
            out.deny[0].msg,
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
    }

    #[test]
    fn compile_errors_are_reported() {
        assert!(matches!(
            RegoProgram::compile(
                vec![RegoModule {
                    path: "t.rego".into(),
                    text: "package provgate.contract\ndeny contains if {".into()
                }],
                None,
                Duration::from_secs(1)
            ),
            Err(PolicyError::Compile(_))
        ));
        assert!(matches!(
            RegoProgram::compile(
                vec![RegoModule {
                    path: "t.rego".into(),
                    text: "package other\nx := 1\n".into()
                }],
                None,
                Duration::from_secs(1)
            ),
            Err(PolicyError::Compile(_))
        ));
    }
}
