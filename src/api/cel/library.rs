//! The Kubernetes CEL libraries missing from the `cel` crate: quantity, URL,
//! the list and regex extensions, and the cost-charging hook.
//!
//! Overloads are written against [`Value`] and adapted to the crate's
//! `fn(Vec<CowVal>)` overload signature by [`overload!`]: converting costs a
//! copy, but keeps each function a few readable lines.

use super::budget;
use super::quantity::Quantity;
use super::url::Url;
use cel::common::ast::{CallExpr, ComprehensionExpr, Expr, IdedExpr, ListExpr, LiteralValue};
use cel::common::types::{CelInt, DYN_TYPE, INT_TYPE, LIST_TYPE, STRING_TYPE};
use cel::common::value::{CowVal, Val};
use cel::objects::{Key, Map};
use cel::parser::{Macro, MacroExprHelper, ParseError};
use cel::{Env, ExecutionError, Value};
use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::Arc;

type Res = Result<Value, ExecutionError>;

/// Defines an overload `fn` named `$name` calling `$inner(&[Value])`.
macro_rules! overload {
    ($name:ident, $inner:expr) => {
        fn $name<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
            let values = args
                .iter()
                .map(|a| Value::try_from(a.as_ref()))
                .collect::<Result<Vec<_>, _>>()?;
            let inner: fn(&[Value]) -> Res = $inner;
            let out: Box<dyn Val> = inner(&values)?.try_into()?;
            Ok(CowVal::Owned(out))
        }
    };
}

/// Identity on its first argument that charges its second, an int, as cost; fails once the budget is spent.
fn charge<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let cost = args
        .get(1)
        .and_then(|c| c.downcast_ref::<CelInt>())
        .map_or(1, |c| u64::try_from(*c.inner()).unwrap_or(1));
    if !budget::charge(cost) {
        return Err(ExecutionError::function_error(
            "cost",
            budget::LIMIT_EXCEEDED,
        ));
    }
    args.into_iter()
        .next()
        .ok_or_else(ExecutionError::missing_argument_or_target)
}

fn err(function: &str, message: impl ToString) -> ExecutionError {
    ExecutionError::function_error(function, message)
}

fn string_arg<'a>(function: &str, v: &'a Value) -> Result<&'a str, ExecutionError> {
    match v {
        Value::String(s) => Ok(s.as_str()),
        other => Err(err(function, format!("expected string, got {other:?}"))),
    }
}

fn list_arg<'a>(function: &str, v: &'a Value) -> Result<&'a [Value], ExecutionError> {
    match v {
        Value::List(l) => Ok(l.as_slice()),
        other => Err(ExecutionError::no_such_member_overload(
            function,
            vec![other.type_of().to_string()],
        )),
    }
}

fn quantity_arg(function: &str, v: &Value) -> Result<Quantity, ExecutionError> {
    match v {
        Value::Opaque(o) => o
            .downcast_ref::<Quantity>()
            .copied()
            .ok_or_else(|| err(function, "expected a quantity")),
        Value::Int(i) => Ok(Quantity::from_int(*i)),
        other => Err(ExecutionError::no_such_member_overload(
            function,
            vec![other.type_of().to_string()],
        )),
    }
}

fn url_arg<'a>(function: &str, v: &'a Value) -> Result<&'a Url, ExecutionError> {
    match v {
        Value::Opaque(o) => o
            .downcast_ref::<Url>()
            .ok_or_else(|| err(function, "expected a URL")),
        other => Err(ExecutionError::no_such_member_overload(
            function,
            vec![other.type_of().to_string()],
        )),
    }
}

fn opaque<T: cel::objects::Opaque>(v: T) -> Value {
    Value::Opaque(Arc::new(v))
}

fn compare(function: &str, a: &Value, b: &Value) -> Result<Ordering, ExecutionError> {
    let ord = match (a, b) {
        (Value::Int(x), Value::Int(y)) => x.partial_cmp(y),
        (Value::UInt(x), Value::UInt(y)) => x.partial_cmp(y),
        (Value::Float(x), Value::Float(y)) => x.partial_cmp(y),
        (Value::Int(x), Value::Float(y)) => (*x as f64).partial_cmp(y),
        (Value::Float(x), Value::Int(y)) => x.partial_cmp(&(*y as f64)),
        (Value::String(x), Value::String(y)) => x.partial_cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.partial_cmp(y),
        (Value::Bytes(x), Value::Bytes(y)) => x.partial_cmp(y),
        (Value::Opaque(_), Value::Opaque(_)) => {
            Some(quantity_arg(function, a)?.compare(&quantity_arg(function, b)?))
        }
        _ => None,
    };
    ord.ok_or_else(|| err(function, format!("{a:?} can not be compared to {b:?}")))
}

