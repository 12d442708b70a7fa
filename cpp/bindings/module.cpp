// pybind11 module llama_simplex._core: thin bindings, no logic. Pointers to
// llama.cpp objects cross the boundary as integers because llama_cpp (ctypes)
// and this module share one libllama.
#include <pybind11/functional.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>

#include <stdexcept>
#include <string>

#include "../src/backend_sampling.h"
#include "llama_simplex/generate.h"
#include "llama_simplex/mcmc.h"
#include "llama_simplex/multi_sample.h"
#include "llama_simplex/power.h"
#include "llama_simplex/rollout.h"
#include "llama_simplex/samplers.h"
#include "llama_simplex/simplex.h"
#include "llama_simplex/smc.h"
#include "llama_simplex/solver.h"
#include "llama_simplex/specs.h"

namespace py = pybind11;
using namespace llama_simplex;

namespace {

using FloatArray = py::array_t<float, py::array::c_style | py::array::forcecast>;

// A llama_sampler this module made, owned until it is handed to a chain.
class NativeSampler {
  public:
    explicit NativeSampler(llama_sampler * s) : smpl_(s) {}
    NativeSampler(const NativeSampler &) = delete;
    ~NativeSampler() {
        if (smpl_ != nullptr) {
            llama_sampler_free(smpl_);
        }
    }
    llama_sampler * get() const {
        if (smpl_ == nullptr) {
            throw std::runtime_error("this sampler was handed to a chain, which now owns it");
        }
        return smpl_;
    }
    // Gives up ownership (to a llama.cpp chain); returns the address.
    uintptr_t release() {
        auto * s = get();
        smpl_ = nullptr;
        return reinterpret_cast<uintptr_t>(s);
    }

