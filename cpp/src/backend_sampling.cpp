#include "backend_sampling.h"

#include <algorithm>
#include <cfloat>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>

#include "ggml-alloc.h"
#include "ggml-backend.h"
#include "ggml.h"
#include "sampler_adapter.h"

// The decoders of docs/math.md §1 as ggml graphs. Every graph computes the
// same q as the CPU kernel of simplex.cpp, with the same conventions:
//   - shifted coordinates, s = (logit - max logit) / T, then softmax;
//   - T = 0 is greedy; ties at a support's boundary go to the lower id
//     (the CPU kernels' ranks_before), which no sort op of ggml promises
//     (argsort and top_k order ties arbitrarily): boundaries are therefore
//     taken by value, and tied tokens at a boundary are admitted in id order
//     by a cumulative sum (prefix_mask);
//   - -inf logits have q = 0; min_keep widens a support to the top min_keep.
// The graphs only see the logits as a tensor, so the top-p nucleus and the
// min-p threshold are decided in float where the CPU kernels use double:
// they can differ only for a token whose cumulative mass or logit gap is
// within float rounding of p or log p_min.
//
// Two forms of each decoder (backend_init chooses, per sampler):
//   - the host form, on a device that is the CPU: a graph op there is CPU
//     code, so the cheapest exact form is our kernel itself as one custom op
//     (ggml_custom_4d, which only the CPU backend runs). It reads the logits
//     tensor where it lies and runs the CPU path's kernel (the sampler's own
//     run(), double where it uses double), so q is the CPU path's bit for
//     bit, and the draw is pick() with the sampler's next uniform: the same
//     token as the CPU path for the same seed (in a chain, when the members
//     before it leave the CPU path's order: greedy, top-k with k < n; a
//     member that keeps the whole row passes it on in id order). Greedy
//     scans the float row (greedy_row) without a candidate array; top-k
//     gives its kernel only the tokens that can rank in its k best
//     (gather_top). The op's userdata is the sampler itself, which outlives
//     every graph llama.cpp builds with it (a clone builds its own ops;
//     copy_state copies no graph state).
//   - the portable graph of element-wise ops below, for every other device
//     (CUDA, Metal, ...), and on the CPU when LLAMA_SIMPLEX_GRAPH_FORM=portable
//     (read at backend_init; tests and benchmarks use it to run this form here).

