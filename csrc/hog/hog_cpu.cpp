// CPU implementation of Felzenszwalb HOG and proposal descriptors (see hog.h).
//
// One pipeline serves a whole image (fhog) and every 80 x 80 box crop
// (describe), so a descriptor is bit-identical to fhog() of its crop:
//   1. the image as three float32 planes (a planar copy, or the resampled crop);
//   2. per pixel row, the votes of every pixel (pixel_row_votes): the winning
//      channel's gradient, with the reference's float64 choice of channel
//      (the one discontinuous step: winning_channel), then the two
//      orientation bins and the magnitude split between them, in float32
//      (orientation binning is continuous in the angle, so float rounding
//      moves the features by ~1e-7 relative only; the parity tests allow 1e-4);
//   3. spatial binning (histogram_rows): each pixel row's votes are binned
//      into cells along the row (row_histogram), and the row histogram is
//      added to the row's two cell rows, in increasing row order;
//   4. block normalisation and the 31 features (cell_features, float64).
// A whole image runs bands of cell rows in parallel (vsum::parallel_for);
// describe() runs the steps serially per box, parallel over boxes, with
// per-chunk scratch buffers (no allocation per box).
#include "hog/hog.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#if defined(__SSE2__) || defined(_M_X64)
#include <emmintrin.h>
#endif

#include "boxes/boxes.h"
#include "common/errors.h"
#include "common/parallel.h"

#if defined(__GNUC__)
#define VSUM_HOG_NOINLINE __attribute__((noinline))
#else
#define VSUM_HOG_NOINLINE
#endif

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

// Three float32 planes (R, G, B), row y of plane c at plane[c] + y * stride.
struct Planes {
  const float* plane[3] = {nullptr, nullptr, nullptr};
  int64_t stride = 0;
};

// The cell grid of an H x W image and the bilinear spatial weights.
//   cell rows / cols: bh = round(H / cell), bw = round(W / cell); the visible
//   area is vh x vw = bh * cell x bw * cell pixels, of which rows and columns
//   1 .. vh-2 / vw-2 vote.  Pixel p lies between cells floor(pos) and
//   floor(pos) + 1, pos = (p + 0.5) / cell - 0.5, with weight pos - floor(pos)
//   for the second.  Row histograms (row_histogram) are padded with one cell
//   on each side (cells -1 and bw), which absorb the votes that fall off the
//   grid, so the voting loop has no branches.
struct Grid {
  int cell = 0;
  int64_t height = 0, width = 0;  // image size
  int64_t bh = 0, bw = 0;         // cells
  int64_t vh = 0, vw = 0;         // visible pixels
  int64_t last_row = 0;           // last pixel row with its own gradient: min(vh - 2, H - 2)
  int64_t last_col = 0;           // same for columns: min(vw - 2, W - 2)
  int64_t row_stride = 0;         // (bw + 2) * 18 floats per padded row histogram
  int64_t hist_stride = 0;        // bw * 18 floats per histogram row
  std::vector<int64_t> row_cell;  // (vh) floor(pos) of each pixel row
  std::vector<float> row_upper;   // (vh) weight of cell row floor(pos), 1 - frac
  std::vector<float> row_lower;   // (vh) weight of cell row floor(pos) + 1, frac
  std::vector<int32_t> col_off;   // (vw) (floor(pos) + 1) * 18: padded histogram offset of the left cell
  std::vector<float> col_left;    // (vw) weight of the left cell, 1 - frac
  std::vector<float> col_right;   // (vw) weight of the right cell, frac
};

