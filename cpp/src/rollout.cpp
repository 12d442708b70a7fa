#include "llama_simplex/rollout.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <cmath>
#include <cstdlib>
#include <string>

#include <unistd.h>

#include "gguf.h"

#include "vec_math.h"

namespace llama_simplex {

void ContextDeleter::operator()(llama_context * ctx) const {
    ggml_log_callback previous = nullptr;
    void * user_data = nullptr;
    llama_log_get(&previous, &user_data);
    llama_log_set([](ggml_log_level, const char *, void *) {}, nullptr);
    llama_free(ctx);
    llama_log_set(previous, user_data);
}

namespace {

// The largest context we ask llama.cpp for: positions are int32 and it pads
// n_ctx up to a multiple of 256.
constexpr int64_t MAX_CELLS = (int64_t{1} << 31) - 512;

int64_t meta_int(const llama_model * model, const std::string & key) {
    char buf[64];
    if (llama_model_meta_val_str(model, key.c_str(), buf, sizeof buf) < 0) return 0;
    return std::strtoll(buf, nullptr, 10);
}

std::string mib(uint64_t bytes) {
    return std::to_string((bytes + (1u << 20) - 1) >> 20) + " MiB";
}

}  // namespace

RolloutShape rollout_shape(int64_t cells, uint32_t n_seq, std::string why) {
    RolloutShape s;
    s.cells = cells;
    // What llama.cpp allocates anyway (it pads to 256); the KV cache is the bulk of the extra memory.
    s.n_ctx = std::max<int64_t>(256, (cells + 255) / 256 * 256);
    s.n_seq = n_seq;
    s.why = std::move(why);
    return s;
}

namespace {

// What the memory estimate needs of a model, from a loaded model or from a
// GGUF file's metadata alone (the same keys llama.cpp reads).
struct ModelShape {
    int64_t n_layer = 1, n_embd = 1, n_head = 1, n_head_kv = 1, head_k = 0, head_v = 0, n_vocab = 1;
};

uint64_t context_bytes(const ModelShape & m, int64_t n_ctx, uint32_t n_seq, uint32_t n_ubatch) {
    const int64_t head_k = std::max(m.n_embd / m.n_head, m.head_k);
    const int64_t head_v = std::max(m.n_embd / m.n_head, m.head_v);
    const int64_t cells = (std::max<int64_t>(n_ctx, 1) + 255) / 256 * 256;
    const long double kv = static_cast<long double>(cells) * m.n_layer * m.n_head_kv * (head_k + head_v) * 2;  // f16
    const long double outputs = static_cast<long double>(std::max<uint32_t>(n_seq, n_ubatch)) * m.n_vocab * 4;
    const long double scores = static_cast<long double>(cells) * std::max<uint32_t>(n_ubatch, 1) * m.n_head * 4;
    const long double total = kv + outputs + scores;
    return total >= 1.8e19L ? UINT64_MAX : static_cast<uint64_t>(total);
}

// An integer of the GGUF's metadata (a per-layer array: its largest entry), or `fallback`.
int64_t gguf_int(const gguf_context * g, const std::string & key, int64_t fallback) {
    const int64_t id = gguf_find_key(g, key.c_str());
    if (id < 0) return fallback;
    auto scalar = [&](gguf_type type, const void * data, size_t i) -> int64_t {
        switch (type) {
            case GGUF_TYPE_UINT8:  return static_cast<const uint8_t *>(data)[i];
            case GGUF_TYPE_INT8:   return static_cast<const int8_t *>(data)[i];
            case GGUF_TYPE_UINT16: return static_cast<const uint16_t *>(data)[i];
            case GGUF_TYPE_INT16:  return static_cast<const int16_t *>(data)[i];
            case GGUF_TYPE_UINT32: return static_cast<const uint32_t *>(data)[i];
            case GGUF_TYPE_INT32:  return static_cast<const int32_t *>(data)[i];
            case GGUF_TYPE_UINT64: return static_cast<int64_t>(std::min<uint64_t>(static_cast<const uint64_t *>(data)[i], INT64_MAX));
            case GGUF_TYPE_INT64:  return static_cast<const int64_t *>(data)[i];
            default:               return fallback;
        }
    };
    const gguf_type type = gguf_get_kv_type(g, id);
    if (type != GGUF_TYPE_ARRAY) return scalar(type, gguf_get_val_data(g, id), 0);
    const gguf_type elem = gguf_get_arr_type(g, id);
    if (elem == GGUF_TYPE_STRING || elem == GGUF_TYPE_ARRAY) return fallback;
    int64_t most = fallback;
    for (size_t i = 0, n = gguf_get_arr_n(g, id); i < n; ++i) {
        most = i == 0 ? scalar(elem, gguf_get_arr_data(g, id), i) : std::max(most, scalar(elem, gguf_get_arr_data(g, id), i));
    }
    return most;
}

}  // namespace

uint64_t rollout_context_bytes(const llama_model * model, int64_t n_ctx, uint32_t n_seq, uint32_t n_ubatch) {
    ModelShape m;
    m.n_layer = std::max(1, llama_model_n_layer(model));
    m.n_embd = std::max(1, llama_model_n_embd(model));
    m.n_head = std::max(1, llama_model_n_head(model));
    m.n_head_kv = std::max(1, llama_model_n_head_kv(model));
    // Head sizes: the GGUF's key/value lengths where given (Gemma's exceed n_embd / n_head).
    char arch[64] = "";
    llama_model_meta_val_str(model, "general.architecture", arch, sizeof arch);
    m.head_k = meta_int(model, std::string(arch) + ".attention.key_length");
    m.head_v = meta_int(model, std::string(arch) + ".attention.value_length");
    m.n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(model));
    return context_bytes(m, n_ctx, n_seq, n_ubatch);
}

