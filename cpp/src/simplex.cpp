#include "llama_simplex/simplex.h"

#include <algorithm>
#include <functional>
#include <cmath>
#include <limits>

#include "vec_math.h"

namespace llama_simplex {

const char * status_message(Status status) {
    switch (status) {
        case Status::ok:            return "ok";
        case Status::nan_logit:     return "a logit is NaN";
        case Status::empty_support: return "empty support: no candidate has a finite logit";
        case Status::no_history:    return "no history: feed the prompt to the sampler through accept() first";
        case Status::failed:        return "decoding the rollouts failed (context too small?)";
        case Status::invalid_q:     return "q is not a distribution (non-finite or zero mass): the parameters are degenerate for these logits";
        case Status::inf_logit:     return "a logit is +inf: there is no distribution to compute";
    }
    return "unknown status";
}

namespace {

constexpr float NEG_INF = -std::numeric_limits<float>::infinity();

struct Scan {
    Status status;
    float  max_logit;
    size_t n_finite;
};

constexpr float FLOAT_MAX = std::numeric_limits<float>::max();

// Which bad value a rejected array holds (NaN wins over +inf); the fast
// passes only know that some logit is not <= FLOAT_MAX.
Status bad_logit(const llama_token_data * cur, size_t n) {
    for (size_t i = 0; i < n; ++i) {
        if (cur[i].logit != cur[i].logit) return Status::nan_logit;
    }
    return Status::inf_logit;
}

// The exponents x = (logit - max) / T of a softmax or sparsemax at
// temperature T > 0, taken in shifted coordinates: logit / T - max / T
// cancels catastrophically once |max| / T is about 1e7 times the gap (and is
// inf - inf once they overflow). For T a normal float up to 2^64 the gap is
// taken in float and multiplied by 1/T (finite there, and a float gap that
// overflows means x < -87 anyway); a subnormal T (1/T overflows float) or a
// huge one takes the slower double path, which no usual temperature does.
struct Scale {
    float  max;
    float  mul;
    double inv;
    bool   wide;
    Scale(float max_logit, float temperature)
        : max(max_logit),
          mul(1.0f / temperature),
          inv(1.0 / static_cast<double>(temperature)),
          wide(!(temperature >= std::numeric_limits<float>::min() && temperature <= 0x1p64f)) {}
    // The two ways of computing x, as small values (kept in registers in loops).
    struct Narrow {
        float max, mul;
        float operator()(float l) const { return (l - max) * mul; }
    };
    struct Exact {
        double max, inv;
        float operator()(float l) const { return static_cast<float>((static_cast<double>(l) - max) * inv); }
    };
    float exact(float l) const { return Exact{max, inv}(l); }
    // Calls f with the function logit -> x, chosen once.
    template <typename F>
    decltype(auto) with(F && f) const {
        if (wide) return f(Exact{max, inv});
        return f(Narrow{max, mul});
    }
};

// e[i] = exp(x_i) for the logits z[0..m); returns Σ e (>= 1: the maximum
// gives 1). On the double path z is rewritten to the exponents and sc to the
// identity, so that (z - sc.max) * sc.mul is x_i afterwards on both paths.
double exp_scaled(float * z, float * e, size_t m, Scale & sc) {
    if (sc.wide) {
        for (size_t i = 0; i < m; ++i) z[i] = sc.exact(z[i]);
        sc = Scale(0.0f, 1.0f);
    }
    return vec::exp_gap(z, e, m, sc.mul, sc.max);
}

// One read-only pass that validates the input before anything is written; it
// also copies the logits into `gather` when given (contiguous, for SIMD).
// The reductions are declared to the compiler (omp simd): a plain running
// maximum is a dependency chain that costs three times the memory traffic.
Scan scan(const llama_token_data * cur, size_t n, float * gather = nullptr) {
    float    hi = NEG_INF;
    uint32_t n_finite = 0;
    uint32_t bad = 0;
    if (gather != nullptr) {
#pragma omp simd reduction(max : hi) reduction(+ : n_finite) reduction(| : bad)
        for (size_t i = 0; i < n; ++i) {
            const float l = cur[i].logit;
            gather[i] = l;
            hi = l > hi ? l : hi;  // not std::max: GCC vectorises this form only
            n_finite += l > NEG_INF;
            bad |= !(l <= FLOAT_MAX);  // NaN or +inf
        }
    } else {
#pragma omp simd reduction(max : hi) reduction(+ : n_finite) reduction(| : bad)
        for (size_t i = 0; i < n; ++i) {
            const float l = cur[i].logit;
            hi = l > hi ? l : hi;  // not std::max: GCC vectorises this form only
            n_finite += l > NEG_INF;
            bad |= !(l <= FLOAT_MAX);
        }
    }
    if (bad) {
        return {bad_logit(cur, n), hi, n_finite};
    }
    if (n_finite == 0) {
        return {Status::empty_support, hi, 0};
    }
    return {Status::ok, hi, n_finite};
}

// Calls visit(i) for each i in [0, n) whose value(i) is not below `bar`
// (NaN counts: it fails `v < bar`), where visits may raise the bar. Blocks
// of 64 values are first counted against the bar with SIMD, so once the bar
// is high most of the array is only compared, never visited one by one.
template <typename Value, typename Visit>
void visit_not_below(size_t n, const float & bar, Value value, Visit visit) {
    constexpr size_t B = 64;
    size_t i = 0;
    for (; i + B <= n; i += B) {
        uint32_t hits = 0;
        for (size_t j = 0; j < B; ++j) {
            hits += !(value(i + j) < bar);
        }
        if (__builtin_expect(hits != 0, 0)) {
            for (size_t j = i; j < i + B; ++j) {
                if (!(value(j) < bar)) visit(j);
            }
        }
    }
    for (; i < n; ++i) {
        if (!(value(i) < bar)) visit(i);
    }
}

// Validation and a streaming selection of the k best (into ws.tokens as a
// heap, unsorted) in one pass over the array, the way llama.cpp's partial
// sort reads it once. The heap's top is the worst kept token, so the bar a
// newcomer must reach is always exact. Blocks of 16 logits are first counted
// against the bar with SIMD (NaN counts too: it fails `l < bar`), and only a
// block holding a candidate is looked at one by one. max_logit is not
// computed; n_finite is exact only when fewer than k candidates are finite.
Scan scan_top(const llama_token_data * cur, size_t n, size_t k, Workspace & ws) {
    auto & heap = ws.tokens;
    heap.clear();
    heap.reserve(k);
    float bar = -FLOAT_MAX;  // finite logits only: -inf never passes
    bool  bad = false;
    size_t n_seen = 0;       // finite candidates offered to the heap
    auto visit = [&](size_t i) {
        const llama_token_data & t = cur[i];
        if (!(t.logit <= FLOAT_MAX)) {  // NaN or +inf
            bad = true;
            return;
        }
        ++n_seen;
        if (heap.size() < k) {
            heap.push_back(t);
            std::push_heap(heap.begin(), heap.end(), ranks_before);
            if (heap.size() == k) bar = heap.front().logit;
        } else if (ranks_before(t, heap.front())) {
            std::pop_heap(heap.begin(), heap.end(), ranks_before);
            heap.back() = t;
            std::push_heap(heap.begin(), heap.end(), ranks_before);
            bar = heap.front().logit;
        }
    };
    visit_not_below(n, bar, [&](size_t i) { return cur[i].logit; }, visit);
    if (bad) {
        return {bad_logit(cur, n), NEG_INF, 0};
    }
    if (heap.empty()) {
        return {Status::empty_support, NEG_INF, 0};
    }
    return {Status::ok, NEG_INF, heap.size() < k ? n_seen : n};
}

// Moves the candidates with a finite logit to the front; returns their count.
size_t drop_impossible(llama_token_data * cur, size_t n, size_t n_finite) {
    if (n_finite == n) {
        return n;
    }
    return std::partition(cur, cur + n, [](const llama_token_data & t) { return t.logit > NEG_INF; }) - cur;
}

// q = softmax(logit / T) over cur[0..m) (T > 0, max_logit their maximum):
// writes p = q and logit = log q. `z` may already hold the logits of
// cur[0..m) (from scan; it is overwritten), else pass null.
void normalise(llama_token_data * cur, size_t m, float temperature, float max_logit, Workspace & ws,
               float * z = nullptr) {
    auto & buf = ws.values;
    if (z == nullptr) {
        buf.resize(2 * m);
        for (size_t i = 0; i < m; ++i) {
            buf[i] = cur[i].logit;
        }
        z = buf.data();
    } else if (buf.size() < 2 * m) {
        buf.resize(2 * m);  // z points into buf's first half: reallocation would move it
    }
    float * e = buf.data() + m;
    Scale sc(max_logit, temperature);
    const double sum = exp_scaled(z, e, m, sc);
    const float inv = static_cast<float>(1.0 / sum);
    const float log_norm = static_cast<float>(std::log(sum));
    const float mx = sc.max, mul = sc.mul;
    for (size_t i = 0; i < m; ++i) {
        cur[i].p     = e[i] * inv;
        cur[i].logit = (z[i] - mx) * mul - log_norm;
    }
}

// softmax(logit / T) over every finite candidate, after scan() gathered the
// logits into ws.values: the gathered copy is reused unless -inf ones must go.
Outcome normalise_finite(llama_token_data * cur, size_t n, const Scan & s, float temperature, Workspace & ws) {
    if (s.n_finite == n) {
        normalise(cur, n, temperature, s.max_logit, ws, ws.values.data());
        return {Status::ok, n};
    }
    const size_t m = drop_impossible(cur, n, s.n_finite);
    normalise(cur, m, temperature, s.max_logit, ws);
    return {Status::ok, m};
}

float max_logit(const llama_token_data * cur, size_t m) {
    float hi = NEG_INF;
    for (size_t i = 0; i < m; ++i) {
        hi = std::max(hi, cur[i].logit);
    }
    return hi;
}

}  // namespace

void select_top(llama_token_data * cur, size_t n, size_t k, Workspace & ws) {
    k = std::min(k, n);
    if (k == 0) {
        return;
    }
    if (n <= 1024 || k * 4 >= n) {
        std::partial_sort(cur, cur + k, cur + n, ranks_before);
        return;
    }
    scan_top(cur, n, k, ws);
    auto & buf = ws.tokens;
    const size_t have = std::min(k, buf.size());
    std::partial_sort(buf.begin(), buf.begin() + have, buf.end(), ranks_before);
    std::copy(buf.begin(), buf.begin() + have, cur);
}

Outcome gather_finite(llama_token_data * cur, size_t n, float * x, Workspace & /*ws*/) {
    const Scan s = scan(cur, n, x);
    if (s.status != Status::ok) {
        return {s.status, 0};
    }
    if (s.n_finite != n) {
        const size_t m = drop_impossible(cur, n, s.n_finite);
        for (size_t i = 0; i < m; ++i) x[i] = cur[i].logit;
    }
    return {Status::ok, s.n_finite};
}

void bring_to_front(llama_token_data * cur, float * x, size_t n, size_t m, Workspace & ws) {
    m = std::min(m, n);
    if (m == 0) {
        return;
    }
    auto better = [&](size_t a, size_t b) {
        return x[a] > x[b] || (x[a] == x[b] && cur[a].id < cur[b].id);
    };
    // A heap of the m best positions seen, its top the worst of them; blocks
    // of 64 contiguous logits are counted against the bar with SIMD first.
    auto & heap = ws.positions;
    heap.clear();
    float bar = -std::numeric_limits<float>::max();
    auto visit = [&](size_t i) {
        if (heap.size() < m) {
            heap.push_back(i);
            std::push_heap(heap.begin(), heap.end(), better);
            if (heap.size() == m) bar = x[heap.front()];
        } else if (better(i, heap.front())) {
            std::pop_heap(heap.begin(), heap.end(), better);
            heap.back() = i;
            std::push_heap(heap.begin(), heap.end(), better);
            bar = x[heap.front()];
        }
    };
    visit_not_below(n, bar, [&](size_t i) { return x[i]; }, visit);
    std::sort(heap.begin(), heap.end(), better);  // best first
    // Swap winner j into slot j, tracking where displaced winners went.
    for (size_t j = 0; j < heap.size(); ++j) {
        const size_t from = heap[j];
        if (from == j) continue;
        std::swap(cur[j], cur[from]);
        std::swap(x[j], x[from]);
        for (size_t k = j + 1; k < heap.size(); ++k) {
            if (heap[k] == j) heap[k] = from;
        }
    }
}

Outcome greedy(llama_token_data * cur, size_t n, Workspace & /*ws*/) {
    // One pass, one comparison per logit on the hot path (NaN fails `l < best`
    // too); new maxima, ties (lowest id wins) and NaN take the slow path.
    float  best = -FLOAT_MAX;
    size_t at = n;
    bool   bad = false;
    auto visit = [&](size_t i) {
        const float l = cur[i].logit;
        if (!(l <= FLOAT_MAX)) {
            bad = true;
        } else if (at == n || l > best || cur[i].id < cur[at].id) {
            best = l;
            at = i;
        }
    };
    // As in scan_top: SIMD counts per block of 64, scalar work only where needed.
    visit_not_below(n, best, [&](size_t i) { return cur[i].logit; }, visit);
    if (bad) {
        return {bad_logit(cur, n), 0};
    }
    if (at == n) {
        return {Status::empty_support, 0};
    }
    std::swap(cur[0], cur[at]);
    cur[0].p = 1.0f;
    cur[0].logit = 0.0f;
    return {Status::ok, 1};
}

Outcome greedy_row(const float * x, size_t n, size_t & at) {
    // greedy() (docs/math.md §1, T = 0) over a plain row (positions are the
    // ids): the same one pass, and scanning in position order keeps the
    // first of tied maxima.
    float best = -FLOAT_MAX;
    at = n;
    bool bad = false;
    auto visit = [&](size_t i) {
        const float l = x[i];
        if (!(l <= FLOAT_MAX)) {
            bad = true;
        } else if (at == n || l > best) {
            best = l;
            at = i;
        }
    };
    visit_not_below(n, best, [&](size_t i) { return x[i]; }, visit);
    if (bad) {
        at = n;
        return {std::any_of(x, x + n, [](float l) { return l != l; }) ? Status::nan_logit : Status::inf_logit, 0};
    }
    if (at == n) {
        return {Status::empty_support, 0};
    }
    return {Status::ok, 1};
}

Outcome softmax(llama_token_data * cur, size_t n, float temperature, Workspace & ws) {
    if (temperature <= 0.0f) {
        return greedy(cur, n, ws);
    }
    ws.values.resize(2 * n);
    const Scan s = scan(cur, n, ws.values.data());
    if (s.status != Status::ok) {
        return {s.status, 0};
    }
    return normalise_finite(cur, n, s, temperature, ws);
}

bool softmax_row(const float * x, size_t n, float temperature, float * q, float * log_q) {
    if (!(temperature > 0.0f) || n == 0) {
        return false;
    }
    // scan() without the candidate array; every logit finite, or softmax() decides.
    float    hi = NEG_INF;
    uint32_t bad = 0;
#pragma omp simd reduction(max : hi) reduction(| : bad)
    for (size_t i = 0; i < n; ++i) {
        const float l = x[i];
        hi = l > hi ? l : hi;
        bad |= !(l <= FLOAT_MAX) | !(l > NEG_INF);
    }
    Scale sc(hi, temperature);
    if (bad || sc.wide) {
        return false;
    }
    // normalise() with z = the row (scan's gathered copy of it there).
    const double sum = vec::exp_gap(x, q, n, sc.mul, sc.max);
    const float inv = static_cast<float>(1.0 / sum);
    const float log_norm = static_cast<float>(std::log(sum));
    const float mx = sc.max, mul = sc.mul;
    for (size_t i = 0; i < n; ++i) {
        q[i] *= inv;
    }
    if (log_q != nullptr) {
        for (size_t i = 0; i < n; ++i) {
            log_q[i] = (x[i] - mx) * mul - log_norm;
        }
    }
    return true;
}

Outcome top_k(llama_token_data * cur, size_t n, int32_t k, float temperature, Workspace & ws) {
    if (temperature <= 0.0f) {
        return greedy(cur, n, ws);
    }
    // k = 0 keeps every candidate, as llama.cpp's top-k does.
    if (k <= 0) {
        return softmax(cur, n, temperature, ws);
    }
    const size_t kk = static_cast<size_t>(k);
    const bool small = kk * 4 >= n || n <= 1024;
    const Scan s = small ? scan(cur, n) : scan_top(cur, n, kk, ws);
    if (s.status != Status::ok) {
        return {s.status, 0};  // nothing was written yet
    }
    const size_t m = std::min(kk, s.n_finite);
    if (small || m == s.n_finite) {
        drop_impossible(cur, n, s.n_finite);
        std::partial_sort(cur, cur + m, cur + s.n_finite, ranks_before);
    } else {
        auto & buf = ws.tokens;
        std::partial_sort(buf.begin(), buf.begin() + m, buf.end(), ranks_before);
        std::copy(buf.begin(), buf.begin() + m, cur);
    }
    normalise(cur, m, temperature, cur[0].logit, ws);
    return {Status::ok, m};
}

Outcome top_p(llama_token_data * cur, size_t n, double p, float temperature, NucleusOrder order, Workspace & ws) {
    ws.values.resize(2 * n);
    const Scan s = scan(cur, n, ws.values.data());
    if (s.status != Status::ok) {
        return {s.status, 0};
    }
    if (p >= 1.0) {  // the whole simplex: nothing to select
        if (temperature <= 0.0f) {
            return greedy(cur, n, ws);
        }
        return normalise_finite(cur, n, s, temperature, ws);
    }
    // The distribution that chooses the nucleus, softmax(logit / t), with t
    // = 1 or T: its unnormalised weights go into p, and the nucleus is the
    // first prefix whose weight reaches p * norm, compared in double.
    const float t = (order == NucleusOrder::temperature && temperature > 0.0f) ? temperature : 1.0f;
    const size_t m_finite = drop_impossible(cur, n, s.n_finite);
    float * z = ws.values.data();
    if (m_finite != n) {
        for (size_t i = 0; i < m_finite; ++i) z[i] = cur[i].logit;
    }
    Scale sc(s.max_logit, t);
    const double target = p * exp_scaled(z, z + m_finite, m_finite, sc);
    for (size_t i = 0; i < m_finite; ++i) {
        cur[i].p = z[m_finite + i];
    }

    // Weighted quickselect for the smallest prefix, in the order (logit desc,
    // id asc), whose mass reaches the target: O(n) expected, no sort. Invariant:
    // cur[0, lo) ranks before everything in [lo, m_finite), with mass `above` < target;
    // everything in [hi, m_finite) ranks after [lo, hi).
    size_t lo = 0, hi = m_finite;
    double above = 0.0;
    uint64_t rng = 0x2545f4914f6cdd1dull ^ m_finite;
    while (lo < hi) {
        const size_t pick = lo + next_random(rng) % (hi - lo);
        std::swap(cur[pick], cur[hi - 1]);
        const llama_token_data pivot = cur[hi - 1];
        llama_token_data * mid = std::partition(cur + lo, cur + hi - 1,
                                                [&pivot](const llama_token_data & t) { return ranks_before(t, pivot); });
        const size_t m = static_cast<size_t>(mid - cur);
        double mass = 0.0;
        for (size_t i = lo; i < m; ++i) mass += cur[i].p;
        if (m > lo && above + mass >= target) {
            hi = m;  // the first token to reach p is among the better ones
        } else {
            std::swap(cur[m], cur[hi - 1]);  // the pivot joins the nucleus, right after them
            above += mass + pivot.p;
            lo = m + 1;
            if (above >= target) {
                hi = lo;
            }
        }
    }
    if (lo == m_finite) {
        // Never reached: only rounding of the sums (p within ~1e-10 of 1) does
        // that. The minimal nucleus is then every token of positive weight.
        lo = std::partition(cur, cur + m_finite, [](const llama_token_data & c) { return c.p > 0.0f; }) - cur;
    }
    const size_t support = std::max<size_t>(lo, 1);
    if (temperature <= 0.0f) {
        return greedy(cur, support, ws);
    }
    normalise(cur, support, temperature, max_logit(cur, support), ws);
    return {Status::ok, support};
}

Outcome min_p(llama_token_data * cur, size_t n, double p_min, float temperature, Workspace & ws) {
    const Scan s = scan(cur, n);
    if (s.status != Status::ok) {
        return {s.status, 0};
    }
    // p(v) >= p_min * max p  <=>  logit(v) - max logit >= log p_min, decided
    // in double (a float max + log p_min is rounded at the logits' scale).
    // The test is monotone in the logit, so it is the float comparison
    // logit >= cut with cut the smallest float passing it (found next to the
    // rounded value); p_min = 0 keeps every finite logit.
    const double hi = s.max_logit;
    float cut = -FLOAT_MAX;
    if (p_min > 0.0) {
        const double log_p = std::log(p_min);
        auto passes = [hi, log_p](float c) { return static_cast<double>(c) - hi >= log_p; };
        cut = std::max(static_cast<float>(hi + log_p), -FLOAT_MAX);
        while (!passes(cut)) cut = std::nextafter(cut, FLOAT_MAX);  // ends at max logit at the latest
        while (cut > -FLOAT_MAX && passes(std::nextafter(cut, NEG_INF))) cut = std::nextafter(cut, NEG_INF);
    }
    size_t m = std::partition(cur, cur + n, [cut](const llama_token_data & t) { return t.logit >= cut; }) - cur;
    if (m == 0) {  // rounding: the best token always qualifies
        return greedy(cur, n, ws);
    }
    if (temperature <= 0.0f) {
        return greedy(cur, m, ws);
    }
    normalise(cur, m, temperature, s.max_logit, ws);
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
    // In shifted coordinates z = (logit - max) / T <= 0, whose maximum is 0
    // (sparsemax is shift-invariant): tau >= -1, so only candidates with
    // z > -1 can be in the support, and z keeps its precision at any scale.
    const Scale sc(s.max_logit, temperature);
    // One pass over the array moves those candidates to the front; the
    // support is then chosen among them.
    return sc.with([&](auto z_of) {
        const size_t c = std::partition(cur, cur + n, [z_of](const llama_token_data & t) {
            return z_of(t.logit) > -1.0f;
        }) - cur;
        auto & z = ws.values;
        z.resize(c);
        for (size_t i = 0; i < c; ++i) {
            z[i] = z_of(cur[i].logit);
        }
        const float tau = sparsemax_threshold(z.data(), c);
        const size_t m = std::partition(cur, cur + c, [z_of, tau](const llama_token_data & t) {
            return z_of(t.logit) > tau;
        }) - cur;
        double total = 0.0;
        for (size_t i = 0; i < m; ++i) {
            total += z_of(cur[i].logit) - tau;
        }
        // Rounding in tau leaves the sum within a few ulp of 1; renormalise exactly.
        for (size_t i = 0; i < m; ++i) {
            const float q = static_cast<float>((z_of(cur[i].logit) - tau) / total);
            cur[i].p = q;
            cur[i].logit = std::log(q);
        }
        return Outcome{Status::ok, m};
    });
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

namespace {

template <typename P>
int64_t pick_by(size_t m, uint64_t & rng, P p) {
    const double u = uniform01(rng);
    double run = 0.0;
    int64_t last = -1;
    for (size_t i = 0; i < m; ++i) {
        if (p(i) > 0.0f) {
            run += p(i);
            last = static_cast<int64_t>(i);
            if (run > u) return last;
        }
    }
    // p sums to 1 only up to rounding: rescale the target to the true total.
    const double target = u * run;
    run = 0.0;
    for (size_t i = 0; i < m; ++i) {
        if (p(i) > 0.0f) {
            run += p(i);
            if (run > target) return static_cast<int64_t>(i);
        }
    }
    return last;
}

}  // namespace

int64_t pick(const llama_token_data * cur, size_t m, uint64_t & rng) {
    return pick_by(m, rng, [cur](size_t i) { return cur[i].p; });
}

int64_t pick_row(const float * q, size_t m, uint64_t & rng) {
    return pick_by(m, rng, [q](size_t i) { return q[i]; });
}

Outcome draw(llama_token_data * cur, size_t n, uint64_t & rng, int64_t & selected, Workspace & ws) {
    // Probabilities from the logits, whatever wrote them (llama.cpp samplers
    // leave p stale); then the same pick as a decoder's own draw.
    const Outcome out = softmax(cur, n, 1.0f, ws);
    if (out.status == Status::ok) {
        selected = pick(cur, out.support, rng);
    }
    return out;
}

}  // namespace llama_simplex
