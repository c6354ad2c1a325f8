#!/usr/bin/env python3
"""The public API of a crate, one item a line, sorted: the snapshot `make api-check` compares.

    scripts/public-api.py bot-analytics            print it
    scripts/public-api.py bot-analytics --check F  fail (exit 1, with a diff) when it differs from F
    scripts/public-api.py bot-analytics --write F  write it to F

It reads rustdoc's JSON output (`cargo rustdoc -- --output-format json`). That output is
unstable in rustdoc, so it is asked for with RUSTC_BOOTSTRAP=1 on the stable toolchain (no
nightly can be installed here); the listing uses only the fields every recent format version
has, and refuses a format version it was not written for, so a toolchain update fails loudly
rather than silently passing.

Listed: every public module, struct (with its public fields), enum (with its variants), trait,
function, method, constant, type alias and re-export reachable from the crate root, with
signatures, and each type's trait implementations (auto traits too: a type that stops being
Send is an API change). Blanket implementations are left out.
"""

import difflib
import json
import os
import subprocess
import sys

KNOWN_FORMATS = range(50, 70)


def rustdoc_json(package):
    env = dict(os.environ, RUSTC_BOOTSTRAP="1")
    subprocess.run(
        ["cargo", "rustdoc", "-q", "-p", package, "--lib", "--",
         "-Z", "unstable-options", "--output-format", "json"],
        check=True, env=env)
    target = os.environ.get("CARGO_TARGET_DIR", "target")
    with open(os.path.join(target, "doc", package.replace("-", "_") + ".json")) as f:
        return json.load(f)


