"""llama-server with several slots: how often a seeded request answers
differently when other requests run beside it, for llama.cpp's own sampler
chain and for ours, in the same server.

    python bench/server_slots.py [--model PATH] [--clients 4] [--requests 5] [--tokens 32]

For each chain, every (client, i) request runs alone, one after the other
(twice, to see that this is reproducible), then `clients` clients send theirs
at once (the server batches the slots' tokens together). Prints how many
answers differ between the runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from http_client import add_llama_server_args, default_model, in_parallel, llama_server, post  # noqa: E402

CHAINS = [
    ("top_k 40 + temperature 1 (llama.cpp)", {"samplers": ["top_k", "temperature"], "top_k": 40, "temperature": 1.0}),
    ("simplex_top_k 40 (ours)", {"samplers": ["simplex_top_k"], "sampler_params": {"simplex_top_k": {"k": 40}}}),
]
PROMPTS = ["The history of the printing press begins", "Once upon a time", "The capital of France is",
           "def fibonacci(n):", "My favourite recipe", "In the beginning", "The weather today", "Dear friend,"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_llama_server_args(ap, ROOT, 8096)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--requests", type=int, default=5)
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    args.model = default_model(args.model)
    rows = []
    with llama_server(args.server, args.model, args.port,
                      ["-np", str(args.clients), "-c", str(2048 * args.clients), "-t", str(args.threads)]):
        for name, chain in CHAINS:
            def body(c: int, i: int) -> dict:
                return {"prompt": PROMPTS[(c + i) % len(PROMPTS)], "n_predict": args.tokens,
                        "seed": 1000 * c + i, **chain}

            def one_by_one() -> dict:
                answers = {}
                for c in range(args.clients):
                    for i in range(args.requests):
                        status, _, data = post(args.port, "/completion", body(c, i), timeout=600)
                        if status != 200:
                            raise SystemExit(f"request failed: {data[:300]!r}")
                        answers[(c, i)] = json.loads(data)["content"]
                return answers

            alone, again = one_by_one(), one_by_one()  # the second run: is "alone" itself reproducible?
            together, errors = in_parallel(args.port, "/completion", body, args.clients, args.requests,
                                           lambda r: r["content"])
            if errors:
                raise SystemExit(f"{len(errors)} parallel requests failed: {errors[0]}")
            differ = sum(together[k] != alone[k] for k in alone)
            repeat_differ = sum(again[k] != alone[k] for k in alone)
            rows.append(dict(chain=name, requests=len(alone), differ=differ, alone_twice_differ=repeat_differ))
            print(f"{name:40s} {differ:3d} of {len(alone)} answers differ (parallel vs alone); "
                  f"{repeat_differ} differ between two one-by-one runs", flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps(dict(model=args.model, clients=args.clients,
                                                       tokens=args.tokens, rows=rows), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
