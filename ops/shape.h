// ops/shape.h — views and shape ops: reshape/view, permute/transpose, expand, slice/narrow,
// squeeze/unsqueeze/flatten, contiguous, cat, stack, split/chunk.
//
// Views are stride arithmetic over the same storage (no kernel runs); their backward maps the
// gradient back the same way (reshape back, inverse permutation, sum over expanded dims, scatter
// into a zero tensor for a slice). contiguous(), cat() and copy_into() copy through the strided copy kernels
// (ops/kernels.h), on the tensors' device.
#pragma once
#include <vector>

#include "autograd/tensor.h"

namespace sg {

Tensor reshape(const Tensor& x, Shape shape);   // one dim may be -1; copies only if x cannot be viewed
Tensor view(const Tensor& x, Shape shape);      // like reshape, but throws if a copy would be needed
Tensor permute(const Tensor& x, const std::vector<int64_t>& dims);
Tensor transpose(const Tensor& x, int64_t dim0, int64_t dim1);
Tensor expand(const Tensor& x, const Shape& shape);   // -1 keeps a dim; new leading dims allowed
Tensor slice(const Tensor& x, int64_t dim, int64_t start, int64_t end, int64_t step = 1);
Tensor narrow(const Tensor& x, int64_t dim, int64_t start, int64_t length);
Tensor squeeze(const Tensor& x, int64_t dim);
Tensor unsqueeze(const Tensor& x, int64_t dim);
Tensor flatten(const Tensor& x, int64_t start_dim = 0, int64_t end_dim = -1);
Tensor contiguous(const Tensor& x);
Tensor cat(const std::vector<Tensor>& xs, int64_t dim);
Tensor stack(const std::vector<Tensor>& xs, int64_t dim);
std::vector<Tensor> split(const Tensor& x, int64_t split_size, int64_t dim);   // last piece may be smaller
std::vector<Tensor> split_sizes(const Tensor& x, const std::vector<int64_t>& sizes, int64_t dim);
std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t dim);

// dst = src elementwise, IN PLACE, outside the tape: dst may be any view (a KV cache's rows, a parameter loaded
// through its own strides); src has dst's shape, dtype and device. The CPU copies through both strides; a device
// copies each contiguous run of dst (the innermost dims over which dst is contiguous) in one launch per index of
// the dims outside it.
void copy_into(const Tensor& dst, const Tensor& src);

// The broadcast of two shapes (numpy rules), or a "[op] cannot broadcast a (..) with b (..)" error.
Shape broadcast_shapes(const char* op, const Tensor& a, const Tensor& b);

}  // namespace sg
