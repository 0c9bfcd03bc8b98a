//! Kubernetes-flavoured CEL: compiling and evaluating the expressions of
//! `x-kubernetes-validations` rules, ValidatingAdmissionPolicies and webhook
//! match conditions.
//!
//! kube-apiserver evaluates these with cel-go plus the Kubernetes function
//! libraries; kelp uses the `cel` crate and adds the missing libraries here,
//! so that objects accepted or rejected upstream are accepted or rejected the
//! same way, with the same error texts where we could reproduce them.
//!
//! Two properties matter more than completeness, because CRDs and objects are
//! written by untrusted users:
//! - compiling never overflows the stack: expressions are size- and
//!   nesting-limited and parsed on a dedicated thread with a large stack;
//! - evaluating never runs unbounded: every comprehension iteration is charged
//!   against a per-call limit and a per-request budget, mirroring upstream's
//!   cost budget (see [`PER_CALL_LIMIT`] and [`RUNTIME_BUDGET`]).

mod budget;
mod cache;
mod library;
mod program;
mod quantity;
mod schema;
#[cfg(test)]
mod tests;
mod url;
mod value;

pub use cache::compile_cached;
pub use program::{CompileOptions, CompiledVariables, Program};
pub use schema::SchemaRules;

/// Variables a CRD validation rule may reference.
pub const CRD_RULE_VARIABLES: &[&str] = &["self", "oldSelf"];

/// Variables a ValidatingAdmissionPolicy expression may reference.
pub const POLICY_VARIABLES: &[&str] = &[
    "object",
    "oldObject",
    "request",
    "params",
    "namespaceObject",
    "authorizer",
    "variables",
];

/// Variables an admission webhook match condition may reference.
pub const WEBHOOK_MATCH_CONDITION_VARIABLES: &[&str] =
    &["object", "oldObject", "request", "authorizer"];

/// Upstream's `celconfig.PerCallLimit`: the most cost one evaluation may use.
///
/// We charge each comprehension iteration the node count of its loop body,
/// approximating cel-go's one unit per operation; evaluation outside
/// comprehensions is linear in the expression and its inputs, so it is not
/// charged.
pub const PER_CALL_LIMIT: u64 = 1_000_000;

/// Upstream's `celconfig.RuntimeCELCostBudget`: the cost all the rules of one
/// object validation may use together.
pub const RUNTIME_BUDGET: u64 = 10_000_000;

/// One validation failure, in the shape of upstream's `field.Error` (the
/// schema engine's type: CEL and schema errors are reported together).
pub use crate::api::custom::schema::FieldError;
