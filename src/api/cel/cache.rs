//! Compiled programs kept by their source, for expressions that live in
//! stored objects (webhook match conditions, admission policies) and would
//! otherwise be compiled again on every request: compiling parses on a
//! thread of its own and costs far more than evaluating.
//!
//! Errors are kept too, so a broken expression is not recompiled per
//! request. The cache is bounded: when full it starts over, which only
//! costs recompiling what is still in use.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use super::{CompileOptions, Program};

/// Entries kept before the cache starts over.
const CAPACITY: usize = 4096;

type Key = (String, Vec<String>, bool);
type Compiled = Result<Arc<Program>, String>;

fn cache() -> &'static parking_lot::Mutex<HashMap<Key, Compiled>> {
    static CACHE: OnceLock<parking_lot::Mutex<HashMap<Key, Compiled>>> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// [`Program::compile_with`], remembered.
pub fn compile_cached(expr: &str, opts: &CompileOptions<'_>) -> Compiled {
    let key = (
        expr.to_string(),
        opts.variables.iter().map(|v| v.to_string()).collect(),
        opts.expect_bool,
    );
    if let Some(found) = cache().lock().get(&key) {
        return found.clone();
    }
    // Compiled outside the lock: two requests may compile the same
    // expression once each, but none waits for another's compile.
    let compiled = Program::compile_with(expr, opts).map(Arc::new);
    let mut map = cache().lock();
    if map.len() >= CAPACITY {
        map.clear();
    }
    map.insert(key, compiled.clone());
    compiled
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_program_is_compiled_once_and_errors_are_kept() {
        let opts = CompileOptions {
            variables: &["object"],
            expect_bool: true,
        };
        let a = compile_cached("object.x == 1", &opts).unwrap();
        let b = compile_cached("object.x == 1", &opts).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert!(compile_cached("object.x ==", &opts).is_err());
    }
}
