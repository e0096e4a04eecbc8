// Box geometry kernels.
//
// Conventions (shared with vsum/boxes.py and vsum/reference/boxes.py):
//   * a box is 4 int32 values (x1, y1, x2, y2); x is the column, y the row;
//   * corners are INCLUSIVE pixel indices, so a box covers
//     (x2 - x1 + 1) * (y2 - y1 + 1) pixels;
//   * a box with x2 < x1 or y2 < y1 is degenerate and rejected (ValueError
//     naming the first bad row);
//   * every coordinate must lie in [kBoxCoordMin, kBoxCoordMax] = [-2^30, 2^30 - 1]
//     so that areas (<= 2^62) and unions of two boxes fit exactly in int64;
//   * all pixel counts are int64; a ratio is computed as
//     double(numerator) / double(denominator) and rounded to float32, which is
//     exactly what the NumPy reference does, so results match bit for bit.
//
// All kernels validate their input first (std::invalid_argument on error) and
// then run parallel over rows with vsum::parallel_for.  They never touch
// Python, so callers may release the GIL around them.
#pragma once

#include <cstdint>

#include "common/array_view.h"

namespace vsum {
namespace boxes {

constexpr int32_t kBoxCoordMin = -(int32_t{1} << 30);
constexpr int32_t kBoxCoordMax = (int32_t{1} << 30) - 1;

using BoxesView = View2D<const int32_t>;  // (n, 4)
using MaskView = View2D<const uint8_t>;   // (H, W), nonzero = set

// Throws std::invalid_argument unless boxes has 4 columns, every coordinate is
// within [kBoxCoordMin, kBoxCoordMax] and no box is degenerate.  `name` is the
// argument name used in the message (e.g. "boxes_a").
void check_boxes(const BoxesView& boxes, const char* name);

// out (n, m) float32: |A_i ∩ B_j| / |A_i ∪ B_j|.
void box_iou(const BoxesView& a, const BoxesView& b, float* out);

// out (n, m) float32: |A_i ∩ B_j| / min(|A_i|, |B_j|).
void box_overlap_min(const BoxesView& a, const BoxesView& b, float* out);

// out (n,) float32: fraction of the pixels of box i that are nonzero in mask.
// Pixels of a box that lie outside the image count as not set: the
// denominator is always the full box area.  One int64 integral image of the
// mask is built per call (only when n > 0).
void box_coverage(const MaskView& mask, const BoxesView& boxes, float* out);

}  // namespace boxes
}  // namespace vsum
