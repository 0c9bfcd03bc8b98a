//! Server-side apply (`application/apply-patch+yaml`).
//!
//! Follows upstream's field manager stack for apply: the version check, the
//! structured-merge-diff `Updater.Apply` (merge the configuration into the live
//! object, prune what this manager applied before and no longer does unless
//! someone else owns it, detect conflicts with other managers' fields), the
//! metadata strip, the `kubectl` last-applied interop (conflicts with fields the
//! client-side-apply annotation still describes are forced, and the annotation is
//! kept in sync) and the cap on update managers.
//!
//! A no-op apply leaves the entry's timestamp alone, as upstream does; a first
//! apply that changes nothing still gets one (upstream would leave it unset).
//! Errors: undecodable YAML and a wrong apiVersion/kind are 400, a missing
//! manager name 422, conflicts 409 with upstream's message and causes, and an
//! invalid applied list (duplicate or key-less items) or undecodable stored
//! managedFields 500, as upstream reports them.

use serde_json::{Map, Value};

use super::fieldpath::{PathElement, path_string};
use super::managed_fields::{self, Entry, ManagerId, Managers};
use super::schema::{self, Field};
use super::{PatchError, TypeRef, typed};

/// Annotation written by `kubectl apply` (client side).
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Applies the configuration in `applied_body` as `manager` and returns the new
/// object with updated `metadata.managedFields`. `live` is `None` when the
/// object does not exist yet (apply creates). With `force`, conflicting fields
/// change hands instead of failing the request.
pub fn server_side_apply(
    live: Option<&Value>,
    applied_body: &[u8],
    manager: &str,
    force: bool,
    ty: TypeRef<'_>,
    now_rfc3339: &str,
) -> Result<Value, PatchError> {
    if manager.is_empty() {
        return Err(PatchError::Unprocessable(
            "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"
                .to_string(),
        ));
    }
    let config = parse_config(applied_body)?;
    let api_version = check_type(&config, live, ty)?;
    if config
        .pointer("/metadata/managedFields")
        .is_some_and(|v| !v.is_null())
    {
        let message = "metadata.managedFields must be nil".to_string();
        return Err(PatchError::BadRequest(message));
    }
    let managers = match live {
        Some(live) => managed_fields::decode(live)
            .map_err(|e| PatchError::Internal(format!("failed to decode managed fields: {e}")))?,
        None => Managers::new(),
    };
    let empty = Value::Object(Map::new());
    let live = managed_fields::without_managed_fields(live.unwrap_or(&empty));
    let id = ManagerId::new(manager, "Apply", &api_version, "");
    let request = Request {
        live: &live,
        config: &config,
        field: schema::root(ty),
        id: &id,
        api_version: &api_version,
    };
    let (mut object, mut managers) = if manager == "kubectl" {
        request.run_as_kubectl(managers, force)?
    } else {
        request.run(managers, force).map_err(Failure::into_error)?
    };
    if let Some(entry) = managers.get_mut(&id)
        && (object != live || entry.time.is_none())
    {
        entry.time = Some(now_rfc3339.to_string());
    }
    managed_fields::cap_update_managers(&mut managers);
    if manager == "kubectl" && last_applied(&live).is_some() {
        sync_last_applied(&mut object, &config);
    }
    managed_fields::encode_onto(&mut object, &managers);
    Ok(object)
}

/// Decodes a YAML (or JSON) body into a JSON object.
fn parse_config(body: &[u8]) -> Result<Value, PatchError> {
    let bad = |e: String| PatchError::BadRequest(format!("error decoding YAML: {e}"));
    let yaml: serde_yaml::Value = serde_yaml::from_slice(body).map_err(|e| bad(e.to_string()))?;
    match yaml_to_json(yaml).map_err(bad)? {
        Value::Null => Ok(Value::Object(Map::new())),
        object @ Value::Object(_) => Ok(object),
        _ => Err(bad(
            "error unmarshaling JSON: while decoding JSON: json: cannot unmarshal array into Go value of type map[string]interface {}"
                .to_string(),
        )),
    }
}

