"""`llama-simplex bench`: a quick run of the decoder part writes JSON, Markdown and a PNG plot."""

from __future__ import annotations

import json

import pytest

from llama_simplex import cli


def test_bench_quick_decoders(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "bench"
    assert cli.main(["bench", "--parts", "decoders", "--quick", "--out", str(out)]) == 0
    data = json.loads((out / "decoders.json").read_text())
    names = {r["decoder"] for r in data["rows"]}
    assert {"top-k", "top-p (model order)", "min-p", "temperature", "sparsemax"} <= names
    assert all(r["ours_us"] > 0 and r["llama_us"] > 0 for r in data["rows"])
    assert data["best_of_k"] and all(b["ratio"] > 0 for b in data["best_of_k"])
    assert (out / "decoders.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (out / "report.md").read_text()
    assert "| vocab | decoder |" in report and "![decoders](decoders.png)" in report
    assert "ours / llama.cpp" in capsys.readouterr().out


def test_bench_rejects_unknown_parts(tmp_path, capsys):
    assert cli.main(["bench", "--parts", "nope", "--out", str(tmp_path)]) == 2
    assert "parts: choose from" in capsys.readouterr().err
