"""The documentation's sampler tables, generated from the sampler table
(cpp/src/specs.cpp, as ``_core.sampler_specs()``): names, parameters,
defaults, ranges and presets are written there once, and README.md and
docs/samplers/*.md carry them between marker comments,

    <!-- generated: samplers:KEY (scripts/gen_docs.py; do not edit) -->
    ...
    <!-- end generated -->

where KEY is ``classes`` (every sampler: its class, names and defaults),
``index`` (docs/samplers/README.md: one line per sampler, linked to its
page) or ``params:NAME`` (one sampler's signature, parameter table and
presets). ``scripts/gen_docs.py`` rewrites the blocks;
``llama-simplex samplers --markdown`` prints the same tables;
tests/test_docs.py fails when a committed block differs from what the table
generates. A sampler added to the table appears in every block without an
edit here.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence

from . import _core

__all__ = ["BEGIN", "END", "render", "regenerate", "doc_files", "update", "markdown_reference", "python_classes"]

BEGIN = re.compile(r"<!-- generated: samplers:([\w:.-]+)[^>]*-->\n")
END = "<!-- end generated -->"
_MARK = "<!-- generated: samplers:{} (scripts/gen_docs.py; do not edit) -->\n"

# The C types of the table, as a user of each surface reads them.
_TYPES = {"f32": "float (float32)", "f64": "float (double)", "i32": "int (int32)", "u32": "int (uint32)",
          "bool": "bool", "choice": "string", "support": "string"}
_SURFACES = ("python", "c", "server")


def python_classes() -> Dict[str, type]:
    """Table name -> the Python class built from it (``from_table``), over
    the package's exported classes."""
    import llama_simplex as ls
    out: Dict[str, type] = {}
    for name in ls.__all__:
        obj = getattr(ls, name)
        spec = getattr(obj, "SPEC", None)
        if isinstance(obj, type) and isinstance(spec, dict):
            out.setdefault(spec["name"], obj)
    return out


def _code(x: str) -> str:
    return f"`{x}`"


def _value(v: Any) -> str:
    return repr(v)


def _python_params(spec: Dict[str, Any]) -> List[Dict[str, Any]]:
    return [p for p in spec["params"] if "python" in p["surfaces"]]


def _signature(spec: Dict[str, Any], cls: Optional[type], defaults: bool) -> str:
    name = cls.__name__ if cls is not None else spec["name"]
    params = _python_params(spec)
    inside = ", ".join(f"{p['name']}={_value(p['default'])}" if defaults else p["name"] for p in params)
    return f"{name}({inside})"


def _allowed(p: Dict[str, Any]) -> str:
    text = "one of " + ", ".join(_code(repr(c)) for c in p["choices"]) if p["type"] == "choice" else p["range"]
    return text + (f" ({p['note']})" if p["note"] else "")


def _where(p: Dict[str, Any]) -> str:
    names = {"python": "Python, CLI, `serve`", "c": "C API", "server": "llama-server"}
    if set(p["surfaces"]) >= set(_SURFACES):
        return "all"
    return ", ".join(names[s] for s in _SURFACES if s in p["surfaces"])


def _names(spec: Dict[str, Any]) -> str:
    """The table's name and aliases; whether `generate --sampler`, ``serve`` and
    ``sampler_from_name`` take them (the samplers of ``registry.SAMPLERS``)."""
    from .registry import SAMPLERS, python_name
    names = ", ".join(_code(n) for n in (spec["name"], *spec["aliases"]))
    return names if python_name(spec["name"]) in SAMPLERS else f"{names} (the class only: not selectable by name)"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def classes_table(specs: Sequence[Dict[str, Any]], classes: Dict[str, type]) -> str:
    """Every sampler of the table: its class, names, decoder and Python defaults."""
    lines = ["| class | names (CLI `--sampler`, `serve`, `sampler_from_name`) | llama-server | decoder | "
             "parameters (defaults) | presets |",
             "|---|---|---|---|---|---|"]
    for spec in specs:
        cls = classes.get(spec["name"])
        params = _python_params(spec)
        defaults = ", ".join(f"{p['name']}={_value(p['default'])}" for p in params) or "—"
        presets = ", ".join(_code(ps["name"]) for ps in spec["presets"]) or "—"
        lines.append(f"| {_code(_signature(spec, cls, defaults=False))} | {_names(spec)} | "
                     f"{_code(spec['server_name']) if spec['server_name'] else '—'} | {_cell(spec['doc'])} | "
                     f"{_code(defaults) if params else defaults} | {presets} |")
    return "\n".join(lines)


