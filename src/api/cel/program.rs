//! Compiling and running single expressions.
//!
//! The `cel` crate only parses; it has no type checker. We add the checks
//! upstream's compiler would fail on and that we can decide without types
//! (undeclared variables and functions, literal non-bool results), the
//! resource limits (length, nesting, depth), and rewrite comprehensions so
//! their iterations are charged to the cost meter.

use super::budget::{self, Metered};
use super::library;
use super::value::{to_cel, to_json};
use cel::common::ast::{CallExpr, Expr, IdedExpr, LiteralValue};
use cel::{Context, Env, ExecutionError, Value};
use serde_json::Value as Json;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, OnceLock};

/// Longest accepted expression, in code points: cel-go's default.
const MAX_EXPRESSION_LEN: usize = 100_000;

/// Deepest accepted bracket / unary-operator / conditional nesting in the
/// source, checked before parsing so the recursive parser stays shallow.
const MAX_NESTING: usize = 100;

/// Deepest accepted syntax tree, which bounds the interpreter's recursion on
/// the caller's (possibly small) stack. Left-deep operator chains such as
/// `a + b + c + ...` count one level per operator.
const MAX_AST_DEPTH: usize = 250;

/// Stack for the parser thread: the ANTLR-generated parser recurses many
/// frames per nesting level, and the tree depth check recurses too.
const PARSER_STACK: usize = 256 << 20;

/// Stack for evaluation threads: the interpreter recurses once or more per
/// tree level, using tens of KiB per level in debug builds.
const EVAL_STACK: usize = 64 << 20;

/// Runs `f` with a stack large enough for any tree that passed
/// [`MAX_AST_DEPTH`], since callers' stacks (async workers) are small: on
/// the caller's stack when that much is left, else on a segment of its own
/// for the call (stacker's, an mmap: far cheaper than a thread per
/// evaluation, which every write of a custom object with rules would pay).
/// Half the segment suffices for one evaluation, so the rules evaluated
/// within one validation share their segment.
pub(super) fn on_big_stack<T>(f: impl FnOnce() -> T) -> T {
    stacker::maybe_grow(EVAL_STACK / 2, EVAL_STACK, f)
}

/// Member functions of upstream's authorizer library: declared so policies
/// using them compile, although kelp evaluates them as unsupported.
const AUTHORIZER_FUNCTIONS: &[&str] = &[
    "path",
    "group",
    "serviceAccount",
    "resource",
    "subresource",
    "namespace",
    "name",
    "check",
    "allowed",
    "reason",
    "errored",
    "error",
    "fieldSelector",
    "labelSelector",
];

/// How to compile an expression.
#[derive(Debug, Clone, Copy, Default)]
pub struct CompileOptions<'a> {
    /// The variables the expression may reference; anything else is an
    /// undeclared reference, as upstream reports it.
    pub variables: &'a [&'a str],
    /// Whether the expression must evaluate to a bool (rules, validations,
    /// match conditions), as opposed to anything (messageExpression,
    /// variables).
    pub expect_bool: bool,
}

/// A compiled expression, shareable between threads.
#[derive(Debug, Clone)]
pub struct Program {
    expr: Arc<IdedExpr>,
    source: Arc<str>,
    variables: Arc<HashSet<String>>,
    /// `variables.<name>` selections, for lazy policy variables.
    policy_variables: Arc<HashSet<String>>,
}

fn env() -> &'static Arc<Env> {
    static ENV: OnceLock<Arc<Env>> = OnceLock::new();
    ENV.get_or_init(|| Arc::new(library::environment()))
}

impl Program {
    /// Compiles `expr` without declaring variables: any identifier is
    /// accepted and resolved at evaluation.
    pub fn compile(expr: &str) -> Result<Program, String> {
        compile(expr, None, Expect::Any, None)
    }

    /// Compiles `expr` with the declared variables and result expectation
    /// of `opts`; errors read like upstream's `compilation failed: ` detail.
    pub fn compile_with(expr: &str, opts: &CompileOptions) -> Result<Program, String> {
        compile(expr, Some(opts.variables), Expect::from_opts(opts), None)
    }

