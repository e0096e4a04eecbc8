// Python bindings of the dense flow field kernels (registered into vsum._core).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>

#include "common/numpy_checks.h"
#include "common/registry.h"
#include "flow/dense.h"
#include "flow/fill.h"

namespace py = pybind11;

namespace {

py::tuple flow_match_field(const py::array& boxes_a, const py::array& boxes_b, const py::array& conf,
                           int64_t height_a, int64_t width_a, int64_t height_b, int64_t width_b) {
  const auto a = vsum::view_2d<int32_t>(boxes_a, "boxes_a", 4, "(na, 4)");
  const auto b = vsum::view_2d<int32_t>(boxes_b, "boxes_b", 4, "(nb, 4)");
  const auto c = vsum::view_2d<float>(conf, "conf", -1, "(na, nb)");
  VSUM_CHECK(height_a > 0 && width_a > 0, "shape_a must be positive; got (", height_a, ", ", width_a, ")");
  VSUM_CHECK(height_b > 0 && width_b > 0, "shape_b must be positive; got (", height_b, ", ", width_b, ")");
  const std::vector<py::ssize_t> shape{static_cast<py::ssize_t>(height_a), static_cast<py::ssize_t>(width_a)};
  auto vx = vsum::new_array<float>(shape);
  auto vy = vsum::new_array<float>(shape);
  py::array_t<bool> valid(shape);
  auto score = vsum::new_array<float>(shape);
  const vsum::flow::SparseField out{vx.mutable_data(), vy.mutable_data(),
                                    reinterpret_cast<uint8_t*>(valid.mutable_data()), score.mutable_data()};
  {
    py::gil_scoped_release release;
    vsum::flow::match_field(a, b, c, height_a, width_a, height_b, width_b, out);
  }
  return py::make_tuple(vx, vy, valid, score);
}

py::tuple flow_fill(const py::array& vx, const py::array& vy, const py::array& valid, const py::array& guide,
                    int64_t channels, double lam, double sigma, int iterations, bool smooth) {
  const auto x = vsum::view_2d<float>(vx, "vx", -1, "(H, W)");
  const auto y = vsum::view_2d<float>(vy, "vy", -1, "(H, W)");
  const auto m = vsum::view_2d<uint8_t>(valid, "valid", -1, "(H, W)");
  const auto g = vsum::view_2d<float>(guide, "guide", -1, "(H, W * channels)");
  VSUM_CHECK(channels >= 1, "channels must be >= 1; got ", channels);
  VSUM_CHECK(y.rows == x.rows && y.cols == x.cols && m.rows == x.rows && m.cols == x.cols, "vx, vy and valid must ",
             "have the same shape; got (", x.rows, ", ", x.cols, "), (", y.rows, ", ", y.cols, "), (", m.rows, ", ",
             m.cols, ")");
  VSUM_CHECK(g.rows == x.rows && g.cols == x.cols * channels, "guide must have shape (H, W * channels) = (", x.rows,
             ", ", x.cols * channels, "); got (", g.rows, ", ", g.cols, ")");
  vsum::flow::FillParams params;
  params.lam = lam;
  params.sigma = sigma;
  params.iterations = iterations;
  params.smooth = smooth;
  const std::vector<py::ssize_t> shape{static_cast<py::ssize_t>(x.rows), static_cast<py::ssize_t>(x.cols)};
  auto ox = vsum::new_array<float>(shape);
  auto oy = vsum::new_array<float>(shape);
  float* px = ox.mutable_data();
  float* py_ = oy.mutable_data();
  {
    py::gil_scoped_release release;
    vsum::flow::fill_flow(x.data, y.data, m.data, g.data, x.rows, x.cols, channels, params, px, py_);
  }
  return py::make_tuple(ox, oy);
}

void bind_dense(py::module_& m) {
  m.def("flow_match_field", &flow_match_field, py::arg("boxes_a"), py::arg("boxes_b"), py::arg("conf"),
        py::arg("height_a"), py::arg("width_a"), py::arg("height_b"), py::arg("width_b"),
        "flow_match_field(boxes_a: int32 (na, 4), boxes_b: int32 (nb, 4), conf: float32 (na, nb),\n"
        "                 height_a, width_a, height_b, width_b) -> (vx, vy, valid, score)\n\n"
        "Sparse flow field A -> B from proposal matches (see vsum.flow.match_field).");
  m.def("flow_fill", &flow_fill, py::arg("vx"), py::arg("vy"), py::arg("valid"), py::arg("guide"),
        py::arg("channels"), py::arg("lam"), py::arg("sigma"), py::arg("iterations"), py::arg("smooth"),
        "flow_fill(vx: float32 (H, W), vy: float32 (H, W), valid: uint8 (H, W), guide: float32 (H, W * C),\n"
        "          channels: int, lam: float, sigma: float, iterations: int, smooth: bool) -> (vx, vy)\n\n"
        "Fast Global Smoother fill of a sparse flow field (see vsum.flow.fill_flow).");
}

}  // namespace

VSUM_REGISTER_BINDINGS(dense, bind_dense);
