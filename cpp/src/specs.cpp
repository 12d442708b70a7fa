// The sampler table (specs.h) and the one validator over it.
#include "llama_simplex/specs.h"

#include <cfloat>
#include <cstddef>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <stdexcept>

#include "llama_simplex/llama_simplex.h"
#include "llama_simplex/smc.h"
#include "llama_simplex/mcmc.h"
#include "llama_simplex/power.h"

namespace llama_simplex {

namespace {

constexpr double INF = std::numeric_limits<double>::infinity();
constexpr double I32 = INT32_MAX;
constexpr double U32 = UINT32_MAX;

template <typename T> constexpr ParamType type_of();
template <> constexpr ParamType type_of<float>() { return ParamType::f32; }
template <> constexpr ParamType type_of<double>() { return ParamType::f64; }
template <> constexpr ParamType type_of<int32_t>() { return ParamType::i32; }
template <> constexpr ParamType type_of<uint32_t>() { return ParamType::u32; }
template <> constexpr ParamType type_of<bool>() { return ParamType::boolean; }

// A C struct field as (set, get) over doubles; the parameter's type is the
// field's, so the table cannot disagree with the struct on it.
template <auto M> struct Field;
template <typename S, typename T, T S::*M> struct Field<M> {
    using type = T;
    using owner = S;
    static void set(void * s, double v) { static_cast<S *>(s)->*M = static_cast<T>(v); }
    static double get(const void * s) { return static_cast<double>(static_cast<const S *>(s)->*M); }
};

// The words of the parameter lists (llama_simplex_params.h): a domain and the surfaces.
struct Domain {
    double lo, hi;
    bool lo_open = false, hi_open = false;
    std::vector<const char *> choices;  // CHOICES: the names, in index order
    bool support = false;               // SUPPORT: 'full', 'top-k:K', 'top-p:P' or 'min-p:P'
};
Domain IN(double lo, double hi) { return {lo, hi}; }
Domain GE(double lo) { return {lo, INF}; }
Domain GT(double lo) { return {lo, INF, true}; }
template <typename... Names> Domain CHOICES(Names... names) {
    return {0, double(sizeof...(Names) - 1), false, false, {names...}};
}
const Domain SUPPORT{0, 3, false, false, {}, true};
constexpr unsigned C = SURFACE_C, SV = SURFACE_SERVER, PY = SURFACE_PYTHON, KN = SURFACE_KERNEL, ALL = SURFACE_ALL;

// One entry of a list: its type is the C type's, a choice's or the support's.
template <typename T>
ParamSpec entry(const char * name, double def, Domain d, unsigned surfaces, const char * doc, const char * note) {
    const ParamType type = d.support ? ParamType::support : !d.choices.empty() ? ParamType::choice : type_of<T>();
    const char * def_text = d.support ? "full" : !d.choices.empty() ? d.choices.at(size_t(def)) : nullptr;
    return {name, type, def, d.lo, d.hi, d.lo_open, d.hi_open, doc, note, surfaces, std::move(d.choices), def_text,
            nullptr, nullptr, nullptr, nullptr};
}

// An F entry: a field M of the sampler's struct.
template <auto M>
ParamSpec field_entry(const char * field, const char * name, double def, Domain d, unsigned surfaces, const char * doc,
                      const char * note) {
    ParamSpec p = entry<typename Field<M>::type>(name, def, std::move(d), surfaces, doc, note);
    p.set = &Field<M>::set, p.get = &Field<M>::get, p.field = field;
    return p;
}

// An S entry: the struct's (support, support_value) pair.
template <auto Code, auto Value> struct SupportFields {
    using S = typename Field<Code>::owner;
    static void set(void * s, int32_t code, double value) {
        static_cast<S *>(s)->*Code = code;
        static_cast<S *>(s)->*Value = value;
    }
    static void get(const void * s, int32_t & code, double & value) {
        code = static_cast<const S *>(s)->*Code;
        value = static_cast<const S *>(s)->*Value;
    }
};
template <auto Code, auto Value>
ParamSpec support_entry(const char * name, unsigned surfaces, const char * doc) {
    ParamSpec p = entry<int32_t>(name, 0, SUPPORT, surfaces, doc, "");
    p.set_support = &SupportFields<Code, Value>::set, p.get_support = &SupportFields<Code, Value>::get;
    p.field = name;
    return p;
}

// An entry of the C struct S with its layout there.
ParamSpec at(ParamSpec p, size_t offset, size_t size, size_t struct_size, size_t value_offset = 0) {
    p.c_offset = offset, p.c_size = size, p.c_struct_size = struct_size, p.c_value_offset = value_offset;
    return p;
}

// A sampler's parameters from its list, on the struct STRUCT the list defines
// (NoStruct for a list of X entries only).
#define LS_F(ctype, field, name, def, domain, surfaces, doc, note) \
    at(field_entry<&Struct::field>(#field, #name, def, domain, surfaces, doc, note), offsetof(Struct, field), \
       sizeof(Struct::field), sizeof(Struct)),
#define LS_X(ctype, name, def, domain, surfaces, doc, note) entry<ctype>(#name, def, domain, surfaces, doc, note),
#define LS_S(field, surfaces, doc) \
    at(support_entry<&Struct::field, &Struct::field##_value>(#field, surfaces, doc), offsetof(Struct, field), \
       sizeof(Struct::field), sizeof(Struct), offsetof(Struct, field##_value)),
#define LS_PARAMS(STRUCT, LIST) \
    [] { \
        using Struct = STRUCT; \
        return std::vector<ParamSpec>{LIST(LS_F, LS_X, LS_S)}; \
    }()
struct NoStruct {};

// A sequence sampler's parameters: F and X entries are also fields of RUN, the
// struct its engine runs from (LLAMA_SIMPLEX_ALL_FIELDS of the same list).
template <auto M> ParamSpec with_run(ParamSpec p) {
    p.set_run = &Field<M>::set, p.get_run = &Field<M>::get;
    return p;
}
#define LS_RUN_F(ctype, field, name, def, domain, surfaces, doc, note) \
    with_run<&Run::field>(at(field_entry<&Struct::field>(#field, #name, def, domain, surfaces, doc, note), \
                             offsetof(Struct, field), sizeof(Struct::field), sizeof(Struct))),
#define LS_RUN_X(ctype, name, def, domain, surfaces, doc, note) \
    with_run<&Run::name>(entry<ctype>(#name, def, domain, surfaces, doc, note)),
#define LS_RUN_PARAMS(STRUCT, RUN, LIST) \
    [] { \
        using Struct = STRUCT; \
        using Run = RUN; \
        return std::vector<ParamSpec>{LIST(LS_RUN_F, LS_RUN_X, LS_S)}; \
    }()

std::vector<SamplerSpec> build_table() {
    std::vector<SamplerSpec> t;
    t.push_back({"greedy", {}, "greedy", "simplex-greedy", "all mass on the highest logit (lowest id on ties)", {}, {},
                 nullptr, {}});
    t.push_back({"softmax", {}, "softmax", "simplex-softmax", "q = softmax(logits / temperature)",
                 LS_PARAMS(llama_simplex_softmax_params, LLAMA_SIMPLEX_SOFTMAX_PARAMS), {}, nullptr, {}});
    t.push_back({"top_k", {"top-k", "simplex_top_k"}, "simplex_top_k", "simplex-top-k",
                 "softmax(logits / temperature) over the k highest logits (lower id wins ties)",
                 LS_PARAMS(llama_simplex_top_k_params, LLAMA_SIMPLEX_TOP_K_PARAMS), {}, nullptr, {}});
    t.push_back({"top_p", {"top-p", "simplex_top_p"}, "simplex_top_p", "simplex-top-p",
                 "softmax(logits / temperature) over the smallest set of tokens whose mass reaches p",
                 LS_PARAMS(llama_simplex_top_p_params, LLAMA_SIMPLEX_TOP_P_PARAMS), {}, nullptr, {}});
    t.push_back({"min_p", {"min-p", "simplex_min_p"}, "simplex_min_p", "simplex-min-p",
                 "softmax(logits / temperature) over {v : p(v) >= p_min max p}, p = softmax(logits)",
                 LS_PARAMS(llama_simplex_min_p_params, LLAMA_SIMPLEX_MIN_P_PARAMS), {}, nullptr, {}});
    t.push_back({"sparsemax", {}, "sparsemax", "simplex-sparsemax",
                 "Euclidean projection of logits / temperature onto the simplex (exact zeros)",
                 LS_PARAMS(llama_simplex_sparsemax_params, LLAMA_SIMPLEX_SPARSEMAX_PARAMS), {}, nullptr, {}});

    // Best-of-K: the objective with the KL anchor (kl = 1) and the coverage term. Its C
    // struct has no weights/support/tol (they keep the objective's defaults there);
    // llama-server builds it through the objective's struct and so takes them all.
    t.push_back({"best_of_k", {"bok", "best-of-k", "simplex-best-of-k"}, "best_of_k", "simplex-best-of-k",
                 "Best-of-K [SIMPLEX 4.3]: argmax <q, logits/T> - lam KL(q || p) + lam beta U_K(q)",
                 LS_PARAMS(llama_simplex_best_of_k_params, LLAMA_SIMPLEX_BEST_OF_K_PARAMS),
                 {{"paper-0.01", {{"beta", 0.01}, {"lam", 0.1}}, "the paper's (beta, lam) = (0.01, 0.1)"},
                  {"paper-0.02", {{"beta", 0.02}, {"lam", 0.2}}, "the paper's (beta, lam) = (0.02, 0.2)"},
                  {"paper-0.05", {{"beta", 0.05}, {"lam", 0.5}}, "the paper's (beta, lam) = (0.05, 0.5)"}},
                 "objective", {{"kl", 1.0}, {"entropy", 0.0}, {"l2", 0.0}, {"reference_temperature", 1.0}}});

    t.push_back({"objective", {}, "objective", "simplex-objective",
                 "max <q, logits/T> - lam [entropy sum q log q + kl KL(q || r) + l2 |q|^2/2] + lam beta U_K(q)",
                 LS_PARAMS(llama_simplex_objective_params, LLAMA_SIMPLEX_OBJECTIVE_PARAMS), {}, nullptr, {}});

    t.push_back({"power", {}, "power", "simplex-power",
                 "token-level power sampling (Algorithm 1 of [POWER])",
                 LS_RUN_PARAMS(llama_simplex_power_params, PowerParams, LLAMA_SIMPLEX_POWER_PARAMS),
                 {{"paper", {{"alpha", 4}, {"candidates", 8}, {"rollouts", 8}, {"horizon", 64}},
                   "alpha = 4, K = M = 8, H = 64 (H is not stated in the paper)"},
                  {"cpu-small", {{"alpha", 4}, {"candidates", 4}, {"rollouts", 4}, {"horizon", 16}},
                   "alpha = 4, K = M = 4, H = 16: practical for Gemma 3 270M on 2 cores"}},
                 nullptr, {}});

    t.push_back({"block_power", {"block-power"}, nullptr, nullptr,
                 "block-level power sampling (Algorithm 2 of [POWER])",
                 LS_RUN_PARAMS(NoStruct, BlockParams, LLAMA_SIMPLEX_BLOCK_POWER_PARAMS),
                 {{"paper", {{"alpha", 4}, {"block", 192}, {"samples", 16}, {"candidates", 8}, {"rollouts", 8},
                             {"horizon", 192}, {"tail_samples", 16}},
                   "alpha = 4, B = 192, K = M = 8 (L = 16 and H = 192 are not stated in the paper)"},
                  {"cpu-small", {{"alpha", 4}, {"block", 8}, {"samples", 8}, {"candidates", 4}, {"rollouts", 4},
                                 {"horizon", 16}, {"tail_samples", 8}},
                   "alpha = 4, B = 8, L = 8, K = M = 4, H = 16"}},
                 nullptr, {}});

    t.push_back({"mcmc", {}, nullptr, nullptr,
                 "the MCMC baseline of power sampling [MCMC]: Metropolis-Hastings on suffixes",
                 LS_RUN_PARAMS(NoStruct, McmcParams, LLAMA_SIMPLEX_MCMC_PARAMS), {}, nullptr, {}});

    // Power-SMC: every parameter on its C struct (llama-server builds it through it) and
    // on SmcParams, the struct its engine runs from.
    t.push_back({"smc", {"power_smc", "power-smc"}, "smc", "simplex-smc",
                 "power sampling by sequential Monte Carlo [SMC]: N particles on one KV cache, resampled by ESS",
                 LS_RUN_PARAMS(llama_simplex_smc_params, SmcParams, LLAMA_SIMPLEX_SMC_PARAMS), {}, nullptr, {}});

    t.push_back({"dist", {}, nullptr, "simplex-dist",
                 "the final draw from softmax(logits) of what the chain left",
                 LS_PARAMS(NoStruct, LLAMA_SIMPLEX_DIST_PARAMS), {}, nullptr, {}});
    return t;
}

}  // namespace

const std::vector<SamplerSpec> & sampler_specs() {
    static const std::vector<SamplerSpec> table = build_table();
    return table;
}

const SamplerSpec * find_sampler_spec(std::string_view name) {
    for (const SamplerSpec & s : sampler_specs()) {
        if (name == s.name) return &s;
        for (const char * a : s.aliases) {
            if (name == a) return &s;
        }
    }
    return nullptr;
}

const ParamSpec * find_param(const SamplerSpec & spec, std::string_view name) {
    for (const ParamSpec & p : spec.params) {
        if (name == p.name) return &p;
    }
    return nullptr;
}

std::string format_number(double v) {
    char buf[64];
    // an integer (int32 / uint32 parameters) in full; a real to float precision
    std::snprintf(buf, sizeof buf, v == std::floor(v) && std::fabs(v) < 1e15 ? "%.0f" : "%.9g", v);
    return buf;
}

namespace {

bool is_real(ParamType t) { return t == ParamType::f32 || t == ParamType::f64; }

double type_max(ParamType t) {
    switch (t) {
        case ParamType::i32: return I32;
        case ParamType::u32: return U32;
        default: return INF;
    }
}

}  // namespace

std::string describe_range(const ParamSpec & p) {
    if (p.type == ParamType::boolean) return "true or false";
    if (p.type == ParamType::choice) {
        std::string s = "in [0, " + format_number(p.hi) + "] (";
        for (size_t i = 0; i < p.choices.size(); ++i) {
            s += (i ? ", " : "") + std::to_string(i) + " " + p.choices[i];
        }
        return s + ")";
    }
    if (p.type == ParamType::support) return "'full', 'top-k:K', 'top-p:P' or 'min-p:P'";
    const std::string fin = is_real(p.type) ? "finite and " : "";
    if (p.hi >= type_max(p.type)) return fin + (p.lo_open ? "> " : ">= ") + format_number(p.lo);
    return std::string("in ") + (p.lo_open ? "(" : "[") + format_number(p.lo) + ", " + format_number(p.hi) +
           (p.hi_open ? ")" : "]");
}

std::string check_param(const ParamSpec & p, double v) {
    bool ok = !std::isnan(v) && (p.lo_open ? v > p.lo : v >= p.lo) && (p.hi_open ? v < p.hi : v <= p.hi);
    if (is_real(p.type)) ok = ok && std::isfinite(v);
    if (ok) return "";
    std::string note = *p.note ? std::string(" (") + p.note + ")" : "";
    return std::string(p.name) + ": must be " + describe_range(p) + note + ", got " + format_number(v);
}

namespace {

// The C struct's (support, support_value) pair, checked as the objective decoders take it.
std::string check_support(int32_t code, double value) {
    if (code < 0 || code > 3) {
        return "support: must be in [0, 3] (0 full, 1 top-k, 2 top-p, 3 min-p), got " + std::to_string(code);
    }
    if (code == 1 && !(value >= 1.0 && value <= I32)) {
        return "support_value: top-k needs k >= 1 and <= 2147483647, got " + format_number(value);
    }
    if ((code == 2 || code == 3) && !(value >= 0.0 && value <= 1.0)) {
        return "support_value: must be in [0, 1] for top-p / min-p, got " + format_number(value);
    }
    return "";
}

}  // namespace

std::string check_c_struct(const SamplerSpec & spec, const void * c_struct) {
    for (const ParamSpec & p : spec.params) {
        if (!(p.surfaces & SURFACE_C)) continue;
        std::string why;
        if (p.get_support != nullptr) {
            int32_t code = 0;
            double value = 0.0;
            p.get_support(c_struct, code, value);
            why = check_support(code, value);
        } else if (p.get != nullptr) {
            why = check_param(p, p.get(c_struct));
        }
        if (!why.empty()) return why;
    }
    return "";
}

void fill_c_defaults(const SamplerSpec & spec, void * c_struct) {
    for (const ParamSpec & p : spec.params) {
        if (!(p.surfaces & SURFACE_C)) continue;
        if (p.set_support != nullptr) p.set_support(c_struct, 0, 0.0);
        else if (p.set != nullptr) p.set(c_struct, p.def);
    }
}

std::string parse_support(const std::string & text, int32_t & code, double & value) {
    const std::string usage = "support: must be 'full', 'top-k:K', 'top-p:P' or 'min-p:P', got '" + text + "'";
    if (text == "full") {
        code = 0, value = 0.0;
        return "";
    }
    const auto colon = text.find(':');
    if (colon == std::string::npos) return usage;
    const std::string kind = text.substr(0, colon);
    const int c = kind == "top-k" ? 1 : kind == "top-p" ? 2 : kind == "min-p" ? 3 : -1;
    if (c < 0) return usage;
    const std::string number = text.substr(colon + 1);
    double v = 0.0;
    try {
        size_t used = 0;
        v = std::stod(number, &used);
        if (used != number.size()) throw std::invalid_argument("trailing characters");
    } catch (const std::exception &) {
        return "support: '" + text + "' does not end in a number";
    }
    if (c == 1 && !(v >= 1.0 && v <= I32 && v == std::floor(v))) {
        return "support: top-k:K needs an integer K in [1, 2147483647], got '" + text + "'";
    }
    if (c != 1 && !(v >= 0.0 && v <= 1.0)) return "support: " + kind + ":P needs P in [0, 1], got '" + text + "'";
    code = c, value = v;
    return "";
}

std::string format_support(int32_t code, double value) {
    static const char * const kinds[] = {"full", "top-k", "top-p", "min-p"};
    if (code <= 0 || code > 3) return "full";
    // the shortest text that reads back as the same double
    char buf[64];
    for (int digits : {9, 15, 17}) {
        std::snprintf(buf, sizeof buf, "%.*g", digits, value);
        if (std::strtod(buf, nullptr) == value) break;
    }
    return std::string(kinds[code]) + ":" + buf;
}

const SamplerSpec & c_target(const SamplerSpec & spec) {
    return spec.built_as != nullptr ? *find_sampler_spec(spec.built_as) : spec;
}

namespace {

std::string quoted_list(const std::vector<const char *> & names) {
    std::string s;
    for (size_t i = 0; i < names.size(); ++i) s += (i ? ", " : "") + std::string("'") + names[i] + "'";
    return s;
}

bool is_number(const ParamValue & v) {
    return v.kind == ParamValue::integer || v.kind == ParamValue::unsigned_integer || v.kind == ParamValue::real;
}

double as_double(const ParamValue & v) {
    return v.kind == ParamValue::integer ? double(v.i) : v.kind == ParamValue::unsigned_integer ? double(v.u) : v.d;
}

// The value as the parameter's C type holds it: a value that type cannot hold is
// refused, never rounded to 0 / inf or wrapped around. "" or the reason.
std::string typed(const ParamSpec & p, const ParamValue & v, double & out) {
    const std::string name = p.name;
    switch (p.type) {
        case ParamType::f32: {
            if (!is_number(v)) return name + ": must be a number, got " + v.text;
            const double x = as_double(v);
            // a finite value a float32 holds: |x| <= FLT_MAX, and 0 or at least the smallest
            // subnormal (inf and NaN go on to check_param, which says "finite", as the C API does)
            if (std::isfinite(x) && (std::fabs(x) > FLT_MAX || (x != 0.0 && std::fabs(x) < double(std::numeric_limits<float>::denorm_min())))) {
                return name + ": must be a number a float32 holds (0, or |x| in [1.4e-45, 3.4e38]), got " + v.text;
            }
            out = double(float(x));
            return "";
        }
        case ParamType::f64:
            if (!is_number(v)) return name + ": must be a number, got " + v.text;
            out = as_double(v);  // inf and NaN: check_param says "finite", as the C API does
            return "";
        case ParamType::i32:
        case ParamType::u32: {
            const int64_t lo = p.type == ParamType::i32 ? INT32_MIN : 0;
            const int64_t hi = p.type == ParamType::i32 ? INT32_MAX : UINT32_MAX;
            if (v.kind == ParamValue::integer && v.i >= lo && v.i <= hi) {
                out = double(v.i);
                return "";
            }
            const bool integral = v.kind == ParamValue::integer || v.kind == ParamValue::unsigned_integer;
            if (integral && p.hi < double(hi)) {  // beyond the C type, so beyond the range: check_param's message
                return name + ": must be " + describe_range(p) + (*p.note ? std::string(" (") + p.note + ")" : "") +
                       ", got " + v.text;
            }
            // not an integer, or beyond the C type where the range has no upper end: the type's end is the range's
            return name + ": must be an integer " +
                   (p.hi < double(hi) ? describe_range(p)
                                      : "in [" + format_number(std::max(p.lo, double(lo))) + ", " + std::to_string(hi) + "]") +
                   ", got " + v.text;
        }
        case ParamType::boolean:
            if (v.kind != ParamValue::boolean) return name + ": must be true or false, got " + v.text;
            out = v.b ? 1.0 : 0.0;
            return "";
        case ParamType::choice:
            if (v.kind == ParamValue::string) {
                for (size_t i = 0; i < p.choices.size(); ++i) {
                    if (v.s == p.choices[i]) {
                        out = double(i);
                        return "";
                    }
                }
            }
            return name + ": must be one of " + quoted_list(p.choices) + ", got " + v.text;
        case ParamType::support:
            return "";  // parsed by the caller (two fields)
    }
    return name + ": unknown type";
}

// Which struct a parameter is written to: the C struct (set) or the run struct (set_run).
using Setter = void (*)(void *, double);
Setter setter(const ParamSpec & p, bool run) { return run ? p.set_run : p.set; }

void write(const SamplerSpec & target, const char * name, double value, void * dst, bool run = false) {
    const ParamSpec * t = find_param(target, name);
    if (t != nullptr && setter(*t, run) != nullptr) setter(*t, run)(dst, value);
}

void own_defaults_over_target(const SamplerSpec & spec, const SamplerSpec & target, void * c_struct, unsigned surface) {
    for (const ParamSpec & p : spec.params) {
        if (!(p.surfaces & surface)) continue;
        if (p.type == ParamType::support) {
            const ParamSpec * t = find_param(target, p.name);
            if (t != nullptr && t->set_support != nullptr) t->set_support(c_struct, 0, 0.0);
        } else {
            write(target, p.name, p.def, c_struct);
        }
    }
    for (const auto & [name, value] : spec.fixed) write(target, name, value, c_struct);
}

// read_params into `dst`: the C struct (run = false) or the run struct (run = true).
std::string read_into(const SamplerSpec & spec, const std::vector<std::pair<std::string, ParamValue>> & given,
                      void * dst, unsigned surface, bool run) {
    const SamplerSpec & target = run ? spec : c_target(spec);
    if (&target != &spec) own_defaults_over_target(spec, target, dst, surface);
    std::vector<const char *> allowed;
    if (!spec.presets.empty()) allowed.push_back("preset");
    for (const ParamSpec & p : spec.params) {
        if (p.surfaces & surface) allowed.push_back(p.name);
    }
    // the preset first: the keys given with it override its values
    for (const auto & [key, v] : given) {
        if (key != "preset" || spec.presets.empty()) continue;
        std::vector<const char *> names;
        for (const PresetSpec & ps : spec.presets) names.push_back(ps.name);
        const PresetSpec * found = nullptr;
        for (const PresetSpec & ps : spec.presets) {
            if (v.kind == ParamValue::string && v.s == ps.name) found = &ps;
        }
        if (found == nullptr) return "preset: must be one of " + quoted_list(names) + ", got " + v.text;
        for (const auto & [name, value] : found->values) write(target, name, value, dst, run);
    }
    for (const auto & [key, v] : given) {
        if (key == "preset" && !spec.presets.empty()) continue;
        const ParamSpec * p = find_param(spec, key);
        if (p == nullptr || !(p->surfaces & surface)) {
            std::string names;
            for (const char * a : allowed) names += (names.empty() ? "" : ", ") + std::string(a);
            return "unknown parameter '" + key + "' (allowed: " + (names.empty() ? "none" : names) + ")";
        }
        const ParamSpec * t = find_param(target, key);
        if (p->type == ParamType::support) {
            if (v.kind != ParamValue::string) return std::string(p->name) + ": must be a string, got " + v.text;
            int32_t code = 0;
            double value = 0.0;
            const std::string why = parse_support(v.s, code, value);
            if (!why.empty()) return why;
            if (t != nullptr && t->set_support != nullptr) t->set_support(dst, code, value);
            continue;
        }
        double x = 0.0;
        const std::string why = typed(*p, v, x);
        if (!why.empty()) return why;
        if (t != nullptr && setter(*t, run) != nullptr) setter(*t, run)(dst, x);
    }
    return "";
}

}  // namespace

std::string read_params(const SamplerSpec & spec, const std::vector<std::pair<std::string, ParamValue>> & given,
                        void * c_struct, unsigned surface) {
    return read_into(spec, given, c_struct, surface, false);
}

std::string make_run_params(const SamplerSpec & spec, const std::vector<std::pair<std::string, ParamValue>> & given,
                            unsigned surface, void * run_struct) {
    bool bound = false;
    for (const ParamSpec & p : spec.params) {
        if (p.set_run == nullptr) continue;
        p.set_run(run_struct, p.def);
        bound = true;
    }
    if (!bound) return std::string("sampler '") + spec.name + "' has no run struct";
    std::string why = read_into(spec, given, run_struct, surface, true);
    if (!why.empty()) return why;
    for (const ParamSpec & p : spec.params) {  // the ranges, as check_c_struct checks a C struct's
        if (p.get_run != nullptr && !(why = check_param(p, p.get_run(run_struct))).empty()) return why;
    }
    return "";
}

void c_to_run(const SamplerSpec & spec, const void * c_struct, void * run_struct) {
    for (const ParamSpec & p : spec.params) {
        if (p.set_run == nullptr) continue;
        p.set_run(run_struct, p.get != nullptr ? p.get(c_struct) : p.def);
    }
}

void c_to_target(const SamplerSpec & spec, const void * c_struct, void * target_struct) {
    const SamplerSpec & target = c_target(spec);
    fill_c_defaults(target, target_struct);
    own_defaults_over_target(spec, target, target_struct, SURFACE_ALL);
    for (const ParamSpec & p : spec.params) {
        if (p.get != nullptr) write(target, p.name, p.get(c_struct), target_struct);
    }
}

std::string check_value(const ParamSpec & p, const ParamValue & v, double & out, int32_t & code, bool & type_error) {
    code = 0;
    switch (p.type) {
        case ParamType::boolean: type_error = v.kind != ParamValue::boolean; break;
        case ParamType::choice:
        case ParamType::support: type_error = v.kind != ParamValue::string; break;
        case ParamType::i32:
        case ParamType::u32: type_error = v.kind != ParamValue::integer && v.kind != ParamValue::unsigned_integer; break;
        default: type_error = !is_number(v); break;
    }
    if (p.type == ParamType::support) {
        if (type_error) return std::string(p.name) + ": must be a string, got " + v.text;
        return parse_support(v.s, code, out);
    }
    std::string why = typed(p, v, out);
    return why.empty() ? check_param(p, out) : why;
}

namespace {

// The C API constructor of each sampler built from its C struct, by the name of the
// spec whose struct it takes (c_target): the one map llama-server and Python use.
using CConstructor = llama_simplex_status (*)(const void * c_struct, llama_model * model, llama_sampler ** out);

template <typename P, llama_simplex_status (*Make)(const P *, llama_sampler **)>
llama_simplex_status c_make(const void * c_struct, llama_model *, llama_sampler ** out) {
    return Make(static_cast<const P *>(c_struct), out);
}

llama_simplex_status c_greedy(const void *, llama_model *, llama_sampler ** out) { return llama_simplex_greedy(out); }

llama_simplex_status c_power(const void * c_struct, llama_model * model, llama_sampler ** out) {
    return llama_simplex_power(static_cast<const llama_simplex_power_params *>(c_struct), model, out);
}

llama_simplex_status c_smc(const void * c_struct, llama_model * model, llama_sampler ** out) {
    return llama_simplex_smc(static_cast<const llama_simplex_smc_params *>(c_struct), model, out);
}

CConstructor c_constructor(const SamplerSpec & target) {
    static const std::pair<const char *, CConstructor> map[] = {
        {"greedy", c_greedy},
        {"softmax", c_make<llama_simplex_softmax_params, llama_simplex_softmax>},
        {"top_k", c_make<llama_simplex_top_k_params, llama_simplex_top_k>},
        {"top_p", c_make<llama_simplex_top_p_params, llama_simplex_top_p>},
        {"min_p", c_make<llama_simplex_min_p_params, llama_simplex_min_p>},
        {"sparsemax", c_make<llama_simplex_sparsemax_params, llama_simplex_sparsemax>},
        {"objective", c_make<llama_simplex_objective_params, llama_simplex_objective>},
        {"power", c_power},
        {"smc", c_smc},
    };
    for (const auto & [name, make] : map) {
        if (std::strcmp(name, target.name) == 0) return make;
    }
    return nullptr;
}

}  // namespace

bool has_c_constructor(const SamplerSpec & spec) { return c_constructor(c_target(spec)) != nullptr; }

std::string make_sampler(const SamplerSpec & spec, const std::vector<std::pair<std::string, ParamValue>> & given,
                         unsigned surface, llama_sampler ** out, llama_model * model) {
    *out = nullptr;
    const SamplerSpec & target = c_target(spec);
    const CConstructor make = c_constructor(target);
    if (make == nullptr) return std::string("sampler '") + spec.name + "' is not built from a C struct";
    union {  // any of the C structs the map above takes
        llama_simplex_softmax_params   softmax;
        llama_simplex_top_k_params     top_k;
        llama_simplex_top_p_params     top_p;
        llama_simplex_min_p_params     min_p;
        llama_simplex_sparsemax_params sparsemax;
        llama_simplex_objective_params objective;
        llama_simplex_power_params     power;
        llama_simplex_smc_params       smc;
    } c_struct{};
    fill_c_defaults(target, &c_struct);
    const std::string why = read_params(spec, given, &c_struct, surface);
    if (!why.empty()) return why;
    if (make(&c_struct, model, out) != LLAMA_SIMPLEX_OK) return llama_simplex_last_error();
    return "";
}

}  // namespace llama_simplex
