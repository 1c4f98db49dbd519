//! Static analysis of a contract's Rego: which request-context fields
//! (`input.context.*`) it may read.
//!
//! A contract declares the context fields it reads (`context: [namespace,
//! labels.team]`); its policy input carries only those, and the verdict cache
//! is keyed by them. [`context_reads`] finds what the Rego reads, on
//! regorus's own parse tree (comments and strings are not code), and
//! [`undeclared`] compares it with the declaration.
//!
//! The analysis over-approximates, never under-approximates: a read it
//! cannot follow counts as reading the whole context
//! ([`ContextReads::reads_everything`]). It follows
//! - reference chains with static keys: `input.context.namespace`,
//!   `input["context"].kind`, `input.context.labels["team"]`;
//! - local variables bound with `:=` to such a chain, through other such
//!   variables (`ctx := input.context; ctx.namespace`);
//! - imports of input paths (`import input.context as ctx`).
//!
//! Everything else that touches an input-derived value uses that value
//! whole: a dynamic key (`input.context.labels[k]` reads `labels`,
//! `input.context[k]` reads everything), iteration (`some k, v in
//! input.context.labels`), a function argument (`object.get(input, …)`,
//! `walk(input)`, `json.marshal(input.context)`, a user function taking
//! `input`), a comparison, a rule's value (`ctx := input.context` as a rule
//! reads everything), unification with `=`.
//!
//! Paths are cut after the field (`namespace.x` is `namespace`), or after
//! the key for the label maps: `labels.team` (the key is everything after
//! the first dot: `labels.app.kubernetes.io/name`).
//!
//! A variable bound to a path (`l := input.context.labels`) makes the rule
//! depend on that path being present. That counts as a read of the path
//! itself (`labels`, the whole map) unless the variable is also used in the
//! same body where its absence would fail the body anyway (`l.team == "x"`
//! reads only `labels.team`); uses under `not`, in comprehensions or in
//! `every` do not count for that.

use std::collections::{BTreeSet, HashMap};

use regorus::unstable::{Expr, Literal, Module, Query, Rule, RuleHead};

mod ast;

use super::contract::RegoModule;
use ast::{Step, binding, chain, extend, head_exprs, var_name};

/// The request-context fields provgate knows (`input.context.<field>`).
pub const CONTEXT_FIELDS: [&str; 9] = [
    "source",
    "namespace",
    "kind",
    "name",
    "container",
    "operation",
    "user",
    "labels",
    "namespaceLabels",
];

/// The context fields that are maps, declared whole or key by key.
pub const CONTEXT_MAP_FIELDS: [&str; 2] = ["labels", "namespaceLabels"];

/// What a contract's Rego may read of `input.context`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContextReads {
    /// Field paths read: `namespace`, `labels` (the whole map),
    /// `labels.team` (one key).
    pub fields: BTreeSet<String>,
    /// Where the Rego reads the whole context or input in a way the analysis
    /// does not follow, as `file:line:col: text (why)`. Non-empty means it may
    /// read everything.
    pub dynamic: Vec<String>,
}

impl ContextReads {
    /// The Rego may read any context field (see [`ContextReads::dynamic`]).
    pub fn reads_everything(&self) -> bool {
        !self.dynamic.is_empty()
    }
}

/// Why the analysis could not run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AnalysisError {
    /// A module does not parse.
    #[error("{path}: does not parse: {detail}")]
    Parse {
        /// The module.
        path: String,
        /// The parser's message.
        detail: String,
    },
}

/// The context fields that `modules` (a contract's modules and the shared
/// library, without tests) may read.
pub fn context_reads(modules: &[RegoModule]) -> Result<ContextReads, AnalysisError> {
    let mut engine = regorus::Engine::new();
    for m in modules {
        engine
            .add_policy(m.path.clone(), m.text.clone())
            .map_err(|e| AnalysisError::Parse {
                path: m.path.clone(),
                detail: e.to_string(),
            })?;
    }
    let mut analyzer = Analyzer::default();
    for module in engine.get_modules().iter() {
        analyzer.module(module);
    }
    Ok(analyzer.reads)
}

