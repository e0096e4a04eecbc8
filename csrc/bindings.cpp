// pybind11 module vsum._core: NumPy arrays in, NumPy arrays out.
//
// Every function requires C-contiguous arrays of the documented dtype and
// raises ValueError otherwise (no silent conversion: the Python wrappers in
// vsum/*.py convert and validate user input).  The GIL is released around
// every kernel.
//
// Each operation keeps its own bindings in csrc/<op>/<op>_bindings.cpp and
// registers them with VSUM_REGISTER_BINDINGS (common/registry.h); this file
// only creates the module and runs the registered functions in name order.
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "common/parallel.h"
#include "common/registry.h"

namespace py = pybind11;

namespace vsum {

std::vector<BindingEntry>& binding_registry() {
  static std::vector<BindingEntry> entries;
  return entries;
}

}  // namespace vsum

PYBIND11_MODULE(_core, m) {
  m.doc() =
      "Compiled core of visual-summaries (NumPy in, NumPy out).\n\n"
      "Low-level: arrays must be C-contiguous with the documented dtype. Use the\n"
      "wrappers in vsum.boxes etc., which convert and validate input.";

  m.def("get_num_threads", &vsum::get_num_threads,
        "Number of threads used by the compiled kernels (>= 1).\n\n"
        "Defaults to the environment variable VSUM_NUM_THREADS if it is a positive\n"
        "integer, else the number of hardware threads.");
  m.def("set_num_threads", &vsum::set_num_threads, py::arg("n"), py::call_guard<py::gil_scoped_release>(),
        "Set the number of threads used by the compiled kernels (1 <= n <= 4096).\n\n"
        "Resizes the persistent thread pool (after a job running on it finishes).\n"
        "Results do not depend on the thread count.");

  auto entries = vsum::binding_registry();
  std::sort(entries.begin(), entries.end(),
            [](const vsum::BindingEntry& a, const vsum::BindingEntry& b) { return std::strcmp(a.name, b.name) < 0; });
  for (const auto& entry : entries) entry.bind(m);

  m.attr("MAX_THREADS") = vsum::kMaxThreads;
}
