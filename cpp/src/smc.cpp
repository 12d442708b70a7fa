// Power-SMC (docs/math.md §6, smc.h): the weights, ESS, systematic resampling
// and normaliser as pure functions, and the particle loop on the rollout engine.
#include "llama_simplex/smc.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

#include "llama_simplex/generate.h"
#include "llama_simplex/rollout.h"
#include "llama_simplex/simplex.h"
#include "llama_simplex/specs.h"
#include "vec_math.h"

namespace llama_simplex {

namespace {

constexpr double NEG_INF = -std::numeric_limits<double>::infinity();

double log_sum_exp(const std::vector<double> & x) {
    double hi = NEG_INF;
    for (double v : x) hi = std::max(hi, v);
    if (hi == NEG_INF) return NEG_INF;
    double s = 0.0;
    for (double v : x) s += std::exp(v - hi);
    return hi + std::log(s);
}

// One row of logits at exponent a: e[i] = exp(a·(logit_i − max)) (q's unnormalised weights),
// lse_p = log-sum-exp(logits), log Z = log Σ p^a.
struct Tempered {
    double lse_p = 0.0;
    double log_z = 0.0;
    double total = 0.0;  // Σ e
};

// A decoded row's weights e and their sums per block of ROW_BLOCK tokens: the draw finds
// its block from the sums and scans one block, not the whole vocabulary (262,144 for Gemma 3).
constexpr size_t ROW_BLOCK = 2048;

struct Row {
    std::vector<float>  e;
    std::vector<double> block;  // Σ e over each block
    Tempered            t;
};

// max over the row in 16 independent lanes: the plain `x > hi ? x : hi` reduction does not
// vectorise without -ffinite-math-only, the lanes do (vmaxps); NaN is never taken, as before.
float row_max(const float * x, size_t n) {
    float acc[16];
    for (float & a : acc) a = -std::numeric_limits<float>::infinity();
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        for (int j = 0; j < 16; ++j) acc[j] = x[i + j] > acc[j] ? x[i + j] : acc[j];
    }
    float hi = -std::numeric_limits<float>::infinity();
    for (; i < n; ++i) hi = x[i] > hi ? x[i] : hi;
    for (float a : acc) hi = a > hi ? a : hi;
    return hi;
}

// One pass over the logits, block by block (each block's p weights only in an L1 scratch
// buffer): the per-token values are the same exp_nonpositive calls as two full passes.
void tempered(const float * logits, int32_t n_vocab, double a, Row & row) {
    const size_t n = static_cast<size_t>(n_vocab);
    const float hi = row_max(logits, n);
    if (!std::isfinite(hi)) throw std::runtime_error("the model returned no finite logit (NaN or all -inf)");
    row.e.resize(n);
    row.block.resize((n + ROW_BLOCK - 1) / ROW_BLOCK);
    const float af = static_cast<float>(a);
    float scratch[ROW_BLOCK];
    double sum_p = 0.0, total = 0.0;
    for (size_t b = 0, i0 = 0; i0 < n; ++b, i0 += ROW_BLOCK) {
        const size_t len = std::min(ROW_BLOCK, n - i0);
        if (a == 1.0) {  // e holds p's weights: q = p, Z = 1 exactly
            row.block[b] = vec::exp_shifted(logits + i0, row.e.data() + i0, len, 1.0f, hi);
            sum_p += row.block[b];
        } else {
            row.block[b] = vec::exp_shifted(logits + i0, row.e.data() + i0, len, af, af * hi);
            sum_p += vec::exp_shifted(logits + i0, scratch, len, 1.0f, hi);
        }
        total += row.block[b];
    }
    Tempered & t = row.t;
    t.lse_p = static_cast<double>(hi) + std::log(sum_p);
    t.total = total;
    t.log_z = a == 1.0 ? 0.0 : std::log(total) - a * std::log(sum_p);
    if (!std::isfinite(t.lse_p) || !std::isfinite(t.log_z)) {
        throw std::runtime_error("the model returned non-finite logits");
    }
}

// Draws an index with probability e[i] / total (u uniform in [0, 1)): inverse CDF, skipping
// whole blocks by their sums.
llama_token draw_index(const Row & r, double u) {
    const double target = u * r.t.total;
    const size_t n = r.e.size();
    double run = 0.0;
    size_t b = 0;
    // Skip blocks whose end stays at or below the target (the last block is always scanned).
    while (b + 1 < r.block.size() && run + r.block[b] <= target) run += r.block[b++];
    for (size_t i = b * ROW_BLOCK; i < n; ++i) {
        if (r.e[i] <= 0.0f) continue;
        run += r.e[i];
        if (run > target) return static_cast<llama_token>(i);
    }
    // Rounding at the top end: the last token with weight.
    for (size_t i = n; i-- > 0;) {
        if (r.e[i] > 0.0f) return static_cast<llama_token>(i);
    }
    return 0;
}

// An index drawn ∝ exp(log_w).
size_t draw_weighted(const std::vector<double> & log_w, double u) {
    const double lse = log_sum_exp(log_w);
    double run = 0.0;
    size_t last = 0;
    for (size_t i = 0; i < log_w.size(); ++i) {
        const double w = std::exp(log_w[i] - lse);
        if (!(w > 0.0)) continue;
        run += w;
        last = i;
        if (run > u) return i;
    }
    return last;
}

}  // namespace

