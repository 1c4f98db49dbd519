//! The crate's layers, checked on its own source.
//!
//! Every file under `src/` is parsed with `syn` and each path it names
//! (`use` trees, paths in types and expressions, and `crate::…`/`super::…`
//! sequences inside macro calls) is resolved to the top-level module it
//! points into: `src/x.rs` and `src/x/**` are module `x`; `lib.rs` and
//! `main.rs`, which only declare and dispatch, are left out. Test modules
//! count as much as the code they test.
//!
//! Three checks run on that graph and on the sources:
//!
//! - no import cycle among top-level modules (the failure names the cycle
//!   and the file and line of each edge in it);
//! - the registry layer and the policy layer know nothing of each other,
//!   and the HTTP-facing modules reach the registry only through the engine;
//! - no file over [`MAX_FILE_LINES`] lines and no function over
//!   [`MAX_FN_LINES`] (unit tests in a file of their own count as a file).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use proc_macro2::{TokenStream, TokenTree};
use quote::ToTokens as _;
use syn::visit::Visit;

/// The most lines a file under `src/` may have.
const MAX_FILE_LINES: usize = 600;
/// The most lines a function may span, from `fn` to its closing brace.
const MAX_FN_LINES: usize = 120;

/// Imports that must not exist, whatever else the graph allows: (from,
/// to, why).
const FORBIDDEN: &[(&str, &str, &str)] = &[
    (
        "policy",
        "oci",
        "policy judges verified evidence and must not know the registry layer",
    ),
    (
        "oci",
        "policy",
        "the registry layer fetches bytes and must not know contracts",
    ),
    (
        "server",
        "oci",
        "the HTTP layer reaches registries only through the engine",
    ),
    (
        "gate",
        "oci",
        "the gate reaches registries only through the engine",
    ),
    (
        "admission",
        "oci",
        "admission reaches registries only through the engine",
    ),
];

/// One place a module names another.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Site {
    file: String,
    line: usize,
}

/// Edges between top-level modules, each with the first place it is made.
type Graph = BTreeMap<String, BTreeMap<String, Site>>;

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `src/`, sorted, with its path relative to the
/// crate root (`src/…`).
fn sources() -> Vec<(String, String)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
            .map(|e| e.expect("directory entry").path())
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|e| e == "rs") {
                out.push(p);
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    walk(&src_dir(), &mut files);
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()));
            let rel = p
                .strip_prefix(root)
                .expect("under the crate root")
                .to_string_lossy()
                .replace('\\', "/");
            (rel, text)
        })
        .collect()
}

/// The module path of a file: `src/gate/auth.rs` → `[gate, auth]`,
/// `src/gate/mod.rs` → `[gate]`; `None` for `lib.rs` and `main.rs`.
fn module_path(rel: &str) -> Option<Vec<String>> {
    let inner = rel.strip_prefix("src/")?.strip_suffix(".rs")?;
    let mut parts: Vec<String> = inner.split('/').map(str::to_owned).collect();
    if parts.len() == 1 && (parts[0] == "lib" || parts[0] == "main") {
        return None;
    }
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    Some(parts)
}

/// Collects the top-level modules one file names.
struct Imports<'a> {
    file: &'a str,
    /// The module the visitor is in (the file's path, then inline `mod`s).
    module: Vec<String>,
    found: Vec<(String, usize)>,
}