    /// Compiles a CRD rule, also checking field selections on `self` (and
    /// `oldSelf` unless it is optional) against the node's schema, as
    /// upstream's type checker does.
    pub(super) fn compile_typed(
        expr: &str,
        opts: &CompileOptions,
        expect: Expect,
        typing: Typing,
    ) -> Result<Program, String> {
        compile(expr, Some(opts.variables), expect, Some(typing))
    }

    /// Whether the expression references variable `name`.
    pub fn references(&self, name: &str) -> bool {
        self.variables.contains(name)
    }

    /// The source the program was compiled from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates with JSON variables, within [`super::PER_CALL_LIMIT`].
    pub fn evaluate(&self, vars: &[(&str, &Json)]) -> Result<Json, String> {
        on_big_stack(|| self.evaluate_here(vars))
    }

    fn evaluate_here(&self, vars: &[(&str, &Json)]) -> Result<Json, String> {
        let values: Vec<(&str, Value)> = vars.iter().map(|(n, v)| (*n, to_cel(v, None))).collect();
        let out = self.run(&values, super::PER_CALL_LIMIT);
        finish(out).and_then(|v| to_json(&v))
    }

    /// Evaluates an expression that must produce a bool.
    pub fn evaluate_bool(&self, vars: &[(&str, &Json)]) -> Result<bool, String> {
        on_big_stack(|| self.evaluate_bool_here(vars))
    }

    fn evaluate_bool_here(&self, vars: &[(&str, &Json)]) -> Result<bool, String> {
        let values: Vec<(&str, Value)> = vars.iter().map(|(n, v)| (*n, to_cel(v, None))).collect();
        match finish(self.run(&values, super::PER_CALL_LIMIT))? {
            Value::Bool(b) => Ok(b),
            other => Err(format!(
                "expression must evaluate to a bool, got {}",
                other.type_of()
            )),
        }
    }

    /// Evaluates with `variables.<name>` bound to the compiled policy
    /// variables. Only the variables the expression needs, directly or
    /// through other variables, are evaluated, in declaration order.
    pub fn evaluate_with_variables(
        &self,
        vars: &[(&str, &Json)],
        variables: &CompiledVariables,
    ) -> Result<Json, String> {
        on_big_stack(|| self.evaluate_with_variables_here(vars, variables))
    }

    fn evaluate_with_variables_here(
        &self,
        vars: &[(&str, &Json)],
        variables: &CompiledVariables,
    ) -> Result<Json, String> {
        let mut values: Vec<(&str, Value)> =
            vars.iter().map(|(n, v)| (*n, to_cel(v, None))).collect();
        let needed = variables.needed_by(self);
        let mut bound: HashMap<cel::objects::Key, Value> = HashMap::new();
        let mut limit = super::PER_CALL_LIMIT;
        for (name, program) in &variables.entries {
            if !needed.contains(name.as_str()) {
                continue;
            }
            let map = Value::Map(cel::objects::Map {
                map: Arc::new(bound.clone()),
            });
            let mut scoped = values.clone();
            scoped.push(("variables", map));
            let out = program.run(&scoped, limit);
            limit = limit.saturating_sub(out.used);
            let value = finish(out).map_err(|e| format!("variables.{name}: {e}"))?;
            bound.insert(cel::objects::Key::String(Arc::new(name.clone())), value);
        }
        values.push((
            "variables",
            Value::Map(cel::objects::Map {
                map: Arc::new(bound),
            }),
        ));
        finish(self.run(&values, limit)).and_then(|v| to_json(&v))
    }

    /// Runs with CEL values and a cost limit; the building block of the
    /// public evaluators and of schema validation.
    pub(super) fn run(
        &self,
        vars: &[(&str, Value)],
        limit: u64,
    ) -> Metered<Result<Value, ExecutionError>> {
        budget::metered(limit, || {
            let mut ctx = Context::with_env(Arc::clone(env()));
            for (name, value) in vars {
                ctx.add_variable_from_value(*name, value.clone());
            }
            Value::resolve(&self.expr, &ctx)
        })
    }
}

/// Turns a metered result into the caller-facing one.
fn finish(out: Metered<Result<Value, ExecutionError>>) -> Result<Value, String> {
    if out.exhausted {
        return Err(budget::LIMIT_EXCEEDED.to_string());
    }
    out.result.map_err(|e| error_text(&e))
}

