// The MCMC baseline of power sampling [MCMC] (Karan & Du, docs/math.md §4):
// generate in stages; extend each stage from the low-temperature proposal
// q = softmax(α·logits), then run Metropolis-Hastings steps that resample the
// suffix after a random position from q and accept with probability
//   min(1, exp[α (log p(x') - log p(x)) + log q(x) - log q(x')]).
// The current sequence lives in sequence 0 of a unified KV cache; a proposal
// shares its prefix's cells (sequence 1) and replaces it when accepted.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "llama.h"
#include "llama_simplex/llama_simplex_params.h"

namespace llama_simplex {

// The output is generated in `stages` stages (T / stages tokens each), each
// followed by `steps` Metropolis-Hastings steps (N_MCMC); the fields are its
// list's (llama_simplex_params.h).
struct McmcParams {
    LLAMA_SIMPLEX_ALL_FIELDS(LLAMA_SIMPLEX_MCMC_PARAMS)
};

struct McmcStats {
    int64_t proposals = 0;
    int64_t accepted = 0;
    int64_t decoded_tokens = 0;
};

struct RolloutShape;

// The context mcmc_power_generate needs: the current sequence and a
// proposal (2 sequences), prompt + 2 x max_tokens cells.
RolloutShape mcmc_context_shape(int64_t n_prompt, int64_t max_tokens);

std::vector<llama_token> mcmc_power_generate(llama_context * ctx, const std::vector<llama_token> & prompt,
                                             const McmcParams & params, int32_t max_tokens, uint64_t seed,
                                             bool stop_at_eog, McmcStats & stats,
                                             const std::function<bool(int32_t, const McmcStats &)> & progress);

}  // namespace llama_simplex