  private:
    llama_sampler * smpl_;
};

std::vector<llama_token_data> candidates(const FloatArray & logits) {
    if (logits.ndim() != 1) {
        throw py::value_error("logits: must be a 1-D array");
    }
    const auto n = static_cast<size_t>(logits.shape(0));
    if (n == 0) {
        throw py::value_error("logits: must not be empty");
    }
    std::vector<llama_token_data> cur(n);
    const float * l = logits.data();
    for (size_t i = 0; i < n; ++i) {
        cur[i] = llama_token_data{static_cast<llama_token>(i), l[i], 0.0f};
    }
    return cur;
}

// Runs a kernel on the logits; returns (q over the whole vocabulary, support ids in output order).
template <typename Kernel>
py::tuple run_kernel(const FloatArray & logits, Kernel kernel) {
    auto cur = candidates(logits);
    Workspace ws;
    const Outcome out = kernel(cur.data(), cur.size(), ws);
    if (out.status != Status::ok) {
        throw py::value_error(std::string("logits: ") + status_message(out.status));
    }
    py::array_t<float> q(static_cast<py::ssize_t>(cur.size()));
    py::array_t<int32_t> support(static_cast<py::ssize_t>(out.support));
    float * qd = q.mutable_data();
    std::fill(qd, qd + cur.size(), 0.0f);
    int32_t * sd = support.mutable_data();
    for (size_t i = 0; i < out.support; ++i) {
        qd[cur[i].id] = cur[i].p;
        sd[i] = cur[i].id;
    }
    return py::make_tuple(q, support);
}

struct RolloutContext {
    ContextPtr      ctx;
    ContextSettings settings;  // what ctx was made with (for sample_k's in-graph context)
};

// The settings of the llama_context_params at `address` (a llama_cpp.Llama's
// context_params, checked against sizeof by the caller); 0: llama.cpp's defaults.
ContextSettings settings_at(uintptr_t address) {
    if (address == 0) return ContextSettings{};
    return settings_of(*reinterpret_cast<const llama_context_params *>(address));
}

using PowerProgress = std::function<bool(int32_t, const PowerStats &)>;

// Runs a power-sampling loop without the GIL, calling progress(done,
// rollouts, rollout_tokens) with it; returns (tokens, stats dict).
template <typename Run>
py::tuple run_power_binding(py::object progress, Run run) {
    PowerStats stats;
    PowerProgress cb;
    if (!progress.is_none()) {
        cb = [&progress](int32_t done, const PowerStats & st) {
            py::gil_scoped_acquire gil;
            py::object r = progress(done, st.rollouts, st.rollout_tokens);
            return r.is_none() || r.cast<bool>();
        };
    }
    std::vector<llama_token> out;
    {
        py::gil_scoped_release nogil;
        out = run(stats, cb);
    }
    py::dict d;
    d["rollouts"] = stats.rollouts;
    d["rollout_tokens"] = stats.rollout_tokens;
    d["decode_calls"] = stats.decode_calls;
    return py::make_tuple(out, d);
}

NativeSampler * ptr_sampler(uintptr_t address) {
    return new NativeSampler(reinterpret_cast<llama_sampler *>(address));
}


const char * type_name(ParamType t) {
    switch (t) {
        case ParamType::f32: return "f32";
        case ParamType::f64: return "f64";
        case ParamType::i32: return "i32";
        case ParamType::u32: return "u32";
        case ParamType::boolean: return "bool";
        case ParamType::choice: return "choice";
        case ParamType::support: return "support";
    }
    return "?";
}

// A table value as Python holds it: int, float, bool or the choice's / support's text.
py::object py_value(const ParamSpec & p, double v) {
    switch (p.type) {
        case ParamType::i32:
        case ParamType::u32: return py::int_(static_cast<int64_t>(v));
        case ParamType::boolean: return py::bool_(v != 0.0);
        case ParamType::choice: return py::str(p.choices.at(static_cast<size_t>(v)));
        case ParamType::support: return py::str(p.def_text);
        default: return py::float_(v);
    }
}

py::dict spec_dict(const SamplerSpec & s) {
    py::list params;
    for (const ParamSpec & p : s.params) {
        py::list surfaces;
        if (p.surfaces & SURFACE_C) surfaces.append("c");
        if (p.surfaces & SURFACE_SERVER) surfaces.append("server");
        if (p.surfaces & SURFACE_PYTHON) surfaces.append("python");
        if (p.surfaces & SURFACE_KERNEL) surfaces.append("kernel");
        py::dict d;
        d["name"] = p.name;
        d["type"] = type_name(p.type);
        d["default"] = py_value(p, p.def);
        d["low"] = p.lo, d["high"] = p.hi, d["low_open"] = p.lo_open, d["high_open"] = p.hi_open;
        d["range"] = describe_range(p);
        d["doc"] = p.doc, d["note"] = p.note;
        d["surfaces"] = surfaces;
        d["choices"] = p.choices;
        d["field"] = p.field ? py::object(py::str(p.field)) : py::none();
        // The C struct's layout (offsetof / sizeof), for mirrors of the struct made from the table.
        if (p.field && p.c_struct_size) {
            py::dict c;
            c["offset"] = p.c_offset, c["size"] = p.c_size, c["struct_size"] = p.c_struct_size;
            if (p.type == ParamType::support) c["value_offset"] = p.c_value_offset;
            d["c_layout"] = c;
        } else {
            d["c_layout"] = py::none();
        }
        params.append(d);
    }
    py::list presets;
    for (const PresetSpec & ps : s.presets) {
        py::dict values;
        for (const auto & [name, value] : ps.values) values[name] = py_value(*find_param(s, name), value);
        py::dict d;
        d["name"] = ps.name, d["values"] = values, d["doc"] = ps.doc;
        presets.append(d);
    }
    py::dict d;
    d["name"] = s.name;
    d["aliases"] = s.aliases;
    d["server_name"] = s.server_name ? py::object(py::str(s.server_name)) : py::none();
    d["llama_name"] = s.llama_name ? py::object(py::str(s.llama_name)) : py::none();
    d["doc"] = s.doc;
    d["params"] = params;
    d["presets"] = presets;
    // built through another sampler's C struct (best_of_k: objective) with these values fixed
    py::dict fixed;
    for (const auto & [name, value] : s.fixed) fixed[name] = py_value(*find_param(c_target(s), name), value);
    d["built_as"] = s.built_as ? py::object(py::str(s.built_as)) : py::none();
    d["fixed"] = fixed;
    return d;
}

ParamValue param_value(const py::handle & v) {
    ParamValue p;
    p.text = py::str(py::repr(v));
    if (py::isinstance<py::bool_>(v)) {
        p.kind = ParamValue::boolean, p.b = v.cast<bool>();
    } else if (py::isinstance<py::int_>(v)) {
        try {
            p.kind = ParamValue::integer, p.i = v.cast<int64_t>();
        } catch (const py::cast_error &) {
            // beyond int64: an integer no parameter's type holds, refused as out of range
            if (v.cast<py::int_>() < py::int_(0)) p.kind = ParamValue::integer, p.i = INT64_MIN;
            else p.kind = ParamValue::unsigned_integer, p.u = UINT64_MAX;
        }
    } else if (py::isinstance<py::float_>(v)) {
        p.kind = ParamValue::real, p.d = v.cast<double>();
    } else if (py::isinstance<py::str>(v)) {
        p.kind = ParamValue::string, p.s = v.cast<std::string>();
    }
    return p;
}

// A Python dict of parameters as the table's readers take them.
std::vector<std::pair<std::string, ParamValue>> given_of(const py::dict & params) {
    std::vector<std::pair<std::string, ParamValue>> given;
    for (const auto & [k, v] : params) given.emplace_back(py::str(k), param_value(v));
    return given;
}

const SamplerSpec & spec_named(const std::string & name) {
    const SamplerSpec * spec = find_sampler_spec(name);
    if (spec == nullptr) throw py::value_error("no sampler '" + name + "' in the table");
    return *spec;
}

// The struct a sequence sampler runs from, filled by the table from a Python
// sampler's params() (specs.h make_run_params): no binding names a parameter.
template <typename Run>
Run run_params(const char * sampler, const py::dict & params) {
    Run run{};
    const std::string why = make_run_params(spec_named(sampler), given_of(params), SURFACE_PYTHON, &run);
    if (!why.empty()) throw py::value_error(why);
    return run;
}

// A sampler's C struct from keywords of one surface, over the table's defaults,
// checked by the table (the C API's one check and its messages).
template <typename C>
C c_params(const char * sampler, const py::dict & params, uint32_t surface) {
    const SamplerSpec & spec = spec_named(sampler);
    C out{};
    fill_c_defaults(spec, &out);
    std::string why = read_params(spec, given_of(params), &out, surface);
    if (why.empty()) why = check_c_struct(spec, &out);
    if (!why.empty()) throw py::value_error(why);
    return out;
}

// The objective sampler's C struct from the kernels' keywords (the table's kernel
// surface: the solver's weights and budget).
ObjectiveParams objective_params(const py::dict & params) {
    return c_params<ObjectiveParams>("objective", params, SURFACE_KERNEL);
}

}  // namespace