class Api:
    def __init__(self, doc):
        if doc["format_version"] not in KNOWN_FORMATS:
            sys.exit(f"public-api: rustdoc JSON format {doc['format_version']} is not one this "
                     f"script knows ({KNOWN_FORMATS.start}-{KNOWN_FORMATS.stop - 1}); check its output")
        self.index = doc["index"]
        self.paths = doc["paths"]
        self.lines = set()

    def item(self, id_):
        return self.index.get(str(id_))

    def path_of(self, path):
        """A resolved path's full name when rustdoc knows it, else the name as written."""
        known = self.paths.get(str(path.get("id")))
        name = "::".join(known["path"]) if known else path.get("path", path.get("name", "?"))
        return name + self.args(path.get("args"))

    def args(self, args):
        if not args:
            return ""
        if "angle_bracketed" in args:
            a = args["angle_bracketed"]
            parts = [self.generic_arg(x) for x in a.get("args", [])]
            parts += [self.constraint(c) for c in a.get("constraints", [])]
            return "<" + ", ".join(parts) + ">" if parts else ""
        if "parenthesized" in args:
            p = args["parenthesized"]
            out = "(" + ", ".join(self.ty(t) for t in p.get("inputs", [])) + ")"
            if p.get("output"):
                out += " -> " + self.ty(p["output"])
            return out
        return ""

    def generic_arg(self, arg):
        if "type" in arg:
            return self.ty(arg["type"])
        if "lifetime" in arg:
            return arg["lifetime"]
        if "const" in arg:
            return str(arg["const"].get("expr", "_"))
        return "_"

    def constraint(self, c):
        name = c["name"] + self.args(c.get("args"))
        binding = c.get("binding", {})
        if "equality" in binding:
            eq = binding["equality"]
            return name + " = " + (self.ty(eq["type"]) if "type" in eq else str(eq))
        if "constraint" in binding:
            return name + ": " + self.bounds(binding["constraint"])
        return name

    def bounds(self, bounds):
        out = []
        for b in bounds:
            if "trait_bound" in b:
                tb = b["trait_bound"]
                prefix = "?" if tb.get("modifier") == "maybe" else ""
                out.append(prefix + self.path_of(tb["trait"]))
            elif "outlives" in b:
                out.append(b["outlives"])
            else:
                out.append("?")
        return " + ".join(out)

    def ty(self, t):
        if t is None:
            return "()"
        if isinstance(t, str):
            return "_" if t == "infer" else t
        kind, v = next(iter(t.items()))
        if kind == "resolved_path":
            return self.path_of(v)
        if kind in ("primitive", "generic"):
            return v
        if kind == "borrowed_ref":
            lt = (v["lifetime"] + " ") if v.get("lifetime") else ""
            return "&" + lt + ("mut " if v.get("is_mutable") else "") + self.ty(v["type"])
        if kind == "raw_pointer":
            return ("*mut " if v.get("is_mutable") else "*const ") + self.ty(v["type"])
        if kind == "tuple":
            return "(" + ", ".join(self.ty(x) for x in v) + ")"
        if kind == "slice":
            return "[" + self.ty(v) + "]"
        if kind == "array":
            return "[" + self.ty(v["type"]) + "; " + str(v["len"]) + "]"
        if kind == "impl_trait":
            return "impl " + self.bounds(v)
        if kind == "dyn_trait":
            return "dyn " + " + ".join(self.path_of(x["trait"]) for x in v["traits"])
        if kind == "qualified_path":
            trait = v.get("trait")
            inner = self.ty(v["self_type"]) + (" as " + self.path_of(trait) if trait else "")
            return "<" + inner + ">::" + v["name"]
        if kind == "function_pointer":
            sig = v["sig"]
            ins = ", ".join(self.ty(x[1]) for x in sig["inputs"])
            return f"fn({ins})" + (" -> " + self.ty(sig["output"]) if sig.get("output") else "")
        return kind

    def generics(self, g):
        params = []
        for p in g.get("params", []):
            kind = p["kind"]
            if "lifetime" in kind:
                params.append(p["name"])
            elif "type" in kind:
                if kind["type"].get("is_synthetic"):
                    continue  # `impl Trait` in argument position, shown there
                b = self.bounds(kind["type"].get("bounds", []))
                params.append(p["name"] + (": " + b if b else ""))
            elif "const" in kind:
                params.append("const " + p["name"] + ": " + self.ty(kind["const"]["type"]))
        where = []
        for w in g.get("where_predicates", []):
            if "bound_predicate" in w:
                bp = w["bound_predicate"]
                where.append(self.ty(bp["type"]) + ": " + self.bounds(bp["bounds"]))
        return ("<" + ", ".join(params) + ">" if params else ""), (
            " where " + ", ".join(where) if where else "")

    def function(self, name, f):
        header = f.get("header", {})
        quals = "".join(q for q, on in [("const ", header.get("is_const")),
                                          ("async ", header.get("is_async")),
                                          ("unsafe ", header.get("is_unsafe"))] if on)
        params, where = self.generics(f.get("generics", {}))
        ins = []
        for arg_name, arg_ty in f["sig"]["inputs"]:
            if arg_name == "self":
                ins.append(self.self_arg(arg_ty))
            else:
                ins.append(arg_name + ": " + self.ty(arg_ty))
        out = f["sig"].get("output")
        ret = " -> " + self.ty(out) if out else ""
        return f"{quals}fn {name}{params}({', '.join(ins)}){ret}{where}"

    @staticmethod
    def self_arg(t):
        if isinstance(t, dict) and "borrowed_ref" in t:
            return "&mut self" if t["borrowed_ref"].get("is_mutable") else "&self"
        return "self"

    def add(self, line):
        self.lines.add(line)

    def walk(self, id_, prefix, seen):
        item = self.item(id_)
        if item is None or id_ in seen:
            return
        seen = seen | {id_}
        kind, inner = next(iter(item["inner"].items()))
        name = item.get("name")
        path = f"{prefix}::{name}" if prefix and name else (prefix or name)
        if kind == "module":
            self.add(f"pub mod {path}")
            for child in inner["items"]:
                self.walk(child, path, seen)
        elif kind == "use":
            target = inner.get("id")
            if inner.get("is_glob"):
                self.add(f"pub use {path}::{inner['source']}::*")
                return
            shown = f"{prefix}::{inner['name']}"
            self.add(f"pub use {shown} = {inner['source']}")
            if target is not None and self.item(target) is not None:
                self.walk_as(target, prefix, inner["name"], seen)
        elif kind == "function":
            self.add(f"pub {self.function(path, inner)}")
        elif kind in ("struct", "enum", "union", "trait"):
            self.type_item(kind, path, inner, seen)
        elif kind == "constant":
            self.add(f"pub const {path}: {self.ty(inner['type'])}")
        elif kind == "static":
            self.add(f"pub static {path}: {self.ty(inner['type'])}")
        elif kind == "type_alias":
            params, _ = self.generics(inner.get("generics", {}))
            self.add(f"pub type {path}{params} = {self.ty(inner['type'])}")
        elif kind == "macro":
            self.add(f"pub macro {path}!")

    def walk_as(self, id_, prefix, name, seen):
        """A re-exported item, listed under the name the crate gives it."""
        item = dict(self.item(id_))
        item["name"] = name
        key = f"reexport:{id_}:{prefix}"
        self.index[key] = item
        self.walk(key, prefix, seen)

    def type_item(self, kind, path, inner, seen):
        params, where = self.generics(inner.get("generics", {}))
        self.add(f"pub {kind} {path}{params}{where}")
        if kind == "struct":
            fields = inner.get("kind", {})
            if "plain" in fields:
                for fid in fields["plain"].get("fields", []):
                    f = self.item(fid)
                    if f and f.get("visibility") == "public":
                        self.add(f"pub {path}::{f['name']}: {self.ty(f['inner']['struct_field'])}")
                if fields["plain"].get("has_stripped_fields"):
                    self.add(f"pub struct {path} has private fields")
            elif "tuple" in fields:
                shown = ["_" if f is None else self.ty(self.item(f)["inner"]["struct_field"])
                         for f in fields["tuple"]]
                self.add(f"pub struct {path}({', '.join(shown)})")
        elif kind == "enum":
            for vid in inner.get("variants", []):
                v = self.item(vid)
                vk = v["inner"]["variant"]["kind"]
                if isinstance(vk, dict) and "tuple" in vk:
                    shown = ["_" if f is None else self.ty(self.item(f)["inner"]["struct_field"])
                             for f in vk["tuple"]]
                    self.add(f"pub {path}::{v['name']}({', '.join(shown)})")
                elif isinstance(vk, dict) and "struct" in vk:
                    fields = [self.item(f) for f in vk["struct"]["fields"]]
                    shown = [f"{f['name']}: {self.ty(f['inner']['struct_field'])}" for f in fields]
                    self.add(f"pub {path}::{v['name']} {{ {', '.join(shown)} }}")
                else:
                    self.add(f"pub {path}::{v['name']}")
        elif kind == "trait":
            for mid in inner.get("items", []):
                m = self.item(mid)
                if m and "function" in m["inner"]:
                    self.add(f"pub {path}::{self.function(m['name'], m['inner']['function'])}")
        for impl_id in inner.get("impls", []):
            impl = self.item(impl_id)
            if impl is None:
                continue
            im = impl["inner"]["impl"]
            if im.get("blanket_impl") is not None:
                continue
            trait = im.get("trait")
            if trait is not None:
                neg = "!" if im.get("is_negative") else ""
                self.add(f"impl {neg}{self.path_of(trait)} for {path}")
                continue
            for mid in im.get("items", []):
                m = self.item(mid)
                if m is None or m.get("visibility") != "public":
                    continue
                if "function" in m["inner"]:
                    self.add(f"pub {self.function(path + '::' + m['name'], m['inner']['function'])}")
                elif "assoc_const" in m["inner"]:
                    self.add(f"pub const {path}::{m['name']}: {self.ty(m['inner']['assoc_const']['type'])}")


def listing(package):
    doc = rustdoc_json(package)
    api = Api(doc)
    api.walk(str(doc["root"]), "", frozenset())
    return "".join(line + "\n" for line in sorted(api.lines))


def main(argv):
    if len(argv) not in (2, 4) or (len(argv) == 4 and argv[2] not in ("--check", "--write")):
        sys.exit(__doc__)
    text = listing(argv[1])
    if len(argv) == 2:
        sys.stdout.write(text)
        return 0
    snapshot = argv[3]
    if argv[2] == "--write":
        with open(snapshot, "w") as f:
            f.write(text)
        print(f"public-api: wrote {snapshot} ({text.count(chr(10))} items)")
        return 0
    try:
        with open(snapshot) as f:
            old = f.read()
    except FileNotFoundError:
        old = ""
    if old == text:
        print(f"public-api: {argv[1]} matches {snapshot} ({text.count(chr(10))} items)")
        return 0
    sys.stdout.writelines(difflib.unified_diff(
        old.splitlines(True), text.splitlines(True), snapshot, "the code now"))
    print(f"public-api: the public API of {argv[1]} differs from {snapshot}. If the change is "
          f"meant, run `make api` and commit {snapshot} with it.")
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
