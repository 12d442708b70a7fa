"""Power sampling by sequential Monte Carlo [SMC] (docs/math.md §6): the same
target π(y) ∝ p(y)^α as :class:`~llama_simplex.PowerSampler`, at close to
plain-decoding cost. N particles advance together (one llama_decode per
step) on one unified KV cache, particles holding the same tokens sharing one
sequence and one decoded row (:attr:`SMCParticles.rows`); each draws from
softmax(α_t·logits) and carries the weight Z_t = Σ_v p(v)^α_t (times
p(prefix)^(α_t − α_{t−1}) during the ramp). When the effective sample size
falls below κN the particles are resampled (systematic): a copy joins its
ancestor's sequence, no tensor is copied and the prompt is decoded once. The
output is one particle drawn ∝ its weight; :func:`smc_particles` returns all
of them with their weights, for weighted voting."""

from __future__ import annotations

import collections
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Dict, Hashable, List, Optional, Sequence, Union

import llama_cpp

from . import _core
from . import _validate as v
from .generation import prepare
from .handles import LlamaLike, context_use, model_address, rollout_context
from .samplers import SEED_MAX, from_table
from .sequence import RolloutCost, SequenceResult, SequenceSampler

__all__ = ["SMCPowerSampler", "SMCParticles", "smc_particles"]

# Particle batches are computed in slices of this many tokens (as power.py's rollouts).
UBATCH = 32


@from_table("smc")
class SMCPowerSampler(SequenceSampler):
    """Power-SMC [SMC]: N = ``particles`` sequences drawn from the tempered
    proposal softmax(α_t·logits), weighted, and resampled (systematic) when
    ESS < ``ess_threshold``·N, checked every ``block`` tokens; ``ramp`` R
    raises the exponent linearly from 1 to α over the first R tokens (0: α
    throughout); ``rounds`` independent runs are combined by their normaliser
    estimates. α = 1 is ordinary sampling. The drawn completion's law tends to
    π ∝ p^α as N grows (bias O(1/N)). Runs through
    :func:`llama_simplex.generate` (fast path) and inside a llama.cpp chain
    (``native(seed, llm=..., max_tokens=...)``: it plans the completion at its
    first apply, then emits it token by token)."""

    name: ClassVar[str] = "smc"
    many_outputs: ClassVar[str] = "smc_particles() (all N completions of one run, weighted)"
    in_chain: ClassVar[bool] = True

    def context_size(self, llm: llama_cpp.Llama, n_prompt: int, max_tokens: int) -> tuple:
        """(n_ctx, n_seq) of the context the particles need on `llm`'s model
        (prompt + particles × max_tokens + 1 cells, N sequences), checked
        against llama.cpp's limits and the memory available (ValueError naming
        particles, max_tokens) before anything is allocated."""
        return _core.smc_context_shape(model_address(llm), self.params(), n_prompt, max_tokens, UBATCH)

    def rollout_cost(self) -> RolloutCost:
        # Every output token costs at most N decoded rows per round (one per distinct
        # particle sequence: the worst case, for the server's bound); no rollout horizon.
        return RolloutCost(0, self.particles, "particles", self.particles * self.rounds, "particles·rounds")

    def native(self, seed: Optional[int] = None, *, llm: Optional[llama_cpp.Llama] = None,
               n_ctx: Optional[int] = None, max_tokens: int = 0) -> _core.NativeSampler:
        """The sampler for a llama.cpp chain: at its first apply (after the prompt
        reached it through accept(), as llama-server feeds it) it runs the
        particles in a context of its own (n_ctx cells; default: what they
        need after a prompt as long as `llm`'s context) and then emits the
        drawn completion token by token. max_tokens: the completion's length
        limit (0: the table's default, 256)."""
        if llm is None:
            raise NotImplementedError("SMCPowerSampler needs the model for its particles: native(llm=...), or run it "
                                      "through llama_simplex.generate()")
        rollout_seed = 0 if seed is None else v.integer("seed", seed, low=0, high=SEED_MAX)
        max_tokens = v.integer("max_tokens", max_tokens, low=0, high=2**31 - 1)
        limit = max_tokens or next(p["default"] for p in self.SPEC["params"] if p["name"] == "max_tokens")
        if n_ctx is None:
            n_ctx, _ = self.context_size(llm, int(llm.n_ctx()), limit)
        return self._chain_member(llm, seed, rollout_seed, n_ctx, limit)

    def run_particles(self, llm: llama_cpp.Llama, prompt_tokens: Sequence[int], max_tokens: int, seed: int,
                      progress: bool = False) -> Dict[str, Any]:
        """Runs the particles once; the engine's record (smc.h SmcResult) as a dict."""
        ctx = rollout_context(llm, *self.context_size(llm, len(prompt_tokens), max_tokens), UBATCH)
        t0 = time.perf_counter()

        def report(step: int, resamples: int) -> bool:
            dt = max(time.perf_counter() - t0, 1e-9)
            print(f"\r[smc] {step}/{max_tokens} tokens, {self.particles} particles, {resamples} resamplings, "
                  f"{step * self.particles / dt:.0f} particle tokens/s", end="", file=sys.stderr, flush=True)
            return True

        out = _core.smc_generate(ctx, list(prompt_tokens), self.params(), max_tokens, seed, True,
                                 report if progress else None)
        if progress:
            print(file=sys.stderr)
        out["seconds"] = time.perf_counter() - t0
        return out

    def run(self, llm: llama_cpp.Llama, prompt_tokens: Sequence[int], max_tokens: int, seed: int,
            progress: bool) -> SequenceResult:
        """Runs in a context of its own on the model; the drawn completion."""
        out = self.run_particles(llm, prompt_tokens, max_tokens, seed, progress)
        stats = dict(decoded_tokens=out["decoded_tokens"], decode_calls=out["decode_calls"],
                     resamples=sum(r["resamples"] for r in out["rounds"]),
                     unique_ancestors=out["rounds"][out["round"]]["unique_ancestors"])
        return SequenceResult(list(out["tokens"]), stats, out["seconds"])


