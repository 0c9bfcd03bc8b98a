//! Behavioural tests of the CRD schema engine against upstream's texts.

use super::{FieldError, Structural};
use serde_json::{Value, json};

const PREFIX: &str = "spec.versions[0].schema.openAPIV3Schema";

fn compile(v: Value) -> Structural {
    match Structural::compile(&v, PREFIX) {
        Ok(s) => s,
        Err(e) => panic!("unexpected compile errors: {:#?}", e),
    }
}

fn compile_errs(v: Value) -> Vec<String> {
    match Structural::compile(&v, PREFIX) {
        Ok(_) => panic!("schema unexpectedly compiled"),
        Err(e) => e.iter().map(|e| e.to_string()).collect(),
    }
}

fn rendered(errs: &[FieldError]) -> Vec<String> {
    errs.iter().map(|e| e.to_string()).collect()
}

/// A cert-manager Certificate-like schema: deep nesting, enums, patterns,
/// int-or-string, list maps, embedded resources, preserved fields.
fn cert_schema() -> Value {
    json!({
        "type": "object",
        "description": "A Certificate resource.",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": {
                "type": "object",
                "required": ["secretName", "size"],
                "properties": {
                    "secretName": {"type": "string", "minLength": 1},
                    "size": {"type": "string", "enum": ["small", "medium", "large"]},
                    "replicas": {"type": "integer", "format": "int32", "minimum": 0, "maximum": 100, "default": 1},
                    "name": {"type": "string", "pattern": "^[a-z][a-z0-9-]*$", "maxLength": 20},
                    "duration": {"type": "string", "format": "duration"},
                    "uid": {"type": "string", "format": "uuid"},
                    "maxSurge": {"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}]},
                    "issuerRef": {
                        "type": "object",
                        "required": ["name"],
                        "properties": {
                            "name": {"type": "string"},
                            "kind": {"type": "string", "default": "Issuer"},
                            "group": {"type": "string", "default": "cert-manager.io"}
                        }
                    },
                    "privateKey": {
                        "type": "object",
                        "default": {},
                        "properties": {
                            "algorithm": {"type": "string", "enum": ["RSA", "ECDSA", "Ed25519"], "default": "RSA"},
                            "size": {"type": "integer", "default": 2048},
                            "rotationPolicy": {"type": "string", "nullable": true}
                        }
                    },
                    "usages": {
                        "type": "array",
                        "x-kubernetes-list-type": "set",
                        "items": {"type": "string"}
                    },
                    "ports": {
                        "type": "array",
                        "x-kubernetes-list-type": "map",
                        "x-kubernetes-list-map-keys": ["port"],
                        "items": {
                            "type": "object",
                            "required": ["port"],
                            "properties": {
                                "port": {"type": "integer"},
                                "protocol": {"type": "string", "default": "TCP"}
                            }
                        }
                    },
                    "keystores": {
                        "type": "object",
                        "properties": {
                            "jks": {
                                "type": "object",
                                "properties": {
                                    "create": {"type": "boolean"},
                                    "passwordSecretRef": {
                                        "type": "object",
                                        "properties": {
                                            "name": {"type": "string"},
                                            "key": {"type": "string", "default": "password"}
                                        }
                                    }
                                }
                            }
                        }
                    },
                    "solver": {
                        "type": "object",
                        "oneOf": [{"required": ["http01"]}, {"required": ["dns01"]}],
                        "properties": {
                            "http01": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                            "dns01": {"type": "object", "properties": {"provider": {"type": "string"}}}
                        }
                    },
                    "template": {
                        "type": "object",
                        "x-kubernetes-embedded-resource": true,
                        "x-kubernetes-preserve-unknown-fields": true
                    },
                    "labels": {
                        "type": "object",
                        "additionalProperties": {"type": "string", "maxLength": 5}
                    },
                    "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
                }
            },
            "status": {
                "type": "object",
                "properties": {
                    "conditions": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "type": {"type": "string"},
                                "status": {"type": "string", "default": "Unknown"}
                            }
                        }
                    }
                }
            }
        }
    })
}

fn valid_obj() -> Value {
    json!({
        "apiVersion": "cert-manager.io/v1",
        "kind": "Certificate",
        "metadata": {"name": "x"},
        "spec": {"secretName": "s", "size": "small"}
    })
}