def params_block(spec: Dict[str, Any], cls: Optional[type]) -> str:
    """One sampler: its signature with defaults, names, parameter table and presets."""
    server = f"; llama-server {_code(spec['server_name'])}" if spec["server_name"] else "; not in llama-server"
    lines = [_code(_signature(spec, cls, defaults=True)), "",
             f"{_cell(spec['doc'])}. Names: {_names(spec)}{server}.", ""]
    if spec["params"]:
        lines += ["| parameter | type | default | allowed | meaning | where |", "|---|---|---|---|---|---|"]
        for p in spec["params"]:
            lines.append(f"| {_code(p['name'])} | {_TYPES.get(p['type'], p['type'])} | {_code(_value(p['default']))} | "
                         f"{_cell(_allowed(p))} | {_cell(p['doc'])} | {_where(p)} |")
    else:
        lines.append("No parameters.")
    if spec["presets"]:
        lines += ["", "| preset | values | note |", "|---|---|---|"]
        for ps in spec["presets"]:
            values = ", ".join(f"{k}={_value(v)}" for k, v in ps["values"].items())
            lines.append(f"| {_code(ps['name'])} | {_code(values)} | {_cell(ps['doc'])} |")
    return "\n".join(lines)


def index_list(specs: Sequence[Dict[str, Any]], classes: Dict[str, type], pages: Dict[str, Path]) -> str:
    """One line per sampler, linked to its page (the page whose params block names it)."""
    lines = []
    for spec in specs:
        cls = classes.get(spec["name"])
        where = (f"llama-server {_code(spec['server_name'])}" if spec["server_name"]
                 else "not in llama-server")
        who = f"{_code(cls.__name__)}; " if cls is not None else ""
        page = pages.get(spec["name"])
        if page is not None:
            title = page.read_text(encoding="utf-8").splitlines()[0].lstrip("# ").strip()
            lines.append(f"- [{title}]({page.name}) — {who}{where}")
        else:
            lines.append(f"- {_code(spec['name'])} — {who}{where}: {_cell(spec['doc'])}")
    return "\n".join(lines)


def _pages(root: Optional[Path]) -> Dict[str, Path]:
    """Table name -> the docs/samplers page holding its params block."""
    out: Dict[str, Path] = {}
    if root is None:
        return out
    for page in sorted((root / "docs" / "samplers").glob("*.md")):
        for key in BEGIN.findall(page.read_text(encoding="utf-8")):
            if key.startswith("params:"):
                out.setdefault(key[len("params:"):], page)
    return out


def render(key: str, root: Optional[Path] = None, specs: Optional[Sequence[Dict[str, Any]]] = None) -> str:
    """The body of the block `key` (without the markers); ValueError for a key
    the table cannot fill (e.g. the params of a sampler it does not have)."""
    specs = list(_core.sampler_specs() if specs is None else specs)
    classes = python_classes()
    if key == "classes":
        return classes_table(specs, classes)
    if key == "index":
        return index_list(specs, classes, _pages(root))
    if key.startswith("params:"):
        name = key[len("params:"):]
        spec = next((s for s in specs if s["name"] == name), None)
        if spec is None:
            raise ValueError(f"generated block samplers:{key}: no sampler {name!r} in the table "
                             f"(have {', '.join(s['name'] for s in specs)})")
        return params_block(spec, classes.get(name))
    raise ValueError(f"generated block samplers:{key}: unknown (classes, index or params:NAME)")


def regenerate(text: str, root: Optional[Path] = None, specs: Optional[Sequence[Dict[str, Any]]] = None) -> str:
    """`text` with the body of every generated block rewritten from the table."""
    out: List[str] = []
    pos = 0
    for m in BEGIN.finditer(text):
        if m.start() < pos:
            continue  # a marker inside a block being replaced
        end = text.find(END, m.end())
        if end < 0:
            raise ValueError(f"generated block samplers:{m.group(1)} has no '{END}'")
        out += [text[pos:m.start()], _MARK.format(m.group(1)), render(m.group(1), root, specs), "\n"]
        pos = end
    out.append(text[pos:])
    return "".join(out)


def doc_files(root: Path) -> List[Path]:
    """README.md and every Markdown file under docs/."""
    return [root / "README.md", *sorted((root / "docs").rglob("*.md"))]


def update(root: Path, write: bool = False, files: Optional[Iterable[Path]] = None) -> List[Path]:
    """The files under `root` whose generated blocks are stale (rewritten when `write`)."""
    stale = []
    for path in files if files is not None else doc_files(root):
        text = path.read_text(encoding="utf-8")
        new = regenerate(text, root)
        if new != text:
            stale.append(path)
            if write:
                path.write_text(new, encoding="utf-8")
    return stale


def markdown_reference() -> str:
    """Every table at once: the samplers, then each one's parameters (`llama-simplex samplers --markdown`)."""
    specs = _core.sampler_specs()
    classes = python_classes()
    parts = ["# Samplers", "", classes_table(specs, classes)]
    for spec in specs:
        parts += ["", f"## {spec['name']}", "", params_block(spec, classes.get(spec["name"]))]
    return "\n".join(parts) + "\n"
