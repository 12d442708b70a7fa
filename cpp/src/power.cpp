#include "llama_simplex/power.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <stdexcept>
#include <string>

#include "llama_simplex/generate.h"
#include "llama_simplex/rollout.h"
#include "llama_simplex/simplex.h"
#include "vec_math.h"

namespace llama_simplex {

namespace {

// log of the mean of exp(x[i]) over i != skip; -inf when every term is 0.
double log_mean_exp(const double * x, size_t n, size_t skip) {
    double hi = -std::numeric_limits<double>::infinity();
    for (size_t i = 0; i < n; ++i) {
        if (i != skip) hi = std::max(hi, x[i]);
    }
    if (hi == -std::numeric_limits<double>::infinity()) return hi;
    double sum = 0.0;
    size_t count = 0;
    for (size_t i = 0; i < n; ++i) {
        if (i != skip) {
            sum += std::exp(x[i] - hi);
            ++count;
        }
    }
    return hi + std::log(sum / static_cast<double>(count));
}

// p̂ over candidates from per-candidate log ζ̂ (log space softmax of α log p + log ζ̂).
// Returns false when no candidate has positive weight (every score is -inf).
bool plug_in(const float * log_p, const double * log_zeta, size_t k, double alpha, double * out) {
    double hi = -std::numeric_limits<double>::infinity();
    for (size_t i = 0; i < k; ++i) {
        // A candidate of probability 0 has weight 0, whatever its future (0 · ζ, not NaN).
        out[i] = log_p[i] == -INFINITY ? -INFINITY : alpha * log_p[i] + log_zeta[i];
        hi = std::max(hi, out[i]);
    }
    if (hi == -std::numeric_limits<double>::infinity()) return false;
    double z = 0.0;
    for (size_t i = 0; i < k; ++i) {
        out[i] = std::exp(out[i] - hi);
        z += out[i];
    }
    for (size_t i = 0; i < k; ++i) out[i] /= z;
    return true;
}

double log_sum_exp(const std::vector<float> & x, std::vector<float> & scratch) {
    float hi = -std::numeric_limits<float>::infinity();
    for (float v : x) hi = v > hi ? v : hi;
    scratch.resize(x.size());
    return hi + std::log(vec::exp_shifted(x.data(), scratch.data(), x.size(), 1.0f, hi));
}

// An index drawn with probability w[i] (w sums to 1 up to rounding).
size_t draw_index(const std::vector<double> & w, uint64_t & rng) {
    const double u = uniform01(rng);
    double run = 0.0;
    for (size_t c = 0; c < w.size(); ++c) {
        run += w[c];
        if (run > u) return c;
    }
    return w.size() - 1;
}

}  // namespace

bool power_weights(const float * log_p, const double * loglik, size_t k, size_t m, double alpha, bool jackknife,
                   double * out, std::string * error) {
    auto fail = [error](const std::string & why) {
        if (error != nullptr) *error = why;
        return false;
    };
    if (k == 0 || m == 0) return fail("log_p, loglik: need at least one candidate and one rollout");
    if (!(alpha > 0.0) || !std::isfinite(alpha)) return fail("alpha: must be finite and > 0");
    for (size_t i = 0; i < k; ++i) {
        if (std::isnan(log_p[i])) return fail("log_p: NaN log-probability of candidate " + std::to_string(i));
        if (log_p[i] == INFINITY) return fail("log_p: +inf is not a log-probability (candidate " + std::to_string(i) + ")");
    }
    for (size_t i = 0; i < k * m; ++i) {
        if (std::isnan(loglik[i])) return fail("loglik: NaN log-likelihood at " + std::to_string(i));
        // Rounding may leave a sure future's log-likelihood a hair above 0; +inf is no likelihood.
        if (loglik[i] == INFINITY) return fail("loglik: +inf is not a log-likelihood (entry " + std::to_string(i) + ")");
        if (loglik[i] == -INFINITY && alpha < 1.0) {
            return fail("loglik: -inf (a zero-probability future) has infinite weight p(y)^(alpha-1) for alpha < 1");
        }
    }
    std::vector<double> scaled(k * m), log_zeta(k);
    // p(y)^(α-1) in log space; for α = 1 every future weighs 1, even p(y) = 0 (not 0 · -inf = NaN).
    for (size_t i = 0; i < k * m; ++i) scaled[i] = alpha == 1.0 ? 0.0 : (alpha - 1.0) * loglik[i];
    for (size_t c = 0; c < k; ++c) log_zeta[c] = log_mean_exp(&scaled[c * m], m, m);
    if (!plug_in(log_p, log_zeta.data(), k, alpha, out)) {
        return fail("log_p, loglik: no candidate has positive weight (every p(v) or every future's p(y) is 0)");
    }
    if (!jackknife || m < 2) {
        return true;
    }
    // Leave rollout s out of every candidate's mean, renormalise, average.
    std::vector<double> loo(k), p_loo(k), sum_loo(k, 0.0);
    for (size_t s = 0; s < m; ++s) {
        for (size_t c = 0; c < k; ++c) loo[c] = log_mean_exp(&scaled[c * m], m, s);
        // Without rollout s no future has mass: the jackknife is undefined, keep p̂.
        if (!plug_in(log_p, loo.data(), k, alpha, p_loo.data())) return true;
        for (size_t c = 0; c < k; ++c) sum_loo[c] += p_loo[c];
    }
    const double md = static_cast<double>(m);
    std::vector<double> jk(k);
    double total = 0.0;
    for (size_t c = 0; c < k; ++c) {
        jk[c] = std::max(0.0, md * out[c] - (md - 1.0) / md * sum_loo[c]);
        total += jk[c];
    }
    if (total > 0.0) {  // else every candidate was clipped: keep the plug-in p̂
        for (size_t c = 0; c < k; ++c) out[c] = jk[c] / total;
    }
    return true;
}

llama_token sample_logprob(const float * logits, int32_t n_vocab, uint64_t & rng, std::vector<float> & e,
                           double & logprob) {
    const size_t n = static_cast<size_t>(n_vocab);
    e.resize(n);
    float hi = -std::numeric_limits<float>::infinity();
#pragma omp simd reduction(max : hi)
    for (size_t i = 0; i < n; ++i) hi = logits[i] > hi ? logits[i] : hi;
    const double sum = vec::exp_shifted(logits, e.data(), n, 1.0f, hi);
    const double target = uniform01(rng) * sum;
    double run = 0.0;
    size_t pick_at = n;
    for (size_t i = 0; i < n; ++i) {
        run += e[i];
        if (run > target && e[i] > 0.0f) {
            pick_at = i;
            break;
        }
    }
    if (pick_at == n) {  // rounding at the very end: the last possible token
        for (size_t i = n; i-- > 0;) {
            if (e[i] > 0.0f) {
                pick_at = i;
                break;
            }
        }
    }
    logprob = static_cast<double>(logits[pick_at]) - hi - std::log(sum);
    return static_cast<llama_token>(pick_at);
}

namespace {

// One rollout: candidate `cand` of the wave, rollout `r`, on sequence `seq`,
// whose next token is drawn from logits row `row` of the last decode, or is
// `first` when that was drawn already (after a re-prefill).
struct Lane { size_t cand; size_t r; llama_seq_id seq; size_t row; bool live; llama_token first; };

// What both rollout paths share: the candidates in waves of per_wave on
// sequences first_seq, first_seq + 1, ...; `start` puts a wave's candidates
// in place (lanes ready to draw their first token, next_seq advanced), then
// every live lane draws and decodes up to pp.horizon tokens, one batched
// decode per step, adding each token's log-probability to loglik[c * M + r].
template <typename Start>
void rollout_waves(RolloutEngine & engine, const llama_vocab * vocab, const std::vector<llama_pos> & at,
                   size_t k, const PowerParams & pp, int32_t per_wave, llama_seq_id first_seq, bool stop_at_eog,
                   uint64_t & rng, std::vector<double> & loglik, PowerStats & stats, std::vector<float> & scratch,
                   Start && start) {
    const int32_t m = pp.rollouts;
    const int32_t n_vocab = engine.n_vocab();
    std::vector<Lane> lanes;
    std::vector<llama_seq_id> s_ids;
    std::vector<llama_token> s_tok;
    std::vector<llama_pos> s_pos;
    std::vector<size_t> live_idx;
    for (size_t w0 = 0; w0 < k; w0 += static_cast<size_t>(per_wave)) {
        const size_t w1 = std::min(k, w0 + static_cast<size_t>(per_wave));
        lanes.clear();
        llama_seq_id next_seq = first_seq;
        start(w0, w1, next_seq, lanes);
        if (lanes.empty()) continue;
        stats.rollouts += static_cast<int64_t>(lanes.size());
        for (int32_t h = 0; h < pp.horizon; ++h) {
            s_ids.clear();
            s_tok.clear();
            s_pos.clear();
            live_idx.clear();
            for (size_t i = 0; i < lanes.size(); ++i) {
                Lane & ln = lanes[i];
                if (!ln.live) continue;
                llama_token y = ln.first;
                ln.first = LLAMA_TOKEN_NULL;
                if (y == LLAMA_TOKEN_NULL) {
                    double lp;
                    y = sample_logprob(engine.logits(ln.row), n_vocab, rng, scratch, lp);
                    loglik[ln.cand * static_cast<size_t>(m) + ln.r] += lp;
                }
                ++stats.rollout_tokens;
                if (stop_at_eog && llama_vocab_is_eog(vocab, y)) {
                    ln.live = false;  // a finished future contributes what it has
                    continue;
                }
                if (h + 1 < pp.horizon) {
                    s_ids.push_back(ln.seq);
                    s_tok.push_back(y);
                    s_pos.push_back(at[ln.cand] + 1 + h);
                    live_idx.push_back(i);
                } else {
                    ln.live = false;
                }
            }
            if (s_ids.empty()) break;
            engine.step(s_ids.data(), s_tok.data(), s_pos.data(), s_ids.size());
            ++stats.decode_calls;
            for (size_t j = 0; j < live_idx.size(); ++j) lanes[live_idx[j]].row = j;
        }
        for (llama_seq_id sq = first_seq; sq < next_seq; ++sq) engine.drop(sq);
    }
}

}  // namespace

// Rollouts for the candidates: candidate c is token cand[c] at position at[c]
// on top of sequence source[c] (whose cells end at at[c] - 1). Each rollout
// sequence forks the prefix's cells, and each candidate token is decoded
// once, shared by its M rollout sequences.
void run_rollouts(RolloutEngine & engine, const llama_vocab * vocab, const std::vector<llama_token> & cand,
                  const std::vector<llama_seq_id> & source, const std::vector<llama_pos> & at,
                  const PowerParams & pp, int32_t per_wave, llama_seq_id first_seq, bool stop_at_eog, uint64_t & rng,
                  std::vector<double> & loglik, PowerStats & stats, std::vector<float> & scratch) {
    std::vector<llama_token> toks;
    std::vector<llama_pos> pos;
    std::vector<std::vector<llama_seq_id>> seqs;
    auto start = [&](size_t w0, size_t w1, llama_seq_id & next_seq, std::vector<Lane> & lanes) {
        toks.clear();
        pos.clear();
        seqs.clear();
        for (size_t c = w0; c < w1; ++c) {
            if (stop_at_eog && llama_vocab_is_eog(vocab, cand[c])) continue;  // no future: ζ = 1
            std::vector<llama_seq_id> ids;
            for (int32_t r = 0; r < pp.rollouts; ++r) {
                engine.fork_range(source[c], next_seq, 0, at[c]);
                ids.push_back(next_seq);
                lanes.push_back({c, static_cast<size_t>(r), next_seq, toks.size(), true, LLAMA_TOKEN_NULL});
                ++next_seq;
            }
            toks.push_back(cand[c]);
            pos.push_back(at[c]);
            seqs.push_back(std::move(ids));
        }
        if (toks.empty()) return;
        engine.step_shared(toks.data(), pos.data(), seqs);
        ++stats.decode_calls;
    };
    rollout_waves(engine, vocab, at, cand.size(), pp, per_wave, first_seq, stop_at_eog, rng, loglik, stats, scratch,
                  start);
}

// The benchmark baseline of run_rollouts with every candidate on top of
// `history` (at history.size()): each rollout decodes history + candidate
// again in a sequence of its own instead of forking the prefix's cells.
void run_rollouts_reprefill(RolloutEngine & engine, const llama_vocab * vocab, const std::vector<llama_token> & cand,
                            const std::vector<llama_token> & history, const PowerParams & pp, int32_t per_wave,
                            llama_seq_id first_seq, bool stop_at_eog, uint64_t & rng, std::vector<double> & loglik,
                            PowerStats & stats, std::vector<float> & scratch) {
    const int32_t n_vocab = engine.n_vocab();
    const std::vector<llama_pos> at(cand.size(), static_cast<llama_pos>(history.size()));
    std::vector<llama_token> prefix = history;
    auto start = [&](size_t w0, size_t w1, llama_seq_id & next_seq, std::vector<Lane> & lanes) {
        for (size_t c = w0; c < w1; ++c) {
            if (stop_at_eog && llama_vocab_is_eog(vocab, cand[c])) continue;
            prefix.resize(history.size());
            prefix.push_back(cand[c]);
            for (int32_t r = 0; r < pp.rollouts; ++r) {
                engine.extend(next_seq, prefix.data(), prefix.size(), 0);
                ++stats.decode_calls;
                // Its logits are overwritten by the next prefill: draw the first token now.
                double lp = 0.0;
                const llama_token y = pp.horizon > 0 ? sample_logprob(engine.logits(0), n_vocab, rng, scratch, lp)
                                                     : LLAMA_TOKEN_NULL;
                lanes.push_back({c, static_cast<size_t>(r), next_seq, 0, true, y});
                if (pp.horizon > 0) loglik[c * static_cast<size_t>(pp.rollouts) + static_cast<size_t>(r)] += lp;
                ++next_seq;
            }
        }
    };
    rollout_waves(engine, vocab, at, cand.size(), pp, per_wave, first_seq, stop_at_eog, rng, loglik, stats, scratch,
                  start);
}

namespace {

// The rollouts of one token-level step, every candidate on top of sequence 0
// (which holds `history`): forked, or the baseline when the params ask for it.
void step_rollouts(RolloutEngine & engine, const llama_vocab * vocab, const std::vector<llama_token> & cand,
                   const std::vector<llama_token> & history, const PowerParams & pp, int32_t per_wave,
                   bool stop_at_eog, uint64_t & rng, std::vector<double> & loglik, PowerStats & stats,
                   std::vector<float> & scratch) {
    if (pp.naive_reprefill) {
        run_rollouts_reprefill(engine, vocab, cand, history, pp, per_wave, 1, stop_at_eog, rng, loglik, stats, scratch);
        return;
    }
    run_rollouts(engine, vocab, cand, std::vector<llama_seq_id>(cand.size(), 0),
                 std::vector<llama_pos>(cand.size(), static_cast<llama_pos>(history.size())), pp, per_wave, 1,
                 stop_at_eog, rng, loglik, stats, scratch);
}

}  // namespace

RolloutShape power_context_shape(const PowerParams & pp, int64_t n_prompt, int64_t max_tokens) {
    if (pp.candidates < 1) throw std::invalid_argument("candidates: must be >= 1");
    if (pp.rollouts < 1 || pp.rollouts > static_cast<int32_t>(MAX_SEQUENCES) - 1) {
        throw std::invalid_argument("rollouts: must be in [1, " + std::to_string(MAX_SEQUENCES - 1) + "], got " +
                                    std::to_string(pp.rollouts));
    }
    if (pp.horizon < 0) throw std::invalid_argument("horizon: must be >= 0, got " + std::to_string(pp.horizon));
    if (n_prompt < 0) throw std::invalid_argument("prompt: negative length");
    if (max_tokens < 0) throw std::invalid_argument("max_tokens: must be >= 0, got " + std::to_string(max_tokens));
    const int64_t m = pp.rollouts;
    const int64_t n_seq = std::min<int64_t>(MAX_SEQUENCES, static_cast<int64_t>(pp.candidates) * m + 1);
    const int64_t per_wave = std::min<int64_t>(pp.candidates, (n_seq - 1) / m);
    // Rollouts never run past max_tokens (power_generate), so a long horizon costs no cells near the end.
    const int64_t h = max_tokens > 0 && pp.low_temperature_last ? std::min<int64_t>(pp.horizon, max_tokens - 1)
                                                                : pp.horizon;
    // Forked rollouts share the prefix's cells; naive ones each hold a copy.
    const int64_t copies = pp.naive_reprefill ? per_wave * m * (n_prompt + max_tokens) : 0;
    const int64_t cells = n_prompt + max_tokens + copies + per_wave * m * (h + 1) + per_wave;
    std::string why = (max_tokens > 0 ? "prompt " + std::to_string(n_prompt) + " + max_tokens " + std::to_string(max_tokens)
                                      : "sequence " + std::to_string(n_prompt)) + " + " +
                      std::to_string(per_wave * m) + " rollouts x (horizon " + std::to_string(h) + " + 1) + " +
                      std::to_string(per_wave);
    if (copies > 0) why += " + " + std::to_string(copies) + " prefix copies";
    return rollout_shape(cells, static_cast<uint32_t>(n_seq), why);
}

RolloutShape block_context_shape(const BlockParams & bp, int64_t n_prompt, int64_t max_tokens) {
    if (bp.block < 1) throw std::invalid_argument("block: must be >= 1");
    if (bp.samples < 1) throw std::invalid_argument("samples: must be >= 1");
    if (bp.tail_samples < 1) throw std::invalid_argument("tail_samples: must be >= 1");
    if (bp.candidates < 1) throw std::invalid_argument("candidates: must be >= 1");
    if (bp.rollouts < 1) throw std::invalid_argument("rollouts: must be >= 1");
    if (bp.horizon < 0) throw std::invalid_argument("horizon: must be >= 0, got " + std::to_string(bp.horizon));
    if (n_prompt < 0) throw std::invalid_argument("prompt: negative length");
    if (max_tokens < 0) throw std::invalid_argument("max_tokens: must be >= 0, got " + std::to_string(max_tokens));
    const int64_t n_draw = std::max(bp.samples, bp.tail_samples);
    if (1 + n_draw + bp.rollouts > static_cast<int64_t>(MAX_SEQUENCES)) {
        throw std::invalid_argument("samples, rollouts: " + std::to_string(n_draw) + " blocks + " +
                                    std::to_string(bp.rollouts) + " rollouts + 1 exceed llama.cpp's " +
                                    std::to_string(MAX_SEQUENCES) + " sequences");
    }
    const int64_t n_seq = std::min<int64_t>(MAX_SEQUENCES, 1 + n_draw + static_cast<int64_t>(bp.candidates) * bp.rollouts);
    const int64_t per_wave = std::min<int64_t>(bp.candidates, (n_seq - 1 - n_draw) / bp.rollouts);
    // Blocks and futures never run past max_tokens (block_power_generate).
    const int64_t b = max_tokens > 0 ? std::min<int64_t>(bp.block, max_tokens) : bp.block;
    const int64_t h = max_tokens > 0 ? std::min<int64_t>(bp.horizon, max_tokens - 1) : bp.horizon;
    const int64_t cells = n_prompt + max_tokens + n_draw * b + per_wave * bp.rollouts * (h + 1);
    const std::string why = "prompt " + std::to_string(n_prompt) + " + max_tokens " + std::to_string(max_tokens) +
                            " + " + std::to_string(n_draw) + " blocks x " + std::to_string(b) + " + " +
                            std::to_string(per_wave * bp.rollouts) + " rollouts x (horizon " + std::to_string(h) +
                            " + 1)";
    return rollout_shape(cells, static_cast<uint32_t>(n_seq), why);
}

std::vector<llama_token> power_generate(llama_context * ctx, const std::vector<llama_token> & prompt,
                                        const PowerParams & pp, int32_t max_tokens, uint64_t seed,
                                        bool stop_at_eog, PowerStats & stats,
                                        const std::function<bool(int32_t, const PowerStats &)> & progress) {
    RolloutEngine engine(ctx);
    const llama_vocab * vocab = llama_model_get_vocab(llama_get_model(ctx));
    const int32_t n_vocab = engine.n_vocab();
    if (pp.candidates < 1) throw std::invalid_argument("candidates: must be >= 1");
    if (pp.rollouts < 1) throw std::invalid_argument("rollouts: must be >= 1");
    if (pp.horizon < 0) throw std::invalid_argument("horizon: must be >= 0");
    if (!(pp.alpha > 0.0)) throw std::invalid_argument("alpha: must be > 0");
    if (max_tokens < 0) throw std::invalid_argument("max_tokens: must be >= 0");
    const int32_t k_max = std::min(pp.candidates, n_vocab);
    const int32_t m = pp.rollouts;
    const int32_t lanes = engine.n_seq_max() - 1;  // sequences for rollouts (0 holds the prefix)
    if (lanes < m) {
        throw std::invalid_argument("rollouts: " + std::to_string(m) + " per candidate need " + std::to_string(m + 1) +
                                    " sequences; the context has " + std::to_string(engine.n_seq_max()));
    }
    const int32_t per_wave = std::min(k_max, lanes / m);  // candidates whose rollouts run together
    check_horizon(llama_get_model(ctx), pp.horizon);
    const RolloutShape shape = power_context_shape(pp, static_cast<int64_t>(prompt.size()), max_tokens);
    if (shape.cells > engine.n_ctx()) {
        throw std::invalid_argument("n_ctx: power sampling needs " + std::to_string(shape.cells) + " cells (" +
                                    shape.why + "), the context has " + std::to_string(engine.n_ctx()));
    }
    check_prompt(prompt, n_vocab);

    uint64_t rng = seed;
    engine.clear();
    engine.extend(0, prompt.data(), prompt.size(), 0);
    llama_pos n_past = static_cast<llama_pos>(prompt.size());
    std::vector<float> base(static_cast<size_t>(n_vocab)), scratch;
    std::vector<llama_token_data> cur(static_cast<size_t>(n_vocab));
    std::vector<llama_token> out;
    std::vector<llama_token> history = prompt;  // the prefix, for the naive baseline
    Workspace ws;

    for (int32_t t = 0; t < max_tokens; ++t) {
        // p_t and its K best tokens.
        const float * lg = engine.logits(0);
        std::copy(lg, lg + n_vocab, base.begin());
        for (int32_t i = 0; i < n_vocab; ++i) cur[static_cast<size_t>(i)] = {i, base[static_cast<size_t>(i)], 0.0f};
        const Outcome sel = top_k(cur.data(), cur.size(), k_max, 1.0f, ws);  // logit = log p renormalised on K
        if (sel.status != Status::ok) {
            throw std::runtime_error(std::string("power sampling: ") + status_message(sel.status));
        }
        const size_t k = sel.support;
        // log p_t over the whole vocabulary (not renormalised on the candidates).
        const double lse = log_sum_exp(base, scratch);
        std::vector<float> log_p(k);
        std::vector<llama_token> cand(k);
        for (size_t c = 0; c < k; ++c) {
            cand[c] = cur[c].id;
            log_p[c] = static_cast<float>(base[static_cast<size_t>(cand[c])] - lse);
        }
        std::vector<double> loglik(k * static_cast<size_t>(m), 0.0);
        // π's sequences end at max_tokens: the futures after this token are
        // at most the tokens left after it (none at the last token: ζ = 1).
        PowerParams step = pp;
        if (pp.low_temperature_last) step.horizon = std::min(pp.horizon, max_tokens - t - 1);
        const bool futures = step.horizon > 0;

        if (futures) {
            step_rollouts(engine, vocab, cand, history, step, per_wave, stop_at_eog, rng, loglik, stats, scratch);
        }
        std::vector<double> w(k);
        std::string why;
        if (!power_weights(log_p.data(), loglik.data(), k, static_cast<size_t>(m), pp.alpha,
                           pp.jackknife && futures, w.data(), &why)) {
            throw std::runtime_error("power sampling: " + why);
        }
        const size_t chosen = draw_index(w, rng);
        const llama_token token = cand[chosen];
        if (stop_at_eog && llama_vocab_is_eog(vocab, token)) break;
        out.push_back(token);
        history.push_back(token);
        if (t + 1 < max_tokens) {
            engine.extend(0, &token, 1, n_past);
            ++n_past;
        }
        if (progress && !progress(t + 1, stats)) break;
    }
    return out;
}

std::vector<llama_token> block_power_generate(llama_context * ctx, const std::vector<llama_token> & prompt,
                                              const BlockParams & bp, int32_t max_tokens, uint64_t seed,
                                              bool stop_at_eog, PowerStats & stats,
                                              const std::function<bool(int32_t, const PowerStats &)> & progress) {
    RolloutEngine engine(ctx);
    const llama_vocab * vocab = llama_model_get_vocab(llama_get_model(ctx));
    const int32_t n_vocab = engine.n_vocab();
    if (!(bp.alpha > 0.0)) throw std::invalid_argument("alpha: must be > 0");
    if (bp.block < 1) throw std::invalid_argument("block: must be >= 1");
    if (bp.samples < 1) throw std::invalid_argument("samples: must be >= 1");
    if (bp.candidates < 1) throw std::invalid_argument("candidates: must be >= 1");
    if (bp.rollouts < 1) throw std::invalid_argument("rollouts: must be >= 1");
    if (bp.horizon < 0) throw std::invalid_argument("horizon: must be >= 0");
    if (bp.tail_samples < 1) throw std::invalid_argument("tail_samples: must be >= 1");
    if (max_tokens < 0) throw std::invalid_argument("max_tokens: must be >= 0");
    const int32_t n_samples = std::max(bp.samples, bp.tail_samples);
    const int32_t lanes = engine.n_seq_max() - 1 - n_samples;  // after seq 0 and the blocks
    if (lanes < bp.rollouts) {
        throw std::invalid_argument("samples, rollouts: " + std::to_string(n_samples) + " blocks + " +
                                    std::to_string(bp.rollouts) + " rollouts need more than the context's " +
                                    std::to_string(engine.n_seq_max()) + " sequences");
    }
    const int32_t per_wave = std::min(bp.candidates, lanes / bp.rollouts);
    check_horizon(llama_get_model(ctx), bp.horizon);
    const RolloutShape shape = block_context_shape(bp, static_cast<int64_t>(prompt.size()), max_tokens);
    if (shape.cells > engine.n_ctx()) {
        throw std::invalid_argument("n_ctx: block power sampling needs " + std::to_string(shape.cells) + " cells (" +
                                    shape.why + "), the context has " + std::to_string(engine.n_ctx()));
    }
    check_prompt(prompt, n_vocab);
    PowerParams rp{};  // the rollouts read alpha, rollouts, jackknife and horizon
    rp.alpha = bp.alpha;
    rp.rollouts = bp.rollouts;
    rp.jackknife = bp.jackknife;

    uint64_t rng = seed;
    engine.clear();
    engine.extend(0, prompt.data(), prompt.size(), 0);
    llama_pos n_past = static_cast<llama_pos>(prompt.size());
    std::vector<float> base(static_cast<size_t>(n_vocab)), scratch;
    std::vector<llama_token> out;
    bool finished = false;

    while (!finished && static_cast<int32_t>(out.size()) < max_tokens) {
        const int32_t left = max_tokens - static_cast<int32_t>(out.size());
        const bool tail = left < bp.block;
        const int32_t b_len = tail ? left : bp.block;
        const int32_t n_draw = tail ? bp.tail_samples : bp.samples;
        // Draw n_draw blocks of b_len tokens from p on sequences 1..n_draw; a
        // block's last token stays pending (not decoded) until it is chosen.
        const float * lg = engine.logits(0);
        std::copy(lg, lg + n_vocab, base.begin());
        struct Block { std::vector<llama_token> toks; double logp = 0.0; bool ended = false; llama_seq_id seq; };
        std::vector<Block> blocks(static_cast<size_t>(n_draw));
        for (int32_t i = 0; i < n_draw; ++i) {
            blocks[static_cast<size_t>(i)].seq = 1 + i;
            engine.fork_range(0, 1 + i, 0, n_past);
        }
        std::vector<size_t> row(static_cast<size_t>(n_draw), 0);
        for (int32_t j = 0; j < b_len; ++j) {
            std::vector<llama_seq_id> ids;
            std::vector<llama_token> toks;
            std::vector<llama_pos> pos;
            std::vector<size_t> live;
            for (size_t i = 0; i < blocks.size(); ++i) {
                Block & bl = blocks[i];
                if (bl.ended) continue;
                double lp;
                const llama_token y = sample_logprob(j == 0 ? base.data() : engine.logits(row[i]), n_vocab, rng,
                                                     scratch, lp);
                bl.toks.push_back(y);
                bl.logp += lp;
                if (stop_at_eog && llama_vocab_is_eog(vocab, y)) {
                    bl.ended = true;
                    continue;
                }
                if (j + 1 < b_len) {
                    ids.push_back(bl.seq);
                    toks.push_back(y);
                    pos.push_back(n_past + j);
                    live.push_back(i);
                }
            }
            if (ids.empty()) break;
            engine.step(ids.data(), toks.data(), pos.data(), ids.size());
            ++stats.decode_calls;
            for (size_t r = 0; r < live.size(); ++r) row[live[r]] = r;
        }
        // Identical blocks are one candidate; keep the K most likely.
        std::vector<size_t> order(blocks.size());
        std::iota(order.begin(), order.end(), 0);
        std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return blocks[a].logp > blocks[b].logp; });
        std::vector<size_t> kept;
        for (size_t idx : order) {
            bool dup = false;
            for (size_t kk : kept) dup |= blocks[kk].toks == blocks[idx].toks;
            if (!dup) kept.push_back(idx);
            if (!tail && static_cast<int32_t>(kept.size()) >= bp.candidates) break;
        }
        const size_t k = kept.size();
        std::vector<float> log_p(k);
        std::vector<double> loglik(k * static_cast<size_t>(bp.rollouts), 0.0);
        // Futures: after the block, up to H tokens, never past max_tokens.
        const int32_t future = tail ? 0 : std::min(bp.horizon, left - b_len);
        if (future > 0) {
            std::vector<llama_token> cand;
            std::vector<llama_seq_id> src;
            std::vector<llama_pos> at;
            std::vector<size_t> with_future;
            for (size_t c = 0; c < k; ++c) {
                const Block & bl = blocks[kept[c]];
                if (bl.ended) continue;  // finished: ζ = 1
                cand.push_back(bl.toks.back());
                src.push_back(bl.seq);
                at.push_back(n_past + static_cast<llama_pos>(bl.toks.size()) - 1);
                with_future.push_back(c);
            }
            if (!cand.empty()) {
                rp.horizon = future;
                std::vector<double> ll(cand.size() * static_cast<size_t>(bp.rollouts), 0.0);
                run_rollouts(engine, vocab, cand, src, at, rp, per_wave, 1 + n_samples, stop_at_eog, rng, ll, stats,
                             scratch);
                for (size_t j = 0; j < with_future.size(); ++j) {
                    std::copy(ll.begin() + static_cast<std::ptrdiff_t>(j * bp.rollouts),
                              ll.begin() + static_cast<std::ptrdiff_t>((j + 1) * bp.rollouts),
                              loglik.begin() + static_cast<std::ptrdiff_t>(with_future[j] * bp.rollouts));
                }
            }
        }
        for (size_t c = 0; c < k; ++c) log_p[c] = static_cast<float>(blocks[kept[c]].logp);
        std::vector<double> w(k);
        std::string why;
        if (!power_weights(log_p.data(), loglik.data(), k, static_cast<size_t>(bp.rollouts), bp.alpha,
                           bp.jackknife && future > 0, w.data(), &why)) {
            throw std::runtime_error("block power sampling: " + why);
        }
        const size_t chosen = draw_index(w, rng);
        const Block & pick = blocks[kept[chosen]];
        // Sequence 0 takes the block's cells and then decodes its pending last token.
        const llama_pos last_pos = n_past + static_cast<llama_pos>(pick.toks.size()) - 1;
        if (last_pos > n_past) engine.fork_range(pick.seq, 0, n_past, last_pos);
        for (size_t i = 0; i < blocks.size(); ++i) engine.drop(blocks[i].seq);
        for (llama_token t : pick.toks) {
            if (stop_at_eog && llama_vocab_is_eog(vocab, t)) {
                finished = true;
                break;
            }
            out.push_back(t);
        }
        if (!finished && static_cast<int32_t>(out.size()) < max_tokens) {
            engine.extend(0, &pick.toks.back(), 1, last_pos);
        }
        n_past = last_pos + 1;
        if (progress && !progress(static_cast<int32_t>(out.size()), stats)) break;
    }
    return out;
}

