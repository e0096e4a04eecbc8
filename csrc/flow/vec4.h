// V4: four doubles for the LOM kernel, with exact per-lane IEEE arithmetic.
//
// With GCC / Clang it is a vector extension type: the same source compiles to
// SSE2 (baseline x86-64) or, inside a function marked
// __attribute__((target("avx2"))), to AVX2, and both give the same bits (no
// fused multiply-add, correctly rounded sqrt).  Elsewhere it is a plain
// array.  Helpers are always inlined so they take the caller's instruction set.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__SSE2__) || defined(_M_X64)
#include <emmintrin.h>
#endif

#if defined(__GNUC__)
#define VSUM_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define VSUM_ALWAYS_INLINE inline
#endif

namespace vsum {
namespace flow {
namespace v4 {

#if defined(__GNUC__)
typedef double V4 __attribute__((vector_size(32)));
typedef int64_t I4 __attribute__((vector_size(32)));

VSUM_ALWAYS_INLINE V4 splat(double x) { return V4{x, x, x, x}; }
VSUM_ALWAYS_INLINE V4 load(const double* p) {
  V4 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
VSUM_ALWAYS_INLINE V4 abs(V4 x) {
  const int64_t m = INT64_MAX;
  return reinterpret_cast<V4>(reinterpret_cast<I4>(x) & I4{m, m, m, m});
}
VSUM_ALWAYS_INLINE V4 max(V4 a, V4 b) {  // b where a < b, else a
  const I4 lt = a < b;
  return reinterpret_cast<V4>((reinterpret_cast<I4>(b) & lt) | (reinterpret_cast<I4>(a) & ~lt));
}
// p * 2^n where k = 0x1.8p52 + n (n an integer) and the result is a normal number.
VSUM_ALWAYS_INLINE V4 scale_by_pow2(V4 p, V4 k) {
  return reinterpret_cast<V4>(reinterpret_cast<I4>(p) + (reinterpret_cast<I4>(k) << 52));
}
#if defined(__SSE2__)
VSUM_ALWAYS_INLINE V4 sqrt(V4 x) {  // two SSE2 sqrtpd: as fast per value as one AVX one
  __m128d h[2];
  std::memcpy(h, &x, sizeof x);
  h[0] = _mm_sqrt_pd(h[0]), h[1] = _mm_sqrt_pd(h[1]);
  std::memcpy(&x, h, sizeof x);
  return x;
}
#else
VSUM_ALWAYS_INLINE V4 sqrt(V4 x) {
  for (int l = 0; l < 4; ++l) x[l] = std::sqrt(x[l]);
  return x;
}
#endif

#else  // plain array

struct V4 {
  double v[4];
  double& operator[](int l) { return v[l]; }
  double operator[](int l) const { return v[l]; }
};
#define VSUM_V4_OP(op)                                      \
  inline V4 operator op(V4 a, V4 b) {                       \
    for (int l = 0; l < 4; ++l) a.v[l] = a.v[l] op b.v[l];  \
    return a;                                               \
  }                                                         \
  inline V4& operator op##=(V4& a, V4 b) { return a = a op b; }
VSUM_V4_OP(+)
VSUM_V4_OP(-)
VSUM_V4_OP(*)
VSUM_V4_OP(/)
#undef VSUM_V4_OP
inline V4 splat(double x) { return V4{{x, x, x, x}}; }
inline V4 load(const double* p) { return V4{{p[0], p[1], p[2], p[3]}}; }
inline V4 abs(V4 x) {
  for (double& e : x.v) e = std::fabs(e);
  return x;
}
inline V4 max(V4 a, V4 b) {
  for (int l = 0; l < 4; ++l) a.v[l] = a.v[l] < b.v[l] ? b.v[l] : a.v[l];
  return a;
}
inline V4 scale_by_pow2(V4 p, V4 k) {
  for (int l = 0; l < 4; ++l) {
    uint64_t pb, kb;
    std::memcpy(&pb, &p.v[l], 8);
    std::memcpy(&kb, &k.v[l], 8);
    pb += kb << 52;
    std::memcpy(&p.v[l], &pb, 8);
  }
  return p;
}
inline V4 sqrt(V4 x) {
  for (double& e : x.v) e = std::sqrt(e);
  return x;
}
#endif

// (v0 + v1) + (v2 + v3).
VSUM_ALWAYS_INLINE double hsum(V4 v) { return (v[0] + v[1]) + (v[2] + v[3]); }

// exp(t) for t <= 0, to about 1e-15 relative; t below -700 is treated as -700
// (exp(-700) ~ 1e-304: the LOM's float32 results are 0 either way).
// t = n ln2 + r, |r| <= ln2 / 2 (Cody-Waite split of ln2); exp(r) by its
// degree-11 Taylor polynomial (truncation error < 7e-15) in Estrin's scheme;
// times 2^n through the exponent bits.
VSUM_ALWAYS_INLINE V4 exp_nonpositive(V4 t) {
  const V4 shifter = splat(6755399441055744.0);  // 0x1.8p52: adding it rounds to an integer
  t = max(t, splat(-700.0));
  const V4 k = t * splat(1.4426950408889634) + shifter;  // 0x1.8p52 + round(t / ln2)
  const V4 n = k - shifter;
  const V4 r = (t - n * splat(6.93147180369123816490e-01)) - n * splat(1.90821492927058770002e-10);
  const V4 r2 = r * r, r4 = r2 * r2, r8 = r4 * r4;
  const V4 q0 = splat(1.0) + r, q1 = splat(1.0 / 2.0) + splat(1.0 / 6.0) * r;
  const V4 q2 = splat(1.0 / 24.0) + splat(1.0 / 120.0) * r, q3 = splat(1.0 / 720.0) + splat(1.0 / 5040.0) * r;
  const V4 q4 = splat(1.0 / 40320.0) + splat(1.0 / 362880.0) * r;
  const V4 q5 = splat(1.0 / 3628800.0) + splat(1.0 / 39916800.0) * r;
  const V4 p = ((q0 + q1 * r2) + (q2 + q3 * r2) * r4) + (q4 + q5 * r2) * r8;
  return scale_by_pow2(p, k);
}

}  // namespace v4
}  // namespace flow
}  // namespace vsum
