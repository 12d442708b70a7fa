// Registers our samplers in llama-server's sampler registry (the registry is
// added to llama.cpp's common library by patches/llama-server-sampler-registry.patch).
// Compiled into llama-server by scripts/build_server.sh; each sampler is built
// through the C API, so the server checks parameters exactly as C users do.
//
// A request selects them by name in "samplers" and sets their parameters in
// "sampler_params", keyed by the same name, with the Python API's parameter
// names, e.g.
//   {"samplers": ["best_of_k"], "sampler_params": {"best_of_k": {"preset": "paper-0.05"}}}
// The names, the keys each sampler takes, their types and the presets all come
// from the sampler table (llama_simplex/specs.h): what is read here is what
// Python and the C API take. The chain ends in llama-server's seeded dist
// sampler, which draws from the q our sampler wrote.

#include "llama_simplex/llama_simplex.h"
#include "llama_simplex/specs.h"
#include "sampling.h"

#include <nlohmann/json.hpp>

#include <array>
#include <cctype>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace {

using json = nlohmann::json;
using namespace llama_simplex;

[[noreturn]] void fail(const SamplerSpec & spec, const std::string & msg) {
    throw std::invalid_argument("sampler '" + std::string(spec.server_name) + "': " + msg);
}

// A JSON value as the table's reader takes it. JSON numbers are doubles or
// 64-bit integers (nlohmann keeps a positive one unsigned, up to UINT64_MAX).
ParamValue value_of(const json & v) {
    ParamValue p;
    p.text = v.dump();
    if (v.is_boolean()) {
        p.kind = ParamValue::boolean, p.b = v.get<bool>();
    } else if (v.is_number_unsigned()) {
        const uint64_t u = v.get<uint64_t>();
        if (u <= uint64_t(INT64_MAX)) p.kind = ParamValue::integer, p.i = int64_t(u);
        else p.kind = ParamValue::unsigned_integer, p.u = u;
    } else if (v.is_number_integer()) {
        p.kind = ParamValue::integer, p.i = v.get<int64_t>();
    } else if (v.is_number_float()) {
        p.kind = ParamValue::real, p.d = v.get<double>();
    } else if (v.is_string()) {
        p.kind = ParamValue::string, p.s = v.get<std::string>();
    }
    return p;
}

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

// With --backend-sampling our samplers run in the model's graph: the hooks
// pass through to the sampler's in-graph form (backend_sampling.cpp). The
// graph cannot throw; parameters are checked when the sampler is made.
llama_sampler * inner_of(const llama_sampler * smpl) {
    return static_cast<const Throwing *>(smpl->ctx)->inner;
}

bool throwing_backend_init(llama_sampler * smpl, ggml_backend_buffer_type_t buft, uint32_t n_outputs) {
    llama_sampler * inner = inner_of(smpl);
    return inner->iface->backend_init != nullptr && inner->iface->backend_init(inner, buft, n_outputs);
}

void throwing_backend_apply(llama_sampler * smpl, ggml_context * ctx, ggml_cgraph * gf, llama_sampler_data * data) {
    llama_sampler * inner = inner_of(smpl);
    if (inner->iface->backend_apply != nullptr) inner->iface->backend_apply(inner, ctx, gf, data);
}

void throwing_backend_set_input(llama_sampler * smpl) {
    llama_sampler * inner = inner_of(smpl);
    if (inner->iface->backend_set_input != nullptr) inner->iface->backend_set_input(inner);
}

void throwing_backend_reset(llama_sampler * smpl) {
    llama_sampler * inner = inner_of(smpl);
    if (inner->iface->backend_reset != nullptr) inner->iface->backend_reset(inner);
}

void throwing_copy_state(const llama_sampler * src, llama_sampler * dst) {
    llama_sampler_copy(inner_of(src), inner_of(dst));
}

// Not const: llama_sampler_init takes it so.
llama_sampler_i throwing_iface = [] {
    llama_sampler_i iface{};
    iface.name   = throwing_name;
    iface.accept = throwing_accept;
    iface.apply  = throwing_apply;
    iface.reset  = throwing_reset;
    iface.clone  = throwing_clone;
    iface.free   = throwing_free;
    iface.backend_init      = throwing_backend_init;
    iface.backend_apply     = throwing_backend_apply;
    iface.backend_set_input = throwing_backend_set_input;
    iface.backend_reset     = throwing_backend_reset;
    iface.copy_state        = throwing_copy_state;
    return iface;
}();

llama_sampler * wrap_throwing(llama_sampler * inner) {
    return llama_sampler_init(&throwing_iface, new Throwing{inner});
}

