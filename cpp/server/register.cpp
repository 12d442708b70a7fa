// Registers our samplers in llama-server's sampler registry (the registry is
// added to llama.cpp's common library by patches/llama-server-sampler-registry.patch).
// Compiled into llama-server by scripts/build_server.sh; each sampler is built
// through the C API, so the server checks parameters exactly as C users do.
//
// A request selects them by name in "samplers" and sets their parameters in
// "sampler_params", keyed by the same name, with the Python API's parameter
// names, e.g.
//   {"samplers": ["best_of_k"], "sampler_params": {"best_of_k": {"preset": "paper-0.05"}}}
// The chain ends in llama-server's seeded dist sampler, which draws from the q
// our sampler wrote.

#include "llama_simplex/llama_simplex.h"
#include "sampling.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using json = nlohmann::json;

// One sampler's parameters: typed reads with errors that name the sampler and
// the parameter; keys the sampler never asked for are rejected at the end (a
// typo must not be silently ignored), listing the ones it knows.
class Params {
  public:
    Params(const char * sampler, const std::string & text) : sampler_(sampler) {
        try {
            j_ = json::parse(text);
        } catch (const std::exception &) {
            fail("parameters must be a JSON object");
        }
        if (!j_.is_object()) fail("parameters must be a JSON object");
    }

    template <typename T>
    void read(const char * key, T & out) {
        known_.push_back(key);
        if (!j_.contains(key)) return;
        const json & v = j_.at(key);
        read_value(key, v, out);
        j_.erase(key);
    }

    bool take_string(const char * key, std::string & out) {
        known_.push_back(key);
        if (!j_.contains(key)) return false;
        read_value(key, j_.at(key), out);
        j_.erase(key);
        return true;
    }

    // Every key the sampler asked for was taken out as it was read: what is left is unknown.
    void finish() const {
        if (j_.empty()) return;
        std::string names;
        for (const char * a : known_) names += (names.empty() ? "" : ", ") + std::string(a);
        fail("unknown parameter '" + j_.begin().key() + "' (allowed: " + (names.empty() ? "none" : names) + ")");
    }

    [[noreturn]] void fail(const std::string & msg) const {
        throw std::invalid_argument("sampler '" + std::string(sampler_) + "': " + msg);
    }

  private:
    // JSON numbers are doubles or 64-bit integers: a value the parameter's C
    // type cannot hold is refused, never rounded to 0 / inf or wrapped around.
    void read_value(const char * key, const json & v, float & out) const {
        if (!v.is_number()) fail(std::string(key) + ": must be a number, got " + v.dump());
        const double x = v.get<double>();
        const float f = static_cast<float>(std::clamp(x, -double(FLT_MAX), double(FLT_MAX)));
        if (!(std::fabs(x) <= FLT_MAX) || (x != 0.0 && !std::isnormal(f))) {
            fail(std::string(key) + ": must be a number within the 32-bit float range (|x| in [1.2e-38, 3.4e38] or 0), got " + v.dump());
        }
        out = f;
    }
    void read_value(const char * key, const json & v, double & out) const {  // top-p's p, min-p's p_min
        if (!v.is_number()) fail(std::string(key) + ": must be a number, got " + v.dump());
        out = v.get<double>();
        if (!std::isfinite(out)) fail(std::string(key) + ": must be a finite number, got " + v.dump());
    }
    void read_value(const char * key, const json & v, int32_t & out) const {
        out = static_cast<int32_t>(integer(key, v, INT32_MIN, INT32_MAX));
    }
    void read_value(const char * key, const json & v, uint32_t & out) const {
        out = static_cast<uint32_t>(integer(key, v, 0, UINT32_MAX));
    }
    int64_t integer(const char * key, const json & v, int64_t lo, int64_t hi) const {
        // a positive JSON integer may exceed INT64_MAX (nlohmann keeps it unsigned)
        const bool ok = v.is_number_unsigned() ? v.get<uint64_t>() <= static_cast<uint64_t>(hi)
                        : v.is_number_integer() && v.get<int64_t>() >= lo && v.get<int64_t>() <= hi;
        if (!ok) {
            fail(std::string(key) + ": must be an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) +
                 "], got " + v.dump());
        }
        return v.is_number_unsigned() ? static_cast<int64_t>(v.get<uint64_t>()) : v.get<int64_t>();
    }
    void read_value(const char * key, const json & v, bool & out) const {
        if (!v.is_boolean()) fail(std::string(key) + ": must be true or false");
        out = v.get<bool>();
    }
    void read_value(const char * key, const json & v, std::string & out) const {
        if (!v.is_string()) fail(std::string(key) + ": must be a string");
        out = v.get<std::string>();
    }

