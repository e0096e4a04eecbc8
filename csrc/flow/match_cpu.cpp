// CPU implementation of the Proposal Flow matchers (see match.h).
#include "flow/match.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

#include "boxes/boxes.h"
#include "common/errors.h"
#include "common/parallel.h"
#include "flow/geometry.h"
#include "flow/lom.h"
#include "flow/simd.h"

namespace vsum {
namespace flow {
namespace {

// Throws unless every value of row i of the appearance is finite and >= 0.
void check_appearance_row(const MatrixView& app, int64_t i) {
  const float* s = app.row(i);
  if (simd::all_finite_nonnegative(s, app.cols)) return;
  for (int64_t j = 0; j < app.cols; ++j)
    VSUM_CHECK(std::isfinite(s[j]) && s[j] >= 0.0f, "appearance must be finite and >= 0; got ", s[j], " at (", i,
               ", ", j, ")");
}

// Row i of the gated appearance into o: a pair is zeroed when
// max(wa*hb, wb*ha) >= 2 * min(wa*hb, wb*ha).
void gate_row(const Geometry& A, const Geometry& B, const float* s, int64_t i, int64_t nb, bool small, float* o) {
  if (small) {
    simd::aspect_gate(A.wf[i], A.hf[i], B.wf.data(), B.hf.data(), s, nb, o);
    return;
  }
  for (int64_t j = 0; j < nb; ++j) {
    const int64_t p = A.w[i] * B.h[j], q = B.w[j] * A.h[i];
    const int64_t hi = std::max(p, q), lo = std::min(p, q);
    o[j] = (hi - lo >= lo) ? 0.0f : s[j];
  }
}

// First index of the largest value of c[0, n), n >= 1.
int64_t first_argmax(const float* c, int64_t n) {
  float m = c[0];
  int64_t j = 0;
  if (n >= 4) {
    simd::F4 acc = simd::load(c);
    for (j = 4; j + 4 <= n; j += 4) acc = simd::max(acc, simd::load(c + j));
    m = simd::hmax(acc);
  }
  for (; j < n; ++j) m = c[j] > m ? c[j] : m;
  j = 0;
  while (c[j] != m) ++j;
  return j;
}

// Validates the appearance and writes the gated appearance into out, in one
// pass over the rows; with best != nullptr also each gated row's first arg max
// and its value.  The first bad value in row-major order is the one reported.
void gate(const Geometry& A, const Geometry& B, const MatrixView& app, float* out, int64_t* best = nullptr,
          double* best_score = nullptr) {
  const int64_t nb = app.cols;
  const bool small = A.max_side <= kFloatGateMaxSide && B.max_side <= kFloatGateMaxSide;
  parallel_for(app.rows, [&](int64_t i) {
    check_appearance_row(app, i);
    float* o = out + i * nb;
    gate_row(A, B, app.row(i), i, nb, small, o);
    if (best != nullptr) {
      best[i] = first_argmax(o, nb);
      best_score[i] = static_cast<double>(o[best[i]]);
    }
  }, std::max<int64_t>(1, 4096 / std::max<int64_t>(1, nb)));
}

int clamp_bin(double v, int n) {
  if (!(v >= 0.0)) return 0;  // also catches NaN
  if (v >= n) return n - 1;
  return static_cast<int>(v);
}

void phm(const Geometry& A, const Geometry& B, int64_t na, int64_t nb, int64_t height, int64_t width,
         float* conf) {
  const double W = static_cast<double>(width), H = static_cast<double>(height);
  const int64_t nbins = int64_t{kPhmXY} * kPhmXY * kPhmScales;
  std::vector<int32_t> bin(static_cast<size_t>(na * nb));
  std::vector<std::vector<std::pair<int32_t, float>>> votes(static_cast<size_t>(na));
  parallel_for(na, [&](int64_t i) {
    const float* c = conf + i * nb;
    int32_t* bi = bin.data() + i * nb;
    std::vector<std::pair<int32_t, float>> v;
    for (int64_t j = 0; j < nb; ++j) {
      const double dx = B.xc[j] - A.xc[i], dy = B.yc[j] - A.yc[i];
      const double s = 0.5 * std::log2(B.area[j] / A.area[i]);
      const int bx = clamp_bin(std::floor((dx + W) * kPhmXY / (2.0 * W)), kPhmXY);
      const int by = clamp_bin(std::floor((dy + H) * kPhmXY / (2.0 * H)), kPhmXY);
      const int bs = clamp_bin(std::floor((s + 4.0) * kPhmScales / 8.0), kPhmScales);
      bi[j] = (bs * kPhmXY + by) * kPhmXY + bx;
      if (c[j] > 0.0f) v.emplace_back(bi[j], c[j]);
    }
    std::sort(v.begin(), v.end());
    auto& out = votes[static_cast<size_t>(i)];
    for (size_t k = 0; k < v.size(); ++k) {  // sorted by (bin, value): last of each bin is its max
      if (k + 1 == v.size() || v[k + 1].first != v[k].first) out.push_back(v[k]);
    }
  });
  std::vector<double> hist(static_cast<size_t>(nbins), 0.0);
  for (const auto& row : votes)
    for (const auto& bv : row) hist[static_cast<size_t>(bv.first)] += static_cast<double>(bv.second);

  double g[5], gs = 0.0;
  for (int k = -2; k <= 2; ++k) gs += (g[k + 2] = std::exp(-0.5 * k * k));
  for (double& x : g) x /= gs;
  // Separable smoothing along x (stride 1), y (stride kPhmXY), s (stride kPhmXY^2).
  const int64_t dims[3] = {kPhmXY, kPhmXY, kPhmScales};
  const int64_t strides[3] = {1, kPhmXY, int64_t{kPhmXY} * kPhmXY};
  std::vector<double> tmp(hist.size());
  for (int axis = 0; axis < 3; ++axis) {
    const int64_t n = dims[axis], st = strides[axis];
    for (int64_t idx = 0; idx < nbins; ++idx) {
      const int64_t pos = (idx / st) % n;
      double acc = 0.0;
      for (int k = -2; k <= 2; ++k) {
        const int64_t p = pos + k;
        if (p >= 0 && p < n) acc += g[k + 2] * hist[static_cast<size_t>(idx + k * st)];
      }
      tmp[static_cast<size_t>(idx)] = acc;
    }
    hist.swap(tmp);
  }
  parallel_for(na, [&](int64_t i) {
    float* c = conf + i * nb;
    const int32_t* bi = bin.data() + i * nb;
    for (int64_t j = 0; j < nb; ++j)
      c[j] = static_cast<float>(static_cast<double>(c[j]) * hist[static_cast<size_t>(bi[j])]);
  });
}

}  // namespace

void match(const BoxesView& a, const BoxesView& b, const MatrixView& appearance, Method method, int64_t height,
           int64_t width, float* out, bool lom_sequential) {
  boxes::check_boxes(a, "boxes_a");
  boxes::check_boxes(b, "boxes_b");
  VSUM_CHECK(appearance.rows == a.rows && appearance.cols == b.rows, "appearance must have shape (len(boxes_a), "
             "len(boxes_b)) = (", a.rows, ", ", b.rows, "); got (", appearance.rows, ", ", appearance.cols, ")");
  if (method == Method::kPhm)
    VSUM_CHECK(height > 0 && width > 0, "image size must be positive; got height ", height, ", width ", width);
  if (a.rows == 0 || b.rows == 0) return;
  const Geometry A(a), B(b);
  if (method == Method::kLom) {
    std::vector<int64_t> best(static_cast<size_t>(a.rows));
    std::vector<double> best_score(static_cast<size_t>(a.rows));
    gate(A, B, appearance, out, best.data(), best_score.data());
    if (lom_sequential)
      flow::lom_sequential(a, A, B, best.data(), best_score.data(), out);
    else
      lom(a, A, B, best.data(), best_score.data(), out);
    return;
  }
  gate(A, B, appearance, out);
  if (method == Method::kPhm) phm(A, B, a.rows, b.rows, height, width, out);
}

}  // namespace flow
}  // namespace vsum
