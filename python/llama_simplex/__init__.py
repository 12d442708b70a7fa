"""llama-simplex: decoders from "Decoding as optimisation on the probability
simplex" as native llama.cpp samplers, driven from Python."""

import llama_cpp as _llama_cpp  # noqa: F401  (loads libllama before our extension binds to it)

from . import _core, kernels
from .generation import Generation, generate, load_model
from . import integration
from .integration import SamplingError, create_chat_completion, create_completion, to_llama_cpp, use_sampler
from .models import ModelNotFoundError, resolve_model
from .multi_sample import Samples, sample_k
from .power import BlockPowerSampler, MCMCPowerSampler, PowerSampler, power_weights
from .registry import SAMPLERS, sampler_from_name
from .samplers import BestOfK, Chain, Dist, Greedy, MinP, Objective, Sampler, Softmax, Sparsemax, TopK, TopP
from .sequence import SequenceSampler
from .smc import SMCParticles, SMCPowerSampler, smc_particles

__version__ = "0.1.0"

__all__ = [
    "BestOfK", "Objective", "Samples", "sample_k", "PowerSampler", "BlockPowerSampler", "MCMCPowerSampler", "power_weights",
    "SMCPowerSampler", "SMCParticles", "smc_particles",
    "Chain", "Dist", "Generation", "Greedy", "MinP", "ModelNotFoundError", "SAMPLERS", "Sampler", "SequenceSampler", "Softmax",
    "SamplingError", "Sparsemax", "TopK", "TopP", "create_chat_completion", "create_completion", "generate", "kernels", "load_model", "resolve_model",
    "sampler_from_name", "to_llama_cpp", "use_sampler",
]
