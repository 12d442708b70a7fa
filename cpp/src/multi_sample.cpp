#include "llama_simplex/multi_sample.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <stdexcept>
#include <string>

#include "backend_sampling.h"
#include "llama_simplex/generate.h"
#include "llama_simplex/rollout.h"
#include "llama_simplex/samplers.h"

namespace llama_simplex {

bool cut_at_stop(std::string & text, size_t from, const std::vector<std::string> & stops) {
    size_t best = std::string::npos;
    for (const auto & s : stops) {
        if (s.empty()) continue;
        const size_t at = text.find(s, from > s.size() ? from - s.size() : 0);
        best = std::min(best, at);
    }
    if (best == std::string::npos) {
        return false;
    }
    text.resize(best);
    return true;
}


namespace {

// log p(token) at temperature 1 from the logits an in-graph sampler left
// (the model's when our drawing decoder ran first); NaN when they are not a
// whole vocabulary row.
double sampled_logprob(llama_context * ctx, int32_t idx, int32_t n_vocab, llama_token token) {
    const float * logits = llama_get_sampled_logits_ith(ctx, idx);
    if (logits == nullptr || llama_get_sampled_logits_count_ith(ctx, idx) != static_cast<uint32_t>(n_vocab)) {
        return std::nan("");
    }
    return token_logprob(logits, n_vocab, token);
}

}  // namespace

SampleKResult sample_k(llama_context * ctx, const std::vector<llama_token> & prompt,
                       const std::vector<llama_sampler *> & samplers_in, const SampleKOptions & o) {
    const size_t k = samplers_in.size();
    std::vector<llama_sampler *> samplers = samplers_in;
    std::vector<std::unique_ptr<llama_sampler, void (*)(llama_sampler *)>> chains;  // freed after own_ctx
    ContextPtr own_ctx;
    const bool in_graph = o.backend_sampling;
    if (in_graph && k > 0 && k <= llama_n_seq_max(ctx)) {
        for (size_t i = 0; i < k; ++i) {
            chains.emplace_back(backend_chain(samplers_in[i]), llama_sampler_free);
            samplers[i] = chains.back().get();
        }
        own_ctx = make_backend_context(ctx, samplers, o.settings);
        ctx = own_ctx.get();
    }
    RolloutEngine engine(ctx);
    if (k == 0 || static_cast<int32_t>(k) > engine.n_seq_max()) {
        throw std::invalid_argument("k: must be in [1, " + std::to_string(engine.n_seq_max()) + "] for this context, got " +
                                    std::to_string(k));
    }
    check_prompt(prompt, engine.n_vocab());
    if (o.max_tokens < 0) {
        throw std::invalid_argument("max_tokens: must be >= 0");
    }
    const int64_t cells = static_cast<int64_t>(prompt.size()) + static_cast<int64_t>(k) * o.max_tokens;
    if (cells > engine.n_ctx()) {
        throw std::invalid_argument("max_tokens: prompt (" + std::to_string(prompt.size()) + ") + k (" + std::to_string(k) +
                                    ") x max_tokens (" + std::to_string(o.max_tokens) + ") = " + std::to_string(cells) +
                                    " cells exceed the context's " + std::to_string(engine.n_ctx()));
    }
    const llama_model * model = llama_get_model(ctx);
    const llama_vocab * vocab = llama_model_get_vocab(model);

    SampleKResult r;
    r.tokens.resize(k);
    r.texts.resize(k);
    r.loglik.assign(k, 0.0);
    r.finish.assign(k, "length");
    if (o.max_tokens == 0) {
        return r;
    }

    engine.clear();
    for (auto * s : samplers) llama_sampler_reset(s);
    if (!in_graph) {
        engine.extend(0, prompt.data(), prompt.size(), 0);
        for (size_t i = 1; i < k; ++i) {
            engine.fork(0, static_cast<llama_seq_id>(i));
        }
    } else {
        // Each sequence samples its first token from a row of its own (a
        // sequence's in-graph sampler only sees that sequence's outputs):
        // the prompt's last token is decoded once per sequence. The rest of
        // the prompt has no output, so sequence 0's sampler draws nothing
        // there (its draws stay those of the CPU path).
        if (prompt.size() > 1) engine.extend(0, prompt.data(), prompt.size() - 1, 0, false);
        std::vector<llama_seq_id> seqs(k);
        std::vector<llama_token> last(k, prompt.back());
        std::vector<llama_pos> at(k, static_cast<llama_pos>(prompt.size() - 1));
        for (size_t i = 0; i < k; ++i) {
            seqs[i] = static_cast<llama_seq_id>(i);
            if (i > 0 && prompt.size() > 1) engine.fork(0, seqs[i]);
        }
        engine.step(seqs.data(), last.data(), at.data(), k);
    }

    std::vector<llama_token_data> cur(static_cast<size_t>(engine.n_vocab()));
    std::vector<llama_seq_id> live_seq;
    std::vector<llama_token> next;
    std::vector<llama_pos> pos;
    // Row of the last decode holding each live sequence's logits; the
    // prompt's last row serves every sequence at the first step.
    std::vector<size_t> row(k, 0);
    if (in_graph) {
        for (size_t i = 0; i < k; ++i) row[i] = i;
    }
    std::vector<bool> live(k, true);
    const llama_pos p0 = static_cast<llama_pos>(prompt.size());

    for (int32_t t = 0; t < o.max_tokens; ++t) {
        live_seq.clear();
        next.clear();
        pos.clear();
        for (size_t i = 0; i < k; ++i) {
            if (!live[i]) continue;
            const float * logits = in_graph ? nullptr : engine.logits(row[i]);
            const int32_t idx = static_cast<int32_t>(row[i]);
            const llama_token token = in_graph ? sample_backend(ctx, samplers[i], idx)
                                               : sample_and_accept(samplers[i], logits, cur);
            if (o.stop_at_eog && llama_vocab_is_eog(vocab, token)) {
                live[i] = false;
                r.finish[i] = "stop";
                continue;
            }
            r.loglik[i] += in_graph ? sampled_logprob(ctx, idx, engine.n_vocab(), token)
                                    : token_logprob(logits, engine.n_vocab(), token);
            r.tokens[i].push_back(token);
            const size_t before = r.texts[i].size();
            r.texts[i] += detokenize(model, {token});
            if (cut_at_stop(r.texts[i], before, o.stop)) {
                live[i] = false;
                r.finish[i] = "stop";
                continue;
            }
            if (t + 1 < o.max_tokens) {
                live_seq.push_back(static_cast<llama_seq_id>(i));
                next.push_back(token);
                pos.push_back(p0 + t);
            }
        }
        if (live_seq.empty()) {
            break;
        }
        engine.step(live_seq.data(), next.data(), pos.data(), live_seq.size());
        for (size_t j = 0; j < live_seq.size(); ++j) {
            row[static_cast<size_t>(live_seq[j])] = j;
        }
        // Sequences not decoded this step (finished) keep stale rows but are not live.
        for (size_t i = 0; i < k; ++i) {
            if (live[i] && std::find(live_seq.begin(), live_seq.end(), static_cast<llama_seq_id>(i)) == live_seq.end()) {
                live[i] = false;  // reached max_tokens
            }
        }
    }
    for (size_t i = 1; i < k; ++i) {
        engine.drop(static_cast<llama_seq_id>(i));
    }
    return r;
}

}  // namespace llama_simplex
