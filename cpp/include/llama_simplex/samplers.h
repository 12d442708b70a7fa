// The closed-form decoders as llama_sampler objects: each one can sit in any
// llama.cpp sampler chain (ours, llama-cpp-python's, llama-server's). Every
// constructor returns a sampler owned by the caller (or by the chain it is
// added to); parameters are validated by the callers (Python, the C API).
#pragma once

#include <cstdint>

#include "llama.h"
#include "llama_simplex/simplex.h"

namespace llama_simplex {

llama_sampler * make_greedy();
llama_sampler * make_softmax(float temperature);
llama_sampler * make_top_k(int32_t k, float temperature);
llama_sampler * make_top_p(float p, float temperature, NucleusOrder order);
llama_sampler * make_min_p(float p_min, float temperature);
llama_sampler * make_sparsemax(float temperature);
// Final draw from softmax(logit) of whatever the chain left; LLAMA_DEFAULT_SEED picks a random seed.
llama_sampler * make_dist(uint32_t seed);

// True when smpl was made by this library.
bool is_ours(const llama_sampler * smpl);

// The status of the last apply of smpl; for a chain, the first failure among
// its members that are ours. A failed apply leaves the candidates untouched.
Status last_status(const llama_sampler * smpl);

}  // namespace llama_simplex