@dataclass
class SMCParticles:
    """Every particle of an SMC run (all rounds): texts, tokens, normalised
    weights (summing to 1 over all rounds: a round's weights times its
    normaliser's share), log-likelihoods under the model (temperature 1),
    finish reasons ('stop' or 'length'); per round the ESS at each check,
    the number of resamplings and of distinct first-step ancestors left,
    log Ẑ, and the rows decoded at each step (one per distinct live particle
    sequence: ``decoded_tokens`` is their sum). ``chosen``: the index of the particle :func:`generate` would
    return with this seed. Plain data, valid after ``llm.close()``."""

    texts: List[str]
    tokens: List[List[int]]
    weights: List[float]
    logliks: List[float]
    finish_reasons: List[str]
    ess: List[List[float]]
    resamples: List[int]
    unique_ancestors: List[int]
    log_z: List[float]
    chosen: int
    seed: int
    decoded_tokens: int
    rows: List[List[int]]
    sampler: SMCPowerSampler = field(repr=False)

    def __len__(self) -> int:
        return len(self.texts)

    def majority_vote(self, extract: Callable[[str], Optional[Hashable]] = str.strip) -> Optional[Hashable]:
        """The answer with the largest total weight, as `extract` maps each
        text to an answer (None: no answer, not counted)."""
        votes: Dict[Hashable, float] = collections.defaultdict(float)
        for text, w in zip(self.texts, self.weights):
            answer = extract(text)
            if answer is not None:
                votes[answer] += w
        return max(votes, key=votes.__getitem__) if votes else None


def smc_particles(
    llm: LlamaLike,
    prompt: Union[str, Sequence[int]],
    sampler: Optional[SMCPowerSampler] = None,
    *,
    max_tokens: int = 128,
    seed: Optional[int] = None,
    add_special: bool = True,
) -> SMCParticles:
    """All N completions of one SMC run (per round) with their normalised
    weights, ESS history, resampling counts and distinct ancestors, for
    weighted majority voting (:meth:`SMCParticles.majority_vote`). The same
    seed gives the run :func:`llama_simplex.generate` makes with this sampler,
    whose output is particle ``chosen``."""
    sampler = SMCPowerSampler() if sampler is None else sampler
    if not isinstance(sampler, SMCPowerSampler):
        raise TypeError(f"sampler must be an SMCPowerSampler, got {type(sampler).__name__}")
    llm, tokens, sampler, max_tokens, seed, _ = prepare(llm, prompt, sampler, max_tokens, seed, None, add_special)
    with context_use(llm).lock:
        out = sampler.run_particles(llm, tokens, max_tokens, seed)
    share = out["round_weights"]
    toks, weights, logliks, finish = [], [], [], []
    for r, rd in enumerate(out["rounds"]):
        for t, w, ll, stopped in zip(rd["tokens"], rd["weights"], rd["logliks"], rd["stopped"]):
            toks.append(list(t))
            weights.append(w * share[r])
            logliks.append(ll)
            finish.append("stop" if stopped else "length")
    address = model_address(llm)
    texts = [_core.detokenize(address, t).decode("utf-8", errors="replace") for t in toks]
    rounds = out["rounds"]
    return SMCParticles(texts, toks, weights, logliks, finish, [r["ess"] for r in rounds],
                        [r["resamples"] for r in rounds], [r["unique_ancestors"] for r in rounds],
                        [r["log_z"] for r in rounds], out["round"] * sampler.particles + out["particle"], seed,
                        out["decoded_tokens"], [r["rows"] for r in rounds], sampler)
