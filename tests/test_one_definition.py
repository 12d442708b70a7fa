"""One definition per sampler (issue 11): every parameter is declared once, as
an entry of its sampler's list in cpp/include/llama_simplex/llama_simplex_params.h,
and every surface derives from that list. These tests fail when a parameter
list is written a second time: a C struct that is not the list's, a table
that is not the list's, a file that names a sampler's parameters together
(a struct, a signature, a dict, a binding), or an entry that does not reach
every surface it declares."""

from __future__ import annotations

import ast
import dataclasses
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any, Dict, Iterator, List, Set, Tuple

import numpy as np
import pytest

import llama_simplex as ls
from llama_simplex import _core
from llama_simplex.power import BlockPowerSampler, MCMCPowerSampler, PowerSampler

ROOT = Path(__file__).resolve().parents[1]
INCLUDE = ROOT / "cpp" / "include"
PARAMS_H = INCLUDE / "llama_simplex" / "llama_simplex_params.h"
SPECS: List[Dict[str, Any]] = _core.sampler_specs()
BY_NAME = {s["name"]: s for s in SPECS}
CC = shutil.which("cc") or shutil.which("gcc")
needs_cc = pytest.mark.skipif(CC is None, reason="no C compiler")

# The table's C types, as the C99 preprocessor leaves them (bool is _Bool).
C_TYPES = {"f32": {"float"}, "f64": {"double"}, "i32": {"int32_t"}, "u32": {"uint32_t"}, "bool": {"_Bool"},
           "choice": {"_Bool", "int32_t"}, "support": {"int32_t"}}


def preprocess(source: str, include: Path, tmp_path: Path) -> str:
    """`source` through the C99 preprocessor, with a stub llama.h (the header
    only names llama.cpp's types through pointers)."""
    stub = tmp_path / "stub"
    stub.mkdir(exist_ok=True)
    (stub / "llama.h").write_text("struct llama_sampler;\nstruct llama_model;\n")
    out = subprocess.run([CC, "-std=c99", "-E", "-P", "-I", str(include), "-I", str(stub), "-x", "c", "-"],
                         input=source, capture_output=True, text=True, check=True)
    return out.stdout


def c_structs(text: str) -> Dict[str, List[Tuple[str, str]]]:
    """struct name -> [(C type, field)] of every struct defined in preprocessed C."""
    out = {}
    for name, body in re.findall(r"struct\s+(\w+)\s*\{([^{}]*)\}", text):
        fields = []
        for decl in body.split(";"):
            words = decl.split()
            if words:
                fields.append((" ".join(words[:-1]), words[-1]))
        out[name] = fields
    return out


def list_macro(spec: Dict[str, Any]) -> str:
    return f"LLAMA_SIMPLEX_{spec['name'].upper()}_PARAMS"


def expected_fields(spec: Dict[str, Any]) -> List[Tuple[Set[str], str]]:
    """The C struct a sampler's C-surface parameters make, in the table's order."""
    out = []
    for p in spec["params"]:
        if "c" not in p["surfaces"]:
            continue
        if p["type"] == "support":
            out += [({"int32_t"}, p["name"]), ({"double"}, p["name"] + "_value")]
        else:
            out.append((C_TYPES[p["type"]], p["field"]))
    return out


@needs_cc
def test_lists_are_the_table(tmp_path):
    """Expanding each list names the table's parameters, in the table's order,
    with its C fields: the table (specs.cpp) is built from the lists alone."""
    names = "\n".join(f"{s['name']}: {list_macro(s)}(F, X, S)" for s in SPECS if s["params"])
    text = preprocess('#include "llama_simplex/llama_simplex_params.h"\n'
                      "#define F(ctype, field, name, ...) name=field\n"
                      "#define X(ctype, name, ...) name=\n"
                      "#define S(field, ...) field=field\n" + names + "\n", INCLUDE, tmp_path)
    listed = {line.split(":")[0]: line.split(":")[1].split() for line in text.splitlines() if ":" in line}
    for s in SPECS:
        entries = listed.get(s["name"], [])
        assert [e.split("=")[0] for e in entries] == [p["name"] for p in s["params"]], s["name"]
        for e, p in zip(entries, s["params"]):
            assert ("c" in p["surfaces"]) == bool(e.split("=")[1]), (s["name"], p["name"])
            assert p["field"] == (e.split("=")[1] or None), (s["name"], p["name"])


