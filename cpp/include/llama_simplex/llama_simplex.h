/* llama-simplex C API: the samplers as llama_sampler objects for any program
 * built on llama.cpp. Each constructor takes a parameter struct (start from
 * its *_default_params()), checks it, and on success stores a new sampler in
 * *out (owned by the caller, or by the llama.cpp chain it is added to).
 * Nothing aborts: a bad parameter returns a status, and
 * llama_simplex_last_error() says which parameter and its allowed range. */
#ifndef LLAMA_SIMPLEX_H
#define LLAMA_SIMPLEX_H

#include <stdbool.h>
#include <stdint.h>

#include "llama.h"
#include "llama_simplex/llama_simplex_params.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LLAMA_SIMPLEX_VERSION_MAJOR 0
#define LLAMA_SIMPLEX_VERSION_MINOR 1
#define LLAMA_SIMPLEX_VERSION_PATCH 0

typedef enum llama_simplex_status {
    LLAMA_SIMPLEX_OK                = 0,
    LLAMA_SIMPLEX_INVALID_ARGUMENT  = 1, /* a parameter is out of range: see llama_simplex_last_error() */
    LLAMA_SIMPLEX_NULL_ARGUMENT     = 2, /* a required pointer is NULL */
    LLAMA_SIMPLEX_FAILED            = 3, /* anything else (allocation) */
} llama_simplex_status;

/* "0.1.0" */
const char * llama_simplex_version(void);
/* The message of the last failed call on this thread ("" if none). */
const char * llama_simplex_last_error(void);
const char * llama_simplex_status_string(llama_simplex_status status);

/* Every decoder but greedy writes q = its distribution (p, and logit = log q)
 * over the candidates it keeps. With draw = true it also selects the token
 * from q with a seeded generator (what a dist sampler after it would do). */
struct llama_simplex_draw_params {
    bool     draw; /* default false */
    uint32_t seed; /* default 0; LLAMA_DEFAULT_SEED picks a random one */
};

/* The parameter structs, defined from the one list of each sampler's
 * parameters in llama_simplex_params.h (their fields, in order, with each
 * one's default, range and meaning), then `draw`. For example
 *   struct llama_simplex_top_k_params { int32_t k; float temperature; struct llama_simplex_draw_params draw; };
 * (LLAMA_SIMPLEX_STRUCT_FIELDS); a C program can expand a list with macros
 * of its own as well (F, X and S as there). */
#define LLAMA_SIMPLEX_PARAMS_STRUCT_(sampler, LIST) \
    struct llama_simplex_##sampler##_params { \
        LLAMA_SIMPLEX_STRUCT_FIELDS(LIST) \
        struct llama_simplex_draw_params draw; \
    }

LLAMA_SIMPLEX_PARAMS_STRUCT_(softmax,   LLAMA_SIMPLEX_SOFTMAX_PARAMS);
LLAMA_SIMPLEX_PARAMS_STRUCT_(top_k,     LLAMA_SIMPLEX_TOP_K_PARAMS);
LLAMA_SIMPLEX_PARAMS_STRUCT_(top_p,     LLAMA_SIMPLEX_TOP_P_PARAMS);
LLAMA_SIMPLEX_PARAMS_STRUCT_(min_p,     LLAMA_SIMPLEX_MIN_P_PARAMS);
LLAMA_SIMPLEX_PARAMS_STRUCT_(sparsemax, LLAMA_SIMPLEX_SPARSEMAX_PARAMS);
LLAMA_SIMPLEX_PARAMS_STRUCT_(best_of_k, LLAMA_SIMPLEX_BEST_OF_K_PARAMS);
LLAMA_SIMPLEX_PARAMS_STRUCT_(objective, LLAMA_SIMPLEX_OBJECTIVE_PARAMS);
/* power's model and rollout context: see llama_simplex_params.h */
LLAMA_SIMPLEX_PARAMS_STRUCT_(power,     LLAMA_SIMPLEX_POWER_PARAMS);
/* smc's model and context: see llama_simplex_params.h */
LLAMA_SIMPLEX_PARAMS_STRUCT_(smc,       LLAMA_SIMPLEX_SMC_PARAMS);

