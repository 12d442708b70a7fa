"""In-graph sampling (llama.cpp's backend sampling) of our decoders, on this
machine's CPU backend (the same graph code runs on CUDA and Metal).

For every decoder with an in-graph form, q as the graph computes it (probs
with their candidate ids) equals the CPU path's q to 1e-5, on synthetic
logits with ties at the support boundaries and -inf entries, on the tiny
model's logits and on Gemma 3 270M's, at temperature 0 too; the tokens the
graph draws follow q (TV of N seeded draws under the 0.999 quantile of an
exact sampler's TV at the same N, eval/exact.tv_noise_quantile); and the
whole path works through a real context: llama_context_params.samplers and
llama_set_sampler with our samplers, generate(..., backend_sampling=True)
and sample_k(..., backend_sampling=True).
"""

from __future__ import annotations

import ctypes

import llama_cpp
import numpy as np
import pytest

import llama_simplex as ls
from llama_simplex import _core
from llama_simplex.eval import exact

TOL = 1e-5


@pytest.fixture(params=["host", "portable"])
def form(request, monkeypatch):
    """The in-graph form backend_init chooses: on this CPU the host form (our
    kernel as one custom op) unless LLAMA_SIMPLEX_GRAPH_FORM=portable forces
    the portable graph of element-wise ops that CUDA and Metal run."""
    if request.param == "portable":
        monkeypatch.setenv("LLAMA_SIMPLEX_GRAPH_FORM", "portable")
    else:
        monkeypatch.delenv("LLAMA_SIMPLEX_GRAPH_FORM", raising=False)
    return request.param

DECODERS = {
    "greedy": ls.Greedy(),
    "softmax": ls.Softmax(1.0),
    "softmax-T0.7": ls.Softmax(0.7),
    "softmax-T0": ls.Softmax(0.0),
    "top-k": ls.TopK(5, 0.8),
    "top-k-1": ls.TopK(1, 1.0),
    "top-k-40-T1.3": ls.TopK(40, 1.3),
    "top-k-T0": ls.TopK(5, 0.0),
    "top-p": ls.TopP(0.9, 0.8),
    "top-p-small": ls.TopP(0.3, 1.0),
    "top-p-temperature-order": ls.TopP(0.5, 1.3, order="temperature"),
    "top-p-min-keep": ls.TopP(0.05, 1.0, min_keep=4),
    "top-p-T0": ls.TopP(0.9, 0.0),
    "min-p": ls.MinP(0.1, 0.9),
    "min-p-min-keep": ls.MinP(0.6, 1.0, min_keep=3),
    "min-p-T0": ls.MinP(0.05, 0.0),
    "sparsemax": ls.Sparsemax(1.0),
    "sparsemax-T3": ls.Sparsemax(3.0),
    "sparsemax-T0": ls.Sparsemax(0.0),
    "best-of-k": ls.BestOfK.preset("paper-0.05", temperature=0.8),
    "best-of-k-0.01": ls.BestOfK.preset("paper-0.01"),
    "best-of-k-gap-K1": ls.BestOfK(weights="gap", k_samples=1, m=20),
    "objective-entropy-kl": ls.Objective(lam=0.7, entropy=0.5, kl=1.0, beta=0.2, m=4, steps=5),
}


def dense(ids, probs, n: int) -> np.ndarray:
    out = np.zeros(n)
    out[np.asarray(ids)] = probs
    return out


def cpu_q(sampler: ls.Sampler, logits: np.ndarray) -> np.ndarray:
    ids, _logits, p, _selected, _sorted = sampler.native().apply(logits)
    return dense(ids, p, len(logits))


def graph_q(sampler: ls.Sampler, logits: np.ndarray, seed=None):
    """(q over the vocabulary, drawn token) as the in-graph form computes them."""
    out = _core.graph_sample(sampler.native(seed=seed), logits)
    assert out is not None, f"{sampler!r} has no in-graph form"
    probs, ids, token = out
    return dense(np.arange(len(probs)) if ids is None else ids, probs, len(logits)), token


