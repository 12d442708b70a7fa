// The flat C API over the samplers (llama_simplex.h): defaults and parameter
// checks come from the sampler table (specs.h), with messages that name the
// parameter and its range; no exception ever crosses into C.
#include "llama_simplex/llama_simplex.h"

#include <cmath>
#include <new>
#include <stdexcept>
#include <string>
#include <utility>

#include "llama_simplex/power.h"
#include "llama_simplex/samplers.h"
#include "llama_simplex/smc.h"
#include "llama_simplex/specs.h"

using namespace llama_simplex;

namespace {

thread_local std::string last_error;

llama_simplex_status fail(llama_simplex_status status, const std::string & message) {
    last_error = message;
    return status;
}

// Wraps construction: NULL checks, the range check given, allocation failures.
template <typename Check, typename Make>
llama_simplex_status build(const void * params, llama_sampler ** out, Check check, Make make,
                           const llama_simplex_draw_params * draw) {
    if (out == nullptr) return fail(LLAMA_SIMPLEX_NULL_ARGUMENT, "out: must not be NULL");
    *out = nullptr;
    if (params == nullptr) return fail(LLAMA_SIMPLEX_NULL_ARGUMENT, "params: must not be NULL");
    std::string why = check();
    if (!why.empty()) return fail(LLAMA_SIMPLEX_INVALID_ARGUMENT, why);
    try {
        llama_sampler * s = make();
        if (draw != nullptr && draw->draw) enable_draw(s, draw->seed);
        *out = s;
    } catch (const std::bad_alloc &) {
        return fail(LLAMA_SIMPLEX_FAILED, "out of memory");
    } catch (const std::invalid_argument & e) {  // a parameter the constructor could only check with the model
        return fail(LLAMA_SIMPLEX_INVALID_ARGUMENT, e.what());
    } catch (const std::exception & e) {
        return fail(LLAMA_SIMPLEX_FAILED, e.what());
    }
    last_error.clear();
    return LLAMA_SIMPLEX_OK;
}

llama_simplex_draw_params no_draw() { return {false, 0}; }

const SamplerSpec & spec_of(const char * name) { return *find_sampler_spec(name); }

// A C parameter struct holding the table's defaults.
template <typename P>
P table_defaults(const char * sampler) {
    P p{};
    fill_c_defaults(spec_of(sampler), &p);
    p.draw = no_draw();
    return p;
}

// build() with the table's checks of `sampler`'s C struct.
template <typename P, typename Make>
llama_simplex_status build_checked(const char * sampler, const P * p, llama_sampler ** out, Make make) {
    return build(p, out, [sampler, p] { return check_c_struct(spec_of(sampler), p); }, make, p ? &p->draw : nullptr);
}

}  // namespace

