"""Exact targets on models small enough to enumerate: the law of completions
of up to T tokens under plain decoding, its power distribution π ∝ p^α, the
law of token-wise low-temperature sampling, the laws of the power samplers'
algorithms (MCMC exactly; block power's tail and SMC at finite N by
simulation), and the sampling noise of an exact sampler at N draws. Shared by the tests and by
`llama-simplex eval exactness`."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Callable, Dict, List, Optional, Sequence, Tuple

import llama_cpp
import numpy as np

if TYPE_CHECKING:
    from ..power import MCMCPowerSampler
    from ..smc import SMCPowerSampler

Outcome = Tuple[int, ...]


def next_logprobs(llm: llama_cpp.Llama, ids: Sequence[int]) -> np.ndarray:
    """log p(· | ids) by plain decoding, in float64."""
    n = llm.n_vocab()
    llm.reset()
    llm.eval(list(ids))
    logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(n,)).astype(np.float64)
    return logits - (logits.max() + np.log(np.exp(logits - logits.max()).sum()))


def _log_softmax(x: np.ndarray) -> np.ndarray:
    return x - (x.max() + np.log(np.exp(x - x.max()).sum()))


class Completions:
    """Every completion of `prompt` with exactly `length` tokens, or fewer
    ending in end-of-sequence (the outcome then ends with `eos`), with the
    next-token log-probabilities after every prefix. Costs one decode per
    prefix: Σ_{i<length} (V-1)^i."""

    def __init__(self, llm: llama_cpp.Llama, prompt: Sequence[int], length: int, eos: int) -> None:
        if length < 1:
            raise ValueError(f"length: must be >= 1, got {length}")
        self.length, self.eos, self.prompt = length, eos, list(prompt)
        self.next_lp: Dict[Outcome, np.ndarray] = {}
        self.outcomes: List[Outcome] = []
        stack: List[Outcome] = [()]
        while stack:
            prefix = stack.pop()
            lp = self.next_lp[prefix] = next_logprobs(llm, self.prompt + list(prefix))
            for x in range(lp.size):
                if x == eos or len(prefix) + 1 == length:
                    self.outcomes.append(prefix + (x,))
                else:
                    stack.append(prefix + (x,))
        self.outcomes.sort()
        self.index = {o: i for i, o in enumerate(self.outcomes)}

    def _law(self, step: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        logs = {prefix: step(lp) for prefix, lp in self.next_lp.items()}
        return np.array([sum(logs[o[:i]][o[i]] for i in range(len(o))) for o in self.outcomes])

    def logp(self) -> np.ndarray:
        """log p(outcome) under the model at temperature 1."""
        return self._law(lambda lp: lp)

    def power(self, alpha: float) -> np.ndarray:
        """π ∝ p^α over the outcomes."""
        a = alpha * self.logp()
        pi = np.exp(a - a.max())
        return pi / pi.sum()

    def low_temperature(self, alpha: float) -> np.ndarray:
        """The law of token-wise sampling from softmax(α·ℓ_t) (temperature 1/α)."""
        return np.exp(self._law(lambda lp: _log_softmax(alpha * lp)))

    def power_top_k(self, alpha: float, k: int) -> np.ndarray:
        """The law of token-level power sampling with exact futures (M → ∞)
        whose candidates are the k most likely tokens of p_t (ties: lower id):
        at each prefix, v ∝ p(v)^α·ζ(v) over those k, ζ(v) = Σ_y p(y | v)^α
        over v's completions (1 when v ends the output). With k = |V| it is π;
        with fewer candidates, tokens of π-mass outside the top k are lost."""
        z: Dict[Outcome, float] = {}  # Σ over completions of the prefix of p(completion | prefix)^α
        for prefix in sorted(self.next_lp, key=len, reverse=True):
            lp = self.next_lp[prefix]
            ends = len(prefix) + 1 == self.length
            z[prefix] = sum(np.exp(alpha * lp[v]) * (1.0 if v == self.eos or ends else z[prefix + (v,)])
                            for v in range(lp.size))

        def step(prefix: Outcome) -> np.ndarray:
            lp = self.next_lp[prefix]
            ends = len(prefix) + 1 == self.length
            top = sorted(range(lp.size), key=lambda v: (-lp[v], v))[:k]
            w = np.zeros(lp.size)
            for v in top:
                w[v] = np.exp(alpha * lp[v]) * (1.0 if v == self.eos or ends else z[prefix + (v,)])
            with np.errstate(divide="ignore"):  # log 0 = -inf: outside the candidates
                return np.log(w / w.sum())
        logs = {prefix: step(prefix) for prefix in self.next_lp}
        return np.exp([sum(logs[o[:i]][o[i]] for i in range(len(o))) for o in self.outcomes])

    def best_of_samples(self, alpha: float, samples: int, reps: int = 100_000, seed: int = 0) -> Tuple[np.ndarray, float]:
        """The law of drawing `samples` outputs from p, merging identical ones
        and choosing one ∝ p^α (block power sampling when the whole output is
        its tail: fewer tokens than a block), by Monte Carlo over `reps` sample
        sets (each set's exact choice law averaged, fixed seed); with the
        estimate's error: ½ Σ 3 standard errors (bounds its TV error with
        high probability)."""
        logp = self.logp()
        base = np.exp(logp - logp.max())
        base /= base.sum()
        w = np.exp(alpha * (logp - logp.max()))
        rng = np.random.default_rng(seed)
        draws = np.sort(rng.choice(base.size, size=(reps, samples), p=base), axis=1)
        c = w[draws]
        c[:, 1:][draws[:, 1:] == draws[:, :-1]] = 0.0  # an output drawn twice is one candidate
        c /= c.sum(axis=1, keepdims=True)
        law, sq = np.zeros(base.size), np.zeros(base.size)
        np.add.at(law, draws, c)
        np.add.at(sq, draws, c * c)
        law /= reps
        se = np.sqrt(np.maximum(sq / reps - law ** 2, 0.0) / reps)
        return law, 0.5 * float(3 * se.sum())

    def _states(self, t: int) -> List[Outcome]:
        """The sequences of exactly t tokens, or fewer ending in eos (t <= length)."""
        out: List[Outcome] = []
        for prefix, lp in self.next_lp.items():
            if len(prefix) < t:
                out += [prefix + (v,) for v in range(lp.size) if v == self.eos or len(prefix) + 1 == t]
        return sorted(out)

    def mcmc_law(self, sampler: "MCMCPowerSampler") -> np.ndarray:
        """The exact law of the MCMC power sampler (mcmc.cpp, [MCMC]) `sampler`
        (its alpha, stages and steps: the sampler table's parameters) after its
        stages: each stage extends the state from q = softmax(α·ℓ) to the
        stage's length, then `steps` Metropolis-Hastings moves resample the
        suffix after a uniform position from q and accept with probability
        min(1, (p(x')/p(x))^α q(x)/q(x') · |x|/|x'|). Computed by propagating
        the state's law through the chain's transition matrices."""
        alpha = sampler.alpha
        lse = {prefix: float(np.log(np.exp(alpha * lp - (alpha * lp).max()).sum()) + (alpha * lp).max())
               for prefix, lp in self.next_lp.items()}

        def q_of(z: Outcome) -> float:  # log q(z), token-wise from softmax(α·ℓ)
            return sum(alpha * self.next_lp[z[:j]][z[j]] - lse[z[:j]] for j in range(len(z)))

        def scores(states: List[Outcome]) -> Tuple[np.ndarray, np.ndarray]:
            # log q(z) and S(z) = α log p(z) - log q(z) = Σ_j log Σ_v p(v | z_<j)^α
            return (np.array([q_of(z) for z in states]),
                    np.array([sum(lse[z[:j]] for j in range(len(z))) for z in states]))

        def extensions(states: List[Outcome], prefix: Outcome) -> slice:
            import bisect
            return slice(bisect.bisect_left(states, prefix), bisect.bisect_left(states, prefix + (1 << 30,)))

        stage_len = -(-self.length // sampler.stages)
        law: Dict[Outcome, float] = {(): 1.0}
        target, stage = 0, 0
        while stage < sampler.stages and target < self.length:
            target = min(target + stage_len, self.length)
            stage += 1
            states = self._states(target)
            log_q, s = scores(states)
            where = {z: i for i, z in enumerate(states)}
            v = np.zeros(len(states))
            for x, px in law.items():  # extend from q (an ended state stays)
                if x and x[-1] == self.eos:
                    v[where[x]] += px
                    continue
                sl = extensions(states, x)
                v[sl] += px * np.exp(log_q[sl] - q_of(x))
            lens = np.array([len(z) for z in states], dtype=np.float64)
            move = np.zeros((len(states), len(states)))
            for a, x in enumerate(states):
                for i in range(len(x)):
                    sl = extensions(states, x[:i])
                    prop = np.exp(log_q[sl] - q_of(x[:i]))  # q of the new suffix given the kept prefix
                    acc = np.minimum(1.0, np.exp(s[sl] - s[a] + np.log(len(x)) - np.log(lens[sl])))
                    move[a, sl] += prop * acc / len(x)
                move[a, a] += 1.0 - move[a].sum()
            for _ in range(sampler.steps):
                v = v @ move
            law = {z: float(p) for z, p in zip(states, v) if p > 0}
        return np.array([law.get(o, 0.0) for o in self.outcomes])

    def smc_law(self, sampler: "SMCPowerSampler", runs: int = 20_000, seed: int = 0,
                chunk: int = 1000) -> Tuple[np.ndarray, float]:
        """The law of the SMC power sampler's draw (smc.cpp, docs/math.md §6)
        at its particles, ramp, ESS threshold, block and rounds, by Monte
        Carlo over `runs` runs of the algorithm on the enumerated tree. The
        algorithm is written again here in NumPy (smc.cpp is not called), so
        the implementation's draws can be checked against it. Each run gives
        its exact law given its particles before the last draw (that draw's
        law is q's: Rao-Blackwellised), so 10^4 runs suffice. Returns the
        law and its error as best_of_samples does (½ Σ 3 standard errors).
        Unlike π, this law carries SMC's finite-N bias."""
        tree = _Tree(self)
        rng = np.random.default_rng(seed)
        total, total_sq = np.zeros(len(self.outcomes)), np.zeros(len(self.outcomes))
        for start in range(0, runs, chunk):
            m = min(chunk, runs - start)
            ends = [tree.smc_round(sampler, m, rng) for _ in range(sampler.rounds)]
            # Rounds combine by Ẑ_r: one draw ∝ exp(log w) over every particle of every round.
            lw = np.concatenate([e[0] for e in ends], axis=1)
            w = np.exp(lw - lw.max(axis=1, keepdims=True))
            w /= w.sum(axis=1, keepdims=True)
            law = np.zeros((m, len(self.outcomes)))
            run_of = np.repeat(np.arange(m)[:, None], sampler.particles, axis=1)
            for k, (_lw, outcome, law_of_last) in enumerate(ends):
                wk = w[:, k * sampler.particles:(k + 1) * sampler.particles]
                done = outcome >= 0
                np.add.at(law, (run_of[done], outcome[done]), wk[done])
                if law_of_last is not None:
                    outs, probs = law_of_last
                    r = run_of[~done]
                    np.add.at(law, (r[:, None], outs), wk[~done][:, None] * probs)
            total += law.sum(axis=0)
            total_sq += (law * law).sum(axis=0)
        mean = total / runs
        se = np.sqrt(np.maximum(total_sq / runs - mean ** 2, 0.0) / runs)
        return mean, 0.5 * float(3 * se.sum())

    def outcome(self, tokens: Sequence[int]) -> Outcome:
        """The outcome of a generation of at most `length` tokens that stops at
        end-of-sequence without returning it."""
        return tuple(tokens) if len(tokens) == self.length else tuple(tokens) + (self.eos,)


class _Tree:
    """The enumerated completions as arrays, for simulating SMC: per prefix
    (node), log p(v | node), the child node of each token, or the outcome it
    ends in."""

    def __init__(self, space: Completions) -> None:
        nodes = sorted(space.next_lp, key=lambda x: (len(x), x))
        node_of = {x: i for i, x in enumerate(nodes)}
        self.lp = np.stack([space.next_lp[x] for x in nodes])
        self.child = np.full(self.lp.shape, -1)
        self.ends = np.full(self.lp.shape, -1)
        for i, x in enumerate(nodes):
            for v in range(self.lp.shape[1]):
                if x + (v,) in node_of:
                    self.child[i, v] = node_of[x + (v,)]
                else:
                    self.ends[i, v] = space.index[x + (v,)]
        self.length = space.length

    def tempered(self, a: float) -> Tuple[np.ndarray, np.ndarray]:
        """q = softmax(a·ℓ) and log Z = log Σ_v p(v)^a, per node."""
        s = a * self.lp
        hi = s.max(axis=1, keepdims=True)
        e = np.exp(s - hi)
        return e / e.sum(axis=1, keepdims=True), np.log(e.sum(axis=1)) + hi[:, 0]

    def smc_round(self, sampler, m: int, rng: np.random.Generator):
        """One round of `m` independent runs: the final log-weights (m, N),
        each particle's outcome (-1 while live), and, when the last draw was
        left out, the outcomes and q of each live particle's last token."""
        n, alpha, ramp = sampler.particles, sampler.alpha, sampler.ramp
        node = np.zeros((m, n), dtype=np.int64)
        outcome = np.full((m, n), -1)
        loglik, lw = np.zeros((m, n)), np.zeros((m, n))
        a_prev = 1.0
        for t in range(1, self.length + 1):
            a_t = alpha if ramp <= 0 or t >= ramp else 1.0 + (alpha - 1.0) * t / ramp  # smc_alpha_at
            q, log_z = self.tempered(a_t)
            live = outcome < 0
            lw += (a_t - a_prev) * loglik + np.where(live, log_z[node], 0.0)
            a_prev = a_t
            if t % sampler.block == 0:
                hi = lw.max(axis=1, keepdims=True)
                w = np.exp(lw - hi)
                ess = w.sum(axis=1) ** 2 / (w * w).sum(axis=1)
                # smc.cpp stops stepping a run once all its particles have ended: no resampling then.
                r = np.nonzero((ess < sampler.ess_threshold * n) & live.any(axis=1))[0]
                if r.size:
                    src = _systematic_slots(w[r] / w[r].sum(axis=1, keepdims=True), rng)
                    for arr in (node, outcome, loglik):
                        arr[r] = np.take_along_axis(arr[r], src, axis=1)
                    lw[r] = (hi[r, 0] + np.log(w[r].mean(axis=1)))[:, None]  # every weight the mean
                live = outcome < 0
            if t == self.length and a_t == alpha:  # the last draw's law is q's: not drawn
                nl = node[live]
                return lw, outcome, (self.ends[nl], q[nl])
            cdf = np.cumsum(q[node], axis=2)
            y = np.minimum((cdf <= rng.random((m, n, 1)) * cdf[..., -1:]).sum(axis=2), q.shape[1] - 1)
            loglik = np.where(live, loglik + self.lp[node, y], loglik)
            ended = live & (self.ends[node, y] >= 0)
            outcome = np.where(ended, self.ends[node, y], outcome)
            node = np.where(live & ~ended, self.child[node, y], node)
        lw += (alpha - a_prev) * loglik  # the rest of the ramp: every particle has ended
        return lw, outcome, None


def _systematic_slots(w: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """smc_systematic_resample then smc_resample_slots, per row of normalised
    weights: each slot's source (a particle with offspring keeps its slot;
    its further copies fill, in order, the slots of particles with none)."""
    m, n = w.shape
    cw = np.cumsum(w, axis=1)
    points = (rng.random((m, 1)) + np.arange(n)[None, :]) / n
    anc = np.stack([np.searchsorted(c, p, side="right") for c, p in zip(cw, points)])
    last = np.array([np.nonzero(row > 0)[0][-1] for row in w])
    anc = np.where(anc < n, anc, last[:, None])  # rounding past the end: the last particle with weight
    off = np.zeros((m, n), dtype=np.int64)
    np.add.at(off, (np.repeat(np.arange(m), n), anc.ravel()), 1)
    src = np.tile(np.arange(n), (m, 1))
    src[off == 0] = np.repeat(np.tile(np.arange(n), m), np.maximum(off - 1, 0).ravel())
    return src


def tv(a: np.ndarray, b: np.ndarray) -> float:
    return 0.5 * float(np.abs(np.asarray(a) - np.asarray(b)).sum())


def tv_noise_quantile(law: np.ndarray, n: int, q: float = 0.99, reps: int = 2000, seed: int = 0) -> float:
    """The q-quantile of TV(empirical law of n exact draws, law): what an
    exact sampler's TV stays under with probability q at n draws (simulated
    with a fixed seed, `reps` repetitions)."""
    rng = np.random.default_rng(seed)
    p = np.asarray(law, dtype=np.float64)
    p = p / p.sum()
    counts = rng.multinomial(n, p, size=reps)
    return float(np.quantile(0.5 * np.abs(counts / n - p).sum(axis=1), q))


def empirical(llm: llama_cpp.Llama, sampler, space: Completions, n: int, *, first_seed: int = 0,
              label: Optional[str] = None) -> Tuple[np.ndarray, Dict[str, float]]:
    """The empirical law of n generations (seeds first_seed..) of at most
    space.length tokens with `sampler`, and the mean of each numeric stat the
    generations report (rollout tokens, ...) with the seconds per draw."""
    from ..generation import generate
    counts = np.zeros(len(space.outcomes))
    totals: Dict[str, float] = {}
    t0 = time.perf_counter()
    for i in range(n):
        g = generate(llm, space.prompt, sampler, max_tokens=space.length, seed=first_seed + i, add_special=False,
                     progress=False)
        counts[space.index[space.outcome(g.tokens)]] += 1
        for key, value in (getattr(g, "stats", None) or {}).items():
            totals[key] = totals.get(key, 0.0) + float(value)
        if label is not None and ((i + 1) % 100 == 0 or i + 1 == n):
            rate = (i + 1) / max(time.perf_counter() - t0, 1e-9)
            print(f"\r[eval] {label}: {i + 1}/{n} samples ({rate:.0f}/s)", end="" if i + 1 < n else "\n",
                  file=sys.stderr, flush=True)
    stats = {key: value / n for key, value in totals.items()}
    stats["seconds_per_draw"] = (time.perf_counter() - t0) / n
    return counts / n, stats
