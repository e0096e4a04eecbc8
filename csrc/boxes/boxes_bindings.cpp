// Python bindings of the box-geometry kernels (registered into vsum._core).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>

#include "boxes/boxes.h"
#include "common/numpy_checks.h"
#include "common/registry.h"

namespace py = pybind11;

namespace {

using vsum::boxes::BoxesView;
using vsum::boxes::MaskView;

constexpr const char* kBoxesShape = "(n, 4)";

BoxesView boxes_arg(const py::array& a, const char* name) {
  return vsum::view_2d<int32_t>(a, name, 4, kBoxesShape);
}

MaskView mask_arg(const py::array& a, const char* name) {
  const char* expected = "(H, W)";
  if (vsum::has_dtype<bool>(a)) {  // numpy bool is one byte holding 0 or 1
    vsum::check_layout_2d<uint8_t>(a, name, expected);
    return MaskView(static_cast<const uint8_t*>(a.data()), a.shape(0), a.shape(1));
  }
  VSUM_CHECK(vsum::has_dtype<uint8_t>(a), name, " must be a uint8 or bool array of shape ", expected, "; got dtype ",
             vsum::dtype_str(a), " with shape ", vsum::shape_str(a));
  return vsum::view_2d<uint8_t>(a, name, -1, expected);
}

template <void (*Kernel)(const BoxesView&, const BoxesView&, float*)>
py::array_t<float> pairwise(const py::array& boxes_a, const py::array& boxes_b) {
  const BoxesView a = boxes_arg(boxes_a, "boxes_a");
  const BoxesView b = boxes_arg(boxes_b, "boxes_b");
  auto out = vsum::new_array<float>({static_cast<py::ssize_t>(a.rows), static_cast<py::ssize_t>(b.rows)});
  float* o = out.mutable_data();
  {
    py::gil_scoped_release release;
    Kernel(a, b, o);
  }
  return out;
}

py::array_t<float> coverage(const py::array& mask, const py::array& boxes) {
  const MaskView m = mask_arg(mask, "mask");
  const BoxesView b = boxes_arg(boxes, "boxes");
  auto out = vsum::new_array<float>({static_cast<py::ssize_t>(b.rows)});
  float* o = out.mutable_data();
  {
    py::gil_scoped_release release;
    vsum::boxes::box_coverage(m, b, o);
  }
  return out;
}

}  // namespace

namespace {

void bind_boxes(py::module_& m) {
  m.def("box_iou", &pairwise<vsum::boxes::box_iou>, py::arg("boxes_a"), py::arg("boxes_b"),
        "box_iou(boxes_a: int32 (n, 4), boxes_b: int32 (m, 4)) -> float32 (n, m)\n\n"
        "Intersection over union of the pixel sets of inclusive boxes (x1, y1, x2, y2).");
  m.def("box_overlap_min", &pairwise<vsum::boxes::box_overlap_min>, py::arg("boxes_a"), py::arg("boxes_b"),
        "box_overlap_min(boxes_a: int32 (n, 4), boxes_b: int32 (m, 4)) -> float32 (n, m)\n\n"
        "|A & B| / min(|A|, |B|) of the pixel sets of inclusive boxes (x1, y1, x2, y2).");
  m.def("box_coverage", &coverage, py::arg("mask"), py::arg("boxes"),
        "box_coverage(mask: uint8 or bool (H, W), boxes: int32 (n, 4)) -> float32 (n,)\n\n"
        "Fraction of each box's pixels that are nonzero in mask; pixels outside the\n"
        "image count as not set (the denominator is the full box area).");

  m.attr("BOX_COORD_MIN") = vsum::boxes::kBoxCoordMin;
  m.attr("BOX_COORD_MAX") = vsum::boxes::kBoxCoordMax;
}

}  // namespace

VSUM_REGISTER_BINDINGS(boxes, bind_boxes);
