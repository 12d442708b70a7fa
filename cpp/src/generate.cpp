#include "llama_simplex/generate.h"

#include <algorithm>
#include <stdexcept>

#include "backend_sampling.h"
#include "llama_simplex/samplers.h"

namespace llama_simplex {

size_t utf8_complete_prefix(const std::string & s) {
    size_t i = 0;
    const size_t n = s.size();
    while (i < n) {
        const auto c = static_cast<unsigned char>(s[i]);
        const size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
        if (len == 0) {
            return i;  // not a lead byte: stop; the caller replaces it at the end
        }
        if (i + len > n) {
            return i;
        }
        for (size_t j = 1; j < len; ++j) {
            if ((static_cast<unsigned char>(s[i + j]) >> 6) != 0x2) {
                return i;
            }
        }
        i += len;
    }
    return n;
}

namespace {

// Whole valid UTF-8, with every invalid byte replaced by U+FFFD.
std::string sanitise_utf8(const std::string & s) {
    std::string out;
    size_t i = 0;
    while (i < s.size()) {
        const size_t ok = utf8_complete_prefix(s.substr(i));
        out.append(s, i, ok);
        i += ok;
        if (i < s.size()) {
            out.append("\xEF\xBF\xBD");
            ++i;
        }
    }
    return out;
}

}  // namespace

void check_prompt(const std::vector<llama_token> & prompt, int32_t n_vocab) {
    if (prompt.empty()) {
        throw std::invalid_argument("prompt: must hold at least one token");
    }
    for (llama_token t : prompt) {
        if (t < 0 || t >= n_vocab) {
            throw std::invalid_argument("prompt: token id " + std::to_string(t) + " is outside [0, " +
                                        std::to_string(n_vocab) + ")");
        }
    }
}

llama_token sample_and_accept(llama_sampler * sampler, const float * logits, std::vector<llama_token_data> & cur) {
    for (size_t i = 0; i < cur.size(); ++i) {
        cur[i] = llama_token_data{static_cast<llama_token>(i), logits[i], 0.0f};
    }
    llama_token_data_array cur_p = {cur.data(), cur.size(), -1, false};
    llama_sampler_apply(sampler, &cur_p);
    const Status status = last_status(sampler);
    if (status != Status::ok) {
        throw std::runtime_error(std::string("sampler ") + llama_sampler_name(sampler) + ": " + status_message(status));
    }
    if (cur_p.selected < 0 || cur_p.selected >= static_cast<int64_t>(cur_p.size)) {
        throw std::runtime_error("the sampler chain selected no token: end it with a dist or greedy sampler");
    }
    const llama_token token = cur_p.data[cur_p.selected].id;
    llama_sampler_accept(sampler, token);
    return token;
}

std::vector<llama_token> tokenize(const llama_model * model, const std::string & text, bool add_special, bool parse_special) {
    const llama_vocab * vocab = llama_model_get_vocab(model);
    std::vector<llama_token> out(text.size() + 8);
    int32_t n = 0;
    // Some vocabularies (no byte fallback) throw on text they cannot cover;
    // catch it here rather than let it terminate the process.
    try {
    n = llama_tokenize(vocab, text.data(), static_cast<int32_t>(text.size()), out.data(),
                               static_cast<int32_t>(out.size()), add_special, parse_special);
    if (n < 0) {
        out.resize(static_cast<size_t>(-n));
        n = llama_tokenize(vocab, text.data(), static_cast<int32_t>(text.size()), out.data(),
                           static_cast<int32_t>(out.size()), add_special, parse_special);
    }
    } catch (const std::exception & e) {
        throw std::invalid_argument(std::string("text: the model's vocabulary cannot tokenize it (") + e.what() + ")");
    }
    if (n < 0) {
        throw std::runtime_error("tokenization failed");
    }
    out.resize(static_cast<size_t>(n));
    return out;
}

std::string detokenize(const llama_model * model, const std::vector<llama_token> & tokens) {
    const llama_vocab * vocab = llama_model_get_vocab(model);
    std::string out;
    char buf[256];
    for (llama_token t : tokens) {
        const int32_t n = llama_token_to_piece(vocab, t, buf, sizeof buf, 0, false);
        if (n > 0) {
            out.append(buf, static_cast<size_t>(n));
        } else if (n < 0) {
            std::string big(static_cast<size_t>(-n), '\0');
            llama_token_to_piece(vocab, t, big.data(), -n, 0, false);
            out += big;
        }
    }
    return out;
}

Generator::Generator(llama_context * ctx, llama_sampler * sampler, std::vector<llama_token> prompt, GenerateOptions options)
    : ctx_(ctx), sampler_(sampler), vocab_(llama_model_get_vocab(llama_get_model(ctx))),
      prompt_(std::move(prompt)), options_(std::move(options)) {
    const int32_t n_vocab = llama_vocab_n_tokens(vocab_);
    check_prompt(prompt_, n_vocab);
    const int32_t n_ctx = static_cast<int32_t>(llama_n_ctx(ctx_));
    if (static_cast<int64_t>(prompt_.size()) >= n_ctx) {
        throw std::invalid_argument("prompt: " + std::to_string(prompt_.size()) + " tokens do not fit a context of " +
                                    std::to_string(n_ctx) + " (at most " + std::to_string(n_ctx - 1) + ")");
    }
    if (options_.max_tokens < 0) {
        throw std::invalid_argument("max_tokens: must be >= 0");
    }
    for (const auto & s : options_.stop) {
        stop_hold_ = std::max(stop_hold_, s.size());
    }
    cur_.resize(static_cast<size_t>(n_vocab));
    if (options_.backend_sampling) {
        backend_chain_.reset(backend_chain(sampler_));
        own_ctx_ = make_backend_context(ctx_, {backend_chain_.get()}, options_.settings);
        ctx_ = own_ctx_.get();
        sampler_ = backend_chain_.get();
    }
}

void Generator::prefill() {
    llama_sampler_reset(sampler_);
    decode_prompt();
}

void Generator::decode_prompt() {
    llama_memory_clear(llama_get_memory(ctx_), true);
    const int32_t n_batch = static_cast<int32_t>(llama_n_batch(ctx_));
    for (size_t i = 0; i < prompt_.size(); i += static_cast<size_t>(n_batch)) {
        const int32_t n = static_cast<int32_t>(std::min<size_t>(n_batch, prompt_.size() - i));
        if (llama_decode(ctx_, llama_batch_get_one(prompt_.data() + i, n)) != 0) {
            throw std::runtime_error("llama_decode failed on the prompt");
        }
    }
    n_past_ = static_cast<int32_t>(prompt_.size());
}

void Generator::resync() {
    // The same decode calls as the first time (the prompt in n_batch chunks,
    // then one call per token), so the cache and the logits are bit for bit
    // what they were: llama.cpp's numerics depend on the batch shapes.
    decode_prompt();
    for (llama_token t : tokens_) {
        decode_one(t);
    }
    stale_ = false;
}

bool Generator::suspend() {
    if (ctx_ == nullptr || own_ctx_ != nullptr || !started_ || done_ || stale_ || !saved_state_.empty() ||
        llama_memory_seq_pos_max(llama_get_memory(ctx_), 0) != n_past_ - 1) {
        return false;
    }
    const float * logits = llama_get_logits_ith(ctx_, -1);
    if (logits == nullptr) {
        return false;
    }
    saved_logits_.assign(logits, logits + cur_.size());
    saved_state_.resize(llama_state_seq_get_size(ctx_, 0));
    if (llama_state_seq_get_data(ctx_, saved_state_.data(), saved_state_.size(), 0) != saved_state_.size()) {
        saved_state_.clear();
        return false;
    }
    return true;
}

bool Generator::restore() {
    llama_memory_clear(llama_get_memory(ctx_), true);
    const bool ok = llama_state_seq_set_data(ctx_, saved_state_.data(), saved_state_.size(), 0) == saved_state_.size() &&
                    llama_memory_seq_pos_max(llama_get_memory(ctx_), 0) == n_past_ - 1;
    std::vector<uint8_t>().swap(saved_state_);
    stale_ = false;
    return ok;
}

void Generator::stop(const std::string & reason) {
    if (!done_) {
        done_ = true;
        finish_reason_ = reason;
    }
}

void Generator::decode_one(llama_token token) {
    if (llama_decode(ctx_, llama_batch_get_one(&token, 1)) != 0) {
        throw std::runtime_error("llama_decode failed");
    }
    ++n_past_;
}

std::string Generator::take_text(bool final) {
    size_t end = text_.size();
    if (!final) {
        end = end > stop_hold_ ? end - stop_hold_ : 0;
        end = std::max(end, emitted_);
        end = emitted_ + utf8_complete_prefix(text_.substr(emitted_, end - emitted_));
    }
    std::string out = text_.substr(emitted_, end - emitted_);
    emitted_ = end;
    return final ? sanitise_utf8(out) : out;
}

bool Generator::next(Step & out) {
    out = Step{};
    if (done_) {
        return false;
    }
    if (ctx_ == nullptr) {
        throw std::runtime_error("llm: the Llama was closed before this generation finished");
    }
    if (!started_) {
        prefill();
        started_ = true;
        stale_ = false;
    }
    auto finish = [&](const char * reason) {
        done_ = true;
        finish_reason_ = reason;
        out.text = take_text(true);
        return false;
    };
    if (static_cast<int32_t>(tokens_.size()) >= options_.max_tokens) {
        return finish("length");
    }

    // Another user of the context (another generation, llama_cpp itself)
    // may have replaced its memory since the last step.
    const float * logits = nullptr;
    if (!saved_state_.empty()) {
        if (restore()) {
            logits = saved_logits_.data();
        } else {
            resync();
        }
    } else if (stale_ || llama_memory_seq_pos_max(llama_get_memory(ctx_), 0) != n_past_ - 1) {
        resync();
    }
    if (logits == nullptr && own_ctx_ == nullptr) {
        std::vector<float>().swap(saved_logits_);
        logits = llama_get_logits_ith(ctx_, -1);
        if (logits == nullptr) {
            throw std::runtime_error("the context returned no logits");
        }
    }
    llama_token token;
    try {
        token = own_ctx_ != nullptr ? sample_backend(ctx_, sampler_, -1) : sample_and_accept(sampler_, logits, cur_);
    } catch (...) {
        done_ = true;
        finish_reason_ = "error";
        throw;
    }

    if (options_.stop_at_eog && llama_vocab_is_eog(vocab_, token)) {
        return finish("stop");
    }
    tokens_.push_back(token);
    out.token = token;
    text_ += detokenize(llama_get_model(ctx_), {token});

    for (const auto & s : options_.stop) {
        const size_t from = emitted_ > s.size() ? emitted_ - s.size() : 0;
        const size_t at = s.empty() ? std::string::npos : text_.find(s, from);
        if (at != std::string::npos) {
            text_.resize(at);
            emitted_ = std::min(emitted_, at);
            done_ = true;
            finish_reason_ = "stop";
            out.text = take_text(true);
            return true;
        }
    }
    if (n_past_ + 1 > static_cast<int32_t>(llama_n_ctx(ctx_))) {
        done_ = true;
        finish_reason_ = "length";
        out.text = take_text(true);
        return true;
    }
    if (static_cast<int32_t>(tokens_.size()) < options_.max_tokens) {
        decode_one(token);
    }
    out.text = take_text(false);
    return true;
}

}  // namespace llama_simplex
