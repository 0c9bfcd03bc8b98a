//! The message table: which fields each Kubernetes protobuf message has, and how their values
//! map to upstream's JSON.
//!
//! The table is `assets/protobuf/fields.tsv`, written by `tools/gen_protobuf_table.py` from the
//! k8s-pb crate (field numbers and types) and upstream's Go API types (JSON names and
//! `omitempty`/pointer/inline facts); see that script for the format. It is embedded in the
//! binary and parsed once, on the first protobuf request. Parsing checks that every message
//! reference resolves, so decoding can index messages without further checks; a broken table
//! is reported as an error (and caught by a unit test), never a panic.

use std::collections::HashMap;
use std::sync::OnceLock;

const TABLE: &str = include_str!("../../../assets/protobuf/fields.tsv");

/// A scalar protobuf type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Scalar {
    /// UTF-8 text (invalid sequences become U+FFFD, as Go's JSON encoder does).
    String,
    /// Raw bytes, base64 in JSON.
    Bytes,
    /// Varint boolean.
    Bool,
    /// Varint, truncated to 32 bits.
    Int32,
    /// Varint.
    Int64,
    /// Little-endian IEEE 754 double.
    Double,
}

/// A field's type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    /// A scalar.
    Scalar(Scalar),
    /// A message, by index into [`Schema::messages`].
    Message(usize),
    /// `map<key, value>`; the value is never itself a map.
    Map(Scalar, Box<Kind>),
}

/// When upstream's JSON leaves a field out although the wire carries it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Omit {
    /// Always written (pointers, fields without `omitempty`, structs).
    Never,
    /// Non-pointer `omitempty` field: dropped when it holds Go's zero value.
    Empty,
    /// `omitzero` struct: dropped when every member is zero.
    Zero,
}

/// One field of a message.
#[derive(Clone, Debug)]
pub(super) struct Field {
    /// Protobuf field number.
    pub number: u32,
    /// JSON property name (`-` for inline fields).
    pub json: String,
    /// Value type.
    pub kind: Kind,
    /// Whether the field is a list.
    pub repeated: bool,
    /// Whether the value's members are merged into the parent object (Go embedding).
    pub inline: bool,
    /// When to drop the value from the JSON.
    pub omit: Omit,
    /// What upstream's JSON writes when the wire leaves the field out.
    pub absent: Absent,
}

/// What upstream's JSON holds for a field the wire leaves out (Go's zero value of the field).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Absent {
    /// Nothing: the field is `omitempty`, `omitzero` or unknown to the Go types.
    Skip,
    /// `null`: a nil pointer without `omitempty`.
    Null,
    /// The zero value: a non-pointer field without `omitempty`, or a struct.
    Zero,
}

/// Messages whose JSON is not an object of their fields (upstream has a custom marshaller).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Special {
    /// An ordinary message: a JSON object.
    None,
    /// `metav1.Time`: RFC 3339 seconds.
    Time,
    /// `metav1.MicroTime`: RFC 3339 with microseconds.
    MicroTime,
    /// `metav1.Duration`: Go's duration string.
    Duration,
    /// `resource.Quantity`: its string.
    Quantity,
    /// `intstr.IntOrString`: a number or a string.
    IntOrString,
    /// `RawExtension`, `FieldsV1`, apiextensions `JSON`: embedded JSON bytes.
    RawJson,
    /// `JSONSchemaPropsOrArray`: a schema or a list of schemas.
    OrArray,
    /// `JSONSchemaPropsOrBool`: a schema or a boolean.
    OrBool,
    /// `JSONSchemaPropsOrStringArray`: a schema or a list of strings.
    OrStrings,
    /// A Go named slice wrapped in a message (`Verbs`): the `items` list.
    Wrap,
}

/// One message.
#[derive(Debug)]
pub(super) struct Message {
    /// Full name, e.g. `api.core.v1.Pod`.
    pub name: String,
    /// How its JSON is shaped.
    pub special: Special,
    /// Fields, sorted by number.
    pub fields: Vec<Field>,
    /// Indices into `fields` in the Go struct's declaration order (the
    /// table's line order), which is the order of upstream's JSON.
    pub order: Vec<usize>,
}

impl Message {
    /// Index of the field with `number`, if the message has one.
    pub(super) fn field_index(&self, number: u32) -> Option<usize> {
        self.fields.binary_search_by_key(&number, |f| f.number).ok()
    }
}

/// The parsed table.
#[derive(Debug)]
pub(super) struct Schema {
    /// All messages.
    pub messages: Vec<Message>,
    by_name: HashMap<String, usize>,
    packages: HashMap<String, String>,
}

