// One declarative description per sampler (issue 11): its canonical name and
// aliases, each parameter's type, default, range and one-line doc, and its
// presets. The C API's *_default_params() and its one validator, llama-server's
// JSON reader and _core.sampler_specs() (Python, `llama-simplex samplers`, the
// parity test) are all read from this table: adding a parameter is one entry.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

struct llama_sampler;
struct llama_model;

namespace llama_simplex {

enum class ParamType {
    f32,      // a float32: finite, and 0 or at least the smallest subnormal in magnitude
    f64,      // a finite double
    i32,      // an int32
    u32,      // a uint32
    boolean,
    choice,   // one of `choices` by name; the C struct holds its index (or, for two choices, a bool)
    support,  // 'full', 'top-k:K', 'top-p:P' or 'min-p:P'; the C struct holds (support, support_value)
};

// Which surfaces take a parameter (a bit set).
enum Surface : unsigned {
    SURFACE_C      = 1u << 0,  // a field of the sampler's C parameter struct (llama_simplex.h)
    SURFACE_SERVER = 1u << 1,  // a key of llama-server's sampler_params
    SURFACE_PYTHON = 1u << 2,  // a field of the Python sampler class
    SURFACE_KERNEL = 1u << 3,  // a keyword of llama_simplex.kernels.solve / gradient (the solver's parameters)
    SURFACE_ALL    = SURFACE_C | SURFACE_SERVER | SURFACE_PYTHON,
};

struct ParamSpec {
    const char * name;
    ParamType    type;
    double       def;              // choice: the default's index; support: unused (def_text)
    double       lo, hi;           // the allowed range; an end at the C type's limit is "unbounded"
    bool         lo_open, hi_open;
    const char * doc;              // one line
    const char * note;             // a special value's meaning, quoted in range errors ("" if none)
    unsigned     surfaces;
    std::vector<const char *> choices;  // choice: the names, in index order
    const char * def_text;         // choice/support: the default as text
    // The C struct field (null when the parameter is not on the sampler's C struct).
    void   (*set)(void * c_struct, double value);
    double (*get)(const void * c_struct);
    // support only: the C struct's (support, support_value) pair.
    void (*set_support)(void * c_struct, int32_t code, double value);
    void (*get_support)(const void * c_struct, int32_t & code, double & value);
    // The field of the struct the library's sequence sampler runs from (PowerParams,
    // BlockParams, McmcParams: every entry of its list); null for the decoders.
    void   (*set_run)(void * run_struct, double value) = nullptr;
    double (*get_run)(const void * run_struct) = nullptr;
    const char * field = nullptr;  // its C struct field (support: and field_value); null when not in the C struct
    // Where the C struct holds it (offsetof / sizeof on llama_simplex.h's struct), so that
    // a mirror of the struct (the tests' ctypes ones) is made from the table; 0 off the C
    // struct. support: the code's field, its value's at c_value_offset.
    size_t c_offset = 0, c_size = 0, c_value_offset = 0, c_struct_size = 0;
};

struct PresetSpec {
    const char * name;
    std::vector<std::pair<const char *, double>> values;
    const char * doc;
};

struct SamplerSpec {
    const char * name;                  // canonical: one name on every surface
    std::vector<const char *> aliases;  // accepted everywhere the name is
    const char * server_name;           // the name llama-server registers (null: not in llama-server);
                                        // it is the canonical name unless llama.cpp owns that name
    const char * llama_name;            // the native sampler's llama_sampler_name() (null: not a chain sampler)
    const char * doc;
    std::vector<ParamSpec>  params;
    std::vector<PresetSpec> presets;
    // Parameters fixed when this sampler is built through another's C struct (best_of_k
    // is the objective with kl = 1, entropy = 0, l2 = 0): llama-server's route.
    const char * built_as;              // null: its own C struct
    std::vector<std::pair<const char *, double>> fixed;
};

// Every sampler, in the order `llama-simplex samplers` lists them.
const std::vector<SamplerSpec> & sampler_specs();
// By canonical name or alias; null if none.
const SamplerSpec * find_sampler_spec(std::string_view name);
const ParamSpec * find_param(const SamplerSpec & spec, std::string_view name);

// The one range check: "" if `value` is allowed, else
// "<name>: must be <range>[ (<note>)], got <value>".
std::string check_param(const ParamSpec & p, double value);
// The allowed range as the messages say it: "in [0, 1]", ">= 0", "finite and > 0".
std::string describe_range(const ParamSpec & p);
// A number as the messages print it (no trailing zeros).
std::string format_number(double v);

// Checks every C-struct parameter of `spec` in `c_struct` (its C parameter struct):
// "" or the first failure's message.
std::string check_c_struct(const SamplerSpec & spec, const void * c_struct);
// Writes the table's defaults into a C parameter struct.
void fill_c_defaults(const SamplerSpec & spec, void * c_struct);

// support: parses 'full', 'top-k:K', 'top-p:P', 'min-p:P' into (code 0..3, value);
// "" or the reason it is refused. format_support is the inverse.
std::string parse_support(const std::string & text, int32_t & code, double & value);
std::string format_support(int32_t code, double value);

// One value of a sampler_params entry, typed as the JSON (or Python) value was.
struct ParamValue {
    enum Kind { integer, unsigned_integer, real, boolean, string, other } kind = other;
    int64_t     i = 0;      // integer
    uint64_t    u = 0;      // unsigned_integer (beyond INT64_MAX)
    double      d = 0.0;    // real
    bool        b = false;  // boolean
    std::string s;          // string
    std::string text;       // the value as written, for messages
};

// llama-server's reader of one sampler's parameters (also _core.read_sampler_params):
// the keys a sampler takes on `surface`, their types, its presets, from the table.
// Writes into `c_struct`, the C struct of spec.built_as (or of spec), which holds
// the defaults the caller wants for what is not given; a preset applies before
// the keys given with it. Returns "" or the message naming the parameter; the
// ranges are left to check_c_struct (the C API's one check).
std::string read_params(const SamplerSpec & spec, const std::vector<std::pair<std::string, ParamValue>> & given,
                        void * c_struct, unsigned surface = SURFACE_SERVER);
// The one check of one given value of a parameter (Python's constructors go through
// it, as llama-server's reader and the C API do): its type as read_params takes it,
// then its range (check_param). Writes what the C struct would hold into `out`
// (support: `code` and `out`). "" or the message; `type_error` tells a value of the
// wrong kind (a string for a number, a bool or a real for an integer) from one the
// type holds but the range refuses (an integer too large for the C type is the latter).
std::string check_value(const ParamSpec & p, const ParamValue & v, double & out, int32_t & code, bool & type_error);
// The spec whose C struct a sampler is built through (itself, or built_as).
const SamplerSpec & c_target(const SamplerSpec & spec);

// Builds a sampler the one way every surface does: the C struct of c_target(spec) gets
// its defaults, read_params writes `given` (keys of `surface`) over them, then the C API
// constructor checks it (check_c_struct) and builds it. `model`: the model power's
// rollouts run on (the others take none). "" and *out set, or the message naming the
// parameter. Whether `spec` has such a constructor: has_c_constructor.
std::string make_sampler(const SamplerSpec & spec, const std::vector<std::pair<std::string, ParamValue>> & given,
                         unsigned surface, llama_sampler ** out, llama_model * model = nullptr);
bool has_c_constructor(const SamplerSpec & spec);

// The struct a sequence sampler's engine runs from (its set_run fields), the one way
// every surface fills it: the table's defaults, a preset, then `given` (keys of
// `surface`), each value checked by the table (check_value's messages). "" or the message.
std::string make_run_params(const SamplerSpec & spec, const std::vector<std::pair<std::string, ParamValue>> & given,
                            unsigned surface, void * run_struct);
// The run struct from the sampler's C struct (the C API's power): the table's
// defaults, then every C field (checked before, by check_c_struct).
void c_to_run(const SamplerSpec & spec, const void * c_struct, void * run_struct);
// The C struct of c_target(spec) from the C struct of spec (best_of_k's to the
// objective's): the spec's defaults and fixed values over the target's, then its fields.
void c_to_target(const SamplerSpec & spec, const void * c_struct, void * target_struct);

}  // namespace llama_simplex