def synthetic(kind: str) -> np.ndarray:
    rng = np.random.default_rng(7)
    x = rng.normal(size=1000).astype(np.float32) * 3
    if "ties" in kind:  # many equal logits, at every boundary
        x = np.round(x * 0.7).astype(np.float32)
    if "inf" in kind:
        x[rng.choice(len(x), 300, replace=False)] = -np.inf
    return x


def assert_same_q(sampler, logits):
    ours, _ = graph_q(sampler, logits)
    ref = cpu_q(sampler, logits)
    assert np.abs(ours - ref).max() <= TOL, (sampler, np.abs(ours - ref).max())
    assert abs(ours.sum() - 1.0) <= TOL


@pytest.mark.parametrize("name", list(DECODERS))
def test_a_row_of_llama_cpps_padded_logits_is_read_from_the_logits(name, form):
    """llama.cpp hands each sampler a row of a padded copy of the logits (one
    zero row appended by ggml_pad, a per-element copy of every logit per
    decode). Given a row that the logits hold, the graph reads it there: no
    pad node is left in the graph, and q and the drawn token are those of the
    row given alone. The dummy row (only the padded copy has it) keeps the pad
    and is the zero row."""
    sampler = DECODERS[name]
    rng = np.random.default_rng(11)
    rows = (rng.normal(size=(2, 500)) * 3).astype(np.float32)
    rows[1, rng.choice(500, 100, replace=False)] = -np.inf
    for r in range(3):
        out = _core.graph_sample_padded(sampler.native(seed=5), rows, r)
        probs, ids, token, pad_nodes = out
        alone = rows[r] if r < 2 else np.zeros(500, dtype=np.float32)
        q, t = graph_q(sampler, alone, seed=5)
        assert pad_nodes == (0 if r < 2 else 1), (name, r, pad_nodes)
        assert np.array_equal(dense(np.arange(len(probs)) if ids is None else ids, probs, 500), q), (name, r)
        assert token == t, (name, r)


@pytest.mark.parametrize("kind", ["random", "ties", "inf", "ties-inf"])
@pytest.mark.parametrize("name", list(DECODERS))
def test_graph_q_equals_cpu_q_on_synthetic_logits(name, kind, form):
    assert_same_q(DECODERS[name], synthetic(kind))


def top_k_rows():
    """Rows of 100 blocks of 64 logits for the host top-k, which runs its
    kernel on the tokens not below the k-th largest block maximum: all tied;
    fewer finite blocks than k; the k best in one block; a tie at the bar
    straddling blocks."""
    rng = np.random.default_rng(3)
    tied = np.zeros(6400, np.float32)
    sparse = np.full(6400, -np.inf, np.float32)
    sparse[[70, 700, 6399]] = [1.0, 2.0, 2.0]
    one_block = rng.normal(size=6400).astype(np.float32)
    one_block[640:680] = 10 + rng.normal(size=40).astype(np.float32)
    bar_tie = np.round(rng.normal(size=6400) * 2).astype(np.float32)
    return {"tied": tied, "sparse": sparse, "one-block": one_block, "bar-tie": bar_tie}


@pytest.mark.parametrize("row", list(top_k_rows()))
@pytest.mark.parametrize("k", [1, 5, 40, 99, 101])
def test_top_k_on_rows_that_cut_its_candidates_short(row, k, form):
    x = top_k_rows()[row]
    sampler = ls.TopK(k, 0.9)
    assert_same_q(sampler, x)
    if form == "host":
        for seed in range(5):
            ids, _logits, _p, selected, _sorted = sampler.native(seed=seed).apply(x)
            assert graph_q(sampler, x, seed=seed)[1] == ids[selected]


def test_ties_sit_on_the_boundaries_the_tests_use():
    """The tie case is one: the 5th and 6th best logits are equal (top-k 5
    must choose the lower id) and the maximum is tied (greedy)."""
    x = np.sort(synthetic("ties"))[::-1]
    assert x[4] == x[5] and x[0] == x[1]


def model_logits(llm: llama_cpp.Llama, tokens) -> np.ndarray:
    llm.reset()
    llm.eval(tokens)
    return np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(llm.n_vocab(),)).copy()