// Caller guarantees bh, bw >= 3 (non-empty output).
Grid make_grid(int64_t height, int64_t width, int cell) {
  Grid g;
  g.cell = cell;
  g.height = height;
  g.width = width;
  g.bh = blocks_for(height, cell);
  g.bw = blocks_for(width, cell);
  g.vh = g.bh * cell;
  g.vw = g.bw * cell;
  // bh >= 3 implies height >= 3 (2.5 * cell rounds to 3 cells only for cell
  // >= 2 with height >= 5, or cell 1 with height 3): rows 1 .. H-2 exist.
  g.last_row = std::min(g.vh - 2, height - 2);
  g.last_col = std::min(g.vw - 2, width - 2);
  g.row_stride = (g.bw + 2) * kOrientations;
  g.hist_stride = g.bw * kOrientations;
  auto coord = [cell](int64_t p, int64_t* index, double* frac) {
    const double pos = (static_cast<double>(p) + 0.5) / static_cast<double>(cell) - 0.5;
    const double f = std::floor(pos);
    *index = static_cast<int64_t>(f);
    *frac = pos - f;
  };
  g.row_cell.resize(static_cast<size_t>(g.vh));
  g.row_upper.resize(static_cast<size_t>(g.vh));
  g.row_lower.resize(static_cast<size_t>(g.vh));
  for (int64_t y = 0; y < g.vh; ++y) {
    double f = 0.0;
    coord(y, &g.row_cell[static_cast<size_t>(y)], &f);
    g.row_upper[static_cast<size_t>(y)] = static_cast<float>(1.0 - f);
    g.row_lower[static_cast<size_t>(y)] = static_cast<float>(f);
  }
  g.col_off.resize(static_cast<size_t>(g.vw));
  g.col_left.resize(static_cast<size_t>(g.vw));
  g.col_right.resize(static_cast<size_t>(g.vw));
  for (int64_t x = 0; x < g.vw; ++x) {
    int64_t c = 0;
    double f = 0.0;
    coord(x, &c, &f);
    g.col_off[static_cast<size_t>(x)] = static_cast<int32_t>((c + 1) * kOrientations);
    g.col_left[static_cast<size_t>(x)] = static_cast<float>(1.0 - f);
    g.col_right[static_cast<size_t>(x)] = static_cast<float>(f);
  }
  return g;
}

// Orientation votes of the pixels of one row (indexed by column, vw long):
// pixel x votes w0[x] into bin0[x] and w1[x] into bin1[x] (= bin0 + 1 mod 18).
// Columns 1 .. vw-2 are filled.
struct Votes {
  std::vector<int32_t> bin0, bin1;
  std::vector<float> w0, w1;
  void resize(int64_t n) {
    bin0.resize(static_cast<size_t>(n));
    bin1.resize(static_cast<size_t>(n));
    w0.resize(static_cast<size_t>(n));
    w1.resize(static_cast<size_t>(n));
  }
};

// x[i] = sqrt(x[i]).  GCC vectorises a sqrt loop only with -fno-math-errno
// on the command line (the optimize pragma below does not switch errno off
// for it), so SSE2, part of every x86-64 CPU, is used explicitly.
void sqrt_inplace(float* x, int64_t n) {
  int64_t i = 0;
#if defined(__SSE2__) || defined(_M_X64)
  for (; i + 4 <= n; i += 4) _mm_storeu_ps(x + i, _mm_sqrt_ps(_mm_loadu_ps(x + i)));
#endif
  for (; i < n; ++i) x[i] = std::sqrt(x[i]);
}

// The branch-free loops below vectorise only without -ftrapping-math (GCC
// then if-converts the selects); the option changes no result here.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC push_options
#pragma GCC optimize("no-trapping-math")
#endif

// fabs as a builtin: std::fabs is compiled with the global options and so is
// not inlined into the functions under the pragma.
#if defined(__GNUC__)
inline float abs_f(float x) { return __builtin_fabsf(x); }
#else
inline float abs_f(float x) { return std::fabs(x); }
#endif

// |a - b| <= 4e-6 max(a, b) for a, b >= 0.  A float32 dx^2 + dy^2 is within
// 2.4e-7 relative of the exact value (the reference's float64 one within
// 4e-16), so two magnitudes further apart than this are ordered the same way
// in float32 and in float64.
inline bool near_tie(float a, float b) {
  constexpr float kTieTolerance = 4e-6f;
  return abs_f(a - b) <= kTieTolerance * (a > b ? a : b);
}

