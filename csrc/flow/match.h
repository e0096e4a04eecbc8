// Proposal Flow matchers (stage 4): NAM, PHM, LOM for one image pair.
//
// Inputs: boxes_a (na, 4), boxes_b (nb, 4) int32 inclusive (x1, y1, x2, y2),
// validated with vsum::boxes::check_boxes; appearance (na, nb) float32,
// finite and >= 0.  Output out (na, nb) float32 confidence.
//
// Shared geometry (all in double): centre xc = (x1 + x2) * 0.5, width
// w = x2 - x1 + 1, area = w * h.  Aspect gate: a pair is zeroed when
// max(wa*hb, wb*ha) >= 2 * min(wa*hb, wb*ha) (exact int64 test).
//
// PHM: offset (dx, dy) = centre_b - centre_a, scale s = 0.5 * log2(area_b /
// area_a) (log2 of the ratio of sqrt areas).  Bins: kPhmXY x kPhmXY x-y
// cells over [-W, W] x [-H, H], kPhmScales bins over [-4, 4], out-of-range
// values clamped to the edge bins.  Per (a, bin) the maximum vote counts;
// the histogram is smoothed by a separable 5x5x5 Gaussian (sigma = 1 bin,
// zero padding); conf = gated appearance * smoothed histogram at the bin.
//
// LOM: see docs/method.md, stage 4, in two orders (lom_cpu.cpp).  Sequential
// (the original): rows are updated in place in order 0..na-1, and row i reads
// the current best match and best score of every neighbour (rows < i already
// updated) and the current sum of best scores; one thread per pair.
// Parallel: the order-independent version (every row reads only the gated
// appearance).  Both: one fused pass
// validates, gates and finds each row's best match, then per row of A the
// overlapping proposals' offsets are gathered, their geometric median found
// (double vectors; AVX2 when the CPU has it, same bits as the SSE2 baseline)
// and the row's nonzero scores rescaled in place (vectorised double exp,
// ~1e-15 relative).  Every kernel runs parallel over rows of A and gives
// identical results for every thread count.
#pragma once

#include <cstdint>

#include "common/array_view.h"

namespace vsum {
namespace flow {

using BoxesView = View2D<const int32_t>;
using MatrixView = View2D<const float>;

constexpr int kPhmXY = 90;        // 90 x 90 = 8100 x-y cells
constexpr int kPhmScales = 20;    // log2-scale bins over [-4, 4]
constexpr int kLomIterations = 20;
constexpr double kLomEps = 1e-6;
constexpr double kLomXY = 0.05;
constexpr double kLomScale = 0.3;

enum class Method { kNam, kPhm, kLom };

// Throws std::invalid_argument on bad boxes, shape mismatch, NaN/inf or
// negative appearance, or (PHM) non-positive image size.  lom_sequential
// picks the LOM order (ignored by NAM and PHM).
void match(const BoxesView& a, const BoxesView& b, const MatrixView& appearance, Method method,
           int64_t height, int64_t width, float* out, bool lom_sequential = true);

}  // namespace flow
}  // namespace vsum