impl Imports<'_> {
    /// Resolves a path given as its leading segments; `line` is where it
    /// is written.
    fn resolve(&mut self, segments: &[String], line: usize) {
        let mut at = match segments.first().map(String::as_str) {
            Some("crate") => Vec::new(),
            Some("super") => self.module.clone(),
            _ => return,
        };
        let mut rest = &segments[1..];
        if segments[0] == "super" {
            at.pop();
            while rest.first().is_some_and(|s| s == "super") {
                at.pop();
                rest = &rest[1..];
            }
        }
        let top = match at.first() {
            Some(t) => t.clone(),
            None => match rest.first() {
                Some(t) if t != "self" && t != "*" => t.clone(),
                _ => return,
            },
        };
        self.found.push((top, line));
    }

    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(prefix, &p.tree);
                prefix.pop();
            }
            syn::UseTree::Name(n) => {
                prefix.push(n.ident.to_string());
                self.resolve(&prefix.clone(), n.ident.span().start().line);
                prefix.pop();
            }
            syn::UseTree::Rename(r) => {
                prefix.push(r.ident.to_string());
                self.resolve(&prefix.clone(), r.ident.span().start().line);
                prefix.pop();
            }
            syn::UseTree::Glob(g) => {
                prefix.push("*".into());
                self.resolve(&prefix.clone(), g.star_token.spans[0].start().line);
                prefix.pop();
            }
            syn::UseTree::Group(g) => {
                for t in &g.items {
                    self.use_tree(prefix, t);
                }
            }
        }
    }

    /// `crate :: x` and `super :: …` inside macro input, which `syn` does
    /// not parse.
    fn tokens(&mut self, tokens: TokenStream) {
        let trees: Vec<TokenTree> = tokens.into_iter().collect();
        let mut i = 0;
        while i < trees.len() {
            if let TokenTree::Group(g) = &trees[i] {
                self.tokens(g.stream());
            }
            if let TokenTree::Ident(id) = &trees[i]
                && (id == "crate" || id == "super")
            {
                let mut segments = vec![id.to_string()];
                let mut j = i + 1;
                loop {
                    match (trees.get(j), trees.get(j + 1), trees.get(j + 2)) {
                        (
                            Some(TokenTree::Punct(a)),
                            Some(TokenTree::Punct(b)),
                            Some(TokenTree::Ident(next)),
                        ) if a.as_char() == ':' && b.as_char() == ':' => {
                            segments.push(next.to_string());
                            j += 3;
                        }
                        _ => break,
                    }
                }
                if segments.len() > 1 {
                    self.resolve(&segments, id.span().start().line);
                }
                i = j.max(i + 1);
                continue;
            }
            i += 1;
        }
    }
}

impl<'ast> Visit<'ast> for Imports<'_> {
    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        self.module.push(m.ident.to_string());
        syn::visit::visit_item_mod(self, m);
        self.module.pop();
    }

    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        self.use_tree(&mut Vec::new(), &u.tree);
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        let segments: Vec<String> = p.segments.iter().map(|s| s.ident.to_string()).collect();
        if let Some(first) = p.segments.first() {
            self.resolve(&segments, first.ident.span().start().line);
        }
        syn::visit::visit_path(self, p);
    }

    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        self.tokens(m.tokens.clone());
        syn::visit::visit_macro(self, m);
    }
}

fn parse(rel: &str, text: &str) -> syn::File {
    syn::parse_file(text)
        .unwrap_or_else(|e| panic!("{rel}:{}: cannot parse: {e}", e.span().start().line))
}

/// The graph of top-level modules under `src/`.
fn graph() -> Graph {
    let mut g = Graph::new();
    for (rel, text) in sources() {
        let Some(module) = module_path(&rel) else {
            continue;
        };
        let top = module[0].clone();
        let mut v = Imports {
            file: &rel,
            module,
            found: Vec::new(),
        };
        v.visit_file(&parse(&rel, &text));
        g.entry(top.clone()).or_default();
        for (to, line) in v.found {
            if to == top {
                continue;
            }
            let site = Site {
                file: v.file.to_owned(),
                line,
            };
            let first = g
                .entry(top.clone())
                .or_default()
                .entry(to)
                .or_insert(site.clone());
            if site < *first {
                *first = site;
            }
        }
    }
    g
}

