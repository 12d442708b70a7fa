/* llama-simplex: every sampler's parameters, declared once (issue 11).
 *
 * Each sampler has one list, LLAMA_SIMPLEX_<SAMPLER>_PARAMS(F, X, S), one entry
 * a parameter, in the order of its C struct. Everything else is expanded from
 * it: llama_simplex.h defines the C parameter structs from the lists (the F and
 * S entries become the fields, in order), and the sampler table (specs.cpp)
 * builds from the same lists each parameter's name, type, default, range,
 * surfaces and doc, which give *_default_params(), the C API's one check and
 * its messages, llama-server's JSON reader, the Python classes and the CLI.
 * Adding a parameter is adding one entry here (plus its test): see
 * docs/adding_a_parameter.md and tests/test_one_definition.py.
 *
 * An entry is one of:
 *   F(ctype, field, name, default, domain, surfaces, doc, note)
 *       a field `ctype field;` of the sampler's C struct; `name` is the
 *       parameter's name on every other surface (the field's, but for top_p's
 *       order_by_temperature, which is `order`).
 *   X(ctype, name, default, domain, surfaces, doc, note)
 *       a parameter that is not in the public C struct (a sequence sampler's,
 *       or one only Python / llama-server take); ctype says its type. The
 *       library's run structs (LLAMA_SIMPLEX_ALL_FIELDS) hold it too.
 *   S(field, surfaces, doc)
 *       the support of an objective: two fields, `int32_t field;` (0 full,
 *       1 top-k, 2 top-p, 3 min-p) and `double field_value;` (k, p or p_min);
 *       elsewhere one text, 'full', 'top-k:K', 'top-p:P' or 'min-p:P'.
 * default: the value *_default_params() writes (a choice: its index).
 * domain: IN(lo, hi) [lo, hi]; GE(lo) >= lo; GT(lo) > lo; CHOICES("a", "b", ...)
 *   a name out of these (the field holds its index, or for two a bool);
 *   SUPPORT the support text. Reals must also be finite.
 * surfaces: C (the C struct), SV (llama-server's sampler_params), PY (the
 *   Python class), ALL (the three), KN (a keyword of llama_simplex.kernels.solve
 *   and gradient: the solver's parameters), or'ed.
 * note: what a special value means (quoted in range errors), or "".
 * IN, GE, GT, CHOICES, SUPPORT and the surface names have a meaning only where
 * the table expands the lists: a C program that expands a list itself should
 * use only the ctype, field and name arguments (see llama_simplex.h). */
#ifndef LLAMA_SIMPLEX_PARAMS_H
#define LLAMA_SIMPLEX_PARAMS_H

#include <stdbool.h>
#include <stdint.h>

/* The most solver steps an objective or Best-of-K sampler may take per token:
 * each step costs O(vocabulary) (with an l2 term, a sort). */
#define LLAMA_SIMPLEX_MAX_STEPS 1000

/* A list's fields, as a struct body: F entries become `ctype field;`, S
 * entries their two fields, X entries nothing. llama_simplex.h defines the C
 * structs with it; the library's own structs of the sequence samplers too. */
#define LLAMA_SIMPLEX_FIELD_(ctype, field, ...) ctype field;
#define LLAMA_SIMPLEX_NO_FIELD_(...)
#define LLAMA_SIMPLEX_SUPPORT_FIELDS_(field, ...) int32_t field; double field##_value;
#define LLAMA_SIMPLEX_STRUCT_FIELDS(LIST) LIST(LLAMA_SIMPLEX_FIELD_, LLAMA_SIMPLEX_NO_FIELD_, LLAMA_SIMPLEX_SUPPORT_FIELDS_)
/* Every entry as a field, X entries too (`ctype name;`): the structs the
 * library's sequence samplers run from (power.h, mcmc.h). */
#define LLAMA_SIMPLEX_X_FIELD_(ctype, name, ...) ctype name;
#define LLAMA_SIMPLEX_ALL_FIELDS(LIST) LIST(LLAMA_SIMPLEX_FIELD_, LLAMA_SIMPLEX_X_FIELD_, LLAMA_SIMPLEX_SUPPORT_FIELDS_)

/* Shared entries: the same parameter of several samplers is written once. */
#define LLAMA_SIMPLEX_TEMPERATURE_(F) \
    F(float, temperature, temperature, 1.0, GE(0), ALL, "divides the logits (0: greedy)", "")
#define LLAMA_SIMPLEX_MIN_KEEP_(F) \
    F(int32_t, min_keep, min_keep, 0, IN(0, INT32_MAX), ALL, "at least this many tokens stay in the support, as llama.cpp's", "")
