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

// out[i] = exp(in[i] * mul - shift); returns the sum (double accumulation in
// independent lanes, so the order of the inputs barely matters).
inline double exp_shifted(const float * in, float * out, size_t n, float mul, float shift) {
    for (size_t i = 0; i < n; ++i) {
        out[i] = exp_nonpositive(in[i] * mul - shift);
    }
    double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        for (int j = 0; j < 8; ++j) {
            acc[j] += out[i + j];
        }
    }
    double sum = 0;
    for (; i < n; ++i) {
        sum += out[i];
    }
    for (double a : acc) {
        sum += a;
    }
    return sum;
}

}  // namespace llama_simplex::vec