/// A cycle in `g` as `[a, b, …, a]`, or `None` when it has none. Depth
/// first, in name order, so the answer is stable.
fn find_cycle(g: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(
        g: &BTreeMap<String, BTreeSet<String>>,
        node: &str,
        marks: &mut BTreeMap<String, Mark>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match marks.get(node) {
            Some(Mark::Done) => return None,
            Some(Mark::Open) => {
                let from = stack.iter().position(|n| n == node).unwrap_or(0);
                let mut cycle = stack[from..].to_vec();
                cycle.push(node.to_owned());
                return Some(cycle);
            }
            None => {}
        }
        marks.insert(node.to_owned(), Mark::Open);
        stack.push(node.to_owned());
        for next in g.get(node).into_iter().flatten() {
            if let Some(c) = visit(g, next, marks, stack) {
                return Some(c);
            }
        }
        stack.pop();
        marks.insert(node.to_owned(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for node in g.keys() {
        if let Some(c) = visit(g, node, &mut marks, &mut Vec::new()) {
            return Some(c);
        }
    }
    None
}

fn edges(g: &Graph) -> BTreeMap<String, BTreeSet<String>> {
    g.iter()
        .map(|(from, to)| (from.clone(), to.keys().cloned().collect()))
        .collect()
}

#[test]
fn top_level_modules_import_one_another_without_a_cycle() {
    let g = graph();
    assert!(
        g.len() > 10,
        "the source walk found only {:?}: is src/ where it should be?",
        g.keys()
    );
    if let Some(cycle) = find_cycle(&edges(&g)) {
        let mut msg = format!("import cycle: {}\n", cycle.join(" → "));
        for pair in cycle.windows(2) {
            let site = &g[&pair[0]][&pair[1]];
            let _ = writeln!(
                msg,
                "  {} → {}: {}:{}",
                pair[0], pair[1], site.file, site.line
            );
        }
        panic!("{msg}");
    }
}

#[test]
fn registry_policy_and_http_layers_keep_apart() {
    let g = graph();
    let mut broken = String::new();
    for (from, to, why) in FORBIDDEN {
        if let Some(site) = g.get(*from).and_then(|t| t.get(*to)) {
            let _ = writeln!(
                broken,
                "{from} imports {to} at {}:{} ({why})",
                site.file, site.line
            );
        }
    }
    assert!(broken.is_empty(), "{broken}");
}

#[test]
fn the_cycle_finder_finds_a_cycle_and_only_a_cycle() {
    let g = |pairs: &[(&str, &str)]| {
        let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (a, b) in pairs {
            g.entry((*a).into()).or_default().insert((*b).into());
            g.entry((*b).into()).or_default();
        }
        g
    };
    // A diamond is not a cycle.
    assert_eq!(
        find_cycle(&g(&[("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")])),
        None
    );
    assert_eq!(
        find_cycle(&g(&[("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")])),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
    // A cycle reached from outside it is reported from where it closes.
    assert_eq!(
        find_cycle(&g(&[("a", "b"), ("b", "c"), ("c", "b")])),
        Some(vec!["b".into(), "c".into(), "b".into()])
    );
}

#[test]
fn imports_resolve_to_top_level_modules() {
    let text = r#"
        use crate::oci::{ImageRef, manifest::Manifest};
        use super::sibling::Thing;
        use super::super::far::Other;
        fn f() -> crate::digest::Digest {
            assert!(matches!(x, crate::verify::Error::Bad));
            crate::clock::now()
        }
        mod tests {
            use super::*;
            use super::super::up::Z;
        }
    "#;
    let mut v = Imports {
        file: "src/a/b.rs",
        module: module_path("src/a/b.rs").expect("a module"),
        found: Vec::new(),
    };
    v.visit_file(&parse("synthetic", text));
    let found: BTreeSet<String> = v.found.into_iter().map(|(m, _)| m).collect();
    let expected: BTreeSet<String> = ["oci", "a", "far", "digest", "verify", "clock"]
        .into_iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(found, expected);
    assert_eq!(module_path("src/gate/mod.rs"), Some(vec!["gate".into()]));
    assert_eq!(module_path("src/lib.rs"), None);
}

/// Something over its size limit: a file, or a function in a file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Oversized {
    File { file: String },
    Fn { file: String, name: String },
}

impl std::fmt::Display for Oversized {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Oversized::File { file } => write!(f, "file {file}"),
            Oversized::Fn { file, name } => write!(f, "fn {file} {name}"),
        }
    }
}

/// Collects the length of every function with a body.
struct Functions {
    scope: Vec<String>,
    found: Vec<(String, usize)>,
}

impl Functions {
    fn record(&mut self, name: &syn::Ident, fn_token: &syn::token::Fn, block: &syn::Block) {
        let start = fn_token.span.start().line;
        let end = block.brace_token.span.close().end().line;
        let mut path = self.scope.clone();
        path.push(name.to_string());
        self.found.push((path.join("::"), end + 1 - start));
    }
}

impl<'ast> Visit<'ast> for Functions {
    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        self.scope.push(m.ident.to_string());
        syn::visit::visit_item_mod(self, m);
        self.scope.pop();
    }

    fn visit_item_impl(&mut self, i: &'ast syn::ItemImpl) {
        let ty = i.self_ty.to_token_stream().to_string().replace(' ', "");
        let scope = match &i.trait_ {
            Some((_, t, _)) => format!(
                "<{ty} as {}>",
                t.to_token_stream().to_string().replace(' ', "")
            ),
            None => ty,
        };
        self.scope.push(scope);
        syn::visit::visit_item_impl(self, i);
        self.scope.pop();
    }

    fn visit_item_trait(&mut self, t: &'ast syn::ItemTrait) {
        self.scope.push(t.ident.to_string());
        syn::visit::visit_item_trait(self, t);
        self.scope.pop();
    }

    fn visit_item_fn(&mut self, f: &'ast syn::ItemFn) {
        self.record(&f.sig.ident, &f.sig.fn_token, &f.block);
        syn::visit::visit_item_fn(self, f);
    }

    fn visit_impl_item_fn(&mut self, f: &'ast syn::ImplItemFn) {
        self.record(&f.sig.ident, &f.sig.fn_token, &f.block);
        syn::visit::visit_impl_item_fn(self, f);
    }

    fn visit_trait_item_fn(&mut self, f: &'ast syn::TraitItemFn) {
        if let Some(block) = &f.default {
            self.record(&f.sig.ident, &f.sig.fn_token, block);
        }
        syn::visit::visit_trait_item_fn(self, f);
    }
}

