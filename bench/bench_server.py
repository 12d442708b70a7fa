"""llama-server with our samplers (scripts/build_server.sh): decode tokens/s of
each registered sampler against llama.cpp's own top-k chain in the same
server, requests alternating so that both see the same machine load.

    python bench/bench_server.py [--model PATH] [--tokens 64] [--repeats 3]

Prints one line per sampler: median tokens/s (the server's own timing of the
decode phase) and its ratio to top-k's; writes them as JSON with --json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from http_client import add_llama_server_args, default_model, llama_server, post  # noqa: E402

BASELINE = ("top_k (llama.cpp)", {"samplers": ["top_k", "temperature"], "top_k": 40, "temperature": 1.0})
CASES = [
    ("simplex_top_k", {"samplers": ["simplex_top_k"], "sampler_params": {"simplex_top_k": {"k": 40}}}),
    ("softmax", {"samplers": ["softmax"]}),
    ("sparsemax", {"samplers": ["sparsemax"]}),
    ("best_of_k paper-0.05", {"samplers": ["best_of_k"], "sampler_params": {"best_of_k": {"preset": "paper-0.05"}}}),
    ("power K=M=4 H=8", {"samplers": ["power"],
                         "sampler_params": {"power": {"candidates": 4, "rollouts": 4, "horizon": 8, "n_ctx": 512}}}),
]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_llama_server_args(ap, ROOT, 8095)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--power-tokens", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    args.model = default_model(args.model)
    with llama_server(args.server, args.model, args.port, ["-np", "1", "-c", "2048"]):
        prompt = "The history of the printing press begins"

        def rate(extra: dict, n: int, seed: int) -> float:
            status, _, data = post(args.port, "/completion", {"prompt": prompt, "n_predict": n, "seed": seed,
                                                              "ignore_eos": True, **extra}, timeout=1200)
            if status != 200:
                raise SystemExit(f"request failed: {data[:300]!r}")
            return json.loads(data)["timings"]["predicted_per_second"]

        rows = []
        for name, extra in CASES:
            n = args.power_tokens if name.startswith("power") else args.tokens
            base, ours = [], []
            for rep in range(args.repeats):  # alternate, so both see the same load
                base.append(rate(BASELINE[1], n, rep))
                ours.append(rate(extra, n, rep))
            b, o = statistics.median(base), statistics.median(ours)
            rows.append(dict(sampler=name, tokens=n, tokens_per_s=o, top_k_tokens_per_s=b, ratio=o / b))
            print(f"{name:24s} {n:3d} tokens: {o:7.2f} tok/s, top-k {b:7.2f} tok/s, ratio {o / b:.3f}", flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps(dict(model=args.model, rows=rows), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
