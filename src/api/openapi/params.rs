//! The operation parameters of upstream's REST API, as OpenAPI 3.0 parameter objects.
//!
//! Parameters are written inline in every operation, as upstream's v3 documents do: kubectl's
//! query-parameter check (`--validate=strict` uses server-side `fieldValidation` only if the
//! PATCH operation lists it) reads the operation's own parameter list. The descriptions are
//! kelp's own short summaries of the upstream semantics.

use serde_json::{Value, json};

/// A query parameter of the given JSON type.
fn query(name: &str, ty: &str, description: &str) -> Value {
    json!({
        "name": name,
        "in": "query",
        "description": description,
        "schema": { "type": ty, "uniqueItems": true },
    })
}

/// A required path parameter.
pub(crate) fn path(name: &str, description: &str) -> Value {
    json!({
        "name": name,
        "in": "path",
        "description": description,
        "required": true,
        "schema": { "type": "string", "uniqueItems": true },
    })
}

/// `pretty`, accepted by every operation.
pub(crate) fn pretty() -> Value {
    query(
        "pretty",
        "string",
        "If 'true', the output is pretty printed.",
    )
}

fn dry_run() -> Value {
    query(
        "dryRun",
        "string",
        "When present, modifications are not persisted. An unknown directive is an error. The \
         only valid value is All: run every dry-run stage.",
    )
}

fn field_manager() -> Value {
    query(
        "fieldManager",
        "string",
        "Name of the actor or entity making these changes: at most 128 printable characters. \
         Required for apply patches.",
    )
}

fn field_validation() -> Value {
    query(
        "fieldValidation",
        "string",
        "How to treat unknown or duplicate fields in the request body. Ignore: drop unknown \
         fields and keep the last duplicate silently. Warn (default): same, with a warning for \
         each. Strict: reject the request with a BadRequest error listing them.",
    )
}

/// Parameters of create (POST) and replace (PUT).
pub(crate) fn write() -> Vec<Value> {
    vec![dry_run(), field_manager(), field_validation()]
}

/// Parameters of PATCH: the write parameters plus `force` for apply patches.
pub(crate) fn patch() -> Vec<Value> {
    let mut params = write();
    params.push(query(
        "force",
        "boolean",
        "Force an apply patch to take ownership of fields other managers own. Must be unset \
         for patch types other than apply.",
    ));
    params
}

/// Parameters of DELETE on one object.
pub(crate) fn delete() -> Vec<Value> {
    vec![
        dry_run(),
        query(
            "gracePeriodSeconds",
            "integer",
            "Seconds to wait before deleting; zero deletes immediately, unset uses the kind's \
             default.",
        ),
        query(
            "ignoreStoreReadErrorWithClusterBreakingPotential",
            "boolean",
            "Delete the object even if its stored data cannot be read or decoded. Unsafe.",
        ),
        query(
            "orphanDependents",
            "boolean",
            "Deprecated, use propagationPolicy: whether dependents are orphaned.",
        ),
        query(
            "propagationPolicy",
            "string",
            "Garbage collection policy for dependents: Orphan, Background or Foreground.",
        ),
    ]
}

/// Selection parameters shared by list, watch and deletecollection.
fn selection() -> Vec<Value> {
    vec![
        query(
            "continue",
            "string",
            "Token from a previous limited list call's metadata.continue, to fetch the next page.",
        ),
        query(
            "fieldSelector",
            "string",
            "Restrict the objects returned by their fields.",
        ),
        query(
            "labelSelector",
            "string",
            "Restrict the objects returned by their labels.",
        ),
        query(
            "limit",
            "integer",
            "Maximum number of objects to return; more are signalled by metadata.continue.",
        ),
        query(
            "resourceVersion",
            "string",
            "Constrains which resource versions the request may be served from.",
        ),
        query(
            "resourceVersionMatch",
            "string",
            "How resourceVersion applies to list calls: Exact or NotOlderThan.",
        ),
        query(
            "sendInitialEvents",
            "boolean",
            "With watch=true, start the watch with synthetic events for the current state.",
        ),
        query(
            "timeoutSeconds",
            "integer",
            "Timeout for the list or watch call, regardless of activity.",
        ),
    ]
}

/// Parameters of list (and watch via `watch=true`).
pub(crate) fn list() -> Vec<Value> {
    let mut params = vec![query(
        "allowWatchBookmarks",
        "boolean",
        "Ask a watch to send BOOKMARK events; servers may ignore it.",
    )];
    params.extend(selection());
    params.push(query(
        "watch",
        "boolean",
        "Watch for changes instead of listing: return a stream of add, update and remove \
         notifications.",
    ));
    params
}

/// Parameters of deletecollection: the delete options plus the selection.
pub(crate) fn delete_collection() -> Vec<Value> {
    let mut params = delete();
    params.extend(selection());
    params
}