@pytest.mark.parametrize("name", list(DECODERS))
def test_graph_q_equals_cpu_q_on_tiny_model_logits(name, tiny_llm, tiny_text, form):
    logits = model_logits(tiny_llm, tiny_llm.tokenize(tiny_text.encode()))
    assert_same_q(DECODERS[name], logits)
    logits[[3, 5]] = -np.inf
    assert_same_q(DECODERS[name], logits)


@pytest.fixture(scope="module")
def gemma_logits():
    llm = ls.load_model()
    yield model_logits(llm, llm.tokenize(b"The capital of France is"))


@pytest.mark.parametrize("name", list(DECODERS))
def test_graph_q_equals_cpu_q_on_gemma_logits(name, gemma_logits, form):
    assert len(gemma_logits) == 262144
    assert_same_q(DECODERS[name], gemma_logits)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize("name", list(DECODERS))
def test_nan_or_inf_logits_give_no_distribution(name, bad, form):
    """A NaN or +inf among finite logits (the CPU kernels' nan_logit /
    inf_logit): the graph runs (its sorts see a total order) and the q it
    leaves has no finite positive mass at its token, which the generate
    loop reports as an error."""
    x = synthetic("random")
    x[[10, 500]] = bad
    q, token = graph_q(DECODERS[name], x, seed=1)
    with pytest.raises(ValueError):
        DECODERS[name].native().apply(x)
    assert not (q[token] > 0 and np.isfinite(q[token]))


def test_temperature_zero_is_greedy_with_the_lowest_id_on_ties(form):
    x = np.array([1.0, 3.0, -np.inf, 3.0, 2.0], dtype=np.float32)
    for sampler in (ls.Greedy(), ls.Softmax(0.0), ls.TopK(3, 0.0), ls.TopP(0.5, 0.0), ls.MinP(0.1, 0.0)):
        q, token = graph_q(sampler, x, seed=1)
        assert q.tolist() == [0.0, 1.0, 0.0, 0.0, 0.0] and token == 1


@pytest.mark.parametrize("sampler", [ls.Softmax(1e-40), ls.BestOfK(weights="rank"), ls.BestOfK(support="top-k:20"),
                                     ls.Objective(lam=0.5, entropy=1.0, kl=0.0, l2=1.0), ls.BestOfK(steps=100)],
                         ids=repr)
def test_in_graph_sampling_refuses_what_it_cannot_reproduce(sampler, form):
    """No exact in-graph form: a subnormal temperature (1/T overflows
    float), rank weights, a truncated support, ½‖q‖², more than 16 solver
    steps. The sampler stays on the CPU (None here; in a context llama.cpp
    runs its apply)."""
    assert _core.graph_sample(sampler.native(), np.zeros(8, np.float32)) is None


def test_best_of_k_in_graph_takes_its_solver_steps(form):
    """The in-graph Best-of-K is the solver's q after its steps, not r nor
    the closed form without coverage (which the tests above would also
    match if the steps did nothing)."""
    x = synthetic("random")
    bok = DECODERS["best-of-k"]
    q, _ = graph_q(bok, x)
    no_coverage = ls.BestOfK.preset("paper-0.05", temperature=0.8, beta=0.0)
    assert np.abs(q - cpu_q(no_coverage, x)).max() > 1e-3
    assert np.abs(q - cpu_q(ls.Softmax(1.0), x)).max() > 1e-3


# Decoders whose in-graph kind is softmax while their own kernel is not
# softmax() (top-k with k >= n sorts the row, so its sum and its draw's order
# differ): the host form's softmax-on-the-row shortcut is for Softmax and
# Dist only; and the least normal-float temperatures (1/T near float's
# largest; a subnormal T has no in-graph form).
SOFTMAX_EDGES = {
    "top-p-1": ls.TopP(1.0, 0.8),
    "top-k-all": ls.TopK(0, 0.8),
    "top-k-over-n": ls.TopK(300000, 0.8),  # k >= n: the kernel sorts
    "min-p-0": ls.MinP(0.0, 0.8),
    "softmax-T1e-37": ls.Softmax(1e-37),
}


