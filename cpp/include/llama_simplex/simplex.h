// Closed-form decoders of the simplex framework (docs/math.md §1) as pure kernels
// over llama.cpp candidate arrays. No model, no context, no global state: each
// kernel reads logits, reorders the array so that the support comes first,
// writes q into `p` and log q into `logit` for the support, and returns the
// support size. Tokens past the support have q = 0 and are dropped by the
// llama_sampler adapters, the same way llama.cpp's truncation samplers drop them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "llama.h"

namespace llama_simplex {

enum class Status : int {
    ok            = 0,
    nan_logit     = 1,  // a logit is NaN: there is no distribution to compute
    empty_support = 2,  // no candidate has a finite logit
    no_history    = 3,  // a sampler that needs the sequence so far was given none
    failed        = 4,  // decoding failed (a rollout context could not be made or used)
    invalid_q     = 5,  // the q a sampler wrote is not finite or has no positive mass
    inf_logit     = 6,  // a logit is +inf (and none is NaN): softmax(+inf) has no finite value
};

const char * status_message(Status status);

// Scratch memory a kernel may reuse between calls; a sampler owns one.
struct Workspace {
    std::vector<float>            values;
    std::vector<llama_token_data> tokens;
    std::vector<size_t>           positions;
};

struct Outcome {
    Status status;
    size_t support;  // q > 0 only on cur[0 .. support)
};

// Which distribution chooses the nucleus of top-p.
enum class NucleusOrder : int {
    model       = 0,  // [SIMPLEX]: nucleus by p_t = softmax(logits), temperature applied after
    temperature = 1,  // llama.cpp chain `temp -> top_p`: nucleus by softmax(logits / T)
};

// Ordering used for every boundary: higher logit first, lower token id on ties.
inline bool ranks_before(const llama_token_data & a, const llama_token_data & b) {
    return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
}

// Writes the k best candidates (by ranks_before) to cur[0..k), sorted, in one
// pass for k << n; what is left in cur[k..n) is unspecified (callers truncate).
void select_top(llama_token_data * cur, size_t n, size_t k, Workspace & ws);

// Validates cur like the kernels do, moves the candidates with a finite logit
// to the front and copies their logits to x; the outcome's support is their count.
Outcome gather_finite(llama_token_data * cur, size_t n, float * x, Workspace & ws);

// Moves the m best of cur[0..n) (by ranks_before) to the front, best first,
// keeping cur a permutation; x (cur's logits, aligned) is permuted alongside.
void bring_to_front(llama_token_data * cur, float * x, size_t n, size_t m, Workspace & ws);

// On error the array is left exactly as it was given.
//
// Every kernel computes in shifted coordinates, (logit - max logit) / T, so q
// is finite and sums to 1 at any scale of the logits and for every T > 0 down
// to the smallest subnormal float (T = 0 is greedy). As T -> 0 the answer
// tends to the one-hot on the argmax; with several exactly tied maxima, each
// T > 0 gives them equal mass (softmax of equal values), split among the tied
// maxima that the support keeps (top-k and top-p keep the lower ids first),
// and sparsemax splits equally among them too. Only T = 0 (greedy) breaks a
// tie, to the lowest id. The top-p nucleus and the min-p threshold are decided
// in double precision, which is why p and p_min are doubles.
Outcome greedy   (llama_token_data * cur, size_t n, Workspace & ws);
Outcome softmax  (llama_token_data * cur, size_t n, float temperature, Workspace & ws);
Outcome top_k    (llama_token_data * cur, size_t n, int32_t k, float temperature, Workspace & ws);
Outcome top_p    (llama_token_data * cur, size_t n, double p, float temperature, NucleusOrder order, Workspace & ws);
Outcome min_p    (llama_token_data * cur, size_t n, double p_min, float temperature, Workspace & ws);
Outcome sparsemax(llama_token_data * cur, size_t n, float temperature, Workspace & ws);

// greedy over a row of logits whose positions are the ids, without a
// candidate array: `at` is the first position of the maximum (the lowest id
// on ties), n on error (NaN or +inf logits, none finite).
Outcome greedy_row(const float * x, size_t n, size_t & at);

// softmax() over a row of logits whose positions are the ids, without a
// candidate array: q[i] is the p softmax() gives id i, and log_q[i] (log_q
// may be null) the logit it rewrites, bit for bit, in id order (softmax()
// keeps a row of finite logits in place). False, writing nothing, where
// softmax() would take another route: T <= 0 (greedy), a logit that is not
// finite (dropped or rejected), or a temperature outside the normal floats
// (its double path); the caller then runs softmax() itself.
bool softmax_row(const float * x, size_t n, float temperature, float * q, float * log_q);

// The sparsemax threshold tau of z (sum_i max(z_i - tau, 0) = 1), found by
// randomised pivoting in O(n) expected time. `z` is reordered.
float sparsemax_threshold(float * z, size_t n);

// An index i of cur[0..m) drawn with probability p_i / sum p (one uniform from
// rng). Uses the 64-bit state `rng` (splitmix64) so the same seed gives the
// same tokens on every platform and standard library.
int64_t pick(const llama_token_data * cur, size_t m, uint64_t & rng);
// pick() over probabilities q[0..m) held as a plain row: the same index.
int64_t pick_row(const float * q, size_t m, uint64_t & rng);

// Draws an index of cur with probability softmax(logit) (drops -inf
// candidates to the back and rewrites p and logit = log p first).
Outcome draw(llama_token_data * cur, size_t n, uint64_t & rng, int64_t & selected, Workspace & ws);

uint64_t next_random(uint64_t & state);
double   uniform01(uint64_t & state);

}  // namespace llama_simplex
