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
#include "flow/simd.h"

namespace vsum {
namespace flow {
namespace {

// Largest box side for which the aspect gate runs in float32: products of two
// sides stay below 2^24, so they, their doubles and the comparisons are exact.
constexpr int64_t kFloatGateMaxSide = int64_t{1} << 12;

struct Geometry {
  std::vector<int64_t> w, h;
  std::vector<float> wf, hf;  // w, h as float32 (exact when max_side <= kFloatGateMaxSide)
  std::vector<double> xc, yc, area;
  int64_t max_side = 0;
  explicit Geometry(const BoxesView& b) {
    const auto n = static_cast<size_t>(b.rows);
    w.resize(n), h.resize(n), wf.resize(n), hf.resize(n), xc.resize(n), yc.resize(n), area.resize(n);
    for (size_t i = 0; i < n; ++i) {
      const int32_t* r = b.row(static_cast<int64_t>(i));
      w[i] = int64_t{r[2]} - r[0] + 1;
      h[i] = int64_t{r[3]} - r[1] + 1;
      wf[i] = static_cast<float>(w[i]);
      hf[i] = static_cast<float>(h[i]);
      max_side = std::max({max_side, w[i], h[i]});
      xc[i] = (static_cast<double>(r[0]) + static_cast<double>(r[2])) * 0.5;
      yc[i] = (static_cast<double>(r[1]) + static_cast<double>(r[3])) * 0.5;
      area[i] = static_cast<double>(w[i]) * static_cast<double>(h[i]);
    }
  }
};

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

// Inputs of the LOM rows shared by all threads.
struct LomShared {
  std::vector<int32_t> x1, y1, x2, y2;     // boxes of A, structure of arrays
  std::vector<double> offx, offy, offs;    // offset of each proposal of A to its best match in B
  std::vector<double> score;               // its best (gated) score
  double total = 0.0;                      // sum of all best scores
};

// Per-thread buffers: the neighbours of one row, gathered into structure of
// arrays padded with zeros to a multiple of 4.
struct LomScratch {
  std::vector<uint8_t> is_nbr;
  std::vector<double> px, py, ps, pb;
  std::vector<int32_t> cols;
  LomScratch(int64_t na, int64_t nb)
      : is_nbr(static_cast<size_t>(na)),
        px(static_cast<size_t>(na + 4)), py(px.size()), ps(px.size()), pb(px.size()),
        cols(static_cast<size_t>(nb + 1)) {}
};

// Gathers the proposals of A sharing a pixel with proposal i (i included);
// returns their count.
int64_t gather_neighbours(const LomShared& S, int64_t i, int64_t na, LomScratch& t) {
  const int32_t X1 = S.x1[i], Y1 = S.y1[i], X2 = S.x2[i], Y2 = S.y2[i];
  const int32_t *x1 = S.x1.data(), *y1 = S.y1.data(), *x2 = S.x2.data(), *y2 = S.y2.data();
  uint8_t* m = t.is_nbr.data();
  for (int64_t k = 0; k < na; ++k)
    m[k] = static_cast<uint8_t>((x1[k] <= X2) & (x2[k] >= X1) & (y1[k] <= Y2) & (y2[k] >= Y1));
  int64_t n = 0;
  for (int64_t k = 0; k < na; ++k) {  // branch-free compaction
    t.px[n] = S.offx[k], t.py[n] = S.offy[k], t.ps[n] = S.offs[k], t.pb[n] = S.score[k];
    n += m[k];
  }
  for (int64_t k = n; k < n + 4; ++k) t.px[k] = t.py[k] = t.ps[k] = t.pb[k] = 0.0;
  return n;
}

// Sum of p[0, n) (zero padded to a multiple of 4) over 4 fixed lanes.
double lane_sum(const double* p, int64_t n) {
  simd::D2 s0 = simd::set1(0.0), s1 = s0;
  for (int64_t q = 0; q < n; q += 4) s0 = s0 + simd::load(p + q), s1 = s1 + simd::load(p + q + 2);
  return simd::hsum(s0 + s1);
}

struct Sums {
  simd::D2 w, x, y, s;
};

// Adds the Weiszfeld terms of points q, q + 1 (keep: 1 per real point, 0 per padding).
template <bool kMasked>
inline void weiszfeld_terms(const LomScratch& t, int64_t q, simd::D2 mx, simd::D2 my, simd::D2 ms, simd::D2 keep,
                            Sums& acc) {
  using namespace simd;
  const D2 x = load(t.px.data() + q), y = load(t.py.data() + q), s = load(t.ps.data() + q);
  const D2 d = ((abs(x - mx) + abs(y - my)) + abs(s - ms)) + set1(kLomEps);
  D2 w = set1(1.0) / d;
  if (kMasked) w = w * keep;
  acc.w = acc.w + w, acc.x = acc.x + w * x, acc.y = acc.y + w * y, acc.s = acc.s + w * s;
}

// Geometric median of the n >= 1 gathered offsets: kLomIterations Weiszfeld
// steps from (1, 1, 1), weights 1 / (L1 distance + kLomEps).  Point k is
// summed in lane k % 4, lanes combined in a fixed order.
void weiszfeld(const LomScratch& t, int64_t n, double m[3]) {
  using namespace simd;
  const int64_t full = n & ~int64_t{3}, rest = n - full;
  const D2 keep0 = set2(rest > 0, rest > 1), keep1 = set2(rest > 2, 0.0);
  double mx = 1.0, my = 1.0, ms = 1.0;
  for (int it = 0; it < kLomIterations; ++it) {
    const D2 MX = set1(mx), MY = set1(my), MS = set1(ms), zero = set1(0.0);
    Sums a{zero, zero, zero, zero}, b = a;
    for (int64_t q = 0; q < full; q += 4) {
      weiszfeld_terms<false>(t, q, MX, MY, MS, zero, a);
      weiszfeld_terms<false>(t, q + 2, MX, MY, MS, zero, b);
    }
    if (rest) {
      weiszfeld_terms<true>(t, full, MX, MY, MS, keep0, a);
      weiszfeld_terms<true>(t, full + 2, MX, MY, MS, keep1, b);
    }
    const double sw = hsum(a.w + b.w);
    mx = hsum(a.x + b.x) / sw, my = hsum(a.y + b.y) / sw, ms = hsum(a.s + b.s) / sw;
  }
  m[0] = mx, m[1] = my, m[2] = ms;
}

// c[j] *= exp(-kLomXY ||(dx, dy)_ij - m_xy|| - kLomScale |ds_ij - m_s|) * r for
// j in [0, nb), c row i of the gated appearance; zeros stay zero and are
// skipped (cols: scratch for nb + 1 column indices).
void lom_confidence_row(const Geometry& A, const Geometry& B, int64_t i, const double m[3], double r, int64_t nb,
                        float* c, int32_t* cols) {
  using namespace simd;
  int64_t n = 0;
  for (int64_t j = 0; j < nb; ++j) {  // branch-free compaction of the nonzero columns
    cols[n] = static_cast<int32_t>(j);
    n += c[j] != 0.0f;
  }
  if (n == 0) return;
  if (n & 1) cols[n] = cols[n - 1];  // odd count: the last column is computed twice
  const D2 cx = set1(A.xc[i] + m[0]), cy = set1(A.yc[i] + m[1]), ms = set1(m[2]);
  const D2 inv_area = set1(1.0 / A.area[i]), R = set1(r), kxy = set1(-kLomXY), ks = set1(kLomScale);
  const double *bx = B.xc.data(), *by = B.yc.data(), *ba = B.area.data();
  for (int64_t q = 0; q < n; q += 2) {
    const int32_t j0 = cols[q], j1 = cols[q + 1];
    const D2 ex = set2(bx[j0], bx[j1]) - cx, ey = set2(by[j0], by[j1]) - cy;
    const D2 es = set2(ba[j0], ba[j1]) * inv_area - ms;
    const D2 e = exp_nonpositive(kxy * sqrt(ex * ex + ey * ey) - ks * abs(es));
    const D2 v = (set2(static_cast<double>(c[j0]), static_cast<double>(c[j1])) * e) * R;
    c[j0] = static_cast<float>(lane0(v));
    c[j1] = static_cast<float>(lane1(v));
  }
}

// LOM over the gated appearance conf (na, nb), in place; best / best_score:
// first arg max of each gated row and its value.
void lom(const BoxesView& boxes_a, const Geometry& A, const Geometry& B, const int64_t* best,
         const double* best_score, int64_t na, int64_t nb, float* conf) {
  LomShared S;
  const auto n = static_cast<size_t>(na);
  S.x1.resize(n), S.y1.resize(n), S.x2.resize(n), S.y2.resize(n);
  S.offx.resize(n), S.offy.resize(n), S.offs.resize(n);
  S.score.assign(best_score, best_score + na);
  for (size_t k = 0; k < n; ++k) {
    const int32_t* r = boxes_a.row(static_cast<int64_t>(k));
    S.x1[k] = r[0], S.y1[k] = r[1], S.x2[k] = r[2], S.y2[k] = r[3];
    const auto b = static_cast<size_t>(best[k]);
    S.offx[k] = B.xc[b] - A.xc[k];
    S.offy[k] = B.yc[b] - A.yc[k];
    S.offs[k] = B.area[b] / A.area[k];
    S.total += S.score[k];
  }

  parallel_for_range(na, 1, [&](int64_t begin, int64_t end) {
    LomScratch t(na, nb);
    for (int64_t i = begin; i < end; ++i) {
      const int64_t n_nbr = gather_neighbours(S, i, na, t);
      double m[3];
      weiszfeld(t, n_nbr, m);
      const double r = S.total > 0.0 ? lane_sum(t.pb.data(), n_nbr) / S.total : 0.0;
      lom_confidence_row(A, B, i, m, r, nb, conf + i * nb, t.cols.data());
    }
  });
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
  if (a.rows == 0 || b.rows == 0) return;
  const Geometry A(a), B(b);
  if (method == Method::kLom) {
    std::vector<int64_t> best(static_cast<size_t>(a.rows));
    std::vector<double> best_score(static_cast<size_t>(a.rows));
    gate(A, B, appearance, out, best.data(), best_score.data());
    lom(a, A, B, best.data(), best_score.data(), a.rows, b.rows, out);
    return;
  }
  gate(A, B, appearance, out);
  if (method == Method::kPhm) phm(A, B, a.rows, b.rows, height, width, out);
}

}  // namespace flow
}  // namespace vsum