/* alpha of the power samplers: a float in every C struct, so that every surface rounds it alike. */
#define LLAMA_SIMPLEX_ALPHA_DOC_ "the power: pi(x) ~ p(x)^alpha (1: ordinary sampling)"
#define LLAMA_SIMPLEX_ALPHA_(F, surfaces) F(float, alpha, alpha, 4.0, GT(0), surfaces, LLAMA_SIMPLEX_ALPHA_DOC_, "")
#define LLAMA_SIMPLEX_ALPHA_X_(X, surfaces) X(float, alpha, 4.0, GT(0), surfaces, LLAMA_SIMPLEX_ALPHA_DOC_, "")
#define LLAMA_SIMPLEX_COVERAGE_WEIGHTS_ CHOICES("top-m", "rank", "gap")

/* q = softmax(logits / temperature) */
#define LLAMA_SIMPLEX_SOFTMAX_PARAMS(F, X, S) \
    LLAMA_SIMPLEX_TEMPERATURE_(F)

/* softmax(logits / temperature) over the k highest logits (lower id wins ties) */
#define LLAMA_SIMPLEX_TOP_K_PARAMS(F, X, S) \
    F(int32_t, k, k, 40, IN(0, INT32_MAX), ALL, "how many of the highest logits are kept", "0 keeps every token") \
    LLAMA_SIMPLEX_TEMPERATURE_(F)

/* softmax(logits / temperature) over the smallest set of tokens whose mass reaches p.
 * p and p_min are doubles: the nucleus boundary and the min-p threshold are
 * decided in double precision (a float 0.3 is above 3 tenths).
 * Every temperature > 0, down to the smallest subnormal float, gives the
 * distribution at that temperature (computed in shifted coordinates: it
 * tends to the argmax, with equal mass on exactly tied maxima); 0 is greedy. */
#define LLAMA_SIMPLEX_TOP_P_PARAMS(F, X, S) \
    F(double, p, p, 0.9, IN(0, 1), ALL, "the nucleus mass (a double)", "") \
    LLAMA_SIMPLEX_TEMPERATURE_(F) \
    F(bool, order_by_temperature, order, 0, CHOICES("model", "temperature"), ALL, \
      "the nucleus is chosen by softmax(logits) ('model', the paper) " \
      "or softmax(logits / temperature) (llama.cpp's temp -> top_p)", "") \
    LLAMA_SIMPLEX_MIN_KEEP_(F)

/* softmax(logits / temperature) over {v : p(v) >= p_min max p}, p = softmax(logits) */
#define LLAMA_SIMPLEX_MIN_P_PARAMS(F, X, S) \
    F(double, p_min, p_min, 0.05, IN(0, 1), ALL, "the threshold relative to the top probability (a double)", "") \
    LLAMA_SIMPLEX_TEMPERATURE_(F) \
    LLAMA_SIMPLEX_MIN_KEEP_(F)

/* Euclidean projection of logits / temperature onto the simplex (exact zeros) */
#define LLAMA_SIMPLEX_SPARSEMAX_PARAMS(F, X, S) \
    LLAMA_SIMPLEX_TEMPERATURE_(F)

/* Best-of-K: q* = argmax <q, logits/T> - lam KL(q || p) + lam beta U_K(q), `steps`
 * mirror-ascent steps. Its C struct has no weights / support / tol (the C API
 * keeps the objective's defaults for them); llama-server and Python take them. */
#define LLAMA_SIMPLEX_BEST_OF_K_PARAMS(F, X, S) \
    F(int32_t, k_samples, k_samples, 8, IN(1, INT32_MAX), ALL, "K, the number of draws the coverage term counts", "") \
    F(float, beta, beta, 0.01, GE(0), ALL, "weight of the coverage term U_K", "") \
    F(float, lam, lam, 0.1, GE(0), ALL, "lambda, weight of the KL anchor (a temperature)", "") \
    F(int32_t, steps, steps, 5, IN(0, LLAMA_SIMPLEX_MAX_STEPS), ALL, "J, mirror-ascent steps per token", "") \
    F(float, step_size, step_size, 1.0, GT(0), ALL, "the mirror-ascent step size", "") \
    X(int32_t, weights, 0, LLAMA_SIMPLEX_COVERAGE_WEIGHTS_, PY | SV, \
      "coverage weights on the top-m tokens of p: 1, 1/(1+rank) or p/max p", "") \
    F(int32_t, m, m, 8, IN(1, INT32_MAX), ALL, "the coverage term covers the top-m tokens of p", "") \
    X(int32_t, support, 0, SUPPORT, PY | SV, \
      "the tokens q may use, chosen by softmax(logits): all, or a top-k / top-p / min-p set", "") \
    F(float, temperature, temperature, 1.0, GT(0), ALL, "s = logits / temperature (p stays at temperature 1)", "") \
    X(float, tol, 1e-6, GE(0), PY | SV, "stop when the optimality gap is below tol", "")