@needs_cc
def test_c_structs_are_the_tables_c_parameters(tmp_path):
    """llama_simplex.h's parameter structs, as a C compiler sees them: each is
    its sampler's C-surface parameters in the table's order, with the table's
    C types, then `draw`; there is no other parameter struct."""
    structs = c_structs(preprocess('#include "llama_simplex/llama_simplex.h"\n', INCLUDE, tmp_path))
    ours = {n for n in structs if n.startswith("llama_simplex_") and n != "llama_simplex_draw_params"}
    with_c = {f"llama_simplex_{s['name']}_params": s for s in SPECS if any("c" in p["surfaces"] for p in s["params"])}
    assert ours == set(with_c)
    for struct, spec in with_c.items():
        fields = structs[struct]
        assert fields[-1] == ("struct llama_simplex_draw_params", "draw"), struct
        want = expected_fields(spec)
        assert [f for _, f in fields[:-1]] == [f for _, f in want], struct
        for (ctype, field), (types, _) in zip(fields, want):
            assert ctype in types, (struct, field, ctype, types)


def test_header_writes_no_parameter_field():
    """The public header defines its parameter structs from the lists only: no
    struct body in its source names a field (llama_simplex_draw_params aside)."""
    text = (INCLUDE / "llama_simplex" / "llama_simplex.h").read_text(encoding="utf-8")
    code = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    bodies = re.findall(r"struct\s+(\w+)\s*\{", code)
    assert bodies == ["llama_simplex_draw_params"]


# --- no file but the definition names a sampler's parameters together -----------------------------

# Where a sampler's parameters are declared: the lists, and the table that reads them
# (its presets name parameters too).
DEFINITION = {PARAMS_H, ROOT / "cpp" / "src" / "specs.cpp"}
# At least this many parameters of one sampler named in one place is a list of them.
AT_LEAST = 3


def sampler_names() -> Dict[str, Set[str]]:
    """sampler -> its parameter names, for the samplers with AT_LEAST or more."""
    return {s["name"]: {p["name"] for p in s["params"]} | {p["field"] for p in s["params"] if p["field"]}
            for s in SPECS if len(s["params"]) >= AT_LEAST}


def _forwards(key: str, value: ast.AST) -> bool:
    """`key=key`, `key=obj.key` or `"key": obj.key`: a value copied under its own name."""
    return (isinstance(value, ast.Name) and value.id == key) or (isinstance(value, ast.Attribute) and value.attr == key)


def python_groups(tree: ast.AST) -> Iterator[Tuple[int, Set[str]]]:
    """Names written together: a signature's arguments, a literal's strings, an
    assignment's attribute targets, and the keywords of a call (the keys of a
    dict) that copy a value under its own name (`Objective(lam=self.lam, ...)`);
    a call that sets values (`TopP(p=0.9, temperature=0.7, ...)`) uses the list."""
    for node in ast.walk(tree):
        names: Set[str] = set()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            a = node.args
            names = {x.arg for x in a.posonlyargs + a.args + a.kwonlyargs}
        elif isinstance(node, ast.Call):
            names = {k.arg for k in node.keywords if k.arg and _forwards(k.arg, k.value)}
        elif isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            names = {e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)}
        elif isinstance(node, ast.Dict):
            names = {k.value for k, val in zip(node.keys, node.values)
                     if isinstance(k, ast.Constant) and isinstance(k.value, str) and _forwards(k.value, val)}
        elif isinstance(node, ast.Assign):
            for t in node.targets:
                for e in (t.elts if isinstance(t, ast.Tuple) else [t]):
                    if isinstance(e, ast.Attribute):
                        names.add(e.attr)
        if names:
            yield getattr(node, "lineno", 0), names


