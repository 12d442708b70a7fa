#pragma once

// In-graph sampling (llama.cpp's backend sampling, experimental there): the
// closed-form decoders of docs/math.md §1 built as ggml ops inside the
// model's compute graph, so that the logits never leave the device. On a
// CPU device the op is our CPU kernel itself (the host form, one custom
// op); elsewhere, or with LLAMA_SIMPLEX_GRAPH_FORM=portable, a graph of
// ggml element-wise ops (backend_sampling.cpp says more). The
// functions here are the backend_* members of our llama_sampler_i
// (samplers.cpp); a sampler without an in-graph form, a parameter the graph
// cannot reproduce exactly, or a backend lacking an op makes backend_init
// answer false, and llama.cpp then runs the sampler's CPU apply instead.
// Internal: not installed with the headers.

#include <cstdint>
#include <vector>

#include "llama.h"
#include "llama_simplex/llama_simplex.h"
#include "llama_simplex/rollout.h"
#include "llama_simplex/simplex.h"
#include "llama_simplex/samplers.h"

namespace llama_simplex {
namespace detail {

// What a decoder computes in-graph: one q over the candidates, with the
// parameters of its CPU kernel (simplex.h). Each sampler of ours fills one
// in SamplerBase::graph(). Top-p and min-p point at their sampler's C
// parameter struct (llama_simplex.h, from the table's lists) rather than
// copy its fields; the sampler outlives every use (graph_init / graph_apply).
struct GraphDecoder {
    enum class Kind { greedy, softmax, top_k, top_p, min_p, sparsemax, objective };
    Kind         kind = Kind::softmax;
    float        temperature = 1.0f;  // the decoder's (every kind but greedy and objective)
    int32_t      k = 0;               // top_k's
    const llama_simplex_top_p_params * top_p = nullptr;  // Kind::top_p
    const llama_simplex_min_p_params * min_p = nullptr;  // Kind::min_p
    const ObjectiveParams * objective = nullptr;
    // min_keep of top-p / min-p (0 for the other kinds).
    int32_t min_keep() const {
        return kind == Kind::top_p ? top_p->min_keep : kind == Kind::min_p ? min_p->min_keep : 0;
    }
};

// Throws std::invalid_argument when LLAMA_SIMPLEX_GRAPH_FORM (the in-graph
// form backend_init chooses: unset/"auto", or "portable") is set to anything
// else; backend_init itself can only refuse in-graph sampling then.
void check_graph_form();

// The llama_sampler_i backend members of our samplers.
bool graph_init(llama_sampler * smpl, ggml_backend_buffer_type_t buft, uint32_t n_outputs_max_per_seq);
void graph_apply(llama_sampler * smpl, ggml_context * ctx, ggml_cgraph * gf, llama_sampler_data * data);
void graph_set_input(llama_sampler * smpl);
void graph_reset(llama_sampler * smpl);
void graph_copy_state(const llama_sampler * src, llama_sampler * dst);

}  // namespace detail

// A context on like's model with the same shape (cells, batch sizes,
// threads; n_seq sequences, a unified cache when n_seq > 1) whose sequence i
// samples in-graph with chains[i] (llama_context_params.samplers; the
// chains must outlive the context). settings: like's (llama.h cannot read
// them back from a context, so the caller passes those it was made with).
ContextPtr make_backend_context(llama_context * like, const std::vector<llama_sampler *> & chains,
                                const ContextSettings & settings);

// A chain holding a clone of `sampler` (its seed and draw state included),
// as llama_context_params.samplers wants one; owned by the caller.
llama_sampler * backend_chain(const llama_sampler * sampler);

// The token output `idx` of the last decode selected, for a context that
// samples in-graph with `chain`: the in-graph draw when the chain ran whole
// in the graph, else llama.cpp's llama_sampler_sample over what the graph
// left. Accepts it into the chain. Throws std::runtime_error when q is not a
// distribution (its mass at the token is not finite and positive) or a
// sampler of ours failed on the CPU part.
llama_token sample_backend(llama_context * ctx, llama_sampler * chain, int32_t idx);

// What a sampler's in-graph form outputs for one row of logits, computed on
// ggml's CPU backend in a graph of its own (a clone of the sampler runs, in
// a chain: the caller's sampler is untouched). For tests and benchmarks:
// the same graph code runs inside a model's graph on any backend.
struct GraphOutput {
    bool                     in_graph = false;  // false: the sampler has no in-graph form for these parameters
    std::vector<float>       probs;             // q over the output candidates
    std::vector<llama_token> candidates;        // their ids (empty: ids 0..n-1)
    llama_token              sampled = LLAMA_TOKEN_NULL;
    int32_t                  pad_nodes = 0;     // GGML_OP_PAD nodes in the computed graph
};
// repeats > 1 computes the graph that many times (inputs set each time:
// new draws) and, with seconds given, writes the mean seconds of one
// computation (set_input and compute, not the build); n_threads > 0 sets the
// CPU backend's threads. padded_rows > 0 gives the sampler its row as
// llama.cpp's build_sampling does: `logits` holds padded_rows rows of n, the
// graph pads them with one zero row (ggml_pad) and the sampler gets row `row`
// of that padded copy (row == padded_rows: the dummy row).
GraphOutput run_graph(const llama_sampler * sampler, const float * logits, size_t n, int32_t repeats = 1,
                      double * seconds = nullptr, int32_t n_threads = 0, int32_t padded_rows = 0, int32_t row = 0);

// Mean seconds per token of the CPU path for one row of logits: the
// candidates filled from the logits (as the generate loop does) and the
// sampler applied.
double time_cpu_path(llama_sampler * sampler, const float * logits, size_t n, int32_t repeats);

}  // namespace llama_simplex