    const char * sampler_;
    json j_;
    std::vector<const char *> known_;
};

// In llama-server a failed apply of ours must fail the request: left alone,
// the candidates stay as given and the chain's dist would silently sample
// plain p instead. A sampler has no error return, but an exception thrown
// while a slot samples becomes that slot's error reply, so in the server each
// of our samplers is wrapped in one that throws on a failed apply. (Only here:
// from a C or Python caller an exception could not cross the C API.)
struct Throwing {
    llama_sampler * inner;
};

const char * throwing_name(const llama_sampler * smpl) {
    return llama_sampler_name(static_cast<const Throwing *>(smpl->ctx)->inner);
}

void throwing_accept(llama_sampler * smpl, llama_token token) {
    llama_sampler_accept(static_cast<Throwing *>(smpl->ctx)->inner, token);
}

void throwing_apply(llama_sampler * smpl, llama_token_data_array * cur_p) {
    llama_sampler * inner = static_cast<Throwing *>(smpl->ctx)->inner;
    llama_sampler_apply(inner, cur_p);
    const int32_t status = llama_simplex_sampler_status(inner);
    if (status != 0) {
        throw std::runtime_error(std::string(llama_sampler_name(inner)) + ": " +
                                 llama_simplex_sampler_status_string(status));
    }
}

void throwing_reset(llama_sampler * smpl) {
    llama_sampler_reset(static_cast<Throwing *>(smpl->ctx)->inner);
}

llama_sampler * wrap_throwing(llama_sampler * inner);

llama_sampler * throwing_clone(const llama_sampler * smpl) {
    return wrap_throwing(llama_sampler_clone(static_cast<const Throwing *>(smpl->ctx)->inner));
}

void throwing_free(llama_sampler * smpl) {
    auto * t = static_cast<Throwing *>(smpl->ctx);
    llama_sampler_free(t->inner);
    delete t;
}

// Not const: llama_sampler_init takes it so. Fields left out (the backend
// sampling hooks) stay null.
llama_sampler_i throwing_iface = [] {
    llama_sampler_i iface{};
    iface.name   = throwing_name;
    iface.accept = throwing_accept;
    iface.apply  = throwing_apply;
    iface.reset  = throwing_reset;
    iface.clone  = throwing_clone;
    iface.free   = throwing_free;
    return iface;
}();

llama_sampler * wrap_throwing(llama_sampler * inner) {
    return llama_sampler_init(&throwing_iface, new Throwing{inner});
}

// Reads a sampler's parameters over its defaults and refuses unknown ones,
// then builds it through the C API, whose message names the
// parameter out of range.
template <typename P, typename Read, typename Make>
llama_sampler * build(const char * name, const std::string & text, P p, Read read, Make make) {
    Params r(name, text);
    read(r, p);
    r.finish();
    llama_sampler * s = nullptr;
    if (make(&p, &s) != LLAMA_SIMPLEX_OK) r.fail(llama_simplex_last_error());
    return wrap_throwing(s);
}

llama_sampler * make_greedy(const llama_model *, const std::string & text, uint32_t) {
    return build("greedy", text, 0, [](Params &, int &) {},
                 [](const int *, llama_sampler ** s) { return llama_simplex_greedy(s); });
}

