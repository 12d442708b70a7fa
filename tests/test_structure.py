"""The package's structure: no import cycles (function-level imports
included), no module writing into another at import time, and the
sequence-level samplers reached through their base class only (a new one
runs through generate() without an edit there)."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Dict, List, Set

import pytest

import llama_simplex as ls
from llama_simplex.sequence import SequenceResult, SequenceSampler

PACKAGE = Path(__file__).resolve().parents[1] / "python" / "llama_simplex"


def _module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path = PACKAGE) -> Dict[str, Set[str]]:
    """Module -> the package's modules it imports anywhere in its body (also
    inside functions). An import of an enclosing package is left out: Python
    imports it before the module in any case."""
    files = {_module_name(p, root): p for p in root.rglob("*.py")}
    graph: Dict[str, Set[str]] = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        ancestors = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
        targets: Set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                    module = f"{base}.{node.module}" if node.module else base
                else:
                    module = node.module or ""
                for alias in node.names:  # `from pkg import submodule` imports the submodule
                    targets.add(f"{module}.{alias.name}" if f"{module}.{alias.name}" in files else module)
        graph[name] = {t for t in targets if t in files and t != name and t not in ancestors}
    return graph


def cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    out: List[List[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_import_graph_is_read():
    graph = import_graph()
    # A check of the check: edges it must see, a module-level and a function-level one.
    assert "llama_simplex.samplers" in graph["llama_simplex.power"] | graph["llama_simplex.sequence"]
    assert "llama_simplex.server" in graph["llama_simplex.cli"]  # `from .server import ...` inside a function
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def test_no_module_writes_into_another_at_import_time():
    """A registry filled by whichever module happens to be imported (power.py
    adding itself to samplers.SAMPLERS) depends on import order: refused."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        imported = {a.asname or a.name.split(".")[0] for node in tree.body
                    if isinstance(node, (ast.Import, ast.ImportFrom)) for a in node.names}
        for node in tree.body:  # module level only: what runs on import
            targets = node.targets if isinstance(node, ast.Assign) else \
                [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else []
            for t in targets:
                while isinstance(t, (ast.Subscript, ast.Attribute)):
                    t = t.value
                    if isinstance(t, ast.Name) and t.id in imported:
                        offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert offenders == []


@dataclass(frozen=True)
class Repeat(SequenceSampler):
    """A sequence-level sampler the package does not know: `token`, max_tokens times."""

    token: int = 3
    name: ClassVar[str] = "repeat"

    def run(self, llm, prompt_tokens, max_tokens, seed, progress) -> SequenceResult:
        return SequenceResult([self.token] * max_tokens, {"prompt": len(prompt_tokens), "seed": seed}, 0.0)


def test_a_new_sequence_sampler_runs_through_generate(tiny_llm):
    gen = ls.generate(tiny_llm, [1, 3], Repeat(token=4), max_tokens=3, seed=7, progress=False)
    assert gen.tokens == [4, 4, 4] and gen.finish_reason == "length" and gen.n_prompt_tokens == 2
    assert gen.stats == {"prompt": 2, "seed": 7, "seconds": 0.0}
    with pytest.raises(TypeError, match="Repeat runs through generate"):
        ls.sample_k(tiny_llm, [1, 3], 2, Repeat())
    with pytest.raises(NotImplementedError, match="Repeat runs through llama_simplex.generate"):
        Repeat().native(0)


def test_sequence_samplers_share_the_base():
    for cls in (ls.PowerSampler, ls.BlockPowerSampler, ls.MCMCPowerSampler, ls.SMCPowerSampler):
        assert issubclass(cls, SequenceSampler) and cls.name in ls.SAMPLERS
    assert [n for n, c in ls.SAMPLERS.items() if issubclass(c, SequenceSampler) and c.in_chain] == ["power", "smc"]