def gemma_sized(kind: str) -> np.ndarray:
    """A row of Gemma 3 270M's vocabulary size (262,144), with ties."""
    rng = np.random.default_rng(3)
    x = (rng.normal(size=262144) * 3).astype(np.float32)
    x[::1000] = x[0]
    if "inf" in kind:
        x[rng.choice(len(x), 5000, replace=False)] = -np.inf
    return x


@pytest.mark.parametrize("kind", ["ties-inf", "random", "ties", "gemma-sized", "gemma-sized-inf"])
@pytest.mark.parametrize("name", [n for n in DECODERS if not n.startswith("objective")] + ["dist"]
                         + list(SOFTMAX_EDGES))
def test_host_form_gives_the_cpu_paths_q_and_token(name, kind):
    """The host form runs the CPU path's kernel (for Softmax and Dist,
    softmax over the row itself when every logit is finite) and pick() on
    the uniform the CPU draw takes next: q is the CPU path's bit for bit, and
    for a seed it draws the CPU path's token (the portable graph draws from
    the same law, in float, over the positions)."""
    sampler = ls.Dist(0) if name == "dist" else {**DECODERS, **SOFTMAX_EDGES}[name]
    x = gemma_sized(kind) if kind.startswith("gemma") else synthetic(kind)
    if name != "dist":  # Dist passes no q (it selects)
        assert np.array_equal(graph_q(sampler, x)[0], cpu_q(sampler, x)), (name, kind)
    for seed in range(20 if len(x) < 10000 else 5):
        ids, _logits, _p, selected, _sorted = sampler.native(seed=seed).apply(x)
        assert graph_q(sampler, x, seed=seed)[1] == ids[selected], (name, seed)


def test_the_portable_form_is_the_one_forced(monkeypatch):
    """LLAMA_SIMPLEX_GRAPH_FORM=portable does switch forms on the CPU: the
    portable top-k draws over ggml_top_k's order, so some of 40 seeded draws
    differ from the CPU path's token, none in the host form (above)."""
    monkeypatch.setenv("LLAMA_SIMPLEX_GRAPH_FORM", "portable")
    x = synthetic("random")
    sampler = ls.TopK(40, 1.0)
    same = []
    for seed in range(40):
        ids, _logits, _p, selected, _sorted = sampler.native(seed=seed).apply(x)
        same.append(graph_q(sampler, x, seed=seed)[1] == ids[selected])
    assert not all(same)


@pytest.mark.parametrize("value", ["host", "PORTABLE", "1"])
def test_a_bad_graph_form_setting_is_refused(value, monkeypatch, tiny_llm):
    monkeypatch.setenv("LLAMA_SIMPLEX_GRAPH_FORM", value)
    with pytest.raises(ValueError, match="LLAMA_SIMPLEX_GRAPH_FORM must be 'auto' or 'portable'"):
        _core.graph_sample(ls.TopK(3).native(seed=1), synthetic("random"))
    with pytest.raises(ValueError, match="LLAMA_SIMPLEX_GRAPH_FORM"):
        ls.generate(tiny_llm, [1, 3], ls.Greedy(), max_tokens=1, backend_sampling=True)
    monkeypatch.setenv("LLAMA_SIMPLEX_GRAPH_FORM", "auto")
    assert _core.graph_sample(ls.TopK(3).native(seed=1), synthetic("random")) is not None


CHAINS = [ls.Chain(ls.TopK(8), ls.TopP(0.9, 1.0)), ls.Chain(ls.TopK(8, 1.0), ls.Softmax(0.9)),
          ls.Chain(ls.BestOfK.preset("paper-0.05"), ls.TopP(0.9, 1.0)), ls.Chain(ls.MinP(0.1, 1.0), ls.Sparsemax(1.0)),
          ls.Chain(ls.Softmax(0.8), ls.Greedy())]


@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize("chain", CHAINS, ids=repr)
def test_a_bad_row_fails_through_a_chain_of_in_graph_members(chain, bad, form):
    """q of a chain of in-graph members equals the CPU chain's; with a NaN or
    +inf logit the first member's output must carry the failure to the last
    one's q (the portable top-k and Best-of-K once passed on finite logits
    that the last member turned into a valid q)."""
    x = synthetic("random")
    ours, _ = graph_q(chain, x)
    assert np.abs(ours - cpu_q(chain, x)).max() <= TOL
    x[[10, 500]] = bad
    q, token = graph_q(chain, x, seed=1)
    assert not (q[token] > 0 and np.isfinite(q[token]))