// Winning channel of n consecutive pixels of one row, in float32: gradient
// (gx, gy) and squared magnitude v.  u*, m*, d* point at the first pixel in
// the rows above, at and below it, per channel (planar); the row is read at
// columns -1 .. n.  The reference picks, in float64, the channel with the
// largest dx^2 + dy^2 (the first on ties).  float32 differences of float32
// pixels are the float64 ones rounded, so the two agree on the winner's
// (gx, gy) unless two channels with different float32 gradients have
// magnitudes within near_tie(): such pixels are flagged (unsure[i] = 1, rare)
// and redone in float64 by the caller.  Returns whether any pixel is flagged.  Ties between channels with the same
// float32 gradient (e.g. grey pixels) need no care: either gives the same vote.
int32_t winning_channel(const float* __restrict u0, const float* __restrict u1, const float* __restrict u2,
                     const float* __restrict m0, const float* __restrict m1, const float* __restrict m2,
                     const float* __restrict d0, const float* __restrict d1, const float* __restrict d2,
                     int64_t n, float* __restrict gx, float* __restrict gy, float* __restrict v,
                        int32_t* __restrict unsure) {
  int32_t any = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float dy0 = d0[i] - u0[i], dx0 = m0[i + 1] - m0[i - 1];
    const float dy1 = d1[i] - u1[i], dx1 = m1[i + 1] - m1[i - 1];
    const float dy2 = d2[i] - u2[i], dx2 = m2[i + 1] - m2[i - 1];
    const float v0 = dx0 * dx0 + dy0 * dy0;
    const float v1 = dx1 * dx1 + dy1 * dy1;
    const float v2 = dx2 * dx2 + dy2 * dy2;
    const int32_t t01 = near_tie(v0, v1) & ((dx0 != dx1) | (dy0 != dy1));
    const int32_t t02 = near_tie(v0, v2) & ((dx0 != dx2) | (dy0 != dy2));
    const int32_t t12 = near_tie(v1, v2) & ((dx1 != dx2) | (dy1 != dy2));
    const bool b1 = v1 > v0;
    float bx = b1 ? dx1 : dx0, by = b1 ? dy1 : dy0, bv = b1 ? v1 : v0;
    const bool b2 = v2 > bv;
    gx[i] = b2 ? dx2 : bx;
    gy[i] = b2 ? dy2 : by;
    v[i] = b2 ? v2 : bv;
    unsure[i] = t01 | t02 | t12;
    any |= unsure[i];
  }
  return any;
}

// Orientation votes of n pixels from their gradient (gx, gy) and magnitude:
// bin0 = floor(t), bin1 = bin0 + 1 mod 18, w0 = m (1 - f), w1 = m f, where
// t = atan2(gy, gx) * 18 / (2 pi) taken in [0, 18) and f = t - floor(t).
//
// atan2 without a library call or a branch: with c = tan(pi/8), the first
// octant's atan(r), r = mn / mx in [0, 1], is pi/8 + atan(x) with
// x = (r - c) / (1 + r c) = (mn - c mx) / (mx + c mn) in [-c, c]; atan(x) is
// x + x^3 P(x^2) with a degree-3 P fitted (least maximum error) on that
// interval: error < 5e-9 rad, ~2e-8 rad in float32, ~1e-7 of a bin.  The
// quadrant follows from the signs.  (A select between two reductions would
// be as accurate, but GCC then computes both.)
void orientations(const float* __restrict gx, const float* __restrict gy, const float* __restrict mag,
                  int64_t n, int32_t* __restrict bin0, int32_t* __restrict bin1, float* __restrict w0,
                  float* __restrict w1) {
  constexpr float kTanPi8 = 0.41421356237309503f;
  constexpr float kEighthPi = static_cast<float>(kPi / 8.0), kHalfPi = static_cast<float>(kPi / 2.0);
  constexpr float kPiF = static_cast<float>(kPi);
  constexpr float kBinsPerRadian = static_cast<float>(kOrientations / (2.0 * kPi));
  constexpr float kBins = static_cast<float>(kOrientations);
  constexpr float c3 = -0.333327567f, c5 = 0.199718791f, c7 = -0.138244519f, c9 = 0.0790259205f;
  for (int64_t i = 0; i < n; ++i) {
    const float dx = gx[i], dy = gy[i];
    const float ax = abs_f(dx), ay = abs_f(dy);
    const float mx = ax > ay ? ax : ay, mn = ax > ay ? ay : ax;  // no std::max: not inlined under the pragma
    const float den = mx + kTanPi8 * mn;  // 0 only for a zero gradient (no vote)
    const float x = (mn - kTanPi8 * mx) / (den > 0.0f ? den : 1.0f);
    const float z = x * x;
    float r = kEighthPi + (x + x * z * (c3 + z * (c5 + z * (c7 + z * c9))));  // atan(mn / mx), [0, pi/4]
    r = ay > ax ? kHalfPi - r : r;     // angle of (|dx|, |dy|), [0, pi/2]
    r = dx < 0.0f ? kPiF - r : r;      // |atan2(dy, dx)|, [0, pi]
    float t = r * kBinsPerRadian;      // [0, 9]
    t = dy < 0.0f ? kBins - t : t;     // atan2 < 0 maps to t + 18: [0, 18]
    t = t >= 0.0f && t < kBins ? t : 0.0f;  // t == 18 is t == 0 (also keeps NaN input in range)
    const int32_t lo = static_cast<int32_t>(t);
    const float f = t - static_cast<float>(lo);
    const float m = mag[i];
    bin0[i] = lo;
    bin1[i] = lo + 1 == kOrientations ? 0 : lo + 1;
    w0[i] = m * (1.0f - f);
    w1[i] = m * f;
  }
}