uint64_t gguf_context_bytes(const std::string & path, int64_t n_ctx, uint32_t n_seq, uint32_t n_ubatch) {
    gguf_init_params params = {/*no_alloc =*/ true, /*ctx =*/ nullptr};  // the metadata only, no tensor data
    gguf_context * g = gguf_init_from_file(path.c_str(), params);
    if (g == nullptr) return 0;
    const int64_t arch_id = gguf_find_key(g, "general.architecture");
    const std::string arch = arch_id >= 0 && gguf_get_kv_type(g, arch_id) == GGUF_TYPE_STRING
                                 ? gguf_get_val_str(g, arch_id) : "";
    ModelShape m;
    m.n_layer = std::max<int64_t>(1, gguf_int(g, arch + ".block_count", 1));
    m.n_embd = std::max<int64_t>(1, gguf_int(g, arch + ".embedding_length", 1));
    m.n_head = std::max<int64_t>(1, gguf_int(g, arch + ".attention.head_count", 1));
    m.n_head_kv = std::max<int64_t>(1, gguf_int(g, arch + ".attention.head_count_kv", m.n_head));  // llama.cpp's default
    m.head_k = gguf_int(g, arch + ".attention.key_length", 0);
    m.head_v = gguf_int(g, arch + ".attention.value_length", 0);
    const int64_t tokens = gguf_find_key(g, "tokenizer.ggml.tokens");
    m.n_vocab = tokens >= 0 && gguf_get_kv_type(g, tokens) == GGUF_TYPE_ARRAY
                    ? std::max<int64_t>(1, static_cast<int64_t>(gguf_get_arr_n(g, tokens))) : 1;
    gguf_free(g);
    return context_bytes(m, n_ctx, n_seq, n_ubatch);
}

uint64_t available_memory_bytes() {
    if (FILE * f = std::fopen("/proc/meminfo", "r")) {
        char line[256];
        unsigned long long kb = 0;
        bool found = false;
        while (std::fgets(line, sizeof line, f) != nullptr) {
            if (std::sscanf(line, "MemAvailable: %llu kB", &kb) == 1) {
                found = true;
                break;
            }
        }
        std::fclose(f);
        if (found) return static_cast<uint64_t>(kb) * 1024;
    }
#if defined(_SC_AVPHYS_PAGES)
    const long pages = sysconf(_SC_AVPHYS_PAGES), size = sysconf(_SC_PAGESIZE);
    if (pages > 0 && size > 0) return static_cast<uint64_t>(pages) * static_cast<uint64_t>(size);
#endif
    return UINT64_MAX;  // unknown: only llama.cpp's own limits apply
}