double smc_alpha_at(double alpha, int32_t ramp, int32_t t) {
    if (t <= 0) return 1.0;
    if (ramp <= 0 || t >= ramp) return alpha;
    return 1.0 + (alpha - 1.0) * static_cast<double>(t) / static_cast<double>(ramp);
}

double smc_log_z(const float * logits, int32_t n, double a, double * lse_p) {
    Row row;
    tempered(logits, n, a, row);
    if (lse_p != nullptr) *lse_p = row.t.lse_p;
    return row.t.log_z;
}

double smc_incremental_log_weight(double a_t, double a_prev, double loglik, double log_z, bool ended) {
    // (a_t − a_prev)·loglik is 0 once the ramp is over, also for loglik = -inf (never NaN).
    const double ramp_term = a_t == a_prev ? 0.0 : (a_t - a_prev) * loglik;
    return ended ? ramp_term : ramp_term + log_z;
}

double smc_ess(const std::vector<double> & log_w) {
    double hi = NEG_INF;
    for (double v : log_w) hi = std::max(hi, v);
    if (hi == NEG_INF) return 0.0;
    double s1 = 0.0, s2 = 0.0;
    for (double v : log_w) {
        const double w = v == hi ? 1.0 : std::exp(v - hi);  // equal weights give exactly N
        s1 += w;
        s2 += w * w;
    }
    return s1 * s1 / s2;
}

std::vector<int32_t> smc_systematic_resample(const std::vector<double> & log_w, double u) {
    const size_t n = log_w.size();
    if (n == 0) return {};
    if (!(u >= 0.0 && u < 1.0)) throw std::invalid_argument("u: must be in [0, 1)");
    const double lse = log_sum_exp(log_w);
    if (!std::isfinite(lse)) throw std::invalid_argument("log_w: needs a finite weight");
    std::vector<int32_t> out(n);
    double cum = 0.0;
    size_t i = 0;
    size_t last_positive = 0;
    for (size_t k = 0; k < n; ++k) {
        const double point = (u + static_cast<double>(k)) / static_cast<double>(n);
        while (i < n) {
            const double w = std::exp(log_w[i] - lse);
            if (w > 0.0 && cum + w > point) break;
            if (w > 0.0) last_positive = i;
            cum += w;
            ++i;
        }
        // Rounding can leave the last points past the cumulative sum: the last particle with weight takes them.
        out[k] = static_cast<int32_t>(i < n ? i : last_positive);
    }
    return out;
}

std::vector<int32_t> smc_resample_slots(const std::vector<int32_t> & ancestors) {
    const size_t n = ancestors.size();
    std::vector<int32_t> offspring(n, 0);
    for (int32_t a : ancestors) {
        if (a < 0 || static_cast<size_t>(a) >= n) throw std::invalid_argument("ancestors: index out of range");
        ++offspring[static_cast<size_t>(a)];
    }
    std::vector<int32_t> src(n);
    std::vector<int32_t> free_slots;  // particles with no offspring, in order
    for (size_t s = 0; s < n; ++s) {
        src[s] = static_cast<int32_t>(s);
        if (offspring[s] == 0) free_slots.push_back(static_cast<int32_t>(s));
    }
    size_t next = 0;
    for (size_t a = 0; a < n; ++a) {
        for (int32_t c = 1; c < offspring[a]; ++c) src[static_cast<size_t>(free_slots[next++])] = static_cast<int32_t>(a);
    }
    return src;
}

double smc_log_normaliser(const std::vector<double> & log_w) {
    if (log_w.empty()) return NEG_INF;
    return log_sum_exp(log_w) - std::log(static_cast<double>(log_w.size()));
}

