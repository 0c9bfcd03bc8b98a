use crate::api::cel::{CompileOptions, CompiledVariables, POLICY_VARIABLES, Program};
use serde_json::{Value, json};

fn eval(expr: &str) -> Value {
    Program::compile(expr)
        .unwrap_or_else(|e| panic!("{expr}: {e}"))
        .evaluate(&[])
        .unwrap_or_else(|e| panic!("{expr}: {e}"))
}

fn truthy(expr: &str) {
    assert_eq!(eval(expr), json!(true), "{expr}");
}

#[test]
fn arithmetic_and_strings() {
    assert_eq!(eval("1 + 2 * 3"), json!(7));
    assert_eq!(eval("7 / 2"), json!(3));
    assert_eq!(eval("1.5 * 2.0"), json!(3.0));
    truthy("'abc' + 'def' == 'abcdef'");
    truthy("'TacoCat'.lowerAscii() == 'tacocat'");
    truthy("'TacoCat'.upperAscii() == 'TACOCAT'");
    truthy("'a-b-c'.replace('-', '+') == 'a+b+c'");
    truthy("'a,b,c'.split(',') == ['a', 'b', 'c']");
    truthy("['a', 'b'].join('/') == 'a/b'");
    truthy("'hello'.indexOf('l') == 2 && 'hello'.lastIndexOf('l') == 3");
    truthy("'  x '.trim() == 'x'");
    truthy("'tacocat'.substring(4) == 'cat' && 'abc'.charAt(1) == 'b'");
    truthy("'abc'.startsWith('a') && 'abc'.endsWith('c') && 'abc'.contains('b')");
    truthy("size('abc') == 3");
}

#[test]
fn lists_and_macros() {
    truthy("[1, 2, 3].all(x, x > 0)");
    truthy("[1, 2, 3].exists(x, x == 2)");
    truthy("[1, 2, 3].exists_one(x, x > 2)");
    truthy("[1, 2, 3].map(x, x * 2) == [2, 4, 6]");
    truthy("[1, 2, 3].filter(x, x != 2) == [1, 3]");
    truthy("[1, 2, 3].isSorted() && ![3, 1].isSorted()");
    truthy("[1, 2, 3].sum() == 6 && [1.5, 2.5].sum() == 4.0");
    truthy("[3, 1, 2].min() == 1 && [3, 1, 2].max() == 3");
    truthy("[1, 2, 1].indexOf(1) == 0 && [1, 2, 1].lastIndexOf(1) == 2");
    truthy("[1, 2].indexOf(5) == -1");
    truthy("{'a': 1}.all(k, k == 'a')");
}

#[test]
fn has_and_variables() {
    let p = Program::compile("has(self.a) && !has(self.b)").unwrap();
    assert!(p.evaluate_bool(&[("self", &json!({"a": 1}))]).unwrap());
    let p = Program::compile("self.items.size() == 2 && self.name == 'x'").unwrap();
    assert!(
        p.evaluate_bool(&[("self", &json!({"items": [1, 2], "name": "x"}))])
            .unwrap()
    );
}

#[test]
fn regex() {
    truthy("'abc123'.matches('^[a-z]+[0-9]+$')");
    truthy("'abc123def456'.find('[0-9]+') == '123'");
    truthy("'abc123def456'.findAll('[0-9]+') == ['123', '456']");
    truthy("'abc123def456'.findAll('[0-9]+', 1) == ['123']");
    truthy("'abc'.find('[0-9]+') == ''");
}

#[test]
fn quantity() {
    truthy("quantity('1Gi').isGreaterThan(quantity('1G'))");
    truthy("quantity('500m').isLessThan(quantity('1'))");
    truthy("quantity('1k').compareTo(quantity('1000')) == 0");
    truthy("quantity('1Ki').asInteger() == 1024");
    truthy("quantity('1.5').isInteger() == false && quantity('2').isInteger()");
    truthy("quantity('1500m').asApproximateFloat() == 1.5");
    truthy("quantity('1').add(quantity('500m')) == quantity('1.5')");
    truthy("quantity('1').add(2) == quantity('3')");
    truthy("quantity('1').sub(quantity('2')).sign() == -1");
    truthy("quantity('1e3') == quantity('1k')");
    truthy("isQuantity('10Mi') && !isQuantity('10MB') && !isQuantity('')");
    let err = Program::compile("quantity('nope')")
        .unwrap()
        .evaluate(&[])
        .unwrap_err();
    assert!(err.contains("quantities must match"), "{err}");
}