// Whether every value of x is within [-kMaxValue, kMaxValue] (false for NaN).
bool values_in_range(const float* __restrict x, int64_t n) {
  int32_t bad = 0;
  for (int64_t i = 0; i < n; ++i) bad |= abs_f(x[i]) <= kMaxValue ? 0 : 1;
  return bad == 0;
}

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif

// Working memory of pixel_row_votes.
struct RowScratch {
  std::vector<float> gx, gy, mag;
  std::vector<int32_t> unsure;
  void resize(int64_t n) {
    gx.resize(static_cast<size_t>(n));
    gy.resize(static_cast<size_t>(n));
    mag.resize(static_cast<size_t>(n));
    unsure.resize(static_cast<size_t>(n));
  }
};

// Votes of pixel row y (1 <= y <= last_row): gradients read at image row y and
// columns 1 .. last_col; the columns beyond (clamped reads) repeat last_col.
void pixel_row_votes(const Planes& im, const Grid& g, int64_t y, RowScratch& rs, Votes& votes) {
  const int64_t n = g.last_col;  // pixels 1 .. last_col
  rs.resize(n);
  votes.resize(g.vw);
  const float* row[3][3];  // [channel][above, at, below], at column 1
  for (int c = 0; c < 3; ++c)
    for (int k = 0; k < 3; ++k) row[c][k] = im.plane[c] + (y - 1 + k) * im.stride + 1;
  const int32_t any_unsure =
      winning_channel(row[0][0], row[1][0], row[2][0], row[0][1], row[1][1], row[2][1], row[0][2], row[1][2],
                      row[2][2], n, rs.gx.data(), rs.gy.data(), rs.mag.data(), rs.unsure.data());
  sqrt_inplace(rs.mag.data(), n);
  // Flagged near ties: the reference's float64 choice.
  for (int64_t i = 0; any_unsure != 0 && i < n; ++i) {
    if (rs.unsure[static_cast<size_t>(i)] == 0) continue;
    double bx = 0.0, by = 0.0, bv = -1.0;
    for (int c = 0; c < 3; ++c) {
      const double dy = static_cast<double>(row[c][2][i]) - static_cast<double>(row[c][0][i]);
      const double dx = static_cast<double>(row[c][1][i + 1]) - static_cast<double>(row[c][1][i - 1]);
      const double v = dx * dx + dy * dy;
      if (v > bv) {
        bx = dx;
        by = dy;
        bv = v;
      }
    }
    rs.gx[static_cast<size_t>(i)] = static_cast<float>(bx);
    rs.gy[static_cast<size_t>(i)] = static_cast<float>(by);
    rs.mag[static_cast<size_t>(i)] = static_cast<float>(std::sqrt(bv));
  }
  orientations(rs.gx.data(), rs.gy.data(), rs.mag.data(), n, votes.bin0.data() + 1, votes.bin1.data() + 1,
               votes.w0.data() + 1, votes.w1.data() + 1);
  const size_t last = static_cast<size_t>(g.last_col);
  for (int64_t x = g.last_col + 1; x <= g.vw - 2; ++x) {
    const size_t k = static_cast<size_t>(x);
    votes.bin0[k] = votes.bin0[last];
    votes.bin1[k] = votes.bin1[last];
    votes.w0[k] = votes.w0[last];
    votes.w1[k] = votes.w1[last];
  }
}

