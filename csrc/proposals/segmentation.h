// Felzenszwalb-Huttenlocher graph segmentation (IJCV 2004), deterministic.
//
// Steps (mirrored operation by operation in vsum/reference/segmentation.py,
// so that both give the same partition):
//   1. Smooth every channel with a separable Gaussian (sigma > 0): taps
//      g[i] = exp(-0.5 (i / sigma)^2) for i = 0..ceil(4 sigma), normalised so
//      that g[0] + 2 * sum_{i>=1} g[i] = 1; borders replicate the edge pixel;
//      rows first, then columns; float64; out = g0*x + sum_i g_i*(x[-i] + x[+i])
//      accumulated in increasing i.  sigma == 0 means no smoothing.
//   2. 8-connected grid graph.  Edges are generated pixel by pixel in raster
//      order, each pixel p = (y, x) giving, when they exist, the edges to
//      (y, x+1), (y+1, x), (y+1, x+1), (y-1, x+1); the edge index is the
//      generation order.  Weight = float32(sqrt(sum_c (a_c - b_c)^2)) computed
//      in float64, channels summed in order.
//   3. Edges sorted by (weight, edge index) ascending (= a stable sort).
//   4. Kruskal-style merging: for each edge (u, v) joining components
//      A != B, merge when w <= Int(A) + k/|A| and w <= Int(B) + k/|B|
//      (float64; Int = weight of the last merging edge, 0 initially).
//   5. For each edge in the same order, merge A != B when |A| < min_size or
//      |B| < min_size.
//   6. Labels 0..n-1 in raster order of each component's first pixel.
#pragma once

#include <cstdint>
#include <vector>

namespace vsum {
namespace proposals {

// Normalised half kernel g[0..r] of the Gaussian of step 1 (empty if sigma == 0).
std::vector<double> gaussian_half_kernel(double sigma);

// image: (H, W, C) float64, C-contiguous.  labels: H*W int32 output.
// Returns the number of segments.  Requires H, W, C >= 1, sigma >= 0,
// k >= 0, min_size >= 0 (checked by the caller).  Single-threaded: callers
// parallelise over images.
int32_t felzenszwalb(const double* image, int64_t H, int64_t W, int64_t C, double sigma, double k,
                     int64_t min_size, int32_t* labels);

}  // namespace proposals
}  // namespace vsum
