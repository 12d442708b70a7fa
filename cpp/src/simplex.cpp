#include "llama_simplex/simplex.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "vec_math.h"

namespace llama_simplex {

const char * status_message(Status status) {
    switch (status) {
        case Status::ok:            return "ok";
        case Status::nan_logit:     return "a logit is NaN";
        case Status::empty_support: return "empty support: no candidate has a finite logit";
    }
    return "unknown status";
}

namespace {

constexpr float NEG_INF = -std::numeric_limits<float>::infinity();

struct Scan {
    Status status;
    float  max_logit;
    float  min_finite;
    size_t n_finite;
};

// One pass that validates the input before anything is written.
Scan scan(const llama_token_data * cur, size_t n) {
    float  hi = NEG_INF;
    float  lo = std::numeric_limits<float>::infinity();
    size_t n_finite = 0;
    bool   nan = false;
    for (size_t i = 0; i < n; ++i) {
        const float l = cur[i].logit;
        nan |= (l != l);
        if (l > NEG_INF) {
            ++n_finite;
            hi = std::max(hi, l);
            lo = std::min(lo, l);
        }
    }
    if (nan) {
        return {Status::nan_logit, hi, lo, n_finite};
    }
    if (n_finite == 0 || hi == std::numeric_limits<float>::infinity()) {
        // +inf is treated like NaN would be: no finite softmax exists.
        return {n_finite == 0 ? Status::empty_support : Status::nan_logit, hi, lo, n_finite};
    }
    return {Status::ok, hi, lo, n_finite};
}

// Moves the candidates with a finite logit to the front; returns their count.
size_t drop_impossible(llama_token_data * cur, size_t n) {
    return std::partition(cur, cur + n, [](const llama_token_data & t) { return t.logit > NEG_INF; }) - cur;
}

// q = softmax(logit / T) over cur[0..m): writes p = q and logit = log q.
void normalise(llama_token_data * cur, size_t m, float temperature, Workspace & ws) {
    const float mul = 1.0f / temperature;
    auto & z = ws.values;
    z.resize(2 * m);
    float * in  = z.data();
    float * out = z.data() + m;
    float zmax = NEG_INF;
    for (size_t i = 0; i < m; ++i) {
        in[i] = cur[i].logit;
        zmax = std::max(zmax, in[i] * mul);
    }
    const double sum = vec::exp_shifted(in, out, m, mul, zmax);
    const float  inv = static_cast<float>(1.0 / sum);
    const float  log_norm = zmax + static_cast<float>(std::log(sum));
    for (size_t i = 0; i < m; ++i) {
        cur[i].p     = out[i] * inv;
        cur[i].logit = in[i] * mul - log_norm;
    }
}

}  // namespace

void select_top(llama_token_data * cur, size_t n, size_t k, Workspace & ws) {
    k = std::min(k, n);
    if (k == 0) {
        return;
    }
    // Small problems, or most of the array wanted: a partial sort is as cheap.
    if (n <= 4096 || k * 8 >= n) {
        std::partial_sort(cur, cur + k, cur + n, ranks_before);
        return;
    }
    // Histogram of the finite logits; the bucket holding the k-th best bounds
    // the candidates that need an exact ordering.
    float hi = NEG_INF;
    float lo = std::numeric_limits<float>::infinity();
    for (size_t i = 0; i < n; ++i) {
        const float l = cur[i].logit;
        if (l > NEG_INF) {
            hi = std::max(hi, l);
            lo = std::min(lo, l);
        }
    }
    if (!(hi > lo)) {
        std::partial_sort(cur, cur + k, cur + n, ranks_before);
        return;
    }
    constexpr int n_buckets = 4096;
    const float scale = (n_buckets - 1) / (hi - lo);
    auto & histo = ws.buckets;
    histo.assign(n_buckets + 1, 0);  // bucket 0 holds -inf
    for (size_t i = 0; i < n; ++i) {
        const float l = cur[i].logit;
        const int b = l > NEG_INF ? 1 + static_cast<int>((l - lo) * scale) : 0;
        ++histo[b];
    }
    int    cut  = n_buckets;
    size_t have = histo[cut];
    while (have < k && cut > 0) {
        have += histo[--cut];
    }
    // Partition (not copy) so that cur stays a permutation of its input:
    // top-p grows its sorted prefix by calling this again on the remainder.
    llama_token_data * mid = std::partition(cur, cur + n, [&](const llama_token_data & t) {
        return t.logit > NEG_INF && 1 + static_cast<int>((t.logit - lo) * scale) >= cut;
    });
    if (cut == 0) {
        mid = cur + n;
    }
    std::partial_sort(cur, cur + k, mid, ranks_before);
}

Outcome greedy(llama_token_data * cur, size_t n, Workspace & /*ws*/) {
    const Scan s = scan(cur, n);
    if (s.status != Status::ok) {
        return {s.status, 0};
    }
    size_t best = 0;
    for (size_t i = 1; i < n; ++i) {
        if (ranks_before(cur[i], cur[best])) {
            best = i;
        }
    }
    std::swap(cur[0], cur[best]);
    cur[0].p = 1.0f;
    cur[0].logit = 0.0f;
    return {Status::ok, 1};
}

Outcome softmax(llama_token_data * cur, size_t n, float temperature, Workspace & ws) {
    if (temperature <= 0.0f) {
        return greedy(cur, n, ws);
    }
    const Scan s = scan(cur, n);
    if (s.status != Status::ok) {
        return {s.status, 0};
    }
    const size_t m = drop_impossible(cur, n);
    normalise(cur, m, temperature, ws);
    return {Status::ok, m};
}

Outcome top_k(llama_token_data * cur, size_t n, int32_t k, float temperature, Workspace & ws) {
    if (temperature <= 0.0f) {
        return greedy(cur, n, ws);
    }
    const Scan s = scan(cur, n);
    if (s.status != Status::ok) {
        return {s.status, 0};
    }
    // k = 0 keeps every candidate, as llama.cpp's top-k does.
    const size_t m = (k <= 0) ? s.n_finite : std::min<size_t>(static_cast<size_t>(k), s.n_finite);
    if (m == s.n_finite) {
        drop_impossible(cur, n);
        std::sort(cur, cur + m, ranks_before);
    } else {
        select_top(cur, n, m, ws);
    }
    normalise(cur, m, temperature, ws);
    return {Status::ok, m};
}

Outcome top_p(llama_token_data * cur, size_t n, float p, float temperature, NucleusOrder order, Workspace & ws) {
    const Scan s = scan(cur, n);
    if (s.status != Status::ok) {
        return {s.status, 0};
    }
    // The distribution that chooses the nucleus: softmax(logit * mul).
    const float mul = (order == NucleusOrder::temperature && temperature > 0.0f) ? 1.0f / temperature : 1.0f;
    const float shift = s.max_logit * mul;
    const size_t m_finite = drop_impossible(cur, n);
    if (p >= 1.0f) {  // the whole simplex: nothing to sort
        if (temperature <= 0.0f) {
            return greedy(cur, m_finite, ws);
        }
        normalise(cur, m_finite, temperature, ws);
        return {Status::ok, m_finite};
    }

    auto & z = ws.values;
    z.resize(2 * m_finite);
    for (size_t i = 0; i < m_finite; ++i) {
        z[i] = cur[i].logit;
    }
    const double norm = vec::exp_shifted(z.data(), z.data() + m_finite, m_finite, mul, shift);

    // Grow a sorted prefix until its mass reaches p; most nuclei are short.
    size_t sorted = 0;
    size_t support = m_finite;
    double mass = 0.0;
    for (size_t want = std::min<size_t>(256, m_finite); ; want = std::min(m_finite, want * 16)) {
        select_top(cur + sorted, m_finite - sorted, want - sorted, ws);
        bool reached = false;
        for (size_t i = sorted; i < want; ++i) {
            mass += vec::exp_nonpositive(cur[i].logit * mul - shift) / norm;
            if (mass >= p) {
                support = i + 1;
                reached = true;
                break;
            }
        }
        sorted = want;
        if (reached || want == m_finite) {
            break;
        }
    }
    if (temperature <= 0.0f) {
        return greedy(cur, support, ws);
    }
    normalise(cur, support, temperature, ws);
    return {Status::ok, support};
}

Outcome min_p(llama_token_data * cur, size_t n, float p_min, float temperature, Workspace & ws) {
    const Scan s = scan(cur, n);
    if (s.status != Status::ok) {
        return {s.status, 0};
    }
    // p(v) >= p_min * max p  <=>  logit(v) >= max logit + log p_min (llama.cpp's test, in float).
    const float cut = s.max_logit + std::log(p_min);
    const size_t m_finite = drop_impossible(cur, n);
    size_t m = std::partition(cur, cur + m_finite, [cut](const llama_token_data & t) { return t.logit >= cut; }) - cur;
    if (m == 0) {  // p_min > 1 or rounding: the best token always qualifies
        return greedy(cur, n, ws);
    }
    if (temperature <= 0.0f) {
        return greedy(cur, m, ws);
    }
    normalise(cur, m, temperature, ws);
    return {Status::ok, m};
}

float sparsemax_threshold(float * z, size_t n) {
    // Duchi et al. (2008): pivot on a random element; the elements >= pivot
    // either all enter the support (recurse below) or the pivot is out (recurse above).
    double sum_in = 0.0;
    size_t cnt_in = 0;
    size_t lo = 0, hi = n;  // undecided elements are z[lo, hi)
    uint64_t rng = 0x9e3779b97f4a7c15ull ^ n;
    while (lo < hi) {
        const size_t pick = lo + next_random(rng) % (hi - lo);
        const float pivot = z[pick];
        // Partition [lo, hi) into >= pivot (front) and < pivot (back).
        float * mid = std::partition(z + lo, z + hi, [pivot](float v) { return v >= pivot; });
        const size_t g_end = mid - z;
        double g_sum = 0.0;
        for (size_t i = lo; i < g_end; ++i) {
            g_sum += z[i];
        }
        const size_t g_cnt = g_end - lo;
        if ((sum_in + g_sum) - static_cast<double>(cnt_in + g_cnt) * pivot < 1.0) {
            sum_in += g_sum;
            cnt_in += g_cnt;
            lo = g_end;
        } else {
            // The pivot is not in the support; keep only elements strictly above it.
            float * above = std::partition(z + lo, mid, [pivot](float v) { return v > pivot; });
            hi = above - z;
        }
    }
    return static_cast<float>((sum_in - 1.0) / static_cast<double>(cnt_in));
}

Outcome sparsemax(llama_token_data * cur, size_t n, float temperature, Workspace & ws) {
    if (temperature <= 0.0f) {
        return greedy(cur, n, ws);
    }
    const Scan s = scan(cur, n);
    if (s.status != Status::ok) {
        return {s.status, 0};
    }
    // tau >= max z - 1, so only those candidates can be in the support.
    const float mul = 1.0f / temperature;
    const float zmax = s.max_logit * mul;
    auto & z = ws.values;
    z.clear();
    for (size_t i = 0; i < n; ++i) {
        const float v = cur[i].logit * mul;
        if (v > zmax - 1.0f) {
            z.push_back(v);
        }
    }
    const float tau = sparsemax_threshold(z.data(), z.size());
    const size_t m = std::partition(cur, cur + n, [mul, tau](const llama_token_data & t) {
        return t.logit * mul > tau;
    }) - cur;
    double total = 0.0;
    for (size_t i = 0; i < m; ++i) {
        total += cur[i].logit * mul - tau;
    }
    // Rounding in tau leaves the sum within a few ulp of 1; renormalise exactly.
    for (size_t i = 0; i < m; ++i) {
        const float q = static_cast<float>((cur[i].logit * mul - tau) / total);
        cur[i].p = q;
        cur[i].logit = std::log(q);
    }
    return {Status::ok, m};
}

uint64_t next_random(uint64_t & state) {
    uint64_t x = (state += 0x9e3779b97f4a7c15ull);
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

double uniform01(uint64_t & state) {
    return static_cast<double>(next_random(state) >> 11) * 0x1.0p-53;
}

Outcome draw(llama_token_data * cur, size_t n, uint64_t & rng, int64_t & selected, Workspace & ws) {
    const Scan s = scan(cur, n);
    if (s.status != Status::ok) {
        return {s.status, 0};
    }
    auto & z = ws.values;
    z.resize(2 * n);
    for (size_t i = 0; i < n; ++i) {
        z[i] = cur[i].logit;
    }
    const double sum = vec::exp_shifted(z.data(), z.data() + n, n, 1.0f, s.max_logit);
    const double target = uniform01(rng) * sum;
    double run = 0.0;
    selected = -1;
    const float inv = static_cast<float>(1.0 / sum);
    for (size_t i = 0; i < n; ++i) {
        const float w = z[n + i];
        run += w;
        if (selected < 0 && run > target && w > 0.0f) {
            selected = static_cast<int64_t>(i);
        }
        cur[i].p = w * inv;
    }
    if (selected < 0) {  // target landed on the rounding slack at the very end
        for (size_t i = n; i-- > 0;) {
            if (cur[i].p > 0.0f) {
                selected = static_cast<int64_t>(i);
                break;
            }
        }
    }
    return {Status::ok, n};
}

}  // namespace llama_simplex