// --- quantity -------------------------------------------------------------

overload!(quantity_fn, |a| Quantity::parse(string_arg(
    "quantity", &a[0]
)?)
.map(opaque)
.map_err(|e| err("quantity", e)));
overload!(is_quantity_fn, |a| Ok(Value::Bool(
    Quantity::parse(string_arg("isQuantity", &a[0])?).is_ok()
)));
overload!(is_less_than_fn, |a| Ok(Value::Bool(
    quantity_arg("isLessThan", &a[0])?.compare(&quantity_arg("isLessThan", &a[1])?)
        == Ordering::Less
)));
overload!(is_greater_than_fn, |a| Ok(Value::Bool(
    quantity_arg("isGreaterThan", &a[0])?.compare(&quantity_arg("isGreaterThan", &a[1])?)
        == Ordering::Greater
)));
overload!(compare_to_fn, |a| Ok(Value::Int(
    match quantity_arg("compareTo", &a[0])?.compare(&quantity_arg("compareTo", &a[1])?) {
        Ordering::Less => -1,
        Ordering::Equal => 0,
        Ordering::Greater => 1,
    }
)));
overload!(as_integer_fn, |a| quantity_arg("asInteger", &a[0])?
    .as_integer()
    .map(Value::Int)
    .ok_or_else(|| err(
        "asInteger",
        "cannot convert value to integer"
    )));
overload!(is_integer_fn, |a| Ok(Value::Bool(
    quantity_arg("isInteger", &a[0])?.as_integer().is_some()
)));
overload!(as_approximate_float_fn, |a| Ok(Value::Float(
    quantity_arg("asApproximateFloat", &a[0])?.approximate_float()
)));
overload!(sign_fn, |a| Ok(Value::Int(
    quantity_arg("sign", &a[0])?.sign()
)));
overload!(add_fn, |a| quantity_arg("add", &a[0])?
    .add(&quantity_arg("add", &a[1])?)
    .map(opaque)
    .ok_or_else(|| err("add", "quantity overflow")));
overload!(sub_fn, |a| quantity_arg("sub", &a[0])?
    .add(&quantity_arg("sub", &a[1])?.negated())
    .map(opaque)
    .ok_or_else(|| err("sub", "quantity overflow")));

// --- url ------------------------------------------------------------------

overload!(url_fn, |a| Url::parse(string_arg("url", &a[0])?)
    .map(opaque)
    .map_err(|e| err("url", e)));
overload!(is_url_fn, |a| Ok(Value::Bool(
    Url::parse(string_arg("isURL", &a[0])?).is_ok()
)));
overload!(get_scheme_fn, |a| Ok(url_arg("getScheme", &a[0])?
    .scheme()
    .into()));
overload!(get_host_fn, |a| Ok(url_arg("getHost", &a[0])?
    .host()
    .into()));
overload!(get_hostname_fn, |a| Ok(url_arg("getHostname", &a[0])?
    .hostname()
    .into()));
overload!(get_port_fn, |a| Ok(url_arg("getPort", &a[0])?
    .port()
    .into()));
overload!(get_escaped_path_fn, |a| Ok(url_arg(
    "getEscapedPath",
    &a[0]
)?
.escaped_path()
.into()));
overload!(get_query_fn, |a| {
    let mut map = HashMap::new();
    for (k, vs) in url_arg("getQuery", &a[0])?.query() {
        let vs: Vec<Value> = vs.into_iter().map(Value::from).collect();
        map.insert(Key::String(Arc::new(k)), Value::List(Arc::new(vs)));
    }
    Ok(Value::Map(Map { map: Arc::new(map) }))
});

// --- lists ----------------------------------------------------------------

