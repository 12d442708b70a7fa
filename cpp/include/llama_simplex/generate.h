// The decode loop: prefill a prompt, then sample, accept and decode one token
// at a time with any llama_sampler chain, until end of generation, a stop
// string, max_tokens or the end of the context. It runs entirely in C++; a
// caller either pulls one step at a time or runs it to the end.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "llama.h"
#include "llama_simplex/rollout.h"

namespace llama_simplex {

struct GenerateOptions {
    int32_t                  max_tokens = 128;
    std::vector<std::string> stop;               // stop strings, not included in the text
    bool                     stop_at_eog = true;  // end at the model's end-of-generation tokens
    // Sample inside the model's compute graph (backend_sampling.h): the
    // generator decodes in a context of its own on ctx's model (same shape)
    // with a clone of the sampler attached, so ctx itself is never used.
    bool                     backend_sampling = false;
    // backend_sampling: the settings ctx was made with (llama.h cannot read
    // them back), so that the own context computes ctx's logits.
    ContextSettings          settings;
};

struct Step {
    llama_token token = LLAMA_TOKEN_NULL;
    std::string text;  // new text, whole UTF-8 characters only
};

class Generator {
  public:
    // ctx and sampler are borrowed and must outlive the generator. The
    // context's memory is cleared: generation starts from the prompt alone.
    Generator(llama_context * ctx, llama_sampler * sampler, std::vector<llama_token> prompt, GenerateOptions options);

    // Produces the next token; false once generation has finished (then
    // `out` may still carry the last held-back text). Throws std::runtime_error
    // when the sampler reports an error or decoding fails, or once detached.
    bool next(Step & out);

    // Ends the generation now with `reason` as its finish reason (no-op once done).
    void stop(const std::string & reason);
    // Another generation is about to use the context: saves this one's KV
    // cells and last logits, restored bit for bit at its next step (false,
    // and nothing saved, when the context does not hold this generation).
    bool suspend();
    // Another user of the context may have changed its memory: unless it
    // was suspended, the next step decodes the prompt and the tokens so far
    // again, with the same decode calls as the first time (one per token).
    // (A generator with a context of its own is never disturbed.)
    void mark_stale() { stale_ = own_ctx_ == nullptr; }
    // The context (or its model) is about to be freed: later steps throw instead of using it.
    void detach() { ctx_ = nullptr; own_ctx_.reset(); }
    bool done() const { return done_; }
    // The context the loop decodes in: ctx, or with backend_sampling its own
    // (whose llama_get_sampled_* outputs tests compare with ctx's logits).
    llama_context * context() const { return ctx_; }

    const std::string &              finish_reason() const { return finish_reason_; }
    const std::vector<llama_token> & tokens() const { return tokens_; }
    const std::string &              text() const { return text_; }
    int32_t                          n_prompt() const { return static_cast<int32_t>(prompt_.size()); }

  private:
    void prefill();
    void decode_prompt();
    void resync();
    bool restore();
    void decode_one(llama_token token);
    std::string take_text(bool final);

    struct ChainFree {
        void operator()(llama_sampler * s) const { llama_sampler_free(s); }
    };
    // backend_sampling: the chain sampling in-graph and the context it is
    // attached to (declared in this order: the context goes first).
    std::unique_ptr<llama_sampler, ChainFree> backend_chain_;
    ContextPtr                    own_ctx_;
    llama_context *               ctx_;
    llama_sampler *               sampler_;
    const llama_vocab *           vocab_;
    std::vector<llama_token>      prompt_;
    GenerateOptions               options_;
    std::vector<llama_token_data> cur_;
    std::vector<llama_token>      tokens_;
    std::string                   text_;       // all generated text so far (after stop truncation)
    size_t                        emitted_ = 0;
    size_t                        stop_hold_ = 0;  // bytes held back in case a stop string is forming
    int32_t                       n_past_ = 0;
    bool                          started_ = false;
    bool                          done_ = false;
    bool                          stale_ = false;
    std::vector<uint8_t>          saved_state_;   // this sequence's KV cells while suspended
    std::vector<float>            saved_logits_;  // the logits the next step samples from
    std::string                   finish_reason_;
};

// Throws std::invalid_argument naming `prompt` unless it is non-empty and
// every id is in [0, n_vocab).
void check_prompt(const std::vector<llama_token> & prompt, int32_t n_vocab);

// Applies the chain to one row of logits (ids 0..n-1 in cur, reused),
// accepts and returns the selected token; throws std::runtime_error when a
// sampler of ours fails or the chain selects nothing.
llama_token sample_and_accept(llama_sampler * sampler, const float * logits, std::vector<llama_token_data> & cur);

// Tokenizes text with the model's vocabulary (BOS and special tokens as the model wants).
std::vector<llama_token> tokenize(const llama_model * model, const std::string & text, bool add_special, bool parse_special);
std::string detokenize(const llama_model * model, const std::vector<llama_token> & tokens);

// Length of the longest prefix of s that is whole, valid UTF-8.
size_t utf8_complete_prefix(const std::string & s);

}  // namespace llama_simplex
