#include "llama_simplex/solver.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "vec_math.h"

namespace llama_simplex {

namespace {

constexpr float NEG_INF = -std::numeric_limits<float>::infinity();

// q = softmax(theta) over n, and log q when asked; false if not finite.
bool normalise_log(const float * theta, float * q, float * log_q, size_t n) {
    float hi = NEG_INF;
    for (size_t i = 0; i < n; ++i) {
        hi = std::max(hi, theta[i]);
    }
    if (!std::isfinite(hi)) {
        return false;
    }
    const double sum = vec::exp_shifted(theta, q, n, 1.0f, hi);
    if (!(sum > 0.0) || !std::isfinite(sum)) {
        return false;
    }
    const float inv = static_cast<float>(1.0 / sum);
    for (size_t i = 0; i < n; ++i) {
        q[i] *= inv;
    }
    if (log_q != nullptr) {
        const float shift = hi + static_cast<float>(std::log(sum));
        for (size_t i = 0; i < n; ++i) {
            log_q[i] = theta[i] - shift;
        }
    }
    return true;
}

// One coverage-gradient entry: w K (1 - q)^(K-1).
inline float coverage_grad(float w, float q, int32_t k) {
    return w * static_cast<float>(k) * std::pow(std::max(0.0f, 1.0f - q), static_cast<float>(k - 1));
}

}  // namespace

void simplex_gradient(const float * s, const float * log_r, const float * w, size_t n,
                      const Objective & o, const float * q, float * g) {
    const float lam_ent = o.lambda * o.w_entropy;
    const float lam_kl  = o.lambda * o.w_kl;
    const float lam_l2  = o.lambda * o.w_l2;
    const float cov     = o.lambda * o.beta;
    for (size_t i = 0; i < n; ++i) {
        // q = 0 only on tokens that r (and hence every iterate) excludes.
        const float log_q = std::log(q[i]);
        float gi = s[i];
        if (lam_ent != 0.0f) gi -= lam_ent * (log_q + 1.0f);
        if (lam_kl != 0.0f)  gi -= lam_kl * (log_q - log_r[i] + 1.0f);
        if (lam_l2 != 0.0f)  gi -= lam_l2 * q[i];
        if (cov != 0.0f && w != nullptr && w[i] > 0.0f) gi += cov * coverage_grad(w[i], q[i], o.k_samples);
        g[i] = gi;
    }
}

SolveResult solve_simplex(const float * s, const float * log_r, const float * w, size_t n,
                          const Objective & o, const SolverOptions & opt, float * q, float * log_q,
                          SolverWorkspace & ws) {
    auto & theta = ws.theta;
    theta.resize(n);
    const float lam_ent = o.lambda * o.w_entropy;
    const float lam_kl  = o.lambda * o.w_kl;
    const float lam_l2  = o.lambda * o.w_l2;
    const float cov     = o.lambda * o.beta;

    auto fallback = [&](int32_t steps) {
        normalise_log(log_r, q, log_q, n);
        return SolveResult{SolveStatus::fallback, steps, std::numeric_limits<double>::quiet_NaN()};
    };

    // Closed forms: with entropy and KL terms only, q ∝ r^a_kl exp(s/λ) to the power 1/(a_ent + a_kl).
    const bool smooth_only = cov == 0.0f || w == nullptr;
    if (smooth_only && lam_l2 == 0.0f) {
        const float entropic = lam_ent + lam_kl;
        if (entropic > 0.0f) {
            for (size_t i = 0; i < n; ++i) {
                // Tokens outside r's support stay out when a KL term is present.
                theta[i] = (lam_kl > 0.0f && log_r[i] == NEG_INF) ? NEG_INF : (s[i] + lam_kl * log_r[i]) / entropic;
            }
        } else {
            // λ = 0: a linear programme; all mass on the best score, lowest index on ties.
            size_t best = 0;
            for (size_t i = 1; i < n; ++i) {
                if (s[i] > s[best]) best = i;
            }
            std::fill(q, q + n, 0.0f);
            q[best] = 1.0f;
            if (log_q != nullptr) {
                std::fill(log_q, log_q + n, NEG_INF);
                log_q[best] = 0.0f;
            }
            return {SolveStatus::closed_form, 0, 0.0};
        }
        if (!normalise_log(theta.data(), q, log_q, n)) {
            return fallback(0);
        }
        return {SolveStatus::closed_form, 0, 0.0};
    }

    // Mirror ascent from q0 = r, in log space: log q = theta - log_norm.
    auto & covered = ws.covered;
    covered.clear();
    if (!smooth_only) {
        for (size_t i = 0; i < n; ++i) {
            if (w[i] > 0.0f) covered.push_back(static_cast<int32_t>(i));
        }
    }
    auto & g = ws.g;
    auto & trial = ws.trial;
    g.resize(n);
    trial.resize(2 * n);
    float * theta_new = trial.data();
    float * q_new = trial.data() + n;
    std::copy(log_r, log_r + n, theta.data());
    if (!normalise_log(theta.data(), q, nullptr, n)) {
        return fallback(0);
    }
    float log_norm = 0.0f;  // r is normalised

    // The objective itself, to reject a step that does not ascend.
    auto value = [&](const float * th, float ln, const float * qq) {
        double f = 0.0;
        for (size_t i = 0; i < n; ++i) {
            if (th[i] > NEG_INF && qq[i] > 0.0f) {
                const double lq = th[i] - ln;
                f += qq[i] * (s[i] - lam_ent * lq - lam_kl * (lq - log_r[i]) - 0.5 * lam_l2 * qq[i]);
            }
        }
        for (int32_t i : covered) {
            f += cov * w[i] * (1.0 - std::pow(std::max(0.0, 1.0 - static_cast<double>(qq[i])), o.k_samples));
        }
        return f;
    };
    double f_cur = value(theta.data(), log_norm, q);
    float step_size = opt.step;
    double gap = 0.0;
    int32_t step = 0;
    for (;; ++step) {
        // Gradient (no exp/log: theta is log q). Tokens with theta = -inf are
        // outside r's support and stay out.
        for (size_t i = 0; i < n; ++i) {
            const float log_q = theta[i] - log_norm;
            const float gi = s[i] - lam_ent * log_q - lam_kl * (log_q - log_r[i]) - lam_l2 * q[i];
            g[i] = theta[i] > NEG_INF ? gi : NEG_INF;
        }
        for (int32_t i : covered) {
            if (theta[i] > NEG_INF) g[i] += cov * coverage_grad(w[i], q[i], o.k_samples);
        }
        float gmax = NEG_INF;
        double inner = 0.0;
        for (size_t i = 0; i < n; ++i) {
            if (theta[i] > NEG_INF) {
                gmax = std::max(gmax, g[i]);
                inner += static_cast<double>(q[i]) * g[i];
            }
        }
        if (!std::isfinite(gmax) || !std::isfinite(inner) || !std::isfinite(f_cur)) {
            return fallback(step);
        }
        gap = static_cast<double>(gmax) - inner;
        if (gap < opt.tol || step >= opt.max_steps) {
            break;
        }
        // theta' = theta + step (g - max g), re-centred so that max theta' = 0.
        float hi = NEG_INF;
        for (size_t i = 0; i < n; ++i) {
            theta_new[i] = theta[i] > NEG_INF ? theta[i] + step_size * (g[i] - gmax) : NEG_INF;
            hi = std::max(hi, theta_new[i]);
        }
        for (size_t i = 0; i < n; ++i) theta_new[i] -= hi;
        const double sum = vec::exp_shifted(theta_new, q_new, n, 1.0f, 0.0f);
        if (!(sum > 0.0) || !std::isfinite(sum)) {
            return fallback(step);
        }
        const float inv = static_cast<float>(1.0 / sum);
        for (size_t i = 0; i < n; ++i) q_new[i] *= inv;
        const float ln_new = static_cast<float>(std::log(sum));
        const double f_new = value(theta_new, ln_new, q_new);
        // A step that lowers the (concave) objective was too long: halve it
        // and try again; the attempt counts against the step budget.
        if (f_new < f_cur - 1e-12 * (1.0 + std::fabs(f_cur))) {
            step_size *= 0.5f;
            continue;
        }
        std::swap_ranges(theta_new, theta_new + n, theta.data());
        std::copy(q_new, q_new + n, q);
        log_norm = ln_new;
        f_cur = f_new;
    }
    if (log_q != nullptr) {
        for (size_t i = 0; i < n; ++i) log_q[i] = theta[i] - log_norm;
    }
    return {gap < opt.tol ? SolveStatus::converged : SolveStatus::budget, step, gap};
}

void coverage_weights(const float * log_r, size_t n, CoverageWeights kind, int32_t m, float * w,
                      std::vector<int32_t> & order) {
    std::fill(w, w + n, 0.0f);
    const size_t top = std::min<size_t>(static_cast<size_t>(std::max(m, 0)), n);
    if (top == 0) {
        return;
    }
    order.resize(n);
    for (size_t i = 0; i < n; ++i) order[i] = static_cast<int32_t>(i);
    std::partial_sort(order.begin(), order.begin() + top, order.end(), [log_r](int32_t a, int32_t b) {
        return log_r[a] > log_r[b] || (log_r[a] == log_r[b] && a < b);
    });
    const float best = log_r[order[0]];
    for (size_t rank = 0; rank < top; ++rank) {
        const int32_t i = order[rank];
        if (log_r[i] == NEG_INF) break;
        switch (kind) {
            case CoverageWeights::top_m: w[i] = 1.0f; break;
            case CoverageWeights::rank:  w[i] = 1.0f / (1.0f + static_cast<float>(rank)); break;
            case CoverageWeights::gap:   w[i] = std::exp(log_r[i] - best); break;
        }
    }
}

}  // namespace llama_simplex