/// cel-go's wording for runtime errors where callers match on it.
pub(super) fn error_text(e: &ExecutionError) -> String {
    match e {
        ExecutionError::NoSuchKey(k) => format!("no such key: {k}"),
        ExecutionError::NoSuchOverload(o) => format!("no such overload: {o}"),
        ExecutionError::DivisionByZero(_) => "division by zero".to_string(),
        ExecutionError::RemainderByZero(_) => "modulus by zero".to_string(),
        ExecutionError::IndexOutOfBounds(Value::Int(i)) => format!("index out of bounds: {i}"),
        ExecutionError::Overflow(..) => "integer overflow".to_string(),
        ExecutionError::FunctionError { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

/// Policy variables (`variables.<name>`), compiled in declaration order.
#[derive(Debug, Clone, Default)]
pub struct CompiledVariables {
    entries: Vec<(String, Program)>,
}

impl CompiledVariables {
    /// Compiles `(name, expression)` pairs; each may reference the ones
    /// before it through `variables`. Errors name the failing variable.
    pub fn compile(
        variables: &[(&str, &str)],
        opts: &CompileOptions,
    ) -> Result<CompiledVariables, String> {
        let opts = CompileOptions {
            expect_bool: false,
            ..*opts
        };
        let mut entries = Vec::with_capacity(variables.len());
        for (name, expr) in variables {
            let program =
                Program::compile_with(expr, &opts).map_err(|e| format!("variables.{name}: {e}"))?;
            entries.push((name.to_string(), program));
        }
        Ok(CompiledVariables { entries })
    }

    /// The names of the variables.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(n, _)| n.as_str())
    }

    /// The variables `program` needs, transitively.
    fn needed_by(&self, program: &Program) -> HashSet<String> {
        let mut needed: HashSet<String> = program.policy_variables.iter().cloned().collect();
        // Later variables can only need earlier ones: one backwards pass
        // closes the set.
        for (name, p) in self.entries.iter().rev() {
            if needed.contains(name) {
                needed.extend(p.policy_variables.iter().cloned());
            }
        }
        needed
    }
}

/// The result type a compilation expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Expect {
    /// Anything.
    Any,
    /// A bool: rules and conditions.
    Bool,
    /// A string: message expressions.
    String,
}

impl Expect {
    fn from_opts(opts: &CompileOptions) -> Expect {
        if opts.expect_bool {
            Expect::Bool
        } else {
            Expect::Any
        }
    }
}

/// The schema a rule's `self` has, for checking field selections.
pub(super) struct Typing {
    /// The schema node of `self`.
    pub schema: Json,
    /// Whether the node is the resource root, where `apiVersion`, `kind`
    /// and `metadata` exist whatever the schema declares.
    pub is_root: bool,
    /// Whether `oldSelf` has the node's type (it is an optional otherwise).
    pub old_self_typed: bool,
}

/// A compile failure with its source position.
struct Issue {
    offset: Option<u32>,
    message: String,
}

/// Renders issues as cel-go's `issues.String()` does: one `ERROR:` line per
/// issue, followed by the source line and a caret.
fn render(source: &str, issues: &[Issue]) -> String {
    let mut out = Vec::new();
    for issue in issues {
        let (line, col) = line_col(source, issue.offset.unwrap_or(0) as usize);
        let mut s = format!("ERROR: <input>:{}:{}: {}", line, col + 1, issue.message);
        if let Some(text) = source.lines().nth(line - 1) {
            s.push_str(&format!("\n | {text}\n | {}^", ".".repeat(col)));
        }
        out.push(s);
    }
    out.join("\n")
}

/// 1-based line and 0-based column of a code point offset.
fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let (mut line, mut col) = (1, 0);
    for c in source.chars().take(offset) {
        if c == '\n' {
            line += 1;
            col = 0;
        } else {
            col += 1;
        }
    }
    (line, col)
}

