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

/* The most solver steps an objective or Best-of-K sampler may take per token:
 * each step costs O(vocabulary) (with an l2 term, a sort). */
#define LLAMA_SIMPLEX_MAX_STEPS 1000

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

struct llama_simplex_softmax_params   { float temperature; struct llama_simplex_draw_params draw; };
struct llama_simplex_top_k_params     { int32_t k; float temperature; struct llama_simplex_draw_params draw; };
/* order_by_temperature = false: the nucleus is chosen by softmax(logits) (the paper);
 * true: by softmax(logits / temperature), as llama.cpp's temp -> top_p chain.
 * p and p_min are doubles: the nucleus boundary and the min-p threshold are
 * decided in double precision (a float 0.3 is above 3 tenths).
 * Every temperature > 0, down to the smallest subnormal float, gives the
 * distribution at that temperature (computed in shifted coordinates: it
 * tends to the argmax, with equal mass on exactly tied maxima); 0 is greedy. */
/* min_keep: at least this many tokens stay in the support, as llama.cpp's (default 0). */
struct llama_simplex_top_p_params     { double p; float temperature; bool order_by_temperature; int32_t min_keep; struct llama_simplex_draw_params draw; };
struct llama_simplex_min_p_params     { double p_min; float temperature; int32_t min_keep; struct llama_simplex_draw_params draw; };
struct llama_simplex_sparsemax_params { float temperature; struct llama_simplex_draw_params draw; };
/* Best-of-K: q* = argmax <q, logits/T> - lam KL(q || p) + lam beta U_K(q), `steps` mirror-ascent steps. */
struct llama_simplex_best_of_k_params {
    int32_t k_samples;   /* K, default 8 */
    float   beta;        /* default 0.01 */
    float   lam;         /* default 0.1 */
    int32_t steps;       /* J, default 5, at most LLAMA_SIMPLEX_MAX_STEPS */
    float   step_size;   /* default 1.0 */
    int32_t m;           /* coverage on the top-m tokens of p, default 8 */
    float   temperature; /* default 1.0 */
    struct llama_simplex_draw_params draw;
};

/* Any decoder written as an objective (see the Python Objective):
 *   max_q <q, logits/T> - lam [entropy Σ q log q + kl KL(q || softmax(logits/T_ref)) + l2 ½|q|²] + lam beta U_K(q)
 * on a support: 0 full, 1 top-k (support_value = k), 2 top-p (p), 3 min-p (p_min).
 * weights of the coverage term on the top-m tokens: 0 uniform, 1 rank 1/(1+r), 2 gap r/max r. */
struct llama_simplex_objective_params {
    float   lam, entropy, kl, l2, beta;      /* defaults 1, 0, 1, 0, 0 */
    int32_t k_samples;                       /* 8 */
    int32_t weights;                         /* 0 */
    int32_t m;                               /* 8 */
    int32_t support;                         /* 0 */
    double  support_value;                   /* 0 (a double: see top_p) */
    float   temperature, reference_temperature; /* 1, 1 */
    int32_t steps;                           /* 5, at most LLAMA_SIMPLEX_MAX_STEPS */
    float   step_size, tol;                  /* 1, 1e-6 */
    struct llama_simplex_draw_params draw;
};
/* Token-level power sampling for any chain: learns the sequence through
 * accept() (feed it the prompt), rolls out in a context of its own (n_ctx
 * cells) on `model`; reduces the candidates to the K best with p = the
 * power-sampling weights. With max_tokens > 0 (the output's length limit,
 * counted from the first apply) its rollouts stop where the output must, so
 * the law of the last tokens is π's; with 0 (no limit known) they run the
 * full horizon H at every token, and the last H tokens of an output that ends
 * at a length limit are not exactly π's. */
struct llama_simplex_power_params {
    float   alpha;      /* 4 */
    int32_t candidates; /* K, 8 */
    int32_t rollouts;   /* M, 8 */
    int32_t horizon;    /* H, 64 */
    bool    jackknife;  /* true */
    uint32_t n_ctx;     /* 8192; at least what K, M, H need (checked: INVALID_ARGUMENT) */
    uint32_t rollout_seed; /* 0 */
    int32_t max_tokens; /* 0: no limit known; else the output length limit (rollouts stop there) */
    struct llama_simplex_draw_params draw;
};

/* Power sampling by sequential Monte Carlo (docs/math.md §5) for any chain:
 * at its first apply it runs N particles after the prompt (learnt through
 * accept(): feed it the prompt) in a context of its own (n_ctx cells) on
 * `model`, up to max_tokens tokens, draws one completion ∝ its weight, then
 * emits it token by token (the one candidate left, p = 1), and end-of-sequence
 * after it. If the chain accepts another token than the planned one, it plans
 * again from there. */
struct llama_simplex_smc_params {
    float    alpha;          /* 4 */
    int32_t  particles;      /* N, 8 (at most 256, llama.cpp's sequences) */
    int32_t  ramp;           /* R, 0: the exponent rises linearly from 1 to alpha over R tokens */
    double   ess_threshold;  /* kappa, 0.5: resample when ESS < kappa N */
    int32_t  block;          /* 1: tokens between ESS checks */
    int32_t  rounds;         /* 1: independent runs, combined by their normaliser estimates */
    uint32_t n_ctx;          /* 8192; at least prompt + N x max_tokens + 1 (checked at construction for a one-token prompt) */
    uint32_t rollout_seed;   /* 0 */
    int32_t  max_tokens;     /* 256: the completion's length limit */
    struct llama_simplex_draw_params draw;
};

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

#ifdef __cplusplus
}
#endif

#endif /* LLAMA_SIMPLEX_H */