/// YAML to JSON as sigs.k8s.io/yaml converts: scalar keys become strings.
fn yaml_to_json(value: serde_yaml::Value) -> Result<Value, String> {
    use serde_yaml::Value as Y;
    Ok(match value {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => Value::from(i),
            (_, Some(u), _) => Value::from(u),
            (_, _, Some(f)) => serde_json::Number::from_f64(f)
                .map(Value::Number)
                .ok_or_else(|| format!("invalid number {f}"))?,
            _ => return Err("invalid number".to_string()),
        },
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(
            items
                .into_iter()
                .map(yaml_to_json)
                .collect::<Result<_, _>>()?,
        ),
        Y::Mapping(map) => {
            let mut out = Map::new();
            for (key, value) in map {
                let key = match key {
                    Y::String(s) => s,
                    Y::Bool(b) => b.to_string(),
                    Y::Number(n) => n.to_string(),
                    other => return Err(format!("unsupported map key: {other:?}")),
                };
                out.insert(key, yaml_to_json(value)?);
            }
            Value::Object(out)
        }
        Y::Tagged(tagged) => yaml_to_json(tagged.value)?,
    })
}

/// Upstream's version check: the configuration must be of the endpoint's type
/// (and of the live object's version). Returns the configuration's apiVersion.
fn check_type(config: &Value, live: Option<&Value>, ty: TypeRef<'_>) -> Result<String, PatchError> {
    let text = |v: &Value, name: &str| {
        v.get(name)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let (api_version, kind) = (text(config, "apiVersion"), text(config, "kind"));
    let split = |av: &str| match av.rsplit_once('/') {
        Some((group, version)) => (group.to_string(), version.to_string()),
        None => (String::new(), av.to_string()),
    };
    let (group, version) = split(&api_version);
    let expected_version = live.map(|l| split(&text(l, "apiVersion")).1);
    let version_ok = expected_version.is_none_or(|v| v.is_empty() || v == version);
    if group != ty.group || kind != ty.kind || version.is_empty() || !version_ok {
        return Err(PatchError::BadRequest(format!(
            "invalid object type: {group}/{version}, Kind={kind}"
        )));
    }
    Ok(api_version)
}

/// One apply attempt's inputs.
struct Request<'a> {
    live: &'a Value,
    config: &'a Value,
    field: Field,
    id: &'a ManagerId,
    api_version: &'a str,
}

/// Why an attempt failed.
enum Failure {
    Conflicts(Vec<(ManagerId, Vec<PathElement>)>),
    Error(PatchError),
}

impl Failure {
    fn into_error(self) -> PatchError {
        match self {
            Failure::Conflicts(conflicts) => conflict_error(conflicts),
            Failure::Error(e) => e,
        }
    }
}

