// Python bindings of Felzenszwalb HOG and proposal descriptors (into vsum._core).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>

#include "common/numpy_checks.h"
#include "common/registry.h"
#include "hog/hog.h"

namespace py = pybind11;

namespace {

vsum::hog::Image image_arg(const py::array& a) {
  const char* expected = "(H, W, 3)";
  VSUM_CHECK(vsum::has_dtype<float>(a), "image must be a float32 array of shape ", expected, "; got dtype ",
             vsum::dtype_str(a), " with shape ", vsum::shape_str(a));
  VSUM_CHECK(a.ndim() == 3 && a.shape(2) == 3, "image must have shape ", expected, "; got ", vsum::shape_str(a));
  VSUM_CHECK((a.flags() & py::array::c_style) != 0, "image must be C-contiguous (use numpy.ascontiguousarray)");
  VSUM_CHECK(reinterpret_cast<std::uintptr_t>(a.data()) % alignof(float) == 0, "image must be aligned to ",
             alignof(float), " bytes");
  return vsum::hog::Image{static_cast<const float*>(a.data()), static_cast<int64_t>(a.shape(0)),
                          static_cast<int64_t>(a.shape(1))};
}

py::array_t<float> fhog(const py::array& image, int cell) {
  const vsum::hog::Image im = image_arg(image);
  int64_t rows = 0, cols = 0;
  vsum::hog::fhog_shape(im.height, im.width, cell, &rows, &cols);
  auto out = vsum::new_array<float>(
      {static_cast<py::ssize_t>(rows), static_cast<py::ssize_t>(cols), static_cast<py::ssize_t>(vsum::hog::kFeatures)});
  float* o = out.mutable_data();
  {
    py::gil_scoped_release release;
    vsum::hog::fhog(im, cell, o);
  }
  return out;
}

py::array_t<float> describe(const py::array& image, const py::array& boxes) {
  const vsum::hog::Image im = image_arg(image);
  const auto b = vsum::view_2d<int32_t>(boxes, "boxes", 4, "(n, 4)");
  auto out = vsum::new_array<float>({static_cast<py::ssize_t>(b.rows), static_cast<py::ssize_t>(vsum::hog::kDescLength)});
  float* o = out.mutable_data();
  {
    py::gil_scoped_release release;
    vsum::hog::describe(im, b, o);
  }
  return out;
}

void bind_hog(py::module_& m) {
  m.def("fhog", &fhog, py::arg("image"), py::arg("cell") = 8,
        "fhog(image: float32 (H, W, 3), cell: int = 8) -> float32 (max(round(H/cell)-2, 0), max(round(W/cell)-2, 0), 31)\n\n"
        "Felzenszwalb (voc-release) HOG with linear orientation and bilinear spatial binning.");
  m.def("hog_describe", &describe, py::arg("image"), py::arg("boxes"),
        "hog_describe(image: float32 (H, W, 3), boxes: int32 (n, 4)) -> float32 (n, 1984)\n\n"
        "Per-box descriptors: box padded by one cell, edge-replicated crop resized\n"
        "bilinearly to 80x80, FHOG with 8 px cells, inner 8x8 cells flattened (y, x, feature).");
  m.attr("HOG_FEATURES") = vsum::hog::kFeatures;
  m.attr("HOG_DESC_LENGTH") = vsum::hog::kDescLength;
  m.attr("HOG_MIN_IMAGE_SIDE") = vsum::hog::kMinImageSide;
  m.attr("HOG_MAX_CELL") = vsum::hog::kMaxCell;
}

}  // namespace

VSUM_REGISTER_BINDINGS(hog, bind_hog);
