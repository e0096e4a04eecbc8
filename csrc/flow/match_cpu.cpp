// CPU implementation of the Proposal Flow matchers (see match.h).
#include "flow/match.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

#include "boxes/boxes.h"
#include "common/errors.h"
#include "common/parallel.h"

namespace vsum {
namespace flow {
namespace {

struct Geometry {
  std::vector<int64_t> w, h;
  std::vector<double> xc, yc, area;
  explicit Geometry(const BoxesView& b) {
    const auto n = static_cast<size_t>(b.rows);
    w.resize(n), h.resize(n), xc.resize(n), yc.resize(n), area.resize(n);
    for (size_t i = 0; i < n; ++i) {
      const int32_t* r = b.row(static_cast<int64_t>(i));
      w[i] = int64_t{r[2]} - r[0] + 1;
      h[i] = int64_t{r[3]} - r[1] + 1;
      xc[i] = (static_cast<double>(r[0]) + static_cast<double>(r[2])) * 0.5;
      yc[i] = (static_cast<double>(r[1]) + static_cast<double>(r[3])) * 0.5;
      area[i] = static_cast<double>(w[i]) * static_cast<double>(h[i]);
    }
  }
};

// Gated appearance into out.
void gate(const Geometry& A, const Geometry& B, const MatrixView& app, float* out) {
  const int64_t nb = app.cols;
  parallel_for(app.rows, [&](int64_t i) {
    const float* s = app.row(i);
    float* o = out + i * nb;
    for (int64_t j = 0; j < nb; ++j) {
      const int64_t p = A.w[i] * B.h[j], q = B.w[j] * A.h[i];
      const int64_t hi = std::max(p, q), lo = std::min(p, q);
      o[j] = (hi - lo >= lo) ? 0.0f : s[j];
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

void lom(const BoxesView& boxes_a, const Geometry& A, const Geometry& B, int64_t na, int64_t nb, float* conf) {
  std::vector<int64_t> best(static_cast<size_t>(na));
  std::vector<double> best_score(static_cast<size_t>(na));
  for (int64_t i = 0; i < na; ++i) {  // first arg max of each gated row, once
    const float* c = conf + i * nb;
    int64_t k = 0;
    for (int64_t j = 1; j < nb; ++j)
      if (c[j] > c[k]) k = j;
    best[static_cast<size_t>(i)] = k;
    best_score[static_cast<size_t>(i)] = static_cast<double>(c[k]);
  }
  double total = 0.0;
  for (double s : best_score) total += s;

  std::vector<float> out(static_cast<size_t>(na * nb));
  parallel_for(na, [&](int64_t i) {
    const int32_t* ra = boxes_a.row(i);
    std::vector<double> px, py, ps;
    double nsum = 0.0;
    for (int64_t k = 0; k < na; ++k) {
      const int32_t* rk = boxes_a.row(k);
      if (std::max(ra[0], rk[0]) > std::min(ra[2], rk[2]) || std::max(ra[1], rk[1]) > std::min(ra[3], rk[3]))
        continue;  // no shared pixel: IoU == 0
      const int64_t b = best[static_cast<size_t>(k)];
      px.push_back(B.xc[b] - A.xc[k]);
      py.push_back(B.yc[b] - A.yc[k]);
      ps.push_back(B.area[b] / A.area[k]);
      nsum += best_score[static_cast<size_t>(k)];
    }
    double mx = 1.0, my = 1.0, ms = 1.0;
    for (int it = 0; it < kLomIterations; ++it) {
      double sw = 0.0, sx = 0.0, sy = 0.0, ss = 0.0;
      for (size_t k = 0; k < px.size(); ++k) {
        const double d = std::abs(px[k] - mx) + std::abs(py[k] - my) + std::abs(ps[k] - ms) + kLomEps;
        const double wgt = 1.0 / d;
        sw += wgt, sx += wgt * px[k], sy += wgt * py[k], ss += wgt * ps[k];
      }
      mx = sx / sw, my = sy / sw, ms = ss / sw;
    }
    const double r = total > 0.0 ? nsum / total : 0.0;
    const float* c = conf + i * nb;
    float* o = out.data() + i * nb;
    for (int64_t j = 0; j < nb; ++j) {
      const double ex = B.xc[j] - A.xc[i] - mx, ey = B.yc[j] - A.yc[i] - my;
      const double es = B.area[j] / A.area[i] - ms;
      o[j] = static_cast<float>(static_cast<double>(c[j]) *
                                std::exp(-kLomXY * std::sqrt(ex * ex + ey * ey) - kLomScale * std::abs(es)) * r);
    }
  });
  std::copy(out.begin(), out.end(), conf);
}

}  // namespace

void match(const BoxesView& a, const BoxesView& b, const MatrixView& appearance, Method method, int64_t height,
           int64_t width, float* out) {
  boxes::check_boxes(a, "boxes_a");
  boxes::check_boxes(b, "boxes_b");
  VSUM_CHECK(appearance.rows == a.rows && appearance.cols == b.rows, "appearance must have shape (len(boxes_a), "
             "len(boxes_b)) = (", a.rows, ", ", b.rows, "); got (", appearance.rows, ", ", appearance.cols, ")");
  if (method == Method::kPhm)
    VSUM_CHECK(height > 0 && width > 0, "image size must be positive; got height ", height, ", width ", width);
  for (int64_t i = 0; i < appearance.rows; ++i) {
    const float* s = appearance.row(i);
    for (int64_t j = 0; j < appearance.cols; ++j)
      VSUM_CHECK(std::isfinite(s[j]) && s[j] >= 0.0f, "appearance must be finite and >= 0; got ", s[j],
                 " at (", i, ", ", j, ")");
  }
  if (a.rows == 0 || b.rows == 0) return;
  const Geometry A(a), B(b);
  gate(A, B, appearance, out);
  if (method == Method::kPhm) phm(A, B, a.rows, b.rows, height, width, out);
  if (method == Method::kLom) lom(a, A, B, a.rows, b.rows, out);
}

}  // namespace flow
}  // namespace vsum