// Horizontal binning of one pixel row into a padded float32 row histogram
// ((bw + 2) x 18, zeroed first): each pixel adds its two orientation votes to
// its left and right cells with the bilinear weights col_left / col_right.
// (float32 suffices: a cell of a row sums at most 2 * cell votes.)
void row_histogram(const Grid& g, const Votes& votes, float* rowhist) {
  std::fill(rowhist, rowhist + g.row_stride, 0.0f);
  const int32_t* bin0 = votes.bin0.data();
  const int32_t* bin1 = votes.bin1.data();
  const float* w0 = votes.w0.data();
  const float* w1 = votes.w1.data();
  const int32_t* off = g.col_off.data();
  const float* left = g.col_left.data();
  const float* right = g.col_right.data();
  for (int64_t x = 1; x <= g.vw - 2; ++x) {
    const float a = w0[x], b = w1[x], l = left[x], r = right[x];
    float* h = rowhist + off[x];
    h[bin0[x]] += l * a;
    h[bin1[x]] += l * b;
    h[kOrientations + bin0[x]] += r * a;
    h[kOrientations + bin1[x]] += r * b;
  }
}

// hrow += w * rowhist, n values.  float32 histograms: a cell sums at most
// 4 * cell^2 weighted votes, ~1e-7 relative rounding each.
void add_scaled(const float* __restrict rowhist, float w, int64_t n, float* __restrict hrow) {
  for (int64_t i = 0; i < n; ++i) hrow[i] += w * rowhist[i];
}

// add_scaled into two rows at once (same operations per row: same bits).
void add_scaled2(const float* __restrict rowhist, float w0, float* __restrict h0, float w1,
                 float* __restrict h1, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    h0[i] += w0 * rowhist[i];
    h1[i] += w1 * rowhist[i];
  }
}

// Working memory of histogram_rows, reused across the rows of a chunk or the
// boxes of describe().
struct Scratch {
  RowScratch row;
  Votes votes;
  std::vector<float> rowhist;
};

// Histogram rows cy_begin .. cy_end-1 of a planar image (bw x 18 floats each,
// zeroed first).  Each pixel row that votes into them is voted and binned
// once (row_histogram) and added to those of its two cell rows (weights
// row_upper / row_lower) inside the range.  Every histogram row receives the
// same terms in the same order (increasing pixel row) whatever the range, so
// any partition of the rows - and the whole image at once - gives the same
// bits.
void histogram_rows(const Planes& im, const Grid& g, int64_t cy_begin, int64_t cy_end, Scratch& s, float* hist) {
  const int64_t n = g.hist_stride;
  std::fill(hist + cy_begin * n, hist + cy_end * n, 0.0f);
  s.rowhist.resize(static_cast<size_t>(g.row_stride));
  const float* inner = s.rowhist.data() + kOrientations;  // cells 0 .. bw - 1
  const int64_t y_lo = std::max<int64_t>(1, (cy_begin - 1) * g.cell);
  const int64_t y_hi = std::min<int64_t>(g.vh - 2, (cy_end + 1) * g.cell);
  for (int64_t y = y_lo; y <= y_hi; ++y) {
    const int64_t iy = g.row_cell[static_cast<size_t>(y)];  // votes into cell rows iy, iy + 1
    const bool upper = iy >= cy_begin && iy < cy_end;
    const bool lower = iy + 1 >= cy_begin && iy + 1 < cy_end;
    if (!upper && !lower) continue;
    pixel_row_votes(im, g, std::min(y, g.last_row), s.row, s.votes);  // rows past last_row read it
    row_histogram(g, s.votes, s.rowhist.data());
    const float wu = g.row_upper[static_cast<size_t>(y)], wl = g.row_lower[static_cast<size_t>(y)];
    if (upper && lower) {
      add_scaled2(inner, wu, hist + iy * n, wl, hist + (iy + 1) * n, n);
    } else if (upper) {
      add_scaled(inner, wu, n, hist + iy * n);
    } else {
      add_scaled(inner, wl, n, hist + (iy + 1) * n);
    }
  }
}

