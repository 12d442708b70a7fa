// Power sampling [POWER] (docs/math.md §4): draw from π(x) ∝ p(x)^α over whole
// sequences by weighting each next-token candidate with a Monte Carlo
// estimate of its future, ζ(v) = E_{y ~ p(·|x, v)} [p(y)^(α-1)], from rollouts
// that run on forked KV-cache sequences (RolloutEngine).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "llama.h"
#include "llama_simplex/llama_simplex_params.h"

namespace llama_simplex {

// Next-token weights over K candidates from their log-probabilities log_p[k]
// and M rollout log-likelihoods loglik[k * M + r] (a candidate with no future,
// such as end-of-sequence, has rows of 0). Plug-in estimate
//   w(v) ∝ p(v)^α · mean_r exp((α-1) loglik_r),
// in log space; with jackknife (M >= 2) the bias-corrected
//   p_JK = M p̂ - (M-1)/M Σ_s p̂_{-s}   (p̂_{-s}: rollout s left out of every candidate),
// clipped at 0 and renormalised, falling back to p̂ if nothing is left (or
// if a leave-one-out renormalisation has no mass).
// A rollout log-likelihood of -inf is a zero-probability future: p(y)^(α-1)
// is 0 for α > 1 and 1 for α = 1 (for α < 1 it is infinite: an error); a
// candidate with log p = -inf has weight 0.
// Writes K probabilities; returns false, with the reason in *error when
// given, for NaN, +inf, no candidate of positive weight, or K or M = 0.
bool power_weights(const float * log_p, const double * loglik, size_t k, size_t m, double alpha, bool jackknife,
                   double * out, std::string * error = nullptr);

// Every parameter of power's list (llama_simplex_params.h), the C struct's and
// low_temperature_last: futures end at max_tokens, as pi's sequences do (a
// rollout after the token at step t runs at most min(H, max_tokens - t - 1)
// tokens, so the last token has zeta = 1 and is drawn from p^alpha over the
// candidates); false (benchmarks only) runs H tokens at every step, and the
// law near the end is then not pi. Filled from the table (specs.h
// make_run_params, c_to_run), never field by field.
struct PowerParams {
    LLAMA_SIMPLEX_ALL_FIELDS(LLAMA_SIMPLEX_POWER_PARAMS)
    bool naive_reprefill = false;  // baseline for benchmarks: every rollout re-decodes the prefix
};

struct RolloutShape;

// The rollout context power_generate needs after a prompt of n_prompt
// tokens for max_tokens more (0: no length limit; n_prompt is then the
// longest sequence, as for the chain sampler). The one formula every
// surface uses; throws std::invalid_argument naming the parameter for
// values out of range.
RolloutShape power_context_shape(const PowerParams & params, int64_t n_prompt, int64_t max_tokens);

struct PowerStats {
    int64_t rollouts = 0;        // rollouts run
    int64_t rollout_tokens = 0;  // tokens they decoded
    int64_t decode_calls = 0;    // llama_decode calls for rollouts
};

// Generates up to max_tokens after the prompt in ctx (which must have a
// unified KV cache: make_rollout_context). The prompt lives in sequence 0;
// rollouts use sequences 1.. in waves that fit n_seq_max and are removed
// afterwards. progress(done, stats) is called after each token; returning
// false stops. Throws std::invalid_argument naming the parameter when the
// configuration cannot fit the context.
std::vector<llama_token> power_generate(llama_context * ctx, const std::vector<llama_token> & prompt,
                                        const PowerParams & params, int32_t max_tokens, uint64_t seed,
                                        bool stop_at_eog, PowerStats & stats,
                                        const std::function<bool(int32_t, const PowerStats &)> & progress);

// Block-level power sampling ([POWER] Algorithm 2): each step emits a block
// of B tokens. L candidate blocks are drawn from p (temperature 1) on forked
// sequences, identical ones merged; the K most likely are kept; each gets M
// rollouts of up to H tokens after it (fewer when max_tokens is near); the
// block is drawn with weight p(block)^α · ζ̂(block), jackknifed. The tail
// (max_tokens mod B) is drawn among L_tail base samples by p^α alone. A block
// that reaches end-of-sequence stops there and has ζ = 1.
// Its parameters are the fields of its list (llama_simplex_params.h), with
// their defaults and ranges.
struct BlockParams {
    LLAMA_SIMPLEX_ALL_FIELDS(LLAMA_SIMPLEX_BLOCK_POWER_PARAMS)
};

// The rollout context block_power_generate needs (see power_context_shape).
RolloutShape block_context_shape(const BlockParams & params, int64_t n_prompt, int64_t max_tokens);

std::vector<llama_token> block_power_generate(llama_context * ctx, const std::vector<llama_token> & prompt,
                                              const BlockParams & params, int32_t max_tokens, uint64_t seed,
                                              bool stop_at_eog, PowerStats & stats,
                                              const std::function<bool(int32_t, const PowerStats &)> & progress);

// For tests: the largest |difference| between the logits of token `next`
// decoded after one step's rollouts (candidates 0..K-1, then removed) and the
// same token decoded on a fresh cache: 0 when the prefix survived untouched.
float rollout_prefix_probe(llama_context * ctx, const std::vector<llama_token> & prompt, const PowerParams & params,
                           uint64_t seed, llama_token next);

class RolloutEngine;

// Rollouts for candidate tokens cand[c] placed at position at[c] on top of
// sequence source[c], each forking the prefix's cells: fills
// loglik[c * M + r] (see power.cpp). Shared by the power samplers; sequences
// first_seq.. are used and removed again.
void run_rollouts(RolloutEngine & engine, const llama_vocab * vocab, const std::vector<llama_token> & cand,
                  const std::vector<llama_seq_id> & source, const std::vector<llama_pos> & at,
                  const PowerParams & pp, int32_t per_wave, llama_seq_id first_seq, bool stop_at_eog, uint64_t & rng,
                  std::vector<double> & loglik, PowerStats & stats, std::vector<float> & scratch);

// The benchmark baseline of run_rollouts (PowerParams::naive_reprefill), every
// candidate on top of `history`: each rollout decodes history + candidate
// again in a sequence of its own instead of forking.
void run_rollouts_reprefill(RolloutEngine & engine, const llama_vocab * vocab, const std::vector<llama_token> & cand,
                            const std::vector<llama_token> & history, const PowerParams & pp, int32_t per_wave,
                            llama_seq_id first_seq, bool stop_at_eog, uint64_t & rng, std::vector<double> & loglik,
                            PowerStats & stats, std::vector<float> & scratch);

// Draws a token from softmax(logits) (temperature 1) and returns its
// log-probability; one vectorised exp pass. scratch is resized to n_vocab.
llama_token sample_logprob(const float * logits, int32_t n_vocab, uint64_t & rng, std::vector<float> & scratch,
                           double & logprob);

}  // namespace llama_simplex