fn with_spec(extra: Value) -> Value {
    let mut o = valid_obj();
    for (k, v) in extra.as_object().unwrap() {
        o["spec"][k] = v.clone();
    }
    o
}

#[test]
fn valid_object_has_no_errors() {
    let s = compile(cert_schema());
    assert!(
        s.validate(&valid_obj()).is_empty(),
        "{:?}",
        s.validate(&valid_obj())
    );
}

#[test]
fn enum_error() {
    let s = compile(cert_schema());
    let errs = s.validate(&with_spec(json!({"size": "huge"})));
    assert_eq!(
        rendered(&errs),
        vec![
            r#"spec.size: Unsupported value: "huge": supported values: "small", "medium", "large""#
        ]
    );
    assert_eq!(errs[0].reason, "FieldValueNotSupported");
    assert_eq!(errs[0].field, "spec.size");
}

#[test]
fn maximum_error() {
    let s = compile(cert_schema());
    let errs = s.validate(&with_spec(json!({"replicas": 101})));
    assert_eq!(
        rendered(&errs),
        vec![
            "spec.replicas: Invalid value: 101: spec.replicas in body should be less than or equal to 100"
        ]
    );
    assert_eq!(errs[0].reason, "FieldValueInvalid");
    let errs = s.validate(&with_spec(json!({"replicas": -1})));
    assert_eq!(
        rendered(&errs),
        vec![
            "spec.replicas: Invalid value: -1: spec.replicas in body should be greater than or equal to 0"
        ]
    );
}