def _struct_bodies(code: str) -> Iterator[Tuple[int, str]]:
    """(offset, top-level text) of every struct body: nested blocks (methods) left out."""
    for m in re.finditer(r"\bstruct\s+\w+[^{;()]*\{", code):
        depth, i, top = 1, m.end(), []
        while i < len(code) and depth:
            c = code[i]
            depth += (c == "{") - (c == "}")
            if depth == 1 and c != "}":
                top.append(c)
            i += 1
        yield m.start(), "".join(top)


def cpp_groups(text: str) -> Iterator[Tuple[int, Set[str]]]:
    """Names written together in C/C++: a struct's fields, a statement's string literals."""
    code = re.sub(r"//[^\n]*", "", re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S))
    for start, body in _struct_bodies(code):
        fields = set(re.findall(r"(\w+)\s*(?:=[^;]*)?;", body))
        yield code.count("\n", 0, start) + 1, fields
    line = 1
    for statement in code.split(";"):
        literals = set(re.findall(r'"(\w+)"', statement))
        if literals:
            yield line, literals
        line += statement.count("\n")


def python_side() -> Dict[str, Set[str]]:
    """sampler -> the names of its parameters that Python declares (its class's
    fields, the kernels' keywords): the table's python and kernel surfaces."""
    return {s["name"]: {n for p in s["params"] if {"python", "kernel"} & set(p["surfaces"])
                        for n in (p["name"], p["field"]) if n}
            for s in SPECS}


def lists_in(path: Path) -> List[str]:
    """Where `path` names AT_LEAST parameters of one sampler together. In
    Python, a group of only parameters that no Python class declares (the C
    and llama-server surfaces' n_ctx, rollout_seed, max_tokens) is not a copy
    of a list but the values a native constructor takes at call time
    (native(llm=..., max_tokens=...) hands them to make_sampler over the
    class's params()): a parameter added to that sampler needs no edit there.
    One Python-declared parameter among them makes the group a list again."""
    text = path.read_text(encoding="utf-8")
    python = path.suffix == ".py"
    groups = python_groups(ast.parse(text, str(path))) if python else cpp_groups(text)
    found = []
    for line, names in groups:
        for sampler, params in sampler_names().items():
            common = names & params
            if python and not common & python_side()[sampler]:
                continue
            if len(common) >= AT_LEAST:
                found.append(f"{path.relative_to(ROOT)}:{line}: {sampler} {sorted(common)}")
    return found


def source_files() -> List[Path]:
    files = [p for p in (ROOT / "python" / "llama_simplex").rglob("*.py")]
    files += [p for p in (ROOT / "cpp").rglob("*") if p.suffix in (".h", ".cpp", ".c")]
    return sorted(p for p in files if p not in DEFINITION)


# The places left, by (file, sampler), each with why: the test fails on any other, and
# on an entry here that is no longer found (delete it then). None is left.
KNOWN: Dict[Tuple[str, str], str] = {}


def test_no_file_lists_a_samplers_parameters():
    """No source file but the definition names three or more parameters of one
    sampler together (a struct, a signature, copying keywords, a literal, a
    binding): what would be a second copy of the list to keep in step."""
    found = [f for path in source_files() for f in lists_in(path)]
    where = {(f.split(":")[0], f.split(": ")[1].split()[0]) for f in found}
    assert not [f for f in found if (f.split(":")[0], f.split(": ")[1].split()[0]) not in KNOWN], "\n".join(found)
    assert not set(KNOWN) - where, f"no longer found, remove from KNOWN: {sorted(set(KNOWN) - where)}"