def test_nan_logits_fail_through_an_in_graph_chain_in_generate(nan_model_path, form):
    llm = llama_cpp.Llama(model_path=str(nan_model_path), n_ctx=64, verbose=False)
    try:
        with pytest.raises(RuntimeError, match="not a distribution"):
            ls.generate(llm, [1, 3], ls.Chain(ls.TopK(8), ls.Softmax(0.9)), max_tokens=2, seed=0,
                        backend_sampling=True).tokens
    finally:
        llm.close()


N_DRAWS = 1500


@pytest.mark.parametrize("name", ["softmax", "top-k", "top-p", "top-p-temperature-order", "min-p", "sparsemax-T3",
                                  "best-of-k", "dist"])
def test_drawn_tokens_follow_q(name, tiny_llm, tiny_text, form):
    """N seeded in-graph draws on the tiny model's logits against the CPU q."""
    sampler = ls.Dist(0) if name == "dist" else DECODERS[name]
    logits = model_logits(tiny_llm, tiny_llm.tokenize(tiny_text.encode()))
    q = cpu_q(ls.Softmax(1.0) if name == "dist" else sampler, logits)
    counts = np.zeros(len(logits))
    for seed in range(N_DRAWS):
        _, token = graph_q(sampler, logits, seed=seed)
        assert q[token] > 0, (name, token)
        counts[token] += 1
    assert exact.tv(counts / N_DRAWS, q) <= exact.tv_noise_quantile(q, N_DRAWS, 0.999)


def test_drawn_tokens_are_seeded(form):
    logits = synthetic("random")
    draws = [graph_q(ls.TopP(0.95, 1.0), logits, seed=s)[1] for s in (5, 5, 6, 7, 8)]
    assert draws[0] == draws[1] and len(set(draws[1:])) > 1


# A real context: llama.cpp's own API with our samplers.

def _context_with(llm: llama_cpp.Llama, native: _core.NativeSampler, attach: str):
    """A context on llm's model whose sequence 0 samples in-graph with a
    chain holding `native` (given up to the chain)."""
    chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
    sampler_p = llama_cpp.llama_sampler_chain_init.restype
    llama_cpp.llama_sampler_chain_add(chain, ctypes.cast(native.release(), sampler_p))
    params = llama_cpp.llama_context_default_params()
    params.n_ctx, params.n_batch, params.n_ubatch = 256, 64, 64
    config = llama_cpp.llama_sampler_seq_config(0, ctypes.cast(chain, ctypes.c_void_p))
    if attach == "params":
        params.samplers = ctypes.pointer(config)
        params.n_samplers = 1
    ctx = llama_cpp.llama_init_from_model(llm.model, params)
    assert ctx
    if attach == "set_sampler":
        assert llama_cpp.llama_set_sampler(ctx, 0, chain)
    return ctx, chain, config


