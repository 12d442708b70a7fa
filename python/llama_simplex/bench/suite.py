"""`llama-simplex bench`: every benchmark in one run, written as JSON,
Markdown and PNG plots into one directory.

Parts: ``decoders`` (per-call cost against llama.cpp's samplers and numpy at
32k / 128k / 262k vocabularies, Best-of-K against a softmax pass),
``generation`` (end-to-end tokens/s on a real model and each sampler's ratio
to top-k; sample_k against sequential generation) and ``power`` (forked KV
cache against re-prefilling, scaling with K·M, H and the prompt, latency
against MCMC, peak memory). Each part's ratios are measured side by side in
one run; the figures are this machine's.
"""

from __future__ import annotations

import contextlib
import io
import json
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from ..report import save_figure

PARTS = ("decoders", "generation", "power")


def _run(main, argv: List[str]) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(argv)
    if code:
        raise RuntimeError(f"benchmark {main.__module__} failed (exit {code})")
    return out.getvalue()


def _plot(out_dir: Path, part: str, draw, **figure) -> None:
    """<part>.png from the <part>.json that part's benchmark wrote."""
    data = json.loads((out_dir / f"{part}.json").read_text())
    save_figure(out_dir / f"{part}.png", lambda axes: draw(axes, data), **figure)


def _draw_decoders(ax, data: dict) -> None:
    rows = [r for r in data["rows"] if r["llama_us"]]
    vocabs = sorted({r["vocab"] for r in rows})
    names = list(dict.fromkeys(f"{r['decoder']}" for r in rows))
    width = 0.8 / max(1, len(vocabs))
    for j, vocab in enumerate(vocabs):
        ratios = [next((r["ours_over_llama"] for r in rows if r["vocab"] == vocab and r["decoder"] == n), 0.0)
                  for n in names]
        ax.bar([i + j * width for i in range(len(names))], ratios, width, label=f"{vocab:,} tokens")
    ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
    ax.set_xticks([i + width * (len(vocabs) - 1) / 2 for i in range(len(names))])
    ax.set_xticklabels(names, rotation=25, ha="right")
    ax.set_ylabel("time per call, ours / llama.cpp")
    ax.set_title("Decoders: logits to token, against llama.cpp's built-in chains (lower is faster)")
    ax.legend()


def _draw_generation(ax, data: dict) -> None:
    rows = [r for r in data["rows"] if r.get("ref")]
    y = list(range(len(rows)))
    med = [r["ratio"] for r in rows]
    ci = [r["ci95"] or (r["ratio"], r["ratio"]) for r in rows]  # no interval from too few rounds
    lo = [r["ratio"] - c[0] for r, c in zip(rows, ci)]
    hi = [c[1] - r["ratio"] for r, c in zip(rows, ci)]
    colors = ["tab:green" if r["verdict"] == "PASS" else "tab:red" if r["verdict"] == "FAIL" else "tab:gray"
              for r in rows]
    ax.barh(y, med, xerr=[lo, hi], color=colors, capsize=3)
    for i, r in enumerate(rows):
        if r["target"] is not None:
            ax.plot([r["target"]] * 2, [i - 0.4, i + 0.4], color="black", linewidth=1.5)
    ax.set_yticks(y)
    ax.set_yticklabels([f"{r['label']}\nvs {r['ref']}" for r in rows], fontsize=7)
    ax.set_xlim(min(0.8, min(c[0] for c in ci) - 0.02), max(1.1, max(c[1] for c in ci) + 0.02))
    ax.set_xlabel("tokens/s over the reference's, same round (median, 95% CI; black: target)")
    ax.set_title(f"End to end, {data['rounds']} interleaved rounds; sample_k(k={data['k']}) "
                 f"{data['speedup']:.2f}x faster than sequential generation")
    ax.invert_yaxis()


