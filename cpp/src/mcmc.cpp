#include "llama_simplex/mcmc.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

#include "llama_simplex/generate.h"
#include "llama_simplex/rollout.h"
#include "llama_simplex/simplex.h"
#include "vec_math.h"

namespace llama_simplex {

namespace {

double log_sum_exp_scaled(const float * logits, size_t n, float mul, std::vector<float> & e, float & hi) {
    hi = -std::numeric_limits<float>::infinity();
    for (size_t i = 0; i < n; ++i) {
        const float v = logits[i] * mul;
        hi = v > hi ? v : hi;
    }
    e.resize(n);
    return static_cast<double>(hi) + std::log(vec::exp_shifted(logits, e.data(), n, mul, hi));
}

// Draws from q = softmax(alpha * logits); returns log p and log q of the draw.
llama_token propose(const float * logits, int32_t n_vocab, double alpha, uint64_t & rng, std::vector<float> & e,
                    double & log_p, double & log_q) {
    const size_t n = static_cast<size_t>(n_vocab);
    float hi_p, hi_q;
    const double lse_p = log_sum_exp_scaled(logits, n, 1.0f, e, hi_p);
    const double lse_q = log_sum_exp_scaled(logits, n, static_cast<float>(alpha), e, hi_q);  // e holds q's weights
    double total = 0.0;
    for (float v : e) total += v;
    const double target = uniform01(rng) * total;
    double run = 0.0;
    size_t at = n - 1;
    for (size_t i = 0; i < n; ++i) {
        run += e[i];
        if (run > target && e[i] > 0.0f) {
            at = i;
            break;
        }
    }
    log_p = logits[at] - lse_p;
    log_q = alpha * logits[at] - lse_q;
    return static_cast<llama_token>(at);
}

}  // namespace

RolloutShape mcmc_context_shape(int64_t n_prompt, int64_t max_tokens) {
    if (n_prompt < 0) throw std::invalid_argument("prompt: negative length");
    if (max_tokens < 0) throw std::invalid_argument("max_tokens: must be >= 0, got " + std::to_string(max_tokens));
    // The current sequence and a proposal, each up to max_tokens past the prompt.
    return rollout_shape(n_prompt + 2 * max_tokens + 2, 2,
                         "prompt " + std::to_string(n_prompt) + " + 2 x max_tokens " + std::to_string(max_tokens) + " + 2");
}

std::vector<llama_token> mcmc_power_generate(llama_context * ctx, const std::vector<llama_token> & prompt,
                                             const McmcParams & pp, int32_t max_tokens, uint64_t seed,
                                             bool stop_at_eog, McmcStats & stats,
                                             const std::function<bool(int32_t, const McmcStats &)> & progress) {
    RolloutEngine engine(ctx);
    const llama_vocab * vocab = llama_model_get_vocab(llama_get_model(ctx));
    const int32_t n_vocab = engine.n_vocab();
    if (!(pp.alpha > 0.0)) throw std::invalid_argument("alpha: must be > 0");
    if (pp.stages < 1) throw std::invalid_argument("stages: must be >= 1");
    if (pp.steps < 0) throw std::invalid_argument("steps: must be >= 0");
    if (max_tokens < 0) throw std::invalid_argument("max_tokens: must be >= 0");
    if (engine.n_seq_max() < 2) throw std::invalid_argument("context: needs 2 sequences");
    const RolloutShape shape = mcmc_context_shape(static_cast<int64_t>(prompt.size()), max_tokens);
    if (shape.cells > engine.n_ctx()) {
        throw std::invalid_argument("max_tokens: MCMC needs " + std::to_string(shape.cells) + " cells (" + shape.why +
                                    "), the context has " + std::to_string(engine.n_ctx()));
    }
    check_prompt(prompt, n_vocab);
    uint64_t rng = seed;
    std::vector<float> e;
    const llama_pos p0 = static_cast<llama_pos>(prompt.size());
    std::vector<llama_token> x;  // the current sequence
    std::vector<double> lp, lq;  // per token: log p (temperature 1), log q (the proposal)
    bool ended = false;          // x ends with end-of-sequence

    // Invariant: a sequence's cells cover every position but its last token,
    // which is `pending`; decoding it yields the logits of the next position.
    engine.clear();
    if (p0 > 1) engine.extend(0, prompt.data(), prompt.size() - 1, 0);

    // Samples up to n tokens from q on `seq` after position `pos` - 1 (token pending at pos - 1).
    auto sample_suffix = [&](llama_seq_id seq, llama_token pending, llama_pos pos, int32_t n,
                             std::vector<llama_token> & toks, std::vector<double> & slp, std::vector<double> & slq,
                             bool & hit_end) {
        hit_end = false;
        for (int32_t j = 0; j < n; ++j) {
            engine.extend(seq, &pending, 1, pos - 1 + j);
            ++stats.decoded_tokens;
            double a, b;
            const llama_token y = propose(engine.logits(0), n_vocab, pp.alpha, rng, e, a, b);
            toks.push_back(y);
            slp.push_back(a);
            slq.push_back(b);
            pending = y;
            if (stop_at_eog && llama_vocab_is_eog(vocab, y)) {
                hit_end = true;
                break;
            }
        }
    };
    auto last_of = [&](size_t len) { return len == 0 ? prompt.back() : x[len - 1]; };

    const int32_t stage_len = (max_tokens + pp.stages - 1) / std::max(pp.stages, 1);
    int32_t target = 0;  // the length every state has unless it ended early
    for (int32_t stage = 0; stage < pp.stages && target < max_tokens; ++stage) {
        target = std::min<int32_t>(target + stage_len, max_tokens);
        const int32_t want = ended ? 0 : target - static_cast<int32_t>(x.size());
        std::vector<llama_token> toks;
        std::vector<double> a, b;
        if (want > 0) {
            sample_suffix(0, last_of(x.size()), p0 + static_cast<llama_pos>(x.size()), want, toks, a, b, ended);
        }
        x.insert(x.end(), toks.begin(), toks.end());
        lp.insert(lp.end(), a.begin(), a.end());
        lq.insert(lq.end(), b.begin(), b.end());

        for (int32_t step = 0; step < pp.steps && !x.empty(); ++step) {
            // A position in the current sequence; with an early end the state is shorter than target.
            const size_t len = x.size();
            const size_t i = static_cast<size_t>(next_random(rng) % len);
            // Sequence 1 shares sequence 0's cells before the pending token at i - 1.
            engine.drop(1);
            engine.fork_range(0, 1, 0, p0 + static_cast<llama_pos>(i) - 1);
            std::vector<llama_token> y;
            std::vector<double> ylp, ylq;
            bool y_end = false;
            // The proposal runs to the stage's length (or to its own end): the
            // chain's states are complete sequences or sequences of that length.
            sample_suffix(1, last_of(i), p0 + static_cast<llama_pos>(i), target - static_cast<int32_t>(i), y, ylp, ylq,
                          y_end);
            ++stats.proposals;
            double log_a = 0.0;
            for (size_t j = i; j < len; ++j) log_a -= pp.alpha * lp[j] - lq[j];
            for (size_t j = 0; j < y.size(); ++j) log_a += pp.alpha * ylp[j] - ylq[j];
            // The position is uniform over the state's length; states that
            // ended early are shorter, so the reverse move's chance differs.
            log_a += std::log(static_cast<double>(len)) - std::log(static_cast<double>(i + y.size()));
            if (std::log(uniform01(rng)) < log_a) {
                ++stats.accepted;
                x.resize(i);
                lp.resize(i);
                lq.resize(i);
                x.insert(x.end(), y.begin(), y.end());
                lp.insert(lp.end(), ylp.begin(), ylp.end());
                lq.insert(lq.end(), ylq.begin(), ylq.end());
                ended = y_end;
                engine.drop(0);  // the proposal becomes the current sequence
                engine.fork(1, 0);
            }
            engine.drop(1);
        }
        if (progress && !progress(static_cast<int32_t>(x.size()), stats)) break;
    }
    if (ended && !x.empty()) x.pop_back();  // the end-of-sequence token is not output
    return x;
}

}  // namespace llama_simplex