overload!(is_sorted_fn, |a| {
    let list = list_arg("isSorted", &a[0])?;
    for pair in list.windows(2) {
        if compare("isSorted", &pair[0], &pair[1])? == Ordering::Greater {
            return Ok(Value::Bool(false));
        }
    }
    Ok(Value::Bool(true))
});
overload!(sum_fn, |a| {
    let list = list_arg("sum", &a[0])?;
    let mut acc = match list.first() {
        None | Some(Value::Int(_)) => Value::Int(0),
        Some(Value::UInt(_)) => Value::UInt(0),
        Some(Value::Float(_)) => Value::Float(0.0),
        Some(Value::Opaque(_)) => opaque(Quantity::from_int(0)),
        Some(other) => return Err(err("sum", format!("cannot sum {other:?}"))),
    };
    for item in list {
        acc = match (&acc, item) {
            (Value::Int(x), Value::Int(y)) => Value::Int(
                x.checked_add(*y)
                    .ok_or_else(|| err("sum", "integer overflow"))?,
            ),
            (Value::UInt(x), Value::UInt(y)) => Value::UInt(
                x.checked_add(*y)
                    .ok_or_else(|| err("sum", "unsigned integer overflow"))?,
            ),
            (Value::Float(x), Value::Float(y)) => Value::Float(x + y),
            (Value::Opaque(_), Value::Opaque(_)) => opaque(
                quantity_arg("sum", &acc)?
                    .add(&quantity_arg("sum", item)?)
                    .ok_or_else(|| err("sum", "quantity overflow"))?,
            ),
            _ => return Err(err("sum", format!("cannot sum {item:?}"))),
        };
    }
    Ok(acc)
});

fn extreme(function: &str, list: &[Value], want: Ordering) -> Res {
    let mut best = list
        .first()
        .ok_or_else(|| err(function, format!("{function} called on empty list")))?;
    for item in &list[1..] {
        if compare(function, item, best)? == want {
            best = item;
        }
    }
    Ok(best.clone())
}

overload!(min_fn, |a| extreme(
    "min",
    list_arg("min", &a[0])?,
    Ordering::Less
));
overload!(max_fn, |a| extreme(
    "max",
    list_arg("max", &a[0])?,
    Ordering::Greater
));
overload!(list_index_of_fn, |a| Ok(Value::Int(
    list_arg("indexOf", &a[0])?
        .iter()
        .position(|v| *v == a[1])
        .map_or(-1, |i| i as i64)
)));
overload!(list_last_index_of_fn, |a| Ok(Value::Int(
    list_arg("lastIndexOf", &a[0])?
        .iter()
        .rposition(|v| *v == a[1])
        .map_or(-1, |i| i as i64)
)));

// --- regex ----------------------------------------------------------------

/// Compiles a pattern with a size limit, as patterns come from untrusted
/// CRDs. Compiled patterns are cached: rules typically apply one constant
/// pattern to every element of a list.
fn regex(function: &str, pattern: &str) -> Result<regex::Regex, ExecutionError> {
    const CACHE_SIZE: usize = 256;
    static CACHE: std::sync::OnceLock<parking_lot::Mutex<HashMap<String, regex::Regex>>> =
        std::sync::OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(re) = cache.lock().get(pattern) {
        return Ok(re.clone());
    }
    let re = regex::RegexBuilder::new(pattern)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| err(function, format!("error parsing regexp: {e}")))?;
    let mut cache = cache.lock();
    if cache.len() >= CACHE_SIZE {
        // Crude but bounded: hostile input cannot grow it.
        cache.clear();
    }
    cache.insert(pattern.to_string(), re.clone());
    Ok(re)
}

overload!(find_fn, |a| {
    let re = regex("find", string_arg("find", &a[1])?)?;
    Ok(re
        .find(string_arg("find", &a[0])?)
        .map_or("", |m| m.as_str())
        .into())
});

fn find_all(a: &[Value], limit: i64) -> Res {
    let re = regex("findAll", string_arg("findAll", &a[1])?)?;
    let s = string_arg("findAll", &a[0])?;
    let limit = if limit < 0 {
        usize::MAX
    } else {
        limit as usize
    };
    Ok(Value::List(Arc::new(
        re.find_iter(s)
            .take(limit)
            .map(|m| Value::from(m.as_str()))
            .collect(),
    )))
}

overload!(find_all_fn, |a| find_all(a, -1));
overload!(find_all_n_fn, |a| match a.get(2) {
    Some(Value::Int(n)) => find_all(a, *n),
    _ => Err(err("findAll", "expected an int limit")),
});

// --- sets -----------------------------------------------------------------

fn contains_all(a: &[Value], b: &[Value]) -> bool {
    b.iter().all(|x| a.contains(x))
}