#[test]
fn url() {
    truthy("url('https://example.com:8080/a/b?x=1&x=2&y=z').getScheme() == 'https'");
    truthy("url('https://example.com:8080/a/b').getHost() == 'example.com:8080'");
    truthy("url('https://example.com:8080/a/b').getHostname() == 'example.com'");
    truthy("url('https://example.com:8080/a/b').getPort() == '8080'");
    truthy("url('https://[::1]:80/').getHostname() == '::1'");
    truthy("url('https://example.com/a%20b').getEscapedPath() == '/a%20b'");
    truthy("url('https://e.com/?x=1&x=2&y=z').getQuery() == {'x': ['1', '2'], 'y': ['z']}");
    truthy("isURL('https://example.com') && isURL('/path') && !isURL('relative/path')");
}

#[test]
fn compile_errors() {
    let opts = CompileOptions {
        variables: &["self", "oldSelf"],
        expect_bool: true,
    };
    let e = Program::compile_with("self.x ==", &opts).unwrap_err();
    assert!(e.starts_with("ERROR: <input>:1:"), "{e}");
    let e = Program::compile_with("foo == 1", &opts).unwrap_err();
    assert!(e.contains("undeclared reference to 'foo'"), "{e}");
    let e = Program::compile_with("self.x.noSuchFunction()", &opts).unwrap_err();
    assert!(
        e.contains("undeclared reference to 'noSuchFunction'"),
        "{e}"
    );
    let e = Program::compile_with("self.x + 1", &opts).unwrap_err();
    assert_eq!(e, "cel expression must evaluate to a bool");
    // comprehension variables are in scope
    Program::compile_with("self.all(x, x > 0)", &opts).unwrap();
}

#[test]
fn policy_variables() {
    let opts = CompileOptions {
        variables: POLICY_VARIABLES,
        expect_bool: false,
    };
    let vars = CompiledVariables::compile(
        &[
            ("replicas", "object.spec.replicas"),
            ("double", "variables.replicas * 2"),
            ("broken", "1 / 0"),
        ],
        &opts,
    )
    .unwrap();
    let p = Program::compile_with(
        "variables.double > 5",
        &CompileOptions {
            expect_bool: true,
            ..opts
        },
    )
    .unwrap();
    let obj = json!({"spec": {"replicas": 3}});
    // `broken` is never needed, so never evaluated.
    assert_eq!(
        p.evaluate_with_variables(&[("object", &obj)], &vars)
            .unwrap(),
        json!(true)
    );
}

#[test]
fn bind_and_sets() {
    truthy("cel.bind(x, [1, 2, 3], x.size() == 3 && x[0] == 1)");
    truthy("sets.contains([1, 2, 3], [2, 3]) && !sets.contains([1], [2])");
    truthy("sets.equivalent([1, 2], [2, 1, 1]) && sets.intersects([1, 2], [2, 5])");
    let opts = CompileOptions {
        variables: &["self"],
        expect_bool: true,
    };
    let p = Program::compile_with("cel.bind(s, self.size(), s > 1 && s < 10)", &opts).unwrap();
    assert!(p.evaluate_bool(&[("self", &json!([1, 2]))]).unwrap());
}

#[test]
fn two_variable_comprehensions() {
    truthy("{'a': 1, 'b': 2}.all(k, v, v > 0 && k != '')");
    truthy("!{'a': 1, 'b': 2}.all(k, v, v > 1)");
    truthy("[5, 6].exists(i, v, i == 1 && v == 6)");
    truthy("![5, 6].exists(i, v, i == 0 && v == 6)");
    truthy("[5, 6, 7].exists_one(i, v, v > 6)");
    truthy("[[1], [2, 3]].all(i, l, l.all(j, x, x > i + j - 1))");
    let opts = CompileOptions {
        variables: &["self"],
        expect_bool: true,
    };
    let p = Program::compile_with("self.all(k, v, k.startsWith('x') && v < 3)", &opts).unwrap();
    assert!(
        p.evaluate_bool(&[("self", &json!({"xa": 1, "xb": 2}))])
            .unwrap()
    );
}

#[test]
fn optional_syntax() {
    truthy("{'a': 1}.?a.orValue(5) == 1");
    truthy("{'a': 1}.?b.orValue(5) == 5");
}