/* Any decoder written as an objective (see the Python Objective):
 *   max_q <q, logits/T> - lam [entropy sum q log q + kl KL(q || softmax(logits/T_ref)) + l2 |q|^2/2] + lam beta U_K(q)
 * on a support; weights of the coverage term on the top-m tokens: 0 uniform,
 * 1 rank 1/(1+r), 2 gap r/max r. */
#define LLAMA_SIMPLEX_OBJECTIVE_PARAMS(F, X, S) \
    F(float, lam, lam, 1.0, GE(0), ALL | KN, "lambda, weight of the regularisers (a temperature)", "") \
    F(float, entropy, entropy, 0.0, GE(0), ALL | KN, "weight of the negative entropy", "") \
    F(float, kl, kl, 1.0, GE(0), ALL | KN, "weight of KL(q || r), r = softmax(logits / reference_temperature)", "") \
    F(float, l2, l2, 0.0, GE(0), ALL | KN, "weight of |q|^2 / 2", "") \
    F(float, beta, beta, 0.0, GE(0), ALL | KN, "weight of the coverage term U_K", "") \
    F(int32_t, k_samples, k_samples, 8, IN(1, INT32_MAX), ALL | KN, "K, the number of draws the coverage term counts", "") \
    F(int32_t, weights, weights, 0, LLAMA_SIMPLEX_COVERAGE_WEIGHTS_, ALL, \
      "coverage weights on the top-m tokens of r: 1, 1/(1+rank) or r/max r", "") \
    F(int32_t, m, m, 8, IN(1, INT32_MAX), ALL, "the coverage term covers the top-m tokens of r", "") \
    S(support, ALL, "the tokens q may use, chosen by softmax(logits): all, or a top-k / top-p / min-p set") \
    F(float, temperature, temperature, 1.0, GT(0), ALL, "s = logits / temperature", "") \
    F(float, reference_temperature, reference_temperature, 1.0, GT(0), ALL, \
      "r = softmax(logits / reference_temperature)", "") \
    F(int32_t, steps, steps, 5, IN(0, LLAMA_SIMPLEX_MAX_STEPS), ALL, "mirror-ascent steps per token", "") \
    F(float, step_size, step_size, 1.0, GT(0), ALL | KN, "the mirror-ascent step size", "") \
    F(float, tol, tol, 1e-6, GE(0), ALL | KN, "stop when the optimality gap is below tol", "")

/* Token-level power sampling for any chain (Algorithm 1 of [POWER]): learns the
 * sequence through accept() (feed it the prompt), rolls out in a context of
 * its own (n_ctx cells) on `model`; reduces the candidates to the K best with
 * p = the power-sampling weights. With max_tokens > 0 (the output's length
 * limit, counted from the first apply) its rollouts stop where the output
 * must, so the law of the last tokens is pi's; with 0 (no limit known) they
 * run the full horizon H at every token, and the last H tokens of an output
 * that ends at a length limit are not exactly pi's. n_ctx must hold at least
 * what K, M, H need (checked: INVALID_ARGUMENT); the default 8192 holds the
 * paper preset's 4,169 cells of rollouts and the sequence. */
#define LLAMA_SIMPLEX_POWER_PARAMS(F, X, S) \
    LLAMA_SIMPLEX_ALPHA_(F, ALL) \
    F(int32_t, candidates, candidates, 8, IN(1, 255), ALL, "K, the most likely tokens weighed at each step", "") \
    F(int32_t, rollouts, rollouts, 8, IN(1, 255), ALL, "M, rollouts per candidate", "") \
    F(int32_t, horizon, horizon, 64, IN(0, 100000), ALL, "H, the rollout length cap", "") \
    F(bool, jackknife, jackknife, 1, IN(0, 1), ALL, "bias-corrected weights (needs M >= 2)", "") \
    X(bool, low_temperature_last, 1, IN(0, 1), PY, \
      "rollouts end at max_tokens as pi's sequences do (False: benchmarks only)", "") \
    F(uint32_t, n_ctx, n_ctx, 8192, IN(64, UINT32_MAX), C | SV, "cells of the sampler's own rollout context", "") \
    F(uint32_t, rollout_seed, rollout_seed, 0, IN(0, UINT32_MAX), C | SV, \
      "seeds the rollouts (llama-server: the request's seed)", "") \
    F(int32_t, max_tokens, max_tokens, 0, IN(0, INT32_MAX), C | SV, "the output's length limit: rollouts stop there", \
      "0: no limit")