// Normaliser of every 2x2 block of cells, 1 / sqrt(E + eps), E the sum of
// the 4 cells' gradient energies (squared sums over the 9 unsigned
// orientations); block (r, c) has top-left cell (r, c), (bh - 1) x (bw - 1).
void block_norms(const Grid& g, const float* hist, double* energy, double* norm) {
  const int64_t bw = g.bw;
  for (int64_t c = 0; c < g.bh * bw; ++c) {
    const float* h = hist + c * kOrientations;
    double e = 0.0;
    for (int o = 0; o < 9; ++o) {
      const double sum = static_cast<double>(h[o]) + static_cast<double>(h[o + 9]);
      e += sum * sum;
    }
    energy[c] = e;
  }
  for (int64_t r = 0; r + 1 < g.bh; ++r) {
    for (int64_t c = 0; c + 1 < bw; ++c) {
      const double* p = energy + r * bw + c;
      norm[r * (bw - 1) + c] = 1.0 / std::sqrt(p[0] + p[1] + p[bw] + p[bw + 1] + kEps);
    }
  }
}

// The 31 features of output row y (cells (y + 1, 1 .. bw - 2) of the grid).
void cell_features(const Grid& g, const float* hist, const double* norm, int64_t y, float* out_row) {
  const int64_t nbw = g.bw - 1;  // blocks per row
  for (int64_t x = 0; x < g.bw - 2; ++x) {
    // The four 2x2 blocks that contain cell (y + 1, x + 1), in voc-release order.
    const double n[4] = {norm[(y + 1) * nbw + x + 1], norm[y * nbw + x + 1], norm[(y + 1) * nbw + x],
                         norm[y * nbw + x]};
    const float* h = hist + (y + 1) * g.hist_stride + (x + 1) * kOrientations;
    float* dst = out_row + x * kFeatures;
    double t[4] = {0.0, 0.0, 0.0, 0.0};
    for (int o = 0; o < kOrientations; ++o) {
      double s = 0.0;
      for (int k = 0; k < 4; ++k) {
        const double v = std::min(static_cast<double>(h[o]) * n[k], kTruncation);
        s += v;
        t[k] += v;
      }
      dst[o] = static_cast<float>(0.5 * s);
    }
    for (int o = 0; o < 9; ++o) {
      const double sum = static_cast<double>(h[o]) + static_cast<double>(h[o + 9]);
      double s = 0.0;
      for (int k = 0; k < 4; ++k) s += std::min(sum * n[k], kTruncation);
      dst[kOrientations + o] = static_cast<float>(0.5 * s);
    }
    for (int k = 0; k < 4; ++k) dst[27 + k] = static_cast<float>(kTextureScale * t[k]);
  }
}

// Block normalisation and features of all rows, serially.
void features_serial(const Grid& g, const float* hist, std::vector<double>& energy, std::vector<double>& norm,
                     float* out) {
  energy.resize(static_cast<size_t>(g.bh * g.bw));
  norm.resize(static_cast<size_t>((g.bh - 1) * (g.bw - 1)));
  block_norms(g, hist, energy.data(), norm.data());
  for (int64_t y = 0; y < g.bh - 2; ++y) cell_features(g, hist, norm.data(), y, out + y * (g.bw - 2) * kFeatures);
}