#[test]
fn int32_range_error() {
    let s = compile(cert_schema());
    let errs = s.validate(&with_spec(json!({"replicas": 5_000_000_000i64})));
    let r = rendered(&errs);
    assert!(
        r.contains(&r#"<nil>: Invalid value: "": Checked value must be of type integer with format int32 in spec.replicas"#.to_string()),
        "{:?}",
        r
    );
}

#[test]
fn pattern_and_length_errors() {
    let s = compile(cert_schema());
    let errs = s.validate(&with_spec(json!({"name": "Bad_Name"})));
    assert_eq!(
        rendered(&errs),
        vec![
            r#"spec.name: Invalid value: "Bad_Name": spec.name in body should match '^[a-z][a-z0-9-]*$'"#
        ]
    );
    let errs = s.validate(&with_spec(
        json!({"name": "a-very-long-name-that-is-too-long"}),
    ));
    assert_eq!(
        rendered(&errs),
        vec!["spec.name: Too long: may not be more than 20 bytes"]
    );
    assert_eq!(errs[0].reason, "FieldValueTooLong");
    let errs = s.validate(&with_spec(json!({"secretName": ""})));
    assert_eq!(
        rendered(&errs),
        vec![
            r#"spec.secretName: Invalid value: "": spec.secretName in body should be at least 1 chars long"#
        ]
    );
}

#[test]
fn required_error() {
    let s = compile(cert_schema());
    let mut o = valid_obj();
    o["spec"].as_object_mut().unwrap().remove("size");
    let errs = s.validate(&o);
    assert_eq!(rendered(&errs), vec!["spec.size: Required value"]);
    assert_eq!(errs[0].reason, "FieldValueRequired");
    let errs = s.validate(&with_spec(json!({"issuerRef": {}})));
    assert_eq!(rendered(&errs), vec!["spec.issuerRef.name: Required value"]);
}

#[test]
fn type_errors() {
    let s = compile(cert_schema());
    let errs = s.validate(&with_spec(json!({"replicas": "three"})));
    assert_eq!(
        rendered(&errs),
        vec![
            r#"spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string""#
        ]
    );
    assert_eq!(errs[0].reason, "FieldValueTypeInvalid");
    let errs = s.validate(&with_spec(json!({"secretName": null})));
    assert_eq!(
        rendered(&errs),
        vec![
            r#"spec.secretName: Invalid value: "null": spec.secretName in body must be of type string: "null""#
        ]
    );
    // nullable accepts null
    let errs = s.validate(&with_spec(json!({"privateKey": {"rotationPolicy": null}})));
    assert!(errs.is_empty(), "{:?}", errs);
}

#[test]
fn formats() {
    let s = compile(cert_schema());
    assert!(
        s.validate(&with_spec(
            json!({"duration": "2160h", "uid": "0f8fad5b-d9cb-469f-a165-70867728950e"})
        ))
        .is_empty()
    );
    let errs = s.validate(&with_spec(json!({"uid": "nope"})));
    assert_eq!(
        rendered(&errs),
        vec![r#"spec.uid: Invalid value: "nope": spec.uid in body must be of type uuid: "nope""#]
    );
    let errs = s.validate(&with_spec(json!({"duration": "soon"})));
    assert_eq!(
        rendered(&errs),
        vec![
            r#"spec.duration: Invalid value: "soon": spec.duration in body must be of type duration: "soon""#
        ]
    );
}

#[test]
fn one_of() {
    let s = compile(cert_schema());
    assert!(
        s.validate(&with_spec(json!({"solver": {"http01": {}}})))
            .is_empty()
    );
    let errs = s.validate(&with_spec(json!({"solver": {}})));
    assert_eq!(
        rendered(&errs),
        vec![
            r#"<nil>: Invalid value: "": "spec.solver" must validate one and only one schema (oneOf). Found none valid"#,
            "spec.solver.http01: Required value",
        ]
    );
    let errs = s.validate(&with_spec(json!({"solver": {"http01": {}, "dns01": {}}})));
    assert_eq!(
        rendered(&errs),
        vec![
            r#"<nil>: Invalid value: "": "spec.solver" must validate one and only one schema (oneOf). Found 2 valid alternatives"#
        ]
    );
}

#[test]
fn int_or_string() {
    let s = compile(cert_schema());
    assert!(s.validate(&with_spec(json!({"maxSurge": 3}))).is_empty());
    assert!(
        s.validate(&with_spec(json!({"maxSurge": "30%"})))
            .is_empty()
    );
    let errs = s.validate(&with_spec(json!({"maxSurge": true})));
    let r = rendered(&errs);
    assert!(
        r.contains(&r#"spec.maxSurge: Invalid value: "boolean": spec.maxSurge in body must be of type integer,string: "boolean""#.to_string()),
        "{:?}",
        r
    );
}

#[test]
fn embedded_resource() {
    let s = compile(cert_schema());
    let errs = s.validate(&with_spec(
        json!({"template": {"apiVersion": "v1", "spec": {"anything": 1}}}),
    ));
    assert_eq!(rendered(&errs), vec!["spec.template.kind: Required value"]);
    let ok = with_spec(
        json!({"template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}}),
    );
    assert!(s.validate(&ok).is_empty());
    let errs = s.validate(&with_spec(
        json!({"template": {"apiVersion": "a/b/c", "kind": "Pod_X"}}),
    ));
    assert_eq!(
        rendered(&errs),
        vec![
            r#"spec.template.apiVersion: Invalid value: "a/b/c": unexpected GroupVersion string: a/b/c"#,
            r#"spec.template.kind: Invalid value: "Pod_X": may have mixed case, but should otherwise match: a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"#,
        ]
    );
}

#[test]
fn preserve_unknown_and_pruning() {
    let s = compile(cert_schema());
    let mut o = with_spec(json!({
        "unknownField": 1,
        "extra": {"anything": {"deep": true}},
        "solver": {"http01": {"ingress": {"class": "nginx"}}, "bogus": 1},
        "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "bogusMeta": 1}, "spec": {"x": 1}},
        "ports": [{"port": 80, "junk": "x"}],
        "labels": {"a": "b"}
    }));
    o["status"] = json!({"conditions": [{"type": "Ready", "reason": "dropped"}]});
    o["topLevelJunk"] = json!(true);
    let pruned = s.prune(&mut o);
    assert_eq!(
        pruned,
        vec![
            ".spec.ports[0].junk",
            ".spec.solver.bogus",
            ".spec.template.metadata.bogusMeta",
            ".spec.unknownField",
            ".status.conditions[0].reason",
            ".topLevelJunk",
        ]
    );
    assert_eq!(o["spec"]["extra"], json!({"anything": {"deep": true}}));
    assert_eq!(
        o["spec"]["solver"]["http01"],
        json!({"ingress": {"class": "nginx"}})
    );
    assert_eq!(o["spec"]["template"]["spec"], json!({"x": 1}));
    assert_eq!(o["spec"]["template"]["metadata"], json!({"name": "p"}));
    assert_eq!(o["spec"]["labels"], json!({"a": "b"}));
    assert_eq!(o["metadata"], json!({"name": "x"}));
    assert_eq!(o["apiVersion"], json!("cert-manager.io/v1"));
    assert!(o["spec"].get("unknownField").is_none());
}

#[test]
fn defaults_nested_and_items() {
    let s = compile(cert_schema());
    let mut o = with_spec(json!({
        "issuerRef": {"name": "ca", "kind": "ClusterIssuer"},
        "ports": [{"port": 80}, {"port": 443, "protocol": "UDP"}],
        "keystores": {"jks": {"passwordSecretRef": {"name": "p"}}},
        "replicas": null
    }));
    o["status"] = json!({"conditions": [{"type": "Ready"}]});
    s.apply_defaults(&mut o);
    let spec = &o["spec"];
    assert_eq!(spec["replicas"], json!(1), "non-nullable null is defaulted");
    assert_eq!(
        spec["issuerRef"],
        json!({"name": "ca", "kind": "ClusterIssuer", "group": "cert-manager.io"})
    );
    assert_eq!(
        spec["privateKey"],
        json!({"algorithm": "RSA", "size": 2048}),
        "defaults inside defaults"
    );
    assert_eq!(
        spec["ports"],
        json!([{"port": 80, "protocol": "TCP"}, {"port": 443, "protocol": "UDP"}])
    );
    assert_eq!(
        spec["keystores"]["jks"]["passwordSecretRef"],
        json!({"name": "p", "key": "password"})
    );
    assert_eq!(o["status"]["conditions"][0]["status"], json!("Unknown"));
    // nullable null stays null
    let mut o = with_spec(json!({"privateKey": {"rotationPolicy": null}}));
    s.apply_defaults(&mut o);
    assert_eq!(o["spec"]["privateKey"]["rotationPolicy"], Value::Null);
}

#[test]
fn list_type_map_and_set_duplicates() {
    let s = compile(cert_schema());
    let errs = s.validate(&with_spec(json!({
        "ports": [{"port": 80}, {"port": 443}, {"port": 80, "protocol": "UDP"}],
        "usages": ["a", "b", "a", "a"]
    })));
    assert_eq!(
        rendered(&errs),
        vec![
            r#"spec.ports[2]: Duplicate value: {"port":80}"#,
            r#"spec.usages[2]: Duplicate value: "a""#
        ]
    );
    assert_eq!(errs[0].reason, "FieldValueDuplicate");
}

#[test]
fn additional_properties_and_counts() {
    let s = compile(cert_schema());
    let errs = s.validate(&with_spec(json!({"labels": {"k": "toolong"}})));
    assert_eq!(
        rendered(&errs),
        vec!["spec.labels.k: Too long: may not be more than 5 bytes"]
    );
    let s = compile(
        json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "list": {"type": "array", "maxItems": 2, "minItems": 1, "items": {"type": "number", "multipleOf": 0.5}},
            "m": {"type": "object", "maxProperties": 1, "additionalProperties": {"type": "integer"}}
        }}}}),
    );
    let errs = s.validate(&json!({"spec": {"list": [1.5, 0.3, 2], "m": {"a": 1, "b": 2}}}));
    assert_eq!(
        rendered(&errs),
        vec![
            "spec.list[1]: Invalid value: 0.3: spec.list[1] in body should be a multiple of 0.5",
            // Upstream quirk kept on purpose: integral JSON numbers decode to
            // int64 and kube-openapi then truncates the factor to int64(0.5).
            "spec.list[2]: Invalid value: 0: factor MultipleOf declared for spec.list[2] must be positive: 0",
            "spec.list: Too many: 3: must have at most 2 items",
            "spec.m: Too many: 2: must have at most 1 item",
        ]
    );
    let errs = s.validate(&json!({"spec": {"list": []}}));
    assert_eq!(
        rendered(&errs),
        vec!["spec.list: Invalid value: 0: spec.list in body should have at least 1 items"]
    );
}

