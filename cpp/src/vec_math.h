// Vectorisable exp and reductions over contiguous floats. libm's expf is a
// scalar call; a short polynomial that GCC/Clang turn into SIMD code makes a
// 262,144-token softmax several times cheaper, at about 1 ulp of accuracy.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace llama_simplex::vec {

// exp(x) for x <= 0 (callers subtract the maximum first); exactly 0 below -87.
// Branch-free so that loops over it vectorise.
inline float exp_nonpositive(float x) {
    const float keep = x >= -87.0f ? 1.0f : 0.0f;  // 0 for -inf too
    x = x >= -87.0f ? x : -87.0f;
    // Round to nearest by truncation (x <= 0).
    const int32_t ni = static_cast<int32_t>(x * 1.44269504088896341f - 0.5f);
    const float n = static_cast<float>(ni);
    float r = x - n * 0.693359375f;
    r = r + n * 2.12194440e-4f;
    float y = 1.9875691500e-4f;
    y = y * r + 1.3981999507e-3f;
    y = y * r + 8.3334519073e-3f;
    y = y * r + 4.1665795894e-2f;
    y = y * r + 1.6666665459e-1f;
    y = y * r + 5.0000001201e-1f;
    y = y * r * r + r + 1.0f;
    const int32_t bits = (ni + 127) << 23;
    float scale;
    std::memcpy(&scale, &bits, sizeof scale);
    return y * scale * keep;
}

// Σ x[i] in double, accumulated in independent lanes (so the order of the
// inputs barely matters, and the loop vectorises).
inline double sum(const float * x, size_t n) {
    double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        for (int j = 0; j < 8; ++j) {
            acc[j] += x[i + j];
        }
    }
    double total = 0;
    for (; i < n; ++i) {
        total += x[i];
    }
    for (double a : acc) {
        total += a;
    }
    return total;
}

// out[i] = exp(in[i] * mul - shift); returns the sum.
inline double exp_shifted(const float * in, float * out, size_t n, float mul, float shift) {
    for (size_t i = 0; i < n; ++i) {
        out[i] = exp_nonpositive(in[i] * mul - shift);
    }
    return sum(out, n);
}

// out[i] = exp((in[i] - max) * mul) for in[i] <= max; returns the sum. The
// gap is taken before scaling: in * mul - max * mul would lose it to rounding
// once |max| * mul is large (about 1e7 times the gap), and give inf - inf =
// NaN when mul or in * mul overflows. mul * 0 is 0 for the maximum itself,
// so mul may be any finite value.
inline double exp_gap(const float * in, float * out, size_t n, float mul, float max) {
    for (size_t i = 0; i < n; ++i) {
        out[i] = exp_nonpositive((in[i] - max) * mul);
    }
    return sum(out, n);
}

}  // namespace llama_simplex::vec
