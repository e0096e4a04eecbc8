// CPU implementation of Felzenszwalb HOG and proposal descriptors (see hog.h).
#include "hog/hog.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "boxes/boxes.h"
#include "common/errors.h"
#include "common/parallel.h"

namespace vsum {
namespace hog {
namespace {

constexpr double kPi = 3.14159265358979323846;

int64_t blocks_for(int64_t side, int cell) {
  return static_cast<int64_t>(std::llround(static_cast<double>(side) / static_cast<double>(cell)));
}

void check_cell(int cell) {
  VSUM_CHECK(cell >= 1 && cell <= kMaxCell, "cell must be an integer in [1, ", kMaxCell, "]; got ", cell);
}

// Per-pixel gradient of the visible area: magnitude, lower orientation bin and
// the weight of the upper bin (bin + 1 mod 18).
struct Gradients {
  std::vector<double> mag;
  std::vector<double> frac;
  std::vector<int32_t> bin;
};

// Cell coordinate of pixel p: the cell index left of (above) its position and
// the bilinear weight of the next cell.
void cell_coords(int64_t n, int cell, std::vector<int64_t>& index, std::vector<double>& weight) {
  index.resize(static_cast<size_t>(n));
  weight.resize(static_cast<size_t>(n));
  for (int64_t p = 0; p < n; ++p) {
    const double pos = (static_cast<double>(p) + 0.5) / static_cast<double>(cell) - 0.5;
    const double f = std::floor(pos);
    index[static_cast<size_t>(p)] = static_cast<int64_t>(f);
    weight[static_cast<size_t>(p)] = pos - f;
  }
}

// GCC if-converts (and so vectorises) the branch-free orientation loop below
// only without -ftrapping-math; the option changes no result.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC push_options
#pragma GCC optimize("no-trapping-math")
#endif

// atan(a) for a in [0, 1]: reduced to |x| <= tan(pi/12) by
// atan(a) = pi/6 + atan((sqrt(3) a - 1) / (a + sqrt(3))), then the Taylor
// series to x^19 (truncation error < 1e-13).  Branch-free, so the row loop
// below vectorises; std::atan2 dominated the run time.
inline double atan_unit(double a) {
  constexpr double kSqrt3 = 1.7320508075688772;
  constexpr double kTan15 = 0.2679491924311227;
  const bool big = a > kTan15;
  const double reduced = (kSqrt3 * a - 1.0) / (a + kSqrt3);  // denominator >= sqrt(3): no branch needed
  const double x = big ? reduced : a;
  const double z = x * x;
  double p = -1.0 / 19.0;
  p = p * z + 1.0 / 17.0;
  p = p * z - 1.0 / 15.0;
  p = p * z + 1.0 / 13.0;
  p = p * z - 1.0 / 11.0;
  p = p * z + 1.0 / 9.0;
  p = p * z - 1.0 / 7.0;
  p = p * z + 1.0 / 5.0;
  p = p * z - 1.0 / 3.0;
  p = p * z + 1.0;
  return (big ? kPi / 6.0 : 0.0) + x * p;
}

// atan2(dy, dx) in (-pi, pi] (agrees with std::atan2 to ~1e-13 rad).
inline double atan2_fast(double dy, double dx) {
  const double ax = std::fabs(dx), ay = std::fabs(dy);
  const double mx = ax > ay ? ax : ay, mn = ax > ay ? ay : ax;  // no std::max: not inlined under the pragma
  double r = atan_unit(mn / (mx > 0.0 ? mx : 1.0));
  r = ay > ax ? kPi / 2.0 - r : r;
  r = dx < 0.0 ? kPi - r : r;
  return dy < 0.0 ? -r : r;
}

// Lower orientation bin (0..17) and the weight of the next bin of n gradients.
void orientations(const double* __restrict gx, const double* __restrict gy, double* __restrict frac,
                  int32_t* __restrict bin, int64_t n) {
  constexpr double kBinsPerRadian = static_cast<double>(kOrientations) / (2.0 * kPi);
  for (int64_t i = 0; i < n; ++i) {
    double t = atan2_fast(gy[i], gx[i]) * kBinsPerRadian;
    t = t < 0.0 ? t + kOrientations : t;
    int32_t lo = static_cast<int32_t>(t);  // floor: t >= 0
    frac[i] = t - lo;
    lo = lo >= kOrientations ? lo - kOrientations : lo;  // t rounded up to exactly 18
    bin[i] = lo;
  }
}

void compute_gradients(const Image& im, int64_t vh, int64_t vw, Gradients& g) {
  const int64_t H = im.height, W = im.width;
  const size_t n = static_cast<size_t>(vh * vw);
  g.mag.assign(n, 0.0);
  g.frac.assign(n, 0.0);
  g.bin.assign(n, 0);
  parallel_for(
      vh - 2,
      [&](int64_t r) {
        const int64_t y = r + 1;
        const int64_t yy = std::min(y, H - 2);
        const float* up = im.data + (yy - 1) * W * 3;
        const float* mid = im.data + yy * W * 3;
        const float* down = im.data + (yy + 1) * W * 3;
        double* mag = g.mag.data() + y * vw;
        double* frac = g.frac.data() + y * vw;
        int32_t* bin = g.bin.data() + y * vw;
        // Pass a: the winning channel's gradient (mag holds dx^2 + dy^2 for now).
        std::vector<double> gx(static_cast<size_t>(vw)), gy(static_cast<size_t>(vw));
        for (int64_t x = 1; x < vw - 1; ++x) {
          const int64_t xx = std::min(x, W - 2);
          const float* u = up + xx * 3;
          const float* d = down + xx * 3;
          const float* lft = mid + (xx - 1) * 3;
          const float* rgt = mid + (xx + 1) * 3;
          // Channel with the largest squared magnitude, the first on ties.
          double bdy = static_cast<double>(d[0]) - static_cast<double>(u[0]);
          double bdx = static_cast<double>(rgt[0]) - static_cast<double>(lft[0]);
          double bv = bdx * bdx + bdy * bdy;
          for (int c = 1; c < 3; ++c) {
            const double dy = static_cast<double>(d[c]) - static_cast<double>(u[c]);
            const double dx = static_cast<double>(rgt[c]) - static_cast<double>(lft[c]);
            const double v = dx * dx + dy * dy;
            const bool better = v > bv;
            bdx = better ? dx : bdx;
            bdy = better ? dy : bdy;
            bv = better ? v : bv;
          }
          gx[static_cast<size_t>(x)] = bdx;
          gy[static_cast<size_t>(x)] = bdy;
          mag[x] = bv;
        }
        // Pass b (branch-free, vectorised): orientation bin and fraction.
        orientations(gx.data() + 1, gy.data() + 1, frac + 1, bin + 1, vw - 2);
        // Zero gradients get magnitude 0 and so cast no vote.
        for (int64_t x = 1; x < vw - 1; ++x) mag[x] = std::sqrt(mag[x]);
      },
      8);
}

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif

// hist (bh, bw, 18): bilinear spatial and linear orientation votes.  Each block
// row is filled by one task from the pixel rows that vote into it, in a fixed
// order, so the result does not depend on the thread count.
void compute_histograms(const Gradients& g, int64_t bh, int64_t bw, int64_t vh, int64_t vw, int cell,
                        std::vector<double>& hist) {
  std::vector<int64_t> iy, ix;
  std::vector<double> fy, fx;
  cell_coords(vh, cell, iy, fy);
  cell_coords(vw, cell, ix, fx);
  hist.assign(static_cast<size_t>(bh * bw * kOrientations), 0.0);
  parallel_for(
      bh,
      [&](int64_t cy) {
        double* hrow = hist.data() + cy * bw * kOrientations;
        const int64_t y_lo = std::max<int64_t>(1, (cy - 1) * cell);
        const int64_t y_hi = std::min<int64_t>(vh - 2, (cy + 2) * cell);
        for (int64_t y = y_lo; y <= y_hi; ++y) {
          double wy;
          if (iy[static_cast<size_t>(y)] == cy) {
            wy = 1.0 - fy[static_cast<size_t>(y)];
          } else if (iy[static_cast<size_t>(y)] + 1 == cy) {
            wy = fy[static_cast<size_t>(y)];
          } else {
            continue;
          }
          for (int64_t x = 1; x < vw - 1; ++x) {
            const size_t k = static_cast<size_t>(y * vw + x);
            const double m = g.mag[k];
            if (m == 0.0) continue;
            const int o0 = g.bin[k];
            const int o1 = o0 + 1 == kOrientations ? 0 : o0 + 1;
            const double f = g.frac[k];
            const int64_t cx = ix[static_cast<size_t>(x)];
            const double wx = fx[static_cast<size_t>(x)];
            if (cx >= 0) {
              double* h = hrow + cx * kOrientations;
              const double v = (1.0 - wx) * wy * m;
              h[o0] += v * (1.0 - f);
              h[o1] += v * f;
            }
            if (cx + 1 < bw) {
              double* h = hrow + (cx + 1) * kOrientations;
              const double v = wx * wy * m;
              h[o0] += v * (1.0 - f);
              h[o1] += v * f;
            }
          }
        }
      },
      1);
}

void fhog_impl(const Image& im, int cell, float* out) {
  const int64_t bh = blocks_for(im.height, cell), bw = blocks_for(im.width, cell);
  const int64_t oh = std::max<int64_t>(bh - 2, 0), ow = std::max<int64_t>(bw - 2, 0);
  if (oh == 0 || ow == 0) return;
  // bh >= 3 implies height >= 2.5 * cell >= 3 (cell >= 2) or height >= 3
  // (cell 1): every clamped read below stays inside the image.
  const int64_t vh = bh * cell, vw = bw * cell;

  Gradients g;
  compute_gradients(im, vh, vw, g);
  std::vector<double> hist;
  compute_histograms(g, bh, bw, vh, vw, cell, hist);

  // Gradient energy of each cell: sum over the 9 unsigned orientations.
  std::vector<double> norm(static_cast<size_t>(bh * bw), 0.0);
  for (int64_t c = 0; c < bh * bw; ++c) {
    const double* h = hist.data() + c * kOrientations;
    double e = 0.0;
    for (int o = 0; o < 9; ++o) e += (h[o] + h[o + 9]) * (h[o] + h[o + 9]);
    norm[static_cast<size_t>(c)] = e;
  }
  auto block_energy = [&](int64_t r, int64_t c) {
    const double* p = norm.data() + r * bw + c;
    return p[0] + p[1] + p[bw] + p[bw + 1];
  };

  parallel_for(
      oh,
      [&](int64_t y) {
        for (int64_t x = 0; x < ow; ++x) {
          // The four 2x2 blocks that contain cell (y + 1, x + 1), in voc-release order.
          const double n[4] = {
              1.0 / std::sqrt(block_energy(y + 1, x + 1) + kEps),
              1.0 / std::sqrt(block_energy(y, x + 1) + kEps),
              1.0 / std::sqrt(block_energy(y + 1, x) + kEps),
              1.0 / std::sqrt(block_energy(y, x) + kEps),
          };
          const double* h = hist.data() + ((y + 1) * bw + (x + 1)) * kOrientations;
          float* dst = out + (y * ow + x) * kFeatures;
          double t[4] = {0.0, 0.0, 0.0, 0.0};
          for (int o = 0; o < kOrientations; ++o) {
            double s = 0.0;
            for (int k = 0; k < 4; ++k) {
              const double v = std::min(h[o] * n[k], kTruncation);
              s += v;
              t[k] += v;
            }
            dst[o] = static_cast<float>(0.5 * s);
          }
          for (int o = 0; o < 9; ++o) {
            const double sum = h[o] + h[o + 9];
            double s = 0.0;
            for (int k = 0; k < 4; ++k) s += std::min(sum * n[k], kTruncation);
            dst[kOrientations + o] = static_cast<float>(0.5 * s);
          }
          for (int k = 0; k < 4; ++k) dst[27 + k] = static_cast<float>(kTextureScale * t[k]);
        }
      },
      4);
}

// Bilinear resample of the padded box onto a kDescSide x kDescSide crop, with
// edge replication outside the image.  Output pixel u samples source column
// sx = (x1 - pad - 0.5) + (u + 0.5) * (w / 64) in pixel-centre coordinates
// (pad = 8 w / 64: the box maps onto the central 64 x 64 pixels).
void crop_box(const Image& im, const int32_t* box, float* crop) {
  const int64_t H = im.height, W = im.width;
  const double bw = static_cast<double>(box[2]) - static_cast<double>(box[0]) + 1.0;
  const double bh = static_cast<double>(box[3]) - static_cast<double>(box[1]) + 1.0;
  const double padx = 8.0 * bw / 64.0, pady = 8.0 * bh / 64.0;
  const double x0 = static_cast<double>(box[0]) - padx - 0.5, y0 = static_cast<double>(box[1]) - pady - 0.5;
  const double sxs = bw / 64.0, sys = bh / 64.0;

  int64_t xa[kDescSide], xb[kDescSide];
  double wxs[kDescSide];
  for (int u = 0; u < kDescSide; ++u) {
    const double sx = x0 + (u + 0.5) * sxs;
    const double f = std::floor(sx);
    wxs[u] = sx - f;
    const int64_t i = static_cast<int64_t>(f);
    xa[u] = std::clamp<int64_t>(i, 0, W - 1);
    xb[u] = std::clamp<int64_t>(i + 1, 0, W - 1);
  }
  for (int v = 0; v < kDescSide; ++v) {
    const double sy = y0 + (v + 0.5) * sys;
    const double f = std::floor(sy);
    const double wy = sy - f;
    const int64_t i = static_cast<int64_t>(f);
    const float* ra = im.data + std::clamp<int64_t>(i, 0, H - 1) * W * 3;
    const float* rb = im.data + std::clamp<int64_t>(i + 1, 0, H - 1) * W * 3;
    float* dst = crop + v * kDescSide * 3;
    for (int u = 0; u < kDescSide; ++u) {
      const double wx = wxs[u];
      for (int c = 0; c < 3; ++c) {
        const double a = ra[xa[u] * 3 + c], b = ra[xb[u] * 3 + c];
        const double d = rb[xa[u] * 3 + c], e = rb[xb[u] * 3 + c];
        const double val = (1.0 - wy) * ((1.0 - wx) * a + wx * b) + wy * ((1.0 - wx) * d + wx * e);
        dst[u * 3 + c] = static_cast<float>(val);
      }
    }
  }
}

}  // namespace

void fhog_shape(int64_t height, int64_t width, int cell, int64_t* out_rows, int64_t* out_cols) {
  check_cell(cell);
  VSUM_CHECK(height >= 0 && width >= 0, "image size must be non-negative; got ", height, " x ", width);
  *out_rows = std::max<int64_t>(blocks_for(height, cell) - 2, 0);
  *out_cols = std::max<int64_t>(blocks_for(width, cell) - 2, 0);
}

void fhog(const Image& image, int cell, float* out) {
  check_cell(cell);
  fhog_impl(image, cell, out);
}

void describe(const Image& image, const BoxesView& boxes, float* out) {
  VSUM_CHECK(image.height >= kMinImageSide && image.width >= kMinImageSide, "image must be at least ",
             kMinImageSide, " x ", kMinImageSide, " pixels to describe boxes; got ", image.height, " x ",
             image.width);
  boxes::check_boxes(boxes, "boxes");
  parallel_for(
      boxes.rows,
      [&](int64_t i) {
        std::vector<float> crop(static_cast<size_t>(kDescSide * kDescSide * 3));
        crop_box(image, boxes.row(i), crop.data());
        fhog_impl(Image{crop.data(), kDescSide, kDescSide}, kDescCell, out + i * kDescLength);
      },
      1);
}

}  // namespace hog
}  // namespace vsum