namespace llama_simplex {
namespace detail {

namespace {

using Kind = GraphDecoder::Kind;

SamplerBase * base(const llama_sampler * smpl) {
    return static_cast<SamplerBase *>(smpl->ctx);
}

// A 1-D tensor seen as n rows of one value: the form ggml_get_rows gathers from.
ggml_tensor * as_rows(ggml_context * c, ggml_tensor * x) {
    return ggml_reshape_2d(c, x, 1, ggml_nelements(x));
}

// x[i] for a one-element index tensor i (I32): a [1, 1] tensor.
ggml_tensor * at(ggml_context * c, ggml_tensor * x, ggml_tensor * i) {
    return ggml_get_rows(c, as_rows(c, x), i);
}

ggml_tensor * flat(ggml_context * c, ggml_tensor * x) {
    return ggml_reshape_1d(c, x, ggml_nelements(x));
}

// 0/1 mask of the m best tokens of x in the order (value desc, position asc),
// given v, the value of the m-th best: every token above v, then the tokens
// equal to v in position order until m are taken. m is a constant (m_const)
// or a one-element tensor.
ggml_tensor * prefix_mask(ggml_context * c, ggml_tensor * x, ggml_tensor * v, ggml_tensor * m, float m_const) {
    ggml_tensor * d    = ggml_sub(c, x, v);
    ggml_tensor * gt   = ggml_step(c, d);                // x > v
    ggml_tensor * lt   = ggml_step(c, ggml_neg(c, d));   // x < v
    ggml_tensor * eq   = ggml_scale_bias(c, ggml_add(c, gt, lt), -1.0f, 1.0f);
    ggml_tensor * rank = ggml_cumsum(c, eq);             // 1, 2, ... among the ties, in position order
    ggml_tensor * n_gt = ggml_sum(c, gt);
    // need + 1/2, need = m - #(x > v): rank <= need  <=>  rank - (need + 1/2) < 0
    ggml_tensor * bar = m == nullptr ? ggml_scale_bias(c, n_gt, -1.0f, m_const + 0.5f)
                                     : ggml_scale_bias(c, ggml_sub(c, m, n_gt), 1.0f, 0.5f);
    ggml_tensor * take = ggml_step(c, ggml_neg(c, ggml_sub(c, rank, bar)));
    return ggml_add(c, gt, ggml_mul(c, eq, take));
}

// The value of the k-th best of x (k <= n): the smallest of ggml_top_k's k
// values (a set that does not depend on how ties are ordered).
ggml_tensor * kth_value(ggml_context * c, ggml_tensor * x, int32_t k) {
    ggml_tensor * vals = flat(c, ggml_get_rows(c, as_rows(c, x), ggml_top_k(c, x, k)));
    return at(c, vals, ggml_argmax(c, ggml_neg(c, vals)));
}

// x with NaN mapped to +inf (ggml's clamp keeps a bound where the value is
// NaN, on the CPU and CUDA): a sort key with a total order (a NaN among the
// keys breaks std::sort's contract), whose maximum is +inf exactly when the
// CPU kernels refuse the logits (NaN or +inf).
ggml_tensor * ordered(ggml_context * c, ggml_tensor * x) {
    return ggml_clamp(c, x, -INFINITY, INFINITY);
}

// A one-element factor for q: 1 when every logit is finite or -inf, else 0
// or NaN (max x is +inf, or the ordered maximum is where a NaN is). For the
// graphs whose q would not see a bad logit by itself (top-k gathers the k
// best, which skips NaN; the objective floors its scores).
ggml_tensor * poison(ggml_context * c, ggml_tensor * x) {
    ggml_tensor * xo = ordered(c, x);
    return ggml_exp(c, ggml_sub(c, at(c, x, ggml_argmax(c, x)), at(c, xo, ggml_argmax(c, xo))));
}

// Union of two 0/1 masks.
ggml_tensor * either(ggml_context * c, ggml_tensor * a, ggml_tensor * b) {
    return ggml_step(c, ggml_scale_bias(c, ggml_add(c, a, b), 1.0f, -0.5f));
}

struct Built {
    ggml_tensor * q = nullptr;       // probabilities over the candidates
    ggml_tensor * logits = nullptr;  // logits whose softmax is q (-inf outside the support)
    ggml_tensor * candidates = nullptr;
    ggml_tensor * index = nullptr;   // greedy: the chosen position (I32 [1])
};

// greedy: q = one-hot on the first maximum (the CPU kernel's lowest id when
// positions are ids; ggml_argmax itself returns the last one on the CPU and
// any one on other backends): its position is the number of positions before
// the first token equal to the maximum. q(argmax) = exp(max - max): 1, or
// NaN when no logit is finite (then the consumer's check fails, as the CPU
// kernel's status does).
Built build_greedy(ggml_context * c, ggml_tensor * x, ggml_tensor * candidates) {
    Built b;
    const int64_t n = ggml_nelements(x);
    ggml_tensor * xo = ordered(c, x);
    ggml_tensor * top = at(c, xo, ggml_argmax(c, xo));  // +inf when a logit is NaN or +inf
    ggml_tensor * is_top = ggml_scale_bias(c, ggml_step(c, ggml_neg(c, ggml_sub(c, xo, top))), -1.0f, 1.0f);
    ggml_tensor * before = ggml_step(c, ggml_scale_bias(c, ggml_cumsum(c, is_top), -1.0f, 0.5f));
    b.index = ggml_cast(c, ggml_clamp(c, ggml_sum(c, before), 0.0f, static_cast<float>(n - 1)), GGML_TYPE_I32);
    // 1 for finite logits; NaN when a logit is NaN or +inf, or none is finite
    b.q = flat(c, ggml_exp(c, ggml_sub(c, at(c, x, b.index), top)));
    b.logits = ggml_log(c, b.q);
    b.candidates = candidates != nullptr ? flat(c, ggml_get_rows(c, as_rows(c, candidates), b.index)) : b.index;
    return b;
}

// sparsemax(s) (docs/math.md §1): sort s, the support is the longest prefix
// with 1 + r s_(r) > Σ_{i<=r} s_(i), tau = (Σ_{i<=K} s_(i) - 1) / K, q =
// max(s - tau, 0) renormalised (the CPU kernel renormalises too).
ggml_tensor * sparsemax_q(ggml_context * c, ggml_tensor * s) {
    const int64_t n = ggml_nelements(s);
    ggml_tensor * order  = ggml_argsort(c, ordered(c, s), GGML_SORT_ORDER_DESC);
    ggml_tensor * sorted = flat(c, ggml_get_rows(c, as_rows(c, s), order));
    ggml_tensor * cum    = ggml_cumsum(c, sorted);
    ggml_tensor * r      = ggml_arange(c, 1.0f, static_cast<float>(n) + 1.0f, 1.0f);
    // 1 + r s_(r) - cum_r > 0 (NaN past the finite ones: not counted)
    ggml_tensor * in  = ggml_step(c, ggml_scale_bias(c, ggml_sub(c, ggml_mul(c, r, sorted), cum), 1.0f, 1.0f));
    ggml_tensor * kf  = ggml_clamp(c, ggml_sum(c, in), 1.0f, static_cast<float>(n));
    ggml_tensor * ki  = ggml_cast(c, ggml_scale_bias(c, kf, 1.0f, -1.0f), GGML_TYPE_I32);
    ggml_tensor * tau = ggml_div(c, ggml_scale_bias(c, at(c, cum, ki), 1.0f, -1.0f), kf);
    ggml_tensor * q   = ggml_relu(c, ggml_sub(c, s, tau));
    return ggml_div(c, q, ggml_sum(c, q));
}

// top-k with a compact output: q over k candidates. The support is exact
// (prefix_mask: ties at the k-th value go to the lower positions); a second
// ggml_top_k on the masked logits then gathers exactly those k tokens (their
// order among themselves does not matter), so the softmax and the draw run
// over k values, not the vocabulary.
Built build_top_k(ggml_context * c, const GraphDecoder & g, ggml_tensor * x, ggml_tensor * candidates) {
    ggml_tensor * keep = prefix_mask(c, x, kth_value(c, x, g.k), nullptr, static_cast<float>(g.k));
    ggml_tensor * ids = ggml_top_k(c, ggml_add(c, x, ggml_log(c, keep)), g.k);
    ggml_tensor * xk = flat(c, ggml_get_rows(c, as_rows(c, x), ids));
    Built b;
    ggml_tensor * ok = poison(c, x);
    b.logits = ggml_scale(c, ggml_sub(c, xk, at(c, xk, ggml_argmax(c, xk))), 1.0f / g.temperature);
    b.q = ggml_mul(c, ggml_soft_max(c, b.logits), ok);
    // The k gathered logits skip a NaN: pass the verdict on (log 1 = 0), so
    // a next member of the chain fails on a bad row as well.
    b.logits = ggml_add(c, b.logits, ggml_log(c, ok));
    b.candidates = candidates != nullptr ? flat(c, ggml_get_rows(c, as_rows(c, candidates), ids)) : ids;
    return b;
}

// A scalar constant as a one-element tensor (arange gives a 0 to start from).
ggml_tensor * constant(ggml_context * c, float v) {
    return ggml_scale_bias(c, ggml_arange(c, 0.0f, 1.0f, 1.0f), 0.0f, v);
}

// Best-of-K and the composite objectives without ½‖q‖² over the whole
// vocabulary (docs/math.md §2-3): the solver of solver.cpp (solve_simplex,
// whose iterates solve_simplex_affine reproduces) unrolled into J steps of
// element-wise ops. q0 = r; each step computes the gradient g and the gap
// max g - <q, g>; unless the gap is below tol (or an earlier step stopped),
// it tries th + eta (g - max g) and keeps it when the objective does not
// fall (within the solver's slack), else halves eta. Keeping or not is a
// 0/1 scalar, so the graph is static. In float where the CPU solver uses
// double: the ascent test compares objectives that differ by ~1e-9 near
// convergence, so late in a long solve (small gaps) the graph can keep a
// step the CPU halves or the reverse, and q then differs by that step
// (measured: 1e-4 at step 7 of an entropy + KL objective); at the presets
// (J = 5) q agrees to 1e-7.
Built build_objective(ggml_context * c, const ObjectiveParams & p, ggml_tensor * x) {
    const ObjectiveParams & o = p;
    const float lam_ent = static_cast<float>(static_cast<double>(o.lam) * o.entropy);
    const float lam_kl = static_cast<float>(static_cast<double>(o.lam) * o.kl);
    const float big_l = lam_ent + lam_kl;
    const float cov = static_cast<float>(static_cast<double>(o.lam) * o.beta);
    const int64_t n = ggml_nelements(x);
    const int64_t m = std::min<int64_t>(std::max<int32_t>(p.m, 0), n);
    // Shifted, scaled logits; -inf ones get a finite floor (their q is 0 in
    // float either way) so that no 0 * inf appears.
    ggml_tensor * top = at(c, x, ggml_argmax(c, x));
    ggml_tensor * d = ggml_sub(c, x, top);
    ggml_tensor * s = ggml_clamp(c, ggml_scale(c, d, static_cast<float>(1.0 / p.temperature)), -1e30f, 0.0f);
    ggml_tensor * xr = ggml_clamp(c, ggml_scale(c, d, static_cast<float>(1.0 / p.reference_temperature)), -1e30f, 0.0f);
    ggml_tensor * lr = ggml_sub(c, xr, ggml_log(c, ggml_sum(c, ggml_exp(c, xr))));
    Built b;
    if (cov == 0.0f || m == 0) {  // closed form: q ∝ exp((s + λ_kl log r) / Λ)
        ggml_tensor * ok = poison(c, x);
        b.logits = ggml_scale(c, ggml_add(c, s, ggml_scale(c, lr, lam_kl)), 1.0f / big_l);
        b.q = ggml_mul(c, ggml_soft_max(c, b.logits), ok);
        b.logits = ggml_add(c, b.logits, ggml_log(c, ok));  // as in build_top_k: the clamps hide a bad row
        return b;
    }
    // Coverage weights on the top-M tokens of r (ties: lower ids).
    ggml_tensor * w = prefix_mask(c, x, kth_value(c, x, static_cast<int32_t>(m)), nullptr, static_cast<float>(m));
    if (static_cast<CoverageWeights>(p.weights) == CoverageWeights::gap) w = ggml_mul(c, w, ggml_exp(c, xr));
    const float k = static_cast<float>(o.k_samples);
    ggml_tensor * base = ggml_add(c, s, ggml_scale(c, lr, lam_kl));  // s + λ_kl log r
    // The CPU solver drops -inf logits; here their gradient is pinned at the
    // floor (-Λ log q would grow without bound as their log q falls).
    ggml_tensor * live = ggml_step(c, ggml_scale_bias(c, x, 1.0f, FLT_MAX));
    ggml_tensor * dead_floor = ggml_scale_bias(c, live, 1e30f, -1e30f);
    ggml_tensor * cov_w = ggml_scale(c, w, cov);
    // (1 - q)^e for e >= 0 (q <= 1: 1 - q clamped at 0, whose log is -inf: 0^e = 0 for e > 0).
    auto pow_rest = [&](ggml_tensor * q, float e) {
        if (e == 0.0f) return ggml_scale_bias(c, q, 0.0f, 1.0f);
        return ggml_exp(c, ggml_scale(c, ggml_log(c, ggml_relu(c, ggml_scale_bias(c, q, -1.0f, 1.0f))), e));
    };
    struct State { ggml_tensor * th, * ln, * q, * f; };
    auto state = [&](ggml_tensor * th) {
        State st;
        st.th = th;
        ggml_tensor * hi = at(c, th, ggml_argmax(c, th));
        st.ln = ggml_add(c, hi, ggml_log(c, ggml_sum(c, ggml_exp(c, ggml_sub(c, th, hi)))));
        st.q = ggml_soft_max(c, th);
        ggml_tensor * term = ggml_sub(c, base, ggml_scale(c, ggml_sub(c, th, st.ln), big_l));
        ggml_tensor * covered = ggml_sum(c, ggml_mul(c, cov_w, ggml_scale_bias(c, pow_rest(st.q, k), -1.0f, 1.0f)));
        st.f = ggml_add(c, ggml_sum(c, ggml_mul(c, st.q, term)), covered);
        return st;
    };
    State cur = state(lr);
    ggml_tensor * eta = constant(c, p.step_size);
    ggml_tensor * stopped = constant(c, 0.0f);
    for (int32_t j = 0; j < p.steps; ++j) {
        ggml_tensor * term = ggml_sub(c, base, ggml_scale(c, ggml_sub(c, cur.th, cur.ln), big_l));
        ggml_tensor * g = ggml_add(c, term, ggml_scale(c, ggml_mul(c, cov_w, pow_rest(cur.q, k - 1.0f)), k));
        g = ggml_add(c, ggml_mul(c, g, live), dead_floor);
        ggml_tensor * gmax = at(c, g, ggml_argmax(c, g));
        ggml_tensor * gap = ggml_sub(c, gmax, ggml_sum(c, ggml_mul(c, cur.q, g)));
        // stop = stopped or gap < tol
        ggml_tensor * below = ggml_step(c, ggml_scale_bias(c, gap, -1.0f, p.tol));
        ggml_tensor * stop = ggml_step(c, ggml_scale_bias(c, ggml_add(c, stopped, below), 1.0f, -0.5f));
        ggml_tensor * active = ggml_scale_bias(c, stop, -1.0f, 1.0f);
        State next = state(ggml_add(c, cur.th, ggml_mul(c, ggml_sub(c, g, gmax), eta)));
        // f_new >= f - slack (1 + |f|)
        ggml_tensor * bar = ggml_sub(c, cur.f, ggml_scale_bias(c, ggml_abs(c, cur.f), 1e-9f, 1e-9f));
        ggml_tensor * ok = ggml_scale_bias(c, ggml_step(c, ggml_sub(c, bar, next.f)), -1.0f, 1.0f);
        ggml_tensor * take = ggml_mul(c, active, ok);
        ggml_tensor * halve = ggml_mul(c, active, ggml_scale_bias(c, ok, -1.0f, 1.0f));
        auto blend = [&](ggml_tensor * a, ggml_tensor * bnew) { return ggml_add(c, a, ggml_mul(c, ggml_sub(c, bnew, a), take)); };
        cur = State{blend(cur.th, next.th), blend(cur.ln, next.ln), blend(cur.q, next.q), blend(cur.f, next.f)};
        eta = ggml_mul(c, eta, ggml_scale_bias(c, halve, -0.5f, 1.0f));
        stopped = stop;
    }
    ggml_tensor * ok = poison(c, x);
    b.q = ggml_mul(c, cur.q, ok);
    b.logits = ggml_add(c, ggml_sub(c, cur.th, cur.ln), ggml_log(c, ok));
    return b;
}

// q of softmax, top-p, min-p or sparsemax at temperature T > 0 over x (id order, the whole row).
Built build_q(ggml_context * c, const GraphDecoder & g, ggml_tensor * x, ggml_tensor * candidates) {
    const int64_t n = ggml_nelements(x);
    ggml_tensor * top = at(c, x, ggml_argmax(c, x));
    // (x - max) * (1/T): the CPU kernels' shifted exponent, bit for bit.
    ggml_tensor * s = ggml_scale(c, ggml_sub(c, x, top), 1.0f / g.temperature);
    ggml_tensor * keep = nullptr;
    const int64_t min_keep = std::min<int64_t>(std::max<int32_t>(g.min_keep(), 0), n);
    switch (g.kind) {
        case Kind::top_p: {
            // The nucleus: the shortest prefix of the (logit desc, id asc)
            // order whose mass under softmax(logits / t) reaches p, t = 1
            // (order 'model') or T (order 'temperature'). Its length m is the
            // number of prefixes with cdf < p, plus one; its boundary value
            // is the logit at that position of the sorted order.
            ggml_tensor * w = g.top_p->order_by_temperature ? s : ggml_sub(c, x, top);
            ggml_tensor * order = ggml_argsort(c, ordered(c, x), GGML_SORT_ORDER_DESC);
            ggml_tensor * cdf = ggml_cumsum(c, flat(c, ggml_get_rows(c, as_rows(c, ggml_soft_max(c, w)), order)));
            ggml_tensor * below = ggml_sum(c, ggml_step(c, ggml_scale_bias(c, cdf, -1.0f, static_cast<float>(g.top_p->p))));
            ggml_tensor * j = ggml_clamp(c, below, 0.0f, static_cast<float>(n - 1));
            ggml_tensor * id_j = flat(c, at(c, order, ggml_cast(c, j, GGML_TYPE_I32)));
            keep = prefix_mask(c, x, at(c, x, id_j), ggml_scale_bias(c, j, 1.0f, 1.0f), 0.0f);
            if (min_keep > 1) {
                ggml_tensor * id_m = ggml_view_1d(c, order, 1, static_cast<size_t>(min_keep - 1) * ggml_element_size(order));
                keep = either(c, keep, prefix_mask(c, x, at(c, x, id_m), nullptr, static_cast<float>(min_keep)));
            }
            break;
        }
        case Kind::min_p: {
            // p(v) >= p_min max p  <=>  logit(v) >= max logit + log p_min
            ggml_tensor * cut = ggml_scale_bias(c, top, 1.0f, static_cast<float>(std::log(g.min_p->p_min)));
            keep = ggml_scale_bias(c, ggml_step(c, ggml_neg(c, ggml_sub(c, x, cut))), -1.0f, 1.0f);
            if (min_keep > 1) {
                keep = either(c, keep, prefix_mask(c, x, kth_value(c, x, static_cast<int32_t>(min_keep)), nullptr,
                                                   static_cast<float>(min_keep)));
            }
            break;
        }
        default:
            break;
    }
    Built b;
    b.candidates = candidates;
    if (g.kind == Kind::objective) {
        Built o = build_objective(c, *g.objective, x);
        o.candidates = candidates;
        return o;
    }
    if (g.kind == Kind::sparsemax) {
        b.q = sparsemax_q(c, s);
        b.logits = ggml_log(c, b.q);
        return b;
    }
    b.logits = keep != nullptr ? ggml_add(c, s, ggml_log(c, keep)) : s;
    b.q = ggml_soft_max(c, b.logits);
    return b;
}

// Which graph a decoder needs for these candidates: the parameters that
// leave nothing to cut fall back to a plain softmax, T = 0 to greedy.
GraphDecoder effective(GraphDecoder g, int64_t n) {
    if (g.kind != Kind::greedy && g.temperature <= 0.0f) {
        g.kind = Kind::greedy;
    }
    const bool all = (g.kind == Kind::top_k && (g.k <= 0 || g.k >= n)) || (g.kind == Kind::top_p && g.top_p->p >= 1.0) ||
                     (g.kind == Kind::min_p && g.min_p->p_min <= 0.0 && g.min_p->min_keep <= 1);
    const bool widened = g.min_keep() >= n;
    if (all || widened) {
        g.kind = Kind::softmax;
    }
    return g;
}

// A draw from q over n candidates: the first position whose cumulative mass
// exceeds u times the total (u from set_input), as the CPU pick() does.
ggml_tensor * build_draw(ggml_context * c, ggml_tensor * q, ggml_tensor * u) {
    const int64_t n = ggml_nelements(q);
    ggml_tensor * cdf = ggml_cumsum(c, q);
    ggml_tensor * total = ggml_view_1d(c, cdf, 1, static_cast<size_t>(n - 1) * ggml_element_size(cdf));
    ggml_tensor * over = ggml_step(c, ggml_sub(c, cdf, ggml_mul(c, u, total)));
    ggml_tensor * pos = ggml_clamp(c, ggml_scale_bias(c, ggml_sum(c, over), -1.0f, static_cast<float>(n)), 0.0f,
                                   static_cast<float>(n - 1));
    return ggml_cast(c, pos, GGML_TYPE_I32);
}

void apply(SamplerBase & self, const GraphDecoder & decoder, ggml_context * c, llama_sampler_data * data) {
    ggml_tensor * x = flat(c, data->logits);
    const GraphDecoder g = effective(decoder, ggml_nelements(x));
    // A decoder that draws is the chain's last member: it leaves the logits
    // it was given (the model's, when it comes first: log-likelihoods read
    // them) and reports q with the token.
    const bool draws = self.draws || self.selects();
    if (g.kind == Kind::greedy) {
        Built b = build_greedy(c, x, data->candidates);
        data->probs = b.q;
        data->candidates = b.candidates;
        if (draws) {
            data->sampled = b.candidates;
        } else {
            data->logits = b.logits;
        }
        return;
    }
    Built b = g.kind == Kind::top_k ? build_top_k(c, g, x, data->candidates) : build_q(c, g, x, data->candidates);
    data->probs = b.q;
    data->candidates = b.candidates;
    if (!draws) {
        data->logits = b.logits;
        return;
    }
    ggml_tensor * u = ggml_new_tensor_1d(c, GGML_TYPE_F32, 1);
    ggml_set_input(u);
    ggml_format_name(u, "simplex_uniform_%zu", self.graph_uniforms.size());
    self.graph_uniforms.push_back(u);
    ggml_tensor * pos = build_draw(c, b.q, u);
    data->sampled = b.candidates != nullptr ? flat(c, ggml_get_rows(c, as_rows(c, b.candidates), pos)) : pos;
}

// The host form (see the top of the file). Its one custom op writes a packed
// F32 result: [q (m) | ids (m, when compact) | logits (m, when the member
// passes logits on) | sampled (1, when it draws)], m the output candidates:
// 1 for greedy, k for top-k (compact: their ids are outputs), the whole row
// for the rest (ids: the input candidates, passed through). Ids are int32
// bits in the F32 buffer; two tiny custom ops copy them into I32 outputs,
// and q and the logits are views, so the outputs have today's shapes.
struct HostLayout {
    int64_t m = 0;
    bool    compact = false;
    bool    logits = false;
    bool    sampled = false;
    int64_t size() const { return m * (1 + compact + logits) + sampled; }
    int64_t at_logits() const { return m * (1 + compact); }
};

HostLayout host_layout(const GraphDecoder & g, int64_t n, bool draws) {
    HostLayout l;
    l.compact = g.kind == Kind::greedy || g.kind == Kind::top_k;
    l.m = g.kind == Kind::greedy ? 1 : g.kind == Kind::top_k ? g.k : n;
    l.logits = !draws;
    l.sampled = draws;
    return l;
}

void put_id(float * out, int64_t i, int32_t id) { std::memcpy(out + i, &id, sizeof id); }

// The host top-k's candidates: the tokens of x that can rank in its k best.
// With x cut in blocks of 64, the k-th largest block maximum `bar` is at
// most the k-th best logit (k blocks hold a logit >= bar), so the tokens not
// below bar (NaN and +inf included: they fail the kernel the same way) hold
// the k best with their ties, in id order: the kernel over them is the
// kernel over the row (the same q, the same draw), and the candidate array
// shrinks from the vocabulary to about k. Every token when no such bar is
// finite (fewer blocks than k, or fewer than k blocks with a finite logit).
void gather_top(const float * x, size_t n, size_t k, std::vector<llama_token_data> & cur, std::vector<float> & maxima) {
    constexpr size_t B = 64;
    const size_t nb = n / B;
    float bar = -INFINITY;
    if (k > 0 && nb >= k) {
        maxima.resize(nb);
        for (size_t b = 0; b < nb; ++b) {
            float m[8];
            std::fill(m, m + 8, -INFINITY);
            for (size_t i = b * B; i < b * B + B; i += 8) {
                for (size_t j = 0; j < 8; ++j) m[j] = x[i + j] > m[j] ? x[i + j] : m[j];  // NaN: ignored
            }
            maxima[b] = *std::max_element(m, m + 8);
        }
        std::nth_element(maxima.begin(), maxima.begin() + static_cast<std::ptrdiff_t>(k - 1), maxima.end(),
                         std::greater<float>());
        bar = maxima[k - 1];
    }
    cur.clear();
    auto take = [&](size_t i) { cur.push_back(llama_token_data{static_cast<llama_token>(i), x[i], 0.0f}); };
    if (bar == -INFINITY) {
        cur.reserve(n);
        for (size_t i = 0; i < n; ++i) take(i);
        return;
    }
    size_t i = 0;
    for (; i + B <= n; i += B) {
        uint32_t hits = 0;
        for (size_t j = 0; j < B; ++j) hits += !(x[i + j] < bar);
        if (hits != 0) {
            for (size_t j = i; j < i + B; ++j) {
                if (!(x[j] < bar)) take(j);
            }
        }
    }
    for (; i < n; ++i) {
        if (!(x[i] < bar)) take(i);
    }
}

// dst = the packed result; src: the logits (F32, contiguous), the input
// candidates when Cand, the draw's rng state (2 x I32) when Draws.
template <bool Draws, bool Cand>
void host_decode(ggml_tensor * dst, int ith, int /*nth*/, void * userdata) {
    if (ith != 0) {
        return;
    }
    SamplerBase & self = *static_cast<SamplerBase *>(userdata);
    const float * x = static_cast<const float *>(dst->src[0]->data);
    const int64_t n = ggml_nelements(dst->src[0]);
    const int32_t * cand = Cand ? static_cast<const int32_t *>(dst->src[1]->data) : nullptr;
    uint64_t rng = 0;
    if (Draws) std::memcpy(&rng, dst->src[Cand ? 2 : 1]->data, sizeof rng);
    GraphDecoder g;
    self.graph(g);
    const bool own_softmax = g.kind == Kind::softmax;  // softmax() is the sampler's kernel (Softmax, Dist)
    g = effective(g, n);
    const HostLayout l = host_layout(g, n, Draws);
    float * out = static_cast<float *>(dst->data);
    float * logits = out + l.at_logits();
    auto id_of = [&](int64_t pos) { return cand != nullptr ? cand[pos] : static_cast<int32_t>(pos); };
    // A q with no finite positive mass: NaN, which sample_backend reports
    // as the CPU path's error (and a next member of the chain reads NaN
    // logits, so it fails too).
    auto fail = [&](int64_t first_pos) {
        for (int64_t i = 0; i < l.m; ++i) out[i] = NAN;
        if (l.logits) for (int64_t i = 0; i < l.m; ++i) logits[i] = NAN;
        if (l.compact) for (int64_t i = 0; i < l.m; ++i) put_id(out, l.m + i, id_of(first_pos + i));
        if (Draws) put_id(out, l.size() - 1, id_of(first_pos));
    };
    if (g.kind == Kind::greedy) {
        size_t at = 0;
        if (greedy_row(x, static_cast<size_t>(n), at).status != Status::ok) {
            fail(0);
            return;
        }
        out[0] = 1.0f;
        put_id(out, 1, id_of(static_cast<int64_t>(at)));
        if (l.logits) logits[0] = 0.0f;
        if (Draws) put_id(out, l.size() - 1, id_of(static_cast<int64_t>(at)));
        return;
    }
    // softmax() over the whole row keeps it in id order: computed on the row
    // itself, into q's place, with no candidate array to fill (3 MB for
    // Gemma's vocabulary) and no scatter; pick() over it is the same draw.
    if (own_softmax && !Cand && g.kind == Kind::softmax &&
        softmax_row(x, static_cast<size_t>(n), g.temperature, out, l.logits ? logits : nullptr)) {
        if (Draws) {
            const int64_t drawn = pick_row(out, static_cast<size_t>(n), rng);
            if (drawn < 0) {
                fail(0);
                return;
            }
            put_id(out, l.size() - 1, static_cast<int32_t>(drawn));
        }
        return;
    }
    // The CPU path's candidates (ids = positions in this row) and kernel.
    auto & cur = self.graph_tokens;
    if (g.kind == Kind::top_k) {
        gather_top(x, static_cast<size_t>(n), static_cast<size_t>(g.k), cur, self.ws.values);
    } else {
        cur.resize(static_cast<size_t>(n));
        for (int64_t i = 0; i < n; ++i) cur[i] = llama_token_data{static_cast<llama_token>(i), x[i], 0.0f};
    }
    llama_token_data_array arr = {cur.data(), cur.size(), -1, false};
    bool sorted = false;
    // Dist's run() would draw with its own state; its q is softmax(logit).
    const Outcome o = self.selects() ? softmax(cur.data(), cur.size(), 1.0f, self.ws) : self.run(&arr, sorted);
    if (o.status != Status::ok || o.support == 0 || !is_distribution(cur.data(), o.support)) {
        fail(0);
        return;
    }
    int64_t drawn = 0;
    if (Draws) {
        drawn = pick(cur.data(), o.support, rng);
        if (drawn < 0) {
            fail(0);
            return;
        }
        put_id(out, l.size() - 1, id_of(cur[drawn].id));
    }
    if (l.compact) {  // top-k: the kernel's order; past the support (fewer finite than k), q = 0
        for (int64_t i = 0; i < l.m; ++i) {
            const bool in = i < static_cast<int64_t>(o.support);
            out[i] = in ? cur[i].p : 0.0f;
            put_id(out, l.m + i, id_of(cur[i].id));
            if (l.logits) logits[i] = in ? cur[i].logit : -INFINITY;
        }
        return;
    }
    std::fill(out, out + n, 0.0f);
    if (l.logits) std::fill(logits, logits + n, -INFINITY);
    for (size_t i = 0; i < o.support; ++i) {
        out[cur[i].id] = cur[i].p;
        if (l.logits) logits[cur[i].id] = cur[i].logit;
    }
}

// dst (I32) = the int32 bits at [offset, offset + size(dst)) of the packed
// result: the ids right after q (offset m = size(dst)), the sampled token
// last.
void host_ids(ggml_tensor * dst, int ith, int /*nth*/, void * /*userdata*/) {
    if (ith == 0) {
        std::memcpy(dst->data, static_cast<const float *>(dst->src[0]->data) + ggml_nelements(dst), ggml_nbytes(dst));
    }
}

void host_sampled(ggml_tensor * dst, int ith, int /*nth*/, void * /*userdata*/) {
    if (ith == 0) {
        std::memcpy(dst->data, static_cast<const float *>(dst->src[0]->data) + ggml_nelements(dst->src[0]) - 1,
                    sizeof(int32_t));
    }
}

void apply_host(SamplerBase & self, const GraphDecoder & decoder, ggml_context * c, llama_sampler_data * data) {
    ggml_tensor * x = data->logits;
    const int64_t n = ggml_nelements(x);
    const GraphDecoder g = effective(decoder, n);
    const bool draws = self.draws || self.selects();
    const bool cand = data->candidates != nullptr;
    const HostLayout l = host_layout(g, n, draws);
    ggml_tensor * args[3] = {x, nullptr, nullptr};
    int n_args = 1;
    if (cand) args[n_args++] = data->candidates;
    if (draws) {
        // The rng state of the draw (set_input): pick() takes one uniform from it.
        ggml_tensor * u = ggml_new_tensor_1d(c, GGML_TYPE_I32, 2);
        ggml_set_input(u);
        ggml_format_name(u, "simplex_rng_%zu", self.graph_uniforms.size());
        self.graph_uniforms.push_back(u);
        args[n_args++] = u;
    }
    ggml_custom_op_t fun = draws ? (cand ? host_decode<true, true> : host_decode<true, false>)
                                 : (cand ? host_decode<false, true> : host_decode<false, false>);
    // userdata: the sampler, which outlives every graph llama.cpp builds with it
    ggml_tensor * packed = ggml_custom_4d(c, GGML_TYPE_F32, l.size(), 1, 1, 1, args, n_args, fun, 1, &self);
    ggml_format_name(packed, "simplex_host_%s", self.name());
    data->probs = ggml_view_1d(c, packed, l.m, 0);
    if (l.compact) {
        data->candidates = ggml_custom_4d(c, GGML_TYPE_I32, l.m, 1, 1, 1, &packed, 1, host_ids, 1, nullptr);
    }
    if (l.logits) {
        data->logits = ggml_view_1d(c, packed, l.m, static_cast<size_t>(l.at_logits()) * sizeof(float));
    }
    if (draws) {
        data->sampled = ggml_custom_4d(c, GGML_TYPE_I32, 1, 1, 1, 1, &packed, 1, host_sampled, 1, nullptr);
    }
}

// LLAMA_SIMPLEX_GRAPH_FORM: unset, empty or "auto" (the host form on a CPU
// device, the portable graph elsewhere) or "portable" (the portable graph
// everywhere). Anything else: bad, with the message in `why`.
enum class FormSetting { automatic, portable, bad };

FormSetting form_setting(std::string * why) {
    const char * v = std::getenv("LLAMA_SIMPLEX_GRAPH_FORM");
    if (v == nullptr || *v == '\0' || std::strcmp(v, "auto") == 0) return FormSetting::automatic;
    if (std::strcmp(v, "portable") == 0) return FormSetting::portable;
    if (why != nullptr) {
        *why = std::string("LLAMA_SIMPLEX_GRAPH_FORM must be 'auto' or 'portable' (or unset), got '") + v + "'";
    }
    return FormSetting::bad;
}

// Whether every op of the sampler's graph runs on buft's device (the CPU
// backend runs them all), probed on a graph of 128Ki candidates.
bool supported(SamplerBase & self, const GraphDecoder & g, ggml_backend_buffer_type_t buft) {
    ggml_backend_dev_t dev = ggml_backend_buft_get_device(buft);
    if (dev == nullptr || ggml_backend_dev_type(dev) == GGML_BACKEND_DEVICE_TYPE_CPU) {
        return true;
    }
    const size_t max_nodes = 4096;  // Best-of-K at J = 16 takes about 1300
    ggml_init_params params = {max_nodes * ggml_tensor_overhead() + ggml_graph_overhead_custom(max_nodes, false),
                               nullptr, true};
    ggml_context * c = ggml_init(params);
    if (c == nullptr) {
        return false;
    }
    ggml_cgraph * gf = ggml_new_graph_custom(c, max_nodes, false);
    llama_sampler_data data = {ggml_new_tensor_1d(c, GGML_TYPE_F32, 128 * 1024), nullptr, nullptr, nullptr};
    apply(self, g, c, &data);
    for (ggml_tensor * t : {data.logits, data.probs, data.sampled, data.candidates}) {
        if (t != nullptr) ggml_build_forward_expand(gf, t);
    }
    self.graph_uniforms.clear();
    bool ok = true;
    for (int i = 0; i < ggml_graph_n_nodes(gf) && ok; ++i) {
        ok = ggml_backend_dev_supports_op(dev, ggml_graph_node(gf, i));
    }
    ggml_free(c);
    return ok;
}

// llama.cpp (build_sampling) hands every sampler a row of a padded copy of
// the logits (ggml_pad adds a dummy row, so that a graph whose samplers are
// inactive keeps its shape): a copy of the whole logits matrix per decode,
// which ggml's CPU backend does element by element (about 1.1 ms a token on
// one thread for Gemma's 262,144 logits, more than our host kernels). A row
// that the unpadded logits hold has the same values there, so it is read
// from them, and the copy drops out of the graph when no other sampler reads
// it. Anything but that exact shape (a view of one row of a zero pad that
// only appends rows to contiguous F32 logits) is left as given: the padded
// row is as correct, only slower to get.
ggml_tensor * unpadded_row(ggml_context * c, ggml_tensor * row) {
    ggml_tensor * padded = row->view_src;
    if (row->op != GGML_OP_VIEW || padded == nullptr || padded->op != GGML_OP_PAD || row->type != GGML_TYPE_F32) {
        return row;
    }
    ggml_tensor * src = padded->src[0];
    const int32_t * pad = reinterpret_cast<const int32_t *>(padded->op_params);
    const bool rows_appended = pad[0] == 0 && pad[1] == 0 && pad[2] == 0 && pad[4] == 0 && pad[5] == 0 &&
                               pad[6] == 0 && pad[7] == 0 && pad[8] == 0;
    if (src == nullptr || !rows_appended || src->type != GGML_TYPE_F32 || !ggml_is_contiguous(src) ||
        !ggml_is_contiguous(padded) || src->ne[2] != 1 || src->ne[3] != 1 || src->nb[1] != padded->nb[1] ||
        ggml_nelements(row) != src->ne[0] || !ggml_is_contiguous(row)) {
        return row;
    }
    const size_t offs = row->view_offs;
    if (offs % src->nb[1] != 0 || static_cast<int64_t>(offs / src->nb[1]) >= src->ne[1]) {
        return row;  // the dummy row itself (no outputs): only the padded copy has it
    }
    return ggml_view_1d(c, src, src->ne[0], offs);
}

}  // namespace

void check_graph_form() {
    std::string why;
    if (form_setting(&why) == FormSetting::bad) {
        throw std::invalid_argument(why);
    }
}

bool graph_init(llama_sampler * smpl, ggml_backend_buffer_type_t buft, uint32_t n_outputs_max_per_seq) {
    SamplerBase & self = *base(smpl);
    GraphDecoder g;
    if (!self.graph(g)) {
        return false;
    }
    // 1/T must be a finite float for the shifted exponent to be the CPU
    // kernel's (a subnormal or huge T takes its double path there).
    if (g.temperature > 0.0f && !(g.temperature >= FLT_MIN && g.temperature <= 0x1p64f)) {
        return false;
    }
    // One uniform per output and decode: several outputs of one sequence in
    // a decode would need draws that rejected tokens give back.
    if ((self.draws || self.selects()) && n_outputs_max_per_seq > 1) {
        return false;
    }
    std::string why;
    const FormSetting form = form_setting(&why);
    if (form == FormSetting::bad) {
        // No way to report it from here: say so, and stay on the CPU path
        // (make_backend_context and run_graph refuse it with this message).
        std::fprintf(stderr, "llama_simplex: %s; sampler %s stays on the CPU path\n", why.c_str(), self.name());
        return false;
    }
    // The CPU device, as supported() sees it (ggml's CPU buffer type has no
    // device); and host memory, which the custom op reads.
    ggml_backend_dev_t dev = ggml_backend_buft_get_device(buft);
    self.graph_host = form == FormSetting::automatic && ggml_backend_buft_is_host(buft) &&
                      (dev == nullptr || ggml_backend_dev_type(dev) == GGML_BACKEND_DEVICE_TYPE_CPU);
    return self.graph_host || supported(self, g, buft);
}

void graph_apply(llama_sampler * smpl, ggml_context * ctx, ggml_cgraph * /*gf*/, llama_sampler_data * data) {
    SamplerBase & self = *base(smpl);
    GraphDecoder g;
    if (!self.graph(g)) {
        return;
    }
    data->logits = unpadded_row(ctx, data->logits);
    ggml_tensor * x = data->logits;
    const bool host_ok = x->type == GGML_TYPE_F32 && ggml_is_contiguous(x) &&
                         (data->candidates == nullptr || data->candidates->type == GGML_TYPE_I32);
    if (self.graph_host && host_ok) {
        apply_host(self, g, ctx, data);
    } else {
        apply(self, g, ctx, data);
    }
}

void graph_set_input(llama_sampler * smpl) {
    SamplerBase & self = *base(smpl);
    for (ggml_tensor * u : self.graph_uniforms) {
        if (u->type == GGML_TYPE_I32) {
            // The host form's draw is pick() from this state: the uniform a
            // CPU draw would take next, in double.
            const uint64_t state = self.rng;
            (void) uniform01(self.rng);
            ggml_backend_tensor_set(u, &state, 0, sizeof state);
            continue;
        }
        // The same uniform as a CPU draw, kept below 1 in float so that the
        // target stays below the total mass.
        const float v = std::min(static_cast<float>(uniform01(self.rng)), 0x1.fffffep-1f);
        ggml_backend_tensor_set(u, &v, 0, sizeof v);
    }
}

void graph_reset(llama_sampler * smpl) {
    base(smpl)->graph_uniforms.clear();
}

void graph_copy_state(const llama_sampler * src, llama_sampler * dst) {
    const SamplerBase & s = *base(src);
    SamplerBase & d = *base(dst);
    d.status = s.status;
    d.draws = s.draws;
    d.draw_seed = s.draw_seed;
    d.rng = s.rng;
}

}  // namespace detail

ContextPtr make_backend_context(llama_context * like, const std::vector<llama_sampler *> & chains,
                                const ContextSettings & settings) {
    detail::check_graph_form();
    std::vector<llama_sampler_seq_config> configs;
    for (size_t i = 0; i < chains.size(); ++i) {
        configs.push_back({static_cast<llama_seq_id>(i), chains[i]});
    }
    llama_context_params p = llama_context_default_params();
    apply_settings(p, settings);  // the logits like's context computes
    p.n_ctx = llama_n_ctx(like);
    p.n_batch = llama_n_batch(like);
    p.n_ubatch = llama_n_ubatch(like);
    p.n_seq_max = static_cast<uint32_t>(std::max<size_t>(chains.size(), 1));
    p.kv_unified = p.n_seq_max > 1;
    p.n_threads = llama_n_threads(like);
    p.n_threads_batch = llama_n_threads_batch(like);
    p.no_perf = true;
    p.samplers = configs.data();
    p.n_samplers = configs.size();
    llama_context * ctx = llama_init_from_model(const_cast<llama_model *>(llama_get_model(like)), p);
    if (ctx == nullptr) {
        throw std::runtime_error("backend_sampling: llama.cpp could not make a context with in-graph samplers");
    }
    return ContextPtr(ctx);
}

llama_sampler * backend_chain(const llama_sampler * sampler) {
    llama_sampler * chain = llama_sampler_chain_init(llama_sampler_chain_default_params());
    llama_sampler_chain_add(chain, llama_sampler_clone(sampler));
    return chain;
}

llama_token sample_backend(llama_context * ctx, llama_sampler * chain, int32_t idx) {
    const bool in_graph = llama_get_sampled_token_ith(ctx, idx) != LLAMA_TOKEN_NULL;
    const llama_token token = llama_sampler_sample(chain, ctx, idx);
    const int32_t n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(llama_get_model(ctx)));
    if (!in_graph) {
        const Status status = last_status(chain);
        if (status != Status::ok) {
            throw std::runtime_error(std::string("sampler ") + llama_sampler_name(chain) + ": " + status_message(status));
        }
    } else {
        // The graph cannot fail; a q without finite positive mass at the
        // token (NaN or +inf logits, none finite) is the CPU kernels' error.
        const float * probs = llama_get_sampled_probs_ith(ctx, idx);
        if (probs != nullptr) {
            const uint32_t n = llama_get_sampled_probs_count_ith(ctx, idx);
            const llama_token * ids = llama_get_sampled_candidates_ith(ctx, idx);
            const uint32_t n_ids = llama_get_sampled_candidates_count_ith(ctx, idx);
            int64_t at = -1;
            if (n_ids == 0) {
                at = token;
            } else {
                for (uint32_t i = 0; i < n_ids && at < 0; ++i) {
                    if (ids[i] == token) at = i;
                }
            }
            const float q = at >= 0 && at < static_cast<int64_t>(n) ? probs[at] : 0.0f;
            if (!(q > 0.0f && q <= FLT_MAX)) {
                throw std::runtime_error(std::string("sampler ") + llama_sampler_name(chain) + " (in-graph): " +
                                         status_message(Status::invalid_q));
            }
        }
    }
    if (token < 0 || token >= n_vocab) {
        throw std::runtime_error("in-graph sampling selected no valid token");
    }
    return token;
}

