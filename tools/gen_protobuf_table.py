#!/usr/bin/env python3
"""Generates assets/protobuf/fields.tsv, the field table of kelp's protobuf request decoder.

kelp's apiserver keeps objects as JSON, but kubectl and client-go send built-in kinds as
Kubernetes protobuf (`application/vnd.kubernetes.protobuf`). src/api/protobuf/ decodes such
bodies into the JSON upstream would produce, driven by the table this script writes.

Sources (both are read, nothing is downloaded):

* the k8s-pb 0.9.0 crate (prost bindings of upstream's generated.proto files): which messages
  exist, their field numbers, proto types, repeated/map labels and message references;
* upstream's Go API types (checkouts of k8s.io/api, k8s.io/apimachinery and, optionally,
  k8s.io/apiextensions-apiserver, k8s.io/kube-aggregator, k8s.io/metrics): for every field, by
  its `protobuf:"...,<number>,..."` struct tag, the JSON name, `omitempty`/`omitzero`, whether
  the Go field is a pointer, and `json:",inline"` embedding. Those decide which zero values
  upstream's JSON drops and which struct fields it flattens into their parent; the proto files
  carry none of that. Named slice types that go-to-protobuf wraps in a message (`Verbs`,
  `ExtraValue`) are found here too.

A field k8s-pb has but the Go sources lack keeps a lowerCamelCase name derived from prost's
snake_case one and no omit flags. A field the Go sources have but k8s-pb lacks (added after
k8s-pb was cut) is added when its Go type is a scalar, a list of scalars, []byte or a message
k8s-pb has; otherwise it is left out and the decoder skips it like any unknown field. Both
cases are listed on stderr.

To regenerate (from the kelp repo root):

    for r in api apimachinery apiextensions-apiserver kube-aggregator metrics; do
      git clone -q --depth 1 -b kubernetes-1.37.0 https://github.com/kubernetes/$r /tmp/k8s/$r
    done
    python3 tools/gen_protobuf_table.py --go-src /tmp/k8s/* --label "k8s-pb 0.9.0, Go types at ..." \
      [--k8s-pb ~/.cargo/registry/src/index.crates.io-*/k8s-pb-0.9.0]

The committed table was generated from Go types at kubernetes-1.37.0-beta.0 (api, apimachinery,
apiextensions-apiserver) and kubernetes-1.37.0-alpha.2 (kube-aggregator, metrics), the newest
tags at hand when it was written.

`--k8s-pb` defaults to the crate in the local cargo registry (a `cargo fetch` of any project
depending on k8s-pb 0.9.0 puts it there). The output path defaults to
assets/protobuf/fields.tsv next to this script's parent directory.

Output format (tab-separated, `#` lines are comments):

    V  <apiVersion>  <package>           a group/version served by a package's kinds
    M  <package>.<Message>  <special>    starts a message; special is `-` or one of SPECIALS
    <number>  <jsonName>  <type>  <flags>   a field of the preceding message, in the Go
                                            struct's declaration order

`type` is string, bytes, bool, int32, int64, double, a message (`Name` in the same package or
`package.Name`) or `map:<key type>:<value type>`. `flags` is `-` or letters: r repeated,
i inline (merge the message's JSON into the parent), e drop Go zero values (non-pointer
`omitempty` field), z drop zero structs (`omitzero`), n write Go's zero value when the wire
leaves the field out (non-pointer field that upstream's JSON always writes), u write `null`
when the wire leaves the field out (pointer without `omitempty`).
"""

import argparse
import glob
import os
import re
import sys
from collections import defaultdict

