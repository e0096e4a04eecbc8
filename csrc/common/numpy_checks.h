// pybind11 <-> View2D glue: strict checks on incoming NumPy arrays.
//
// The compiled module does no implicit conversion: arrays must already have
// the documented dtype, be C-contiguous and aligned.  The Python wrappers in
// vsum/*.py do the (documented) conversions; these checks turn any mistake
// into a ValueError that names the argument.  Only bindings.cpp includes this.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/array_view.h"
#include "common/errors.h"

namespace vsum {
namespace py = pybind11;

// "(3, 4)" for an array of that shape.
inline std::string shape_str(const py::array& a) {
  std::string s = "(";
  for (py::ssize_t k = 0; k < a.ndim(); ++k) {
    if (k) s += ", ";
    s += std::to_string(a.shape(k));
  }
  if (a.ndim() == 1) s += ",";
  return s + ")";
}

inline std::string dtype_str(const py::array& a) { return py::str(a.dtype()).cast<std::string>(); }

template <typename T>
bool has_dtype(const py::array& a) {
  return py::isinstance<py::array_t<T>>(a);
}

// Common layout checks: ndim == 2, C-contiguous, aligned for T.
template <typename T>
void check_layout_2d(const py::array& a, const char* name, const char* expected) {
  VSUM_CHECK(a.ndim() == 2, name, " must be a 2-D array ", expected, "; got ", a.ndim(),
             "-D array of shape ", shape_str(a));
  VSUM_CHECK((a.flags() & py::array::c_style) != 0, name,
             " must be C-contiguous (use numpy.ascontiguousarray); got shape ", shape_str(a),
             " with strides that are not C-contiguous");
  VSUM_CHECK(reinterpret_cast<std::uintptr_t>(a.data()) % alignof(T) == 0, name,
             " must be aligned to ", alignof(T), " bytes");
}

// View a C-contiguous 2-D array of exactly dtype T; cols < 0 means any width.
template <typename T>
View2D<const T> view_2d(const py::array& a, const char* name, int64_t cols, const char* expected) {
  VSUM_CHECK(has_dtype<T>(a), name, " must be a ", py::str(py::dtype::of<T>()).cast<std::string>(),
             " array of shape ", expected, "; got dtype ", dtype_str(a), " with shape ", shape_str(a));
  check_layout_2d<T>(a, name, expected);
  VSUM_CHECK(cols < 0 || a.shape(1) == cols, name, " must have shape ", expected, "; got ", shape_str(a));
  return View2D<const T>(static_cast<const T*>(a.data()), static_cast<int64_t>(a.shape(0)),
                         static_cast<int64_t>(a.shape(1)));
}

// A fresh C-contiguous output array of the given shape.
template <typename T>
py::array_t<T> new_array(std::vector<py::ssize_t> shape) {
  return py::array_t<T>(shape);
}

}  // namespace vsum
