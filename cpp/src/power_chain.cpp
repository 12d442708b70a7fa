// PowerChain: power sampling as a member of any llama.cpp sampler chain
// (form (a), e.g. in llama-server). It learns the sequence through accept()
// and runs each step's rollouts in a context of its own on the model; the
// faster path of power_generate forks the generation's own cache instead.

#include "llama_simplex/samplers.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "llama_simplex/power.h"
#include "llama_simplex/rollout.h"
#include "sampler_adapter.h"

namespace llama_simplex {

namespace {

using detail::SamplerBase;

struct PowerChain : SamplerBase {
    llama_model *            model;
    PowerParams              params;
    uint64_t                 rollout_rng;
    int64_t                  n_prompt = -1;  // history length at the first apply: the prompt
    std::vector<llama_token> history;   // every token accepted, prompt included
    size_t                   synced = 0;  // history tokens decoded into sequence 0 of ctx
    ContextPtr               ctx;       // made on first use; a clone makes its own
    ContextSettings          settings;  // the caller's context's (set_context_settings)
    std::vector<float>       scratch;

    // params.max_tokens: the output length limit (0: none), where futures end;
    // params.n_ctx: the rollout context's cells; params.rollout_seed seeds the rollouts.
    PowerChain(llama_model * m, const PowerParams & p) : model(m), params(p), rollout_rng(p.rollout_seed) {}
    PowerChain(const PowerChain & o)
        : SamplerBase(o), model(o.model), params(o.params), rollout_rng(o.rollout_rng), n_prompt(o.n_prompt),
          history(o.history), settings(o.settings) {}
    SamplerBase * copy() const override { return new PowerChain(*this); }
    const char * name() const override { return "simplex-power"; }
    void accept(llama_token t) override { history.push_back(t); }
    bool set_settings(const ContextSettings & s) override {
        settings = s;
        ctx.reset();  // one made before computed other logits, or on other threads
        synced = 0;
        return true;
    }
    void reset() override {
        SamplerBase::reset();
        rollout_rng = params.rollout_seed;
        history.clear();
        n_prompt = -1;
        synced = 0;
        if (ctx) llama_memory_clear(llama_get_memory(ctx.get()), true);
    }

    Outcome run(llama_token_data_array * c, bool & sorted) override {
        sorted = false;
        if (history.empty()) return {Status::no_history, 0};
        // The candidates: the K best of the logits given (the chain's view of p_t).
        const Scan_ s = scan_logits(c);
        if (s.status != Status::ok) return {s.status, 0};
        try {
            if (n_prompt < 0) n_prompt = static_cast<int64_t>(history.size());
            // With a length limit, futures end there as π's sequences do (power_generate).
            PowerParams step = params;
            if (params.max_tokens > 0) {
                const int64_t left = params.max_tokens - (static_cast<int64_t>(history.size()) - n_prompt) - 1;
                step.horizon = static_cast<int32_t>(std::max<int64_t>(0, std::min<int64_t>(params.horizon, left)));
            }
            const RolloutShape shape = power_context_shape(step, static_cast<int64_t>(history.size()), 0);
            if (!ctx) {
                ctx = make_rollout_context(model, params.n_ctx, shape.n_seq, 0, std::max<uint32_t>(64, shape.n_seq), 32,
                                           settings);
            }
            RolloutEngine engine(ctx.get());
            if (synced > history.size()) {  // cannot happen with accept-only histories; resync
                llama_memory_clear(llama_get_memory(ctx.get()), true);
                synced = 0;
            }
            if (synced < history.size()) {
                engine.extend(0, history.data() + synced, history.size() - synced, static_cast<llama_pos>(synced));
                synced = history.size();
            }
            const size_t k = std::min<size_t>(static_cast<size_t>(params.candidates), s.n_finite);
            select_top(c->data, c->size, k, ws);  // the k best first, by logit then id
            std::vector<llama_token> cand(k);
            std::vector<float> log_p(k);
            for (size_t i = 0; i < k; ++i) {
                cand[i] = c->data[i].id;
                log_p[i] = c->data[i].logit - s.log_norm;
            }
            const int32_t lanes = engine.n_seq_max() - 1;
            const int32_t per_wave = std::max(1, std::min<int32_t>(static_cast<int32_t>(k), lanes / params.rollouts));
            std::vector<double> loglik(k * static_cast<size_t>(params.rollouts), 0.0);
            PowerStats stats;
            const llama_pos n_past = static_cast<llama_pos>(history.size());
            if (shape.cells > engine.n_ctx()) {
                return {Status::failed, 0};
            }
            if (step.horizon > 0) {
                run_rollouts(engine, llama_model_get_vocab(model), cand, std::vector<llama_seq_id>(k, 0),
                             std::vector<llama_pos>(k, n_past), step, per_wave, 1, true, rollout_rng, loglik, stats,
                             scratch);
            }
            std::vector<double> w(k);
            if (!power_weights(log_p.data(), loglik.data(), k, static_cast<size_t>(params.rollouts), params.alpha,
                               params.jackknife && step.horizon > 0, w.data())) {
                return {Status::nan_logit, 0};
            }
            for (size_t i = 0; i < k; ++i) {
                c->data[i].p = static_cast<float>(w[i]);
                c->data[i].logit = w[i] > 0.0 ? static_cast<float>(std::log(w[i])) : -INFINITY;
            }
            return {Status::ok, k};
        } catch (const std::exception &) {
            return {Status::failed, 0};
        }
    }

    struct Scan_ { Status status; size_t n_finite; float log_norm; };
    // Validates the logits and returns log Σ exp(logit) (so log p = logit - log_norm).
    Scan_ scan_logits(const llama_token_data_array * c) {
        size_t n_finite = 0;
        float hi = -INFINITY;
        for (size_t i = 0; i < c->size; ++i) {
            const float l = c->data[i].logit;
            if (l != l) return {Status::nan_logit, 0, 0.0f};
            if (l == INFINITY) return {Status::inf_logit, 0, 0.0f};
            if (l > -INFINITY) {
                ++n_finite;
                hi = l > hi ? l : hi;
            }
        }
        if (n_finite == 0) return {Status::empty_support, 0, 0.0f};
        double z = 0.0;
        for (size_t i = 0; i < c->size; ++i) z += std::exp(static_cast<double>(c->data[i].logit - hi));
        return {Status::ok, n_finite, hi + static_cast<float>(std::log(z))};
    }
};

}  // namespace

llama_sampler * make_power_chain_sampler(llama_model * model, const PowerParams & p) {
    const uint32_t n_ctx = p.n_ctx;
    const int32_t max_tokens = p.max_tokens;  // 0: no limit
    if (max_tokens < 0) throw std::invalid_argument("max_tokens: must be >= 0 (0: no limit), got " + std::to_string(max_tokens));
    // Everything the rollout context needs is checked here, before any work:
    // the context itself is made on the first apply.
    check_horizon(model, p.horizon);
    const RolloutShape least = power_context_shape(p, 1, max_tokens);  // a one-token prompt
    if (static_cast<int64_t>(n_ctx) < least.cells) {
        throw std::invalid_argument("n_ctx: must be >= " + std::to_string(least.cells) + " for these rollouts (" +
                                    least.why + "), got " + std::to_string(n_ctx));
    }
    check_rollout_context(model, n_ctx, least.n_seq, 32, "n_ctx");
    return wrap(new PowerChain(model, p));
}

}  // namespace llama_simplex