# Messages whose JSON form is not an object of their fields (custom MarshalJSON upstream).
SPECIALS = {
    "apimachinery.pkg.apis.meta.v1.Time": "time",
    "apimachinery.pkg.apis.meta.v1.MicroTime": "microtime",
    "apimachinery.pkg.apis.meta.v1.Duration": "duration",
    "apimachinery.pkg.apis.meta.v1.FieldsV1": "rawjson",
    "apimachinery.pkg.api.resource.Quantity": "quantity",
    "apimachinery.pkg.api.resource.QuantityValue": "quantity",
    "apimachinery.pkg.util.intstr.IntOrString": "intorstring",
    "apimachinery.pkg.runtime.RawExtension": "rawjson",
    "apiextensions_apiserver.pkg.apis.apiextensions.v1.JSON": "rawjson",
    "apiextensions_apiserver.pkg.apis.apiextensions.v1beta1.JSON": "rawjson",
    "apiextensions_apiserver.pkg.apis.apiextensions.v1.JSONSchemaPropsOrArray": "orarray",
    "apiextensions_apiserver.pkg.apis.apiextensions.v1beta1.JSONSchemaPropsOrArray": "orarray",
    "apiextensions_apiserver.pkg.apis.apiextensions.v1.JSONSchemaPropsOrBool": "orbool",
    "apiextensions_apiserver.pkg.apis.apiextensions.v1beta1.JSONSchemaPropsOrBool": "orbool",
    "apiextensions_apiserver.pkg.apis.apiextensions.v1.JSONSchemaPropsOrStringArray": "orstrings",
    "apiextensions_apiserver.pkg.apis.apiextensions.v1beta1.JSONSchemaPropsOrStringArray":
        "orstrings",
}

# Go module path -> k8s-pb top-level module.
GO_MODULES = {
    "k8s.io/api": "api",
    "k8s.io/apimachinery": "apimachinery",
    "k8s.io/apiextensions-apiserver": "apiextensions_apiserver",
    "k8s.io/kube-aggregator": "kube_aggregator",
    "k8s.io/metrics": "metrics",
}

# k8s-pb API group directories whose group name is not `<dir>.k8s.io`.
GROUP_NAMES = {
    "core": "",
    "apps": "apps",
    "batch": "batch",
    "autoscaling": "autoscaling",
    "policy": "policy",
    "extensions": "extensions",
    "rbac": "rbac.authorization.k8s.io",
    "apiserverinternal": "internal.apiserver.k8s.io",
    "flowcontrol": "flowcontrol.apiserver.k8s.io",
}

SCALARS = {
    "string": "string",
    "bytes": "bytes",
    "bool": "bool",
    "int32": "int32",
    "int64": "int64",
    "double": "double",
}

PROST_ATTR = re.compile(r"#\[prost\((.*)\)\]\s*$")
STRUCT_START = re.compile(r"^pub struct (\w+) \{")
FIELD_START = re.compile(r"^\s*pub (?:r#)?(\w+):\s*(.*)$")


# ---------------------------------------------------------------- k8s-pb (prost) parsing


def module_of(src_root, path):
    rel = os.path.relpath(os.path.dirname(path), src_root)
    return [] if rel == "." else rel.split(os.sep)


def resolve_rust_path(module, path):
    """Resolves a prost type path such as `super::super::meta::v1::Time` to a dotted name."""
    parts = [p for p in path.split("::") if p]
    if parts and parts[0] == "crate":
        base, parts = [], parts[1:]
    else:
        base = list(module)
        while parts and parts[0] == "super":
            base.pop()
            parts = parts[1:]
    return ".".join(base + parts)


def strip_wrappers(rust_type):
    """The message type inside Option<...>, Vec<...>, Box<...>."""
    t = rust_type.strip().rstrip(",").strip()
    for wrapper in ("::core::option::Option<", "::prost::alloc::vec::Vec<",
                    "::prost::alloc::boxed::Box<"):
        if t.startswith(wrapper) and t.endswith(">"):
            return strip_wrappers(t[len(wrapper):-1])
    return t


