// Sparse flow field A -> B from proposal matches (stage 4, before the fill).
//
// Inputs: boxes_a (na, 4), boxes_b (nb, 4) int32 inclusive (x1, y1, x2, y2),
// validated with vsum::boxes::check_boxes; conf (na, nb) float32, finite and
// >= 0; image sizes (Ha, Wa), (Hb, Wb) > 0.
//
// Semantics (shared bit for bit with vsum/reference/dense.py):
//   * best(a) = first arg max of conf[a], score(a) = conf[a, best(a)]; rows
//     with score <= 0 are skipped; order = score descending, row ascending.
//   * pixel (x, y) of A takes the FIRST box of that order containing it (boxes
//     clipped to A) and is mapped corners to corners onto box b = best(a):
//     x' = xb1 + (x - xa1) * (xb2 - xb1) / (xa2 - xa1)   (double, this order),
//     or (xb1 + xb2) / 2 when xa2 == xa1; same for y; x' = floor(x' + 0.5)
//     clamped to [0, Wb - 1] (y' to [0, Hb - 1]).  vx = x' - x, vy = y' - y,
//     score = score(a), valid = 1.
//   * one-to-one: among the valid pixels landing on one pixel of B only the
//     highest score stays valid (ties: smallest raster index y * Wa + x).
//   * unassigned pixels: vx = vy = score = 0, valid = 0.
// Parallel over image rows; identical for every thread count.
#pragma once

#include <cstdint>

#include "common/array_view.h"

namespace vsum {
namespace flow {

struct SparseField {
  float* vx;        // (Ha, Wa)
  float* vy;        // (Ha, Wa)
  uint8_t* valid;   // (Ha, Wa), 0 / 1
  float* score;     // (Ha, Wa)
};

// Throws std::invalid_argument on bad boxes, conf of the wrong shape or with
// NaN / inf / negative values, or non-positive image sizes.
void match_field(const View2D<const int32_t>& boxes_a, const View2D<const int32_t>& boxes_b,
                 const View2D<const float>& conf, int64_t height_a, int64_t width_a, int64_t height_b,
                 int64_t width_b, const SparseField& out);

}  // namespace flow
}  // namespace vsum
