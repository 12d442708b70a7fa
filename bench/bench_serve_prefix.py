"""What a seeded completion pays for decoding its prompt afresh.

    python bench/bench_serve_prefix.py [--model PATH] [--tokens 16] [--rounds 3] [--preamble 0]

`llama-simplex serve` (and ls.create_completion with a seed) empties the KV
cache before each seeded completion so that its answer does not depend on
the request before; llama_cpp's default reuses the previous prompt's common
prefix. Same requests, same process, the two modes alternating request by
request so that both see the same machine load: tokens/s counted over
generated tokens and the whole request time (prefill included), and the
median seconds per request. Prompts share a prefix (the case reuse helps):
"Once upon a time in", after a shared preamble of --preamble sentences.
"""

from __future__ import annotations

import argparse
import statistics
import time

import llama_simplex as ls

PREAMBLE = "The following is a short story written for a collection of tales. "
PLACES = ["France", "Spain", "Italy", "Japan", "Kenya", "Peru", "Chile", "Egypt"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="GGUF (default: Gemma 3 270M)")
    ap.add_argument("--n-ctx", type=int, default=512)
    ap.add_argument("--tokens", type=int, default=16, help="max_tokens per request (default 16)")
    ap.add_argument("--rounds", type=int, default=3, help="passes over the prompts (default 3)")
    ap.add_argument("--preamble", type=int, default=0,
                    help="sentences of shared text before each prompt (default 0; ~11 tokens each)")
    args = ap.parse_args()
    llm = ls.load_model(args.model, n_ctx=args.n_ctx)
    sampler = ls.TopP(p=0.9, temperature=0.8)
    seconds = {False: [], True: []}
    tokens = {False: 0, True: 0}
    prompt_tokens = []
    for r in range(args.rounds):
        for i, place in enumerate(PLACES):
            prompt = PREAMBLE * args.preamble + f"Once upon a time in {place}, a young"
            # Alternate which mode goes first; each mode runs after the other
            # mode's request on a prompt sharing the prefix "Once upon a time in".
            for reuse in ((False, True) if (r + i) % 2 == 0 else (True, False)):
                t0 = time.perf_counter()
                out = ls.create_completion(llm, prompt, sampler, seed=r * 100 + i, max_tokens=args.tokens,
                                           reuse_prefix=reuse)
                seconds[reuse].append(time.perf_counter() - t0)
                tokens[reuse] += out["usage"]["completion_tokens"]
                prompt_tokens.append(out["usage"]["prompt_tokens"])
    print(f"model {llm.model_path}, {len(PLACES) * args.rounds} requests per mode, max_tokens {args.tokens}, "
          f"prompts of {min(prompt_tokens)}-{max(prompt_tokens)} tokens")
    for reuse, label in ((True, "prefix reused (llama_cpp default)"), (False, "prompt decoded afresh (seeded)")):
        rate = tokens[reuse] / sum(seconds[reuse])
        print(f"{label:36s} {rate:7.2f} tokens/s   median {statistics.median(seconds[reuse]):.3f} s per request")
    ratio = (tokens[False] / sum(seconds[False])) / (tokens[True] / sum(seconds[True]))
    print(f"afresh / reused: {ratio:.3f}")


if __name__ == "__main__":
    main()