def field_type(module, attr, rust_type):
    """(proto type, repeated) for one prost field."""
    kind = attr.split(",")[0].strip()
    repeated = ", repeated" in attr
    if kind.startswith("btree_map") or kind.startswith("map"):
        key, value = re.search(r'map = "(\w+), (\w+)"', attr).groups()
        if value == "message":
            inner = rust_type[rust_type.index("BTreeMap<") + len("BTreeMap<"):]
            inner = inner.rsplit(">", 1)[0]
            value = resolve_rust_path(module, inner.split(",", 1)[1].strip().rstrip(","))
        elif value not in SCALARS:
            raise ValueError(f"unsupported map value {value}")
        return f"map:{key}:{value}", False
    if kind.startswith("bytes"):
        return "bytes", repeated
    if kind == "message":
        return resolve_rust_path(module, strip_wrappers(rust_type)), repeated
    if kind in SCALARS:
        return kind, repeated
    raise ValueError(f"unsupported prost field kind {attr}")


def parse_prost_file(src_root, path, messages):
    module = module_of(src_root, path)
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    current, attr, i = None, None, 0
    while i < len(lines):
        line = lines[i]
        start = STRUCT_START.match(line)
        if start and "::prost::Message" in lines[i - 1]:
            current = ".".join(module + [start.group(1)])
            messages[current] = []
        elif line == "}":
            current = None
        elif current and PROST_ATTR.match(line.strip()):
            attr = PROST_ATTR.match(line.strip()).group(1)
        elif current and attr and FIELD_START.match(line):
            name, rest = FIELD_START.match(line).groups()
            # A field's type may span lines; it ends at the line ending in `,` at depth 0.
            while rest.count("<") != rest.count(">") or not rest.rstrip().endswith(","):
                i += 1
                rest += " " + lines[i].strip()
            tag = int(re.search(r'tag = "(\d+)"', attr).group(1))
            ptype, repeated = field_type(module, attr, rest)
            messages[current].append({"tag": tag, "snake": name, "type": ptype,
                                      "repeated": repeated})
            attr = None
        i += 1


def parse_k8s_pb(root):
    src = os.path.join(root, "src")
    messages, api_versions = {}, {}
    for path in sorted(glob.glob(os.path.join(src, "**", "*.rs"), recursive=True)):
        parse_prost_file(src, path, messages)
        with open(path, encoding="utf-8") as f:
            for v in re.findall(r'const API_VERSION: &\'static str = "([^"]+)";', f.read()):
                api_versions.setdefault(".".join(module_of(src, path)), set()).add(v)
    return messages, api_versions


# ---------------------------------------------------------------- Go type parsing

GO_STRUCT = re.compile(r"^type (\w+) struct \{\s*$")
GO_NAMED_SLICE = re.compile(r"^type (\w+) (\[\]|map\[)")
GO_NAMED_SCALAR = re.compile(r"^type (\w+) (string|bool|int32|int64|float64)\s*(//.*)?$")
GO_SCALARS = {"string": "string", "bool": "bool", "int32": "int32", "int64": "int64",
              "float64": "double"}
GO_FIELD = re.compile(r"^\s*(?:(\w+)\s+)?(\*?[\w.\[\]*]+(?:\[[\w.]+\][\w.*\[\]]+)?)\s+`([^`]*)`")
GO_TAG = re.compile(r'(\w+):"([^"]*)"')


def go_module_name(checkout):
    with open(os.path.join(checkout, "go.mod"), encoding="utf-8") as f:
        for line in f:
            if line.startswith("module "):
                return line.split()[1]
    raise ValueError(f"{checkout}/go.mod names no module")