overload!(sets_contains_fn, |a| Ok(Value::Bool(contains_all(
    list_arg("sets.contains", &a[0])?,
    list_arg("sets.contains", &a[1])?
))));
overload!(sets_equivalent_fn, |a| {
    let (x, y) = (
        list_arg("sets.equivalent", &a[0])?,
        list_arg("sets.equivalent", &a[1])?,
    );
    Ok(Value::Bool(contains_all(x, y) && contains_all(y, x)))
});
overload!(sets_intersects_fn, |a| {
    let (x, y) = (
        list_arg("sets.intersects", &a[0])?,
        list_arg("sets.intersects", &a[1])?,
    );
    Ok(Value::Bool(y.iter().any(|v| x.contains(v))))
});

/// Expands `cel.bind(name, init, body)` as cel-go does: a comprehension
/// over nothing whose accumulator, `name`, is `init`, and whose result is
/// `body`.
fn bind_macro(
    helper: &mut MacroExprHelper<'_>,
    target: &mut Option<IdedExpr>,
    args: &mut Vec<IdedExpr>,
) -> Result<Option<IdedExpr>, ParseError> {
    if !matches!(target.as_ref().map(|t| &t.expr), Some(Expr::Ident(n)) if n == "cel") {
        return Ok(None);
    }
    let (Some(body), Some(init), Some(var)) = (args.pop(), args.pop(), args.pop()) else {
        return Ok(None);
    };
    let Expr::Ident(name) = &var.expr else {
        return Err(helper.new_error(
            var.id,
            "cel.bind() variable names must be simple identifiers",
        ));
    };
    let name = name.clone();
    let comprehension = ComprehensionExpr {
        iter_range: helper.next_expr(Expr::List(ListExpr::new(Vec::new()))),
        iter_var: "#unused".to_owned(),
        iter_var2: None,
        accu_var: name.clone(),
        accu_init: init,
        loop_cond: helper.next_expr(Expr::Literal(LiteralValue::Boolean(false.into()))),
        loop_step: helper.next_expr(Expr::Ident(name)),
        result: body,
    };
    Ok(Some(
        helper.next_expr(Expr::Comprehension(Box::new(comprehension))),
    ))
}

/// The keys a two-variable comprehension iterates: list indexes, map keys.
const KEYS_FN: &str = "@kelp_keys";

overload!(keys_fn, |a| match &a[0] {
    Value::List(l) => Ok(Value::List(Arc::new(
        (0..l.len() as i64).map(Value::Int).collect()
    ))),
    Value::Map(m) => Ok(Value::List(Arc::new(
        m.map.keys().map(|k| Value::from(k.clone())).collect()
    ))),
    other => Err(ExecutionError::no_such_overload(
        "all",
        vec![other.type_of().to_string()],
    )),
});

/// The two-variable forms of `all`, `exists` and `exists_one`
/// (`m.all(k, v, p)`), which upstream enables and the `cel` crate lacks.
#[derive(Clone, Copy)]
enum TwoVar {
    All,
    Exists,
    ExistsOne,
}