GraphOutput run_graph(const llama_sampler * sampler, const float * logits, size_t n, int32_t repeats,
                      double * seconds, int32_t n_threads, int32_t padded_rows, int32_t row) {
    detail::check_graph_form();
    if (padded_rows < 0 || row < 0 || row > padded_rows) {
        throw std::invalid_argument("row: must be in [0, padded_rows], got " + std::to_string(row));
    }
    GraphOutput out;
    std::unique_ptr<ggml_backend, void (*)(ggml_backend_t)> backend(
        ggml_backend_init_by_type(GGML_BACKEND_DEVICE_TYPE_CPU, nullptr), ggml_backend_free);
    if (!backend) {
        throw std::runtime_error("run_graph: no CPU backend");
    }
    if (n_threads > 0) {
        ggml_backend_reg_t reg = ggml_backend_dev_backend_reg(ggml_backend_get_device(backend.get()));
        auto set_threads = reinterpret_cast<ggml_backend_set_n_threads_t>(
            ggml_backend_reg_get_proc_address(reg, "ggml_backend_set_n_threads"));
        if (set_threads != nullptr) set_threads(backend.get(), n_threads);
    }
    std::unique_ptr<llama_sampler, void (*)(llama_sampler *)> chain(backend_chain(sampler), llama_sampler_free);
    if (!chain->iface->backend_init(chain.get(), ggml_backend_get_default_buffer_type(backend.get()), 1)) {
        return out;
    }
    const size_t max_nodes = 4096;
    ggml_init_params params = {max_nodes * ggml_tensor_overhead() + ggml_graph_overhead_custom(max_nodes, false),
                               nullptr, true};
    std::unique_ptr<ggml_context, void (*)(ggml_context *)> c(ggml_init(params), ggml_free);
    ggml_cgraph * gf = ggml_new_graph_custom(c.get(), max_nodes, false);
    const int64_t n_rows = std::max<int32_t>(padded_rows, 1);
    ggml_tensor * x = ggml_new_tensor_2d(c.get(), GGML_TYPE_F32, static_cast<int64_t>(n), n_rows);
    ggml_set_input(x);
    ggml_tensor * given = ggml_view_1d(c.get(), x, static_cast<int64_t>(n), 0);
    if (padded_rows > 0) {
        ggml_tensor * padded = ggml_pad(c.get(), x, 0, 1, 0, 0);
        given = ggml_view_1d(c.get(), padded, static_cast<int64_t>(n), static_cast<size_t>(row) * padded->nb[1]);
    }
    llama_sampler_data data = {given, nullptr, nullptr, nullptr};
    chain->iface->backend_reset(chain.get());
    chain->iface->backend_apply(chain.get(), c.get(), gf, &data);
    for (ggml_tensor * t : {data.logits, data.probs, data.sampled, data.candidates}) {
        if (t != nullptr) ggml_build_forward_expand(gf, t);
    }
    for (int i = 0; i < ggml_graph_n_nodes(gf); ++i) {
        out.pad_nodes += ggml_graph_node(gf, i)->op == GGML_OP_PAD;
    }
    std::unique_ptr<ggml_backend_buffer, void (*)(ggml_backend_buffer_t)> buf(
        ggml_backend_alloc_ctx_tensors(c.get(), backend.get()), ggml_backend_buffer_free);
    ggml_backend_tensor_set(x, logits, 0, static_cast<size_t>(n_rows) * n * sizeof(float));
    const auto t0 = std::chrono::steady_clock::now();
    for (int32_t r = 0; r < std::max(repeats, 1); ++r) {
        chain->iface->backend_set_input(chain.get());
        if (ggml_backend_graph_compute(backend.get(), gf) != GGML_STATUS_SUCCESS) {
            throw std::runtime_error("run_graph: the graph failed");
        }
    }
    if (seconds != nullptr) {
        *seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / std::max(repeats, 1);
    }
    out.in_graph = true;
    if (data.probs != nullptr) {
        out.probs.resize(static_cast<size_t>(ggml_nelements(data.probs)));
        ggml_backend_tensor_get(data.probs, out.probs.data(), 0, ggml_nbytes(data.probs));
    }
    if (data.candidates != nullptr) {
        out.candidates.resize(static_cast<size_t>(ggml_nelements(data.candidates)));
        ggml_backend_tensor_get(data.candidates, out.candidates.data(), 0, ggml_nbytes(data.candidates));
    }
    if (data.sampled != nullptr) {
        ggml_backend_tensor_get(data.sampled, &out.sampled, 0, sizeof(llama_token));
    }
    return out;
}

double time_cpu_path(llama_sampler * sampler, const float * logits, size_t n, int32_t repeats) {
    std::vector<llama_token_data> cur(n);
    const auto t0 = std::chrono::steady_clock::now();
    for (int32_t r = 0; r < std::max(repeats, 1); ++r) {
        for (size_t i = 0; i < n; ++i) cur[i] = llama_token_data{static_cast<llama_token>(i), logits[i], 0.0f};
        llama_token_data_array cur_p = {cur.data(), n, -1, false};
        llama_sampler_apply(sampler, &cur_p);
    }
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / std::max(repeats, 1);
}

}  // namespace llama_simplex