extern "C" {

const char * llama_simplex_version(void) { return "0.1.0"; }
const char * llama_simplex_last_error(void) { return last_error.c_str(); }

const char * llama_simplex_status_string(llama_simplex_status status) {
    switch (status) {
        case LLAMA_SIMPLEX_OK:               return "ok";
        case LLAMA_SIMPLEX_INVALID_ARGUMENT: return "invalid argument";
        case LLAMA_SIMPLEX_NULL_ARGUMENT:    return "null argument";
        case LLAMA_SIMPLEX_FAILED:           return "failed";
    }
    return "unknown status";
}

llama_simplex_softmax_params llama_simplex_softmax_default_params(void) { return table_defaults<llama_simplex_softmax_params>("softmax"); }
llama_simplex_top_k_params llama_simplex_top_k_default_params(void) { return table_defaults<llama_simplex_top_k_params>("top_k"); }
llama_simplex_top_p_params llama_simplex_top_p_default_params(void) { return table_defaults<llama_simplex_top_p_params>("top_p"); }
llama_simplex_min_p_params llama_simplex_min_p_default_params(void) { return table_defaults<llama_simplex_min_p_params>("min_p"); }
llama_simplex_sparsemax_params llama_simplex_sparsemax_default_params(void) { return table_defaults<llama_simplex_sparsemax_params>("sparsemax"); }
llama_simplex_best_of_k_params llama_simplex_best_of_k_default_params(void) { return table_defaults<llama_simplex_best_of_k_params>("best_of_k"); }
llama_simplex_objective_params llama_simplex_objective_default_params(void) { return table_defaults<llama_simplex_objective_params>("objective"); }
// n_ctx (table default 8192): the paper preset's rollouts take 4,169 cells; the rest holds the sequence.
llama_simplex_power_params llama_simplex_power_default_params(void) { return table_defaults<llama_simplex_power_params>("power"); }
llama_simplex_smc_params llama_simplex_smc_default_params(void) { return table_defaults<llama_simplex_smc_params>("smc"); }

llama_simplex_status llama_simplex_greedy(llama_sampler ** out) {
    static const int dummy = 0;
    return build(&dummy, out, [] { return std::string(); }, [] { return make_greedy(); }, nullptr);
}

llama_simplex_status llama_simplex_softmax(const llama_simplex_softmax_params * p, llama_sampler ** out) {
    return build_checked("softmax", p, out, [p] { return make_softmax(p->temperature); });
}

llama_simplex_status llama_simplex_top_k(const llama_simplex_top_k_params * p, llama_sampler ** out) {
    return build_checked("top_k", p, out, [p] { return make_top_k(p->k, p->temperature); });
}

llama_simplex_status llama_simplex_top_p(const llama_simplex_top_p_params * p, llama_sampler ** out) {
    return build_checked("top_p", p, out, [p] { return make_top_p(*p); });
}

llama_simplex_status llama_simplex_min_p(const llama_simplex_min_p_params * p, llama_sampler ** out) {
    return build_checked("min_p", p, out, [p] { return make_min_p(*p); });
}

llama_simplex_status llama_simplex_sparsemax(const llama_simplex_sparsemax_params * p, llama_sampler ** out) {
    return build_checked("sparsemax", p, out, [p] { return make_sparsemax(p->temperature); });
}

llama_simplex_status llama_simplex_best_of_k(const llama_simplex_best_of_k_params * p, llama_sampler ** out) {
    return build_checked("best_of_k", p, out, [p] {
        // The objective with the KL anchor (the table's fixed values); what its C struct
        // lacks keeps the table's defaults.
        ObjectiveParams o{};
        c_to_target(spec_of("best_of_k"), p, &o);
        return make_objective(o);
    });
}

llama_simplex_status llama_simplex_objective(const llama_simplex_objective_params * p, llama_sampler ** out) {
    return build_checked("objective", p, out, [p] { return make_objective(*p); });
}

llama_simplex_status llama_simplex_power(const llama_simplex_power_params * p, llama_model * model, llama_sampler ** out) {
    if (model == nullptr && out != nullptr) {
        *out = nullptr;
        return fail(LLAMA_SIMPLEX_NULL_ARGUMENT, "model: must not be NULL (the rollouts run on it)");
    }
    return build_checked("power", p, out, [p, model] {
        PowerParams run{};
        c_to_run(spec_of("power"), p, &run);
        return make_power_chain_sampler(model, run);
    });
}

llama_simplex_status llama_simplex_smc(const llama_simplex_smc_params * p, llama_model * model, llama_sampler ** out) {
    if (model == nullptr && out != nullptr) {
        *out = nullptr;
        return fail(LLAMA_SIMPLEX_NULL_ARGUMENT, "model: must not be NULL (the particles run on it)");
    }
    return build_checked("smc", p, out, [p, model] {
        SmcParams run{};
        c_to_run(spec_of("smc"), p, &run);
        return make_smc_chain_sampler(model, p->n_ctx, run, p->rollout_seed, p->max_tokens);
    });
}

int32_t llama_simplex_sampler_status(const llama_sampler * smpl) {
    if (smpl == nullptr) return 0;
    return static_cast<int32_t>(last_status(smpl));
}

const char * llama_simplex_sampler_status_string(int32_t status) {
    // status_message answers "unknown status" for a value outside the enum.
    return status < 0 ? "unknown status" : status_message(static_cast<Status>(status));
}

llama_simplex_status llama_simplex_set_context_params(llama_sampler * smpl, const llama_context_params * params,
                                                      int32_t * n_taken) {
    if (n_taken != nullptr) *n_taken = 0;
    if (smpl == nullptr) return fail(LLAMA_SIMPLEX_NULL_ARGUMENT, "smpl: must not be NULL");
    if (params == nullptr) return fail(LLAMA_SIMPLEX_NULL_ARGUMENT, "params: must not be NULL");
    const int32_t n = set_context_settings(smpl, settings_of(*params));
    if (n_taken != nullptr) *n_taken = n;
    last_error.clear();
    return LLAMA_SIMPLEX_OK;
}

llama_simplex_status llama_simplex_ensure_draw(llama_sampler * smpl, uint32_t seed) {
    if (smpl == nullptr) return fail(LLAMA_SIMPLEX_NULL_ARGUMENT, "smpl: must not be NULL");
    try {
        if (!ensure_draw(smpl, seed)) {
            return fail(LLAMA_SIMPLEX_INVALID_ARGUMENT,
                        "smpl: must be a sampler of llama_simplex or a llama.cpp chain, got '" +
                            std::string(llama_sampler_name(smpl)) + "'");
        }
    } catch (const std::bad_alloc &) {
        return fail(LLAMA_SIMPLEX_FAILED, "out of memory");
    }
    last_error.clear();
    return LLAMA_SIMPLEX_OK;
}

}  // extern "C"
