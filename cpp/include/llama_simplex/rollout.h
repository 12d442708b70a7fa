// The one component that touches the KV cache: it prefills a prefix, forks
// it into many sequences without copying (a unified KV cache makes seq_cp a
// matter of tagging cells), advances all live sequences together (one
// llama_decode per step), and removes sequences afterwards. Multi-sample
// generation and power sampling's rollouts are built on it.
#pragma once

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <vector>

#include "llama.h"

namespace llama_simplex {

// llama.cpp's LLAMA_MAX_SEQ (src/llama-cparams.h, not in the public header).
constexpr uint32_t MAX_SEQUENCES = 256;

// Frees with llama.cpp's logging muted: the log callback may be a Python
// function (llama_cpp installs one), and a context can be freed while the
// interpreter shuts down.
struct ContextDeleter {
    void operator()(llama_context * ctx) const;
};
using ContextPtr = std::unique_ptr<llama_context, ContextDeleter>;

// A context for forked sequences on `model`: unified KV cache of n_ctx cells
// shared by up to n_seq sequences (at most MAX_SEQUENCES = 256).
// Throws std::invalid_argument naming the parameter when it cannot be made.
// n_ubatch (0: n_batch) bounds the compute buffer: a wide batch is computed
// in slices of n_ubatch tokens.
ContextPtr make_rollout_context(llama_model * model, uint32_t n_ctx, uint32_t n_seq, int32_t n_threads,
                                uint32_t n_batch, uint32_t n_ubatch = 0);

class RolloutEngine {
  public:
    explicit RolloutEngine(llama_context * ctx);
    ~RolloutEngine();
    RolloutEngine(const RolloutEngine &) = delete;
    RolloutEngine & operator=(const RolloutEngine &) = delete;

    int32_t n_vocab() const { return n_vocab_; }
    int32_t n_seq_max() const { return static_cast<int32_t>(llama_n_seq_max(ctx_)); }
    int32_t n_ctx() const { return static_cast<int32_t>(llama_n_ctx(ctx_)); }

    // Clears the whole cache.
    void clear();
    // Decodes tokens on `seq` at positions pos0.. (split by n_batch); only
    // the last token's logits are kept, readable with logits(0).
    void extend(llama_seq_id seq, const llama_token * tokens, size_t n, llama_pos pos0);
    // dst shares src's cells (all positions); no copy in a unified cache.
    void fork(llama_seq_id src, llama_seq_id dst);
    // dst shares src's cells at positions [p0, p1).
    void fork_range(llama_seq_id src, llama_seq_id dst, llama_pos p0, llama_pos p1);
    // Removes every cell of seq.
    void drop(llama_seq_id seq);
    // One llama_decode: tokens[i] appended to seqs[i] at pos[i], with logits
    // for every row, readable with logits(i).
    void step(const llama_seq_id * seqs, const llama_token * tokens, const llama_pos * pos, size_t n);
    // One llama_decode in which token i belongs to every sequence in
    // seqs[i] (computed once, shared by all of them), with logits per token.
    void step_shared(const llama_token * tokens, const llama_pos * pos, const std::vector<std::vector<llama_seq_id>> & seqs);
    const float * logits(size_t row) const;

  private:
    llama_context * ctx_;
    llama_batch     batch_;
    int32_t         n_vocab_;
    int32_t         n_batch_;
    size_t          n_rows_ = 0;
};

// log p(token) under softmax(logits) (temperature 1), in float64.
double token_logprob(const float * logits, int32_t n_vocab, llama_token token);

}  // namespace llama_simplex
