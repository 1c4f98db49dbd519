//! Reading regorus's AST: the evaluated expressions of a rule head, `:=`
//! bindings, variable names, and reference chains split into steps.

use regorus::unstable::{AssignOp, Expr, RuleHead};

use super::Abs;

/// A step of a reference chain.
pub(super) enum Step<'a> {
    Field(String),
    Dynamic(&'a Expr),
}

/// The expressions of a rule head that are evaluated: value, key, arguments.
pub(super) fn head_exprs(head: &RuleHead) -> Vec<&Expr> {
    match head {
        RuleHead::Compr { assign, .. } => assign.iter().map(|a| a.value.as_ref()).collect(),
        RuleHead::Set { key, .. } => key.iter().map(|k| k.as_ref()).collect(),
        RuleHead::Func { args, assign, .. } => args
            .iter()
            .map(|a| a.as_ref())
            .chain(assign.iter().map(|a| a.value.as_ref()))
            .collect(),
    }
}

/// `x := <expr>` with a plain variable on the left.
pub(super) fn binding(e: &Expr) -> Option<(String, &Expr)> {
    match e {
        Expr::AssignExpr {
            op: AssignOp::ColEq,
            lhs,
            rhs,
            ..
        } => {
            let name = var_name(lhs)?;
            (name != "_").then(|| (name.to_owned(), rhs.as_ref()))
        }
        _ => None,
    }
}

pub(super) fn var_name(e: &Expr) -> Option<&str> {
    match e {
        Expr::Var { value, .. } => value.as_string().ok().map(|s| s.as_ref()),
        _ => None,
    }
}

/// The root and steps of a reference chain (`a.b["c"][d]`); any other
/// expression is a root without steps.
pub(super) fn chain(e: &Expr) -> (&Expr, Vec<Step<'_>>) {
    let mut steps = Vec::new();
    let mut cur = e;
    loop {
        match cur {
            Expr::RefDot { refr, field, .. } => {
                // A field after a dot is always an identifier.
                let name = match field.1.as_string() {
                    Ok(f) => f.to_string(),
                    Err(_) => field.0.text().to_owned(),
                };
                steps.push(Step::Field(name));
                cur = refr;
            }
            Expr::RefBrack { refr, index, .. } => {
                match index.as_ref() {
                    Expr::String { value, .. } | Expr::RawString { value, .. } => {
                        match value.as_string() {
                            Ok(f) => steps.push(Step::Field(f.to_string())),
                            Err(_) => steps.push(Step::Dynamic(index)),
                        }
                    }
                    _ => steps.push(Step::Dynamic(index)),
                }
                cur = refr;
            }
            _ => break,
        }
    }
    steps.reverse();
    (cur, steps)
}

/// `values` with the field `f` selected: `input` → `input.context`, a
/// context path → one level deeper; other parts of the input are dropped.
pub(super) fn extend(values: &[Abs], f: &str) -> Vec<Abs> {
    values
        .iter()
        .filter_map(|v| match v {
            Abs::Input => (f == "context").then(|| Abs::Context(Vec::new())),
            Abs::Context(path) => {
                let mut p = path.clone();
                p.push(f.to_owned());
                Some(Abs::Context(p))
            }
        })
        .collect()
}