/* Block-level power sampling (Algorithm 2 of [POWER]), through Python's
 * generate() only (no C struct or constructor yet: X entries; the library's
 * BlockParams, power.h, holds them). One prefix sequence, then samples
 * (or tail_samples) + rollouts sequences share llama.cpp's 256: rollouts <= 254
 * because samples >= 1 (the joint limit is checked too). */
#define LLAMA_SIMPLEX_BLOCK_POWER_PARAMS(F, X, S) \
    LLAMA_SIMPLEX_ALPHA_X_(X, PY) \
    X(int32_t, block, 192, IN(1, 100000), PY, "B, tokens per block", "") \
    X(int32_t, samples, 16, IN(1, 128), PY, "L, candidate blocks drawn per step", "") \
    X(int32_t, candidates, 8, IN(1, 128), PY, "K, the most likely distinct blocks weighed", "") \
    X(int32_t, rollouts, 8, IN(1, 254), PY, "M, rollouts per block (samples + rollouts <= 255)", "") \
    X(int32_t, horizon, 192, IN(0, 100000), PY, "H, the rollout length cap", "") \
    X(int32_t, tail_samples, 16, IN(1, 128), PY, "base samples for the last max_tokens mod B tokens", "") \
    X(bool, jackknife, 1, IN(0, 1), PY, "bias-corrected weights (needs M >= 2)", "")

/* The MCMC baseline of power sampling [MCMC], through Python's generate() only
 * (X entries; the library's McmcParams, mcmc.h, holds them). */
#define LLAMA_SIMPLEX_MCMC_PARAMS(F, X, S) \
    LLAMA_SIMPLEX_ALPHA_X_(X, PY) \
    X(int32_t, stages, 16, IN(1, 100000), PY, "stages the output is generated in", "") \
    X(int32_t, steps, 10, IN(0, 1000000), PY, "Metropolis-Hastings steps per stage", "")

/* Power sampling by sequential Monte Carlo [SMC] (docs/math.md section 6), for
 * any chain: at its first apply it runs N particles after the prompt (learnt
 * through accept(): feed it the prompt) in a context of its own (n_ctx cells)
 * on `model`, up to max_tokens tokens, draws one completion by its weight, then
 * emits it token by token (the one candidate left, p = 1), and end-of-sequence
 * after it. If the chain accepts another token than the planned one, it plans
 * again from there. n_ctx must hold prompt + N x max_tokens + 1 cells (checked
 * at construction for a one-token prompt: INVALID_ARGUMENT naming n_ctx). The
 * library's SmcParams (smc.h) holds these fields too. */
#define LLAMA_SIMPLEX_SMC_PARAMS(F, X, S) \
    LLAMA_SIMPLEX_ALPHA_(F, ALL) \
    F(int32_t, particles, particles, 8, IN(1, 256), ALL, "N, particles (one KV-cache sequence each)", "") \
    F(int32_t, ramp, ramp, 0, IN(0, 1000000), ALL, "R, the exponent rises linearly from 1 to alpha over R tokens", \
      "0: alpha from the first token") \
    F(double, ess_threshold, ess_threshold, 0.5, IN(0, 1), ALL, "kappa: resample when ESS < kappa N", "0: never") \
    F(int32_t, block, block, 1, IN(1, 1000000), ALL, "tokens between ESS checks", "") \
    F(int32_t, rounds, rounds, 1, IN(1, 1000), ALL, "independent runs, combined by their normaliser estimates", "") \
    F(uint32_t, n_ctx, n_ctx, 8192, IN(64, UINT32_MAX), C | SV, "cells of the sampler's own context", "") \
    F(uint32_t, rollout_seed, rollout_seed, 0, IN(0, UINT32_MAX), C | SV, \
      "seeds the particles (llama-server: the request's seed)", "") \
    F(int32_t, max_tokens, max_tokens, 256, IN(1, INT32_MAX), C | SV, "the completion's length limit", "")

/* The final draw from softmax(logits) of what the chain left (no C struct). */
#define LLAMA_SIMPLEX_DIST_PARAMS(F, X, S) \
    X(uint32_t, seed, 0, IN(0, UINT32_MAX - 1), PY, "its own seed (a call's seed replaces it)", \
      "4294967295 is llama.cpp's random seed")

#endif /* LLAMA_SIMPLEX_PARAMS_H */
