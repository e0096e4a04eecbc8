// Fast Global Smoother fill of a sparse flow field; see fill.h.
#include "flow/fill.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "common/errors.h"
#include "common/parallel.h"

namespace vsum {
namespace flow {
namespace {

constexpr int kSignals = 3;  // valid * vx, valid * vy, valid
constexpr int64_t kColumnBlock = 64;

// Weight of the edge between guide pixels p and q (channels values each).
inline double edge_weight(const float* p, const float* q, int64_t channels, double inv_sigma) {
  double s = 0.0;
  for (int64_t k = 0; k < channels; ++k) {
    const double d = static_cast<double>(p[k]) - static_cast<double>(q[k]);
    s += d * d;
  }
  return std::exp(-std::sqrt(s) * inv_sigma);
}

// Planar signals: u[s * n + p] for signal s, pixel p.
struct Signals {
  std::vector<double> u;
  int64_t n;
  double* operator[](int s) { return u.data() + s * n; }
};

// (I + lam L) x = d along one row; w[i] links i and i + 1 (n - 1 weights).
// Solved in place for the three signals at offset `row` with stride 1.
void solve_row(Signals& sig, int64_t row, int64_t n, const double* w, double lam, double* cp) {
  double* d0 = sig[0] + row;
  double* d1 = sig[1] + row;
  double* d2 = sig[2] + row;
  double prev_c = 0.0;  // c'_{i-1}
  for (int64_t i = 0; i < n; ++i) {
    const double a = i > 0 ? -lam * w[i - 1] : 0.0;
    const double c = i + 1 < n ? -lam * w[i] : 0.0;
    const double m = 1.0 - a - c - a * prev_c;
    const double inv = 1.0 / m;
    cp[i] = c * inv;
    if (i > 0) {
      d0[i] = (d0[i] - a * d0[i - 1]) * inv;
      d1[i] = (d1[i] - a * d1[i - 1]) * inv;
      d2[i] = (d2[i] - a * d2[i - 1]) * inv;
    } else {
      d0[i] *= inv;
      d1[i] *= inv;
      d2[i] *= inv;
    }
    prev_c = cp[i];
  }
  for (int64_t i = n - 2; i >= 0; --i) {
    d0[i] -= cp[i] * d0[i + 1];
    d1[i] -= cp[i] * d1[i + 1];
    d2[i] -= cp[i] * d2[i + 1];
  }
}

// The same solve along the columns [x0, x1), vectorised across the block's
// columns; wv[y * W + x] links (x, y) and (x, y + 1).
void solve_columns(Signals& sig, int64_t H, int64_t W, int64_t x0, int64_t x1, const double* wv, double lam,
                   double* cp) {
  const int64_t bw = x1 - x0;
  for (int64_t y = 0; y < H; ++y) {
    double* cpy = cp + y * bw;
    const double* cpp = y > 0 ? cp + (y - 1) * bw : cp;
    for (int64_t x = x0; x < x1; ++x) {
      const int64_t j = x - x0;
      const double a = y > 0 ? -lam * wv[(y - 1) * W + x] : 0.0;
      const double c = y + 1 < H ? -lam * wv[y * W + x] : 0.0;
      const double m = 1.0 - a - c - (y > 0 ? a * cpp[j] : 0.0);
      const double inv = 1.0 / m;
      cpy[j] = c * inv;
      const int64_t p = y * W + x;
      for (int s = 0; s < kSignals; ++s) {
        double* d = sig[s];
        d[p] = y > 0 ? (d[p] - a * d[p - W]) * inv : d[p] * inv;
      }
    }
  }
  for (int64_t y = H - 2; y >= 0; --y) {
    const double* cpy = cp + y * bw;
    for (int64_t x = x0; x < x1; ++x) {
      const int64_t p = y * W + x;
      for (int s = 0; s < kSignals; ++s) {
        double* d = sig[s];
        d[p] -= cpy[x - x0] * d[p + W];
      }
    }
  }
}

// For every pixel, the raster index of its nearest valid pixel (exact
// Euclidean distance transform, Felzenszwalb & Huttenlocher), or -1 when no
// pixel is valid.  Ties are broken deterministically.
std::vector<int64_t> nearest_valid(const uint8_t* valid, int64_t H, int64_t W) {
  constexpr int64_t kNone = -1;
  // Nearest valid row in the same column: at or above (up), at or below (down).
  std::vector<int64_t> row_of(static_cast<size_t>(H * W), kNone);
  std::vector<int64_t> down(static_cast<size_t>(H * W), kNone);
  for (int64_t y = 0; y < H; ++y) {
    for (int64_t x = 0; x < W; ++x) {
      const int64_t p = y * W + x;
      row_of[p] = valid[p] ? y : (y > 0 ? row_of[p - W] : kNone);
    }
  }
  for (int64_t y = H - 1; y >= 0; --y) {
    for (int64_t x = 0; x < W; ++x) {
      const int64_t p = y * W + x;
      down[p] = valid[p] ? y : (y + 1 < H ? down[p + W] : kNone);
      const int64_t up = row_of[p];
      if (down[p] != kNone && (up == kNone || down[p] - y < y - up)) row_of[p] = down[p];
    }
  }
  std::vector<int64_t> nearest(static_cast<size_t>(H * W), kNone);
  parallel_for_range(H, 16, [&](int64_t y_begin, int64_t y_end) {
    std::vector<int64_t> v(static_cast<size_t>(W));  // parabola sites
    std::vector<double> z(static_cast<size_t>(W + 1));
    std::vector<double> f(static_cast<size_t>(W));
    for (int64_t y = y_begin; y < y_end; ++y) {
      int64_t k = -1;
      for (int64_t q = 0; q < W; ++q) {
        const int64_t r = row_of[y * W + q];
        if (r == kNone) continue;
        f[q] = static_cast<double>((r - y) * (r - y));
        const double fq = f[q] + static_cast<double>(q) * static_cast<double>(q);
        double s = -std::numeric_limits<double>::infinity();
        while (k >= 0) {
          const int64_t vk = v[k];
          s = (fq - (f[vk] + static_cast<double>(vk) * static_cast<double>(vk))) / (2.0 * static_cast<double>(q - vk));
          if (s > z[k]) break;
          --k;
        }
        ++k;
        v[k] = q;
        z[k] = k == 0 ? -std::numeric_limits<double>::infinity() : s;
        z[k + 1] = std::numeric_limits<double>::infinity();
      }
      if (k < 0) continue;  // no valid pixel anywhere (every column empty)
      int64_t j = 0;
      for (int64_t x = 0; x < W; ++x) {
        while (z[j + 1] < static_cast<double>(x)) ++j;
        nearest[y * W + x] = row_of[y * W + v[j]] * W + v[j];
      }
    }
  });
  return nearest;
}

}  // namespace

void fill_flow(const float* vx, const float* vy, const uint8_t* valid, const float* guide, int64_t height,
               int64_t width, int64_t channels, const FillParams& params, float* out_vx, float* out_vy) {
  VSUM_CHECK(std::isfinite(params.lam) && params.lam >= 0.0, "lam must be finite and >= 0; got ", params.lam);
  VSUM_CHECK(std::isfinite(params.sigma) && params.sigma > 0.0, "sigma must be finite and > 0; got ", params.sigma);
  VSUM_CHECK(params.iterations >= 1 && params.iterations <= kFillMaxIterations, "iterations must be in [1, ",
             kFillMaxIterations, "]; got ", params.iterations);
  VSUM_CHECK(height >= 0 && width >= 0 && channels >= 1, "bad field size (", height, ", ", width, ", ", channels, ")");
  const int64_t H = height, W = width, N = H * W;
  if (N == 0) return;
  for (int64_t p = 0; p < N; ++p) {
    VSUM_CHECK(!valid[p] || (std::isfinite(vx[p]) && std::isfinite(vy[p])),
               "vx and vy must be finite at valid pixels; pixel (x, y) = (", p % W, ", ", p / W, ") is not");
  }
  for (int64_t p = 0; p < N * channels; ++p) {
    VSUM_CHECK(std::isfinite(guide[p]), "guide must be finite");
  }

  // Neighbour weights: wh[y * W + x] links (x, y)-(x + 1, y); wv[y * W + x] links (x, y)-(x, y + 1).
  const double inv_sigma = 1.0 / params.sigma;
  std::vector<double> wh(static_cast<size_t>(N), 0.0), wv(static_cast<size_t>(N), 0.0);
  parallel_for(H, [&](int64_t y) {
    for (int64_t x = 0; x < W; ++x) {
      const int64_t p = y * W + x;
      const float* g = guide + p * channels;
      if (x + 1 < W) wh[p] = edge_weight(g, g + channels, channels, inv_sigma);
      if (y + 1 < H) wv[p] = edge_weight(g, g + W * channels, channels, inv_sigma);
    }
  }, 8);

  Signals sig{std::vector<double>(static_cast<size_t>(kSignals * N)), N};
  for (int64_t p = 0; p < N; ++p) {
    const bool ok = valid[p] != 0;
    sig[0][p] = ok ? static_cast<double>(vx[p]) : 0.0;
    sig[1][p] = ok ? static_cast<double>(vy[p]) : 0.0;
    sig[2][p] = ok ? 1.0 : 0.0;
  }

  const int T = params.iterations;
  const double denom = 1.0 - std::pow(4.0, -T);
  const int64_t n_blocks = (W + kColumnBlock - 1) / kColumnBlock;
  for (int t = 1; t <= T; ++t) {
    const double lam_t = 1.5 * params.lam * std::pow(4.0, -t) / denom;  // = 1.5 lam 4^(T-t) / (4^T - 1)
    parallel_for_range(H, 4, [&](int64_t begin, int64_t end) {
      std::vector<double> cp(static_cast<size_t>(W));
      for (int64_t y = begin; y < end; ++y) solve_row(sig, y * W, W, wh.data() + y * W, lam_t, cp.data());
    });
    parallel_for_range(n_blocks, 1, [&](int64_t begin, int64_t end) {
      std::vector<double> cp(static_cast<size_t>(H * kColumnBlock));
      for (int64_t b = begin; b < end; ++b) {
        solve_columns(sig, H, W, b * kColumnBlock, std::min(W, (b + 1) * kColumnBlock), wv.data(), lam_t, cp.data());
      }
    });
  }

  bool underflow = false;
  for (int64_t p = 0; p < N; ++p) {
    const double c = sig[2][p];
    if (c < kFillMinWeight) {
      underflow = true;
      continue;
    }
    if (!params.smooth && valid[p]) {
      out_vx[p] = vx[p];
      out_vy[p] = vy[p];
    } else {
      out_vx[p] = static_cast<float>(sig[0][p] / c);
      out_vy[p] = static_cast<float>(sig[1][p] / c);
    }
  }
  if (underflow) {
    const std::vector<int64_t> nearest = nearest_valid(valid, H, W);
    for (int64_t p = 0; p < N; ++p) {
      if (sig[2][p] >= kFillMinWeight) continue;
      const int64_t q = nearest[p];
      out_vx[p] = q >= 0 ? vx[q] : 0.0f;
      out_vy[p] = q >= 0 ? vy[q] : 0.0f;
    }
  }
}

}  // namespace flow
}  // namespace vsum
