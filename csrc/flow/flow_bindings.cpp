// Python bindings of the Proposal Flow matchers (registered into vsum._core).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/numpy_checks.h"
#include "common/parallel.h"
#include "common/registry.h"
#include "flow/match.h"

namespace py = pybind11;

namespace {

using vsum::flow::Method;

// The matcher named by method, else ValueError.
Method parse_method(const std::string& method) {
  if (method == "nam") return Method::kNam;
  if (method == "phm") return Method::kPhm;
  if (method == "lom") return Method::kLom;
  vsum::throw_value_error("method must be 'nam', 'phm' or 'lom'; got '", method, "'");
}

py::array_t<float> flow_match(const py::array& boxes_a, const py::array& boxes_b, const py::array& appearance,
                              const std::string& method, int64_t height, int64_t width, bool lom_sequential) {
  const Method m = parse_method(method);
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

// Element k of a list of arrays (a new reference), else ValueError worded as view_2d's.
py::array list_array(const py::list& list, size_t k, const char* name, const char* dtype, const char* expected) {
  py::object item = list[k];
  if (!py::isinstance<py::array>(item)) {
    vsum::throw_value_error(name, " must be a ", dtype, " array of shape ", expected, "; got an object of type ",
                            py::str(py::type::of(item).attr("__name__")).cast<std::string>());
  }
  return py::reinterpret_borrow<py::array>(item);
}

// One pair of a batch: views of its inputs and its output.
struct BatchPair {
  vsum::flow::BoxesView a, b;
  vsum::flow::MatrixView s;
  float* out = nullptr;
};

py::list flow_match_batch(const py::list& boxes_a, const py::list& boxes_b, const py::list& appearance,
                          const std::string& method, const std::vector<int64_t>& heights,
                          const std::vector<int64_t>& widths, bool lom_sequential) {
  const Method m = parse_method(method);
  const size_t count = boxes_a.size();
  VSUM_CHECK(boxes_b.size() == count && appearance.size() == count && heights.size() == count &&
                 widths.size() == count,
             "boxes_a, boxes_b, appearance, heights and widths must have the same length; got ", count, ", ",
             boxes_b.size(), ", ", appearance.size(), ", ", heights.size(), " and ", widths.size());
  std::vector<py::array> keep;  // the inputs stay alive even if a list is changed while the GIL is released
  keep.reserve(3 * count);
  std::vector<BatchPair> pairs(count);
  py::list outs(count);
  for (size_t k = 0; k < count; ++k) {
    BatchPair& p = pairs[k];
    try {
      keep.push_back(list_array(boxes_a, k, "boxes_a", "int32", "(na, 4)"));
      p.a = vsum::view_2d<int32_t>(keep.back(), "boxes_a", 4, "(na, 4)");
      keep.push_back(list_array(boxes_b, k, "boxes_b", "int32", "(nb, 4)"));
      p.b = vsum::view_2d<int32_t>(keep.back(), "boxes_b", 4, "(nb, 4)");
      keep.push_back(list_array(appearance, k, "appearance", "float32", "(na, nb)"));
      p.s = vsum::view_2d<float>(keep.back(), "appearance", -1, "(na, nb)");
    } catch (const std::invalid_argument& e) {
      vsum::throw_value_error("pair ", k, ": ", e.what());
    }
    auto out = vsum::new_array<float>({static_cast<py::ssize_t>(p.a.rows), static_cast<py::ssize_t>(p.b.rows)});
    p.out = out.mutable_data();
    outs[k] = std::move(out);
  }
  auto run_pair = [&](int64_t k) {
    const BatchPair& p = pairs[static_cast<size_t>(k)];
    try {
      vsum::flow::match(p.a, p.b, p.s, m, heights[static_cast<size_t>(k)], widths[static_cast<size_t>(k)], p.out,
                        lom_sequential);
    } catch (const std::invalid_argument& e) {
      vsum::throw_value_error("pair ", k, ": ", e.what());
    }
  };
  {
    py::gil_scoped_release release;
    if (count == 1) {
      run_pair(0);  // one pair: parallel over its rows, as flow_match
    } else {
      vsum::parallel_for(static_cast<int64_t>(count), run_pair, 1);  // each pair serial inside its task
    }
  }
  return outs;
}

void bind_flow(py::module_& m) {
  m.def("flow_match", &flow_match, py::arg("boxes_a"), py::arg("boxes_b"), py::arg("appearance"),
        py::arg("method"), py::arg("height"), py::arg("width"), py::arg("lom_sequential") = true,
        "flow_match(boxes_a: int32 (na, 4), boxes_b: int32 (nb, 4), appearance: float32 (na, nb),\n"
        "           method: 'nam' | 'phm' | 'lom', height: int, width: int,\n"
        "           lom_sequential: bool = True) -> float32 (na, nb)\n\n"
        "Proposal Flow matching confidence (see vsum.flow.match).");
  m.def("flow_match_batch", &flow_match_batch, py::arg("boxes_a"), py::arg("boxes_b"), py::arg("appearance"),
        py::arg("method"), py::arg("heights"), py::arg("widths"), py::arg("lom_sequential") = true,
        "flow_match_batch(boxes_a: list of int32 (na_k, 4), boxes_b: list of int32 (nb_k, 4),\n"
        "                 appearance: list of float32 (na_k, nb_k), method: 'nam' | 'phm' | 'lom',\n"
        "                 heights: list[int], widths: list[int], lom_sequential: bool = True)\n"
        "                 -> list of float32 (na_k, nb_k)\n\n"
        "flow_match on every pair k, the pairs in parallel on the thread pool (each pair serial\n"
        "inside its task; a single pair runs as flow_match).  Result k equals flow_match on pair k;\n"
        "errors name the pair (\"pair k: ...\"), the lowest bad pair at every thread count\n"
        "(see vsum.flow.match_batch).");
}

}  // namespace

VSUM_REGISTER_BINDINGS(flow, bind_flow);