void check_rollout_context(const llama_model * model, int64_t n_ctx, uint32_t n_seq, uint32_t n_ubatch,
                           const std::string & param, const std::string & why) {
    const std::string because = why.empty() ? "" : " (" + why + ")";
    if (n_seq < 1 || n_seq > MAX_SEQUENCES) {
        throw std::invalid_argument(param + ": needs " + std::to_string(n_seq) + " sequences" + because +
                                    "; llama.cpp allows 1 to " + std::to_string(MAX_SEQUENCES));
    }
    // llama.cpp caps the batch at n_ctx and reserves an output row per
    // sequence in it: fewer cells than sequences is a GGML_ASSERT.
    if (n_ctx < static_cast<int64_t>(n_seq)) {
        throw std::invalid_argument(param + ": the rollout context needs at least " + std::to_string(n_seq) +
                                    " cells for its " + std::to_string(n_seq) + " sequences, got n_ctx = " +
                                    std::to_string(n_ctx) + because);
    }
    if (n_ctx > MAX_CELLS) {
        throw std::invalid_argument(param + ": the rollout context would need " + std::to_string(n_ctx) + " cells" +
                                    because + "; llama.cpp addresses at most " + std::to_string(MAX_CELLS));
    }
    if (model == nullptr) return;
    const uint64_t need = rollout_context_bytes(model, n_ctx, n_seq, n_ubatch);
    const uint64_t have = available_memory_bytes();
    if (need > have) {
        throw std::invalid_argument(param + ": a rollout context of " + std::to_string(n_ctx) + " cells" + because +
                                    " needs about " + mib(need) + ", more than the " + mib(have) +
                                    " of memory available");
    }
}

void check_horizon(const llama_model * model, int64_t horizon) {
    const int64_t train = llama_model_n_ctx_train(model);
    if (train > 0 && horizon > train) {
        throw std::invalid_argument("horizon: must be <= the model's training context (" + std::to_string(train) +
                                    " tokens), got " + std::to_string(horizon));
    }
}

ContextSettings::ContextSettings() {
    const llama_context_params defaults = llama_context_default_params();
#define LLAMA_SIMPLEX_X(type, name) name = defaults.name;
    LLAMA_SIMPLEX_CONTEXT_SETTINGS(LLAMA_SIMPLEX_X)
#undef LLAMA_SIMPLEX_X
}

ContextSettings settings_of(const llama_context_params & params) {
    ContextSettings s;
#define LLAMA_SIMPLEX_X(type, name) s.name = params.name;
    LLAMA_SIMPLEX_CONTEXT_SETTINGS(LLAMA_SIMPLEX_X)
#undef LLAMA_SIMPLEX_X
    return s;
}

void apply_settings(llama_context_params & params, const ContextSettings & settings) {
#define LLAMA_SIMPLEX_X(type, name) params.name = settings.name;
    LLAMA_SIMPLEX_CONTEXT_SETTINGS(LLAMA_SIMPLEX_X)
#undef LLAMA_SIMPLEX_X
}

ContextPtr make_rollout_context(llama_model * model, uint32_t n_ctx, uint32_t n_seq, int32_t n_threads,
                                uint32_t n_batch, uint32_t n_ubatch, const ContextSettings & settings) {
    if (n_seq < 1 || n_seq > MAX_SEQUENCES) {
        throw std::invalid_argument("n_seq: must be in [1, " + std::to_string(MAX_SEQUENCES) + "], got " +
                                    std::to_string(n_seq));
    }
    if (n_ctx < 8) {
        throw std::invalid_argument("n_ctx: must be >= 8, got " + std::to_string(n_ctx));
    }
    llama_context_params p = llama_context_default_params();
    apply_settings(p, settings);
    p.n_ctx = n_ctx;
    p.n_seq_max = n_seq;
    p.n_batch = std::max<uint32_t>(n_batch, n_seq);
    p.n_ubatch = n_ubatch == 0 ? p.n_batch : std::min(n_ubatch, p.n_batch);
    check_rollout_context(model, n_ctx, n_seq, std::min(p.n_ubatch, n_ctx), "n_ctx");
    p.kv_unified = true;  // forks share the prefix's cells
    p.swa_full = true;    // sliding-window layers keep whole sequences, so forks stay valid
    if (n_threads > 0) {
        p.n_threads = n_threads;
        p.n_threads_batch = n_threads;
    }
    llama_context * ctx = nullptr;
    {
        // llama.cpp warns about swa_full on every context made with it, which ours
        // are on purpose; everything else it logs is passed on.
        static thread_local ggml_log_callback forward = nullptr;
        static thread_local void * forward_data = nullptr;
        llama_log_get(&forward, &forward_data);
        llama_log_set([](ggml_log_level level, const char * text, void * data) {
            if (forward != nullptr && std::strstr(text, "full-size SWA cache") == nullptr) forward(level, text, data);
        }, forward_data);
        ctx = llama_init_from_model(model, p);
        llama_log_set(forward, forward_data);
    }
    if (ctx == nullptr) {
        throw std::runtime_error("llama_init_from_model failed for n_ctx=" + std::to_string(n_ctx) +
                                 ", n_seq=" + std::to_string(n_seq));
    }
    return ContextPtr(ctx);
}

