"""The math answer checker (`llama_simplex.eval.answers`), the MATH-500
converter (`scripts/math500_to_jsonl.py`) and `eval task --checker math` end to
end on a tiny model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from llama_simplex import cli
from llama_simplex.eval.answers import (extract_math, last_boxed, math_answer, math_equal, math_value, normalise_math,
                                        score)

ROOT = Path(__file__).resolve().parents[1]

# (completion, gold): the completion's answer is right.
RIGHT = [
    (r"So the answer is $\boxed{\frac{\sqrt{3}}{2}}$.", r"\frac{\sqrt{3}}{2}"),
    (r"\boxed{\dfrac{\sqrt{3}}{2}}", r"\frac{\sqrt3}{2}"),
    (r"\boxed{\frac{\sqrt3}2}", r"\frac{\sqrt{3}}{2}"),
    (r"The rate is \boxed{10\%}.", "10"),
    (r"\boxed{10}", r"10\%"),
    (r"\boxed{\dfrac{1}{2}}", "0.5"),
    (r"\boxed{0.5}", r"\frac12"),
    (r"\boxed{.5}", "0.5"),
    (r"\boxed{\tfrac{3}{4}}", "3/4"),
    (r"\boxed{-\frac{3}{4}}", r"\frac{-3}{4}"),
    (r"\boxed{(1,2)}", "(1, 2)"),
    (r"\boxed{\left( 3, \frac{\pi}{2} \right)}", r"\left( 3, \frac{\pi}{2} \right)"),
    (r"\boxed{(\frac12, 3)}", "(0.5,3)"),
    (r"\boxed{x = 5}", "5"),
    (r"\boxed{5}", "x=5"),
    (r"\boxed{1,000}", "1000"),
    (r"\boxed{90^\circ}", "90"),
    (r"\boxed{90^{\circ}}", "90"),
    (r"\boxed{10\text{ inches}}", "10"),
    (r"\boxed{\text{(C)}}", r"\text{(C)}"),
    (r"\boxed{\text{Evelyn}}", "Evelyn"),
    (r"\boxed{\$18.90}", "18.90"),
    (r"\boxed{18.9}", "18.90"),
    (r"\boxed{6 - 5i}", "6-5i"),
    (r"\boxed{[-2, 7]}", r"x \in [-2,7]"),
    (r"\boxed{2\sqrt 3}", r"2\sqrt{3}"),
    (r"\boxed{\left\{ 1, 2 \right\}}", r"\{1,2\}"),
    (r"first \boxed{3}, then on reflection \boxed{4}", "4"),
    (r"\boxed{4} and then a cut-off \boxed{\frac{1", "4"),  # an unclosed last box falls back to the one before
    (r"\fbox{12}", "12"),
    (r"\boxed 7 is it", "7"),
    ("We add them. The final answer is $\\frac{1}{2}$. Done.", "0.5"),
    ("The answer is: 3.5\nThanks", "7/2"),
    ("there are 3 red and 12 blue balls, so 15", "15"),
    ("so the total is 1,234,567 dollars", "1234567"),
    ("the answer is 0.333333333", "0.333333333"),
    (r"\boxed{0.3333333333}", r"\frac{1}{3}"),  # within the relative tolerance 1e-6
]

# (completion, gold): wrong, or no answer at all.
WRONG = [
    (r"\boxed{\frac{\sqrt{3}}{3}}", r"\frac{\sqrt{3}}{2}"),
    (r"\boxed{11}", "10"),
    (r"\boxed{0.1}", r"10\%"),
    (r"\boxed{0.333}", r"\frac{1}{3}"),  # the tolerance is tight
    (r"\boxed{(2,1)}", "(1,2)"),
    (r"\boxed{(1,2)}", "[1,2]"),
    (r"\boxed{(1,2,3)}", "(1,2)"),
    (r"\boxed{}", "0"),
    (r"\boxed{2} is what I thought, but the answer is 3", "3"),  # a box wins over the text
    ("I do not know.", "5"),
    ("", "5"),
    ("the answer is 12", "1"),
    ("3 apples and 4 pears", "3"),  # the last number
    (r"\boxed{5}", ""),
]


@pytest.mark.parametrize("completion,gold", RIGHT)
def test_math_checker_accepts(completion, gold):
    assert math_equal(extract_math(completion), gold), (extract_math(completion), normalise_math(gold))
    assert score([completion], gold, "math") == {"pass1": 1.0, "passk": 1.0, "majority": 1.0}


@pytest.mark.parametrize("completion,gold", WRONG)
def test_math_checker_rejects(completion, gold):
    assert not math_equal(extract_math(completion), gold), extract_math(completion)
    assert score([completion], gold, "math") == {"pass1": 0.0, "passk": 0.0, "majority": 0.0}


def test_math_extraction_and_normalisation():
    assert last_boxed(r"a \boxed{\frac{a}{b^{2}}} b") == r"\frac{a}{b^{2}}"
    assert last_boxed(r"\boxed{\{1\}} and \boxed{\}}") == r"\}"  # escaped braces do not count
    assert last_boxed("no box") is None and extract_math("no number here") is None
    assert extract_math("The answer is 42. And 7 more.") == "42"
    assert extract_math(r"\boxed{\text{(A)}}") == r"\text{(A)}"
    table = {
        r"\dfrac{1}{2}": r"\frac{1}{2}", r"\frac12": r"\frac{1}{2}", r"\frac1{2}": r"\frac{1}{2}",
        r"\frac{1}2": r"\frac{1}{2}", r"\frac{\frac12}{3}": r"\frac{\frac{1}{2}}{3}", r"\sqrt2": r"\sqrt{2}",
        r"\sqrt[3]{2}": r"\sqrt[3]{2}", r"$x = 5$": "5", r"\theta = 30^\circ": "30", "1,000,000": "1000000",
        "(1,000)": "(1,000)", r"5\text{ cm}^2": "5", r"\text{Evelyn}": "Evelyn", r"\left[ 0, 1 \right)": "[0,1)",
        r"3\!\cdot\,4\;": r"3\cdot4", ".5": "0.5", "-.5": "-0.5", "3.": "3", "\u22122": "-2", r"\$5": "5",
        "y = 2x + 3": "2x+3", r"\displaystyle 7": "7",
    }
    for raw, want in table.items():
        assert normalise_math(raw) == want, raw
        assert normalise_math(want) == want, want  # idempotent
    assert math_value(r"-\frac{3}{4}") == math_value("-3/4") == math_value("-0.75")
    assert math_value(r"\frac{1}{0}") is None and math_value(r"\frac{\pi}{2}") is None
    assert math_answer(r"so \boxed{\dfrac12}.") == r"\frac{1}{2}" and math_answer("nothing") == ""


def test_math_scores_pass1_passk_and_majority():
    completions = [
        r"... so \boxed{\frac{1}{2}}",  # right
        r"... so \boxed{0.5}",          # right, but a different normalised string from the first
        r"... so \boxed{3}",
        r"... so \boxed{3}",
        r"... so \boxed{3.0}",          # right for "3", but a vote of its own
        "I give up",                    # no answer: no vote
    ]
    s = score(completions, r"\dfrac{1}{2}", "math")
    assert s["pass1"] == pytest.approx(2 / 6) and s["passk"] == 1.0 and s["majority"] == 0.0  # "3" wins 2 votes
    s = score(completions, "3", "math")
    assert s["pass1"] == pytest.approx(3 / 6) and s["passk"] == 1.0 and s["majority"] == 1.0
    # Votes count normalised answers: "\frac12", "\dfrac{1}{2}" and "\tfrac12" are one answer.
    s = score([r"\boxed{\frac12}", r"\boxed{\dfrac{1}{2}}", r"\boxed{\tfrac12}", r"\boxed{7}", r"\boxed{7}"], "0.5",
              "math")
    assert s == {"pass1": 0.6, "passk": 1.0, "majority": 1.0}
    assert score(["none", "at all"], "1", "math") == {"pass1": 0.0, "passk": 0.0, "majority": 0.0}
    with pytest.raises(ValueError, match="checker: one of"):
        score(["1"], "1", "nope")


MATH500_ROWS = [
    {"problem": "What is $\\frac{1}{2} + \\frac{1}{4}$?", "solution": "...", "answer": "\\frac{3}{4}",
     "subject": "Prealgebra", "level": 1, "unique_id": "test/prealgebra/1.json"},
    {"problem": "Solve $x^2 = 9$ for $x > 0$.", "solution": "...", "answer": "3", "subject": "Algebra", "level": 2,
     "unique_id": "test/algebra/2.json"},
    {"problem": "Find the interval.", "solution": "...", "answer": "[0, 1)", "subject": "Algebra", "level": 5,
     "unique_id": "test/algebra/3.json"},
]


def _convert(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "math500_to_jsonl.py"), *args],
                          capture_output=True, text=True, cwd=tmp_path, timeout=60)


def test_math500_converter(tmp_path):
    source = tmp_path / "test.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in MATH500_ROWS))
    out = tmp_path / "math500.jsonl"
    run = _convert(tmp_path, str(source), str(out))
    assert run.returncode == 0, run.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["answer"] for r in rows] == ["\\frac{3}{4}", "3", "[0, 1)"]
    assert rows[0]["prompt"] == ("Problem:\nWhat is $\\frac{1}{2} + \\frac{1}{4}$?\n\nPlease reason step by step, "
                                 "and put your final answer within \\boxed{}.\n\nSolution:")
    assert rows[1] == dict(rows[1], checker="math", id="test/algebra/2.json", subject="Algebra", level=2)
    from llama_simplex.eval.task import load_task  # what eval task reads
    assert [i["checker"] for i in load_task(str(out), 10)] == ["math"] * 3

    assert _convert(tmp_path, str(source), str(out), "--limit", "2", "--template", "Q: {problem}\nA:").returncode == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["prompt"] for r in rows] == ["Q: What is $\\frac{1}{2} + \\frac{1}{4}$?\nA:",
                                           "Q: Solve $x^2 = 9$ for $x > 0$.\nA:"]

    source.write_text(json.dumps([{"problem": "p"}]))  # a JSON array, without answers
    run = _convert(tmp_path, str(source), str(out))
    assert run.returncode == 2 and "row 1: needs a string 'problem' and an 'answer'" in run.stderr
    assert _convert(tmp_path, str(source), str(out), "--template", "no slot").returncode == 2


def test_eval_task_with_the_math_checker(tmp_path, capsys):
    from tiny_gguf import build_tiny_model
    from llama_simplex.eval.answers import score as score_
    # 64 tokens: space, a-z, punctuation, digits and A-S; prompts use only those characters.
    model = build_tiny_model(tmp_path / "tiny64.gguf", n_vocab=64, seed=0)
    task = tmp_path / "task.jsonl"
    items = [{"prompt": "what is 2 plus 3? ", "answer": "5"},
             {"prompt": "half of 9 is ", "answer": "\\frac{9}{2}"},
             {"prompt": "name a letter ", "answer": "a", "checker": "first-line"}]
    task.write_text("".join(json.dumps(i) + "\n" for i in items))
    out = tmp_path / "math"
    args = ["eval", "task", "--task", str(task), "--model", str(model), "--out", str(out), "-k", "4",
            "--max-tokens", "12", "--checker", "math", "--samplers", "plain (softmax),min-p 0.05,power block cpu-small"]
    assert cli.main(args) == 0
    data = json.loads((out / "task.json").read_text())
    assert data["checker"] == "first-line,math" and data["items"] == 3
    cache = json.loads((out / "cache.json").read_text())
    assert len(cache) == 3 * 3
    answers = []
    for row in data["rows"]:
        points = [cache[f"{task}|{row['sampler']}|T=0.7|k=4|n=12|{i}"] for i in range(3)]
        assert all(len(p["completions"]) == 4 for p in points)
        assert row["tokens"] == sum(p["tokens"] for p in points) > 0
        expected = [score_(p["completions"], item["answer"], item.get("checker", "math"))
                    for p, item in zip(points, items)]
        for m in ("pass1", "passk", "majority"):
            assert row[m] == pytest.approx(sum(e[m] for e in expected) / 3)
        answers += [math_answer(c) for p in points[:2] for c in p["completions"]]
    assert any(answers)  # the tiny model writes digits: the math checker found numbers to judge
    assert "| sampler | pass@1 | pass@K | majority vote | tokens generated | seconds |" in capsys.readouterr().out
    # Another checker re-scores the cached completions: nothing is generated again.
    before = (out / "cache.json").read_text()
    assert cli.main(args[:-4] + ["--checker", "first-line"] + args[-2:]) == 0
    assert (out / "cache.json").read_text() == before
    assert json.loads((out / "task.json").read_text())["checker"] == "first-line"
    capsys.readouterr()
    with pytest.raises(SystemExit):  # argparse refuses it
        cli.main(args[:-4] + ["--checker", "nope"] + args[-2:])
    assert "invalid choice: 'nope'" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a", "answer": "b", "checker": "regex"}\n')
    assert cli.main(["eval", "task", "--task", str(bad), "--model", str(model), "--out", str(out)]) == 2
    assert "line 1: checker must be one of ['first-line', 'math']" in capsys.readouterr().err


def test_eval_task_warns_when_prompt_and_max_tokens_pass_the_training_context(tmp_path, tiny_model_path, capsys):
    task = tmp_path / "task.jsonl"
    task.write_text('{"prompt": "abc", "answer": "1"}\n')
    args = ["eval", "task", "--task", str(task), "--model", str(tiny_model_path), "--out", str(tmp_path / "out"),
            "-k", "1", "--checker", "math", "--samplers", "plain (softmax)"]
    assert cli.main(args + ["--max-tokens", "8"]) == 0
    assert "warning" not in capsys.readouterr().err
    assert cli.main(args + ["--max-tokens", "520"]) == 0  # the tiny model was trained at 512
    assert "exceeds the model's training context (512 tokens)" in capsys.readouterr().err
