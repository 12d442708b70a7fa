"""The README's decoder table states each class's defaults: they must be the
classes' own (which come from the C++ sampler table)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import llama_simplex as ls

README = Path(__file__).resolve().parents[1] / "README.md"
ROW = re.compile(r"^\| `(\w+)\((.*?)\)` \| .* \| (.*) \|$")


def _rows():
    rows = []
    for line in README.read_text(encoding="utf-8").splitlines():
        m = ROW.match(line)
        if m and hasattr(ls, m.group(1)) and "=" in m.group(3):
            rows.append((m.group(1), m.group(3)))
    return rows


def test_the_table_is_found():
    names = {name for name, _ in _rows()}
    assert {"Softmax", "TopK", "TopP", "MinP", "Sparsemax", "BestOfK", "Dist"} <= names


@pytest.mark.parametrize("name,defaults", _rows(), ids=[n for n, _ in _rows()])
def test_readme_defaults_are_the_classes(name, defaults):
    stated = {}
    for part in defaults.strip("`").split(", "):
        key, _, value = part.partition("=")
        stated[key] = ast.literal_eval(value)
    actual = getattr(ls, name)().params()
    assert stated == {k: actual[k] for k in stated}, name
    assert set(stated) == set(actual), f"{name}: the README lists {sorted(stated)}, the class has {sorted(actual)}"