/// Rejects sources whose nesting would make the parser recurse too deeply.
fn check_nesting(source: &str) -> Result<(), Issue> {
    let (mut depth, mut unary, mut ternaries) = (0usize, 0usize, 0usize);
    for (i, c) in source.chars().enumerate() {
        match c {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            '?' => ternaries += 1,
            _ => {}
        }
        unary = if c == '!' || c == '-' {
            unary + 1
        } else if c.is_whitespace() {
            unary
        } else {
            0
        };
        if depth > MAX_NESTING || unary > MAX_NESTING || ternaries > MAX_NESTING {
            return Err(Issue {
                offset: Some(i as u32),
                message: format!("expression nesting exceeds the limit of {MAX_NESTING}"),
            });
        }
    }
    Ok(())
}

fn compile(
    source: &str,
    declared: Option<&[&str]>,
    expect: Expect,
    typing: Option<Typing>,
) -> Result<Program, String> {
    let len = source.chars().count();
    if len > MAX_EXPRESSION_LEN {
        return Err(format!(
            "expression code point size exceeds limit: size: {len}, limit {MAX_EXPRESSION_LEN}"
        ));
    }
    check_nesting(source).map_err(|i| render(source, &[i]))?;
    let owned = source.to_string();
    let declared: Option<Vec<String>> = declared.map(|d| d.iter().map(|s| s.to_string()).collect());
    let worker = std::thread::Builder::new()
        .name("cel-compile".into())
        .stack_size(PARSER_STACK)
        .spawn(move || compile_on_big_stack(&owned, declared.as_deref(), expect, typing.as_ref()))
        .map_err(|e| format!("unexpected compilation error: {e}"))?;
    worker
        .join()
        .map_err(|_| "unexpected compilation error: compiler panicked".to_string())?
}

fn compile_on_big_stack(
    source: &str,
    declared: Option<&[String]>,
    expect: Expect,
    typing: Option<&Typing>,
) -> Result<Program, String> {
    let (mut expr, info) = env()
        .parser()
        .parse_with_source_info(source)
        .map_err(|errs| {
            let issues: Vec<Issue> = errs
                .errors
                .iter()
                .map(|e| Issue {
                    offset: offset_of(source, e.pos),
                    message: e.msg.clone(),
                })
                .collect();
            render(source, &issues)
        })?;
    if depth(&expr) > MAX_AST_DEPTH {
        return Err(render(
            source,
            &[Issue {
                offset: None,
                message: format!("expression nesting exceeds the limit of {MAX_AST_DEPTH}"),
            }],
        ));
    }
    let mut check = Checker {
        declared,
        scopes: Vec::new(),
        issues: Vec::new(),
        variables: HashSet::new(),
        policy_variables: HashSet::new(),
        info: &info,
        typing,
    };
    check.walk(&expr);
    if check.issues.is_empty() {
        match expect {
            Expect::Bool if !may_be_bool(&expr) => {
                return Err("cel expression must evaluate to a bool".to_string());
            }
            Expect::String if !may_be_string(&expr) => {
                return Err("messageExpression must evaluate to a string".to_string());
            }
            _ => {}
        }
    }
    if !check.issues.is_empty() {
        return Err(render(source, &check.issues));
    }
    let (variables, policy_variables) = (check.variables, check.policy_variables);
    let mut next_id = max_id(&expr) + 1;
    instrument(&mut expr, &mut next_id);
    Ok(Program {
        expr: Arc::new(expr),
        source: source.into(),
        variables: Arc::new(variables),
        policy_variables: Arc::new(policy_variables),
    })
}

/// Code point offset of a 1-based line / column position.
fn offset_of(source: &str, (line, col): (isize, isize)) -> Option<u32> {
    let mut offset = 0usize;
    for (i, text) in source.split('\n').enumerate() {
        if i as isize + 1 == line {
            return Some((offset + col.max(0) as usize) as u32);
        }
        offset += text.chars().count() + 1;
    }
    None
}

