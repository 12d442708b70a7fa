// Power sampling by sequential Monte Carlo [SMC] (Azizi et al., docs/math.md §6):
// N particles advance together, one token per step, on a unified KV cache (all
// of a step in one llama_decode). Particles holding the same tokens (copies after
// resampling, or equal draws) share one sequence and one decoded row: their
// next-token logits are the same, and each draws its own token from that row.
// Each draws from q_t = softmax(α_t·logits) and is weighted by
//   log w_t = (α_t − α_{t−1})·log p(y_1:t−1) + log Z_t,   Z_t = Σ_v p_t(v)^α_t,
// which depends on the prefix only, so the particles are resampled (systematic,
// when ESS < κN, checked every `block` steps) before the draw. Resampling is
// bookkeeping (a particle joins its ancestor's sequence); sequences split by
// seq_cp and are freed by seq_rm: no tensor is copied, the prompt is prefilled once.
// The output is one particle drawn ∝ its final weight (every weight is
// then for p(y)^α); `rounds` independent runs combine by their normaliser
// estimates. α = 1 is plain sampling (every weight 1, no resampling).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "llama.h"
#include "llama_simplex/llama_simplex_params.h"

namespace llama_simplex {

struct RolloutShape;

// The fields of its list (llama_simplex_params.h: alpha, particles N, ramp R,
// ess_threshold κ, block, rounds, and the chain member's n_ctx, rollout_seed and
// max_tokens, which smc_generate does not read), filled by the table.
struct SmcParams {
    LLAMA_SIMPLEX_ALL_FIELDS(LLAMA_SIMPLEX_SMC_PARAMS)
};

// One particle at the end of a run.
struct SmcParticle {
    std::vector<llama_token> tokens;   // the completion (an end-of-sequence token is not included)
    double                   loglik = 0.0;      // log p(y) at temperature 1, the end-of-sequence token's included
    double                   log_weight = 0.0;  // unnormalised, for p(y)^α
    bool                     stopped = false;   // ended at end-of-sequence (else at max_tokens)
    int32_t                  ancestor = 0;      // the first-step particle it descends from
};

struct SmcRound {
    std::vector<SmcParticle> particles;
    std::vector<double>      weights;     // normalised final weights
    double                   log_z = 0.0; // log of the normaliser estimate Ẑ
    std::vector<double>      ess;         // ESS at each check (before any resampling)
    int32_t                  resamples = 0;
    int32_t                  unique_ancestors = 0;
    std::vector<int32_t>     rows;        // rows decoded at each step: the distinct live sequences
};

struct SmcResult {
    std::vector<llama_token> tokens;  // the drawn completion
    bool                     stopped = false;
    int32_t                  round = 0, particle = 0;  // where it was drawn
    std::vector<SmcRound>    rounds;
    std::vector<double>      round_weights;  // normalised Ẑ_r
    int64_t                  decoded_tokens = 0;  // rows through llama_decode after the prompt (Σ rows)
    int64_t                  decode_calls = 0;
};

// ---- the maths, pure functions (docs/math.md §6) ----

// α_t for step t >= 1 (α_0 = 1): linear over the first `ramp` steps, α from then on.
double smc_alpha_at(double alpha, int32_t ramp, int32_t t);
// log Z = log Σ_v p(v)^a for p = softmax(logits), as log-sum-exp(a·logits) − a·log-sum-exp(logits);
// 0 exactly for a = 1. lse_p (out, optional): log-sum-exp(logits).
double smc_log_z(const float * logits, int32_t n, double a, double * lse_p = nullptr);
// The incremental log-weight of a particle with log-likelihood `loglik` so far:
// (a_t − a_prev)·loglik + log Z_t (live), (a_t − a_prev)·loglik (ended: log_z ignored).
double smc_incremental_log_weight(double a_t, double a_prev, double loglik, double log_z, bool ended);
// ESS = (Σ W)² / Σ W² of the weights exp(log_w); N exactly when all are equal.
double smc_ess(const std::vector<double> & log_w);
// Systematic resampling: with u in [0, 1), ancestor k is the particle whose cumulative normalised
// weight first exceeds (u + k)/N. Returns the N ancestors, non-decreasing.
std::vector<int32_t> smc_systematic_resample(const std::vector<double> & log_w, double u);
// Which sequence each slot takes after resampling: a particle with >= 1 offspring keeps its own
// slot for its first; further copies go to the slots of particles with none, which are never
// sources. Returns src (slot s holds a copy of particle src[s]; src[s] == s: unchanged).
std::vector<int32_t> smc_resample_slots(const std::vector<int32_t> & ancestors);
// log Ẑ of a run from its particles' final log-weights, when each resampling set every weight to
// the mean (so the mean is carried through): log mean exp(log_w).
double smc_log_normaliser(const std::vector<double> & log_w);

// ---- the engine ----

// The rollout context smc_generate needs: the prompt once and N particles of up to
// max_tokens tokens (their cells, shared until they differ): N sequences.
RolloutShape smc_context_shape(const SmcParams & params, int64_t n_prompt, int64_t max_tokens);
// Throws std::invalid_argument naming the parameter that is out of range (the table's check).
void check_smc_params(const SmcParams & params);

// Runs the particles on ctx (a unified KV cache with >= N sequences and the cells of
// smc_context_shape: refused before any work otherwise). Particles with the same tokens
// share one sequence and one decoded row per step (SmcRound::rows). The particles are
// left in sequences 0..N-1 of ctx. progress(step, resamples) is called after each step; false stops.
SmcResult smc_generate(llama_context * ctx, const std::vector<llama_token> & prompt, const SmcParams & params,
                       int32_t max_tokens, uint64_t seed, bool stop_at_eog,
                       const std::function<bool(int32_t, int32_t)> & progress = nullptr);

}  // namespace llama_simplex
