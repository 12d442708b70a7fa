#pragma once

// The adapter between our samplers and llama.cpp's llama_sampler interface,
// shared by every sampler of ours: the base each one derives from and wrap(),
// which gives it llama.cpp's interface (implemented in samplers.cpp, where
// the interface's functions live). Internal: not installed with the headers.

#include <cstdint>
#include <random>
#include <vector>

#include "llama.h"
#include "llama_simplex/rollout.h"
#include "llama_simplex/simplex.h"

namespace llama_simplex {
namespace detail {

struct GraphDecoder;  // backend_sampling.h

// The part every sampler of ours shares: a name, its scratch memory and the
// outcome of its last apply. Each concrete sampler is one small struct
// (samplers.cpp; PowerChain in power_chain.cpp).
struct SamplerBase {
    Status    status = Status::ok;
    Workspace ws;
    // A decoder may also make the final draw from the q it wrote (saving the
    // second softmax a separate dist sampler would compute).
    bool      draws = false;
    uint64_t  draw_seed = 0;
    uint64_t  rng = 0;

    virtual ~SamplerBase() = default;
    virtual const char * name() const = 0;
    virtual SamplerBase * copy() const = 0;
    // Runs the kernel; returns the outcome and whether the support is sorted.
    virtual Outcome run(llama_token_data_array * cur_p, bool & sorted) = 0;
    virtual void reset() { rng = draw_seed; }
    virtual void accept(llama_token) {}
    // True for a sampler whose run() sets the selection itself (Dist).
    virtual bool selects() const { return false; }
    // The decoder's in-graph form (backend_sampling.cpp); false: it has none
    // and runs on the CPU (llama.cpp calls its apply).
    virtual bool graph(GraphDecoder &) const { return false; }
    // A sampler that makes contexts of its own (PowerChain, SmcChain) makes
    // them with these settings from then on; false: it makes none.
    virtual bool set_settings(const ContextSettings &) { return false; }
    // The uniforms of the current sampling graph, one per in-graph draw
    // (set before each decode from rng, like a CPU draw).
    std::vector<ggml_tensor *> graph_uniforms;
    // backend_init's choice of in-graph form (backend_sampling.cpp): the
    // host form (this sampler's kernel as one custom op, on a CPU device) or
    // the portable graph of element-wise ops; and the host form's candidates.
    bool graph_host = false;
    std::vector<llama_token_data> graph_tokens;

    // Seeds the final draw: a decoder then draws from its q; Dist draws anyway.
    void draw_with(uint32_t seed) {
        draws = !selects();
        draw_seed = seed == LLAMA_DEFAULT_SEED ? std::random_device{}() : seed;
        rng = draw_seed;
    }
};


// True when p over cur[0..n) is a distribution a draw can use: every value
// finite and >= 0, and a positive, finite total (what apply checks).
bool is_distribution(const llama_token_data * cur, size_t n);

// A llama_sampler owning `s` (freed with it), with our interface.
llama_sampler * wrap(SamplerBase * s);

}  // namespace detail
}  // namespace llama_simplex