/// Everything under `src/` over its limit, with its size.
fn oversized_now() -> BTreeMap<Oversized, usize> {
    let mut out = BTreeMap::new();
    for (rel, text) in sources() {
        let lines = text.lines().count();
        if lines > MAX_FILE_LINES {
            out.insert(Oversized::File { file: rel.clone() }, lines);
        }
        let mut v = Functions {
            scope: Vec::new(),
            found: Vec::new(),
        };
        v.visit_file(&parse(&rel, &text));
        for (name, lines) in v.found {
            if lines > MAX_FN_LINES {
                let key = Oversized::Fn {
                    file: rel.clone(),
                    name,
                };
                // Two functions of one name in one scope (e.g. a cfg pair):
                // the larger one counts.
                let e = out.entry(key).or_insert(0);
                *e = (*e).max(lines);
            }
        }
    }
    out
}

fn render(items: &BTreeMap<Oversized, usize>) -> String {
    items.iter().map(|(k, n)| format!("{k} {n}\n")).collect()
}

#[test]
fn no_file_or_function_outgrows_its_limit() {
    let now = oversized_now();
    assert!(
        now.is_empty(),
        "over the limits ({MAX_FILE_LINES} lines per file, {MAX_FN_LINES} per fn): split them\n{}",
        render(&now)
    );
}

#[test]
fn the_size_check_sees_functions_and_their_scopes() {
    let body = "    let x = 1;\n".repeat(3);
    let text = format!(
        "impl Foo {{\n    fn small() {{\n{body}    }}\n}}\n\
         impl From<u8> for Foo {{\n    fn from(_: u8) -> Self {{\n        Foo\n    }}\n}}\n\
         mod tests {{\n    fn t() {{}}\n}}\n"
    );
    let mut v = Functions {
        scope: Vec::new(),
        found: Vec::new(),
    };
    v.visit_file(&parse("synthetic", &text));
    assert_eq!(
        v.found,
        vec![
            ("Foo::small".to_owned(), 5),
            ("<Foo as From<u8>>::from".to_owned(), 3),
            ("tests::t".to_owned(), 1),
        ]
    );
}
