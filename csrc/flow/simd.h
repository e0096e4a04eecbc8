// Row helpers of the flow kernels: validation, aspect gate, max, index compaction.
//
// On x86-64 they use SSE2, which every x86-64 CPU has (no -march flag
// needed); elsewhere a scalar fallback with the same results.
#pragma once

#include <cstdint>

#if defined(__SSE2__) || defined(_M_X64) || (defined(_M_IX86_FP) && _M_IX86_FP >= 2)
#include <emmintrin.h>
#define VSUM_FLOW_SSE2 1
#endif

namespace vsum {
namespace flow {
namespace simd {

#if defined(VSUM_FLOW_SSE2)

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

// Positions of the set bits of a 4-bit mask, in increasing order (padded with 0).
alignas(16) constexpr int32_t kCompactLut[16][4] = {
    {0, 0, 0, 0}, {0, 0, 0, 0}, {1, 0, 0, 0}, {0, 1, 0, 0}, {2, 0, 0, 0}, {0, 2, 0, 0}, {1, 2, 0, 0}, {0, 1, 2, 0},
    {3, 0, 0, 0}, {0, 3, 0, 0}, {1, 3, 0, 0}, {0, 1, 3, 0}, {2, 3, 0, 0}, {0, 2, 3, 0}, {1, 2, 3, 0}, {0, 1, 2, 3}};
constexpr int kPopcount4[16] = {0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4};

// Appends k + lane for each set bit of the 4-bit mask to out[n...]; returns the new n.
// out needs room for 4 values past n.
inline int64_t append_lanes(int bits, int64_t k, int32_t* out, int64_t n) {
  const __m128i lanes = _mm_load_si128(reinterpret_cast<const __m128i*>(kCompactLut[bits]));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(out + n), _mm_add_epi32(lanes, _mm_set1_epi32(static_cast<int32_t>(k))));
  return n + kPopcount4[bits];
}

// Indices k in [0, n), increasing, of the boxes (x1, y1, x2, y2)[k] sharing a
// pixel with the box (X1, Y1, X2, Y2), into out (room for n + 4); returns their count.
inline int64_t overlapping(const int32_t* x1, const int32_t* y1, const int32_t* x2, const int32_t* y2, int64_t n,
                           const int32_t box[4], int32_t* out) {
  const __m128i X1 = _mm_set1_epi32(box[0]), Y1 = _mm_set1_epi32(box[1]);
  const __m128i X2 = _mm_set1_epi32(box[2]), Y2 = _mm_set1_epi32(box[3]);
  int64_t count = 0, k = 0;
  for (; k + 4 <= n; k += 4) {
    const auto ld = [k](const int32_t* p) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + k)); };
    const __m128i apart = _mm_or_si128(_mm_or_si128(_mm_cmpgt_epi32(ld(x1), X2), _mm_cmpgt_epi32(X1, ld(x2))),
                                       _mm_or_si128(_mm_cmpgt_epi32(ld(y1), Y2), _mm_cmpgt_epi32(Y1, ld(y2))));
    count = append_lanes(~_mm_movemask_ps(_mm_castsi128_ps(apart)) & 0xf, k, out, count);
  }
  for (; k < n; ++k) {
    out[count] = static_cast<int32_t>(k);
    count += (x1[k] <= box[2]) & (x2[k] >= box[0]) & (y1[k] <= box[3]) & (y2[k] >= box[1]);
  }
  return count;
}

// Indices j in [0, n), increasing, with c[j] != 0, into out (room for n + 4);
// returns their count.
inline int64_t nonzero(const float* c, int64_t n, int32_t* out) {
  const __m128 zero = _mm_setzero_ps();
  int64_t count = 0, j = 0;
  for (; j + 4 <= n; j += 4) count = append_lanes(_mm_movemask_ps(_mm_cmpneq_ps(_mm_loadu_ps(c + j), zero)), j, out, count);
  for (; j < n; ++j) {
    out[count] = static_cast<int32_t>(j);
    count += c[j] != 0.0f;
  }
  return count;
}

#else  // scalar fallback

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

inline int64_t overlapping(const int32_t* x1, const int32_t* y1, const int32_t* x2, const int32_t* y2, int64_t n,
                           const int32_t box[4], int32_t* out) {
  int64_t count = 0;
  for (int64_t k = 0; k < n; ++k) {
    out[count] = static_cast<int32_t>(k);
    count += (x1[k] <= box[2]) & (x2[k] >= box[0]) & (y1[k] <= box[3]) & (y2[k] >= box[1]);
  }
  return count;
}

inline int64_t nonzero(const float* c, int64_t n, int32_t* out) {
  int64_t count = 0;
  for (int64_t j = 0; j < n; ++j) {
    out[count] = static_cast<int32_t>(j);
    count += c[j] != 0.0f;
  }
  return count;
}

#endif

}  // namespace simd
}  // namespace flow
}  // namespace vsum