float rollout_prefix_probe(llama_context * ctx, const std::vector<llama_token> & prompt, const PowerParams & pp,
                           uint64_t seed, llama_token next) {
    RolloutEngine engine(ctx);
    const llama_vocab * vocab = llama_model_get_vocab(llama_get_model(ctx));
    const int32_t n_vocab = engine.n_vocab();
    if (prompt.empty() || next < 0 || next >= n_vocab) throw std::invalid_argument("prompt, next: invalid tokens");
    const llama_pos n_past = static_cast<llama_pos>(prompt.size());
    auto after = [&](bool with_rollouts) {
        engine.clear();
        engine.extend(0, prompt.data(), prompt.size(), 0);
        if (with_rollouts) {
            std::vector<llama_token> cand;
            for (int32_t c = 0; c < std::min(pp.candidates, n_vocab); ++c) cand.push_back(c);
            std::vector<double> loglik(cand.size() * static_cast<size_t>(pp.rollouts), 0.0);
            PowerStats stats;
            std::vector<float> scratch;
            uint64_t rng = seed;
            const int32_t per_wave = std::max(1, std::min<int32_t>(static_cast<int32_t>(cand.size()),
                                                                    (engine.n_seq_max() - 1) / pp.rollouts));
            step_rollouts(engine, vocab, cand, prompt, pp, per_wave, false, rng, loglik, stats, scratch);
        }
        engine.extend(0, &next, 1, n_past);
        const float * l = engine.logits(0);
        return std::vector<float>(l, l + n_vocab);
    };
    const std::vector<float> a = after(true);
    const std::vector<float> b = after(false);
    float diff = 0.0f;
    for (int32_t i = 0; i < n_vocab; ++i) diff = std::max(diff, std::fabs(a[i] - b[i]));
    return diff;
}

}  // namespace llama_simplex
