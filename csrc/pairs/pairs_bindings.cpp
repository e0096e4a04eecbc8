// Python bindings of the all-pairs helpers (registered into vsum._core).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>

#include "common/numpy_checks.h"
#include "common/registry.h"
#include "pairs/topk.h"

namespace py = pybind11;

namespace {

template <typename T>
vsum::View2D<T> mutable_2d(const py::array& a, const char* name, int64_t rows, int64_t cols) {
  VSUM_CHECK(vsum::has_dtype<T>(a), name, " must be a ", py::str(py::dtype::of<T>()).cast<std::string>(),
             " array; got dtype ", vsum::dtype_str(a));
  vsum::check_layout_2d<T>(a, name, "(nsel, k)");
  VSUM_CHECK(a.writeable(), name, " must be writeable");
  VSUM_CHECK(a.shape(0) == rows && (cols < 0 || a.shape(1) == cols), name, " must have shape (", rows, ", ",
             cols < 0 ? a.shape(1) : cols, "); got ", vsum::shape_str(a));
  return vsum::View2D<T>(static_cast<T*>(const_cast<void*>(a.data())), a.shape(0), a.shape(1));
}

void pairs_topk_merge(const py::array& conf, const py::array& sel, bool transposed, int64_t image,
                      const py::array& scores, const py::array& images, const py::array& indices) {
  const auto c = vsum::view_2d<float>(conf, "conf", -1, "(na, nb)");
  VSUM_CHECK(vsum::has_dtype<int64_t>(sel) && sel.ndim() == 1 && (sel.flags() & py::array::c_style) != 0,
             "sel must be a C-contiguous 1-D int64 array; got dtype ", vsum::dtype_str(sel), " with shape ",
             vsum::shape_str(sel));
  VSUM_CHECK(image >= 0 && image <= INT32_MAX, "image must be in [0, 2**31); got ", image);
  const int64_t nsel = sel.shape(0);
  const auto* s = static_cast<const int64_t*>(sel.data());
  const int64_t limit = transposed ? c.cols : c.rows;
  VSUM_CHECK(limit <= INT32_MAX, "conf has too many candidates (", limit, ")");
  for (int64_t t = 0; t < nsel; ++t) {
    VSUM_CHECK(s[t] >= 0 && s[t] < limit, "sel[", t, "] = ", s[t], " is out of range [0, ", limit, ")");
  }
  auto sc = mutable_2d<float>(scores, "scores", nsel, -1);
  VSUM_CHECK(sc.cols >= 1, "scores must have at least one column (k >= 1)");
  auto im = mutable_2d<int32_t>(images, "images", nsel, sc.cols);
  auto ix = mutable_2d<int32_t>(indices, "indices", nsel, sc.cols);
  {
    py::gil_scoped_release release;
    vsum::pairs::topk_merge(c, s, nsel, transposed, static_cast<int32_t>(image), sc, im, ix);
  }
}

void bind_pairs(py::module_& m) {
  m.def("pairs_topk_merge", &pairs_topk_merge, py::arg("conf"), py::arg("sel"), py::arg("transposed"),
        py::arg("image"), py::arg("scores"), py::arg("images"), py::arg("indices"),
        "pairs_topk_merge(conf: float32 (na, nb), sel: int64 (nsel,), transposed: bool, image: int,\n"
        "                 scores: float32 (nsel, k), images: int32 (nsel, k), indices: int32 (nsel, k)) -> None\n\n"
        "Merge, in place, the candidates of rows sel of conf (columns when transposed) into running\n"
        "top-k lists sorted by (score desc, image asc, index asc); empty slots have index -1.");
}

}  // namespace

VSUM_REGISTER_BINDINGS(pairs, bind_pairs);
