"""sample_k(): k completions of one prompt decoded together on a shared KV
cache, for self-consistency, reranking and verifier pipelines."""

from __future__ import annotations

import collections
import os
import secrets
from dataclasses import dataclass, field
from typing import Callable, Dict, Hashable, List, Optional, Sequence, Tuple, Union

import llama_cpp

from . import _core
from . import _validate as v
from .generation import check_backend_sampling, prepare
from .handles import LlamaLike, context_use, rollout_context
from .samplers import SEED_MAX, Sampler, Softmax
from .sequence import SequenceSampler

__all__ = ["sample_k", "Samples", "sequence_seed"]


def sequence_seed(seed: int, index: int) -> int:
    """The seed of sequence `index` of a sample_k call with `seed`: sequence 0
    uses `seed` itself, the others distinct streams derived from it."""
    x = (seed + 0x9E3779B97F4A7C15 * index) & 0xFFFFFFFFFFFFFFFF
    if index == 0:
        return seed
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return (x ^ (x >> 31)) % (SEED_MAX + 1)


@dataclass
class Samples:
    """k completions: texts, token ids, log-likelihoods under the model
    (temperature 1) and finish reasons ('stop' or 'length'), in sequence order.
    Plain data, computed whole by :func:`sample_k`: it holds no model or
    context and stays valid after ``llm.close()``."""

    texts: List[str]
    tokens: List[List[int]]
    logliks: List[float]
    finish_reasons: List[str]
    seed: int
    sampler: Sampler = field(repr=False)

    def __len__(self) -> int:
        return len(self.texts)

    def majority_vote(self, extract: Callable[[str], Optional[Hashable]] = str.strip) -> Optional[Hashable]:
        """The most frequent answer among the completions, as `extract`
        maps each text to an answer (None = no answer, not counted). Ties go
        to the answer whose best completion has the higher log-likelihood."""
        votes: Dict[Hashable, int] = collections.Counter()
        best: Dict[Hashable, float] = {}
        for text, ll in zip(self.texts, self.logliks):
            answer = extract(text)
            if answer is None:
                continue
            votes[answer] += 1
            best[answer] = max(best.get(answer, float("-inf")), ll)
        if not votes:
            return None
        return max(votes, key=lambda a: (votes[a], best[a]))

    def best(self) -> str:
        """The completion with the highest log-likelihood."""
        return self.texts[max(range(len(self.texts)), key=self.logliks.__getitem__)]


def sample_k(
    llm: LlamaLike,
    prompt: Union[str, Sequence[int]],
    k: int,
    sampler: Optional[Sampler] = None,
    *,
    max_tokens: int = 128,
    seed: Optional[int] = None,
    stop: Union[str, Sequence[str], None] = None,
    add_special: bool = True,
    backend_sampling: bool = False,
) -> Samples:
    """k completions of `prompt`, decoded as k parallel sequences sharing the
    prompt's KV cache (one prefill, one batched llama_decode per step).

    Sequence i draws with seed ``sequence_seed(seed, i)``; the same seed
    gives the same k completions. Runs in a context of its own on the model
    (unified KV cache), so `llm`'s own state is untouched.
    backend_sampling: each sequence's decoder samples inside the model's
    compute graph (see :func:`~llama_simplex.generate`); the draws use the
    same seeds, through the graph. The log-likelihoods come from the model's
    logits the graph hands back, which a Chain whose first member truncates
    (top-k, ...) replaces: theirs are then NaN. Sequence samplers: ValueError.
    """
    k = v.integer("k", k, low=1, high=256)
    llm, tokens, sampler, max_tokens, seed, stops = prepare(llm, prompt, sampler, max_tokens, seed, stop, add_special)
    backend_sampling = check_backend_sampling(backend_sampling, sampler)
    if isinstance(sampler, SequenceSampler):
        raise TypeError(f"sampler: {type(sampler).__name__} runs through {sampler.many_outputs}, not sample_k")
    cells = len(tokens) + k * max_tokens
    train = llama_cpp.llama_model_n_ctx_train(llm.model)
    if cells > max(train, 1) * 4 and cells > 65536:
        raise ValueError(f"max_tokens: prompt + k x max_tokens = {cells} tokens is too large a cache for this model")
    # Each sequence's sampler selects its token, drawn with its own seed (a Chain's last member draws).
    natives = [sampler.native(seed=sequence_seed(seed, i)) for i in range(k)]
    # The rollout context is cached on llm, one at a time: hold the Llama so
    # that no other call replaces (frees) it while this one decodes.
    with context_use(llm).lock:
        ctx = rollout_context(llm, max(256, -(-cells // 256) * 256), k)
        toks, texts, logliks, finish = _core.sample_k(ctx, tokens, natives, max_tokens, stops,
                                                      backend_sampling=backend_sampling)
    return Samples([t.decode("utf-8", errors="replace") for t in texts], [list(t) for t in toks],
                   list(logliks), list(finish), seed, sampler)
