// The flat C API over the samplers (llama_simplex.h): parameter checks with
// messages that name the parameter, and no exception ever crosses into C.
#include "llama_simplex/llama_simplex.h"

#include <cmath>
#include <new>
#include <stdexcept>
#include <string>
#include <utility>

#include "llama_simplex/samplers.h"

using namespace llama_simplex;

namespace {

thread_local std::string last_error;

llama_simplex_status fail(llama_simplex_status status, const std::string & message) {
    last_error = message;
    return status;
}

bool finite_at_least(float v, float lo, bool open) {
    return std::isfinite(v) && (open ? v > lo : v >= lo);
}

std::string num(double v) {
    std::string s = std::to_string(v);
    s.erase(s.find_last_not_of('0') + 1);
    if (!s.empty() && s.back() == '.') s.pop_back();
    return s;
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

std::string check_temperature(float t) {
    return finite_at_least(t, 0.0f, false) ? "" : "temperature: must be finite and >= 0, got " + num(t);
}

llama_simplex_draw_params no_draw() { return {false, 0}; }

// Bounds the work of one apply: each step is O(vocabulary) (with l2, a sort).
std::string check_steps(int32_t steps) {
    if (steps >= 0 && steps <= LLAMA_SIMPLEX_MAX_STEPS) return "";
    return "steps: must be in [0, " + std::to_string(LLAMA_SIMPLEX_MAX_STEPS) + "], got " + std::to_string(steps);
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

llama_simplex_softmax_params llama_simplex_softmax_default_params(void) { return {1.0f, no_draw()}; }
llama_simplex_top_k_params llama_simplex_top_k_default_params(void) { return {40, 1.0f, no_draw()}; }
llama_simplex_top_p_params llama_simplex_top_p_default_params(void) { return {0.9, 1.0f, false, no_draw()}; }
llama_simplex_min_p_params llama_simplex_min_p_default_params(void) { return {0.05, 1.0f, no_draw()}; }
llama_simplex_sparsemax_params llama_simplex_sparsemax_default_params(void) { return {1.0f, no_draw()}; }
llama_simplex_best_of_k_params llama_simplex_best_of_k_default_params(void) {
    return {8, 0.01f, 0.1f, 5, 1.0f, 8, 1.0f, no_draw()};
}

llama_simplex_status llama_simplex_greedy(llama_sampler ** out) {
    static const int dummy = 0;
    return build(&dummy, out, [] { return std::string(); }, [] { return make_greedy(); }, nullptr);
}

llama_simplex_status llama_simplex_softmax(const llama_simplex_softmax_params * p, llama_sampler ** out) {
    return build(p, out, [p] { return check_temperature(p->temperature); },
                 [p] { return make_softmax(p->temperature); }, p ? &p->draw : nullptr);
}

llama_simplex_status llama_simplex_top_k(const llama_simplex_top_k_params * p, llama_sampler ** out) {
    return build(p, out, [p] {
        if (p->k < 0) return "k: must be >= 0 (0 keeps every token), got " + std::to_string(p->k);
        return check_temperature(p->temperature);
    }, [p] { return make_top_k(p->k, p->temperature); }, p ? &p->draw : nullptr);
}

llama_simplex_status llama_simplex_top_p(const llama_simplex_top_p_params * p, llama_sampler ** out) {
    return build(p, out, [p] {
        if (!(p->p >= 0.0 && p->p <= 1.0)) return "p: must be in [0, 1], got " + num(p->p);
        return check_temperature(p->temperature);
    }, [p] {
        return make_top_p(p->p, p->temperature, p->order_by_temperature ? NucleusOrder::temperature : NucleusOrder::model);
    }, p ? &p->draw : nullptr);
}

llama_simplex_status llama_simplex_min_p(const llama_simplex_min_p_params * p, llama_sampler ** out) {
    return build(p, out, [p] {
        if (!(p->p_min >= 0.0 && p->p_min <= 1.0)) return "p_min: must be in [0, 1], got " + num(p->p_min);
        return check_temperature(p->temperature);
    }, [p] { return make_min_p(p->p_min, p->temperature); }, p ? &p->draw : nullptr);
}

llama_simplex_status llama_simplex_sparsemax(const llama_simplex_sparsemax_params * p, llama_sampler ** out) {
    return build(p, out, [p] { return check_temperature(p->temperature); },
                 [p] { return make_sparsemax(p->temperature); }, p ? &p->draw : nullptr);
}

llama_simplex_status llama_simplex_best_of_k(const llama_simplex_best_of_k_params * p, llama_sampler ** out) {
    return build(p, out, [p]() -> std::string {
        if (p->k_samples < 1) return "k_samples: must be >= 1, got " + std::to_string(p->k_samples);
        if (!finite_at_least(p->beta, 0.0f, false)) return "beta: must be finite and >= 0, got " + num(p->beta);
        if (!finite_at_least(p->lam, 0.0f, false)) return "lam: must be finite and >= 0, got " + num(p->lam);
        if (!check_steps(p->steps).empty()) return check_steps(p->steps);
        if (!finite_at_least(p->step_size, 0.0f, true)) return "step_size: must be finite and > 0, got " + num(p->step_size);
        if (p->m < 1) return "m: must be >= 1, got " + std::to_string(p->m);
        if (!finite_at_least(p->temperature, 0.0f, true)) {
            return "temperature: must be finite and > 0, got " + num(p->temperature);
        }
        return "";
    }, [p] {
        ObjectiveParams o;
        o.objective.lambda = p->lam;
        o.objective.w_kl = 1.0f;
        o.objective.beta = p->beta;
        o.objective.k_samples = p->k_samples;
        o.solver.max_steps = p->steps;
        o.solver.step = p->step_size;
        o.m = p->m;
        o.temperature = p->temperature;
        return make_objective(o);
    }, p ? &p->draw : nullptr);
}

llama_simplex_objective_params llama_simplex_objective_default_params(void) {
    return {1.0f, 0.0f, 1.0f, 0.0f, 0.0f, 8, 0, 8, 0, 0.0, 1.0f, 1.0f, 5, 1.0f, 1e-6f, no_draw()};
}

llama_simplex_power_params llama_simplex_power_default_params(void) {
    // n_ctx: the paper preset's rollouts take 4,169 cells; the rest holds the sequence.
    return {4.0f, 8, 8, 64, true, 8192, 0, 0, no_draw()};
}

llama_simplex_status llama_simplex_objective(const llama_simplex_objective_params * p, llama_sampler ** out) {
    return build(p, out, [p]() -> std::string {
        const std::pair<const char *, float> nonneg[] = {{"lam", p->lam}, {"entropy", p->entropy}, {"kl", p->kl},
                                                         {"l2", p->l2}, {"beta", p->beta}, {"tol", p->tol}};
        for (const auto & [name, v] : nonneg) {
            if (!finite_at_least(v, 0.0f, false)) return std::string(name) + ": must be finite and >= 0, got " + num(v);
        }
        if (p->k_samples < 1) return "k_samples: must be >= 1, got " + std::to_string(p->k_samples);
        if (p->weights < 0 || p->weights > 2) return "weights: must be 0 (top-m), 1 (rank) or 2 (gap), got " + std::to_string(p->weights);
        if (p->m < 1) return "m: must be >= 1, got " + std::to_string(p->m);
        if (p->support < 0 || p->support > 3) return "support: must be 0..3 (full, top-k, top-p, min-p), got " + std::to_string(p->support);
        if (p->support == 1 && !(p->support_value >= 1.0)) return "support_value: top-k needs k >= 1, got " + num(p->support_value);
        if ((p->support == 2 || p->support == 3) && !(p->support_value >= 0.0 && p->support_value <= 1.0)) {
            return "support_value: must be in [0, 1] for top-p / min-p, got " + num(p->support_value);
        }
        if (!finite_at_least(p->temperature, 0.0f, true)) return "temperature: must be finite and > 0, got " + num(p->temperature);
        if (!finite_at_least(p->reference_temperature, 0.0f, true)) {
            return "reference_temperature: must be finite and > 0, got " + num(p->reference_temperature);
        }
        if (!check_steps(p->steps).empty()) return check_steps(p->steps);
        if (!finite_at_least(p->step_size, 0.0f, true)) return "step_size: must be finite and > 0, got " + num(p->step_size);
        return "";
    }, [p] {
        ObjectiveParams o;
        o.objective = {p->lam, p->entropy, p->kl, p->l2, p->beta, p->k_samples};
        o.solver = {p->steps, p->step_size, p->tol};
        o.weights = static_cast<CoverageWeights>(p->weights);
        o.m = p->m;
        o.support = static_cast<SupportKind>(p->support);
        o.support_value = p->support_value;
        o.temperature = p->temperature;
        o.reference_temperature = p->reference_temperature;
        return make_objective(o);
    }, p ? &p->draw : nullptr);
}

llama_simplex_status llama_simplex_power(const llama_simplex_power_params * p, llama_model * model, llama_sampler ** out) {
    if (model == nullptr && out != nullptr) {
        *out = nullptr;
        return fail(LLAMA_SIMPLEX_NULL_ARGUMENT, "model: must not be NULL (the rollouts run on it)");
    }
    return build(p, out, [p]() -> std::string {
        if (!finite_at_least(p->alpha, 0.0f, true)) return "alpha: must be finite and > 0, got " + num(p->alpha);
        if (p->candidates < 1 || p->candidates > 255) return "candidates: must be in [1, 255], got " + std::to_string(p->candidates);
        if (p->rollouts < 1 || p->rollouts > 255) return "rollouts: must be in [1, 255], got " + std::to_string(p->rollouts);
        if (p->horizon < 0) return "horizon: must be >= 0, got " + std::to_string(p->horizon);
        if (p->n_ctx < 64) return "n_ctx: must be >= 64, got " + std::to_string(p->n_ctx);
        if (p->max_tokens < 0) return "max_tokens: must be >= 0 (0: no limit), got " + std::to_string(p->max_tokens);
        return "";
    }, [p, model] {
        return make_power_chain_sampler(model, p->n_ctx, p->alpha, p->candidates, p->rollouts, p->horizon,
                                        p->jackknife, p->rollout_seed, p->max_tokens);
    }, p ? &p->draw : nullptr);
}

int32_t llama_simplex_sampler_status(const llama_sampler * smpl) {
    if (smpl == nullptr) return 0;
    return static_cast<int32_t>(last_status(smpl));
}

const char * llama_simplex_sampler_status_string(int32_t status) {
    // status_message answers "unknown status" for a value outside the enum.
    return status < 0 ? "unknown status" : status_message(static_cast<Status>(status));
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