/// The context fields `reads` needs that `declared` does not cover, sorted.
/// A declared map field (`labels`) covers its keys (`labels.team`). When the
/// Rego may read everything, every known field not declared is missing.
pub fn undeclared(reads: &ContextReads, declared: &[String]) -> Vec<String> {
    let covered = |field: &str| {
        declared.iter().any(|d| d == field)
            || field.split_once('.').is_some_and(|(map, _)| {
                CONTEXT_MAP_FIELDS.contains(&map) && declared.iter().any(|d| d == map)
            })
    };
    let mut missing: BTreeSet<String> = reads
        .fields
        .iter()
        .filter(|f| !covered(f))
        .cloned()
        .collect();
    if reads.reads_everything() {
        missing.extend(
            CONTEXT_FIELDS
                .iter()
                .filter(|f| !covered(f))
                .map(|f| (*f).to_owned()),
        );
    }
    missing.into_iter().collect()
}

/// An input-derived value.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Abs {
    /// `input` itself.
    Input,
    /// `input.context` and the path below it.
    Context(Vec<String>),
}

/// A local variable bound with `:=` to an input-derived value.
#[derive(Debug)]
struct Binding {
    values: Vec<Abs>,
    /// The query (scope) that binds it.
    scope: usize,
    /// Used where its absence fails that query.
    strict_use: bool,
}

#[derive(Debug, Default)]
struct Analyzer {
    reads: ContextReads,
    /// Import aliases of the current module.
    imports: HashMap<String, Vec<Abs>>,
    /// Variables in scope, innermost last: name → index into `bindings`.
    scopes: Vec<HashMap<String, usize>>,
    bindings: Vec<Binding>,
}

/// Where an expression is evaluated: `Some(scope)` when its being undefined
/// fails that query (a plain literal of it, or a rule head), else `None`.
type Strict = Option<usize>;

