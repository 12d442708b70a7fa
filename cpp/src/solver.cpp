#include "llama_simplex/solver.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "vec_math.h"

namespace llama_simplex {

namespace {

constexpr float NEG_INF = -std::numeric_limits<float>::infinity();

// The objective is evaluated from float32 iterates: a drop smaller than this
// (relative) is rounding, not a step that was too long.
constexpr double ACCEPT_SLACK = 1e-9;

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
                      const ObjectiveParams & o, const float * q, float * g) {
    const float lam_ent = o.lam * o.entropy;
    const float lam_kl  = o.lam * o.kl;
    const float lam_l2  = o.lam * o.l2;
    const float cov     = o.lam * o.beta;
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
                          const ObjectiveParams & o, float * q, float * log_q,
                          SolverWorkspace & ws) {
    auto & theta = ws.theta;
    theta.resize(n);
    // Products of the weights in double: two small floats (or two large
    // ones) would underflow (overflow) in float.
    const double lam_ent = static_cast<double>(o.lam) * o.entropy;
    const double lam_kl  = static_cast<double>(o.lam) * o.kl;
    const double lam_l2  = static_cast<double>(o.lam) * o.l2;
    const double cov     = static_cast<double>(o.lam) * o.beta;

    auto fallback = [&](int32_t steps) {
        if (!normalise_log(log_r, q, log_q, n)) {  // r itself is unusable: uniform
            std::fill(q, q + n, 1.0f / static_cast<float>(n));
            if (log_q != nullptr) std::fill(log_q, log_q + n, -std::log(static_cast<float>(n)));
        }
        return SolveResult{SolveStatus::fallback, steps, std::numeric_limits<double>::quiet_NaN()};
    };
    // Candidates with log r = -inf are outside the support (q = 0) under
    // every objective; NaN anywhere, or no candidate left, cannot be solved.
    bool any_live = false;
    for (size_t i = 0; i < n; ++i) {
        if (s[i] != s[i] || log_r[i] != log_r[i] || log_r[i] == -NEG_INF) return fallback(0);
        any_live |= log_r[i] > NEG_INF;
    }
    if (!any_live) return fallback(0);

    // Closed forms: with entropy and KL terms only, q ∝ r^a_kl exp(s/λ) to the power 1/(a_ent + a_kl).
    const bool smooth_only = cov == 0.0 || w == nullptr;
    if (smooth_only && lam_l2 == 0.0) {
        const double entropic = lam_ent + lam_kl;
        if (entropic > 0.0) {
            // theta in double, shifted by its maximum before it becomes a
            // float: a small entropic weight makes |theta| overflow float.
            auto & th = ws.dbl;
            th.resize(n);
            double hi = -std::numeric_limits<double>::infinity();
            for (size_t i = 0; i < n; ++i) {
                th[i] = log_r[i] == NEG_INF ? -std::numeric_limits<double>::infinity()
                                            : (s[i] + lam_kl * log_r[i]) / entropic;
                hi = std::max(hi, th[i]);
            }
            for (size_t i = 0; i < n; ++i) theta[i] = static_cast<float>(th[i] - hi);
        } else {
            // λ = 0: a linear programme; all mass on the best score in the
            // support, lowest index on ties.
            size_t best = n;
            for (size_t i = 0; i < n; ++i) {
                if (log_r[i] > NEG_INF && (best == n || s[i] > s[best])) best = i;
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

    // Mirror ascent from q0 = r in log space, in double precision: this is
    // the general (reference) path, and float32 iterates make the ascent
    // test below see rounding noise instead of the objective.
    auto & covered = ws.covered;
    covered.clear();
    if (!smooth_only) {
        for (size_t i = 0; i < n; ++i) {
            if (w[i] > 0.0f) covered.push_back(static_cast<int32_t>(i));
        }
    }
    auto & buf = ws.dbl;
    buf.assign(5 * n, 0.0);
    double * th = buf.data();          // log q + constant
    double * qd = th + n;              // q
    double * g = qd + n;               // gradient
    double * th_new = g + n;
    double * q_new = th_new + n;
    const double NINF = -std::numeric_limits<double>::infinity();

    // Normalises theta into qq; returns log Σ exp(theta) (NaN if impossible).
    auto normalise = [&](const double * t, double * qq) {
        double hi = NINF;
        for (size_t i = 0; i < n; ++i) hi = std::max(hi, t[i]);
        double z = 0.0;
        for (size_t i = 0; i < n; ++i) {
            qq[i] = t[i] > NINF ? std::exp(t[i] - hi) : 0.0;
            z += qq[i];
        }
        if (!(z > 0.0) || !std::isfinite(z)) return std::numeric_limits<double>::quiet_NaN();
        for (size_t i = 0; i < n; ++i) qq[i] /= z;
        return hi + std::log(z);
    };
    // The objective, to reject a step that does not ascend.
    auto value = [&](const double * t, double ln, const double * qq) {
        double f = 0.0;
        for (size_t i = 0; i < n; ++i) {
            if (t[i] > NINF && qq[i] > 0.0) {
                const double lq = t[i] - ln;
                f += qq[i] * (s[i] - lam_ent * lq - lam_kl * (lq - log_r[i]) - 0.5 * lam_l2 * qq[i]);
            }
        }
        for (int32_t i : covered) {
            f += cov * w[i] * (1.0 - std::pow(std::max(0.0, 1.0 - qq[i]), o.k_samples));
        }
        return f;
    };
    for (size_t i = 0; i < n; ++i) th[i] = log_r[i];  // log r need not be normalised
    double log_norm = normalise(th, qd);
    if (!std::isfinite(log_norm)) return fallback(0);
    double f_cur = value(th, log_norm, qd);
    double step_size = o.step_size;
    double gap = 0.0;
    int32_t step = 0;
    for (;; ++step) {
        double gmax = NINF, inner = 0.0;
        for (size_t i = 0; i < n; ++i) {
            if (th[i] > NINF) {
                const double lq = th[i] - log_norm;
                g[i] = s[i] - lam_ent * lq - lam_kl * (lq - log_r[i]) - lam_l2 * qd[i];
            } else {
                g[i] = NINF;
            }
        }
        for (int32_t i : covered) {
            if (th[i] > NINF) {
                g[i] += cov * w[i] * o.k_samples * std::pow(std::max(0.0, 1.0 - qd[i]), o.k_samples - 1);
            }
        }
        for (size_t i = 0; i < n; ++i) {
            if (th[i] > NINF) {
                gmax = std::max(gmax, g[i]);
                inner += qd[i] * g[i];
            }
        }
        if (!std::isfinite(gmax) || !std::isfinite(inner) || !std::isfinite(f_cur)) {
            return fallback(step);
        }
        gap = gmax - inner;
        if (gap < o.tol || step >= o.steps) {
            break;
        }
        for (size_t i = 0; i < n; ++i) {
            th_new[i] = th[i] > NINF ? th[i] + step_size * (g[i] - gmax) : NINF;
        }
        const double ln_new = normalise(th_new, q_new);
        if (!std::isfinite(ln_new)) return fallback(step);
        const double f_new = value(th_new, ln_new, q_new);
        // A step that lowers the (concave) objective was too long: halve it
        // and try again; the attempt counts against the step budget.
        if (!(f_new >= f_cur - ACCEPT_SLACK * (1.0 + std::fabs(f_cur)))) {  // NaN too
            step_size *= 0.5;
            continue;
        }
        std::copy(th_new, th_new + n, th);
        std::copy(q_new, q_new + n, qd);
        log_norm = ln_new;
        f_cur = f_new;
    }
    for (size_t i = 0; i < n; ++i) {
        q[i] = static_cast<float>(qd[i]);
        if (log_q != nullptr) log_q[i] = static_cast<float>(th[i] - log_norm);
    }
    gap = std::max(gap, 0.0);  // rounding can make it a hair negative
    return {gap < o.tol ? SolveStatus::converged : SolveStatus::budget, step, gap};
}

namespace {

// The affine iterates are evaluated per token as (x - xr) a + c with xr the
// end of the range where (x - xr) a <= 0 and c <= 0: two terms of one sign,
// so no cancellation between large numbers, whatever the scale of x and a.
// In float when a is a normal float of moderate size (then a float gap that
// overflows means an exponent far below -87 anyway); otherwise (a from a
// subnormal temperature or lam, or a huge one) per token in double.
bool float_slope(double a) {
    const double m = std::fabs(a);
    return m == 0.0 || (m >= 0x1p-64 && m <= static_cast<double>(std::numeric_limits<float>::max()));
}

// Σ e_i and Σ (x_i - xr) e_i over x[0..n), e_i = exp((x_i - xr) a + c),
// vectorised on the float path: float lanes within blocks of 1024, double across blocks.
void exp_moments(const float * x, size_t n, float xr, double a, double c, double & sum, double & first) {
    double s0 = 0.0, s1 = 0.0;
    if (!float_slope(a)) {
        for (size_t i = 0; i < n; ++i) {
            const double d = static_cast<double>(x[i]) - xr;
            const double e = vec::exp_nonpositive(static_cast<float>(std::min(d * a + c, 0.0)));
            s0 += e;
            s1 += e * d;
        }
        sum = s0;
        first = s1;
        return;
    }
    const float af = static_cast<float>(a), cf = static_cast<float>(c);
    for (size_t b = 0; b < n; b += 1024) {
        const size_t e_end = std::min(n, b + 1024);
        float f0 = 0.0f, f1 = 0.0f;
#pragma omp simd reduction(+ : f0, f1)
        for (size_t i = b; i < e_end; ++i) {
            const float d = x[i] - xr;
            const float e = vec::exp_nonpositive(d * af + cf);
            f0 += e;
            f1 += e * d;
        }
        s0 += f0;
        s1 += f1;
    }
    sum = s0;
    first = s1;
}

// log q = (x - xr) a + c and q = exp(log q), vectorised on the float path; a
// free function so that the compiler sees plain pointers, not captured references.
void emit_affine(const float * x, size_t n, float xr, double a, double c, float * q, float * log_q, size_t stride) {
    if (!float_slope(a)) {
        for (size_t i = 0; i < n; ++i) {
            const float lq = static_cast<float>((static_cast<double>(x[i]) - xr) * a + c);
            log_q[i * stride] = lq;
            q[i * stride] = vec::exp_nonpositive(std::min(lq, 0.0f));
        }
        return;
    }
    const float af = static_cast<float>(a), cf = static_cast<float>(c);
#pragma omp simd
    for (size_t i = 0; i < n; ++i) {
        const float lq = (x[i] - xr) * af + cf;
        log_q[i * stride] = lq;
        q[i * stride] = vec::exp_nonpositive(std::min(lq, 0.0f));
    }
}

}  // namespace

SolveResult solve_simplex_affine(const float * x, size_t n, const float * w_cov, size_t n_cov, double s_mul, double r_mul,
                                 const ObjectiveParams & o, float * q, float * log_q,
                                 size_t stride, SolverWorkspace & ws) {
    const double lam_ent = static_cast<double>(o.lam) * o.entropy;
    const double lam_kl  = static_cast<double>(o.lam) * o.kl;
    const double big_l   = lam_ent + lam_kl;  // Λ: weight of -log q in the gradient
    const double cov     = static_cast<double>(o.lam) * o.beta;
    n_cov = std::min(n_cov, n);
    const float * xu = x + n_cov;  // the uncovered candidates
    const size_t nu = n - n_cov;

    float xmax = NEG_INF, xmin = -NEG_INF;
#pragma omp simd reduction(max : xmax) reduction(min : xmin)
    for (size_t i = 0; i < n; ++i) {
        xmax = x[i] > xmax ? x[i] : xmax;  // ternaries: GCC vectorises these, not std::max
        xmin = x[i] < xmin ? x[i] : xmin;
    }
    float xu_max = NEG_INF, xu_min = -NEG_INF;
#pragma omp simd reduction(max : xu_max) reduction(min : xu_min)
    for (size_t i = 0; i < nu; ++i) {
        xu_max = xu[i] > xu_max ? xu[i] : xu_max;
        xu_min = xu[i] < xu_min ? xu[i] : xu_min;
    }
    if (!std::isfinite(xmax) || !std::isfinite(xmin)) {
        for (size_t i = 0; i < n; ++i) {  // no reference to fall back to: uniform
            q[i * stride] = 1.0f / static_cast<float>(n);
            log_q[i * stride] = -std::log(static_cast<float>(n));
        }
        return {SolveStatus::fallback, 0, std::numeric_limits<double>::quiet_NaN()};
    }
    // Everything below is in shifted coordinates x~ = x - max x: the problem
    // is invariant under a shift of x (s moves by a constant, log r not at
    // all), and products of a large slope with large logits never meet.
    const double xs = xmax;
    auto tilde = [xs](float v) { return static_cast<double>(v) - xs; };
    // The end of the uncovered range where (x - xr) a <= 0.
    auto ref = [&](double a) { return a >= 0.0 ? xu_max : xu_min; };
    // log r = x~ r_mul - log_zr, where log_zr is the normaliser of the initial
    // state (q0 = r); computed there rather than in a pass of its own.
    double log_zr = 0.0;
    // A state's normaliser L = shift + log z (shift: its largest theta), the
    // uncovered mass and first moment (in x~). log q = (theta - shift) - log z,
    // in that order: theta - L would lose log z once |theta| is large.
    struct Norm { double big_norm, shift, log_z, mass_u, moment_u; bool ok; };
    auto log_q_of = [](double theta, const Norm & nm) { return (theta - nm.shift) - nm.log_z; };
    // Writes q and log q for the state (alpha, kappa on uncovered; theta_c on covered).
    auto emit = [&](double alpha, double kappa, const double * theta_c, const Norm & nm) {
        for (size_t i = 0; i < n_cov; ++i) {
            log_q[i * stride] = static_cast<float>(log_q_of(theta_c[i], nm));
            q[i * stride] = std::exp(log_q[i * stride]);
        }
        if (nu == 0) return;
        const float xr = ref(alpha);
        emit_affine(xu, nu, xr, alpha, log_q_of(alpha * tilde(xr) + kappa, nm), q + n_cov * stride,
                    log_q + n_cov * stride, stride);
    };

    // State: uncovered theta_v = alpha x~_v + kappa; covered theta_c explicit.
    std::vector<double> theta_c(n_cov), theta_c_new(n_cov), q_c(n_cov), g_c(n_cov);
    double alpha = r_mul, kappa = 0.0;
    for (size_t i = 0; i < n_cov; ++i) theta_c[i] = tilde(x[i]) * r_mul;

    // Uncovered tokens with a (xu_max - x) > 88 have exp(...) < e^-87, which
    // exp_nonpositive makes exactly 0: leave them out of the sums. As the
    // iterates sharpen (a grows), the active set shrinks to a small fraction
    // of the vocabulary, so the steps get cheaper; the sums are unchanged.
    auto & active = ws.trial;
    float active_cut = -NEG_INF;  // active holds {x in xu : x >= active_cut}; +inf: not built
    auto active_for = [&](double a, const float *& ptr, size_t & len) {
        const float cut = a > 0.0 ? static_cast<float>(xu_max - 88.0 / a) : NEG_INF;
        if (!(cut > xu_min)) {  // everyone counts: use xu itself
            ptr = xu;
            len = nu;
            return;
        }
        // Branch-free compaction: about half the candidates go each way, so
        // a branch would mispredict on every other one.
        if (cut < active_cut) {  // the set grows (a fell): rebuild from xu
            active.resize(nu);
            size_t keep = 0;
            for (size_t i = 0; i < nu; ++i) {
                active[keep] = xu[i];
                keep += xu[i] >= cut;
            }
            active.resize(keep);
        } else if (cut > active_cut) {  // it shrinks: compact in place
            size_t keep = 0;
            for (size_t i = 0; i < active.size(); ++i) {
                const float v = active[i];
                active[keep] = v;
                keep += v >= cut;
            }
            active.resize(keep);
        }
        active_cut = cut;
        ptr = active.data();
        len = active.size();
    };

    // Normalises a state (see Norm).
    auto normalise_state = [&](double a, double k, const std::vector<double> & tc, std::vector<double> & qc) {
        const float xr = ref(a);
        const double top_u = nu > 0 ? a * tilde(xr) + k : -INFINITY;  // the largest uncovered theta
        double shift = top_u;
        for (double t : tc) shift = std::max(shift, t);
        double su = 0.0, eu = 0.0;
        if (nu > 0) {
            const float * ptr = nullptr;
            size_t len = 0;
            active_for(a, ptr, len);
            exp_moments(ptr, len, xr, a, top_u - shift, su, eu);
            eu += tilde(xr) * su;  // Σ (x - xr) e  ->  Σ x~ e
        }
        double z = su;
        for (size_t i = 0; i < n_cov; ++i) {
            qc[i] = std::exp(tc[i] - shift);
            z += qc[i];
        }
        if (!(z > 0.0) || !std::isfinite(z)) return Norm{0, 0, 0, 0, 0, false};
        for (double & v : qc) v /= z;
        return Norm{shift + std::log(z), shift, std::log(z), su / z, eu / z, true};
    };
    // Σ_v q_v (s_v - Λ log q_v + λ_kl log r_v) + cov Σ_c w_c (1 - (1 - q_c)^K): the objective
    // (its uncovered part equals <q, g> there). Also fills the uncovered gradient's slope/intercept.
    auto evaluate = [&](double a, double k, const std::vector<double> & tc, const std::vector<double> & qc,
                        const Norm & nm, double & slope, double & icpt) {
        slope = s_mul - big_l * a + lam_kl * r_mul;
        icpt = -big_l * log_q_of(k, nm) - lam_kl * log_zr;
        double f = slope * nm.moment_u + icpt * nm.mass_u;
        for (size_t i = 0; i < n_cov; ++i) {
            const double lq = log_q_of(tc[i], nm);
            const double lr = tilde(x[i]) * r_mul - log_zr;
            f += qc[i] * (tilde(x[i]) * s_mul - big_l * lq + lam_kl * lr);
            f += cov * w_cov[i] * (1.0 - std::pow(std::max(0.0, 1.0 - qc[i]), o.k_samples));
        }
        return f;
    };

    // Closed forms.
    if (cov == 0.0 || n_cov == 0) {
        if (big_l == 0.0) {  // λ = 0: all mass on the best score (lowest index on ties)
            const size_t best = static_cast<size_t>(
                (s_mul >= 0 ? std::max_element(x, x + n) : std::min_element(x, x + n)) - x);
            for (size_t i = 0; i < n; ++i) {
                q[i * stride] = i == best ? 1.0f : 0.0f;
                log_q[i * stride] = i == best ? 0.0f : NEG_INF;
            }
            return {SolveStatus::closed_form, 0, 0.0};
        }
        {
            const double a = (s_mul + lam_kl * r_mul) / big_l;
            std::vector<double> tc(n_cov), qc(n_cov);
            for (size_t i = 0; i < n_cov; ++i) tc[i] = a * tilde(x[i]);
            const Norm nm = normalise_state(a, 0.0, tc, qc);
            if (!nm.ok) return {SolveStatus::fallback, 0, std::numeric_limits<double>::quiet_NaN()};
            emit(a, 0.0, tc.data(), nm);
            return {SolveStatus::closed_form, 0, 0.0};
        }
    }

    Norm nm = normalise_state(alpha, kappa, theta_c, q_c);
    if (!nm.ok) return {SolveStatus::fallback, 0, std::numeric_limits<double>::quiet_NaN()};
    log_zr = nm.big_norm;
    double slope = 0.0, icpt = 0.0;
    double f_cur = evaluate(alpha, kappa, theta_c, q_c, nm, slope, icpt);
    double step_size = o.step_size;
    double gap = 0.0;
    int32_t step = 0;
    std::vector<double> q_c_new(n_cov);
    for (;; ++step) {
        // Gradient: uncovered g = slope x~ + icpt; covered explicit.
        double gmax = nu > 0 ? slope * tilde(slope >= 0 ? xu_max : xu_min) + icpt : -INFINITY;
        double inner = slope * nm.moment_u + icpt * nm.mass_u;
        for (size_t i = 0; i < n_cov; ++i) {
            const double lq = log_q_of(theta_c[i], nm);
            const double lr = tilde(x[i]) * r_mul - log_zr;
            g_c[i] = tilde(x[i]) * s_mul - big_l * lq + lam_kl * lr +
                     cov * w_cov[i] * o.k_samples * std::pow(std::max(0.0, 1.0 - q_c[i]), o.k_samples - 1);
            gmax = std::max(gmax, g_c[i]);
            inner += q_c[i] * g_c[i];
        }
        if (!std::isfinite(gmax) || !std::isfinite(inner) || !std::isfinite(f_cur)) {
            return {SolveStatus::fallback, step, std::numeric_limits<double>::quiet_NaN()};
        }
        gap = gmax - inner;
        if (gap < o.tol || step >= o.steps) break;
        const double alpha_new = alpha + step_size * slope;
        const double kappa_new = kappa + step_size * (icpt - gmax);
        for (size_t i = 0; i < n_cov; ++i) theta_c_new[i] = theta_c[i] + step_size * (g_c[i] - gmax);
        const Norm nm_new = normalise_state(alpha_new, kappa_new, theta_c_new, q_c_new);
        if (!nm_new.ok) return {SolveStatus::fallback, step, std::numeric_limits<double>::quiet_NaN()};
        double slope_new, icpt_new;
        const double f_new = evaluate(alpha_new, kappa_new, theta_c_new, q_c_new, nm_new, slope_new, icpt_new);
        if (!(f_new >= f_cur - ACCEPT_SLACK * (1.0 + std::fabs(f_cur)))) {
            step_size *= 0.5;  // too long a step (or a NaN value): halve it; the attempt counts
            continue;
        }
        alpha = alpha_new;
        kappa = kappa_new;
        theta_c.swap(theta_c_new);
        q_c.swap(q_c_new);
        nm = nm_new;
        f_cur = f_new;
        slope = slope_new;
        icpt = icpt_new;
    }
    emit(alpha, kappa, theta_c.data(), nm);
    gap = std::max(gap, 0.0);
    return {gap < o.tol ? SolveStatus::converged : SolveStatus::budget, step, gap};
}

float coverage_weight(CoverageWeights kind, size_t rank, float log_r_gap) {
    switch (kind) {
        case CoverageWeights::top_m: return 1.0f;
        case CoverageWeights::rank:  return 1.0f / (1.0f + static_cast<float>(rank));
        case CoverageWeights::gap:   return std::exp(-log_r_gap);
    }
    return 0.0f;
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
        w[i] = coverage_weight(kind, rank, best - log_r[i]);
    }
}

}  // namespace llama_simplex