RolloutEngine::RolloutEngine(llama_context * ctx)
    : ctx_(ctx),
      n_vocab_(llama_vocab_n_tokens(llama_model_get_vocab(llama_get_model(ctx)))),
      n_batch_(static_cast<int32_t>(llama_n_batch(ctx))) {
    batch_ = llama_batch_init(n_batch_, 0, static_cast<int32_t>(llama_n_seq_max(ctx)));
}

RolloutEngine::~RolloutEngine() {
    llama_batch_free(batch_);
}

void RolloutEngine::clear() {
    llama_memory_clear(llama_get_memory(ctx_), true);
}

void RolloutEngine::extend(llama_seq_id seq, const llama_token * tokens, size_t n, llama_pos pos0, bool output_last) {
    for (size_t done = 0; done < n;) {
        const size_t take = std::min<size_t>(static_cast<size_t>(n_batch_), n - done);
        batch_.n_tokens = static_cast<int32_t>(take);
        for (size_t i = 0; i < take; ++i) {
            batch_.token[i] = tokens[done + i];
            batch_.pos[i] = pos0 + static_cast<llama_pos>(done + i);
            batch_.n_seq_id[i] = 1;
            batch_.seq_id[i][0] = seq;
            batch_.logits[i] = output_last && done + i + 1 == n;
        }
        if (llama_decode(ctx_, batch_) != 0) {
            throw std::runtime_error("llama_decode failed while extending a sequence (is the context full?)");
        }
        done += take;
    }
    n_rows_ = output_last ? 1 : 0;
}

void RolloutEngine::fork(llama_seq_id src, llama_seq_id dst) {
    llama_memory_seq_cp(llama_get_memory(ctx_), src, dst, -1, -1);
}

void RolloutEngine::fork_range(llama_seq_id src, llama_seq_id dst, llama_pos p0, llama_pos p1) {
    llama_memory_seq_cp(llama_get_memory(ctx_), src, dst, p0, p1);
}

void RolloutEngine::drop(llama_seq_id seq) {
    llama_memory_seq_rm(llama_get_memory(ctx_), seq, -1, -1);
}

void RolloutEngine::trim(llama_seq_id seq, llama_pos p0) {
    llama_memory_seq_rm(llama_get_memory(ctx_), seq, p0, -1);
}

std::vector<uint8_t> RolloutEngine::seq_state(llama_seq_id seq, llama_pos p1, llama_seq_id spare) {
    drop(spare);
    fork_range(seq, spare, 0, p1);
    std::vector<uint8_t> out(llama_state_seq_get_size(ctx_, spare));
    out.resize(llama_state_seq_get_data(ctx_, out.data(), out.size(), spare));
    drop(spare);
    return out;
}

void RolloutEngine::step(const llama_seq_id * seqs, const llama_token * tokens, const llama_pos * pos, size_t n) {
    if (n > static_cast<size_t>(n_batch_)) {
        throw std::invalid_argument("step: " + std::to_string(n) + " sequences exceed the batch size " +
                                    std::to_string(n_batch_));
    }
    batch_.n_tokens = static_cast<int32_t>(n);
    for (size_t i = 0; i < n; ++i) {
        batch_.token[i] = tokens[i];
        batch_.pos[i] = pos[i];
        batch_.n_seq_id[i] = 1;
        batch_.seq_id[i][0] = seqs[i];
        batch_.logits[i] = 1;
    }
    if (llama_decode(ctx_, batch_) != 0) {
        throw std::runtime_error("llama_decode failed on a batched step (is the context full?)");
    }
    n_rows_ = n;
}