impl Schema {
    /// The message for a kind: `<package of apiVersion>.<kind>`, else the meta/v1 message of
    /// that name (`DeleteOptions`, `Status`, ... are registered in every group version).
    pub(super) fn find_kind(&self, api_version: &str, kind: &str) -> Option<usize> {
        let in_package = |package: &str| {
            let key = format!("{package}.{kind}").to_ascii_lowercase();
            self.by_name.get(&key).copied()
        };
        self.packages
            .get(api_version)
            .and_then(|package| in_package(package))
            .or_else(|| in_package(self.packages.get("meta.k8s.io/v1")?))
    }
}

/// The embedded table, parsed on first use.
pub(super) fn schema() -> Result<&'static Schema, &'static str> {
    static SCHEMA: OnceLock<Result<Schema, String>> = OnceLock::new();
    SCHEMA
        .get_or_init(|| parse(TABLE))
        .as_ref()
        .map_err(String::as_str)
}

/// Parses a table in the generator's format.
pub(super) fn parse(text: &str) -> Result<Schema, String> {
    let mut by_name = HashMap::new();
    let mut packages = HashMap::new();
    let mut raw: Vec<(String, Special, Vec<&str>)> = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let at = |what: &str| format!("line {}: {what}", index + 1);
        let cols: Vec<&str> = line.split('\t').collect();
        match cols.as_slice() {
            [] | [""] => {}
            [first, ..] if first.starts_with('#') => {}
            ["V", version, package] => {
                packages.insert((*version).to_owned(), (*package).to_owned());
            }
            ["M", name, special] => {
                let special = parse_special(special).ok_or_else(|| at("unknown special"))?;
                let key = name.to_ascii_lowercase();
                if by_name.insert(key, raw.len()).is_some() {
                    return Err(at("duplicate message"));
                }
                raw.push(((*name).to_owned(), special, Vec::new()));
            }
            [_, _, _, _] => match raw.last_mut() {
                Some((_, _, lines)) => lines.push(line),
                None => return Err(at("field before any message")),
            },
            _ => return Err(at("malformed line")),
        }
    }
    let mut messages = Vec::with_capacity(raw.len());
    for (name, special, lines) in &raw {
        let package = name.rsplit_once('.').map_or("", |(p, _)| p);
        let mut fields = lines
            .iter()
            .map(|line| parse_field(line, package, &by_name))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("{name}: {e}"))?;
        let declared: Vec<u32> = fields.iter().map(|f| f.number).collect();
        fields.sort_by_key(|f| f.number);
        if fields.windows(2).any(|w| w[0].number == w[1].number) {
            return Err(format!("{name}: duplicate field number"));
        }
        let order = declared
            .iter()
            .filter_map(|n| fields.binary_search_by_key(n, |f| f.number).ok())
            .collect();
        messages.push(Message {
            name: name.clone(),
            special: *special,
            fields,
            order,
        });
    }
    Ok(Schema {
        messages,
        by_name,
        packages,
    })
}

fn parse_special(text: &str) -> Option<Special> {
    Some(match text {
        "-" => Special::None,
        "time" => Special::Time,
        "microtime" => Special::MicroTime,
        "duration" => Special::Duration,
        "quantity" => Special::Quantity,
        "intorstring" => Special::IntOrString,
        "rawjson" => Special::RawJson,
        "orarray" => Special::OrArray,
        "orbool" => Special::OrBool,
        "orstrings" => Special::OrStrings,
        "wrap" => Special::Wrap,
        _ => return None,
    })
}

fn parse_field(
    line: &str,
    package: &str,
    by_name: &HashMap<String, usize>,
) -> Result<Field, String> {
    let cols: Vec<&str> = line.split('\t').collect();
    let [number, json, kind, flags] = cols.as_slice() else {
        return Err(format!("malformed field line {line:?}"));
    };
    let number = number
        .parse::<u32>()
        .map_err(|_| format!("bad field number in {line:?}"))?;
    let kind = parse_kind(kind, package, by_name)?;
    let omit = if flags.contains('z') {
        Omit::Zero
    } else if flags.contains('e') {
        Omit::Empty
    } else {
        Omit::Never
    };
    Ok(Field {
        number,
        json: (*json).to_owned(),
        kind,
        repeated: flags.contains('r'),
        inline: flags.contains('i'),
        omit,
        absent: if flags.contains('n') {
            Absent::Zero
        } else if flags.contains('u') {
            Absent::Null
        } else {
            Absent::Skip
        },
    })
}

fn parse_kind(text: &str, package: &str, by_name: &HashMap<String, usize>) -> Result<Kind, String> {
    if let Some(rest) = text.strip_prefix("map:") {
        let (key, value) = rest
            .split_once(':')
            .ok_or_else(|| format!("malformed map type {text:?}"))?;
        let Some(key) = parse_scalar(key) else {
            return Err(format!("map key {key:?} is not a scalar"));
        };
        let value = parse_kind(value, package, by_name)?;
        if matches!(value, Kind::Map(..)) {
            return Err(format!("map of maps {text:?}"));
        }
        return Ok(Kind::Map(key, Box::new(value)));
    }
    if let Some(scalar) = parse_scalar(text) {
        return Ok(Kind::Scalar(scalar));
    }
    let full = if text.contains('.') {
        text.to_ascii_lowercase()
    } else {
        format!("{package}.{text}").to_ascii_lowercase()
    };
    by_name
        .get(&full)
        .map(|&index| Kind::Message(index))
        .ok_or_else(|| format!("unknown message {text:?}"))
}

