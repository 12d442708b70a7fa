#include "llama_simplex/samplers.h"

#include "backend_sampling.h"
#include "sampler_adapter.h"
#include "vec_math.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>

namespace llama_simplex {

namespace {

using detail::GraphDecoder;
using detail::SamplerBase;
using detail::wrap;
using Kind = GraphDecoder::Kind;

template <typename Derived>
struct Sampler : SamplerBase {
    SamplerBase * copy() const override { return new Derived(static_cast<const Derived &>(*this)); }
};

struct Greedy : Sampler<Greedy> {
    const char * name() const override { return "simplex-greedy"; }
    Outcome run(llama_token_data_array * c, bool & sorted) override {
        sorted = true;
        return greedy(c->data, c->size, ws);
    }
    bool graph(GraphDecoder & g) const override { g.kind = Kind::greedy; return true; }
};

struct Softmax : Sampler<Softmax> {
    float temperature;
    explicit Softmax(float t) : temperature(t) {}
    const char * name() const override { return "simplex-softmax"; }
    Outcome run(llama_token_data_array * c, bool & sorted) override {
        sorted = temperature <= 0.0f;
        return softmax(c->data, c->size, temperature, ws);
    }
    bool graph(GraphDecoder & g) const override { g.kind = Kind::softmax; g.temperature = temperature; return true; }
};

struct TopK : Sampler<TopK> {
    int32_t k;
    float   temperature;
    TopK(int32_t k_, float t) : k(k_), temperature(t) {}
    const char * name() const override { return "simplex-top-k"; }
    Outcome run(llama_token_data_array * c, bool & sorted) override {
        sorted = true;
        return top_k(c->data, c->size, k, temperature, ws);
    }
    bool graph(GraphDecoder & g) const override {
        g.kind = Kind::top_k; g.k = k; g.temperature = temperature;
        return true;
    }
};

// llama.cpp's min_keep for the truncation decoders: at least min_keep tokens
// stay in the support. Their supports are prefixes of the (logit desc, id asc)
// order, so a support of fewer tokens widens to top-k with k = min_keep (q =
// softmax(logits / T) over it). The input is kept aside only when min_keep > 1
// (every decoder keeps at least one token): the default costs nothing. At
// temperature 0 q is greedy whatever the support.
template <typename Decode>
Outcome keep_at_least(int32_t min_keep, float temperature, llama_token_data_array * c, bool & sorted, Workspace & ws,
                      std::vector<llama_token_data> & input, Decode decode) {
    if (min_keep <= 1 || temperature <= 0.0f) return decode();
    input.assign(c->data, c->data + c->size);
    const Outcome o = decode();
    if (o.status != Status::ok || o.support >= static_cast<size_t>(min_keep)) return o;
    std::copy(input.begin(), input.end(), c->data);
    sorted = true;
    return top_k(c->data, c->size, min_keep, temperature, ws);
}

// TopP and MinP hold their C parameter struct (llama_simplex.h, expanded from
// the one list in llama_simplex_params.h): no field of theirs is a copy of it.
// `draw` in it is the C API's; the sampler's draw state is SamplerBase's.
struct TopP : Sampler<TopP> {
    llama_simplex_top_p_params params;
    std::vector<llama_token_data> input;
    explicit TopP(const llama_simplex_top_p_params & p) : params(p) {}
    NucleusOrder order() const { return params.order_by_temperature ? NucleusOrder::temperature : NucleusOrder::model; }
    const char * name() const override { return params.order_by_temperature ? "simplex-top-p-llama" : "simplex-top-p"; }
    Outcome run(llama_token_data_array * c, bool & sorted) override {
        sorted = params.temperature <= 0.0f;  // the nucleus comes from a selection, not a sort
        return keep_at_least(params.min_keep, params.temperature, c, sorted, ws, input,
                             [&] { return top_p(c->data, c->size, params.p, params.temperature, order(), ws); });
    }
    bool graph(GraphDecoder & g) const override {
        g.kind = Kind::top_p; g.temperature = params.temperature; g.top_p = &params;
        return true;
    }
};

struct MinP : Sampler<MinP> {
    llama_simplex_min_p_params params;
    std::vector<llama_token_data> input;
    explicit MinP(const llama_simplex_min_p_params & p) : params(p) {}
    const char * name() const override { return "simplex-min-p"; }
    Outcome run(llama_token_data_array * c, bool & sorted) override {
        sorted = false;
        return keep_at_least(params.min_keep, params.temperature, c, sorted, ws, input,
                             [&] { return min_p(c->data, c->size, params.p_min, params.temperature, ws); });
    }
    bool graph(GraphDecoder & g) const override {
        g.kind = Kind::min_p; g.temperature = params.temperature; g.min_p = &params;
        return true;
    }
};

struct Sparsemax : Sampler<Sparsemax> {
    float temperature;
    explicit Sparsemax(float t) : temperature(t) {}
    const char * name() const override { return "simplex-sparsemax"; }
    Outcome run(llama_token_data_array * c, bool & sorted) override {
        sorted = false;
        return sparsemax(c->data, c->size, temperature, ws);
    }
    bool graph(GraphDecoder & g) const override { g.kind = Kind::sparsemax; g.temperature = temperature; return true; }
};

struct ObjectiveSampler : Sampler<ObjectiveSampler> {
    ObjectiveParams params;
    SolverWorkspace solver_ws;
    SolveResult     last{SolveStatus::closed_form, 0, 0.0};
    std::vector<float> s, log_r, w, q, log_q;
    std::vector<int32_t> order;

