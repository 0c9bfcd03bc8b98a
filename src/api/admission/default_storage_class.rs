//! DefaultStorageClass: a new PersistentVolumeClaim that names no storage
//! class gets the cluster's default one, the class annotated
//! `storageclass.kubernetes.io/is-default-class: "true"` (the newest, if
//! several are), as upstream's `plugin/pkg/admission/storage/storageclass/
//! setdefault`. A claim with `storageClassName: ""` asks for no class and
//! is left alone.

use serde_json::{Value, json};

use super::resource;
use crate::api::handlers::Api;
use crate::api::object;
use crate::api::status::ApiResult;
use crate::store::Store;

const DEFAULT_ANNOTATIONS: [&str; 2] = [
    "storageclass.kubernetes.io/is-default-class",
    "storageclass.beta.kubernetes.io/is-default-class",
];

fn is_default(class: &Value) -> bool {
    DEFAULT_ANNOTATIONS
        .iter()
        .any(|a| class["metadata"]["annotations"][*a] == "true")
}

impl<S: Store> Api<S> {
    /// Sets the default storage class of a claim that names none.
    pub(super) async fn admit_default_storage_class(&self, claim: &mut Value) -> ApiResult<()> {
        if !claim["spec"].is_object() || !claim["spec"]["storageClassName"].is_null() {
            return Ok(());
        }
        let info = resource("storage.k8s.io", "v1", "storageclasses")?;
        let classes = self
            .cached_objects(info, None, |found| found.iter().any(is_default))
            .await?;
        let default = classes.iter().filter(|c| is_default(c)).max_by(|a, b| {
            let created = |c: &Value| {
                object::meta_str(c, "creationTimestamp")
                    .unwrap_or("")
                    .to_string()
            };
            created(a)
                .cmp(&created(b))
                .then_with(|| object::name(b).cmp(&object::name(a)))
        });
        if let Some(name) = default.and_then(|c| object::name(c)) {
            claim["spec"]["storageClassName"] = json!(name);
        }
        Ok(())
    }
}