impl Analyzer {
    fn module(&mut self, module: &Module) {
        self.imports.clear();
        for import in &module.imports {
            let (root, steps) = chain(&import.refr);
            if var_name(root) != Some("input") {
                continue;
            }
            let alias = match &import.r#as {
                Some(span) => span.text().to_owned(),
                None => match steps.last() {
                    Some(Step::Field(f)) => f.clone(),
                    Some(Step::Dynamic(_)) => continue,
                    None => "input".to_owned(),
                },
            };
            let mut values = vec![Abs::Input];
            for step in &steps {
                values = match step {
                    Step::Field(f) => extend(&values, f),
                    Step::Dynamic(_) => {
                        self.dynamic(&import.refr, "an import with a dynamic key");
                        Vec::new()
                    }
                };
            }
            self.imports.insert(alias, values);
        }
        for rule in &module.policy {
            self.rule(rule);
        }
    }

    fn rule(&mut self, rule: &Rule) {
        match rule {
            Rule::Default {
                refr, args, value, ..
            } => {
                self.ref_indexes(refr, None);
                for a in args {
                    self.expr(a, None);
                }
                self.expr(value, None);
            }
            Rule::Spec { head, bodies, .. } => {
                let head_exprs = head_exprs(head);
                let refr = match head {
                    RuleHead::Compr { refr, .. }
                    | RuleHead::Set { refr, .. }
                    | RuleHead::Func { refr, .. } => refr,
                };
                if bodies.is_empty() {
                    self.ref_indexes(refr, None);
                    for e in &head_exprs {
                        self.expr(e, None);
                    }
                }
                for body in bodies {
                    // The head is evaluated in each body's scope.
                    let scope = self.open(&body.query);
                    self.query_literals(&body.query, scope);
                    self.ref_indexes(refr, Some(scope));
                    for e in &head_exprs {
                        self.expr(e, Some(scope));
                    }
                    if let Some(assign) = &body.assign {
                        self.expr(&assign.value, Some(scope));
                    }
                    self.close();
                }
            }
        }
    }

    /// Opens the scope of `query`: binds its `x := <input path>` variables.
    fn open(&mut self, query: &Query) -> usize {
        let scope = self.scopes.len();
        self.scopes.push(HashMap::new());
        // Chains of bindings (`a := input.context; b := a.labels`) may be
        // written in any order: repeat until nothing new is bound.
        let candidates: Vec<(String, &Expr)> = query
            .stmts
            .iter()
            .filter_map(|s| match &s.literal {
                Literal::Expr { expr, .. } => binding(expr),
                _ => None,
            })
            .collect();
        loop {
            let mut changed = false;
            for (name, rhs) in &candidates {
                if self.scopes[scope].contains_key(name) {
                    continue;
                }
                if let Some(values) = self.resolve(rhs) {
                    let index = self.bindings.len();
                    self.bindings.push(Binding {
                        values,
                        scope,
                        strict_use: false,
                    });
                    self.scopes[scope].insert(name.clone(), index);
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        scope
    }

    /// Closes the innermost scope. A binding not used where its absence
    /// fails the query is a read of its path (the rule depends on it being
    /// present).
    fn close(&mut self) {
        let Some(scope) = self.scopes.pop() else {
            return;
        };
        for index in scope.into_values() {
            let Some(binding) = self.bindings.get(index) else {
                continue;
            };
            if binding.strict_use {
                continue;
            }
            for value in binding.values.clone() {
                if let Abs::Context(path) = value
                    && !path.is_empty()
                {
                    self.field(&path);
                }
            }
        }
    }

    fn query_literals(&mut self, query: &Query, scope: usize) {
        for stmt in &query.stmts {
            match &stmt.literal {
                Literal::SomeVars { .. } => {}
                Literal::SomeIn {
                    key,
                    value,
                    collection,
                    ..
                } => {
                    if let Some(k) = key {
                        self.expr(k, Some(scope));
                    }
                    self.expr(value, Some(scope));
                    self.expr(collection, Some(scope));
                }
                Literal::Expr { expr, .. } => {
                    if let Some((name, rhs)) = binding(expr)
                        && self
                            .lookup(&name)
                            .is_some_and(|i| self.bindings[i].scope == scope)
                    {
                        // A tracked binding: its right-hand side is no read
                        // by itself, but its root variable is used strictly.
                        self.chain_value(rhs, Some(scope));
                    } else {
                        self.expr(expr, Some(scope));
                    }
                }
                Literal::NotExpr { expr, .. } => self.expr(expr, None),
                Literal::Every { domain, query, .. } => {
                    self.expr(domain, Some(scope));
                    self.nested(query);
                }
            }
            for with in &stmt.with_mods {
                // The target is written, not read; the value is read.
                self.ref_indexes(&with.refr, None);
                self.expr(&with.r#as, Some(scope));
            }
        }
    }

    /// A query evaluated apart (comprehension, `every`): its own scope, and
    /// no use in it is strict for the enclosing one.
    fn nested(&mut self, query: &Query) {
        let scope = self.open(query);
        self.query_literals(query, scope);
        self.close();
    }

    /// Walks `e`, whose value is used whole.
    fn expr(&mut self, e: &Expr, strict: Strict) {
        match e {
            Expr::String { .. }
            | Expr::RawString { .. }
            | Expr::Number { .. }
            | Expr::Bool { .. }
            | Expr::Null { .. } => {}
            Expr::Var { .. } | Expr::RefDot { .. } | Expr::RefBrack { .. } => {
                if let Some(values) = self.chain_value(e, strict) {
                    for v in values {
                        self.whole(e, &v, "used as a value");
                    }
                }
            }
            Expr::Array { items, .. } | Expr::Set { items, .. } => {
                for i in items {
                    self.expr(i, strict);
                }
            }
            Expr::Object { fields, .. } => {
                for (_, k, v) in fields {
                    self.expr(k, strict);
                    self.expr(v, strict);
                }
            }
            Expr::ArrayCompr { term, query, .. } | Expr::SetCompr { term, query, .. } => {
                self.comprehension(&[term], query);
            }
            Expr::ObjectCompr {
                key, value, query, ..
            } => self.comprehension(&[key, value], query),
            Expr::Call { fcn, params, .. } => {
                // The function's name is no read; a dynamic part of it is.
                self.ref_indexes(fcn, strict);
                for p in params {
                    self.expr(p, strict);
                }
            }
            Expr::UnaryExpr { expr, .. } => self.expr(expr, strict),
            Expr::BinExpr { lhs, rhs, .. }
            | Expr::BoolExpr { lhs, rhs, .. }
            | Expr::ArithExpr { lhs, rhs, .. }
            | Expr::AssignExpr { lhs, rhs, .. } => {
                self.expr(lhs, strict);
                self.expr(rhs, strict);
            }
            Expr::Membership {
                key,
                value,
                collection,
                ..
            } => {
                if let Some(k) = key {
                    self.expr(k, strict);
                }
                self.expr(value, strict);
                self.expr(collection, strict);
            }
            #[allow(unreachable_patterns)]
            _ => self.dynamic(e, "an expression the analysis does not know"),
        }
    }

    fn comprehension(&mut self, terms: &[&regorus::unstable::Ref<Expr>], query: &Query) {
        let scope = self.open(query);
        self.query_literals(query, scope);
        for t in terms {
            self.expr(t, Some(scope));
        }
        self.close();
    }

    /// Walks the dynamic keys of a reference that is not itself a read (a
    /// rule head, a function name, a `with` target).
    fn ref_indexes(&mut self, e: &Expr, strict: Strict) {
        let (_, steps) = chain(e);
        for step in steps {
            if let Step::Dynamic(index) = step {
                self.expr(index, strict);
            }
        }
    }

    /// The input-derived values `e` denotes, if it is a reference chain from
    /// `input`, an import alias or a bound variable: walks its dynamic keys,
    /// and records the values they index as used whole.
    fn chain_value(&mut self, e: &Expr, strict: Strict) -> Option<Vec<Abs>> {
        let (root, steps) = chain(e);
        let mut values = self.root(root, strict)?;
        for step in steps {
            match step {
                Step::Field(f) => values = extend(&values, &f),
                Step::Dynamic(index) => {
                    self.expr(index, strict);
                    for v in std::mem::take(&mut values) {
                        self.whole(e, &v, "indexed with a dynamic key");
                    }
                }
            }
        }
        Some(values)
    }

    /// Like [`Analyzer::chain_value`] without recording anything: the values
    /// of a binding's right-hand side, if it is a chain with static keys.
    fn resolve(&self, e: &Expr) -> Option<Vec<Abs>> {
        let (root, steps) = chain(e);
        let mut values = self.root_values(root)?;
        for step in steps {
            match step {
                Step::Field(f) => values = extend(&values, &f),
                Step::Dynamic(_) => return None,
            }
        }
        Some(values)
    }

    fn root(&mut self, root: &Expr, strict: Strict) -> Option<Vec<Abs>> {
        let name = var_name(root)?;
        if let Some(index) = self.lookup(name) {
            let binding = &mut self.bindings[index];
            if strict == Some(binding.scope) {
                binding.strict_use = true;
            }
        }
        self.root_values(root)
    }

    fn root_values(&self, root: &Expr) -> Option<Vec<Abs>> {
        let name = var_name(root)?;
        if let Some(index) = self.lookup(name) {
            return Some(self.bindings[index].values.clone());
        }
        if let Some(values) = self.imports.get(name) {
            return Some(values.clone());
        }
        (name == "input").then(|| vec![Abs::Input])
    }

    fn lookup(&self, name: &str) -> Option<usize> {
        self.scopes.iter().rev().find_map(|s| s.get(name).copied())
    }

    /// `e`, of value `v`, is used whole.
    fn whole(&mut self, e: &Expr, v: &Abs, why: &str) {
        match v {
            Abs::Input => self.dynamic(e, &format!("the whole input {why}")),
            Abs::Context(path) if path.is_empty() => {
                self.dynamic(e, &format!("the whole context {why}"))
            }
            Abs::Context(path) => self.field(path),
        }
    }

    fn field(&mut self, path: &[String]) {
        let Some(first) = path.first() else {
            return;
        };
        let field = match path.get(1) {
            Some(key) if CONTEXT_MAP_FIELDS.contains(&first.as_str()) => format!("{first}.{key}"),
            _ => first.clone(),
        };
        self.reads.fields.insert(field);
    }

    fn dynamic(&mut self, e: &Expr, why: &str) {
        let span = e.span();
        let text: String = span.text().chars().take(80).collect();
        self.reads.dynamic.push(format!(
            "{}:{}:{}: {text} ({why})",
            span.source.file(),
            span.line,
            span.col
        ));
    }
}
#[cfg(test)]
mod tests;
