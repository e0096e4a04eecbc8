// CPU LOM kernel (see lom.h): per row of A, gather the overlapping proposals,
// find the geometric median of their best-match offsets, then rescale the
// row's nonzero gated scores.
#include "flow/lom.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define VSUM_FLOW_AVX2_DISPATCH 1
#pragma GCC diagnostic ignored "-Wpsabi"  // V4 values never cross a non-inlined call
#endif

#include "common/parallel.h"
#include "flow/simd.h"
#include "flow/vec4.h"

namespace vsum {
namespace flow {
namespace {

using v4::V4;

// See weiszfeld() in lom.h.  Points come in blocks of 8, a = [0, 4), b = [4, 8)
// of the block; one division serves both halves: 1 / (d_a d_b) times d_b
// (resp. d_a).  Point k is summed in lane k % 4, lanes combined in a fixed order.
VSUM_ALWAYS_INLINE void weiszfeld_body(const double* px, const double* py, const double* ps, int64_t n,
                                       double m[3]) {
  const int64_t blocks = (n + 7) / 8, last = 8 * (blocks - 1);
  using namespace v4;
  V4 keep_a = splat(0.0), keep_b = splat(0.0);  // 1 for real points of the last block, 0 for padding
  for (int l = 0; l < 4; ++l) {
    keep_a[l] = last + l < n ? 1.0 : 0.0;
    keep_b[l] = last + 4 + l < n ? 1.0 : 0.0;
  }
  const V4 eps = splat(kLomEps), one = splat(1.0);
  double mx = 1.0, my = 1.0, ms = 1.0;
  for (int it = 0; it < kLomIterations; ++it) {
    const V4 MX = splat(mx), MY = splat(my), MS = splat(ms);
    V4 sw = splat(0.0), sx = sw, sy = sw, ss = sw;
    for (int64_t q = 0; q <= last; q += 8) {
      const V4 xa = load(px + q), ya = load(py + q), sa = load(ps + q);
      const V4 xb = load(px + q + 4), yb = load(py + q + 4), sb = load(ps + q + 4);
      const V4 da = ((abs(xa - MX) + abs(ya - MY)) + abs(sa - MS)) + eps;
      const V4 db = ((abs(xb - MX) + abs(yb - MY)) + abs(sb - MS)) + eps;
      const V4 inv = one / (da * db);
      V4 wa = db * inv, wb = da * inv;
      if (q == last) wa = wa * keep_a, wb = wb * keep_b;
      sw += wa + wb;
      sx += wa * xa + wb * xb;
      sy += wa * ya + wb * yb;
      ss += wa * sa + wb * sb;
    }
    const double w = hsum(sw);
    mx = hsum(sx) / w, my = hsum(sy) / w, ms = hsum(ss) / w;
  }
  m[0] = mx, m[1] = my, m[2] = ms;
}

// c[j] *= exp(-kLomXY ||(bx[j], by[j]) - c_xy|| - kLomScale |ba[j] inv_area - m_s|) * r
// for the n columns j in cols (padded to a multiple of 4 by repeating the last).
VSUM_ALWAYS_INLINE void confidence_body(const double* bx, const double* by, const double* ba, const double cxy[2],
                                        double m_s, double inv_area, double r, const int32_t* cols, int64_t n,
                                        float* c) {
  using namespace v4;
  const V4 cx = splat(cxy[0]), cy = splat(cxy[1]), ms = splat(m_s), ia = splat(inv_area), R = splat(r);
  const V4 kxy = splat(-kLomXY), ks = splat(kLomScale);
  for (int64_t q = 0; q < n; q += 4) {
    const int32_t j0 = cols[q], j1 = cols[q + 1], j2 = cols[q + 2], j3 = cols[q + 3];
    const V4 ex = V4{bx[j0], bx[j1], bx[j2], bx[j3]} - cx, ey = V4{by[j0], by[j1], by[j2], by[j3]} - cy;
    const V4 es = V4{ba[j0], ba[j1], ba[j2], ba[j3]} * ia - ms;
    const V4 e = exp_nonpositive(kxy * sqrt(ex * ex + ey * ey) - ks * abs(es));
    const V4 g{static_cast<double>(c[j0]), static_cast<double>(c[j1]), static_cast<double>(c[j2]),
               static_cast<double>(c[j3])};
    const V4 v = (g * e) * R;
    c[j0] = static_cast<float>(v[0]), c[j1] = static_cast<float>(v[1]);
    c[j2] = static_cast<float>(v[2]), c[j3] = static_cast<float>(v[3]);
  }
}

void weiszfeld_baseline(const double* px, const double* py, const double* ps, int64_t n, double* m) {
  weiszfeld_body(px, py, ps, n, m);
}

#if defined(VSUM_FLOW_AVX2_DISPATCH)
// Twice as wide, same bits.  (The confidence rows gain nothing from AVX2: their
// gathers and sqrt dominate.)
__attribute__((target("avx2"))) void weiszfeld_avx2(const double* px, const double* py, const double* ps, int64_t n,
                                                    double* m) {
  weiszfeld_body(px, py, ps, n, m);
}
#endif

using WeiszfeldFn = void (*)(const double*, const double*, const double*, int64_t, double*);

// AVX2 when the CPU has it (checked once), else the baseline.
WeiszfeldFn weiszfeld_kernel() {
  static const WeiszfeldFn fn = [] {
#if defined(VSUM_FLOW_AVX2_DISPATCH)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2")) return &weiszfeld_avx2;
#endif
    return &weiszfeld_baseline;
  }();
  return fn;
}

// Inputs of the LOM rows shared by all threads.
struct LomShared {
  std::vector<int32_t> x1, y1, x2, y2;   // boxes of A, structure of arrays
  std::vector<double> offx, offy, offs;  // offset of each proposal of A to its best match in B
  std::vector<double> score;             // its best (gated) score
  double total = 0.0;                    // sum of all best scores
};

// Per-chunk buffers.  Neighbours of one row: indices, then their offsets and
// best scores gathered into arrays zero padded to a multiple of 8.
struct LomScratch {
  std::vector<int32_t> nbr, cols;
  std::vector<double> px, py, ps, pb;
  LomScratch(int64_t na, int64_t nb)
      : nbr(static_cast<size_t>(na + 4)), cols(static_cast<size_t>(nb + 4)),
        px(static_cast<size_t>(na + 8)), py(px.size()), ps(px.size()), pb(px.size()) {}
};

// Gathers the proposals of A sharing a pixel with proposal i (i included);
// returns their count.
int64_t gather_neighbours(const LomShared& S, int64_t i, int64_t na, LomScratch& t) {
  const int32_t box[4] = {S.x1[i], S.y1[i], S.x2[i], S.y2[i]};
  int32_t* nbr = t.nbr.data();
  const int64_t n = simd::overlapping(S.x1.data(), S.y1.data(), S.x2.data(), S.y2.data(), na, box, nbr);
  for (int64_t q = 0; q < n; ++q) {
    const auto k = static_cast<size_t>(nbr[q]);
    t.px[q] = S.offx[k], t.py[q] = S.offy[k], t.ps[q] = S.offs[k], t.pb[q] = S.score[k];
  }
  for (int64_t q = n; q < n + 8; ++q) t.px[q] = t.py[q] = t.ps[q] = t.pb[q] = 0.0;
  return n;
}

// Sum of p[0, n) over 4 fixed lanes (p zero padded to a multiple of 4).
double lane_sum(const double* p, int64_t n) {
  double s[4] = {0.0, 0.0, 0.0, 0.0};
  for (int64_t q = 0; q < n; q += 4)
    for (int l = 0; l < 4; ++l) s[l] += p[q + l];
  return (s[0] + s[1]) + (s[2] + s[3]);
}

// Row i of the LOM confidence, in place over the gated row c: c[j] *=
// exp(-kLomXY ||(dx, dy)_ij - m_xy|| - kLomScale |ds_ij - m_s|) * r.  Zeros stay
// zero and are skipped.  Returns the number of nonzero input columns, listed
// in ascending order in t.cols.
int64_t confidence_row(const Geometry& A, const Geometry& B, int64_t i, const double m[3], double r, float* c,
                    LomScratch& t) {
  int32_t* cols = t.cols.data();
  const int64_t n = simd::nonzero(c, static_cast<int64_t>(B.xc.size()), cols);
  if (n == 0) return 0;
  for (int64_t q = n; q % 4; ++q) cols[q] = cols[n - 1];  // the last column is computed again
  const double cxy[2] = {A.xc[i] + m[0], A.yc[i] + m[1]};
  confidence_body(B.xc.data(), B.yc.data(), B.area.data(), cxy, m[2], 1.0 / A.area[i], r, cols,
                  (n + 3) & ~int64_t{3}, c);
  return n;
}

}  // namespace

void weiszfeld(const double* px, const double* py, const double* ps, int64_t n, double m[3]) {
  weiszfeld_kernel()(px, py, ps, n, m);
}

namespace {

LomShared make_shared(const BoxesView& boxes_a, const Geometry& A, const Geometry& B, const int64_t* best,
                      const double* best_score) {
  const int64_t na = boxes_a.rows;
  const auto n = static_cast<size_t>(na);
  LomShared S;
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
  return S;
}

}  // namespace

void lom_sequential(const BoxesView& boxes_a, const Geometry& A, const Geometry& B, const int64_t* best,
                    const double* best_score, float* conf) {
  const int64_t na = boxes_a.rows, nb = static_cast<int64_t>(B.xc.size());
  LomShared S = make_shared(boxes_a, A, B, best, best_score);
  LomScratch t(na, nb);
  for (int64_t i = 0; i < na; ++i) {
    const int64_t n_nbr = gather_neighbours(S, i, na, t);
    double m[3];
    weiszfeld(t.px.data(), t.py.data(), t.ps.data(), n_nbr, m);
    const double r = S.total > 0.0 ? lane_sum(t.pb.data(), n_nbr) / S.total : 0.0;
    float* c = conf + i * nb;
    const int64_t n_cols = confidence_row(A, B, i, m, r, c, t);
    int64_t b = 0;  // first arg max of the new row: only the listed columns can be nonzero
    for (int64_t q = 0; q < n_cols; ++q)
      if (c[t.cols[static_cast<size_t>(q)]] > c[b]) b = t.cols[static_cast<size_t>(q)];
    const auto k = static_cast<size_t>(i), bk = static_cast<size_t>(b);
    S.offx[k] = B.xc[bk] - A.xc[k];
    S.offy[k] = B.yc[bk] - A.yc[k];
    S.offs[k] = B.area[bk] / A.area[k];
    S.total += static_cast<double>(c[b]) - S.score[k];
    S.score[k] = static_cast<double>(c[b]);
  }
}

void lom(const BoxesView& boxes_a, const Geometry& A, const Geometry& B, const int64_t* best,
         const double* best_score, float* conf) {
  const int64_t na = boxes_a.rows, nb = static_cast<int64_t>(B.xc.size());
  LomShared S = make_shared(boxes_a, A, B, best, best_score);
  // Rows in the pool's dynamic chunks; a row's result does not depend on the
  // chunk or thread computing it.
  parallel_for_range(na, 4, [&](int64_t begin, int64_t end) {
    LomScratch t(na, nb);
    for (int64_t i = begin; i < end; ++i) {
      const int64_t n_nbr = gather_neighbours(S, i, na, t);
      double m[3];
      weiszfeld(t.px.data(), t.py.data(), t.ps.data(), n_nbr, m);
      const double r = S.total > 0.0 ? lane_sum(t.pb.data(), n_nbr) / S.total : 0.0;
      confidence_row(A, B, i, m, r, conf + i * nb, t);
    }
  });
}

}  // namespace flow
}  // namespace vsum
