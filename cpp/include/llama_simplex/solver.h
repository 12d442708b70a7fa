// The composite simplex objective (docs/math.md §2-3) and its mirror-ascent solver,
// as a pure function over arrays:
//
//   max_q  <q, s> - λ [a_ent Σ q log q + a_kl KL(q ‖ r) + a_l2 ½‖q‖²] + λβ U_K(q)
//   U_K(q) = Σ_v w_v [1 - (1 - q_v)^K]
//
// over the candidates given (the support). Closed form when only entropy/KL
// terms are present; otherwise entropy-mirror ascent from q0 = r:
//   q <- normalise(q ⊙ exp(step · (g - max g))),  stop when max g - <q, g> < tol;
// a step that would lower the objective is halved (and counts as a step), so
// the iterates ascend monotonically whatever the curvature of the coverage term.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "llama_simplex/llama_simplex.h"

namespace llama_simplex {

// The objective's weights (lam, entropy, kl, l2, beta, k_samples) and the
// solver's budget (steps, step_size, tol) are the objective sampler's
// parameters: its C struct (llama_simplex_params.h), whose other fields (the
// support, temperatures, coverage weights) the sampler uses around the solve.
using ObjectiveParams = llama_simplex_objective_params;

enum class SolveStatus : int {
    closed_form = 0,  // exact, no iteration needed
    converged   = 1,  // gap < tol within the step budget
    budget      = 2,  // stopped after max_steps
    fallback    = 3,  // a non-finite value appeared: q is the reference r
};

struct SolveResult {
    SolveStatus status;
    int32_t     steps;
    double      gap;  // max g - <q, g> at the returned q (0 for closed forms)
};

struct SolverWorkspace {
    std::vector<float>   theta, g, trial;
    std::vector<double>  dbl;
    std::vector<int32_t> covered;  // indices with w > 0
};

// n candidates: scores s, reference log-probabilities log_r (normalised over
// the candidates, -inf allowed), coverage weights w (>= 0; may be null when
// beta = 0). Writes q (n floats, on the simplex) and, if log_q is not null,
// log q. Parameters must be valid (lam >= 0, weights >= 0, k_samples >= 1,
// step_size > 0, steps >= 0).
SolveResult solve_simplex(const float * s, const float * log_r, const float * w, size_t n,
                          const ObjectiveParams & objective,
                          float * q, float * log_q, SolverWorkspace & ws);

// The same problem when no ½‖q‖² term is present and the scores and the
// reference are affine in one array x: s = x * s_mul, log r = x * r_mul - log
// Σ exp(x * r_mul), with the coverage weights w_cov on the first n_cov
// candidates only. Then every uncovered token's iterate is α x + κ for two
// shared scalars, so a step costs one exp pass over x instead of several
// passes per array, with the same iterates as solve_simplex in exact
// arithmetic. Writes q and log q for all n candidates, entry i at
// q[i * stride] (stride 3 writes straight into llama_token_data's p and logit).
// Computed in shifted coordinates (x - max x) with double scalars, so any
// float parameters (subnormal or huge temperatures, lam, weights) give a
// finite q on the simplex; s_mul and r_mul are doubles for that reason.
SolveResult solve_simplex_affine(const float * x, size_t n, const float * w_cov, size_t n_cov, double s_mul, double r_mul,
                                 const ObjectiveParams & objective, float * q, float * log_q,
                                 size_t stride, SolverWorkspace & ws);

// The objective's gradient at q (n floats), for checks and tests.
void simplex_gradient(const float * s, const float * log_r, const float * w, size_t n,
                      const ObjectiveParams & objective, const float * q, float * g);

// How the coverage weights w are made from the reference distribution r.
// All three are zero outside the M most likely tokens of r (ties: lower
// index), so the coverage term costs O(M) per step.
enum class CoverageWeights : int {
    top_m = 0,  // 1 on the top M
    rank  = 1,  // 1 / (1 + rank) on the top M: rank-softened
    gap   = 2,  // r_v / max r = exp(-(logit gap)) on the top M
};

// The weight of the token of the given rank (0 = most likely) whose log r is
// log_r_gap below the best one's.
float coverage_weight(CoverageWeights kind, size_t rank, float log_r_gap);

// Fills w for candidates whose reference log-probabilities are log_r.
void coverage_weights(const float * log_r, size_t n, CoverageWeights kind, int32_t m, float * w,
                      std::vector<int32_t> & scratch);

}  // namespace llama_simplex
