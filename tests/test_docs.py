"""The docs' sampler tables are generated from the sampler table
(cpp/src/specs.cpp as ``_core.sampler_specs()``, by
python/llama_simplex/docgen.py): a committed table that differs from what
the table generates fails here (fix: ``python scripts/gen_docs.py``). Folds
in the former tests/test_readme.py (the README's defaults are the classes')."""

from __future__ import annotations

import ast
import copy
import re
import subprocess
import sys
from pathlib import Path

import pytest

import llama_simplex as ls
from llama_simplex import _core, cli, docgen

ROOT = Path(__file__).resolve().parents[1]
FILES = [p for p in docgen.doc_files(ROOT) if docgen.BEGIN.search(p.read_text(encoding="utf-8"))]
SPECS = _core.sampler_specs()


def _block(text: str, key: str) -> str:
    m = re.search(r"<!-- generated: samplers:" + re.escape(key) + r"[^>]*-->\n(.*?)" + re.escape(docgen.END),
                  text, re.S)
    assert m, f"no generated block samplers:{key}"
    return m.group(1)


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(ROOT)) for p in FILES])
def test_committed_docs_are_generated(path):
    text = path.read_text(encoding="utf-8")
    assert docgen.regenerate(text, ROOT) == text, \
        f"{path.relative_to(ROOT)}: its generated tables are stale; run python scripts/gen_docs.py"


def test_the_tables_live_where_the_docs_say():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = _block(readme, "classes")
    for spec in SPECS:  # every sampler of the table, by its table name
        assert re.search(rf"\| `{re.escape(spec['name'])}`", table), spec["name"]
    _block((ROOT / "docs" / "samplers" / "README.md").read_text(encoding="utf-8"), "index")
    names = {s["name"] for s in SPECS}
    for page in sorted((ROOT / "docs" / "samplers").glob("*.md")):
        if page.name == "README.md":
            continue
        keys = docgen.BEGIN.findall(page.read_text(encoding="utf-8"))
        assert len(keys) == 1 and keys[0].startswith("params:"), f"{page.name}: one params block, got {keys}"
        assert keys[0][len("params:"):] in names, page.name


def _readme_rows():
    rows = []
    for line in _block((ROOT / "README.md").read_text(encoding="utf-8"), "classes").splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]  # a cell's own | is escaped
        m = re.fullmatch(r"`(\w+)\((.*?)\)`", cells[0]) if cells else None
        if m:
            rows.append((m.group(1), cells[4]))
    return rows


def test_readme_table_is_found():
    names = {name for name, _ in _readme_rows()}
    assert {"Softmax", "TopK", "TopP", "MinP", "Sparsemax", "BestOfK", "Objective", "PowerSampler", "Dist"} <= names


@pytest.mark.parametrize("name,defaults", _readme_rows(), ids=[n for n, _ in _readme_rows()])
def test_readme_defaults_are_the_classes(name, defaults):
    stated = {}
    if defaults != "—":
        for part in defaults.strip("`").split(", "):
            key, _, value = part.partition("=")
            stated[key] = ast.literal_eval(value)
    actual = getattr(ls, name)().params()
    assert stated == actual, f"{name}: the README lists {stated}, the class has {actual}"


def test_a_new_table_entry_appears_in_every_table():
    # what another sampler added to cpp/src/specs.cpp gets with no edit to the generator
    specs = copy.deepcopy(SPECS)
    new = copy.deepcopy(next(s for s in specs if s["name"] == "top_k"))
    new.update(name="fresh_one", aliases=["fresh-one"], server_name="", doc="a sampler added to the table")
    new["params"][0].update(name="width", default=7, doc="how wide")
    specs.append(new)
    assert "| `fresh_one(width, temperature)` | `fresh_one`, `fresh-one`" in docgen.render("classes", ROOT, specs)
    assert "- `fresh_one` — not in llama-server: a sampler added to the table" in docgen.render("index", ROOT, specs)
    block = docgen.render("params:fresh_one", ROOT, specs)
    assert "`fresh_one(width=7, temperature=1.0)`" in block and "| `width` | int (int32) | `7` |" in block


def test_a_stale_table_is_rewritten(tmp_path):
    page = ROOT / "docs" / "samplers" / "top-k.md"
    text = page.read_text(encoding="utf-8")
    stale = text.replace("| `k` | int (int32) | `40` |", "| `k` | int (int32) | `50` |")
    assert stale != text
    assert docgen.regenerate(stale, ROOT) == text
    copy_ = tmp_path / "top-k.md"
    copy_.write_text(stale, encoding="utf-8")
    assert docgen.update(ROOT, write=False, files=[copy_]) == [copy_]
    assert copy_.read_text(encoding="utf-8") == stale  # --check writes nothing
    assert docgen.update(ROOT, write=True, files=[copy_]) == [copy_]
    assert copy_.read_text(encoding="utf-8") == text


@pytest.mark.parametrize("text,message", [
    ("<!-- generated: samplers:params:nope -->\n<!-- end generated -->\n", "no sampler 'nope' in the table"),
    ("<!-- generated: samplers:everything -->\n<!-- end generated -->\n", "samplers:everything: unknown"),
    ("<!-- generated: samplers:classes -->\nno end\n", "has no '<!-- end generated -->'"),
])
def test_a_bad_block_is_refused(text, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        docgen.regenerate(text, ROOT)


def test_cli_prints_the_same_tables(capsys):
    assert cli.main(["samplers", "--markdown"]) == 0
    out = capsys.readouterr().out
    assert docgen.render("classes") in out
    for spec in SPECS:
        assert docgen.render(f"params:{spec['name']}") in out


def test_gen_docs_check_passes_on_the_committed_docs():
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_docs.py"), "--check"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.mark.parametrize("table_name,cls", sorted(docgen.python_classes().items()),
                         ids=sorted(docgen.python_classes()))
def test_class_docstrings_carry_the_table(table_name, cls):
    spec = next(s for s in SPECS if s["name"] == table_name)
    for p in spec["params"]:
        if "python" in p["surfaces"]:
            assert f"    {p['name']} = {p['default']!r} (" in cls.__doc__, (cls.__name__, p["name"])
            assert p["doc"] in cls.__doc__, (cls.__name__, p["name"])
    for ps in spec["presets"]:
        assert f"preset {ps['name']}: " in cls.__doc__, (cls.__name__, ps["name"])