// FHOG of an interleaved image: planar copy, then histogram bands and feature
// rows in parallel.  Bit-identical to the serial path of describe().
void fhog_parallel(const Image& image, int cell, float* out) {
  const int64_t bh = blocks_for(image.height, cell), bw = blocks_for(image.width, cell);
  if (bh < 3 || bw < 3) return;  // empty output
  const Grid g = make_grid(image.height, image.width, cell);
  const int64_t W = image.width;

  // Planar copy (only the rows that are read: 0 .. last_row + 1).
  const int64_t rows = g.last_row + 2;
  std::vector<float> planar(static_cast<size_t>(3 * rows * W));
  Planes im;
  for (int c = 0; c < 3; ++c) im.plane[c] = planar.data() + c * rows * W;
  im.stride = W;
  parallel_for(
      rows,
      [&](int64_t y) {
        const float* src = image.data + y * W * 3;
        float* dst[3] = {planar.data() + y * W, planar.data() + (rows + y) * W, planar.data() + (2 * rows + y) * W};
        for (int64_t x = 0; x < W; ++x) {
          dst[0][x] = src[3 * x];
          dst[1][x] = src[3 * x + 1];
          dst[2][x] = src[3 * x + 2];
        }
      },
      16);

  // Bands of at least 4 cell rows: the pixel rows at a band's edges are voted
  // by both neighbours.
  std::vector<float> hist(static_cast<size_t>(g.bh * g.hist_stride));
  parallel_for_range(g.bh, 4, [&](int64_t begin, int64_t end) {
    Scratch s;
    histogram_rows(im, g, begin, end, s, hist.data());
  });
  std::vector<double> energy(static_cast<size_t>(g.bh * g.bw));
  std::vector<double> norm(static_cast<size_t>((g.bh - 1) * (g.bw - 1)));
  block_norms(g, hist.data(), energy.data(), norm.data());
  parallel_for(
      g.bh - 2,
      [&](int64_t y) { cell_features(g, hist.data(), norm.data(), y, out + y * (g.bw - 2) * kFeatures); }, 4);
}

// Bilinear resample of a padded box onto a kDescSide x kDescSide planar crop,
// with edge replication outside the image.  Output pixel u samples source
// column sx = (x1 - pad - 0.5) + (u + 0.5) * (w / 64) in pixel-centre
// coordinates (pad = 8 w / 64: the box maps onto the central 64 x 64 pixels),
// rows likewise, and computes (in double, rounded to float32 at the end, as
// the reference)
//   (1 - wy) * ((1 - wx) * a + wx * b) + wy * ((1 - wx) * d + wx * e).
// The bracketed horizontal interpolations depend on the source row only, so
// each source row is interpolated once and kept while consecutive output rows
// read it (two cached rows): same expression, same bits, about half the work.
class Cropper {
 public:
  explicit Cropper(const Image& im) : im_(im) {}

  void crop(const int32_t* box, float* planes /* 3 x kDescSide x kDescSide */) {
    const int64_t H = im_.height, W = im_.width;
    const double bw = static_cast<double>(box[2]) - static_cast<double>(box[0]) + 1.0;
    const double bh = static_cast<double>(box[3]) - static_cast<double>(box[1]) + 1.0;
    const double padx = 8.0 * bw / 64.0, pady = 8.0 * bh / 64.0;
    const double x0 = static_cast<double>(box[0]) - padx - 0.5, y0 = static_cast<double>(box[1]) - pady - 0.5;
    const double sxs = bw / 64.0, sys = bh / 64.0;
    for (int u = 0; u < kDescSide; ++u) {
      const double sx = x0 + (u + 0.5) * sxs;
      const double f = std::floor(sx);
      wx_[u] = sx - f;
      ox_[u] = 1.0 - wx_[u];
      const int64_t i = static_cast<int64_t>(f);
      xa_[u] = std::clamp<int64_t>(i, 0, W - 1) * 3;
      xb_[u] = std::clamp<int64_t>(i + 1, 0, W - 1) * 3;
    }
    key_[0] = key_[1] = -1;
    constexpr int kPlane = kDescSide * kDescSide;
    for (int v = 0; v < kDescSide; ++v) {
      const double sy = y0 + (v + 0.5) * sys;
      const double f = std::floor(sy);
      const double wy = sy - f;
      const int64_t i = static_cast<int64_t>(f);
      const int64_t ra = std::clamp<int64_t>(i, 0, H - 1), rb = std::clamp<int64_t>(i + 1, 0, H - 1);
      const double* ha = row(ra, rb);
      const double* hb = row(rb, ra);
      for (int c = 0; c < 3; ++c) {
        blend(ha + c * kDescSide, hb + c * kDescSide, 1.0 - wy, wy, planes + c * kPlane + v * kDescSide);
      }
    }
  }

