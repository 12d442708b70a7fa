// The one component that touches the KV cache: it prefills a prefix, forks
// it into many sequences without copying (a unified KV cache makes seq_cp a
// matter of tagging cells), advances all live sequences together (one
// llama_decode per step), and removes sequences afterwards. Multi-sample
// generation and power sampling's rollouts are built on it.
#pragma once

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
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

// The llama_context_params fields a context of ours copies from the user's
// context, apart from its shape. First those that change what it computes
// (its logits): attention kernel, KV cache types, RoPE/YaRN scaling, and where
// attention runs on a GPU build (offload_kqv, op_offload: another backend's
// kernels round differently; on a CPU build they change nothing), so that our
// rollouts and in-graph draws see the logits the user's context gives
// (llama.cpp's default flash attention is AUTO, llama_cpp.Llama's is off: on
// Gemma 3 270M the next-token laws differ by a TV of 0.1). Then the thread
// counts, which change no value but the speed: llama.cpp decodes a one-token
// batch on n_threads and a wider one on n_threads_batch (llama_cpp.Llama: half
// and all of the cores), and our contexts decode both kinds. Shape fields
// (n_ctx, n_batch, n_seq_max, kv_unified, swa_full) are ours to choose.
// One list: the struct, settings_of and apply_settings all come from it.
#define LLAMA_SIMPLEX_CONTEXT_SETTINGS(X)                  \
    X(enum llama_flash_attn_type, flash_attn_type)         \
    X(enum ggml_type, type_k)                              \
    X(enum ggml_type, type_v)                              \
    X(enum llama_rope_scaling_type, rope_scaling_type)     \
    X(float, rope_freq_base)                               \
    X(float, rope_freq_scale)                              \
    X(float, yarn_ext_factor)                              \
    X(float, yarn_attn_factor)                             \
    X(float, yarn_beta_fast)                               \
    X(float, yarn_beta_slow)                               \
    X(uint32_t, yarn_orig_ctx)                             \
    X(bool, offload_kqv)                                   \
    X(bool, op_offload)                                    \
    X(int32_t, n_threads)                                  \
    X(int32_t, n_threads_batch)

struct ContextSettings {
#define LLAMA_SIMPLEX_X(type, name) type name;
    LLAMA_SIMPLEX_CONTEXT_SETTINGS(LLAMA_SIMPLEX_X)
#undef LLAMA_SIMPLEX_X
    // llama.cpp's defaults (llama_context_default_params): what a context made
    // by C/C++ code that has no user context to follow gets.
    ContextSettings();
};

// The settings of a context made with `params`.
ContextSettings settings_of(const llama_context_params & params);
// Sets the settings fields of `params` to `settings` (the rest is left alone).
void apply_settings(llama_context_params & params, const ContextSettings & settings);

// The rollout context a sampler needs: KV cells (rounded up to 256, as
// llama.cpp pads them) and sequences. Each sampler has one function that
// computes it (power_context_shape, block_context_shape, mcmc_context_shape);
// `why` spells out the sum with the parameters that drive it, for messages.
struct RolloutShape {
    int64_t     cells = 0;  // exactly what is needed
    int64_t     n_ctx = 0;  // cells rounded up to 256 (at least 256): what to ask llama.cpp for
    uint32_t    n_seq = 0;
    std::string why;
};

// A shape of `cells` cells (n_ctx: rounded up to a multiple of 256, at least 256).
RolloutShape rollout_shape(int64_t cells, uint32_t n_seq, std::string why);

// The bytes a rollout context of n_ctx cells and n_seq sequences takes on
// `model`, estimated before anything is allocated: the KV cache (cells x
// layers x (K + V) per cell in f16, head sizes from the model), the output
// buffer (a vocabulary row per sequence) and the attention scores of one
// micro-batch of n_ubatch tokens.
uint64_t rollout_context_bytes(const llama_model * model, int64_t n_ctx, uint32_t n_seq, uint32_t n_ubatch);

// The same estimate for the model in the GGUF file `path`, from its metadata
// alone (nothing is loaded): what load_model checks before llama.cpp
// allocates a context. 0 when the file is not a readable GGUF.
uint64_t gguf_context_bytes(const std::string & path, int64_t n_ctx, uint32_t n_seq, uint32_t n_ubatch);

// Physical memory available now (MemAvailable, else free pages), in bytes.
uint64_t available_memory_bytes();

// Throws std::invalid_argument naming `param` (with `why`, the sum behind the
// size) when a context of n_ctx cells and n_seq sequences cannot be made:
// fewer cells than sequences (llama.cpp's output buffer holds a row per
// sequence and would abort), more cells than llama.cpp can address, or more
// memory than the machine has available. Called before any allocation.
void check_rollout_context(const llama_model * model, int64_t n_ctx, uint32_t n_seq, uint32_t n_ubatch,
                           const std::string & param, const std::string & why = "");

// Throws std::invalid_argument when `horizon` exceeds the model's training
// context: a rollout longer than that is not a future the model can score.
void check_horizon(const llama_model * model, int64_t horizon);

// A context for forked sequences on `model`: unified KV cache of n_ctx cells
// shared by up to n_seq sequences (at most MAX_SEQUENCES = 256).
// Throws std::invalid_argument naming the parameter when it cannot be made
// (check_rollout_context, before anything is allocated).
// n_ubatch (0: n_batch) bounds the compute buffer: a wide batch is computed
// in slices of n_ubatch tokens. settings: the user's context's (ContextSettings);
// n_threads > 0 replaces both of its thread counts.
ContextPtr make_rollout_context(llama_model * model, uint32_t n_ctx, uint32_t n_seq, int32_t n_threads,
                                uint32_t n_batch, uint32_t n_ubatch = 0, const ContextSettings & settings = {});

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
    // the last token's logits are kept, readable with logits(0). With
    // output_last false no token is an output: in a context with in-graph
    // samplers an output is a draw, which a prefill must not take.
    void extend(llama_seq_id seq, const llama_token * tokens, size_t n, llama_pos pos0, bool output_last = true);
    // dst shares src's cells (all positions); no copy in a unified cache.
    void fork(llama_seq_id src, llama_seq_id dst);
    // dst shares src's cells at positions [p0, p1).
    void fork_range(llama_seq_id src, llama_seq_id dst, llama_pos p0, llama_pos p1);
    // Removes every cell of seq.
    void drop(llama_seq_id seq);
    // Removes seq's cells at positions >= p0 (what comes before stays, shared or not).
    void trim(llama_seq_id seq, llama_pos p0);
    // seq's cells at positions [0, p1) as llama_state_seq_get_data writes them (positions and
    // K/V rows), read through `spare` (a sequence left empty): for tests that cells are unchanged.
    std::vector<uint8_t> seq_state(llama_seq_id seq, llama_pos p1, llama_seq_id spare);
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

// The benchmark baseline of the engines, for a sampler that decodes a varying number of
// rows per step (Power-SMC decodes one row per distinct particle sequence): prefills `prompt` but its
// last token into sequence 0, shares it with max(rows) sequences, then one bare
// llama_decode per step t of rows[t] rows, sequence s < rows[t] appending at its own next
// position (from the prompt's last), logits for every row. Returns the seconds of all of it.
double raw_batched_decode_rows_seconds(llama_context * ctx, const std::vector<llama_token> & prompt,
                                       const std::vector<int32_t> & rows);

// log p(token) under softmax(logits) (temperature 1), in float64.
double token_logprob(const float * logits, int32_t n_vocab, llama_token token);

}  // namespace llama_simplex