llama_sampler * make_softmax(const llama_model *, const std::string & text, uint32_t) {
    return build("softmax", text, llama_simplex_softmax_default_params(), [](Params & r, auto & p) {
        r.read("temperature", p.temperature);
    }, llama_simplex_softmax);
}

llama_sampler * make_top_k(const llama_model *, const std::string & text, uint32_t) {
    return build("simplex_top_k", text, llama_simplex_top_k_default_params(), [](Params & r, auto & p) {
        r.read("k", p.k);
        r.read("temperature", p.temperature);
    }, llama_simplex_top_k);
}

llama_sampler * make_top_p(const llama_model *, const std::string & text, uint32_t) {
    return build("simplex_top_p", text, llama_simplex_top_p_default_params(), [](Params & r, auto & p) {
        r.read("p", p.p);
        r.read("temperature", p.temperature);
        std::string order;
        if (r.take_string("order", order)) {
            if (order != "model" && order != "temperature") {
                r.fail("order: must be 'model' or 'temperature', got '" + order + "'");
            }
            p.order_by_temperature = order == "temperature";
        }
    }, llama_simplex_top_p);
}

llama_sampler * make_min_p(const llama_model *, const std::string & text, uint32_t) {
    return build("simplex_min_p", text, llama_simplex_min_p_default_params(), [](Params & r, auto & p) {
        r.read("p_min", p.p_min);
        r.read("temperature", p.temperature);
    }, llama_simplex_min_p);
}

llama_sampler * make_sparsemax(const llama_model *, const std::string & text, uint32_t) {
    return build("sparsemax", text, llama_simplex_sparsemax_default_params(), [](Params & r, auto & p) {
        r.read("temperature", p.temperature);
    }, llama_simplex_sparsemax);
}

// 'full', 'top-k:K', 'top-p:P' or 'min-p:P', as in the Python API: K an
// integer in [1, INT32_MAX] (the C API carries it in a double and makes it
// an int32 count), P a number in [0, 1].
void parse_support(Params & r, const std::string & spec, llama_simplex_objective_params & p) {
    if (spec == "full") {
        p.support = 0;
        return;
    }
    const auto colon = spec.find(':');
    const std::string kind = spec.substr(0, colon);
    const int code = kind == "top-k" ? 1 : kind == "top-p" ? 2 : kind == "min-p" ? 3 : -1;
    if (code < 0 || colon == std::string::npos) {
        r.fail("support: must be 'full', 'top-k:K', 'top-p:P' or 'min-p:P', got '" + spec + "'");
    }
    const std::string number = spec.substr(colon + 1);
    double value = 0.0;
    try {
        size_t used = 0;
        value = std::stod(number, &used);
        if (used != number.size()) throw std::invalid_argument("trailing characters");
    } catch (const std::exception &) {
        r.fail("support: '" + spec + "' does not end in a number");
    }
    if (code == 1 && !(value >= 1.0 && value <= INT32_MAX && value == std::floor(value))) {
        r.fail("support: top-k:K needs an integer K in [1, 2147483647], got '" + spec + "'");
    }
    if (code != 1 && !(value >= 0.0 && value <= 1.0)) {
        r.fail("support: " + kind + ":P needs P in [0, 1], got '" + spec + "'");
    }
    p.support = code;
    p.support_value = value;
}

void parse_weights(Params & r, const std::string & name, llama_simplex_objective_params & p) {
    if (name == "top-m") p.weights = 0;
    else if (name == "rank") p.weights = 1;
    else if (name == "gap") p.weights = 2;
    else r.fail("weights: must be 'top-m', 'rank' or 'gap', got '" + name + "'");
}