// A request's sampler_params as the table's reader takes them; fails unless a JSON object.
std::vector<std::pair<std::string, ParamValue>> given_of(const SamplerSpec & spec, const std::string & text) {
    json j;
    try {
        j = json::parse(text);
    } catch (const std::exception &) {
        fail(spec, "parameters must be a JSON object");
    }
    if (!j.is_object()) fail(spec, "parameters must be a JSON object");
    std::vector<std::pair<std::string, ParamValue>> given;
    for (const auto & [key, value] : j.items()) given.emplace_back(key, value_of(value));
    return given;
}

// A sampler without a model, the table's I-th: the table's one constructor (specs.h
// make_sampler: the C struct's defaults, the reader, the C API constructor), as Python's.
// By index because the registry takes plain function pointers.
template <size_t I>
llama_sampler * table_factory(const llama_model *, const std::string & t, uint32_t, const llama_context_params *) {
    const SamplerSpec & spec = sampler_specs()[I];
    llama_sampler * s = nullptr;
    const std::string why = make_sampler(spec, given_of(spec, t), SURFACE_SERVER, &s);
    if (!why.empty()) fail(spec, why);
    return wrap_throwing(s);
}

constexpr size_t MAX_TABLE = 32;  // more samplers than this fail the registration below

template <size_t... I>
constexpr std::array<common_sampler_factory, sizeof...(I)> table_factories(std::index_sequence<I...>) {
    return {table_factory<I>...};
}

// Power and SMC run their rollouts / particles in a context of the sampler's own on the
// server's model; the prompt reaches them through accept(). The request's seed seeds them,
// and that context takes the server's threads and numerics (flash attention, K/V types, ...).
llama_sampler * make_with_model(const char * name, const llama_model * model, const std::string & t, uint32_t seed,
                                const llama_context_params * server) {
    const SamplerSpec & spec = *find_sampler_spec(name);
    std::vector<std::pair<std::string, ParamValue>> given = given_of(spec, t);
    ParamValue s;  // the request's seed, before (so under) a rollout_seed the request gives
    s.kind = ParamValue::integer, s.i = seed, s.text = std::to_string(seed);
    given.insert(given.begin(), {"rollout_seed", s});
    llama_sampler * out = nullptr;
    // The rollouts only read the model; the C API takes it non-const like llama.cpp's.
    const std::string why = make_sampler(spec, given, SURFACE_SERVER, &out, const_cast<llama_model *>(model));
    if (!why.empty()) fail(spec, why);
    if (server != nullptr && llama_simplex_set_context_params(out, server, nullptr) != 0) {
        llama_sampler_free(out);
        fail(spec, "could not take the server's context parameters");
    }
    return wrap_throwing(out);
}

llama_sampler * make_power(const llama_model * model, const std::string & t, uint32_t seed,
                           const llama_context_params * server) {
    return make_with_model("power", model, t, seed, server);
}

llama_sampler * make_smc(const llama_model * model, const std::string & t, uint32_t seed,
                         const llama_context_params * server) {
    return make_with_model("smc", model, t, seed, server);
}

// The C constructor of a sampler llama-server takes (the table's server_name); null if none.
common_sampler_factory factory(const SamplerSpec & spec) {
    static constexpr auto by_index = table_factories(std::make_index_sequence<MAX_TABLE>{});
    const size_t i = size_t(&spec - sampler_specs().data());
    if (std::string_view(spec.name) == "power") return make_power;
    if (std::string_view(spec.name) == "smc") return make_smc;
    if (has_c_constructor(spec)) return i < MAX_TABLE ? by_index[i] : nullptr;
    return nullptr;
}

// The registry's spelling of a name (it reads '-' as '_' and ignores case), so that
// two spellings of one name are seen as one.
std::string registry_key(std::string name) {
    for (char & c : name) c = c == '-' ? '_' : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return name;
}

// Every sampler the table puts in llama-server, under its server name, and under each
// declared alias that is another name: not a spelling of the server name (registered
// already), nor of a canonical name llama.cpp owns (its own sampler answers to it:
// 'top-k' is llama.cpp's top_k). One without a C constructor above fails the registration.
[[maybe_unused]] const bool registered = [] {
    bool ok = true;
    for (const SamplerSpec & spec : sampler_specs()) {
        if (spec.server_name == nullptr) continue;
        const common_sampler_factory make = factory(spec);
        ok &= make && common_sampler_register(spec.server_name, make);
        if (!make) continue;
        const std::string owned_by_llama = registry_key(spec.name) != registry_key(spec.server_name) ? registry_key(spec.name) : "";
        for (const char * alias : spec.aliases) {
            const std::string key = registry_key(alias);
            if (key == owned_by_llama || !common_sampler_registered_name(key).empty()) continue;
            ok &= common_sampler_register(alias, make);
        }
    }
    return ok;
}();

}  // namespace
