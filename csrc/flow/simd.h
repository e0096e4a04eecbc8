// Two-lane double / four-lane float vectors for the flow kernels.
//
// On x86-64 they map to SSE2, which every x86-64 CPU has (no -march flag
// needed); elsewhere to a scalar fallback with the same lane semantics.  Every
// operation is an exact IEEE operation per lane (no fused multiply-add, no
// approximate reciprocal), so a kernel written with them computes the same
// values as the scalar expression it spells out, lane by lane.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__SSE2__) || defined(_M_X64) || (defined(_M_IX86_FP) && _M_IX86_FP >= 2)
#include <emmintrin.h>
#define VSUM_FLOW_SSE2 1
#endif

namespace vsum {
namespace flow {
namespace simd {

#if defined(VSUM_FLOW_SSE2)

struct D2 {
  __m128d v;
};
inline D2 set1(double x) { return {_mm_set1_pd(x)}; }
inline D2 set2(double lo, double hi) { return {_mm_set_pd(hi, lo)}; }
inline D2 load(const double* p) { return {_mm_loadu_pd(p)}; }
inline void store(double* p, D2 a) { _mm_storeu_pd(p, a.v); }
inline D2 operator+(D2 a, D2 b) { return {_mm_add_pd(a.v, b.v)}; }
inline D2 operator-(D2 a, D2 b) { return {_mm_sub_pd(a.v, b.v)}; }
inline D2 operator*(D2 a, D2 b) { return {_mm_mul_pd(a.v, b.v)}; }
inline D2 operator/(D2 a, D2 b) { return {_mm_div_pd(a.v, b.v)}; }
inline D2 abs(D2 a) { return {_mm_andnot_pd(_mm_set1_pd(-0.0), a.v)}; }
inline D2 sqrt(D2 a) { return {_mm_sqrt_pd(a.v)}; }
inline D2 max(D2 a, D2 b) { return {_mm_max_pd(a.v, b.v)}; }
inline double lane0(D2 a) { return _mm_cvtsd_f64(a.v); }
inline double lane1(D2 a) { return _mm_cvtsd_f64(_mm_unpackhi_pd(a.v, a.v)); }

// p * 2^n where k holds 0x1.8p52 + n (n an integer, |n| < 2^11) and the
// result is a normal number.
inline D2 scale_by_pow2(D2 p, D2 k) {
  const __m128i e = _mm_slli_epi64(_mm_castpd_si128(k.v), 52);
  return {_mm_castsi128_pd(_mm_add_epi64(_mm_castpd_si128(p.v), e))};
}

// float32 <-> double, two values (unaligned, 8 bytes).
inline D2 load_f2(const float* p) {
  return {_mm_cvtps_pd(_mm_castpd_ps(_mm_load_sd(reinterpret_cast<const double*>(p))))};
}
inline void store_f2(float* p, D2 a) { _mm_store_sd(reinterpret_cast<double*>(p), _mm_castps_pd(_mm_cvtpd_ps(a.v))); }

struct F4 {
  __m128 v;
};
inline F4 load(const float* p) { return {_mm_loadu_ps(p)}; }
inline F4 set1(float x) { return {_mm_set1_ps(x)}; }
inline F4 max(F4 a, F4 b) { return {_mm_max_ps(a.v, b.v)}; }
inline float hmax(F4 a) {
  __m128 m = _mm_max_ps(a.v, _mm_movehl_ps(a.v, a.v));
  m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
  return _mm_cvtss_f32(m);
}

// True when every value of s[0, n) is finite and >= 0.
inline bool all_finite_nonnegative(const float* s, int64_t n) {
  const __m128 zero = _mm_setzero_ps(), big = _mm_set1_ps(3.40282347e+38f);
  __m128 ok = _mm_castsi128_ps(_mm_set1_epi32(-1));
  int64_t j = 0;
  for (; j + 4 <= n; j += 4) {
    const __m128 v = _mm_loadu_ps(s + j);
    ok = _mm_and_ps(ok, _mm_and_ps(_mm_cmpge_ps(v, zero), _mm_cmple_ps(v, big)));  // false for NaN
  }
  bool all = _mm_movemask_ps(ok) == 0xf;
  for (; j < n; ++j) all &= (s[j] >= 0.0f) & (s[j] <= 3.40282347e+38f);
  return all;
}

// o[j] = s[j], or 0 where max(p, q) >= 2 min(p, q) with p = wa * hb[j],
// q = wb[j] * ha (exact when all sides are below 2^12).
inline void aspect_gate(float wa, float ha, const float* wb, const float* hb, const float* s, int64_t n, float* o) {
  const __m128 WA = _mm_set1_ps(wa), HA = _mm_set1_ps(ha);
  int64_t j = 0;
  for (; j + 4 <= n; j += 4) {
    const __m128 p = _mm_mul_ps(WA, _mm_loadu_ps(hb + j)), q = _mm_mul_ps(_mm_loadu_ps(wb + j), HA);
    const __m128 off = _mm_or_ps(_mm_cmpge_ps(p, _mm_add_ps(q, q)), _mm_cmpge_ps(q, _mm_add_ps(p, p)));
    _mm_storeu_ps(o + j, _mm_andnot_ps(off, _mm_loadu_ps(s + j)));
  }
  for (; j < n; ++j) {
    const float p = wa * hb[j], q = wb[j] * ha;
    o[j] = ((p >= q + q) | (q >= p + p)) ? 0.0f : s[j];
  }
}

#else  // scalar fallback

struct D2 {
  double v[2];
};
inline D2 set1(double x) { return {{x, x}}; }
inline D2 set2(double lo, double hi) { return {{lo, hi}}; }
inline D2 load(const double* p) { return {{p[0], p[1]}}; }
inline void store(double* p, D2 a) { p[0] = a.v[0], p[1] = a.v[1]; }
inline D2 operator+(D2 a, D2 b) { return {{a.v[0] + b.v[0], a.v[1] + b.v[1]}}; }
inline D2 operator-(D2 a, D2 b) { return {{a.v[0] - b.v[0], a.v[1] - b.v[1]}}; }
inline D2 operator*(D2 a, D2 b) { return {{a.v[0] * b.v[0], a.v[1] * b.v[1]}}; }
inline D2 operator/(D2 a, D2 b) { return {{a.v[0] / b.v[0], a.v[1] / b.v[1]}}; }
inline D2 abs(D2 a) { return {{std::fabs(a.v[0]), std::fabs(a.v[1])}}; }
inline D2 sqrt(D2 a) { return {{std::sqrt(a.v[0]), std::sqrt(a.v[1])}}; }
inline D2 max(D2 a, D2 b) { return {{a.v[0] > b.v[0] ? a.v[0] : b.v[0], a.v[1] > b.v[1] ? a.v[1] : b.v[1]}}; }
inline double lane0(D2 a) { return a.v[0]; }
inline double lane1(D2 a) { return a.v[1]; }

inline D2 scale_by_pow2(D2 p, D2 k) {
  D2 r;
  for (int l = 0; l < 2; ++l) {
    uint64_t pb, kb;
    std::memcpy(&pb, &p.v[l], 8);
    std::memcpy(&kb, &k.v[l], 8);
    pb += kb << 52;
    std::memcpy(&r.v[l], &pb, 8);
  }
  return r;
}

inline D2 load_f2(const float* p) { return {{static_cast<double>(p[0]), static_cast<double>(p[1])}}; }
inline void store_f2(float* p, D2 a) { p[0] = static_cast<float>(a.v[0]), p[1] = static_cast<float>(a.v[1]); }

struct F4 {
  float v[4];
};
inline F4 load(const float* p) { return {{p[0], p[1], p[2], p[3]}}; }
inline F4 set1(float x) { return {{x, x, x, x}}; }
inline F4 max(F4 a, F4 b) {
  F4 r;
  for (int l = 0; l < 4; ++l) r.v[l] = a.v[l] > b.v[l] ? a.v[l] : b.v[l];
  return r;
}
inline float hmax(F4 a) {
  float m = a.v[0];
  for (int l = 1; l < 4; ++l) m = a.v[l] > m ? a.v[l] : m;
  return m;
}

inline bool all_finite_nonnegative(const float* s, int64_t n) {
  bool all = true;
  for (int64_t j = 0; j < n; ++j) all &= (s[j] >= 0.0f) & (s[j] <= 3.40282347e+38f);
  return all;
}

inline void aspect_gate(float wa, float ha, const float* wb, const float* hb, const float* s, int64_t n, float* o) {
  for (int64_t j = 0; j < n; ++j) {
    const float p = wa * hb[j], q = wb[j] * ha;
    o[j] = ((p >= q + q) | (q >= p + p)) ? 0.0f : s[j];
  }
}

#endif

inline double hsum(D2 a) { return lane0(a) + lane1(a); }

// exp(t) for t <= 0, to about 1e-15 relative; t below -700 is treated as -700
// (exp(-700) ~ 1e-304: the callers' float32 results are 0 either way).
// t = n ln2 + r, |r| <= ln2 / 2 (Cody-Waite split of ln2), exp(r) by its
// degree-11 Taylor polynomial (truncation error < 7e-15), times 2^n.
inline D2 exp_nonpositive(D2 t) {
  const D2 shifter = set1(6755399441055744.0);  // 0x1.8p52: adding it rounds to an integer
  t = max(t, set1(-700.0));
  const D2 k = t * set1(1.4426950408889634) + shifter;  // 0x1.8p52 + round(t / ln2)
  const D2 n = k - shifter;
  const D2 r = (t - n * set1(6.93147180369123816490e-01)) - n * set1(1.90821492927058770002e-10);
  // Estrin's scheme: p = sum c_i r^i, c_i = 1 / i!, i <= 11 (short dependency chains).
  const D2 r2 = r * r, r4 = r2 * r2, r8 = r4 * r4;
  const D2 q0 = set1(1.0) + r, q1 = set1(1.0 / 2.0) + set1(1.0 / 6.0) * r;
  const D2 q2 = set1(1.0 / 24.0) + set1(1.0 / 120.0) * r, q3 = set1(1.0 / 720.0) + set1(1.0 / 5040.0) * r;
  const D2 q4 = set1(1.0 / 40320.0) + set1(1.0 / 362880.0) * r;
  const D2 q5 = set1(1.0 / 3628800.0) + set1(1.0 / 39916800.0) * r;
  const D2 p = ((q0 + q1 * r2) + (q2 + q3 * r2) * r4) + (q4 + q5 * r2) * r8;
  return scale_by_pow2(p, k);
}

}  // namespace simd
}  // namespace flow
}  // namespace vsum