def parse_go_field(line):
    m = GO_FIELD.match(line)
    if not m:
        return None
    name, gotype, tags = m.groups()
    tags = dict(GO_TAG.findall(tags))
    if "protobuf" not in tags:
        return None
    proto = tags["protobuf"].split(",")
    if len(proto) < 2 or not proto[1].isdigit():
        return None
    json_tag = tags.get("json", "").split(",")
    return {
        "go": name or gotype.lstrip("*").split(".")[-1],
        "tag": int(proto[1]),
        "proto_name": next((p[5:] for p in proto if p.startswith("name=")), ""),
        "json": json_tag[0],
        "omitempty": "omitempty" in json_tag[1:],
        "omitzero": "omitzero" in json_tag[1:],
        # encoding/json flattens embedded structs without a JSON name (`json:""` or
        # k8s' customary `json:",inline"`).
        "inline": json_tag[0] == "" and (name is None or "inline" in json_tag[1:]),
        "pointer": gotype.startswith("*"),
        "gotype": gotype,
        "wire": proto[0],
        "rep": "rep" in proto[2:],
    }


def parse_go_dir(directory, structs, named, named_scalars):
    for path in sorted(glob.glob(os.path.join(directory, "*.go"))):
        base = os.path.basename(path)
        if base.endswith("_test.go") or base.endswith(".pb.go") or base.startswith("zz_"):
            continue
        with open(path, encoding="utf-8") as f:
            current = None
            for line in f:
                line = line.rstrip("\n")
                start = GO_STRUCT.match(line)
                if start:
                    current = structs.setdefault(start.group(1).lower(), {})
                    continue
                if GO_NAMED_SLICE.match(line):
                    named.add(GO_NAMED_SLICE.match(line).group(1).lower())
                if GO_NAMED_SCALAR.match(line):
                    scalar = GO_NAMED_SCALAR.match(line)
                    named_scalars[scalar.group(1)] = GO_SCALARS[scalar.group(2)]
                if current is not None and line.startswith("}"):
                    current = None
                elif current is not None:
                    field = parse_go_field(line)
                    if field:
                        # Declaration order: upstream's JSON writes fields in it.
                        field["decl"] = len(current)
                        current[field["tag"]] = field


def parse_go_sources(checkouts):
    """{k8s-pb module: (structs, named slice/map types, named scalar types)}.

    structs maps a lowercased struct name to {proto field number: field facts}."""
    packages = {}
    for checkout in checkouts:
        prefix = GO_MODULES.get(go_module_name(checkout))
        if prefix is None:
            continue
        for proto in glob.glob(os.path.join(checkout, "**", "generated.proto"), recursive=True):
            rel = os.path.relpath(os.path.dirname(proto), checkout)
            structs, named, named_scalars = {}, set(), {}
            parse_go_dir(os.path.dirname(proto), structs, named, named_scalars)
            packages[".".join([prefix] + rel.split(os.sep))] = (structs, named, named_scalars)
    return packages


# ---------------------------------------------------------------- merging


def lower_camel(snake):
    head, *rest = snake.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def squash(name):
    return name.replace("_", "").replace("-", "").lower()


def package_of(message):
    return message.rsplit(".", 1)[0]


def flags_for(field, go, wrappers):
    flags = "r" if field["repeated"] else ""
    if go is None:
        return flags or "-"
    if go["inline"]:
        flags += "i"
    scalar = field["type"] in SCALARS
    wrapped = field["type"] in wrappers
    struct = not (scalar or wrapped or field["repeated"] or field["type"].startswith("map:"))
    if go["pointer"]:
        if not go["omitempty"] and not go["omitzero"]:
            flags += "u"
    elif go["omitzero"]:
        flags += "z"
    elif go["omitempty"] and not struct:
        if not field["repeated"] and (scalar or wrapped):
            flags += "e"
    else:
        # encoding/json writes non-pointer fields without omitempty (and structs, which
        # omitempty never drops) even when Go holds the zero value the wire left out.
        flags += "n"
    return flags or "-"


def find_wrappers(messages, go_packages):
    """Messages go-to-protobuf made for named slice types: their JSON is the `items` list."""
    wrappers = set()
    for message, fields in messages.items():
        _, named, _ = go_packages.get(package_of(message), ({}, set(), {}))
        short = message.rsplit(".", 1)[1].lower()
        if short in named and len(fields) == 1 and fields[0]["snake"] == "items":
            wrappers.add(message)
    return wrappers


