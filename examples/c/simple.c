/* Generates text with llama-simplex's top-p sampler in a plain llama.cpp
 * chain: the smallest program that links both libraries.
 *   simple MODEL.gguf "prompt" [n_tokens]   */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llama.h"
#include "llama_simplex/llama_simplex.h"

int main(int argc, char ** argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL.gguf PROMPT [N_TOKENS]\n", argv[0]);
        return 2;
    }
    const int n_tokens = argc > 3 ? atoi(argv[3]) : 16;
    llama_backend_init();
    struct llama_model * model = llama_model_load_from_file(argv[1], llama_model_default_params());
    if (!model) { fprintf(stderr, "cannot load %s\n", argv[1]); return 1; }
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = 512;
    struct llama_context * ctx = llama_init_from_model(model, cp);
    const struct llama_vocab * vocab = llama_model_get_vocab(model);

    /* A bad parameter is an error code and a message, never an abort. */
    struct llama_simplex_top_p_params bad = llama_simplex_top_p_default_params();
    bad.p = 1.5f;
    struct llama_sampler * none = NULL;
    llama_simplex_status st = llama_simplex_top_p(&bad, &none);
    printf("bad p: %s: %s\n", llama_simplex_status_string(st), llama_simplex_last_error());

    struct llama_simplex_top_p_params tp = llama_simplex_top_p_default_params();
    tp.p = 0.9f;
    tp.temperature = 0.8f;
    tp.draw.draw = true;
    tp.draw.seed = 42;
    struct llama_sampler * top_p = NULL;
    if (llama_simplex_top_p(&tp, &top_p) != LLAMA_SIMPLEX_OK) {
        fprintf(stderr, "%s\n", llama_simplex_last_error());
        return 1;
    }
    struct llama_sampler * chain = llama_sampler_chain_init(llama_sampler_chain_default_params());
    llama_sampler_chain_add(chain, top_p);  /* the chain owns it now */
    /* Whatever the chain holds, make it select a token on every apply (here
     * top-p already draws; a chain without a draw would get a seeded dist):
     * llama_sampler_sample() aborts on a chain that selects nothing. */
    if (llama_simplex_ensure_draw(chain, 42) != LLAMA_SIMPLEX_OK) {
        fprintf(stderr, "%s\n", llama_simplex_last_error());
        return 1;
    }

    llama_token prompt[256];
    const int n_prompt = llama_tokenize(vocab, argv[2], (int) strlen(argv[2]), prompt, 256, true, false);
    if (n_prompt <= 0) { fprintf(stderr, "cannot tokenize the prompt\n"); return 1; }
    struct llama_batch batch = llama_batch_get_one(prompt, n_prompt);
    printf("version %s\n%s", llama_simplex_version(), argv[2]);
    for (int i = 0; i < n_tokens; ++i) {
        if (llama_decode(ctx, batch) != 0) break;
        llama_token tok = llama_sampler_sample(chain, ctx, -1);
        const int32_t status = llama_simplex_sampler_status(chain);
        if (status != 0) { fprintf(stderr, "sampler failed: %s\n", llama_simplex_sampler_status_string(status)); break; }
        if (llama_vocab_is_eog(vocab, tok)) break;
        char piece[64];
        const int n = llama_token_to_piece(vocab, tok, piece, sizeof piece, 0, false);
        if (n > 0) fwrite(piece, 1, (size_t) n, stdout);
        static llama_token next;
        next = tok;
        batch = llama_batch_get_one(&next, 1);
    }
    printf("\n");
    llama_sampler_free(chain);
    llama_free(ctx);
    llama_model_free(model);
    llama_backend_free();
    return 0;
}