struct llama_simplex_softmax_params   llama_simplex_softmax_default_params(void);
struct llama_simplex_top_k_params     llama_simplex_top_k_default_params(void);
struct llama_simplex_top_p_params     llama_simplex_top_p_default_params(void);
struct llama_simplex_min_p_params     llama_simplex_min_p_default_params(void);
struct llama_simplex_sparsemax_params llama_simplex_sparsemax_default_params(void);
struct llama_simplex_best_of_k_params llama_simplex_best_of_k_default_params(void);
struct llama_simplex_objective_params llama_simplex_objective_default_params(void);
struct llama_simplex_power_params     llama_simplex_power_default_params(void);
struct llama_simplex_smc_params       llama_simplex_smc_default_params(void);

llama_simplex_status llama_simplex_greedy   (struct llama_sampler ** out);
llama_simplex_status llama_simplex_softmax  (const struct llama_simplex_softmax_params   * params, struct llama_sampler ** out);
llama_simplex_status llama_simplex_top_k    (const struct llama_simplex_top_k_params     * params, struct llama_sampler ** out);
llama_simplex_status llama_simplex_top_p    (const struct llama_simplex_top_p_params     * params, struct llama_sampler ** out);
llama_simplex_status llama_simplex_min_p    (const struct llama_simplex_min_p_params     * params, struct llama_sampler ** out);
llama_simplex_status llama_simplex_sparsemax(const struct llama_simplex_sparsemax_params * params, struct llama_sampler ** out);
llama_simplex_status llama_simplex_best_of_k(const struct llama_simplex_best_of_k_params * params, struct llama_sampler ** out);
llama_simplex_status llama_simplex_objective(const struct llama_simplex_objective_params * params, struct llama_sampler ** out);
llama_simplex_status llama_simplex_power    (const struct llama_simplex_power_params     * params,
                                             struct llama_model * model, struct llama_sampler ** out);
llama_simplex_status llama_simplex_smc      (const struct llama_simplex_smc_params       * params,
                                             struct llama_model * model, struct llama_sampler ** out);

/* Non-zero when the last apply of smpl (or of one of ours in a chain) failed:
 * 1 a NaN logit, 2 no finite logit, 3 no history (power sampling was fed no
 * prompt through accept()), 4 the rollouts failed (their context is too small
 * for the sequence), 5 the q the sampler computed is not a distribution (a
 * non-finite value or no positive mass: parameters degenerate for these
 * logits), 6 a logit is +inf (and none is NaN). The candidates are then left
 * as given (for 5: one candidate with p = 1), with a valid `selected` so
 * llama.cpp never aborts: after a non-zero status, do not use the token. */
int32_t llama_simplex_sampler_status(const struct llama_sampler * smpl);
/* What a status of llama_simplex_sampler_status() means ("ok" for 0). */
const char * llama_simplex_sampler_status_string(int32_t status);

/* Makes smpl select a token on every apply, with draws seeded by `seed`
 * (LLAMA_DEFAULT_SEED: a random one), so that llama_sampler_sample() always
 * has a token. A sampler of ours draws from the q it writes. A llama.cpp
 * chain: every dist of ours in it takes `seed`; then if its last member is
 * ours, that member draws; if it is one of llama.cpp's selecting samplers
 * (dist, greedy, mirostat, mirostat-v2, adaptive-p) it is left as it is;
 * otherwise a seeded dist of ours is appended to the chain (which owns it).
 * INVALID_ARGUMENT for any other sampler. */
llama_simplex_status llama_simplex_ensure_draw(struct llama_sampler * smpl, uint32_t seed);

/* The contexts smpl makes for itself (power's rollouts, SMC's particles; in a
 * llama.cpp chain, those of every such member) compute the logits a context
 * made with `params` computes, on its threads: its flash attention, K/V cache
 * types, RoPE/YaRN scaling, offload_kqv, op_offload, n_threads and
 * n_threads_batch are taken (the sampler keeps its own cells, batch sizes and
 * sequences). Pass the llama_context_params your
 * context was made with; without this call the sampler uses
 * llama_context_default_params()'s (llama.h cannot read them back from a
 * context). *n_taken (may be NULL): how many samplers took them (0 for a
 * sampler that makes no context). */
llama_simplex_status llama_simplex_set_context_params(struct llama_sampler * smpl,
                                                      const struct llama_context_params * params, int32_t * n_taken);

#ifdef __cplusplus
}
#endif

#endif /* LLAMA_SIMPLEX_H */
