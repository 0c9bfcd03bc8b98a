use crate::api::cel::{CompileOptions, Program, SchemaRules};
use serde_json::json;
use std::time::{Duration, Instant};

#[test]
fn nested_all_over_large_list_hits_the_limit() {
    let list: Vec<i64> = (0..10_000).collect();
    let start = Instant::now();
    let p = Program::compile("self.all(x, self.all(y, x != y || x == y))").unwrap();
    let e = p.evaluate(&[("self", &json!(list))]).unwrap_err();
    assert!(
        e.starts_with("operation cancelled: actual cost limit exceeded"),
        "{e}"
    );
    assert!(start.elapsed() < Duration::from_secs(30));

    let s = json!({"type": "object", "properties": {"spec": {"type": "object",
        "x-kubernetes-validations": [{"rule": "self.l.all(x, self.l.map(y, y).size() > 0)"}, {"rule": "true"}],
        "properties": {"l": {"type": "array", "items": {"type": "integer"}}}}}});
    let r = SchemaRules::compile(&s, "p").unwrap();
    let errs = r.validate(&json!({"spec": {"l": list}}), None);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].field, "spec");
    assert_eq!(
        errs[0].message,
        "Invalid value: \"object\": 'operation cancelled: actual cost limit exceeded': no further validation rules will be run due to call cost exceeds limit for rule: self.l.all(x, self.l.map(y, y).size() > 0)"
    );
}

#[test]
fn total_budget_across_rules() {
    // Many cheap-enough rules over many list items exhaust the per-request budget.
    let s = json!({"type": "array", "items": {"type": "object",
        "x-kubernetes-validations": [{"rule": "self.l.all(x, self.l.all(y, true))"}],
        "properties": {"l": {"type": "array", "items": {"type": "integer"}}}}});
    let r = SchemaRules::compile(&s, "p").unwrap();
    let l: Vec<i64> = (0..300).collect();
    let items: Vec<_> = (0..30).map(|_| json!({"l": l})).collect();
    let errs = r.validate(&json!(items), None);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].message.ends_with(
        "validation failed due to running out of cost budget, no further validation rules will be run"
    ), "{errs:?}");
}

#[test]
fn deep_nesting_is_refused() {
    let opts = CompileOptions {
        variables: &["self"],
        expect_bool: true,
    };
    let deep = format!("{}true{}", "(".repeat(100_000), ")".repeat(100_000));
    let e = Program::compile_with(&deep, &opts).unwrap_err();
    assert!(e.contains("exceeds"), "{e}");
    let unary = format!("{}true", "!".repeat(5_000));
    assert!(Program::compile_with(&unary, &opts).is_err());
    let chain = format!("1{} == 1", " + 1".repeat(20_000));
    let e = Program::compile_with(&chain, &opts).unwrap_err();
    assert!(e.contains("exceeds"), "{e}");
    let members = format!("self{} == 1", ".a".repeat(30_000));
    assert!(Program::compile_with(&members, &opts).is_err());
    let too_long = "a".repeat(200_000);
    assert!(
        Program::compile_with(&too_long, &opts)
            .unwrap_err()
            .contains("exceeds limit")
    );
    // moderately nested expressions still work
    let ok = format!("{}true{}", "(".repeat(50), ")".repeat(50));
    assert!(
        Program::compile_with(&ok, &opts)
            .unwrap()
            .evaluate_bool(&[])
            .unwrap()
    );
}

#[test]
fn deepest_accepted_expression_evaluates_on_a_small_stack() {
    // Evaluation runs on the caller's thread: the depth limit must keep the
    // interpreter within a typical 2 MiB stack.
    let expr = format!("1{} > 0", " + 1".repeat(240));
    let p = Program::compile(&expr).unwrap();
    let handle = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || p.evaluate_bool(&[]))
        .unwrap();
    assert!(handle.join().unwrap().unwrap());
}
