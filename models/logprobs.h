// models/logprobs.h — per-token log-probabilities of given sequences under the model, the quantity every
// post-training objective (GRPO, DPO, distillation; models/README.md §10) is built from, and the policy's
// entropy at the same positions (for logging).
//
//   logits = Transformer::forward(tokens)                          [B,S,V]
//   logp[b,t]    = log softmax(logits[b,t,:])[tokens[b,t+1]]         [B,S−1]   t = 0..S−2, on the tape
//                = log π(tokens[b,t+1] | tokens[b,0..t])
//   entropy[b,t] = −Σ_v p_v log p_v,  p = softmax(logits[b,t,:])     [B,S−1]   no gradient (a measurement)
//
// Position t of the result scores the token at t+1; a caller masks the prompt and the padding itself
// (train/grpo_loss.h takes the mask). What this is not: a sampler (models/generate.h), a loss.
#pragma once
#include "autograd/tensor.h"
#include "models/transformer.h"

namespace sg {

// logits [B,S,V] (any float dtype), tokens [B,S] integer -> [B,S−1]: log softmax(logits[:, t])[tokens[:, t+1]].
// Differentiable w.r.t. logits (log_softmax, then gather).
Tensor token_logprobs_from_logits(const Tensor& logits, const Tensor& tokens);
// logits [B,S,V] -> [B,S−1]: the entropy of softmax(logits[:, t]) for t = 0..S−2, computed without a tape.
Tensor token_entropy_from_logits(const Tensor& logits);

// The model's forward, then token_logprobs_from_logits: [B,S−1], on the tape (gradients reach every
// parameter the logits depend on). tokens [B,S] i64 with S >= 2.
Tensor token_logprobs(const Transformer& model, const Tensor& tokens);

// Both from one forward: logp on the tape, entropy without.
struct TokenLogprobs {
  Tensor logp;     // [B,S−1]
  Tensor entropy;  // [B,S−1], requires_grad false
};
TokenLogprobs token_logprobs_and_entropy(const Transformer& model, const Tensor& tokens);

}  // namespace sg