    explicit ObjectiveSampler(const ObjectiveParams & p) : params(p) {}
    // In-graph (backend_sampling.cpp): the full-vocabulary support without
    // ½‖q‖², top-M or gap weights, a solver of at most 16 steps; else the CPU.
    bool graph(GraphDecoder & g) const override {
        const double big_l = static_cast<double>(params.lam) * (static_cast<double>(params.entropy) + params.kl);
        const float t_ref = params.reference_temperature;
        if (static_cast<SupportKind>(params.support) != SupportKind::full || params.l2 != 0.0f ||
            static_cast<CoverageWeights>(params.weights) == CoverageWeights::rank || !(big_l > 0.0) ||
            params.steps > 16 || !(t_ref >= FLT_MIN && t_ref <= 0x1p64f) ||
            !(params.temperature > 0.0f)) {
            return false;
        }
        g.kind = Kind::objective;
        g.temperature = params.temperature;
        g.objective = &params;
        return true;
    }
    const char * name() const override {
        return params.beta > 0.0f ? "simplex-best-of-k" : "simplex-objective";
    }

    // Reduces the candidates to the support, leaving logit = log p_support (temperature 1).
    Outcome support(llama_token_data_array * c) {
        switch (static_cast<SupportKind>(params.support)) {
            case SupportKind::full:  return softmax(c->data, c->size, 1.0f, ws);
            case SupportKind::top_k: return top_k(c->data, c->size, static_cast<int32_t>(params.support_value), 1.0f, ws);
            case SupportKind::top_p: return top_p(c->data, c->size, params.support_value, 1.0f, NucleusOrder::model, ws);
            case SupportKind::min_p: return min_p(c->data, c->size, params.support_value, 1.0f, ws);
        }
        return {Status::ok, c->size};
    }