void RolloutEngine::step_shared(const llama_token * tokens, const llama_pos * pos,
                                const std::vector<std::vector<llama_seq_id>> & seqs) {
    const size_t n = seqs.size();
    if (n > static_cast<size_t>(n_batch_)) {
        throw std::invalid_argument("step: " + std::to_string(n) + " tokens exceed the batch size " +
                                    std::to_string(n_batch_));
    }
    batch_.n_tokens = static_cast<int32_t>(n);
    for (size_t i = 0; i < n; ++i) {
        batch_.token[i] = tokens[i];
        batch_.pos[i] = pos[i];
        batch_.n_seq_id[i] = static_cast<int32_t>(seqs[i].size());
        for (size_t j = 0; j < seqs[i].size(); ++j) batch_.seq_id[i][j] = seqs[i][j];
        batch_.logits[i] = 1;
    }
    if (llama_decode(ctx_, batch_) != 0) {
        throw std::runtime_error("llama_decode failed on a shared step (is the context full?)");
    }
    n_rows_ = n;
}

const float * RolloutEngine::logits(size_t row) const {
    if (row >= n_rows_) {
        throw std::out_of_range("logits: no such row in the last decode");
    }
    // extend() keeps only its last row, which llama.cpp indexes as -1.
    const float * l = llama_get_logits_ith(ctx_, n_rows_ == 1 ? -1 : static_cast<int32_t>(row));
    if (l == nullptr) {
        throw std::runtime_error("the context returned no logits");
    }
    return l;
}

double raw_batched_decode_rows_seconds(llama_context * ctx, const std::vector<llama_token> & prompt,
                                       const std::vector<int32_t> & rows) {
    if (prompt.empty()) throw std::invalid_argument("prompt: must hold at least one token");
    const int32_t n_seq_max = static_cast<int32_t>(llama_n_seq_max(ctx));
    int64_t cells = static_cast<int64_t>(prompt.size());
    int32_t n_seq = 1;
    for (int32_t k : rows) {
        if (k < 1 || k > n_seq_max) throw std::invalid_argument("rows: each must be in [1, " + std::to_string(n_seq_max) + "]");
        n_seq = std::max(n_seq, k);
        cells += k;
    }
    if (cells > llama_n_ctx(ctx)) throw std::invalid_argument("rows: the context cannot hold prompt + sum(rows) cells");
    RolloutEngine engine(ctx);
    const auto t0 = std::chrono::steady_clock::now();
    engine.clear();
    if (prompt.size() > 1) engine.extend(0, prompt.data(), prompt.size() - 1, 0);
    for (int32_t s = 1; s < n_seq; ++s) engine.fork(0, s);
    std::vector<llama_pos> next(static_cast<size_t>(n_seq), static_cast<llama_pos>(prompt.size()) - 1);
    llama_batch batch = llama_batch_init(n_seq, 0, 1);
    for (int32_t k : rows) {
        batch.n_tokens = k;
        for (int32_t s = 0; s < k; ++s) {
            batch.token[s] = prompt.back();
            batch.pos[s] = next[static_cast<size_t>(s)]++;
            batch.n_seq_id[s] = 1;
            batch.seq_id[s][0] = s;
            batch.logits[s] = 1;
        }
        if (llama_decode(ctx, batch) != 0) {
            llama_batch_free(batch);
            throw std::runtime_error("llama_decode failed in the raw batched decode");
        }
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    llama_batch_free(batch);
    engine.clear();
    return seconds;
}

double token_logprob(const float * logits, int32_t n_vocab, llama_token token) {
    float hi = -INFINITY;
#pragma omp simd reduction(max : hi)
    for (int32_t i = 0; i < n_vocab; ++i) {
        hi = logits[i] > hi ? logits[i] : hi;  // ternary: vectorises, std::max does not
    }
    double sum = 0.0;
#pragma omp simd reduction(+ : sum)
    for (int32_t i = 0; i < n_vocab; ++i) {
        sum += vec::exp_nonpositive(logits[i] - hi);
    }
    return static_cast<double>(logits[token]) - hi - std::log(sum);
}

}  // namespace llama_simplex
