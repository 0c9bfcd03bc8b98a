//! Behavioural tests of the CEL module: expressions and libraries, CRD
//! rules against upstream's texts, and the bounds on hostile input.

mod bounds;
mod expressions;
mod schema_rules;