@pytest.mark.parametrize("attach", ["params", "set_sampler"])
@pytest.mark.parametrize("name", ["greedy", "top-k", "top-p", "min-p-min-keep", "sparsemax"])
def test_a_context_samples_in_graph_with_our_samplers(name, attach, tiny_llm, tiny_text, form):
    """llama_get_sampled_probs_ith / _candidates_ith hold q, the token is
    llama_get_sampled_token_ith, and llama_get_sampled_logits_ith the
    model's logits (our drawing decoder leaves them): q equals the CPU
    path's on those logits."""
    sampler = DECODERS[name]
    ctx, chain, _config = _context_with(tiny_llm, sampler.native(seed=3), attach)
    try:
        tokens = (llama_cpp.llama_token * 3)(*tiny_llm.tokenize(tiny_text.encode())[:3])
        assert llama_cpp.llama_decode(ctx, llama_cpp.llama_batch_get_one(tokens, 3)) == 0
        n_vocab = tiny_llm.n_vocab()
        token = llama_cpp.llama_get_sampled_token_ith(ctx, -1)
        assert token != llama_cpp.LLAMA_TOKEN_NULL, "the backend ran the sampler on the CPU (an op it lacks?)"
        n = llama_cpp.llama_get_sampled_probs_count_ith(ctx, -1)
        probs = np.ctypeslib.as_array(llama_cpp.llama_get_sampled_probs_ith(ctx, -1), shape=(n,)).copy()
        n_ids = llama_cpp.llama_get_sampled_candidates_count_ith(ctx, -1)
        ids = np.ctypeslib.as_array(llama_cpp.llama_get_sampled_candidates_ith(ctx, -1), shape=(max(n_ids, n),))
        ids = ids[:n].copy() if n_ids else np.arange(n)
        assert llama_cpp.llama_get_sampled_logits_count_ith(ctx, -1) == n_vocab
        logits = np.ctypeslib.as_array(llama_cpp.llama_get_sampled_logits_ith(ctx, -1), shape=(n_vocab,)).copy()
        q = dense(ids, probs, n_vocab)
        assert np.abs(q - cpu_q(sampler, logits)).max() <= TOL
        assert 0 <= token < n_vocab and q[token] > 0
    finally:
        llama_cpp.llama_free(ctx)
        llama_cpp.llama_sampler_free(chain)


def test_generate_in_graph_follows_q(tiny_llm, tiny_text):
    """The first token of generate(..., backend_sampling=True) against q."""
    tokens = tiny_llm.tokenize(tiny_text.encode())
    sampler = ls.TopK(4, 1.0)
    q = cpu_q(sampler, model_logits(tiny_llm, tokens))
    n = 300
    counts = np.zeros(len(q))
    for seed in range(n):
        first = ls.generate(tiny_llm, tokens, sampler, max_tokens=1, seed=seed, add_special=False,
                            backend_sampling=True).tokens
        counts[first[0] if first else 2] += 1  # 2: end of sequence, which ends the generation
    assert exact.tv(counts / n, q) <= exact.tv_noise_quantile(q, n, 0.999)


@pytest.mark.parametrize("sampler", [ls.Greedy(), ls.TopP(0.9, 0.8), ls.Sparsemax(1.0),
                                     ls.Chain(ls.TopK(8), ls.Softmax(0.9))], ids=repr)
def test_generate_in_graph_is_seeded_and_leaves_llm_alone(sampler, tiny_llm, tiny_text):
    before = model_logits(tiny_llm, tiny_llm.tokenize(tiny_text.encode()))
    runs = [ls.generate(tiny_llm, tiny_text, sampler, max_tokens=12, seed=9, backend_sampling=True).tokens
            for _ in range(2)]
    assert runs[0] == runs[1] and len(runs[0]) > 0
    after = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(tiny_llm.ctx, -1), shape=(len(before),))
    assert np.array_equal(before, after)  # llm's context was not used


@pytest.mark.parametrize("sampler", [ls.Softmax(0.9), ls.TopK(8, 1.2), ls.TopP(0.9, 0.8), ls.MinP(0.05, 1.0),
                                     ls.Sparsemax(1.5), ls.BestOfK.preset("paper-0.05", temperature=0.8),
                                     ls.Chain(ls.TopK(8), ls.TopP(0.9, 1.0))], ids=repr)
def test_host_form_generates_what_the_cpu_path_does(sampler, tiny_llm, tiny_text):
    """On the CPU the host form is the default, and it draws the CPU path's
    token for a seed: a seeded in-graph generation is the CPU path's. (For a
    chain this holds when the members before the last leave few candidates,
    top-k with k < n or greedy, which keep the CPU path's order; a member
    that keeps the whole row passes it on in id order, where the CPU path
    passes its kernel's order, so the last member's pick sees another order:
    the same law, another token for a seed.)"""
    kw = dict(max_tokens=16, seed=11)
    graph = ls.generate(tiny_llm, tiny_text, sampler, backend_sampling=True, **kw).tokens
    assert len(graph) > 0 and graph == ls.generate(tiny_llm, tiny_text, sampler, **kw).tokens


