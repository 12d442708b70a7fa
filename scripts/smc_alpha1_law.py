"""SMC at alpha = 1 against llama_cpp.Llama's own next-token law (Gemma 3 270M,
llama_simplex.load_model(): flash_attn=False): 40 runs of 256 particles, one
token each; chi-square of the first-token counts (cells with an expected count
>= 5, the rest lumped; end-of-generation tokens as one cell)."""
import numpy as np
import llama_cpp
import llama_simplex as ls
from scipy import stats
PROMPT = b"Q: A farmer has 17 sheep. All but 9 run away. How many are left?\nA:"
llm = ls.load_model()
toks = llm.tokenize(PROMPT)
llm.reset(); llm.eval(toks)
x = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(llm.n_vocab(),)).astype(np.float64)
p = np.exp(x - x.max()); p /= p.sum()
vocab = llama_cpp.llama_model_get_vocab(llm.model)
eog = np.array([llama_cpp.llama_vocab_is_eog(vocab, i) for i in range(llm.n_vocab())])
p = np.append(p[~eog], p[eog].sum())  # an end-of-generation token ends the particle with no token
idx = np.cumsum(~eog) - 1
counts = np.zeros(len(p))
for seed in range(40):
    out = ls.smc_particles(llm, toks, ls.SMCPowerSampler(alpha=1.0, particles=256), max_tokens=1, seed=seed)
    for t in out.tokens:
        counts[idx[t[0]] if t else -1] += 1
n = counts.sum()
big = n * p >= 5
obs = np.append(counts[big], counts[~big].sum()); exp = np.append(n * p[big], n * p[~big].sum())
chi2 = ((obs - exp) ** 2 / exp).sum(); dof = len(obs) - 1
print(f"draws {int(n)} chi2 {chi2:.1f} dof {dof} p-value {stats.chi2.sf(chi2, dof):.3f} "
      f"TV(emp, p) {0.5*np.abs(counts/n - p).sum():.4f}")