def _draw_power(axes, data: dict) -> None:
    a, b, c = axes
    # latency at the longest output length every method ran at
    length, lat = max(((int(n), v["rows"]) for n, v in data["latency"].items()), key=lambda x: (len(x[1]), x[0]))
    a.barh([r["method"].split(" (")[0] for r in lat], [r["seconds"] for r in lat], color="tab:orange")
    a.set_xscale("log")
    a.set_xlabel("seconds (log scale)")
    a.set_title(f"Latency, {length} tokens, alpha = 4")
    a.invert_yaxis()
    sc = data["scaling"]
    km = sorted((r for r in sc if r["H"] == 8 and r["prompt"] == 64), key=lambda r: r["K"] * r["M"])
    b.plot([r["K"] * r["M"] for r in km], [r["s_per_token"] for r in km], "o-", label="K·M (H = 8)")
    hh = sorted((r for r in sc if r["K"] * r["M"] == 16 and r["prompt"] == 64), key=lambda r: r["H"])
    b.plot([r["H"] * 4 for r in hh], [r["s_per_token"] for r in hh], "s-", label="4·H (K·M = 16)")
    b.set_xlabel("K·M, or 4·H")
    b.set_ylabel("seconds per generated token")
    b.set_title("Token-level power sampling cost")
    b.legend()
    fid = data.get("fidelity")
    if fid:
        groups: Dict[str, list] = {}
        for r in fid["rows"]:
            key = r["sampler"] + (" (" + r["setting"].split(", ")[1] + ")" if r["sampler"] == "Power-SMC" else "")
            groups.setdefault(key, []).append(r)
        for key, rows in groups.items():
            rows = sorted(rows, key=lambda r: r["decoded_tokens"])
            c.plot([r["decoded_tokens"] for r in rows], [r["tv"] for r in rows], "o-", label=key)
        c.axhline(fid["noise"], color="grey", ls="--", lw=1, label="noise q99")
        c.set_xscale("log")
        c.set_xlabel("decoded tokens per draw (log scale)")
        c.set_ylabel("TV to pi")
        c.set_title(f"Fidelity per compute ({fid['model']}, {fid['length']} tokens)")
        c.legend(fontsize=7)


def run_suite(out_dir: Path, model: Optional[str] = None, parts: Sequence[str] = PARTS, quick: bool = False) -> Path:
    """Runs the parts, writes <part>.json, <part>.md, <part>.png and report.md into out_dir."""
    from . import decoders, generation, power
    out_dir.mkdir(parents=True, exist_ok=True)
    sections: Dict[str, str] = {}
    t0 = time.perf_counter()
    model_args = ["--model", model] if model else []
    if "decoders" in parts:
        argv = ["--vocab", "32000" if quick else "32000,131072,262144", "--repeats", "10" if quick else "150",
                "--json", str(out_dir / "decoders.json")]
        sections["decoders"] = _run(decoders.main, argv)
        _plot(out_dir, "decoders", _draw_decoders)
    if "generation" in parts:
        argv = model_args + ["--tokens", "16" if quick else "64", "--rounds", "2" if quick else "20",
                             "--sample-k-rounds", "1" if quick else "3", "--in-graph-rounds", "1" if quick else "9",
                             "--timing-repeats", "3" if quick else "20", "--json", str(out_dir / "generation.json")]
        sections["generation"] = _run(generation.main, argv)
        _plot(out_dir, "generation", _draw_generation, figsize=(10, 6.5))
    if "power" in parts:
        # Every power sampler at 16, 64 and 256 output tokens, side by side (token-level power and MCMC
        # at 256 take several minutes each on 2 cores).
        argv = model_args + ["--prompt-tokens", "64" if quick else "512", "--out-tokens", "4" if quick else "16,64,256",
                             "--max-slow-tokens", "4" if quick else "256",
                             "--fidelity-draws", "100" if quick else "1000", "--json", str(out_dir / "power.json")]
        sections["power"] = _run(power.main, argv)
        _plot(out_dir, "power", _draw_power, ncols=3, figsize=(17, 4.5))
    for name, text in sections.items():
        (out_dir / f"{name}.md").write_text(text)
    return write_report(out_dir, list(sections), time.perf_counter() - t0, quick)


def write_report(out_dir: Path, ran: Sequence[str], seconds: float, quick: bool = False) -> Path:
    """report.md from every part whose <part>.md the directory has: a run of
    some parts updates theirs and keeps the others' from an earlier run."""
    report = ["# llama-simplex bench", "",
              f"Last run: {', '.join(ran)} ({seconds:.0f} s{', quick' if quick else ''}); each part's section is "
              "from the last run of that part.", ""]
    for name in PARTS:
        if (out_dir / f"{name}.md").is_file():
            text = (out_dir / f"{name}.md").read_text()
            report += [f"## {name}", "", text.strip(), "", f"![{name}]({name}.png)", ""]
    (out_dir / "report.md").write_text("\n".join(report))
    return out_dir / "report.md"
