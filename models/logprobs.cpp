// models/logprobs.cpp — per-token log-probabilities and entropies (models/logprobs.h). Built from existing
// ops (slice, log_softmax, gather), so the backward is theirs: d logp[b,t] / d logits[b,t,v] = 1[v = y] − p_v.
#include "models/logprobs.h"

#include <stdexcept>
#include <string>

#include "autograd/node.h"
#include "ops/ops.h"

namespace sg {

namespace {

void check_logits_tokens(const char* op, const Tensor& logits, const Tensor& tokens) {
  if (!logits.defined() || logits.dim() != 3)
    throw std::invalid_argument(std::string("[") + op + "] logits must be [B,S,V], got " +
                                (logits.defined() ? logits.describe() : std::string("undefined")));
  if (logits.size(1) < 2)
    throw std::invalid_argument(std::string("[") + op + "] need S >= 2 positions (position t scores token t+1), got " +
                                logits.describe());
  if (tokens.defined() && (tokens.dim() != 2 || tokens.size(0) != logits.size(0) || tokens.size(1) != logits.size(1)))
    throw std::invalid_argument(std::string("[") + op + "] tokens " + tokens.describe() + " must be [B,S] of logits " +
                                logits.describe());
}

}  // namespace

Tensor token_logprobs_from_logits(const Tensor& logits, const Tensor& tokens) {
  check_logits_tokens("token_logprobs", logits, tokens);
  const int64_t S = logits.size(1);
  Tensor logp_all = log_softmax(slice(logits, 1, 0, S - 1), -1);         // [B,S−1,V]
  Tensor next = contiguous(unsqueeze(slice(tokens.to(logits.device()), 1, 1, S), -1));  // [B,S−1,1] (host ids move)
  return squeeze(gather(logp_all, 2, next), -1);                          // [B,S−1]
}

Tensor token_entropy_from_logits(const Tensor& logits) {
  check_logits_tokens("token_entropy", logits, Tensor());
  NoGradGuard no_grad;
  const int64_t S = logits.size(1);
  Tensor lp = log_softmax(slice(logits, 1, 0, S - 1), -1);               // [B,S−1,V]
  return neg(sum(mul(exp(lp), lp), {2}));                                 // −Σ p log p
}

Tensor token_logprobs(const Transformer& model, const Tensor& tokens) {
  return token_logprobs_from_logits(model.forward(tokens), tokens);
}

TokenLogprobs token_logprobs_and_entropy(const Transformer& model, const Tensor& tokens) {
  Tensor logits = model.forward(tokens);
  return {token_logprobs_from_logits(logits, tokens), token_entropy_from_logits(logits)};
}

}  // namespace sg