fn parse_scalar(text: &str) -> Option<Scalar> {
    Some(match text {
        "string" => Scalar::String,
        "bytes" => Scalar::Bytes,
        "bool" => Scalar::Bool,
        "int32" => Scalar::Int32,
        "int64" => Scalar::Int64,
        "double" => Scalar::Double,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_table_parses_and_knows_core_kinds() {
        let schema = schema().unwrap();
        let pod = schema.find_kind("v1", "Pod").unwrap();
        assert_eq!(schema.messages[pod].name, "api.core.v1.Pod");
        let deployment = schema.find_kind("apps/v1", "Deployment").unwrap();
        assert_eq!(schema.messages[deployment].name, "api.apps.v1.Deployment");
    }

    #[test]
    fn every_kind_kubectl_and_typed_clients_send_is_known() {
        let schema = schema().unwrap();
        let kinds = [
            ("v1", "ConfigMap"),
            ("v1", "Secret"),
            ("v1", "Namespace"),
            ("v1", "ServiceAccount"),
            ("v1", "Service"),
            ("v1", "Pod"),
            ("v1", "Binding"),
            ("v1", "Event"),
            ("v1", "ResourceQuota"),
            ("v1", "PersistentVolumeClaim"),
            ("apps/v1", "DaemonSet"),
            ("apps/v1", "StatefulSet"),
            ("apps/v1", "ReplicaSet"),
            ("batch/v1", "Job"),
            ("batch/v1", "CronJob"),
            ("rbac.authorization.k8s.io/v1", "Role"),
            ("rbac.authorization.k8s.io/v1", "ClusterRole"),
            ("rbac.authorization.k8s.io/v1", "RoleBinding"),
            ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
            ("policy/v1", "PodDisruptionBudget"),
            ("policy/v1", "Eviction"),
            ("networking.k8s.io/v1", "Ingress"),
            ("networking.k8s.io/v1", "NetworkPolicy"),
            ("coordination.k8s.io/v1", "Lease"),
            ("scheduling.k8s.io/v1", "PriorityClass"),
            ("autoscaling/v2", "HorizontalPodAutoscaler"),
            ("autoscaling/v1", "Scale"),
            ("authentication.k8s.io/v1", "TokenRequest"),
            ("meta.k8s.io/v1", "DeleteOptions"),
            ("v1", "DeleteOptions"),
            ("discovery.k8s.io/v1", "EndpointSlice"),
            ("storage.k8s.io/v1", "StorageClass"),
            ("apiregistration.k8s.io/v1", "APIService"),
        ];
        for (api_version, kind) in kinds {
            let index = schema.find_kind(api_version, kind);
            let name = index
                .map(|i| schema.messages[i].name.as_str())
                .unwrap_or_default();
            assert!(
                name.ends_with(&format!(".{kind}")),
                "{api_version} {kind}: {name:?}"
            );
        }
    }

    #[test]
    fn options_kinds_fall_back_to_meta_v1() {
        let schema = schema().unwrap();
        let index = schema.find_kind("apps/v1", "DeleteOptions").unwrap();
        assert_eq!(
            schema.messages[index].name,
            "apimachinery.pkg.apis.meta.v1.DeleteOptions"
        );
    }

    #[test]
    fn kinds_match_case_insensitively_against_prost_names() {
        let schema = schema().unwrap();
        let index = schema
            .find_kind("apiextensions.k8s.io/v1", "CustomResourceDefinition")
            .unwrap();
        assert!(
            schema.messages[index]
                .name
                .ends_with("CustomResourceDefinition")
        );
        assert!(schema.find_kind("storage.k8s.io/v1", "CSIDriver").is_some());
    }

    #[test]
    fn object_meta_fields_carry_omit_flags() {
        let schema = schema().unwrap();
        let meta = schema
            .by_name
            .get("apimachinery.pkg.apis.meta.v1.objectmeta")
            .map(|&i| &schema.messages[i])
            .unwrap();
        let name = &meta.fields[meta.field_index(1).unwrap()];
        assert_eq!((name.json.as_str(), name.omit), ("name", Omit::Empty));
        let created = &meta.fields[meta.field_index(8).unwrap()];
        assert_eq!(created.omit, Omit::Zero);
    }

    #[test]
    fn unknown_message_reference_is_rejected() {
        let err = parse("M\ta.B\t-\n1\tx\tMissing\t-\n").unwrap_err();
        assert!(err.contains("unknown message"), "{err}");
    }

    #[test]
    fn field_before_message_is_rejected() {
        assert!(parse("1\tx\tstring\t-\n").is_err());
    }
}
