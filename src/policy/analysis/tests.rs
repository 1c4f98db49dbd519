use super::*;

fn reads_of(modules: &[(&str, &str)]) -> ContextReads {
    let modules: Vec<RegoModule> = modules
        .iter()
        .map(|(path, text)| RegoModule {
            path: (*path).into(),
            text: (*text).into(),
        })
        .collect();
    context_reads(&modules).unwrap()
}

/// The reads of a contract module whose body follows the package line.
fn reads(body: &str) -> ContextReads {
    reads_of(&[(
        "policy.rego",
        &format!("package provgate.contract\n\n{body}\n"),
    )])
}

fn fields(body: &str) -> Vec<String> {
    let r = reads(body);
    assert!(
        !r.reads_everything(),
        "unexpected dynamic read: {:?}",
        r.dynamic
    );
    r.fields.into_iter().collect()
}

fn assert_reads_everything(body: &str) {
    let r = reads(body);
    assert!(
        r.reads_everything(),
        "expected a dynamic read in {body}: {r:?}"
    );
}

#[test]
fn direct_references_name_their_field() {
    assert_eq!(
        fields(
            r#"deny contains "x" if { input.context.namespace == "prod"; input.context.kind != "Pod" }"#
        ),
        ["kind", "namespace"]
    );
    // Deeper paths are cut after the field.
    assert_eq!(
        fields(r#"deny contains "x" if input.context.user.name == "a""#),
        ["user"]
    );
    // Other parts of the input are no context read.
    assert!(
        fields(r#"deny contains "x" if { input.image.digest == "a"; input.attestations[_].x }"#)
            .is_empty()
    );
}

#[test]
fn bracket_access_with_a_string_is_a_field() {
    assert_eq!(
        fields(r#"deny contains "x" if input.context["namespace"] == "a""#),
        ["namespace"]
    );
    assert_eq!(
        fields(r#"deny contains "x" if input["context"].kind == "Pod""#),
        ["kind"]
    );
    assert_eq!(
        fields(r#"deny contains "x" if input.context.labels["app.kubernetes.io/name"] == "a""#),
        ["labels.app.kubernetes.io/name"]
    );
}

#[test]
fn label_keys_are_tracked_and_a_dynamic_key_reads_the_map() {
    assert_eq!(
        fields(r#"deny contains "x" if input.context.labels.team == "a""#),
        ["labels.team"]
    );
    assert_eq!(
        fields(r#"deny contains "x" if { some k; input.context.namespaceLabels[k] == "a" }"#),
        ["namespaceLabels"]
    );
    // The key expression is read too.
    assert_eq!(
        fields(r#"deny contains "x" if input.context.labels[input.context.namespace] == "a""#),
        ["labels", "namespace"]
    );
}

#[test]
fn a_dynamic_key_on_the_context_or_input_reads_everything() {
    assert_reads_everything(r#"deny contains "x" if { some k; input.context[k] == "a" }"#);
    assert_reads_everything(r#"deny contains "x" if { input[_].namespace == "a" }"#);
    assert_reads_everything(
        r#"deny contains "x" if { k := "namespace"; input.context[k] == "a" }"#,
    );
}

#[test]
fn aliases_are_followed() {
    assert_eq!(
        fields(r#"deny contains "x" if { ctx := input.context; ctx.namespace == "a" }"#),
        ["namespace"]
    );
    assert_eq!(
        fields(r#"deny contains "x" if { i := input; i.context.kind == "a" }"#),
        ["kind"]
    );
    // In any order, through several variables.
    assert_eq!(
        fields(r#"deny contains "x" if { l["team"] == "a"; l := c.labels; c := input.context }"#),
        ["labels.team"]
    );
    // An alias used in the rule head.
    assert_eq!(
        fields(r#"deny contains msg if { ctx := input.context; msg := ctx.name }"#),
        ["name"]
    );
}

#[test]
fn an_alias_whose_presence_decides_reads_its_path() {
    // Used only under `not`: the rule depends on `labels` being present.
    assert_eq!(
        fields(r#"deny contains "x" if { l := input.context.labels; not l.team }"#),
        ["labels", "labels.team"]
    );
    // Not used at all.
    assert_eq!(
        fields(r#"deny contains "x" if { n := input.context.namespace }"#),
        ["namespace"]
    );
    // Used in a comprehension only.
    assert_eq!(
        fields(r#"deny contains "x" if { l := input.context.labels; count([1 | l.team]) == 0 }"#),
        ["labels", "labels.team"]
    );
}

#[test]
fn an_alias_used_whole_reads_its_value() {
    assert_reads_everything(r#"deny contains "x" if { ctx := input.context; count(ctx) > 0 }"#);
    assert_eq!(
        fields(r#"deny contains "x" if { l := input.context.labels; "team" in object.keys(l) }"#),
        ["labels"]
    );
}

#[test]
fn iteration_reads_the_collection() {
    assert_eq!(
        fields(r#"deny contains k if { some k, v in input.context.labels; v == "x" }"#),
        ["labels"]
    );
    assert_eq!(
        fields(
            r#"deny contains "x" if { every k, v in input.context.namespaceLabels { v != "" } }"#
        ),
        ["namespaceLabels"]
    );
    assert_reads_everything(r#"deny contains k if { some k, _ in input.context }"#);
    assert_reads_everything(r#"deny contains "x" if { some c in [input.context]; c.kind == "a" }"#);
}

#[test]
fn comprehensions_are_walked() {
    assert_eq!(
        fields(r#"names := {v | some v in input.context.namespaceLabels}"#),
        ["namespaceLabels"]
    );
    assert_eq!(
        fields(r#"deny contains "x" if { count([u | u := input.context.user; u != ""]) > 0 }"#),
        ["user"]
    );
    assert_eq!(
        fields(r#"m := {k: input.context.container | some k in ["a"]}"#),
        ["container"]
    );
}

#[test]
fn input_passed_whole_reads_everything() {
    assert_reads_everything(
        "f(x) := x.context.namespace\n\ndeny contains \"x\" if f(input) == \"a\"",
    );
    assert_reads_everything(
        r#"deny contains "x" if object.get(input, ["context", "kind"], "") == "a""#,
    );
    assert_reads_everything(r#"deny contains "x" if { walk(input, [p, v]); v == "a" }"#);
    assert_reads_everything(r#"deny contains "x" if contains(json.marshal(input), "prod")"#);
    assert_reads_everything(
        r#"deny contains "x" if contains(json.marshal(input.context), "prod")"#,
    );
    assert_reads_everything(r#"deny contains "x" if { print(input); false }"#);
    // A rule whose value is the context.
    assert_reads_everything("ctx := input.context");
    // Unification is not followed.
    assert_reads_everything(r#"deny contains "x" if { ctx = input.context; ctx.kind == "a" }"#);
    // A sub-value passed to a function reads that field only.
    assert_eq!(
        fields(r#"deny contains "x" if object.get(input.context.labels, "team", "") == "a""#),
        ["labels"]
    );
    assert_eq!(
        fields(r#"deny contains "x" if lower(input.context.operation) == "create""#),
        ["operation"]
    );
}

#[test]
fn comments_and_strings_are_no_reads() {
    let r = reads(
        "# input.context.namespace, input.context[x], object.get(input, \"a\", 1)\n\
         msg := \"input.context.user\"\n\
         raw := `input.context.kind`\n\
         deny contains msg if { msg != \"input.context\" }",
    );
    assert_eq!(r, ContextReads::default());
}

#[test]
fn imports_of_input_paths_are_aliases() {
    assert_eq!(
        fields("import input.context as c\n\ndeny contains \"x\" if c.operation == \"CREATE\""),
        ["operation"]
    );
    assert_eq!(
        fields("import input.context.labels\n\ndeny contains \"x\" if labels.team == \"a\""),
        ["labels.team"]
    );
    let r = reads_of(&[(
        "p.rego",
        "package provgate.contract\n\nimport input.context\n\ndeny contains \"x\" if { some k; context[k] }\n",
    )]);
    assert!(r.reads_everything());
    assert!(r.dynamic[0].starts_with("p.rego:5:"), "{:?}", r.dynamic);
}

#[test]
fn the_library_modules_are_analysed_too() {
    let r = reads_of(&[
        (
            "lib.rego",
            "package provgate.lib\n\nteam := input.context.labels.team\n",
        ),
        (
            "policy.rego",
            "package provgate.contract\n\nimport data.provgate.lib.team\n\ndeny contains \"x\" if team == \"a\"\n",
        ),
    ]);
    assert_eq!(r.fields.into_iter().collect::<Vec<_>>(), ["labels.team"]);
}

#[test]
fn with_targets_are_not_read_but_their_values_are() {
    assert!(
        fields(r#"deny contains "x" if { data.provgate.contract.y with input.context.namespace as "a" }"#)
            .is_empty()
    );
    assert_eq!(
        fields(
            r#"deny contains "x" if { data.provgate.contract.y with input.x as input.context.kind }"#
        ),
        ["kind"]
    );
}

#[test]
fn an_unparsable_module_is_an_error() {
    let err = context_reads(&[RegoModule {
        path: "bad.rego".into(),
        text: "package provgate.contract\n\ndeny contains if {".into(),
    }])
    .unwrap_err();
    assert!(matches!(err, AnalysisError::Parse { ref path, .. } if path == "bad.rego"));
}

#[test]
fn the_builtin_contracts_read_no_context_field() {
    for c in crate::policy::contract::builtin_contracts().unwrap() {
        let r = context_reads(&c.modules).unwrap();
        assert_eq!(r, ContextReads::default(), "{}", c.name());
    }
}

fn declared(fields: &[&str]) -> Vec<String> {
    fields.iter().map(|f| (*f).to_owned()).collect()
}

#[test]
fn undeclared_lists_what_the_declaration_misses() {
    let r = ContextReads {
        fields: ["namespace", "labels.team", "namespaceLabels"]
            .map(String::from)
            .into(),
        dynamic: Vec::new(),
    };
    assert_eq!(
        undeclared(&r, &declared(&["namespace"])),
        ["labels.team", "namespaceLabels"]
    );
    // A map declared whole covers its keys; a key does not cover the map.
    assert_eq!(
        undeclared(
            &r,
            &declared(&["namespace", "labels", "namespaceLabels.tier"])
        ),
        ["namespaceLabels"]
    );
    assert!(
        undeclared(
            &r,
            &declared(&["namespace", "labels.team", "namespaceLabels"])
        )
        .is_empty()
    );
    assert!(undeclared(&ContextReads::default(), &[]).is_empty());
}

#[test]
fn reading_everything_needs_every_field_declared() {
    let r = reads(r#"deny contains "x" if { some k; input.context[k] == "a" }"#);
    assert_eq!(
        undeclared(&r, &declared(&["namespace", "labels.team"])),
        [
            "container",
            "kind",
            "labels",
            "name",
            "namespaceLabels",
            "operation",
            "source",
            "user"
        ]
    );
    assert!(undeclared(&r, &declared(&CONTEXT_FIELDS)).is_empty());
}
