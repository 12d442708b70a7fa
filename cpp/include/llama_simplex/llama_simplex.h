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
 * true: by softmax(logits / temperature), as llama.cpp's temp -> top_p chain. */
struct llama_simplex_top_p_params     { float p; float temperature; bool order_by_temperature; struct llama_simplex_draw_params draw; };
struct llama_simplex_min_p_params     { float p_min; float temperature; struct llama_simplex_draw_params draw; };
struct llama_simplex_sparsemax_params { float temperature; struct llama_simplex_draw_params draw; };
/* Best-of-K: q* = argmax <q, logits/T> - lam KL(q || p) + lam beta U_K(q), `steps` mirror-ascent steps. */
struct llama_simplex_best_of_k_params {
    int32_t k_samples;   /* K, default 8 */
    float   beta;        /* default 0.01 */
    float   lam;         /* default 0.1 */
    int32_t steps;       /* J, default 5 */
    float   step_size;   /* default 1.0 */
    int32_t m;           /* coverage on the top-m tokens of p, default 8 */
    float   temperature; /* default 1.0 */
    struct llama_simplex_draw_params draw;
};

struct llama_simplex_softmax_params   llama_simplex_softmax_default_params(void);
struct llama_simplex_top_k_params     llama_simplex_top_k_default_params(void);
struct llama_simplex_top_p_params     llama_simplex_top_p_default_params(void);
struct llama_simplex_min_p_params     llama_simplex_min_p_default_params(void);
struct llama_simplex_sparsemax_params llama_simplex_sparsemax_default_params(void);
struct llama_simplex_best_of_k_params llama_simplex_best_of_k_default_params(void);

llama_simplex_status llama_simplex_greedy   (struct llama_sampler ** out);
llama_simplex_status llama_simplex_softmax  (const struct llama_simplex_softmax_params   * params, struct llama_sampler ** out);
llama_simplex_status llama_simplex_top_k    (const struct llama_simplex_top_k_params     * params, struct llama_sampler ** out);
llama_simplex_status llama_simplex_top_p    (const struct llama_simplex_top_p_params     * params, struct llama_sampler ** out);
llama_simplex_status llama_simplex_min_p    (const struct llama_simplex_min_p_params     * params, struct llama_sampler ** out);
llama_simplex_status llama_simplex_sparsemax(const struct llama_simplex_sparsemax_params * params, struct llama_sampler ** out);
llama_simplex_status llama_simplex_best_of_k(const struct llama_simplex_best_of_k_params * params, struct llama_sampler ** out);

/* Non-zero when the last apply of smpl (or of one of ours in a chain) failed:
 * NaN logits or no finite logit. The candidates are then left as given. */
int32_t llama_simplex_sampler_status(const struct llama_sampler * smpl);

#ifdef __cplusplus
}
#endif

#endif /* LLAMA_SIMPLEX_H */
