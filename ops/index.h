// ops/index.h — indexing ops: embedding/index_select, gather, scatter_add, index_add.
// Index tensors are i32 or i64; out-of-range indices throw naming the op, the index and the bound.
#pragma once
#include "autograd/tensor.h"

namespace sg {

// weight [V, D], ids [...] (integer) -> [..., D].  dweight = index_add of dy rows at ids.
Tensor embedding(const Tensor& weight, const Tensor& ids);
// x [..., n, ...] along dim, index 1-D [k] -> [..., k, ...].
Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index);
// out[i][j][k] = x[i][index[i][j][k]][k] (dim = 1), index has x's rank; torch.gather semantics.
Tensor gather(const Tensor& x, int64_t dim, const Tensor& index);
// out = x; out[i][index[i][j][k]][k] += src[i][j][k] (dim = 1); index and src have the same shape.
Tensor scatter_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src);
// out = x; out[.., index[j], ..] += src[.., j, ..] along dim; index 1-D.
Tensor index_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src);

}  // namespace sg