    Outcome run(llama_token_data_array * c, bool & sorted) override {
        sorted = false;
        llama_token_data * d = c->data;
        size_t n = 0;
        if (static_cast<SupportKind>(params.support) == SupportKind::full) {
            // Only validation and a gather: s and log r are affine in the raw
            // logits, so no softmax is needed to set the problem up.
            s.resize(c->size);
            const Outcome out = gather_finite(d, c->size, s.data(), ws);
            if (out.status != Status::ok) return out;
            n = out.support;
        } else {
            const Outcome out = support(c);  // leaves logit = log p over the support
            if (out.status != Status::ok) return out;
            n = out.support;
            s.resize(n);
            for (size_t i = 0; i < n; ++i) s[i] = d[i].logit;
        }
        // The coverage weights live on the top-M tokens of r (the order of
        // the logits at any temperature): bring them to the front, best first.
        const size_t n_cov = std::min<size_t>(static_cast<size_t>(std::max(params.m, 0)), n);
        bring_to_front(d, s.data(), n, n_cov, ws);
        // In double: 1/T of a subnormal float T overflows float.
        const double r_mul = 1.0 / static_cast<double>(params.reference_temperature);
        w.resize(n_cov);
        for (size_t i = 0; i < n_cov; ++i) {
            w[i] = coverage_weight(static_cast<CoverageWeights>(params.weights), i, static_cast<float>((static_cast<double>(s[0]) - s[i]) * r_mul));
        }
        // s holds the support's logits (up to a shift); s and log r are affine in them.
        const double s_mul = 1.0 / static_cast<double>(params.temperature);
        if (params.l2 == 0.0f) {
            // Writes q and log q straight into the candidates' p and logit.
            static_assert(sizeof(llama_token_data) == 3 * sizeof(float), "llama_token_data layout");
            last = solve_simplex_affine(s.data(), n, w.data(), n_cov, s_mul, r_mul, params,
                                        &d[0].p, &d[0].logit, 3, solver_ws);
            return {Status::ok, n};
        }
        q.resize(n);
        log_q.resize(n);
        log_r.resize(n);
        // Shifted by the best logit (it comes first), in double, as in the kernels.
        const double s0 = s[0];
        double z = 0.0;
        for (size_t i = 0; i < n; ++i) {
            const double d = (static_cast<double>(s[i]) - s0) * r_mul;
            log_r[i] = static_cast<float>(d);
            z += std::exp(d);
        }
        const float log_z = static_cast<float>(std::log(z));
        for (size_t i = 0; i < n; ++i) log_r[i] -= log_z;
        // A score below -FLT_MAX is as good as -inf (q = 0 after any step) but keeps the solver's sums finite.
        for (size_t i = 0; i < n; ++i) {
            s[i] = std::max(static_cast<float>((static_cast<double>(s[i]) - s0) * s_mul), -FLT_MAX);
        }
        w.resize(n, 0.0f);
        last = solve_simplex(s.data(), log_r.data(), w.data(), n, params, q.data(),
                             log_q.data(), solver_ws);
        for (size_t i = 0; i < n; ++i) {
            d[i].p = q[i];
            d[i].logit = log_q[i];
        }
        return {Status::ok, n};
    }
};

struct Dist : Sampler<Dist> {
    explicit Dist(uint32_t s) {
        draw_seed = s == LLAMA_DEFAULT_SEED ? std::random_device{}() : s;
        rng = draw_seed;
    }
    const char * name() const override { return "simplex-dist"; }
    bool selects() const override { return true; }
    bool graph(GraphDecoder & g) const override { g.kind = Kind::softmax; return true; }  // softmax(logit), then the draw
    Outcome run(llama_token_data_array * c, bool & sorted) override {
        sorted = c->sorted;
        int64_t selected = -1;
        const Outcome out = draw(c->data, c->size, rng, selected, ws);
        if (out.status == Status::ok) {
            c->selected = selected;
        }
        return out;
    }
};

SamplerBase * self(const llama_sampler * smpl) {
    return static_cast<SamplerBase *>(smpl->ctx);
}

const char * iface_name(const llama_sampler * smpl) {
    return self(smpl)->name();
}


void iface_apply(llama_sampler * smpl, llama_token_data_array * cur_p) {
    SamplerBase * s = self(smpl);
    bool sorted = false;
    Outcome out = s->run(cur_p, sorted);
    if (out.status == Status::ok && (out.support == 0 || !detail::is_distribution(cur_p->data, out.support))) {
        // Degenerate parameters for these logits (NaN, inf or all-zero q): a
        // failure the caller's error path reports, never a draw from junk. The
        // kernel already rewrote the array, so reduce it to one finite
        // candidate that no sampler after this one can trip over.
        out.status = Status::invalid_q;
        if (cur_p->size > 0) {
            cur_p->data[0].p = 1.0f;
            cur_p->data[0].logit = 0.0f;
            cur_p->size = 1;
            cur_p->sorted = true;
        }
    }
    s->status = out.status;
    if (out.status != Status::ok) {
        // Otherwise the candidates are left as given; a chain that is not
        // ours still gets a valid selection so llama.cpp's own checks never
        // abort the process. The status says the token must not be used.
        if (cur_p->size > 0 && (cur_p->selected < 0 || cur_p->selected >= (int64_t) cur_p->size)) {
            cur_p->selected = 0;
        }
        return;
    }
    cur_p->size   = out.support;
    cur_p->sorted = sorted;
    if (s->draws) {
        cur_p->selected = pick(cur_p->data, out.support, s->rng);
    } else if (!s->selects()) {
        // The array was reordered and cut: an earlier selection no longer
        // points at the token it chose.
        cur_p->selected = -1;
    }
}

void iface_accept(llama_sampler * smpl, llama_token token) {
    self(smpl)->accept(token);
}

void iface_reset(llama_sampler * smpl) {
    self(smpl)->status = Status::ok;
    self(smpl)->reset();
}

llama_sampler * iface_clone(const llama_sampler * smpl) {
    return wrap(self(smpl)->copy());
}

void iface_free(llama_sampler * smpl) {
    delete self(smpl);
}

llama_sampler_i ours_iface = {
    /* .name              = */ iface_name,
    /* .accept            = */ iface_accept,
    /* .apply             = */ iface_apply,
    /* .reset             = */ iface_reset,
    /* .clone             = */ iface_clone,
    /* .free              = */ iface_free,
    // In-graph forms (backend_sampling.cpp); apply above stays the CPU fallback.
    /* .backend_init      = */ detail::graph_init,
    /* .backend_accept    = */ nullptr,
    /* .backend_apply     = */ detail::graph_apply,
    /* .backend_set_input = */ detail::graph_set_input,
    /* .backend_reset     = */ detail::graph_reset,
    /* .copy_state        = */ detail::graph_copy_state,
};

}  // namespace

// True when p over cur[0..n) is a distribution a draw can use: every value
// finite and >= 0, and a positive, finite total.
bool detail::is_distribution(const llama_token_data * cur, size_t n) {
    // Branch-free over the whole support (it runs on every apply): NaN fails
    // both comparisons; four partial sums let the compiler vectorise.
    constexpr float big = std::numeric_limits<float>::max();
    bool ok = true;
    float total[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        for (size_t j = 0; j < 4; ++j) {
            const float p = cur[i + j].p;
            ok &= (p >= 0.0f) & (p <= big);
            total[j] += p;
        }
    }
    for (; i < n; ++i) {
        const float p = cur[i].p;
        ok &= (p >= 0.0f) & (p <= big);
        total[0] += p;
    }
    const float sum = (total[0] + total[1]) + (total[2] + total[3]);
    return ok && sum > 0.0f && sum <= big;
}

llama_sampler * detail::wrap(SamplerBase * s) {
    return llama_sampler_init(&ours_iface, s);
}

llama_sampler * make_greedy()                                            { return wrap(new Greedy()); }
llama_sampler * make_softmax(float temperature)                          { return wrap(new Softmax(temperature)); }
llama_sampler * make_top_k(int32_t k, float temperature)                 { return wrap(new TopK(k, temperature)); }
llama_sampler * make_top_p(const llama_simplex_top_p_params & params)   { return wrap(new TopP(params)); }
llama_sampler * make_min_p(const llama_simplex_min_p_params & params)   { return wrap(new MinP(params)); }
llama_sampler * make_sparsemax(float temperature)                        { return wrap(new Sparsemax(temperature)); }
llama_sampler * make_dist(uint32_t seed)                                 { return wrap(new Dist(seed)); }
llama_sampler * make_objective(const ObjectiveParams & params)           { return wrap(new ObjectiveSampler(params)); }

bool last_solve(const llama_sampler * smpl, SolveResult & out) {
    if (!is_ours(smpl)) {
        return false;
    }
    const auto * o = dynamic_cast<const ObjectiveSampler *>(self(smpl));
    if (o == nullptr) {
        return false;
    }
    out = o->last;
    return true;
}

int32_t set_context_settings(llama_sampler * smpl, const ContextSettings & settings) {
    if (is_ours(smpl)) return self(smpl)->set_settings(settings) ? 1 : 0;
    if (smpl == nullptr || llama_sampler_chain_get(smpl, -1) == nullptr) return 0;  // a foreign non-chain
    int32_t n = 0;
    for (int32_t i = 0; i < llama_sampler_chain_n(smpl); ++i) {
        n += set_context_settings(llama_sampler_chain_get(smpl, i), settings);
    }
    return n;
}

bool enable_draw(llama_sampler * smpl, uint32_t seed) {
    if (!is_ours(smpl) || self(smpl)->selects()) {
        return false;
    }
    self(smpl)->draw_with(seed);
    return true;
}

namespace {

// llama.cpp's samplers that set the selection themselves.
bool selects_by_name(const llama_sampler * smpl) {
    static const char * const names[] = {"greedy", "dist", "mirostat", "mirostat-v2", "adaptive-p"};
    const char * name = llama_sampler_name(smpl);
    for (const char * n : names) {
        if (std::strcmp(name, n) == 0) {
            return true;
        }
    }
    return false;
}

}  // namespace

bool ensure_draw(llama_sampler * smpl, uint32_t seed) {
    if (is_ours(smpl)) {
        self(smpl)->draw_with(seed);
        return true;
    }
    if (llama_sampler_chain_get(smpl, -1) == nullptr) {
        return false;  // a foreign sampler that is not a chain
    }
    const int32_t n = llama_sampler_chain_n(smpl);
    // The call's seed decides every draw of ours, an explicit Dist's included.
    for (int32_t i = 0; i < n; ++i) {
        llama_sampler * m = llama_sampler_chain_get(smpl, i);
        if (is_ours(m) && self(m)->selects()) {
            self(m)->draw_with(seed);
        }
    }
    llama_sampler * last = n > 0 ? llama_sampler_chain_get(smpl, n - 1) : nullptr;
    if (last != nullptr && (is_ours(last) || llama_sampler_chain_get(last, -1) != nullptr)) {
        return ensure_draw(last, seed);  // the last member draws from what the chain left
    }
    if (last != nullptr && selects_by_name(last)) {
        return true;
    }
    llama_sampler_chain_add(smpl, make_dist(seed));
    return true;
}

bool is_ours(const llama_sampler * smpl) {
    return smpl != nullptr && smpl->iface == &ours_iface;
}

Status last_status(const llama_sampler * smpl) {
    if (is_ours(smpl)) {
        return self(smpl)->status;
    }
    auto * chain = const_cast<llama_sampler *>(smpl);
    if (llama_sampler_chain_get(chain, -1) == nullptr) {
        return Status::ok;  // a foreign sampler: nothing we can know
    }
    for (int32_t i = 0, n = llama_sampler_chain_n(chain); i < n; ++i) {
        const Status s = last_status(llama_sampler_chain_get(chain, i));
        if (s != Status::ok) {
            return s;
        }
    }
    return Status::ok;
}

}  // namespace llama_simplex