def infer_go_only(message, go, go_package, messages):
    """A k8s-pb-style field for a Go field k8s-pb lacks, or None if its type is not simple."""
    _, _, named_scalars = go_package
    gotype = go["gotype"].lstrip("*")
    repeated = gotype.startswith("[]") and gotype != "[]byte"
    base = gotype[2:].lstrip("*") if repeated else gotype
    if base == "[]byte":
        ptype = "bytes"
    elif base in GO_SCALARS or base in named_scalars:
        ptype = GO_SCALARS.get(base) or named_scalars[base]
    elif f"{package_of(message)}.{base}" in messages:
        ptype = f"{package_of(message)}.{base}"
    else:
        return None
    wire = "varint" if ptype in ("bool", "int32", "int64") else \
        "fixed64" if ptype == "double" else "bytes"
    # Packed repeated scalars may be tagged either way; the Go type says it is a list.
    if wire != go["wire"] or (repeated != go["rep"] and ptype not in GO_SCALARS.values()):
        return None
    return {"tag": go["tag"], "snake": go["proto_name"], "type": ptype, "repeated": repeated}


def merge_message(message, fields, go_package, messages, wrappers, stats):
    structs = go_package[0]
    go_struct = structs.get(message.rsplit(".", 1)[1].lower())
    if go_struct is None and message not in wrappers:
        stats["messages without Go struct (names from snake_case)"].append(message)
    fields = list(fields)
    known = {f["tag"] for f in fields}
    for tag, go in sorted((go_struct or {}).items()):
        if tag in known:
            continue
        inferred = infer_go_only(message, go, go_package, messages)
        if inferred:
            fields.append(inferred)
            stats["Go fields missing from k8s-pb, added"].append(f"{message}.{go['json']}")
        else:
            stats["Go fields missing from k8s-pb, left out"].append(
                f"{message}.{go['json']} ({go['gotype']})")
    rows = []
    # Fields are listed in the Go struct's declaration order (the order of
    # upstream's JSON), which is not always the field numbers' order; fields
    # without a Go declaration follow by number.
    def declared(field):
        go = (go_struct or {}).get(field["tag"])
        return (go["decl"] if go else 1 << 20, field["tag"])

    for field in sorted(fields, key=declared):
        go = (go_struct or {}).get(field["tag"])
        if go is None:
            name = lower_camel(field["snake"])
            if go_struct is not None:
                stats["fields without Go field (name from snake_case)"].append(
                    f"{message}.{name}")
        elif go["json"] == "-":
            continue
        else:
            if go["proto_name"] and squash(go["proto_name"]) != squash(field["snake"]):
                stats["proto name mismatches"].append(f"{message}.{field['snake']}")
            name = "-" if go["inline"] else go["json"] or go["go"]
            if not go["inline"] and not go["json"]:
                stats["fields without JSON name (Go field name used)"].append(f"{message}.{name}")
        rows.append((field["tag"], name, field["type"],
                     flags_for(field, go, wrappers)))
    return rows


def merge(messages, go_packages, stats):
    """Rows per message: (tag, json name, type, flags); wrappers: named-slice messages."""
    wrappers = find_wrappers(messages, go_packages)
    table = {}
    for message, fields in messages.items():
        go_package = go_packages.get(package_of(message), ({}, set(), {}))
        table[message] = merge_message(message, fields, go_package, messages, wrappers, stats)
    return table, wrappers