impl Request<'_> {
    /// Upstream `Updater.Apply` followed by the metadata strip.
    fn run(&self, mut managers: Managers, force: bool) -> Result<(Value, Managers), Failure> {
        let set = typed::to_field_set(self.config, self.field).map_err(|e| {
            Failure::Error(PatchError::Internal(format!(
                "failed to create typed patch object ({}): {e}",
                self.gvk()
            )))
        })?;
        let mut object = typed::merge(self.live, self.config, self.field);
        let previous = managers.remove(self.id);
        let time = previous.as_ref().and_then(|e| e.time.clone());
        let entry = Entry {
            set,
            api_version: self.api_version.to_string(),
            time,
        };
        managers.insert(self.id.clone(), entry);
        if let Some(last) = previous.filter(|e| !e.set.is_empty()) {
            let owned = managers
                .values()
                .fold(Default::default(), |acc: super::fieldpath::FieldSet, e| {
                    acc.union(&e.set)
                });
            typed::prune(&mut object, self.field, &last.set, Some(&owned));
        }
        let comparison = typed::compare(self.live, &object, self.field);
        let changed = comparison.modified.union(&comparison.added);
        let mut conflicts = Vec::new();
        for (id, entry) in managers.iter_mut().filter(|(id, _)| *id != self.id) {
            let clash = entry.set.intersection(&changed);
            conflicts.extend(clash.paths().into_iter().map(|path| (id.clone(), path)));
            entry.set = entry.set.difference(&clash).difference(&comparison.removed);
        }
        if !force && !conflicts.is_empty() {
            return Err(Failure::Conflicts(conflicts));
        }
        if let Some(entry) = managers.get_mut(self.id) {
            entry.set = managed_fields::strip_meta(&entry.set);
        }
        managers.retain(|_, entry| !entry.set.is_empty());
        Ok((object, managers))
    }

    /// `kubectl apply --server-side`: conflicts with fields the client-side-apply
    /// annotation still describes are forced (upstream `lastAppliedManager`).
    fn run_as_kubectl(
        &self,
        managers: Managers,
        force: bool,
    ) -> Result<(Value, Managers), PatchError> {
        let conflicts = match self.run(managers.clone(), force) {
            Err(Failure::Conflicts(conflicts)) => conflicts,
            other => return other.map_err(Failure::into_error),
        };
        let allowed = allowed_by_last_applied(self.live, self.field, self.api_version);
        let remaining: Vec<_> = conflicts
            .into_iter()
            .filter(|(_, path)| !allowed.as_ref().is_some_and(|set| set.has(path)))
            .collect();
        if !remaining.is_empty() {
            return Err(conflict_error(remaining));
        }
        self.run(managers, true).map_err(Failure::into_error)
    }

    fn gvk(&self) -> String {
        let kind = self
            .config
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default();
        match self.api_version.rsplit_once('/') {
            Some((group, version)) => format!("{group}/{version}, Kind={kind}"),
            None => format!("/{}, Kind={kind}", self.api_version),
        }
    }
}

/// Upstream `NewConflictError`: message grouped by manager, one cause per field.
fn conflict_error(mut conflicts: Vec<(ManagerId, Vec<PathElement>)>) -> PatchError {
    conflicts.sort_by_cached_key(|(id, _)| id.identifier());
    let causes: Vec<(String, String)> = conflicts
        .iter()
        .map(|(id, path)| {
            (
                path_string(path),
                format!("conflict with {}", id.describe()),
            )
        })
        .collect();
    let message = match conflicts.as_slice() {
        [(id, path)] => format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            id.describe(),
            path_string(path)
        ),
        _ => {
            let mut lines = Vec::new();
            let mut current: Option<&ManagerId> = None;
            for (id, path) in &conflicts {
                if current != Some(id) {
                    lines.push(format!("conflicts with {}:", id.describe()));
                    current = Some(id);
                }
                lines.push(format!("- {}", path_string(path)));
            }
            format!(
                "Apply failed with {} conflicts: {}",
                conflicts.len(),
                lines.join("\n")
            )
        }
    };
    PatchError::Conflict { message, causes }
}

fn last_applied(live: &Value) -> Option<&str> {
    live.pointer("/metadata/annotations")?
        .get(LAST_APPLIED)?
        .as_str()
        .filter(|s| !s.is_empty())
}

/// Fields the client-side-apply annotation describes and the live object still
/// matches: `kubectl apply --server-side` may take them over without force.
fn allowed_by_last_applied(
    live: &Value,
    field: Field,
    api_version: &str,
) -> Option<super::fieldpath::FieldSet> {
    let recorded: Value = serde_json::from_str(last_applied(live)?).ok()?;
    if recorded.get("apiVersion").and_then(Value::as_str) != Some(api_version) {
        return None;
    }
    let set = typed::to_field_set(&recorded, field).ok()?;
    let comparison = typed::compare(&recorded, live, field);
    Some(
        set.difference(&comparison.modified)
            .difference(&comparison.added)
            .difference(&comparison.removed),
    )
}

/// Rewrites the last-applied annotation from the applied configuration, the way
/// kubectl would encode it (compact JSON, trailing newline).
fn sync_last_applied(object: &mut Value, config: &Value) {
    let mut recorded = config.clone();
    if let Some(annotations) = recorded
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    {
        annotations.remove(LAST_APPLIED);
    }
    let text = format!("{}\n", super::fieldpath::go_json(&recorded));
    if let Some(annotations) = object
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    {
        annotations.insert(LAST_APPLIED.to_string(), Value::String(text));
    }
}

#[cfg(test)]
mod tests;
