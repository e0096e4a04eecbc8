// Python bindings of the Proposal Flow matchers (registered into vsum._core).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

#include "common/numpy_checks.h"
#include "common/registry.h"
#include "flow/match.h"

namespace py = pybind11;

namespace {

py::array_t<float> flow_match(const py::array& boxes_a, const py::array& boxes_b, const py::array& appearance,
                              const std::string& method, int64_t height, int64_t width, bool lom_sequential) {
  using vsum::flow::Method;
  Method m;
  if (method == "nam") m = Method::kNam;
  else if (method == "phm") m = Method::kPhm;
  else if (method == "lom") m = Method::kLom;
  else vsum::throw_value_error("method must be 'nam', 'phm' or 'lom'; got '", method, "'");
  const auto a = vsum::view_2d<int32_t>(boxes_a, "boxes_a", 4, "(na, 4)");
  const auto b = vsum::view_2d<int32_t>(boxes_b, "boxes_b", 4, "(nb, 4)");
  const auto s = vsum::view_2d<float>(appearance, "appearance", -1, "(na, nb)");
  auto out = vsum::new_array<float>({static_cast<py::ssize_t>(a.rows), static_cast<py::ssize_t>(b.rows)});
  float* o = out.mutable_data();
  {
    py::gil_scoped_release release;
    vsum::flow::match(a, b, s, m, height, width, o, lom_sequential);
  }
  return out;
}

void bind_flow(py::module_& m) {
  m.def("flow_match", &flow_match, py::arg("boxes_a"), py::arg("boxes_b"), py::arg("appearance"),
        py::arg("method"), py::arg("height"), py::arg("width"), py::arg("lom_sequential") = true,
        "flow_match(boxes_a: int32 (na, 4), boxes_b: int32 (nb, 4), appearance: float32 (na, nb),\n"
        "           method: 'nam' | 'phm' | 'lom', height: int, width: int,\n"
        "           lom_sequential: bool = True) -> float32 (na, nb)\n\n"
        "Proposal Flow matching confidence (see vsum.flow.match).");
}

}  // namespace

VSUM_REGISTER_BINDINGS(flow, bind_flow);
