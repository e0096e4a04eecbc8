// Python bindings of graph segmentation and selective search (vsum._core).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "common/numpy_checks.h"
#include "common/registry.h"
#include "proposals/segmentation.h"
#include "proposals/selective_search.h"

namespace py = pybind11;

namespace {

// Largest side accepted (box corners are packed in 16 bits each for the
// duplicate check; pixel indices must fit int32).
constexpr int64_t kMaxSide = 65535;

void check_size(int64_t H, int64_t W, const char* name) {
  VSUM_CHECK(H >= 1 && W >= 1, name, " must not be empty; got shape (", H, ", ", W, ", ...)");
  VSUM_CHECK(H <= kMaxSide && W <= kMaxSide && H * W < (int64_t{1} << 30), name, " is too large: (", H, ", ", W,
             "); the sides must be <= ", kMaxSide, " and H * W < 2^30");
}

py::array_t<int32_t> felzenszwalb(const py::array& image, double sigma, double k, int64_t min_size) {
  VSUM_CHECK(vsum::has_dtype<double>(image) && image.ndim() == 3, "image must be a float64 array of shape (H, W, C); got dtype ",
             vsum::dtype_str(image), " with shape ", vsum::shape_str(image));
  VSUM_CHECK((image.flags() & py::array::c_style) != 0, "image must be C-contiguous");
  const int64_t H = image.shape(0), W = image.shape(1), C = image.shape(2);
  check_size(H, W, "image");
  VSUM_CHECK(C >= 1, "image must have at least one channel");
  VSUM_CHECK(std::isfinite(sigma) && sigma >= 0, "sigma must be a finite number >= 0; got ", sigma);
  VSUM_CHECK(std::isfinite(k) && k >= 0, "k must be a finite number >= 0; got ", k);
  VSUM_CHECK(min_size >= 0, "min_size must be >= 0; got ", min_size);
  auto out = vsum::new_array<int32_t>({static_cast<py::ssize_t>(H), static_cast<py::ssize_t>(W)});
  const double* data = static_cast<const double*>(image.data());
  int32_t* labels = out.mutable_data();
  {
    py::gil_scoped_release release;
    vsum::proposals::felzenszwalb(data, H, W, C, sigma, k, min_size, labels);
  }
  return out;
}

py::tuple selective_search(const py::array& image, const std::vector<std::string>& colour_spaces,
                           const std::vector<double>& ks, const std::vector<int>& strategies, double sigma,
                           int64_t num, uint32_t seed, int64_t min_side, double border) {
  VSUM_CHECK(vsum::has_dtype<uint8_t>(image) && image.ndim() == 3 && image.shape(2) == 3,
             "image must be a uint8 RGB array of shape (H, W, 3); got dtype ", vsum::dtype_str(image),
             " with shape ", vsum::shape_str(image));
  VSUM_CHECK((image.flags() & py::array::c_style) != 0, "image must be C-contiguous");
  const int64_t H = image.shape(0), W = image.shape(1);
  check_size(H, W, "image");
  VSUM_CHECK(std::isfinite(sigma) && sigma >= 0, "sigma must be a finite number >= 0; got ", sigma);
  for (double k : ks) VSUM_CHECK(std::isfinite(k) && k >= 0 && k < 1e9, "every k must be in [0, 1e9); got ", k);
  VSUM_CHECK(std::isfinite(border) && border >= 0, "border must be a finite number >= 0; got ", border);
  vsum::proposals::SelectiveSearchConfig cfg;
  for (const auto& name : colour_spaces) cfg.colour_spaces.push_back(vsum::proposals::parse_colour_space(name));
  cfg.ks = ks;
  cfg.strategies = strategies;
  cfg.sigma = sigma;
  cfg.num = num;
  cfg.seed = seed;
  cfg.min_side = min_side;
  cfg.border = border;
  const uint8_t* rgb = static_cast<const uint8_t*>(image.data());
  vsum::proposals::Proposals result;
  {
    py::gil_scoped_release release;
    result = vsum::proposals::selective_search(rgb, H, W, cfg);
  }
  const auto n = static_cast<py::ssize_t>(result.scores.size());
  auto boxes = vsum::new_array<int32_t>({n, 4});
  auto scores = vsum::new_array<double>({n});
  std::copy(result.boxes.begin(), result.boxes.end(), boxes.mutable_data());
  std::copy(result.scores.begin(), result.scores.end(), scores.mutable_data());
  return py::make_tuple(boxes, scores);
}

void bind_proposals(py::module_& m) {
  m.def("felzenszwalb", &felzenszwalb, py::arg("image"), py::arg("sigma"), py::arg("k"), py::arg("min_size"),
        "felzenszwalb(image: float64 (H, W, C), sigma, k, min_size) -> int32 (H, W) labels 0..n-1\n\n"
        "Felzenszwalb-Huttenlocher graph segmentation (deterministic; see vsum.proposals.segment).");
  m.def("selective_search", &selective_search, py::arg("image"), py::arg("colour_spaces"), py::arg("ks"),
        py::arg("strategies"), py::arg("sigma"), py::arg("num"), py::arg("seed"), py::arg("min_side"),
        py::arg("border"),
        "selective_search(image: uint8 (H, W, 3), colour_spaces: list[str], ks: list[float],\n"
        "                 strategies: list[int], sigma, num, seed, min_side, border)\n"
        "    -> (boxes int32 (n, 4) inclusive x1, y1, x2, y2; scores float64 (n,))\n\n"
        "Strategies are ORs of 1 colour, 2 texture, 4 size, 8 fill (see vsum.proposals.selective_search).");
}

}  // namespace

VSUM_REGISTER_BINDINGS(proposals, bind_proposals);
