// Edge-aware fill of a sparse flow field: the Fast Global Smoother (Min et al.,
// "Fast global image smoothing based on weighted least squares", IEEE TIP 2014)
// in normalised-convolution form.
//
// With data d = valid * f and confidence c = valid, the result is U(d) / U(c),
// where U applies `iterations` rounds of: 1D weighted-least-squares solves
// (I + lambda_t L) u = u along every row, then along every column (Thomas
// algorithm), lambda_t = 1.5 * lam * 4^(T - t) / (4^T - 1), t = 1..T.  L is
// the 1D graph Laplacian with neighbour weights exp(-||g_p - g_q|| / sigma),
// g the guide in its own units (0-255 for images), ||.|| over the channels.
// Where U(c) < kFillMinWeight (no valid pixel reachable) the value of the
// nearest valid pixel (Euclidean, exact distance transform) is used, or 0 when
// no pixel is valid.  smooth = false keeps valid pixels exactly.
// Parallel over rows / column blocks; identical for every thread count.
#pragma once

#include <cstdint>

namespace vsum {
namespace flow {

constexpr double kFillMinWeight = 1e-12;
constexpr int kFillMaxIterations = 100;

struct FillParams {
  double lam = 1000.0;   // smoothness lambda (>= 0)
  double sigma = 40.0;   // guide range scale, guide units (> 0)
  int iterations = 3;    // T (1 .. kFillMaxIterations)
  bool smooth = true;    // false: valid pixels keep their input values
};

// vx, vy: (H, W) float32; valid: (H, W) 0/1; guide: (H, W, channels) float32.
// out_vx, out_vy: (H, W) float32 (may not alias the inputs).  Throws
// std::invalid_argument on bad parameters or non-finite valid values.
void fill_flow(const float* vx, const float* vy, const uint8_t* valid, const float* guide, int64_t height,
               int64_t width, int64_t channels, const FillParams& params, float* out_vx, float* out_vy);

}  // namespace flow
}  // namespace vsum
