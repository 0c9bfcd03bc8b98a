//! The components meet only at the API: the kubelet, the scheduler, the
//! controllers, the fake nodes and the shared client kit import nothing
//! from the apiserver (`crate::api`), and the kubelet nothing from the
//! scheduler. Helpers both sides need live in `crate::client`.

use std::path::{Path, PathBuf};

/// (module directory, modules it must not import).
const RULES: &[(&str, &[&str])] = &[
    ("src/kubelet", &["api", "scheduler", "controllers"]),
    ("src/scheduler", &["api", "kubelet", "controllers"]),
    ("src/controllers", &["api", "kubelet", "scheduler"]),
    ("src/sim", &["api", "kubelet", "scheduler", "controllers"]),
    (
        "src/client",
        &["api", "kubelet", "scheduler", "controllers", "cli"],
    ),
    // The node side runs on machines without the apiserver: it meets the
    // server only at the API and the join endpoint.
    ("src/agent", &["api", "scheduler", "controllers", "cli"]),
    ("src/network", &["api", "scheduler", "controllers", "cli"]),
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without comments, on one line, without spaces.
fn code(text: &str) -> String {
    text.lines()
        .map(|l| l.split("//").next().unwrap_or_default())
        .collect::<String>()
        .split_whitespace()
        .collect()
}

/// The top-level crate modules a piece of code names: `crate::x::…` paths
/// and the first segments inside `crate::{x::…, y}` groups.
fn crate_modules(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 1 => {
                        found.push(first_segment(&item));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                if depth == 0 {
                    break;
                }
                item.push(c);
            }
            found.push(first_segment(&item));
        } else {
            found.push(first_segment(rest));
        }
    }
    found.retain(|m| !m.is_empty());
    found
}

fn first_segment(path: &str) -> String {
    path.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .next()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn components_import_nothing_from_the_apiserver_or_each_other() {
    let mut violations = Vec::new();
    for (dir, forbidden) in RULES {
        let mut files = Vec::new();
        rust_files(Path::new(dir), &mut files);
        assert!(!files.is_empty(), "no sources under {dir}");
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            for module in crate_modules(&code(&text)) {
                if forbidden.contains(&module.as_str()) {
                    violations.push(format!("{} uses crate::{module}", file.display()));
                }
            }
        }
    }
    violations.sort();
    violations.dedup();
    assert!(
        violations.is_empty(),
        "import rule broken:\n{}",
        violations.join("\n")
    );
}

#[test]
fn the_checker_sees_plain_and_grouped_paths() {
    let text = "use crate::api::object; // crate::kubelet in a comment\nuse crate::{\n    client::x,\n    scheduler::{a, b},\n};";
    assert_eq!(crate_modules(&code(text)), ["api", "client", "scheduler"]);
}