/// Expands `target.<kind>(k, v, p)` into
/// `cel.bind(@t, target, <kind over @kelp_keys(@t) with k of
/// cel.bind(v, @t[k], p)>)`, so the target is evaluated once and the same
/// expansion serves lists (k an index) and maps (k a key).
fn two_var_macro(
    kind: TwoVar,
    helper: &mut MacroExprHelper<'_>,
    target: &mut Option<IdedExpr>,
    args: &mut Vec<IdedExpr>,
) -> Result<Option<IdedExpr>, ParseError> {
    const TARGET: &str = "@kelp_target";
    const RESULT: &str = "@result";
    let Some(target) = target.take() else {
        return Ok(None);
    };
    let (Some(body), Some(v), Some(k)) = (args.pop(), args.pop(), args.pop()) else {
        return Ok(None);
    };
    let (Expr::Ident(k), Expr::Ident(v)) = (&k.expr, &v.expr) else {
        return Err(helper.new_error(k.id, "argument must be a simple name"));
    };
    let (k, v) = (k.clone(), v.clone());
    let e = |helper: &mut MacroExprHelper<'_>, expr: Expr| helper.next_expr(expr);
    let call = |name: &str, args: Vec<IdedExpr>| {
        Expr::Call(CallExpr {
            func_name: name.to_string(),
            target: None,
            args,
        })
    };
    let bool_lit = |b: bool| Expr::Literal(LiteralValue::Boolean(b.into()));
    // cel.bind(v, @t[k], body)
    let t_ident = e(helper, Expr::Ident(TARGET.into()));
    let k_ident = e(helper, Expr::Ident(k.clone()));
    let value = e(helper, call("_[_]", vec![t_ident, k_ident]));
    let empty = e(helper, Expr::List(ListExpr::new(Vec::new())));
    let never = e(helper, bool_lit(false));
    let v_ident = e(helper, Expr::Ident(v.clone()));
    let body = e(
        helper,
        Expr::Comprehension(Box::new(ComprehensionExpr {
            iter_range: empty,
            iter_var: "#unused".into(),
            iter_var2: None,
            accu_var: v,
            accu_init: value,
            loop_cond: never,
            loop_step: v_ident,
            result: body,
        })),
    );
    let result = e(helper, Expr::Ident(RESULT.into()));
    let result2 = e(helper, Expr::Ident(RESULT.into()));
    let (init, cond, step, result) = match kind {
        TwoVar::All => (
            e(helper, bool_lit(true)),
            e(helper, call("@not_strictly_false", vec![result])),
            e(helper, call("_&&_", vec![result2, body])),
            e(helper, Expr::Ident(RESULT.into())),
        ),
        TwoVar::Exists => {
            let not = e(helper, call("!_", vec![result]));
            (
                e(helper, bool_lit(false)),
                e(helper, call("@not_strictly_false", vec![not])),
                e(helper, call("_||_", vec![result2, body])),
                e(helper, Expr::Ident(RESULT.into())),
            )
        }
        TwoVar::ExistsOne => {
            let one = e(helper, Expr::Literal(LiteralValue::Int(1.into())));
            let plus = e(helper, call("_+_", vec![result, one]));
            let one2 = e(helper, Expr::Literal(LiteralValue::Int(1.into())));
            let r3 = e(helper, Expr::Ident(RESULT.into()));
            (
                e(helper, Expr::Literal(LiteralValue::Int(0.into()))),
                e(helper, bool_lit(true)),
                e(helper, call("_?_:_", vec![body, plus, result2])),
                e(helper, call("_==_", vec![r3, one2])),
            )
        }
    };
    let t_ident = e(helper, Expr::Ident(TARGET.into()));
    let keys = e(helper, call(KEYS_FN, vec![t_ident]));
    let loop_ = e(
        helper,
        Expr::Comprehension(Box::new(ComprehensionExpr {
            iter_range: keys,
            iter_var: k,
            iter_var2: None,
            accu_var: RESULT.into(),
            accu_init: init,
            loop_cond: cond,
            loop_step: step,
            result,
        })),
    );
    let empty = e(helper, Expr::List(ListExpr::new(Vec::new())));
    let never = e(helper, bool_lit(false));
    let t_ident = e(helper, Expr::Ident(TARGET.into()));
    Ok(Some(e(
        helper,
        Expr::Comprehension(Box::new(ComprehensionExpr {
            iter_range: empty,
            iter_var: "#unused".into(),
            iter_var2: None,
            accu_var: TARGET.into(),
            accu_init: target,
            loop_cond: never,
            loop_step: t_ident,
            result: loop_,
        })),
    )))
}

/// Function names the environment declares, for undeclared-reference checks
/// at compile time: the `cel` standard library, its strings and lists
/// extensions, and ours.
pub(super) const KNOWN_FUNCTIONS: &[&str] = &[
    // standard library and macros
    "size",
    "contains",
    "startsWith",
    "endsWith",
    "matches",
    "int",
    "uint",
    "double",
    "string",
    "bytes",
    "bool",
    "dyn",
    "type",
    "duration",
    "timestamp",
    "has",
    "all",
    "exists",
    "exists_one",
    "map",
    "filter",
    "getDate",
    "getDayOfMonth",
    "getDayOfWeek",
    "getDayOfYear",
    "getFullYear",
    "getHours",
    "getMilliseconds",
    "getMinutes",
    "getMonth",
    "getSeconds",
    "optional.of",
    "optional.none",
    "optional.ofNonZeroValue",
    "hasValue",
    "value",
    "or",
    "orValue",
    // strings extension
    "charAt",
    "indexOf",
    "lastIndexOf",
    "lowerAscii",
    "upperAscii",
    "replace",
    "split",
    "substring",
    "trim",
    "join",
    "format",
    "strings.quote",
    "reverse",
    // lists extension
    "slice",
    "flatten",
    "distinct",
    "sort",
    "sortBy",
    "lists.range",
    // Kubernetes libraries
    "quantity",
    "isQuantity",
    "isLessThan",
    "isGreaterThan",
    "compareTo",
    "asInteger",
    "isInteger",
    "asApproximateFloat",
    "sign",
    "add",
    "sub",
    "url",
    "isURL",
    "getScheme",
    "getHost",
    "getHostname",
    "getPort",
    "getEscapedPath",
    "getQuery",
    "isSorted",
    "sum",
    "min",
    "max",
    "find",
    "findAll",
    "sets.contains",
    "sets.equivalent",
    "sets.intersects",
];