// The parameters an objective shares with Best-of-K (the solver, coverage and support).
void read_solver_params(Params & r, llama_simplex_objective_params & p) {
    r.read("lam", p.lam);
    r.read("beta", p.beta);
    r.read("k_samples", p.k_samples);
    r.read("m", p.m);
    r.read("temperature", p.temperature);
    r.read("steps", p.steps);
    r.read("step_size", p.step_size);
    r.read("tol", p.tol);
    std::string text;
    if (r.take_string("weights", text)) parse_weights(r, text, p);
    if (r.take_string("support", text)) parse_support(r, text, p);
}

// Best-of-K is the objective with the KL anchor (kl = 1) and the coverage term,
// as BestOfK.objective() in Python; presets are the paper's (beta, lam).
llama_sampler * make_best_of_k(const llama_model *, const std::string & text, uint32_t) {
    auto p = llama_simplex_objective_default_params();
    const auto bok = llama_simplex_best_of_k_default_params();
    p.kl = 1.0f;
    p.entropy = 0.0f;
    p.beta = bok.beta;
    p.lam = bok.lam;
    return build("best_of_k", text, p, [](Params & r, auto & p) {
        std::string preset;
        if (r.take_string("preset", preset)) {
            if (preset == "paper-0.01") p.beta = 0.01f, p.lam = 0.1f;
            else if (preset == "paper-0.02") p.beta = 0.02f, p.lam = 0.2f;
            else if (preset == "paper-0.05") p.beta = 0.05f, p.lam = 0.5f;
            else r.fail("preset: must be 'paper-0.01', 'paper-0.02' or 'paper-0.05', got '" + preset + "'");
        }
        read_solver_params(r, p);
    }, llama_simplex_objective);
}

llama_sampler * make_objective(const llama_model *, const std::string & text, uint32_t) {
    return build("objective", text, llama_simplex_objective_default_params(), [](Params & r, auto & p) {
        read_solver_params(r, p);
        r.read("entropy", p.entropy);
        r.read("kl", p.kl);
        r.read("l2", p.l2);
        r.read("reference_temperature", p.reference_temperature);
    }, llama_simplex_objective);
}

// Token-level power sampling: the rollouts run in a context of the sampler's
// own on the server's model; the prompt reaches it through accept(), which the
// server calls for every prompt token. The request's seed seeds the rollouts.
llama_sampler * make_power(const llama_model * model, const std::string & text, uint32_t seed) {
    auto p = llama_simplex_power_default_params();
    p.rollout_seed = seed;
    return build("power", text, p, [](Params & r, auto & p) {
        std::string preset;
        if (r.take_string("preset", preset)) {
            if (preset != "paper") r.fail("preset: must be 'paper', got '" + preset + "'");
            p.alpha = 4.0f, p.candidates = 8, p.rollouts = 8, p.horizon = 64;
        }
        r.read("alpha", p.alpha);
        r.read("candidates", p.candidates);
        r.read("rollouts", p.rollouts);
        r.read("horizon", p.horizon);
        r.read("jackknife", p.jackknife);
        r.read("n_ctx", p.n_ctx);
        r.read("rollout_seed", p.rollout_seed);
        r.read("max_tokens", p.max_tokens);
    }, [model](const llama_simplex_power_params * p, llama_sampler ** s) {
        // The rollouts only read the model; the C API takes it non-const like llama.cpp's.
        return llama_simplex_power(p, const_cast<llama_model *>(model), s);
    });
}

[[maybe_unused]] const bool registered = [] {
    bool ok = true;
    ok &= common_sampler_register("greedy", make_greedy);
    ok &= common_sampler_register("softmax", make_softmax);
    ok &= common_sampler_register("simplex_top_k", make_top_k);
    ok &= common_sampler_register("simplex_top_p", make_top_p);
    ok &= common_sampler_register("simplex_min_p", make_min_p);
    ok &= common_sampler_register("sparsemax", make_sparsemax);
    ok &= common_sampler_register("best_of_k", make_best_of_k);
    ok &= common_sampler_register("objective", make_objective);
    ok &= common_sampler_register("power", make_power);
    return ok;
}();

}  // namespace