def test_the_scan_finds_a_second_list(tmp_path):
    """The scan above is not vacuous: the forms the lists used to be written
    in (a C++ struct, a pybind class, a Python field-by-field copy) are found."""
    cpp = tmp_path / "x.cpp"
    cpp.write_text('struct BlockParams { double alpha = 4.0; int32_t block = 192; int32_t samples = 16; };\n'
                   'py::class_<McmcParams>(m, "McmcParams").def_readwrite("alpha", &A::alpha)'
                   '.def_readwrite("stages", &A::stages).def_readwrite("steps", &A::steps);\n')
    py = tmp_path / "x.py"
    py.write_text("p.alpha, p.candidates, p.rollouts = a, b, c\n"
                  "def solve(s, *, lam, entropy=0.0, kl=1.0): pass\n"
                  # a native call's C-only values: not a list; with alpha (a class field) it is one
                  "f({**x, 'n_ctx': n_ctx, 'rollout_seed': rollout_seed, 'max_tokens': max_tokens})\n"
                  "g(alpha=alpha, n_ctx=n_ctx, max_tokens=max_tokens)\n")
    global ROOT
    saved, ROOT = ROOT, tmp_path
    try:
        found = lists_in(cpp) + lists_in(py)
    finally:
        ROOT = saved
    samplers = [f.split(": ")[1].split()[0] for f in found]
    assert samplers == ["block_power", "mcmc", "power", "block_power", "objective", "power", "smc"], found


# --- adding a parameter is one edit ------------------------------------------------------------------

CXX = shutil.which("c++") or shutil.which("g++")
# The new entry: min_keep for top_k too, as llama.cpp's top-k has it (top_p and min_p have it
# already, through the shared LLAMA_SIMPLEX_MIN_KEEP_ entry).
NEW_ENTRY = ('    F(int32_t, min_keep, min_keep, 0, IN(0, INT32_MAX), ALL, '
             '"at least this many tokens stay in the support, as llama.cpp\'s", "")')
PROBE = r"""
#include <cstddef>
#include <cstdio>
#include "llama_simplex/llama_simplex.h"
#include "llama_simplex/specs.h"
using namespace llama_simplex;
int main() {
    const SamplerSpec & s = *find_sampler_spec("top_k");
    const ParamSpec & p = *find_param(s, "min_keep");
    std::printf("table|%s|%g|%s|%u|%s\n", p.field, p.def, describe_range(p).c_str(), p.surfaces, p.doc);
    std::printf("struct|%zu|%zu|%zu\n", offsetof(llama_simplex_top_k_params, min_keep),
                offsetof(llama_simplex_top_k_params, draw), sizeof(llama_simplex_top_k_params));
    llama_simplex_top_k_params c{};
    fill_c_defaults(s, &c);
    std::printf("default|%d\n", c.min_keep);
    c.min_keep = -1;
    std::printf("check|%s\n", check_c_struct(s, &c).c_str());
    ParamValue v;
    v.kind = ParamValue::integer, v.i = 3, v.text = "3";
    llama_simplex_top_k_params d{};
    fill_c_defaults(s, &d);
    const std::string why = read_params(s, {{"min_keep", v}}, &d, SURFACE_SERVER);
    std::printf("server|%s|%d\n", why.c_str(), d.min_keep);
}
"""


