// The closed-form decoders as llama_sampler objects: each one can sit in any
// llama.cpp sampler chain (ours, llama-cpp-python's, llama-server's). Every
// constructor returns a sampler owned by the caller (or by the chain it is
// added to); parameters are validated by the callers (Python, the C API).
#pragma once

#include <cstdint>

#include "llama.h"
#include "llama_simplex/llama_simplex.h"
#include "llama_simplex/rollout.h"
#include "llama_simplex/simplex.h"
#include "llama_simplex/solver.h"

namespace llama_simplex {

struct PowerParams;

llama_sampler * make_greedy();
llama_sampler * make_softmax(float temperature);
llama_sampler * make_top_k(int32_t k, float temperature);
// From their C parameter structs (llama_simplex.h: the table's lists); min_keep:
// at least this many tokens stay in the support (llama.cpp's; 0 or 1: no effect).
llama_sampler * make_top_p(const llama_simplex_top_p_params & params);
llama_sampler * make_min_p(const llama_simplex_min_p_params & params);
llama_sampler * make_sparsemax(float temperature);
// Which closed-form decoder chooses the support of a composite objective.
enum class SupportKind : int { full = 0, top_k = 1, top_p = 2, min_p = 3 };

// A composite simplex objective (docs/math.md §3) as a sampler, from the objective's
// C struct (ObjectiveParams, solver.h); Best-of-K is the case kl = 1,
// entropy = l2 = 0, beta > 0 (docs/math.md §2).
llama_sampler * make_objective(const ObjectiveParams & params);
// The last solve of an objective sampler (steps, gap, status); false if smpl is not one.
bool last_solve(const llama_sampler * smpl, SolveResult & out);

// Token-level power sampling as a llama_sampler for any chain (PowerChain in
// power_chain.cpp; docs/math.md §4):
// it learns the sequence through accept() (prompt tokens included, as
// llama-server feeds them) and runs its rollouts in a context of its own on
// `model` (params.n_ctx cells, unified KV cache), reduced to the K candidates
// with p = the power-sampling weights. rollout_seed seeds the rollouts.
// max_tokens (0: none) is the output length limit: rollouts stop at it, as
// power_generate's do; without it every rollout runs the full horizon, so
// the law of the last H tokens is not π. Throws std::invalid_argument naming
// the parameter when the rollout context cannot be made (n_ctx below what
// the rollouts need, more memory than available, horizon beyond the model).
llama_sampler * make_power_chain_sampler(llama_model * model, const PowerParams & params);

struct SmcParams;
// Power-SMC for any chain (llama_simplex_smc): plans the completion with N particles in a
// context of its own (n_ctx cells) at its first apply, then emits it token by token.
// Throws std::invalid_argument naming the parameter when n_ctx cannot hold the particles.
llama_sampler * make_smc_chain_sampler(llama_model * model, uint32_t n_ctx, const SmcParams & params,
                                       uint32_t rollout_seed, int32_t max_tokens);

// Final draw from softmax(logit) of whatever the chain left; LLAMA_DEFAULT_SEED picks a random seed.
llama_sampler * make_dist(uint32_t seed);

// Makes one of our decoders also draw the token from the q it writes (seeded);
// false if smpl is not one of our decoders.
bool enable_draw(llama_sampler * smpl, uint32_t seed);

// Makes smpl select a token on every successful apply, with draws seeded by
// `seed` (LLAMA_DEFAULT_SEED: a random seed). One of ours draws from the q it
// writes (a dist of ours is reseeded). For a llama.cpp chain: every dist of
// ours in it is reseeded, then if its last member is ours (or a chain) that
// member draws, if it is one of llama.cpp's selecting samplers (dist, greedy,
// mirostat, ...) it is left alone, and otherwise a seeded dist of ours is
// appended. False if smpl is neither ours nor a chain.
bool ensure_draw(llama_sampler * smpl, uint32_t seed);

// Gives the samplers that make contexts of their own (power's and SMC's
// chain members; in a chain, every such member) the settings of the
// caller's context (ContextSettings, rollout.h), so that their rollouts see
// the caller's logits on the caller's threads; until then they use
// llama.cpp's defaults. Returns how
// many samplers took them.
int32_t set_context_settings(llama_sampler * smpl, const ContextSettings & settings);

// True when smpl was made by this library.
bool is_ours(const llama_sampler * smpl);

// The status of the last apply of smpl; for a chain, the first failure among
// its members that are ours. A failed apply leaves the candidates as given,
// except invalid_q (the kernel already rewrote them): then one candidate is
// left with p = 1. Either way `selected` is a valid index, so that llama.cpp
// never aborts; the status says not to use it.
Status last_status(const llama_sampler * smpl);

}  // namespace llama_simplex
