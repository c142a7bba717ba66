// ops/cpu/reduce.cpp — see reduce.h.
#include "ops/cpu/reduce.h"

#include "autograd/runtime.h"
#include "ops/cpu/runtime.h"

namespace sg::cpu {

template <class T> void reduce_rows(ReduceOp op, const T* x, int64_t rows, int64_t cols, T* out) {
  auto body = [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const T* row = x + r * cols;
      if (op == ReduceOp::sum) {
        double acc = 0;
        for (int64_t c = 0; c < cols; c++) acc += row[c];
        out[r] = (T)acc;
      } else {
        T best = row[0];
        for (int64_t c = 1; c < cols; c++)
          if (op == ReduceOp::max ? row[c] > best : row[c] < best) best = row[c];
        out[r] = best;
      }
    }
  };
  if (naive_kernels()) body(0, rows);
  else parallel_for(rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(cols, 1)), body);
}

template <class T> void arg_reduce_rows(ReduceOp op, const T* x, int64_t rows, int64_t cols, int64_t* out) {
  for (int64_t r = 0; r < rows; r++) {
    const T* row = x + r * cols;
    int64_t best = 0;
    for (int64_t c = 1; c < cols; c++)
      if (op == ReduceOp::max ? row[c] > row[best] : row[c] < row[best]) best = c;
    out[r] = best;
  }
}

template void reduce_rows<float>(ReduceOp, const float*, int64_t, int64_t, float*);
template void reduce_rows<double>(ReduceOp, const double*, int64_t, int64_t, double*);
template void arg_reduce_rows<float>(ReduceOp, const float*, int64_t, int64_t, int64_t*);
template void arg_reduce_rows<double>(ReduceOp, const double*, int64_t, int64_t, int64_t*);

}  // namespace sg::cpu