/// The direct children of an expression.
fn children(e: &IdedExpr) -> Vec<&IdedExpr> {
    match &e.expr {
        Expr::Call(c) => c.target.iter().map(|t| &**t).chain(c.args.iter()).collect(),
        Expr::Comprehension(c) => vec![
            &c.iter_range,
            &c.accu_init,
            &c.loop_cond,
            &c.loop_step,
            &c.result,
        ],
        Expr::List(l) => l.elements.iter().collect(),
        Expr::Map(m) => m
            .entries
            .iter()
            .flat_map(|entry| match &entry.expr {
                cel::common::ast::EntryExpr::MapEntry(me) => vec![&me.key, &me.value],
                cel::common::ast::EntryExpr::StructField(f) => vec![&f.value],
            })
            .collect(),
        Expr::Struct(s) => s
            .entries
            .iter()
            .flat_map(|entry| match &entry.expr {
                cel::common::ast::EntryExpr::MapEntry(me) => vec![&me.key, &me.value],
                cel::common::ast::EntryExpr::StructField(f) => vec![&f.value],
            })
            .collect(),
        Expr::Select(s) => vec![&*s.operand],
        _ => Vec::new(),
    }
}

fn depth(e: &IdedExpr) -> usize {
    1 + children(e).into_iter().map(depth).max().unwrap_or(0)
}

fn max_id(e: &IdedExpr) -> u64 {
    children(e).into_iter().map(max_id).fold(e.id, u64::max)
}

/// Walks the tree for undeclared references and collects the variables used.
struct Checker<'a> {
    declared: Option<&'a [String]>,
    scopes: Vec<String>,
    issues: Vec<Issue>,
    variables: HashSet<String>,
    policy_variables: HashSet<String>,
    info: &'a cel::common::ast::SourceInfo,
    typing: Option<&'a Typing>,
}

impl<'a> Checker<'a> {
    fn undeclared(&mut self, e: &IdedExpr, name: &str) {
        self.issues.push(Issue {
            offset: self.info.offset_for(e.id).map(|(start, _)| start),
            message: format!("undeclared reference to '{name}' (in container '')"),
        });
    }

    fn scoped(&self, name: &str) -> bool {
        self.scopes.iter().any(|s| s == name)
    }