PYBIND11_MODULE(_core, m) {
    m.doc() = "Native core of llama-simplex: simplex decoders as llama.cpp samplers";

    py::enum_<NucleusOrder>(m, "NucleusOrder")
        .value("model", NucleusOrder::model)
        .value("temperature", NucleusOrder::temperature);

    // Pure kernels over numpy arrays.
    m.def("greedy", [](const FloatArray & l) {
        return run_kernel(l, [](llama_token_data * c, size_t n, Workspace & ws) { return greedy(c, n, ws); });
    }, py::arg("logits"));
    m.def("softmax", [](const FloatArray & l, float t) {
        return run_kernel(l, [t](llama_token_data * c, size_t n, Workspace & ws) { return softmax(c, n, t, ws); });
    }, py::arg("logits"), py::arg("temperature"));
    m.def("top_k", [](const FloatArray & l, int32_t k, float t) {
        return run_kernel(l, [k, t](llama_token_data * c, size_t n, Workspace & ws) { return top_k(c, n, k, t, ws); });
    }, py::arg("logits"), py::arg("k"), py::arg("temperature"));
    // top_p's kernel from the sampler's keywords (its C struct, read and checked by
    // the table); min_keep is the sampler's widening (samplers.cpp), not the kernel's.
    m.def("top_p", [](const FloatArray & l, const py::dict & params) {
        const auto tp = c_params<llama_simplex_top_p_params>("top_p", params, SURFACE_PYTHON);
        if (tp.min_keep > 1) {
            throw py::value_error("min_keep: the top_p kernel keeps no minimum (the sampler does: make_sampler)");
        }
        const NucleusOrder o = tp.order_by_temperature ? NucleusOrder::temperature : NucleusOrder::model;
        return run_kernel(l, [&tp, o](llama_token_data * c, size_t n, Workspace & ws) {
            return top_p(c, n, tp.p, tp.temperature, o, ws);
        });
    }, py::arg("logits"), py::arg("params"));
    m.def("min_p", [](const FloatArray & l, double p, float t) {
        return run_kernel(l, [p, t](llama_token_data * c, size_t n, Workspace & ws) { return min_p(c, n, p, t, ws); });
    }, py::arg("logits"), py::arg("p_min"), py::arg("temperature"));
    m.def("sparsemax", [](const FloatArray & l, float t) {
        return run_kernel(l, [t](llama_token_data * c, size_t n, Workspace & ws) { return sparsemax(c, n, t, ws); });
    }, py::arg("logits"), py::arg("temperature"));

    py::enum_<SolveStatus>(m, "SolveStatus")
        .value("closed_form", SolveStatus::closed_form)
        .value("converged", SolveStatus::converged)
        .value("budget", SolveStatus::budget)
        .value("fallback", SolveStatus::fallback);
    py::enum_<CoverageWeights>(m, "CoverageWeights")
        .value("top_m", CoverageWeights::top_m)
        .value("rank", CoverageWeights::rank)
        .value("gap", CoverageWeights::gap);
    py::enum_<SupportKind>(m, "SupportKind")
        .value("full", SupportKind::full)
        .value("top_k", SupportKind::top_k)
        .value("top_p", SupportKind::top_p)
        .value("min_p", SupportKind::min_p);

    // The solver on arrays over the candidates: returns (q, steps, gap, status). params:
    // the objective sampler's (the table's reader and check); max_steps replaces its
    // steps (the kernel's own budget, beyond the sampler's per-token limit).
    m.def("solve_simplex", [](const FloatArray & s, const FloatArray & log_r, std::optional<FloatArray> w,
                              const py::dict & params, int32_t max_steps) {
        ObjectiveParams o = objective_params(params);
        o.steps = max_steps;
        const auto n = static_cast<size_t>(s.size());
        if (s.ndim() != 1 || log_r.ndim() != 1 || static_cast<size_t>(log_r.size()) != n || n == 0) {
            throw py::value_error("s, log_r: must be non-empty 1-D arrays of the same length");
        }
        if (w && static_cast<size_t>(w->size()) != n) {
            throw py::value_error("w: must have the length of s");
        }
        py::array_t<float> q(static_cast<py::ssize_t>(n));
        SolverWorkspace ws;
        SolveResult r;
        {
            py::gil_scoped_release nogil;
            r = solve_simplex(s.data(), log_r.data(), w ? w->data() : nullptr, n, o, q.mutable_data(), nullptr, ws);
        }
        return py::make_tuple(q, r.steps, r.gap, r.status);
    }, py::arg("s"), py::arg("log_r"), py::arg("w"), py::arg("params"), py::arg("max_steps"));
    m.def("simplex_gradient", [](const FloatArray & s, const FloatArray & log_r, std::optional<FloatArray> w,
                                 const py::dict & params, const FloatArray & q) {
        const ObjectiveParams o = objective_params(params);
        const auto n = static_cast<size_t>(s.size());
        if (static_cast<size_t>(log_r.size()) != n || static_cast<size_t>(q.size()) != n ||
            (w && static_cast<size_t>(w->size()) != n)) {
            throw py::value_error("s, log_r, w, q: must have the same length");
        }
        py::array_t<float> g(static_cast<py::ssize_t>(n));
        simplex_gradient(s.data(), log_r.data(), w ? w->data() : nullptr, n, o, q.data(), g.mutable_data());
        return g;
    }, py::arg("s"), py::arg("log_r"), py::arg("w"), py::arg("params"), py::arg("q"));
    // kind: one of the objective's `weights` choices, read by the table.
    m.def("coverage_weights", [](const FloatArray & log_r, const std::string & kind_name, int32_t m_top) {
        ParamValue given;
        given.kind = ParamValue::string, given.s = kind_name, given.text = "'" + kind_name + "'";
        double index = 0.0;
        int32_t unused = 0;
        bool type_error = false;
        const std::string why = check_value(*find_param(spec_named("objective"), "weights"), given, index, unused, type_error);
        if (!why.empty()) throw py::value_error(why);
        const auto kind = static_cast<CoverageWeights>(static_cast<int>(index));
        const auto n = static_cast<size_t>(log_r.size());
        py::array_t<float> w(static_cast<py::ssize_t>(n));
        std::vector<int32_t> scratch;
        coverage_weights(log_r.data(), n, kind, m_top, w.mutable_data(), scratch);
        return w;
    }, py::arg("log_r"), py::arg("kind"), py::arg("m"));

    py::class_<NativeSampler>(m, "NativeSampler")
        .def_property_readonly("address", [](const NativeSampler & s) { return reinterpret_cast<uintptr_t>(s.get()); })
        .def_property_readonly("name", [](const NativeSampler & s) { return std::string(llama_sampler_name(s.get())); })
        .def_property_readonly("status", [](const NativeSampler & s) { return static_cast<int>(last_status(s.get())); })
        // (steps, gap, status) of an objective sampler's last solve, else None.
        .def_property_readonly("last_solve", [](const NativeSampler & s) -> py::object {
            SolveResult r;
            if (!last_solve(s.get(), r)) return py::none();
            return py::make_tuple(r.steps, r.gap, r.status);
        })
        .def("release", &NativeSampler::release)
        // Makes this decoder also draw the token (seeded); False if it cannot.
        .def("enable_draw", [](NativeSampler & s, uint32_t seed) { return enable_draw(s.get(), seed); }, py::arg("seed"))
        // Makes this sampler (or chain) select a token on every apply, seeded (samplers.h).
        .def("ensure_draw", [](NativeSampler & s, uint32_t seed) { return ensure_draw(s.get(), seed); }, py::arg("seed"))
        // The contexts this sampler makes compute like one made with the
        // llama_context_params at context_params (samplers.h set_context_settings).
        .def("set_context_params", [](NativeSampler & s, uintptr_t context_params) {
            return set_context_settings(s.get(), settings_at(context_params));
        }, py::arg("context_params"))
        .def("reset", [](NativeSampler & s) { llama_sampler_reset(s.get()); })
        .def("accept", [](NativeSampler & s, llama_token t) { llama_sampler_accept(s.get(), t); })
        // Applies the sampler to logits with ids 0..n-1, as llama.cpp would;
        // returns (ids, logits, p, selected, sorted) of the resulting array.
        .def("apply", [](NativeSampler & s, const FloatArray & logits) {
            auto cur = candidates(logits);
            llama_token_data_array cur_p = {cur.data(), cur.size(), -1, false};
            {
                py::gil_scoped_release nogil;
                llama_sampler_apply(s.get(), &cur_p);
            }
            const Status st = last_status(s.get());
            if (st != Status::ok) {
                throw py::value_error(std::string("logits: ") + status_message(st));
            }
            py::array_t<int32_t> ids(static_cast<py::ssize_t>(cur_p.size));
            py::array_t<float> lg(static_cast<py::ssize_t>(cur_p.size));
            py::array_t<float> p(static_cast<py::ssize_t>(cur_p.size));
            for (size_t i = 0; i < cur_p.size; ++i) {
                ids.mutable_data()[i] = cur_p.data[i].id;
                lg.mutable_data()[i] = cur_p.data[i].logit;
                p.mutable_data()[i] = cur_p.data[i].p;
            }
            return py::make_tuple(ids, lg, p, cur_p.selected, cur_p.sorted);
        }, py::arg("logits"));

    // The sampler table (specs.h): every surface's names, parameters and presets.
    m.def("sampler_specs", [] {
        py::list out;
        for (const SamplerSpec & s : sampler_specs()) out.append(spec_dict(s));
        return out;
    });
    // llama-server's reader of one sampler's parameters, then the C API's check
    // (what a request's sampler_params goes through): the values the C struct
    // gets, by parameter; ValueError with the message llama-server answers.
    m.def("read_sampler_params", [](const std::string & name, const py::dict & params) {
        const SamplerSpec * spec = find_sampler_spec(name);
        if (spec == nullptr || spec->server_name == nullptr) throw py::value_error("no llama-server sampler '" + name + "'");
        const SamplerSpec & target = c_target(*spec);
        alignas(std::max_align_t) unsigned char c_struct[512] = {};
        fill_c_defaults(target, c_struct);
        std::string why = read_params(*spec, given_of(params), c_struct);
        if (why.empty()) why = check_c_struct(target, c_struct);
        if (!why.empty()) throw py::value_error("sampler '" + std::string(spec->server_name) + "': " + why);
        py::dict out;
        for (const ParamSpec & p : spec->params) {
            if (!(p.surfaces & SURFACE_SERVER)) continue;
            const ParamSpec * t = find_param(target, p.name);
            if (t == nullptr) continue;
            if (t->get_support != nullptr) {
                int32_t code = 0;
                double value = 0.0;
                t->get_support(c_struct, code, value);
                out[p.name] = format_support(code, value);
            } else if (t->get != nullptr) {
                out[p.name] = py_value(*t, t->get(c_struct));
            }
        }
        return out;
    }, py::arg("name"), py::arg("params"));

    // The one check of parameter values (specs.h check_value), what Python's
    // constructors call: by parameter, the value as the C struct holds it
    // (support: (kind, value)); TypeError / ValueError with the C API's message.
    m.def("check_params", [](const std::string & name, const py::dict & params) {
        const SamplerSpec * spec = find_sampler_spec(name);
        if (spec == nullptr) throw py::value_error("no sampler '" + name + "' in the table");
        py::dict out;
        for (const auto & [k, v] : params) {
            const std::string key = py::str(k);
            const ParamSpec * p = find_param(*spec, key);
            if (p == nullptr) throw py::value_error("unknown parameter '" + key + "' of sampler '" + spec->name + "'");
            double value = 0.0;
            int32_t code = 0;
            bool type_error = false;
            const std::string why = check_value(*p, param_value(v), value, code, type_error);
            if (!why.empty()) {
                if (type_error) throw py::type_error(why);
                throw py::value_error(why);
            }
            out[k] = p->type == ParamType::support ? py::object(py::make_tuple(code, value)) : py_value(*p, value);
        }
        return out;
    }, py::arg("name"), py::arg("params"));

    // The one constructor of a sampler from its C struct (specs.h make_sampler), what
    // llama-server's registry calls: the C struct's defaults, the given parameters (the
    // Python class's, and power's C-only n_ctx / rollout_seed / max_tokens) over them
    // through the table, the C API's check and constructor. model: power's (an address).
    m.def("make_sampler", [](const std::string & name, const py::dict & params, uintptr_t model) {
        llama_sampler * s = nullptr;
        const std::string why = make_sampler(spec_named(name), given_of(params), SURFACE_PYTHON | SURFACE_C, &s,
                                             reinterpret_cast<llama_model *>(model));
        if (!why.empty()) throw py::value_error(why);
        return new NativeSampler(s);
    }, py::arg("name"), py::arg("params") = py::dict(), py::arg("model") = 0);
    // sizeof(llama_context_params) of the llama.h this module was built with:
    // handles.context_params_address checks llama_cpp's ctypes struct against it.
    m.attr("CONTEXT_PARAMS_SIZE") = sizeof(llama_context_params);
    m.def("make_dist", [](uint32_t seed) { return new NativeSampler(make_dist(seed)); }, py::arg("seed"));
    // A llama.cpp chain that takes ownership of the members.
    m.def("make_chain", [](std::vector<NativeSampler *> members) {
        llama_sampler * chain = llama_sampler_chain_init(llama_sampler_chain_default_params());
        for (auto * s : members) {
            llama_sampler_chain_add(chain, reinterpret_cast<llama_sampler *>(s->release()));
        }
        return new NativeSampler(chain);
    }, py::arg("members"));
    // Adopts a sampler made elsewhere (for example by llama_cpp) from its address.
    m.def("adopt_sampler", &ptr_sampler, py::arg("address"));

    m.def("tokenize", [](uintptr_t model, const std::string & text, bool add_special, bool parse_special) {
        return tokenize(reinterpret_cast<const llama_model *>(model), text, add_special, parse_special);
    }, py::arg("model"), py::arg("text"), py::arg("add_special") = true, py::arg("parse_special") = false);
    m.def("detokenize", [](uintptr_t model, const std::vector<llama_token> & tokens) {
        return py::bytes(detokenize(reinterpret_cast<const llama_model *>(model), tokens));
    }, py::arg("model"), py::arg("tokens"));

    // A context of our own on a model (unified KV cache for forked sequences).
    py::class_<RolloutContext>(m, "RolloutContext")
        .def(py::init([](uintptr_t model, uint32_t n_ctx, uint32_t n_seq, int32_t n_threads, uint32_t n_batch,
                         uint32_t n_ubatch, uintptr_t context_params) {
                 const ContextSettings settings = settings_at(context_params);
                 return new RolloutContext{make_rollout_context(reinterpret_cast<llama_model *>(model), n_ctx, n_seq,
                                                                n_threads, n_batch, n_ubatch, settings),
                                           settings};
             }),
             py::arg("model"), py::arg("n_ctx"), py::arg("n_seq"), py::arg("n_threads") = 0, py::arg("n_batch") = 512,
             py::arg("n_ubatch") = 0, py::arg("context_params") = 0)
        .def_property_readonly("address", [](const RolloutContext & c) { return reinterpret_cast<uintptr_t>(c.ctx.get()); })
        .def_property_readonly("n_ctx", [](const RolloutContext & c) { return llama_n_ctx(c.ctx.get()); })
        .def_property_readonly("n_seq", [](const RolloutContext & c) { return llama_n_seq_max(c.ctx.get()); });

    // k parallel completions; returns (tokens, texts as bytes, logliks, finish reasons).
    m.def("sample_k", [](RolloutContext & ctx, const std::vector<llama_token> & prompt, std::vector<NativeSampler *> samplers,
                         int32_t max_tokens, std::vector<std::string> stop, bool stop_at_eog, bool backend_sampling) {
        std::vector<llama_sampler *> raw;
        for (auto * s : samplers) raw.push_back(s->get());
        SampleKOptions o;
        o.max_tokens = max_tokens;
        o.stop = std::move(stop);
        o.stop_at_eog = stop_at_eog;
        o.backend_sampling = backend_sampling;
        o.settings = ctx.settings;
        SampleKResult r;
        {
            py::gil_scoped_release nogil;
            r = sample_k(ctx.ctx.get(), prompt, raw, o);
        }
        py::list texts;
        for (auto & t : r.texts) texts.append(py::bytes(t));
        return py::make_tuple(r.tokens, texts, r.loglik, r.finish);
    }, py::arg("ctx"), py::arg("prompt"), py::arg("samplers"), py::arg("max_tokens"), py::arg("stop"),
       py::arg("stop_at_eog") = true, py::arg("backend_sampling") = false);

    // A sampler's in-graph outputs for one row of logits on ggml's CPU
    // backend: (probs, candidate ids or None for ids 0..n-1, sampled token
    // or -1); None when it has no in-graph form for these parameters.
    // (probs, candidate ids or None for ids 0..n-1, sampled token or -1) of an in-graph run.
    const auto graph_tuple = [](const GraphOutput & g) {
        py::object ids = g.candidates.empty() ? py::object(py::none()) : py::object(py::array_t<int32_t>(
            static_cast<py::ssize_t>(g.candidates.size()), g.candidates.data()));
        return py::make_tuple(py::array_t<float>(static_cast<py::ssize_t>(g.probs.size()), g.probs.data()), ids,
                              g.sampled == LLAMA_TOKEN_NULL ? -1 : g.sampled);
    };
    m.def("graph_sample", [graph_tuple](NativeSampler & s, const FloatArray & logits) -> py::object {
        if (logits.ndim() != 1 || logits.shape(0) == 0) {
            throw py::value_error("logits: must be a non-empty 1-D array");
        }
        GraphOutput g;
        {
            py::gil_scoped_release nogil;
            g = run_graph(s.get(), logits.data(), static_cast<size_t>(logits.shape(0)));
        }
        if (!g.in_graph) return py::none();
        return graph_tuple(g);
    }, py::arg("sampler"), py::arg("logits"));
    // The same for a row given as llama.cpp's build_sampling gives it: `logits`
    // (rows x n) padded with one zero row in the graph, the sampler handed row
    // `row` of the padded copy. Returns (probs, ids or None, sampled or -1,
    // number of pad nodes left in the computed graph), None without an in-graph form.
    m.def("graph_sample_padded", [graph_tuple](NativeSampler & s, py::array_t<float, py::array::c_style | py::array::forcecast> logits,
                                    int32_t row) -> py::object {
        if (logits.ndim() != 2 || logits.shape(0) == 0 || logits.shape(1) == 0) {
            throw py::value_error("logits: must be a non-empty 2-D array (rows x vocabulary)");
        }
        GraphOutput g;
        {
            py::gil_scoped_release nogil;
            g = run_graph(s.get(), logits.data(), static_cast<size_t>(logits.shape(1)), 1, nullptr, 0,
                          static_cast<int32_t>(logits.shape(0)), row);
        }
        if (!g.in_graph) return py::none();
        return graph_tuple(g) + py::make_tuple(g.pad_nodes);
    }, py::arg("sampler"), py::arg("logits"), py::arg("row"));
    // Mean seconds per token of a sampler on one row of logits: in-graph (the
    // graph computed `repeats` times on the CPU backend; None without an
    // in-graph form) and the CPU path (candidates filled, apply).
    m.def("graph_seconds", [](NativeSampler & s, const FloatArray & logits, int32_t repeats, int32_t n_threads)
          -> py::object {
        double sec = 0.0;
        GraphOutput g;
        {
            py::gil_scoped_release nogil;
            g = run_graph(s.get(), logits.data(), static_cast<size_t>(logits.size()), repeats, &sec, n_threads);
        }
        return g.in_graph ? py::object(py::float_(sec)) : py::object(py::none());
    }, py::arg("sampler"), py::arg("logits"), py::arg("repeats"), py::arg("n_threads") = 0);
    m.def("cpu_path_seconds", [](NativeSampler & s, const FloatArray & logits, int32_t repeats) {
        py::gil_scoped_release nogil;
        return time_cpu_path(s.get(), logits.data(), static_cast<size_t>(logits.size()), repeats);
    }, py::arg("sampler"), py::arg("logits"), py::arg("repeats"));

    // Power sampling weights over K candidates: log_p (K), loglik (K x M).
    m.def("power_weights", [](const FloatArray & log_p, py::array_t<double, py::array::c_style | py::array::forcecast> loglik,
                              double alpha, bool jackknife) {
        if (loglik.ndim() != 2 || loglik.shape(0) != log_p.size() || log_p.ndim() != 1) {
            throw py::value_error("loglik: must be a (K, M) array with K = len(log_p)");
        }
        const auto k = static_cast<size_t>(loglik.shape(0));
        const auto mm = static_cast<size_t>(loglik.shape(1));
        py::array_t<double> out(static_cast<py::ssize_t>(k));
        std::string why;
        if (!power_weights(log_p.data(), loglik.data(), k, mm, alpha, jackknife, out.mutable_data(), &why)) {
            throw py::value_error(why);
        }
        return out;
    }, py::arg("log_p"), py::arg("loglik"), py::arg("alpha"), py::arg("jackknife"));

    // Token-level power sampling on a rollout context; returns (tokens, stats dict).
    // params: a PowerSampler's params(); naive: the re-prefill baseline (benchmarks).
    m.def("power_generate", [](RolloutContext & ctx, const std::vector<llama_token> & prompt, const py::dict & p,
                               int32_t max_tokens, uint64_t seed, bool stop_at_eog, py::object progress, bool naive) {
        PowerParams params = run_params<PowerParams>("power", p);
        params.naive_reprefill = naive;
        return run_power_binding(progress, [&](PowerStats & stats, const PowerProgress & cb) {
            return power_generate(ctx.ctx.get(), prompt, params, max_tokens, seed, stop_at_eog, stats, cb);
        });
    }, py::arg("ctx"), py::arg("prompt"), py::arg("params"), py::arg("max_tokens"), py::arg("seed"),
       py::arg("stop_at_eog") = true, py::arg("progress") = py::none(), py::arg("naive") = false);

    m.def("block_power_generate", [](RolloutContext & ctx, const std::vector<llama_token> & prompt,
                                     const py::dict & p, int32_t max_tokens, uint64_t seed, bool stop_at_eog,
                                     py::object progress) {
        const BlockParams params = run_params<BlockParams>("block_power", p);
        return run_power_binding(progress, [&](PowerStats & stats, const PowerProgress & cb) {
            return block_power_generate(ctx.ctx.get(), prompt, params, max_tokens, seed, stop_at_eog, stats, cb);
        });
    }, py::arg("ctx"), py::arg("prompt"), py::arg("params"), py::arg("max_tokens"), py::arg("seed"),
       py::arg("stop_at_eog") = true, py::arg("progress") = py::none());

    m.def("rollout_prefix_probe", [](RolloutContext & ctx, const std::vector<llama_token> & prompt,
                                     const py::dict & p, uint64_t seed, llama_token next, bool naive) {
        PowerParams params = run_params<PowerParams>("power", p);
        params.naive_reprefill = naive;
        py::gil_scoped_release nogil;
        return rollout_prefix_probe(ctx.ctx.get(), prompt, params, seed, next);
    }, py::arg("ctx"), py::arg("prompt"), py::arg("params"), py::arg("seed"), py::arg("next"), py::arg("naive") = false);

    // The rollout context each power sampler needs, (n_ctx, n_seq), checked on
    // the model (horizon, llama.cpp's limits, memory available) before
    // anything is allocated: the one formula (power.cpp, mcmc.cpp).
    auto checked = [](uintptr_t model, const RolloutShape & shape, uint32_t n_ubatch, const char * param) {
        check_rollout_context(reinterpret_cast<const llama_model *>(model), shape.n_ctx, shape.n_seq, n_ubatch, param,
                              shape.why);
        return py::make_tuple(shape.n_ctx, shape.n_seq);
    };
    m.def("power_context_shape", [checked](uintptr_t model, const py::dict & p, int64_t n_prompt,
                                           int64_t max_tokens, uint32_t n_ubatch, bool naive) {
        PowerParams params = run_params<PowerParams>("power", p);
        params.naive_reprefill = naive;
        check_horizon(reinterpret_cast<const llama_model *>(model), params.horizon);
        return checked(model, power_context_shape(params, n_prompt, max_tokens), n_ubatch, "max_tokens, horizon");
    }, py::arg("model"), py::arg("params"), py::arg("n_prompt"), py::arg("max_tokens"), py::arg("n_ubatch") = 32,
       py::arg("naive") = false);
    m.def("block_context_shape", [checked](uintptr_t model, const py::dict & p, int64_t n_prompt,
                                           int64_t max_tokens, uint32_t n_ubatch) {
        const BlockParams params = run_params<BlockParams>("block_power", p);
        check_horizon(reinterpret_cast<const llama_model *>(model), params.horizon);
        return checked(model, block_context_shape(params, n_prompt, max_tokens), n_ubatch,
                       "max_tokens, block, horizon");
    }, py::arg("model"), py::arg("params"), py::arg("n_prompt"), py::arg("max_tokens"), py::arg("n_ubatch") = 32);
    m.def("mcmc_context_shape", [checked](uintptr_t model, int64_t n_prompt, int64_t max_tokens, uint32_t n_ubatch) {
        return checked(model, mcmc_context_shape(n_prompt, max_tokens), n_ubatch, "max_tokens");
    }, py::arg("model"), py::arg("n_prompt"), py::arg("max_tokens"), py::arg("n_ubatch") = 32);
    m.def("rollout_context_bytes", [](uintptr_t model, int64_t n_ctx, uint32_t n_seq, uint32_t n_ubatch) {
        return rollout_context_bytes(reinterpret_cast<const llama_model *>(model), n_ctx, n_seq, n_ubatch);
    }, py::arg("model"), py::arg("n_ctx"), py::arg("n_seq"), py::arg("n_ubatch") = 32);
    m.def("gguf_context_bytes", [](const std::string & path, int64_t n_ctx, uint32_t n_seq, uint32_t n_ubatch) {
        py::gil_scoped_release nogil;
        return gguf_context_bytes(path, n_ctx, n_seq, n_ubatch);
    }, py::arg("path"), py::arg("n_ctx"), py::arg("n_seq") = 1, py::arg("n_ubatch") = 512);
    m.def("available_memory_bytes", &available_memory_bytes);

    // MCMC power sampling on a rollout context; returns (tokens, stats dict).
    m.def("mcmc_power_generate", [](RolloutContext & ctx, const std::vector<llama_token> & prompt,
                                    const py::dict & p, int32_t max_tokens, uint64_t seed, bool stop_at_eog,
                                    py::object progress) {
        const McmcParams params = run_params<McmcParams>("mcmc", p);
        McmcStats stats;
        std::function<bool(int32_t, const McmcStats &)> cb;
        if (!progress.is_none()) {
            cb = [&progress](int32_t done, const McmcStats & st) {
                py::gil_scoped_acquire gil;
                py::object r = progress(done, st.proposals, st.accepted);
                return r.is_none() || r.cast<bool>();
            };
        }
        std::vector<llama_token> out;
        {
            py::gil_scoped_release nogil;
            out = mcmc_power_generate(ctx.ctx.get(), prompt, params, max_tokens, seed, stop_at_eog, stats, cb);
        }
        py::dict d;
        d["proposals"] = stats.proposals;
        d["accepted"] = stats.accepted;
        d["decoded_tokens"] = stats.decoded_tokens;
        return py::make_tuple(out, d);
    }, py::arg("ctx"), py::arg("prompt"), py::arg("params"), py::arg("max_tokens"), py::arg("seed"),
       py::arg("stop_at_eog") = true, py::arg("progress") = py::none());

    // Power-SMC (smc.h): the maths as pure functions, the context shape and the engine.
    m.def("smc_alpha_at", &smc_alpha_at, py::arg("alpha"), py::arg("ramp"), py::arg("t"));
    m.def("smc_log_z", [](const FloatArray & logits, double a) {
        if (logits.ndim() != 1 || logits.size() == 0) throw py::value_error("logits: must be a non-empty 1-D array");
        return smc_log_z(logits.data(), static_cast<int32_t>(logits.size()), a);
    }, py::arg("logits"), py::arg("a"));
    m.def("smc_incremental_log_weight", &smc_incremental_log_weight, py::arg("a_t"), py::arg("a_prev"),
          py::arg("loglik"), py::arg("log_z"), py::arg("ended"));
    m.def("smc_ess", &smc_ess, py::arg("log_w"));
    m.def("smc_systematic_resample", &smc_systematic_resample, py::arg("log_w"), py::arg("u"));
    m.def("smc_resample_slots", &smc_resample_slots, py::arg("ancestors"));
    m.def("smc_log_normaliser", &smc_log_normaliser, py::arg("log_w"));

    // params: an SMCPowerSampler's params() (the table fills SmcParams from them).
    m.def("smc_context_shape", [checked](uintptr_t model, const py::dict & p, int64_t n_prompt,
                                         int64_t max_tokens, uint32_t n_ubatch) {
        const SmcParams params = run_params<SmcParams>("smc", p);
        return checked(model, smc_context_shape(params, n_prompt, max_tokens), n_ubatch, "particles, max_tokens");
    }, py::arg("model"), py::arg("params"), py::arg("n_prompt"), py::arg("max_tokens"), py::arg("n_ubatch") = 32);

    // Runs the particles; returns a dict (the drawn completion, every round's particles and counters).
    m.def("smc_generate", [](RolloutContext & ctx, const std::vector<llama_token> & prompt, const py::dict & p,
                             int32_t max_tokens, uint64_t seed, bool stop_at_eog, py::object progress) {
        const SmcParams params = run_params<SmcParams>("smc", p);
        std::function<bool(int32_t, int32_t)> cb;
        if (!progress.is_none()) {
            cb = [&progress](int32_t step, int32_t resamples) {
                py::gil_scoped_acquire gil;
                py::object r = progress(step, resamples);
                return r.is_none() || r.cast<bool>();
            };
        }
        SmcResult r;
        {
            py::gil_scoped_release nogil;
            r = smc_generate(ctx.ctx.get(), prompt, params, max_tokens, seed, stop_at_eog, cb);
        }
        py::list rounds;
        for (const SmcRound & rd : r.rounds) {
            py::list toks, logliks, log_w, stopped, ancestors;
            for (const SmcParticle & p : rd.particles) {
                toks.append(p.tokens);
                logliks.append(p.loglik);
                log_w.append(p.log_weight);
                stopped.append(p.stopped);
                ancestors.append(p.ancestor);
            }
            py::dict d;
            d["tokens"] = toks, d["logliks"] = logliks, d["log_weights"] = log_w, d["stopped"] = stopped;
            d["ancestors"] = ancestors, d["weights"] = rd.weights, d["log_z"] = rd.log_z, d["ess"] = rd.ess;
            d["resamples"] = rd.resamples, d["unique_ancestors"] = rd.unique_ancestors, d["rows"] = rd.rows;
            rounds.append(d);
        }
        py::dict out;
        out["tokens"] = r.tokens, out["stopped"] = r.stopped, out["round"] = r.round, out["particle"] = r.particle;
        out["rounds"] = rounds, out["round_weights"] = r.round_weights;
        out["decoded_tokens"] = r.decoded_tokens, out["decode_calls"] = r.decode_calls;
        return out;
    }, py::arg("ctx"), py::arg("prompt"), py::arg("params"), py::arg("max_tokens"), py::arg("seed"),
       py::arg("stop_at_eog") = true, py::arg("progress") = py::none());

    // The benchmarks' baseline: seconds of bare llama_decode calls of rows[t] rows at step t
    // (the shapes a Power-SMC run decoded: its rounds' "rows"; rollout.h).
    m.def("raw_batched_decode_rows_seconds", [](RolloutContext & ctx, const std::vector<llama_token> & prompt,
                                                const std::vector<int32_t> & rows) {
        py::gil_scoped_release nogil;
        return raw_batched_decode_rows_seconds(ctx.ctx.get(), prompt, rows);
    }, py::arg("ctx"), py::arg("prompt"), py::arg("rows"));

    // For tests of the cache: prefill into sequence 0 of an emptied context, and a sequence's
    // cells before position p1 as bytes (read through the empty sequence `spare`).
    m.def("rollout_prefill", [](RolloutContext & ctx, const std::vector<llama_token> & tokens) {
        py::gil_scoped_release nogil;
        RolloutEngine engine(ctx.ctx.get());
        engine.clear();
        if (!tokens.empty()) engine.extend(0, tokens.data(), tokens.size(), 0);
    }, py::arg("ctx"), py::arg("tokens"));
    m.def("rollout_seq_state", [](RolloutContext & ctx, int32_t seq, int32_t p1, int32_t spare) {
        if (seq < 0 || spare < 0 || seq == spare || spare >= static_cast<int32_t>(llama_n_seq_max(ctx.ctx.get())) ||
            seq >= static_cast<int32_t>(llama_n_seq_max(ctx.ctx.get()))) {
            throw py::value_error("seq, spare: two distinct sequences of the context");
        }
        RolloutEngine engine(ctx.ctx.get());
        const std::vector<uint8_t> b = engine.seq_state(seq, p1, spare);
        return py::bytes(reinterpret_cast<const char *>(b.data()), b.size());
    }, py::arg("ctx"), py::arg("seq"), py::arg("p1"), py::arg("spare"));

    py::class_<Generator>(m, "Generator")
        .def(py::init([](uintptr_t ctx, NativeSampler & sampler, std::vector<llama_token> prompt, int32_t max_tokens,
                         std::vector<std::string> stop, bool stop_at_eog, bool backend_sampling,
                         uintptr_t context_params) {
                 GenerateOptions o;
                 o.max_tokens = max_tokens;
                 o.stop = std::move(stop);
                 o.stop_at_eog = stop_at_eog;
                 o.backend_sampling = backend_sampling;
                 o.settings = settings_at(context_params);
                 return new Generator(reinterpret_cast<llama_context *>(ctx), sampler.get(), std::move(prompt), std::move(o));
             }),
             py::arg("ctx"), py::arg("sampler"), py::arg("prompt"), py::arg("max_tokens"), py::arg("stop"),
             py::arg("stop_at_eog") = true, py::arg("backend_sampling") = false, py::arg("context_params") = 0,
             py::keep_alive<1, 3>())
        .def("__iter__", [](Generator & g) -> Generator & { return g; })
        .def_property_readonly("context_address", [](const Generator & g) { return reinterpret_cast<uintptr_t>(g.context()); })
        // One step: (token, text); token is -1 when only held-back text remains.
        .def("__next__", [](Generator & g) {
            Step step;
            bool more;
            {
                py::gil_scoped_release nogil;
                more = g.next(step);
            }
            if (!more && step.text.empty()) {
                throw py::stop_iteration();
            }
            return py::make_tuple(step.token, step.text);
        })
        // Runs to the end in C++ without the GIL.
        .def("run", [](Generator & g) {
            py::gil_scoped_release nogil;
            Step step;
            while (g.next(step)) {
            }
        })
        .def("stop", &Generator::stop, py::arg("reason"))
        .def("mark_stale", &Generator::mark_stale)
        .def("suspend", &Generator::suspend)
        .def("detach", &Generator::detach)
        .def_property_readonly("done", &Generator::done)
        .def_property_readonly("finish_reason", &Generator::finish_reason)
        .def_property_readonly("tokens", &Generator::tokens)
        .def_property_readonly("text", [](const Generator & g) { return py::bytes(g.text()); })
        .def_property_readonly("n_prompt", &Generator::n_prompt);
}