def api_versions_of(messages, declared):
    """{apiVersion: package} for every package that holds an API group version's kinds."""
    out = {}
    packages = sorted({package_of(m) for m in messages})
    for package in packages:
        parts = package.split(".")
        versions = declared.get(package)
        if parts[0] == "api" and len(parts) == 3:
            group = GROUP_NAMES.get(parts[1], f"{parts[1]}.k8s.io")
            guess = f"{group}/{parts[2]}" if group else parts[2]
            if versions and versions != {guess}:
                raise ValueError(f"{package}: derived {guess}, k8s-pb says {versions}")
            out[guess] = package
        elif versions:
            for version in versions:
                out[version] = package
        elif parts[1:3] == ["pkg", "apis"] and len(parts) == 5 and parts[3] != "testapigroup":
            # apimachinery's meta, apiextensions, apiregistration and the metrics groups.
            out[f"{parts[3].replace('_', '.')}.k8s.io/{parts[4]}"] = package
    return out


def render_type(ptype, package):
    if ptype.startswith("map:"):
        _, key, value = ptype.split(":")
        return f"map:{key}:{render_type(value, package)}"
    if ptype in SCALARS:
        return ptype
    if package_of(ptype) == package:
        return ptype.rsplit(".", 1)[1]
    return ptype


def render(table, wrappers, versions, label):
    out = [
        "# Generated by tools/gen_protobuf_table.py from the k8s-pb 0.9.0 crate and upstream's",
        "# Go API types; do not edit. See the script's header for the format.",
    ]
    if label:
        out.append(f"# Sources: {label}")
    for version, package in sorted(versions.items()):
        out.append(f"V\t{version}\t{package}")
    for message in sorted(table):
        # k8s-pb spells some names in CamelCase (`Json`), upstream in capitals (`JSON`).
        specials = {name.lower(): special for name, special in SPECIALS.items()}
        special = specials.get(message.lower(), "wrap" if message in wrappers else "-")
        out.append(f"M\t{message}\t{special}")
        package = package_of(message)
        for tag, name, ptype, flags in table[message]:
            out.append(f"{tag}\t{name}\t{render_type(ptype, package)}\t{flags}")
    return "\n".join(out) + "\n"


def check_references(messages):
    for message, fields in messages.items():
        for field in fields:
            ptype = field["type"]
            target = ptype.split(":")[2] if ptype.startswith("map:") else ptype
            if target not in SCALARS and target not in messages:
                raise ValueError(f"{message}.{field['snake']} refers to unknown {target}")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--k8s-pb", default=None, help="k8s-pb 0.9.0 crate directory")
    parser.add_argument("--go-src", nargs="+", required=True, help="upstream Go checkouts")
    parser.add_argument("--out", default=os.path.join(here, "..", "assets", "protobuf",
                                                      "fields.tsv"))
    parser.add_argument("--label", default="", help="a note on the sources' versions, written "
                        "into the table's header")
    args = parser.parse_args()
    k8s_pb = args.k8s_pb
    if k8s_pb is None:
        found = sorted(glob.glob(os.path.expanduser(
            "~/.cargo/registry/src/*/k8s-pb-0.9.0")))
        if not found:
            sys.exit("k8s-pb 0.9.0 not found in ~/.cargo/registry; pass --k8s-pb")
        k8s_pb = found[-1]
    messages, declared = parse_k8s_pb(k8s_pb)
    check_references(messages)
    go_packages = parse_go_sources(args.go_src)
    stats = defaultdict(list)
    table, wrappers = merge(messages, go_packages, stats)
    versions = api_versions_of(messages, declared)
    text = render(table, wrappers, versions, args.label)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(text)
    fields = sum(len(rows) for rows in table.values())
    print(f"{len(table)} messages, {fields} fields, {len(versions)} group/versions, "
          f"{len(text)} bytes -> {args.out}", file=sys.stderr)
    for key, value in sorted(stats.items()):
        if isinstance(value, list):
            print(f"{key}: {len(value)}", file=sys.stderr)
            for item in value:
                print(f"  {item}", file=sys.stderr)
        else:
            print(f"{key}: {value}", file=sys.stderr)


if __name__ == "__main__":
    main()