    /// The schema of what `e` evaluates to, when statically known.
    fn resolve(&self, e: &IdedExpr) -> Option<&'a Json> {
        let typing = self.typing?;
        match &e.expr {
            Expr::Ident(n)
                if (n == "self" || (n == "oldSelf" && typing.old_self_typed))
                    && !self.scoped(n) =>
            {
                Some(&typing.schema)
            }
            Expr::Select(s) if !s.test => field_schema(self.resolve(&s.operand)?, &s.field),
            Expr::Call(c) if c.func_name == "_[_]" && c.target.is_none() && c.args.len() == 2 => {
                let node = self.resolve(&c.args[0])?;
                match node.get("type").and_then(Json::as_str) {
                    Some("array") => node.get("items"),
                    Some("object") => node.get("additionalProperties").filter(|a| a.is_object()),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// Upstream's "undefined field" for selections on declared objects.
    fn check_select(&mut self, e: &IdedExpr, operand: &IdedExpr, field: &str) {
        let Some(node) = self.resolve(operand) else {
            return;
        };
        let closed = node.get("properties").is_some_and(Json::is_object)
            && node
                .get("additionalProperties")
                .is_none_or(|a| a == &Json::Bool(false))
            && node.get("x-kubernetes-preserve-unknown-fields") != Some(&Json::Bool(true));
        if !closed || field_schema(node, field).is_some() {
            return;
        }
        let is_root = self
            .typing
            .is_some_and(|t| t.is_root && std::ptr::eq(node, &t.schema));
        let embedded = node.get("x-kubernetes-embedded-resource") == Some(&Json::Bool(true));
        if (is_root || embedded) && matches!(field, "apiVersion" | "kind" | "metadata") {
            return;
        }
        self.issues.push(Issue {
            offset: self.info.offset_for(e.id).map(|(start, _)| start),
            message: format!("undefined field '{field}'"),
        });
    }

    fn walk(&mut self, e: &IdedExpr) {
        match &e.expr {
            Expr::Ident(name) => {
                if self.scopes.iter().any(|s| s == name) {
                    return;
                }
                self.variables.insert(name.clone());
                if let Some(declared) = self.declared {
                    // Type names are identifiers too in CEL.
                    let is_type = matches!(
                        name.as_str(),
                        "int"
                            | "uint"
                            | "double"
                            | "bool"
                            | "string"
                            | "bytes"
                            | "list"
                            | "map"
                            | "null_type"
                            | "type"
                            | "dyn"
                    );
                    if !is_type && !declared.iter().any(|d| d == name) {
                        self.undeclared(e, name);
                    }
                }
            }
            Expr::Select(s) => {
                self.check_select(e, &s.operand, &s.field);
                if let Expr::Ident(root) = &s.operand.expr
                    && root == "variables"
                    && !self.scopes.iter().any(|v| v == root)
                {
                    self.policy_variables.insert(s.field.clone());
                }
                self.walk(&s.operand);
            }
            Expr::Call(c) => {
                self.check_function(e, c);
                for child in children(e) {
                    self.walk(child);
                }
            }
            Expr::Comprehension(c) => {
                self.walk(&c.iter_range);
                self.walk(&c.accu_init);
                let pushed = 2 + usize::from(c.iter_var2.is_some());
                self.scopes.push(c.iter_var.clone());
                self.scopes.push(c.accu_var.clone());
                if let Some(v2) = &c.iter_var2 {
                    self.scopes.push(v2.clone());
                }
                self.walk(&c.loop_cond);
                self.walk(&c.loop_step);
                self.walk(&c.result);
                self.scopes.truncate(self.scopes.len() - pushed);
            }
            _ => {
                for child in children(e) {
                    self.walk(child);
                }
            }
        }
    }

    fn check_function(&mut self, e: &IdedExpr, c: &CallExpr) {
        let name = c.func_name.as_str();
        if self.declared.is_none()
            || name.starts_with('_')
            || name.starts_with('@')
            || name == "!_"
            || name == "-_"
            || library::KNOWN_FUNCTIONS.contains(&name)
        {
            return;
        }
        let policy = self
            .declared
            .is_some_and(|d| d.iter().any(|v| v == "authorizer"));
        if policy && AUTHORIZER_FUNCTIONS.contains(&name) {
            return;
        }
        self.undeclared(e, name);
    }
}

/// The schema of the property a CEL field name (escaped) selects, or the
/// additionalProperties schema for map keys.
fn field_schema<'s>(node: &'s Json, field: &str) -> Option<&'s Json> {
    if let Some(props) = node.get("properties").and_then(Json::as_object) {
        for (name, schema) in props {
            if super::value::escape(name).as_deref() == Some(field) {
                return Some(schema);
            }
        }
    }
    node.get("additionalProperties").filter(|a| a.is_object())
}

/// Whether the root may produce a string: false only for shapes that
/// surely do not.
fn may_be_string(e: &IdedExpr) -> bool {
    match &e.expr {
        Expr::Literal(LiteralValue::String(_)) => true,
        Expr::Literal(_) | Expr::List(_) | Expr::Map(_) => false,
        Expr::Call(c) => !matches!(
            c.func_name.as_str(),
            "_==_"
                | "_!=_"
                | "_<_"
                | "_<=_"
                | "_>_"
                | "_>=_"
                | "_&&_"
                | "_||_"
                | "!_"
                | "@in"
                | "_-_"
                | "_*_"
                | "_/_"
                | "_%_"
                | "-_"
                | "size"
                | "int"
                | "uint"
                | "double"
                | "has"
                | "all"
                | "exists"
                | "exists_one"
                | "map"
                | "filter"
                | "split"
                | "matches"
                | "startsWith"
                | "endsWith"
                | "contains"
        ),
        Expr::Comprehension(_) => false,
        _ => true,
    }
}

/// Whether the root may produce a bool: false only for shapes that surely
/// do not, since without a type checker we cannot know more.
fn may_be_bool(e: &IdedExpr) -> bool {
    match &e.expr {
        Expr::Literal(LiteralValue::Boolean(_)) => true,
        Expr::Literal(_) | Expr::List(_) | Expr::Map(_) => false,
        Expr::Call(c) => !matches!(
            c.func_name.as_str(),
            "_+_"
                | "_-_"
                | "_*_"
                | "_/_"
                | "_%_"
                | "-_"
                | "size"
                | "string"
                | "int"
                | "uint"
                | "double"
                | "bytes"
                | "map"
                | "filter"
                | "lowerAscii"
                | "upperAscii"
                | "replace"
                | "split"
                | "join"
                | "substring"
                | "trim"
                | "charAt"
                | "indexOf"
                | "lastIndexOf"
                | "quantity"
                | "url"
                | "find"
                | "findAll"
        ),
        _ => true,
    }
}

/// Wraps `arg` in the charging overload, charging `cost` per evaluation.
fn charged(id: &mut u64, arg: IdedExpr, cost: u64) -> IdedExpr {
    *id += 2;
    let cost = IdedExpr {
        id: *id - 1,
        expr: Expr::Literal(LiteralValue::Int(
            i64::try_from(cost).unwrap_or(i64::MAX).into(),
        )),
    };
    IdedExpr {
        id: *id,
        expr: Expr::Call(CallExpr {
            func_name: budget::CHARGE_FN.to_string(),
            target: None,
            args: vec![arg, cost],
        }),
    }
}

/// Nodes in a tree: the cost cel-go would roughly charge to evaluate it
/// once, since most of its operations cost one unit.
fn nodes(e: &IdedExpr) -> u64 {
    1 + children(e).into_iter().map(nodes).sum::<u64>()
}

/// Wraps something evaluated once per iteration of every comprehension in
/// the cost-charging overload. `map`/`filter` keep their loop condition a
/// literal, which the interpreter's in-place list building depends on, so
/// there we wrap the appended element or the filter guard instead.
fn instrument(e: &mut IdedExpr, id: &mut u64) {
    if let Expr::Comprehension(c) = &mut e.expr {
        let cost = nodes(&c.loop_step) + nodes(&c.loop_cond);
        let done = if matches!(c.loop_cond.expr, Expr::Literal(_)) {
            wrap_append_step(&mut c.loop_step, id, cost)
        } else {
            false
        };
        if !done {
            let cond = std::mem::take(&mut c.loop_cond);
            c.loop_cond = charged(id, cond, cost);
        }
    }
    match &mut e.expr {
        Expr::Call(c) => {
            if let Some(t) = c.target.as_deref_mut() {
                instrument(t, id);
            }
            for a in &mut c.args {
                instrument(a, id);
            }
        }
        Expr::Comprehension(c) => {
            for child in [
                &mut c.iter_range,
                &mut c.accu_init,
                &mut c.loop_cond,
                &mut c.loop_step,
                &mut c.result,
            ] {
                instrument(child, id);
            }
        }
        Expr::List(l) => l.elements.iter_mut().for_each(|x| instrument(x, id)),
        Expr::Map(m) => {
            for entry in &mut m.entries {
                match &mut entry.expr {
                    cel::common::ast::EntryExpr::MapEntry(me) => {
                        instrument(&mut me.key, id);
                        instrument(&mut me.value, id);
                    }
                    cel::common::ast::EntryExpr::StructField(f) => instrument(&mut f.value, id),
                }
            }
        }
        Expr::Struct(s) => {
            for entry in &mut s.entries {
                match &mut entry.expr {
                    cel::common::ast::EntryExpr::MapEntry(me) => {
                        instrument(&mut me.key, id);
                        instrument(&mut me.value, id);
                    }
                    cel::common::ast::EntryExpr::StructField(f) => instrument(&mut f.value, id),
                }
            }
        }
        Expr::Select(s) => instrument(&mut s.operand, id),
        _ => {}
    }
}

/// Charges `@result + [x]` (map) or `g ? @result + [x] : @result` (filter)
/// by wrapping `x` or `g`; false when the step has neither shape.
fn wrap_append_step(step: &mut IdedExpr, id: &mut u64, cost: u64) -> bool {
    let Expr::Call(c) = &mut step.expr else {
        return false;
    };
    if c.func_name == "_?_:_" && c.args.len() == 3 {
        let guard = std::mem::take(&mut c.args[0]);
        c.args[0] = charged(id, guard, cost);
        return true;
    }
    if c.func_name == "_+_"
        && c.args.len() == 2
        && let Expr::List(l) = &mut c.args[1].expr
        && let Some(first) = l.elements.first_mut()
    {
        let item = std::mem::take(first);
        *first = charged(id, item, cost);
        return true;
    }
    false
}
