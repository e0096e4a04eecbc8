// Minimal non-owning views over C-contiguous row-major arrays.
//
// Kernels take these (never pybind11 types) so that they can be reused from
// other C++ code and from the CUDA module without dragging Python in.
#pragma once

#include <cstdint>

namespace vsum {

// A (rows, cols) row-major, C-contiguous block of T.  T may be const.
template <typename T>
struct View2D {
  T* data = nullptr;
  int64_t rows = 0;
  int64_t cols = 0;

  View2D() = default;
  View2D(T* data_, int64_t rows_, int64_t cols_) : data(data_), rows(rows_), cols(cols_) {}

  T& operator()(int64_t r, int64_t c) const { return data[r * cols + c]; }
  T* row(int64_t r) const { return data + r * cols; }
  int64_t size() const { return rows * cols; }
  bool empty() const { return rows == 0 || cols == 0; }
};

}  // namespace vsum