#[test]
fn structural_missing_type() {
    let errs = compile_errs(
        json!({"type": "object", "properties": {"spec": {"properties": {"a": {"type": "string"}}}}}),
    );
    assert_eq!(
        errs,
        vec![format!(
            "{}.properties[spec].type: Required value: must not be empty for specified object fields",
            PREFIX
        )]
    );
}

#[test]
fn structural_failures() {
    let errs = compile_errs(json!({
        "properties": {
            "metadata": {"type": "object", "properties": {"labels": {"type": "object"}}},
            "spec": {
                "type": "object",
                "properties": {
                    "items": {"type": "array"},
                    "x": {"type": "string", "anyOf": [{"type": "string"}]},
                    "y": {"type": "object", "allOf": [{"properties": {"z": {"type": "string"}}}]},
                    "e": {"x-kubernetes-embedded-resource": true}
                }
            }
        }
    }));
    let p = PREFIX;
    assert_eq!(
        errs,
        vec![
            format!(
                "{p}.properties[metadata]: Forbidden: must not specify anything other than name and generateName, but metadata is implicitly specified"
            ),
            format!(
                "{p}.properties[spec].properties[e].properties: Required value: must not be empty if x-kubernetes-embedded-resource is true without x-kubernetes-preserve-unknown-fields"
            ),
            format!(
                "{p}.properties[spec].properties[e].type: Required value: must be object if x-kubernetes-embedded-resource is true"
            ),
            format!(
                "{p}.properties[spec].properties[items].items: Required value: must be specified"
            ),
            format!(
                "{p}.properties[spec].properties[x].anyOf[0].type: Forbidden: must be empty to be structural"
            ),
            format!(
                "{p}.properties[spec].properties[y].allOf[0].properties[z].type: Forbidden: must be empty to be structural"
            ),
            format!("{p}.type: Required value: must not be empty at the root"),
        ]
    );
}