 private:
  // out = float((1 - wy) * a + wy * b), vectorised.  (Kept out of line: GCC
  // allocates registers poorly for it when inlined into the caller.)
  VSUM_HOG_NOINLINE static void blend(const double* __restrict a, const double* __restrict b, double wa, double wb,
                    float* __restrict out) {
    for (int u = 0; u < kDescSide; ++u) out[u] = static_cast<float>(wa * a[u] + wb * b[u]);
  }

  // The horizontally interpolated source row r (planar 3 x kDescSide), cached;
  // a row not cached replaces the slot that does not hold row `keep`.
  const double* row(int64_t r, int64_t keep) {
    for (int s = 0; s < 2; ++s)
      if (key_[s] == r) return rows_[s];
    const int s = key_[0] == keep ? 1 : 0;
    key_[s] = r;
    const float* src = im_.data + r * im_.width * 3;
    double* d0 = rows_[s];
    double* d1 = d0 + kDescSide;
    double* d2 = d1 + kDescSide;
    for (int u = 0; u < kDescSide; ++u) {
      const float* a = src + xa_[u];
      const float* b = src + xb_[u];
      const double wx = wx_[u], ox = ox_[u];
      d0[u] = ox * static_cast<double>(a[0]) + wx * static_cast<double>(b[0]);
      d1[u] = ox * static_cast<double>(a[1]) + wx * static_cast<double>(b[1]);
      d2[u] = ox * static_cast<double>(a[2]) + wx * static_cast<double>(b[2]);
    }
    return d0;
  }

  Image im_;
  int64_t xa_[kDescSide] = {}, xb_[kDescSide] = {};  // source offsets (3 * column)
  double wx_[kDescSide] = {}, ox_[kDescSide] = {};  // weights of columns xb and xa
  int64_t key_[2] = {-1, -1};
  double rows_[2][3 * kDescSide] = {};
};

}  // namespace

void fhog_shape(int64_t height, int64_t width, int cell, int64_t* out_rows, int64_t* out_cols) {
  check_cell(cell);
  VSUM_CHECK(height >= 0 && width >= 0, "image size must be non-negative; got ", height, " x ", width);
  *out_rows = std::max<int64_t>(blocks_for(height, cell) - 2, 0);
  *out_cols = std::max<int64_t>(blocks_for(width, cell) - 2, 0);
}

void check_values(const Image& image) {
  VSUM_CHECK(values_in_range(image.data, image.height * image.width * 3),
             "image values must be finite and within [-1e18, 1e18] (the features expect the 0-255 scale)");
}

void fhog(const Image& image, int cell, float* out) {
  check_cell(cell);
  check_values(image);
  fhog_parallel(image, cell, out);
}

void describe(const Image& image, const BoxesView& boxes, float* out) {
  VSUM_CHECK(image.height >= kMinImageSide && image.width >= kMinImageSide, "image must be at least ",
             kMinImageSide, " x ", kMinImageSide, " pixels to describe boxes; got ", image.height, " x ",
             image.width);
  boxes::check_boxes(boxes, "boxes");
  check_values(image);
  if (boxes.rows == 0) return;
  const Grid g = make_grid(kDescSide, kDescSide, kDescCell);  // the same for every box
  parallel_for_range(boxes.rows, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> crop(static_cast<size_t>(3 * kDescSide * kDescSide));
    Planes planes;
    for (int c = 0; c < 3; ++c) planes.plane[c] = crop.data() + c * kDescSide * kDescSide;
    planes.stride = kDescSide;
    Cropper cropper(image);
    Scratch scratch;
    std::vector<float> hist(static_cast<size_t>(g.bh * g.hist_stride));
    std::vector<double> energy, norm;
    for (int64_t i = begin; i < end; ++i) {
      cropper.crop(boxes.row(i), crop.data());
      histogram_rows(planes, g, 0, g.bh, scratch, hist.data());
      features_serial(g, hist.data(), energy, norm, out + i * kDescLength);
    }
  });
}

}  // namespace hog
}  // namespace vsum