/// Builds the environment every program is compiled and run with.
pub(super) fn environment() -> Env {
    let mut env = Env::stdlib();
    let result = (|| -> Result<(), cel::DeclarationError> {
        env.add_extension(cel::extensions::strings)?;
        env.add_extension(cel::extensions::lists)?;
        env.add_overload(
            budget::CHARGE_FN,
            "kelp_charge",
            vec![DYN_TYPE, INT_TYPE],
            charge,
        )?;
        env.add_overload(
            "quantity",
            "quantity_string",
            vec![STRING_TYPE],
            quantity_fn,
        )?;
        env.add_overload(
            "isQuantity",
            "isQuantity_string",
            vec![STRING_TYPE],
            is_quantity_fn,
        )?;
        env.add_overload("url", "url_string", vec![STRING_TYPE], url_fn)?;
        env.add_overload(
            "sets.contains",
            "sets_contains",
            vec![LIST_TYPE, LIST_TYPE],
            sets_contains_fn,
        )?;
        env.add_overload(
            "sets.equivalent",
            "sets_equivalent",
            vec![LIST_TYPE, LIST_TYPE],
            sets_equivalent_fn,
        )?;
        env.add_overload(
            "sets.intersects",
            "sets_intersects",
            vec![LIST_TYPE, LIST_TYPE],
            sets_intersects_fn,
        )?;
        env.add_macro(Macro::receiver("bind", 3, bind_macro))?;
        env.add_overload(KEYS_FN, "kelp_keys", vec![DYN_TYPE], keys_fn)?;
        env.add_macro(Macro::receiver("all", 3, |h, t, a| {
            two_var_macro(TwoVar::All, h, t, a)
        }))?;
        env.add_macro(Macro::receiver("exists", 3, |h, t, a| {
            two_var_macro(TwoVar::Exists, h, t, a)
        }))?;
        env.add_macro(Macro::receiver("exists_one", 3, |h, t, a| {
            two_var_macro(TwoVar::ExistsOne, h, t, a)
        }))?;
        env.add_overload("isURL", "isURL_string", vec![STRING_TYPE], is_url_fn)?;
        let members: &[(&str, usize, cel::common::functions::Function)] = &[
            ("isLessThan", 1, is_less_than_fn),
            ("isGreaterThan", 1, is_greater_than_fn),
            ("compareTo", 1, compare_to_fn),
            ("asInteger", 0, as_integer_fn),
            ("isInteger", 0, is_integer_fn),
            ("asApproximateFloat", 0, as_approximate_float_fn),
            ("sign", 0, sign_fn),
            ("add", 1, add_fn),
            ("sub", 1, sub_fn),
            ("getScheme", 0, get_scheme_fn),
            ("getHost", 0, get_host_fn),
            ("getHostname", 0, get_hostname_fn),
            ("getPort", 0, get_port_fn),
            ("getEscapedPath", 0, get_escaped_path_fn),
            ("getQuery", 0, get_query_fn),
            ("isSorted", 0, is_sorted_fn),
            ("sum", 0, sum_fn),
            ("min", 0, min_fn),
            ("max", 0, max_fn),
            ("find", 1, find_fn),
            ("findAll", 1, find_all_fn),
            ("findAll", 2, find_all_n_fn),
        ];
        for (name, arity, f) in members {
            let id = format!("kelp_{name}_{arity}");
            env.add_member_overload(
                name,
                &id,
                DYN_TYPE,
                (0..*arity).map(|_| DYN_TYPE).collect(),
                *f,
            )?;
        }
        env.add_member_overload(
            "indexOf",
            "kelp_list_indexOf",
            LIST_TYPE,
            vec![DYN_TYPE],
            list_index_of_fn,
        )?;
        env.add_member_overload(
            "lastIndexOf",
            "kelp_list_lastIndexOf",
            LIST_TYPE,
            vec![DYN_TYPE],
            list_last_index_of_fn,
        )?;
        Ok(())
    })();
    // Only a programming error here (a clashing name) can fail; the tests
    // build the environment, so it cannot reach production unnoticed.
    if let Err(e) = result {
        panic!("kube-cel environment: {e}");
    }
    env
}