def test_greedy_in_graph_generates_what_the_cpu_path_does():
    llm = ls.load_model()
    prompt = "The capital of France is"
    graph = ls.generate(llm, prompt, ls.Greedy(), max_tokens=16, seed=0, backend_sampling=True).tokens
    assert graph == ls.generate(llm, prompt, ls.Greedy(), max_tokens=16, seed=0).tokens


def test_sample_k_in_graph(tiny_llm, tiny_text):
    kw = dict(max_tokens=6, seed=4, backend_sampling=True)
    a = ls.sample_k(tiny_llm, tiny_text, 4, ls.TopP(0.95, 1.0), **kw)
    b = ls.sample_k(tiny_llm, tiny_text, 4, ls.TopP(0.95, 1.0), **kw)
    assert a.tokens == b.tokens and len(set(map(tuple, a.tokens))) > 1
    assert all(np.isfinite(a.logliks)) and all(ll <= 0 for ll in a.logliks)
    greedy = ls.sample_k(tiny_llm, tiny_text, 2, ls.Greedy(), max_tokens=6, seed=4, backend_sampling=True)
    ref = ls.sample_k(tiny_llm, tiny_text, 2, ls.Greedy(), max_tokens=6, seed=4)
    assert greedy.tokens == ref.tokens
    assert np.allclose(greedy.logliks, ref.logliks, atol=1e-4)


@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("name", ["softmax", "top-p", "min-p", "best-of-k"])
def test_host_form_sample_k_draws_the_cpu_path_tokens(tiny_llm, tiny_text, name, k):
    """The host form draws with pick() from the sampler's own rng, so seeded
    in-graph sample_k gives the CPU path's completions: no draw is taken at
    the prompt's prefill (an output there would be a draw of sequence 0's
    sampler, and every later draw of it would shift)."""
    sampler = DECODERS[name]
    for seed in range(4):
        kw = dict(max_tokens=6, seed=seed)
        graph = ls.sample_k(tiny_llm, tiny_text, k, sampler, backend_sampling=True, **kw)
        assert graph.tokens == ls.sample_k(tiny_llm, tiny_text, k, sampler, **kw).tokens, (name, k, seed)


def test_nan_logits_fail_in_graph_as_on_the_cpu(nan_model_path):
    llm = llama_cpp.Llama(model_path=str(nan_model_path), n_ctx=64, verbose=False)
    try:
        with pytest.raises(RuntimeError, match="not a distribution"):
            ls.generate(llm, [1, 3], ls.TopK(4), max_tokens=2, seed=0, backend_sampling=True).tokens
    finally:
        llm.close()


@pytest.mark.parametrize("bad", [1, "yes", None])
def test_backend_sampling_must_be_a_bool(bad, tiny_llm):
    with pytest.raises(TypeError, match="backend_sampling"):
        ls.generate(tiny_llm, [1, 3], ls.Greedy(), max_tokens=1, backend_sampling=bad)


def test_sequence_samplers_refuse_backend_sampling(tiny_llm):
    for sampler in (ls.PowerSampler(alpha=2.0), ls.BlockPowerSampler(alpha=2.0), ls.MCMCPowerSampler(alpha=2.0)):
        with pytest.raises(ValueError, match="backend_sampling.*sequence-level"):
            ls.generate(tiny_llm, [1, 3], sampler, max_tokens=1, backend_sampling=True)
    with pytest.raises(ValueError, match="backend_sampling"):
        ls.sample_k(tiny_llm, [1, 3], 2, ls.PowerSampler(alpha=2.0), max_tokens=1, backend_sampling=True)


def test_per_token_timings_the_bench_reports():
    """bench generation part 3's timers: positive seconds per token, and
    None in-graph for a sampler without an in-graph form."""
    x = synthetic("random")
    assert _core.graph_seconds(ls.TopP(0.9, 0.8).native(seed=1), x, 3, 1) > 0
    assert _core.cpu_path_seconds(ls.TopP(0.9, 0.8).native(seed=1), x, 3) > 0
    assert _core.graph_seconds(ls.BestOfK(weights="rank").native(seed=1), x, 3, 1) is None