#[test]
fn crd_schema_checks() {
    let errs = compile_errs(json!({
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "properties": {
                    "l": {"type": "array", "uniqueItems": true, "items": {"type": "string"}},
                    "t": {"type": "strin"},
                    "m": {"type": "array", "x-kubernetes-list-type": "map", "items": {"type": "object", "properties": {"k": {"type": "string"}}}},
                    "p": {"type": "string", "pattern": "(unclosed"}
                }
            }
        }
    }));
    let p = PREFIX;
    assert!(errs.contains(&format!("{p}.properties[spec].properties[l].uniqueItems: Forbidden: uniqueItems cannot be set to true since the runtime complexity becomes quadratic")), "{errs:#?}");
    assert!(errs.contains(&format!(r#"{p}.properties[spec].properties[t].type: Unsupported value: "strin": supported values: "array", "boolean", "integer", "number", "object", "string""#)), "{errs:#?}");
    assert!(errs.contains(&format!("{p}.properties[spec].properties[m].x-kubernetes-list-map-keys: Required value: must not be empty if x-kubernetes-list-type is map")), "{errs:#?}");
    assert!(errs.contains(&format!(r#"{p}.properties[spec].properties[p].pattern: Invalid value: "(unclosed": must be a valid regular expression, but isn't: error parsing regexp: missing closing ): `(unclosed`"#)), "{errs:#?}");
}

#[test]
fn defaults_must_validate_and_be_pruned() {
    let errs = compile_errs(json!({
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "properties": {
                    "n": {"type": "integer", "maximum": 10, "default": 11},
                    "o": {"type": "object", "properties": {"a": {"type": "string"}}, "default": {"a": "x", "b": 1}}
                }
            }
        }
    }));
    let p = PREFIX;
    assert_eq!(
        errs,
        vec![
            format!(
                "{p}.properties[spec].properties[n].default: Invalid value: 11:  in body should be less than or equal to 10"
            ),
            format!(
                r#"{p}.properties[spec].properties[o].default: Invalid value: {{"a":"x","b":1}}: must not have unknown fields"#
            ),
        ]
    );
    let errs = compile_errs(
        json!({"type": "object", "properties": {"metadata": {"type": "object", "default": {}}}}),
    );
    assert!(
        errs.contains(&format!(
            "{p}.properties[metadata].default: Forbidden: must not be set in top-level metadata"
        )),
        "{errs:#?}"
    );
}

#[test]
fn deep_schema_is_refused() {
    let mut s = json!({"type": "string"});
    for _ in 0..200 {
        s = json!({"type": "object", "properties": {"a": s}});
    }
    let errs = match Structural::compile(&s, PREFIX) {
        Ok(_) => panic!("deep schema compiled"),
        Err(e) => e,
    };
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0]
            .message
            .contains("must not be nested deeper than 64 levels"),
        "{:?}",
        errs[0]
    );
}

#[test]
fn large_set_is_linear() {
    let s = compile(
        json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "s": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "integer"}}
        }}}}),
    );
    let mut items: Vec<Value> = (0..10_000).map(|i| json!(i)).collect();
    items.push(json!(5));
    let errs = s.validate(&json!({"spec": {"s": items}}));
    assert_eq!(rendered(&errs), vec!["spec.s[10000]: Duplicate value: 5"]);
}