@pytest.mark.skipif(CXX is None, reason="no C++ compiler")
def test_one_entry_is_a_parameter_on_every_surface(tmp_path):
    """The one edit: a copy of llama_simplex_params.h with one entry added to
    top_k's list, compiled with the unchanged table (specs.cpp) and C header,
    gives the C struct field (before `draw`), its default in the C defaults,
    the range check with its message, llama-server's key, and the Python
    class field (from_table over the table's export): nothing else was edited."""
    import llama_cpp
    inc = tmp_path / "inc" / "llama_simplex"
    inc.mkdir(parents=True)
    text = PARAMS_H.read_text(encoding="utf-8")
    anchor = "#define LLAMA_SIMPLEX_TOP_K_PARAMS(F, X, S) \\\n"
    head, tail = text.split(anchor)
    first, rest = tail.split("LLAMA_SIMPLEX_TEMPERATURE_(F)\n", 1)
    (inc / "llama_simplex_params.h").write_text(head + anchor + first + "LLAMA_SIMPLEX_TEMPERATURE_(F) \\\n" +
                                                NEW_ENTRY + "\n" + rest)
    (tmp_path / "probe.cpp").write_text(PROBE)
    llama_include = Path(llama_cpp.__file__).resolve().parents[1] / "include"
    lib = Path(ls.__file__).parent / "lib"
    exe = tmp_path / "probe"
    # The copy comes first on the include path: llama_simplex.h and specs.cpp include it by that name.
    subprocess.run([CXX, "-std=c++17", "-O0", "-I", str(tmp_path / "inc"), "-I", str(INCLUDE), "-I", str(llama_include),
                    str(ROOT / "cpp" / "src" / "specs.cpp"), str(tmp_path / "probe.cpp"), "-o", str(exe),
                    "-L", str(lib), "-lllama_simplex", "-Wl,--allow-shlib-undefined"], check=True)
    # Only for the symbols specs.cpp names (the C API constructors, never called here).
    env = {**os.environ, "LD_LIBRARY_PATH": f"{lib}:{Path(llama_cpp.__file__).resolve().parent / 'lib'}"}
    out = dict(line.split("|", 1) for line in subprocess.run([str(exe)], capture_output=True, text=True, env=env,
                                                              check=True).stdout.splitlines())
    field, default, rng, surfaces, doc = out["table"].split("|")
    assert (field, float(default), rng, int(surfaces)) == ("min_keep", 0.0, ">= 0", 7)
    at, draw, _size = map(int, out["struct"].split("|"))
    assert at == 8 and draw == 12  # int32_t k, float temperature, then the new field, then draw
    assert out["default"] == "0"
    assert out["check"] == "min_keep: must be >= 0, got -1"  # the C API's message (llama_simplex_last_error)
    assert out["server"] == "|3"  # llama-server's reader takes the key

    # Python: the class fields come from the table's export (samplers.from_table).
    from llama_simplex import samplers
    spec = dict(BY_NAME["top_k"])
    entry = dict(next(p for p in BY_NAME["top_p"]["params"] if p["name"] == "min_keep"), doc=doc)
    spec["params"] = spec["params"] + [entry]
    saved = samplers._SPECS["top_k"]
    samplers._SPECS["top_k"] = spec
    try:
        @samplers.from_table("top_k")
        class TopKPlus(samplers.Sampler):
            name = "top-k"
    finally:
        samplers._SPECS["top_k"] = saved
    fields = {f.name: f.default for f in dataclasses.fields(TopKPlus)}
    assert fields == {"k": 40, "temperature": 1.0, "min_keep": 0}
    assert "min_keep = 0 (>= 0)" in TopKPlus.__doc__


def test_top_p_kernel_takes_the_samplers_keywords():
    """_core.top_p reads top_p's keywords through the table (its C struct and
    the C API's check): the table's default, range and choice messages, and
    no minimum of its own (min_keep is the sampler's widening)."""
    logits = np.array([3.0, 2.0, 1.0, 0.0], dtype=np.float32)
    q_default, _ = _core.top_p(logits, {})
    q_09, _ = _core.top_p(logits, {"p": 0.9, "temperature": 1.0, "order": "model"})
    assert np.array_equal(q_default, q_09)  # the table's defaults: p 0.9, temperature 1, order model
    with pytest.raises(ValueError, match=r"^p: must be in \[0, 1\], got 2"):
        _core.top_p(logits, {"p": 2.0})
    with pytest.raises(ValueError, match=r"^order: "):
        _core.top_p(logits, {"order": "bogus"})
    with pytest.raises(ValueError, match="min_keep"):
        _core.top_p(logits, {"min_keep": 3})
