// CPU implementation of the box geometry kernels (see boxes.h).
#include "boxes/boxes.h"

#include <algorithm>
#include <climits>
#include <cstdint>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "common/errors.h"
#include "common/parallel.h"

namespace vsum {
namespace boxes {
namespace {

// Target number of inner-loop elements per parallel chunk: below this the
// cost of handing a chunk to a pool worker outweighs the work.
constexpr int64_t kWorkPerChunk = 1 << 15;

int64_t grain_for(int64_t inner) { return std::max<int64_t>(1, kWorkPerChunk / std::max<int64_t>(1, inner)); }

// Structure-of-arrays copy of a box set as T (int64_t or double), plus areas.
template <typename T>
struct BoxesSoA {
  std::vector<T> x1, y1, x2, y2, area;
  explicit BoxesSoA(const BoxesView& b) {
    const auto n = static_cast<size_t>(b.rows);
    x1.resize(n), y1.resize(n), x2.resize(n), y2.resize(n), area.resize(n);
    for (size_t j = 0; j < n; ++j) {
      const int32_t* r = b.row(static_cast<int64_t>(j));
      x1[j] = static_cast<T>(r[0]), y1[j] = static_cast<T>(r[1]);
      x2[j] = static_cast<T>(r[2]), y2[j] = static_cast<T>(r[3]);
      area[j] = (x2[j] - x1[j] + 1) * (y2[j] - y1[j] + 1);
    }
  }
};

template <typename T>
T min_(T a, T b) { return b < a ? b : a; }
template <typename T>
T max_(T a, T b) { return a < b ? b : a; }

// True if every count that pairwise() can form (areas, intersections, unions
// of two boxes, all bounded by the area of the common bounding box) is below
// 2^53, i.e. exactly representable in double.  Then the double path computes
// the very same integers as the int64 path, and so bit-identical ratios.
bool fits_double(const BoxesView& a, const BoxesView& b) {
  int64_t lo_x = INT64_MAX, lo_y = INT64_MAX, hi_x = INT64_MIN, hi_y = INT64_MIN;
  for (const BoxesView* v : {&a, &b}) {
    for (int64_t i = 0; i < v->rows; ++i) {
      const int32_t* r = v->row(i);
      lo_x = std::min<int64_t>(lo_x, r[0]), lo_y = std::min<int64_t>(lo_y, r[1]);
      hi_x = std::max<int64_t>(hi_x, r[2]), hi_y = std::max<int64_t>(hi_y, r[3]);
    }
  }
  constexpr int64_t kLimit = int64_t{1} << 26;  // (2^26)^2 = 2^52 < 2^53
  return hi_x - lo_x < kLimit && hi_y - lo_y < kLimit;
}

// Shared driver of iou / overlap_min: out[i, j] = ratio(inter, area_a, area_b)
// with T = int64_t (always exact) or double (exact when fits_double; the
// fast path: min/max/multiply vectorise on doubles on every x86-64 CPU).
template <typename T, typename Ratio>
void pairwise_impl(const BoxesView& a, const BoxesView& b, float* out, Ratio ratio) {
  const int64_t n = a.rows, m = b.rows;
  const BoxesSoA<T> B(b);
  const T* bx1 = B.x1.data();
  const T* by1 = B.y1.data();
  const T* bx2 = B.x2.data();
  const T* by2 = B.y2.data();
  const T* barea = B.area.data();

  parallel_for(
      n,
      [&](int64_t i) {
        const int32_t* r = a.row(i);
        const T ax1 = static_cast<T>(r[0]), ay1 = static_cast<T>(r[1]);
        const T ax2 = static_cast<T>(r[2]), ay2 = static_cast<T>(r[3]);
        const T aarea = (ax2 - ax1 + 1) * (ay2 - ay1 + 1);
        float* o = out + i * m;
        for (int64_t j = 0; j < m; ++j) {
          const T iw = max_<T>(0, min_(ax2, bx2[j]) - max_(ax1, bx1[j]) + 1);
          const T ih = max_<T>(0, min_(ay2, by2[j]) - max_(ay1, by1[j]) + 1);
          o[j] = ratio(iw * ih, aarea, barea[j]);
        }
      },
      grain_for(m));
}

template <typename Ratio>
void pairwise(const BoxesView& a, const BoxesView& b, float* out, Ratio ratio) {
  check_boxes(a, "boxes_a");
  check_boxes(b, "boxes_b");
  if (a.rows == 0 || b.rows == 0) return;
  if (fits_double(a, b)) {
    pairwise_impl<double>(a, b, out, ratio);
  } else {
    pairwise_impl<int64_t>(a, b, out, ratio);
  }
}

// Fill S ((H + 1) x (W + 1), uninitialised on entry) with the integral image
// of mask: S[y][x] = number of nonzero pixels in rows [0, y), columns [0, x).
//
// Phase 1 (parallel over row blocks): each block is integrated on its own in
// one fused pass, S[y+1][x+1] = S[y][x+1] + (row prefix sum), as if the rows
// above the block were empty.  Phase 2: a serial scan over the blocks' last
// rows gives each block its missing offset row (the integral of everything
// above it), which is then added to the block's rows in parallel.  Every
// element is written in phase 1, so S needs no initialisation.
void build_integral(const MaskView& mask, int64_t* S) {
  const int64_t H = mask.rows, W = mask.cols, S_cols = W + 1;
  std::fill_n(S, S_cols, int64_t{0});
  if (H == 0) return;

  std::mutex blocks_mutex;
  std::vector<std::pair<int64_t, int64_t>> blocks;  // [begin, end) mask rows
  parallel_for_range(H, grain_for(W), [&](int64_t begin, int64_t end) {
    {
      std::lock_guard<std::mutex> lock(blocks_mutex);
      blocks.emplace_back(begin, end);
    }
    for (int64_t y = begin; y < end; ++y) {
      const uint8_t* mrow = mask.row(y);
      int64_t* cur = S + (y + 1) * S_cols;
      cur[0] = 0;
      int64_t acc = 0;
      if (y == begin) {
        for (int64_t x = 0; x < W; ++x) {
          acc += mrow[x] != 0;
          cur[x + 1] = acc;
        }
      } else {
        const int64_t* prev = cur - S_cols;
        for (int64_t x = 0; x < W; ++x) {
          acc += mrow[x] != 0;
          cur[x + 1] = prev[x + 1] + acc;
        }
      }
    }
  });
  if (blocks.size() <= 1) return;

  std::sort(blocks.begin(), blocks.end());
  const size_t nb = blocks.size();
  // offsets[k] = integral row of everything above block k (k >= 1).
  std::vector<int64_t> offsets(nb * static_cast<size_t>(S_cols), 0);
  for (size_t k = 1; k < nb; ++k) {
    const int64_t* last = S + blocks[k - 1].second * S_cols;  // last row of block k - 1 (relative)
    const int64_t* before = offsets.data() + (k - 1) * static_cast<size_t>(S_cols);
    int64_t* off = offsets.data() + k * static_cast<size_t>(S_cols);
    for (int64_t x = 0; x < S_cols; ++x) off[x] = before[x] + last[x];
  }
  const int64_t first = blocks[1].first;
  parallel_for(
      H - first,
      [&](int64_t r) {
        const int64_t y = first + r;
        // block of row y: the last block whose begin <= y
        const auto it = std::upper_bound(blocks.begin(), blocks.end(), std::make_pair(y, INT64_MAX));
        const size_t k = static_cast<size_t>(it - blocks.begin()) - 1;
        const int64_t* off = offsets.data() + k * static_cast<size_t>(S_cols);
        int64_t* cur = S + (y + 1) * S_cols;
        for (int64_t x = 0; x < S_cols; ++x) cur[x] += off[x];
      },
      grain_for(W));
}

}  // namespace

void check_boxes(const BoxesView& boxes, const char* name) {
  VSUM_CHECK(boxes.cols == 4, name, " must have shape (n, 4); got (", boxes.rows, ", ", boxes.cols, ")");
  for (int64_t i = 0; i < boxes.rows; ++i) {
    const int32_t* r = boxes.row(i);
    for (int k = 0; k < 4; ++k) {
      VSUM_CHECK(r[k] >= kBoxCoordMin && r[k] <= kBoxCoordMax, name, ": row ", i, " has coordinate ", r[k],
                 " outside the supported range [", kBoxCoordMin, ", ", kBoxCoordMax, "]");
    }
    VSUM_CHECK(r[0] <= r[2] && r[1] <= r[3], name, ": row ", i, " is degenerate: (x1, y1, x2, y2) = (", r[0],
               ", ", r[1], ", ", r[2], ", ", r[3], "); need x1 <= x2 and y1 <= y2 (corners are inclusive)");
  }
}

void box_iou(const BoxesView& a, const BoxesView& b, float* out) {
  // union = (|A| - inter) + |B| = |A ∪ B| <= 2^62: every term is exact in int64
  // (and in double on the fits_double path).
  pairwise(a, b, out, [](auto inter, auto area_a, auto area_b) {
    return static_cast<float>(static_cast<double>(inter) / static_cast<double>((area_a - inter) + area_b));
  });
}

void box_overlap_min(const BoxesView& a, const BoxesView& b, float* out) {
  pairwise(a, b, out, [](auto inter, auto area_a, auto area_b) {
    return static_cast<float>(static_cast<double>(inter) / static_cast<double>(min_(area_a, area_b)));
  });
}

void box_coverage(const MaskView& mask, const BoxesView& boxes, float* out) {
  check_boxes(boxes, "boxes");
  const int64_t n = boxes.rows;
  if (n == 0) return;
  const int64_t H = mask.rows, W = mask.cols;
  const int64_t S_cols = W + 1;

  // Integral image S of shape (H + 1, W + 1): S[y][x] = number of set pixels
  // in rows [0, y) and columns [0, x).
  std::unique_ptr<int64_t[]> buffer(new int64_t[static_cast<size_t>((H + 1) * S_cols)]);
  int64_t* const S = buffer.get();
  build_integral(mask, S);

  const int64_t* s = S;
  parallel_for(
      n,
      [&](int64_t i) {
        const int32_t* r = boxes.row(i);
        const int64_t x1 = r[0], y1 = r[1], x2 = r[2], y2 = r[3];
        const int64_t area = (x2 - x1 + 1) * (y2 - y1 + 1);
        // Clip to the image; pixels outside it count as not set.
        const int64_t cx1 = std::max<int64_t>(x1, 0), cy1 = std::max<int64_t>(y1, 0);
        const int64_t cx2 = std::min<int64_t>(x2, W - 1), cy2 = std::min<int64_t>(y2, H - 1);
        int64_t count = 0;
        if (cx1 <= cx2 && cy1 <= cy2) {
          count = s[(cy2 + 1) * S_cols + (cx2 + 1)] - s[cy1 * S_cols + (cx2 + 1)] - s[(cy2 + 1) * S_cols + cx1] +
                  s[cy1 * S_cols + cx1];
        }
        out[i] = static_cast<float>(static_cast<double>(count) / static_cast<double>(area));
      },
      1024);
}

}  // namespace boxes
}  // namespace vsum