#[test]
fn go_regex_translation() {
    let s = compile(
        json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "d": {"type": "string", "pattern": "^\\d+$"}
        }}}}),
    );
    // RE2's \d is ASCII-only
    assert_eq!(s.validate(&json!({"spec": {"d": "١٢٣"}})).len(), 1);
    assert!(s.validate(&json!({"spec": {"d": "123"}})).is_empty());
}

#[test]
fn root_view() {
    let s = compile(cert_schema());
    let spec = &s.root().properties["spec"];
    assert_eq!(spec.type_.as_deref(), Some("object"));
    assert!(spec.properties["maxSurge"].int_or_string);
    assert!(spec.properties["template"].embedded_resource);
    assert_eq!(spec.properties["ports"].list_type.as_deref(), Some("map"));
    assert_eq!(
        spec.properties["ports"].list_map_keys,
        vec!["port".to_string()]
    );
}

#[test]
fn structural_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Structural>();
}

#[test]
fn float_and_exclusive_bounds() {
    let s = compile(
        json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "r": {"type": "number", "maximum": 1.5, "exclusiveMaximum": true, "minimum": 1000000, "exclusiveMinimum": false}
        }}}}),
    );
    let errs = s.validate(&json!({"spec": {"r": 2.5}}));
    assert_eq!(
        rendered(&errs),
        vec![
            "spec.r: Invalid value: 2.5: spec.r in body should be greater than or equal to 1e+06",
            "spec.r: Invalid value: 2.5: spec.r in body should be less than 1.5",
        ]
    );
}

#[test]
fn enum_with_numbers() {
    let s = compile(
        json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "n": {"type": "integer", "enum": [1, 2, 3]}
        }}}}),
    );
    assert!(s.validate(&json!({"spec": {"n": 2}})).is_empty());
    let errs = s.validate(&json!({"spec": {"n": 5}}));
    assert_eq!(
        rendered(&errs),
        vec![r#"spec.n: Unsupported value: 5: supported values: "1", "2", "3""#]
    );
}

#[test]
fn completeness_and_metadata_name_only() {
    let errs = compile_errs(json!({
        "type": "object",
        "properties": {"spec": {"type": "object"}},
        "allOf": [{"properties": {"missing": {"maxLength": 3}}}]
    }));
    assert_eq!(
        errs,
        vec![format!(
            "{PREFIX}.properties[missing]: Required value: because it is defined in {PREFIX}.allOf[0].properties[missing]"
        )]
    );
    let s = compile(json!({
        "type": "object",
        "properties": {"metadata": {"type": "object", "properties": {"name": {"type": "string", "maxLength": 10}}}}
    }));
    assert!(
        s.validate(&json!({"metadata": {"name": "way-too-long-name"}}))
            .is_empty(),
        "root metadata is the caller's"
    );
}

#[test]
fn nested_type_in_value_validation_and_int_or_string_pattern() {
    // Upstream tolerates exactly anyOf [{type: integer}, {type: string}]
    // (the int-or-string pattern), also as allOf[0].anyOf; any other type
    // inside a value validation is not structural.
    compile(
        json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "a": {"x-kubernetes-int-or-string": true, "allOf": [{"anyOf": [{"type": "integer"}, {"type": "string"}]}]},
            "b": {"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}]}
        }}}}),
    );
    let errs = compile_errs(
        json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "a": {"type": "string", "anyOf": [{"type": "string"}, {"type": "integer"}]}
        }}}}),
    );
    assert_eq!(
        errs,
        vec![
            format!(
                "{PREFIX}.properties[spec].properties[a].anyOf[0].type: Forbidden: must be empty to be structural"
            ),
            format!(
                "{PREFIX}.properties[spec].properties[a].anyOf[1].type: Forbidden: must be empty to be structural"
            ),
        ]
    );
}