void check_smc_params(const SmcParams & p) {
    for (const ParamSpec & spec : find_sampler_spec("smc")->params) {
        if (spec.get_run == nullptr) continue;
        const std::string why = check_param(spec, spec.get_run(&p));
        if (!why.empty()) throw std::invalid_argument(why);
    }
}

RolloutShape smc_context_shape(const SmcParams & p, int64_t n_prompt, int64_t max_tokens) {
    check_smc_params(p);
    if (n_prompt < 0) throw std::invalid_argument("prompt: negative length");
    if (max_tokens < 0) throw std::invalid_argument("max_tokens: must be >= 0, got " + std::to_string(max_tokens));
    // The prompt's cells once (shared), and each particle's own tokens: a resampled copy shares
    // its ancestor's cells and adds one per step, as the particle it replaced did.
    return rollout_shape(n_prompt + p.particles * max_tokens + 1, static_cast<uint32_t>(p.particles),
                         "prompt " + std::to_string(n_prompt) + " + particles " + std::to_string(p.particles) +
                             " x max_tokens " + std::to_string(max_tokens) + " + 1");
}

SmcResult smc_generate(llama_context * ctx, const std::vector<llama_token> & prompt, const SmcParams & pp,
                       int32_t max_tokens, uint64_t seed, bool stop_at_eog,
                       const std::function<bool(int32_t, int32_t)> & progress) {
    check_smc_params(pp);
    RolloutEngine engine(ctx);
    const llama_vocab * vocab = llama_model_get_vocab(llama_get_model(ctx));
    const int32_t n_vocab = engine.n_vocab();
    const int32_t n = pp.particles;
    if (max_tokens < 0) throw std::invalid_argument("max_tokens: must be >= 0, got " + std::to_string(max_tokens));
    check_prompt(prompt, n_vocab);
    // Refused before any work: too few sequences or cells for N particles.
    if (engine.n_seq_max() < n) {
        throw std::invalid_argument("particles: " + std::to_string(n) + " particles need as many sequences, the context has " +
                                    std::to_string(engine.n_seq_max()));
    }
    const RolloutShape shape = smc_context_shape(pp, static_cast<int64_t>(prompt.size()), max_tokens);
    if (shape.cells > engine.n_ctx()) {
        throw std::invalid_argument("max_tokens: SMC needs " + std::to_string(shape.cells) + " cells (" + shape.why +
                                    "), the context has " + std::to_string(engine.n_ctx()));
    }

    // Lineages (docs/math.md §6): particles holding the same token sequence share one KV
    // sequence and one decoded row, as their next-token logits are the same; each still draws
    // its own token from that row, so the law is unchanged. A lineage's sequence id is the index
    // of one of its particles (its representative): ids stay < N, and a particle that is not a
    // representative has a free id, which is where its branch goes when the lineage splits.
    // The members of a lineage are all live or all ended (they end at the same draw).
    struct Particle {
        SmcParticle  out;
        llama_seq_id seq = 0;  // its lineage's sequence (the representative's index)
        bool         ended = false;
    };
    SmcResult result;
    uint64_t rng = seed;
    const llama_pos p0 = static_cast<llama_pos>(prompt.size());
    std::vector<Row> rows(static_cast<size_t>(n));
    // Per sequence id: its pending token (decoded at the next step; its logits give the next
    // token), that token's position, and the step's row of the lineage (-1: not decoded).
    std::vector<llama_token> pending(static_cast<size_t>(n), 0);
    std::vector<llama_pos>   pos(static_cast<size_t>(n), 0);
    std::vector<int32_t>     row_of(static_cast<size_t>(n), -1);
    // Every fork goes into a free sequence (the bookkeeping's invariant): checked, as a
    // fork into a sequence in use would mix two lineages' cells silently.
    llama_memory_t mem = llama_get_memory(ctx);
    auto fork_free = [&](llama_seq_id src, llama_seq_id dst) {
        if (llama_memory_seq_pos_max(mem, dst) >= 0) {
            throw std::logic_error("smc: sequence " + std::to_string(dst) + " is in use (lineage bookkeeping)");
        }
        engine.fork(src, dst);
    };
    auto live_lineages = [&](const std::vector<Particle> & ps) {
        std::vector<llama_seq_id> out;
        std::vector<char> seen(static_cast<size_t>(n), 0);
        for (const Particle & pt : ps) {
            if (pt.ended || seen[pt.seq]) continue;
            seen[pt.seq] = 1;
            out.push_back(pt.seq);
        }
        return out;
    };

    engine.clear();
    // Invariant: a sequence's cells cover every position but its pending token.
    if (p0 > 1) engine.extend(0, prompt.data(), prompt.size() - 1, 0);

    bool stop = false;
    std::vector<double> all_log_w;  // every round's final log-weights, for the draw across rounds
    std::vector<Particle> parts(static_cast<size_t>(n));
    for (int32_t round = 0; round < pp.rounds && !stop; ++round) {
        if (round > 0) {  // back to the prompt, whose cells every sequence shares: decoded once for all rounds
            const llama_seq_id keep = parts[0].seq;
            for (int32_t q = 0; q < n; ++q) {
                if (q != keep) engine.drop(q);
            }
            engine.trim(keep, p0 - 1);
            if (keep != 0) fork_free(keep, 0), engine.drop(keep);
        }
        // One lineage in sequence 0, the prompt's: its last token is decoded once for all.
        parts.assign(static_cast<size_t>(n), Particle{});
        pending[0] = prompt.back();
        pos[0] = p0 - 1;
        std::vector<double> lw(static_cast<size_t>(n), 0.0);
        for (int32_t s = 0; s < n; ++s) parts[s].out.ancestor = s;
        SmcRound rd;
        double a_prev = 1.0;  // the exponent every weight is for so far
        for (int32_t t = 1; t <= max_tokens; ++t) {
            std::vector<llama_seq_id> live = live_lineages(parts);
            if (live.empty()) break;
            const double a_t = smc_alpha_at(pp.alpha, pp.ramp, t);
            // One llama_decode, one row per live lineage.
            std::vector<llama_token> toks;
            std::vector<llama_pos> at;
            for (size_t r = 0; r < live.size(); ++r) {
                row_of[live[r]] = static_cast<int32_t>(r);
                toks.push_back(pending[live[r]]);
                at.push_back(pos[live[r]]);
            }
            engine.step(live.data(), toks.data(), at.data(), live.size());
            rd.rows.push_back(static_cast<int32_t>(live.size()));
            result.decoded_tokens += static_cast<int64_t>(live.size());
            ++result.decode_calls;
            for (size_t r = 0; r < live.size(); ++r) tempered(engine.logits(r), n_vocab, a_t, rows[r]);

            // Incremental weights: they depend on the prefix only, so resampling comes before the draw.
            for (int32_t s = 0; s < n; ++s) {
                const Particle & pt = parts[s];
                const double log_z = pt.ended ? 0.0 : rows[static_cast<size_t>(row_of[pt.seq])].t.log_z;
                lw[s] += smc_incremental_log_weight(a_t, a_prev, pt.out.loglik, log_z, pt.ended);
            }
            a_prev = a_t;
            if (t % pp.block == 0) {
                const double ess = smc_ess(lw);
                rd.ess.push_back(ess);
                if (ess < pp.ess_threshold * n) {
                    const std::vector<int32_t> src = smc_resample_slots(smc_systematic_resample(lw, uniform01(rng)));
                    const double mean = smc_log_normaliser(lw);  // every weight becomes the mean: Ẑ carries on
                    std::vector<char> was(static_cast<size_t>(n), 0), used(static_cast<size_t>(n), 0);
                    for (const Particle & pt : parts) was[pt.seq] = 1;
                    // Bookkeeping only: slot s takes particle src[s] with its lineage (sources keep their
                    // slots and are never overwritten, so any order copies the old particles).
                    for (int32_t s = 0; s < n; ++s) {
                        lw[s] = mean;
                        if (src[s] != s) parts[s] = parts[src[s]];
                    }
                    for (const Particle & pt : parts) used[pt.seq] = 1;
                    // A lineage whose representative's slot now holds another lineage moves to a particle
                    // of its that kept its slot (one exists: a source keeps its slot); that particle was
                    // no representative, so its id is free. A lineage with no particle left is dropped.
                    std::vector<llama_seq_id> moved(static_cast<size_t>(n), -1);
                    for (int32_t s = 0; s < n; ++s) {
                        const llama_seq_id q = parts[s].seq;
                        if (src[s] == s && parts[q].seq != q && moved[q] < 0) moved[q] = s;
                    }
                    for (int32_t q = 0; q < n; ++q) {
                        if (!was[q]) continue;
                        if (moved[q] >= 0) {
                            const llama_seq_id m = moved[q];
                            fork_free(q, m);
                            engine.drop(q);
                            pending[m] = pending[q], pos[m] = pos[q], row_of[m] = row_of[q];
                        } else if (!used[q]) {
                            engine.drop(q);
                        }
                    }
                    for (Particle & pt : parts) {
                        if (moved[pt.seq] >= 0) pt.seq = moved[pt.seq];
                    }
                    live = live_lineages(parts);
                    ++rd.resamples;
                }
            }
            // The draw: y_t ~ q_t = softmax(α_t · logits) for each live particle, from its lineage's row.
            std::vector<llama_token> drawn(static_cast<size_t>(n), -1);
            for (int32_t s = 0; s < n; ++s) {
                Particle & pt = parts[s];
                if (pt.ended) continue;
                const size_t r = static_cast<size_t>(row_of[pt.seq]);
                const llama_token y = draw_index(rows[r], uniform01(rng));
                drawn[s] = y;
                pt.out.loglik += static_cast<double>(engine.logits(r)[y]) - rows[r].t.lse_p;
                if (stop_at_eog && llama_vocab_is_eog(vocab, y)) {
                    pt.ended = pt.out.stopped = true;
                    continue;
                }
                pt.out.tokens.push_back(y);
                if (static_cast<int32_t>(pt.out.tokens.size()) >= max_tokens) pt.ended = true;
            }
            // Each lineage splits by drawn token: the branch holding the representative keeps the
            // sequence, every other branch forks it (seq_cp: shared cells, no tensor copied) into
            // the id of its first particle.
            for (llama_seq_id q : live) {
                std::vector<int32_t> members;
                for (int32_t s = 0; s < n; ++s) {
                    if (parts[s].seq == q) members.push_back(s);
                }
                std::vector<llama_seq_id> branch(members.size(), q);
                for (size_t i = 0; i < members.size(); ++i) {
                    const int32_t s = members[i];
                    if (drawn[s] == drawn[q]) continue;  // one token, one branch (end-of-sequence included)
                    size_t j = 0;
                    while (drawn[members[j]] != drawn[s]) ++j;
                    branch[i] = members[j];
                    if (j == i) {
                        fork_free(q, s);
                        pending[s] = drawn[s], pos[s] = pos[q] + 1;
                    }
                }
                for (size_t i = 0; i < members.size(); ++i) parts[members[i]].seq = branch[i];
                pending[q] = drawn[q], ++pos[q];
            }
            std::fill(row_of.begin(), row_of.end(), -1);
            if (progress && !progress(t, rd.resamples)) {
                stop = true;
                break;
            }
        }
        // The rest of the ramp for every particle (all ended): the weights are then for p(y)^α.
        for (int32_t s = 0; s < n; ++s) {
            lw[s] += smc_incremental_log_weight(pp.alpha, a_prev, parts[s].out.loglik, 0.0, true);
        }
        rd.log_z = smc_log_normaliser(lw);
        const double lse = log_sum_exp(lw);
        std::vector<int32_t> ancestors;
        for (int32_t s = 0; s < n; ++s) {
            parts[s].out.log_weight = lw[s];
            rd.weights.push_back(std::exp(lw[s] - lse));
            ancestors.push_back(parts[s].out.ancestor);
            rd.particles.push_back(parts[s].out);
            all_log_w.push_back(lw[s]);
        }
        std::sort(ancestors.begin(), ancestors.end());
        rd.unique_ancestors = static_cast<int32_t>(std::unique(ancestors.begin(), ancestors.end()) - ancestors.begin());
        result.rounds.push_back(std::move(rd));
    }
    // Particle s is left in sequence s (its lineage's cells shared, as smc.h promises): a
    // particle that is no representative has a free id.
    for (int32_t s = 0; s < n; ++s) {
        if (parts[s].seq != s) fork_free(parts[s].seq, s);
    }
    // Rounds combine by Ẑ_r: a round ∝ Ẑ_r, then a particle ∝ its weight; as every round
    // starts at weight 1 this is one draw ∝ exp(log_w) over all particles of all rounds.
    std::vector<double> log_zs;
    for (const SmcRound & rd : result.rounds) log_zs.push_back(rd.log_z);
    const double lse_z = log_sum_exp(log_zs);
    for (double lz : log_zs) result.round_weights.push_back(std::exp(lz - lse_z));
    if (!all_log_w.empty()) {
        const size_t pick = draw_weighted(all_log_w, uniform01(rng));
        result.round = static_cast<int32_t>(pick / static_cast<size_t>(n));
        result.particle = static_cast<int32_t>(pick % static_cast<size_t>(n));
        const SmcParticle & chosen = result.rounds[result.round].particles[result.particle];
        result.tokens = chosen.tokens;
        result.stopped = chosen.stopped;
    }
    return result;
}

}  // namespace llama_simplex
