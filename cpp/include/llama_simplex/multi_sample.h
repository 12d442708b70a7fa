// k completions of one prompt as k parallel sequences that share the
// prompt's KV cells: one prefill, then one batched decode per step for all
// live sequences. Each sequence has its own sampler chain (its own seed).
#pragma once

#include <string>
#include <vector>

#include "llama.h"
#include "llama_simplex/rollout.h"

namespace llama_simplex {

struct SampleKOptions {
    int32_t                  max_tokens = 128;
    std::vector<std::string> stop;
    bool                     stop_at_eog = true;
    // Sample inside the model's compute graph: the k sequences decode in a
    // context of ctx's shape whose sequence i samples with a clone of
    // samplers[i] in-graph (backend_sampling.h); ctx itself is not used.
    bool                     backend_sampling = false;
    // backend_sampling: the settings ctx was made with (llama.h cannot read
    // them back), so that the own context computes ctx's logits.
    ContextSettings          settings;
};

struct SampleKResult {
    std::vector<std::vector<llama_token>> tokens;
    std::vector<std::string>              texts;   // raw bytes; stop strings cut
    std::vector<double>                   loglik;  // sum of log p(token) under the model at temperature 1
    std::vector<std::string>              finish;  // "stop" or "length"
};

// ctx must have a unified KV cache with at least samplers.size() sequences
// and room for prompt + k * max_tokens cells (make_rollout_context). The
// samplers are borrowed; each must select a token (end with a draw).
SampleKResult sample_k(llama_context * ctx, const std::vector<llama_token> & prompt,
                       const std::vector<llama_sampler *> & samplers, const SampleKOptions & options);

// Cuts text at the first stop string found at or after byte `from`; true if cut.
bool cut_at_stop(std::string & text, size_t from, const std::vector<std::string> & stops);

}  // namespace llama_simplex
