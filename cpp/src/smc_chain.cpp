// SmcChain: Power-SMC (smc.h) as a member of any llama.cpp sampler chain, e.g.
// in llama-server. SMC draws a whole completion, so at its first apply (the
// prompt learnt through accept()) it runs the particles in a context of its
// own and keeps the drawn completion; each apply then leaves only the planned
// token (p = 1), and end-of-sequence after it. When the chain accepts another
// token than the planned one (a later member chose differently), it plans
// again from the sequence as it is.

#include "llama_simplex/samplers.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "llama_simplex/rollout.h"
#include "llama_simplex/smc.h"
#include "sampler_adapter.h"

namespace llama_simplex {

namespace {

using detail::SamplerBase;

struct SmcChain : SamplerBase {
    llama_model *            model;
    uint32_t                 n_ctx;
    SmcParams                params;
    uint64_t                 seed;
    uint64_t                 plans = 0;       // runs so far (each seeded apart)
    int32_t                  max_tokens;      // the completion's length limit, from the first apply
    int64_t                  n_prompt = -1;   // history length at the first apply: the prompt
    std::vector<llama_token> history;         // every token accepted, prompt included
    std::vector<llama_token> plan;            // the drawn completion (with end-of-sequence if it stopped)
    size_t                   plan_at = 0;     // history length the plan starts at
    bool                     planned = false;
    ContextSettings          settings;        // the caller's context's (set_context_settings)

    SmcChain(llama_model * m, uint32_t n, const SmcParams & p, uint64_t s, int32_t limit)
        : model(m), n_ctx(n), params(p), seed(s), max_tokens(limit) {}
    SamplerBase * copy() const override { return new SmcChain(*this); }
    const char * name() const override { return "simplex-smc"; }
    void accept(llama_token t) override { history.push_back(t); }
    bool set_settings(const ContextSettings & s) override {
        settings = s;
        return true;
    }
    void reset() override {
        SamplerBase::reset();
        history.clear();
        plan.clear();
        planned = false;
        plans = 0;
        n_prompt = -1;
    }

    // The plan still describes the sequence: what was accepted since it began is its start.
    bool on_plan() const {
        if (!planned || history.size() < plan_at) return false;
        const size_t done = history.size() - plan_at;
        return done <= plan.size() && std::equal(history.begin() + static_cast<std::ptrdiff_t>(plan_at),
                                                 history.end(), plan.begin());
    }

    void make_plan() {
        const int64_t left = max_tokens - (static_cast<int64_t>(history.size()) - n_prompt);
        plan.clear();
        plan_at = history.size();
        planned = true;
        if (left <= 0) return;
        const RolloutShape shape = smc_context_shape(params, static_cast<int64_t>(history.size()), left);
        if (shape.cells > static_cast<int64_t>(n_ctx)) {
            throw std::invalid_argument("n_ctx: the particles need " + std::to_string(shape.cells) + " cells (" +
                                        shape.why + "), the sampler's context has " + std::to_string(n_ctx));
        }
        const uint32_t n_seq = static_cast<uint32_t>(params.particles);
        // The particles' context lives only while the plan is drawn, not as long as the
        // sampler: its N * max_tokens cells are not needed to emit the plan (a re-plan
        // makes another), and a context freed after the caller's next decode would void
        // the graph llama.cpp's RPC client then reuses (ggml-rpc drops every stored graph
        // when any buffer is freed).
        const ContextPtr ctx = make_rollout_context(model, n_ctx, n_seq, 0, std::max<uint32_t>(64, n_seq), 32, settings);
        const SmcResult r = smc_generate(ctx.get(), history, params, static_cast<int32_t>(left),
                                         seed + 0x9E3779B97F4A7C15ull * plans++, true);
        plan = r.tokens;
        if (r.stopped) plan.push_back(llama_vocab_eos(llama_model_get_vocab(model)));
    }

    Outcome run(llama_token_data_array * c, bool & sorted) override {
        sorted = true;
        if (history.empty()) return {Status::no_history, 0};
        // The logits given must be usable, as for every sampler of ours (the plan does not read them).
        bool any_finite = false;
        for (size_t i = 0; i < c->size; ++i) {
            const float l = c->data[i].logit;
            if (l != l) return {Status::nan_logit, 0};
            if (l == INFINITY) return {Status::inf_logit, 0};
            any_finite = any_finite || l > -INFINITY;
        }
        if (!any_finite) return {Status::empty_support, 0};
        try {
            if (n_prompt < 0) n_prompt = static_cast<int64_t>(history.size());
            if (!on_plan()) make_plan();
            const size_t done = history.size() - plan_at;
            // Past the plan (the length limit): end-of-sequence.
            const llama_token next = done < plan.size() ? plan[done] : llama_vocab_eos(llama_model_get_vocab(model));
            for (size_t i = 0; i < c->size; ++i) {
                if (c->data[i].id != next) continue;
                if (!std::isfinite(c->data[i].logit)) return {Status::failed, 0};  // a member before us removed it
                std::swap(c->data[0], c->data[i]);
                c->data[0].p = 1.0f;
                c->data[0].logit = 0.0f;
                return {Status::ok, 1};
            }
            return {Status::failed, 0};  // the planned token is not among the candidates given
        } catch (const std::exception &) {
            return {Status::failed, 0};
        }
    }
};

}  // namespace

llama_sampler * make_smc_chain_sampler(llama_model * model, uint32_t n_ctx, const SmcParams & params,
                                       uint32_t rollout_seed, int32_t max_tokens) {
    check_smc_params(params);
    if (max_tokens < 1) throw std::invalid_argument("max_tokens: must be >= 1, got " + std::to_string(max_tokens));
    // Checked here, before any work: the context itself is made on the first apply.
    const RolloutShape least = smc_context_shape(params, 1, max_tokens);  // a one-token prompt
    if (static_cast<int64_t>(n_ctx) < least.cells) {
        throw std::invalid_argument("n_ctx: must be >= " + std::to_string(least.cells) + " for these particles (" +
                                    least.why + "), got " + std::to_string(n_ctx));
    }
    check_rollout_context(model, n_ctx, static_cast<uint32_t>(params.particles), 32, "n_ctx");
    return wrap(new SmcChain(model, n_ctx, params, rollout_seed, max_tokens));
}

}  // namespace llama_simplex
