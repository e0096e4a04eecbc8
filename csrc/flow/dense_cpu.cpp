// Sparse flow field from proposal matches; see dense.h for the semantics.
#include "flow/dense.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <vector>

#include "boxes/boxes.h"
#include "common/errors.h"
#include "common/parallel.h"

namespace vsum {
namespace flow {
namespace {

// Target coordinate of pixel coordinate v of the A box side [a1, a2] on the B
// box side [b1, b2], floor(t + 0.5) clamped to [0, size - 1].  Clamping
// t + 0.5 to [0, size - 0.5] and truncating gives exactly that (no libm floor).
inline int64_t map_coord(int64_t v, int64_t a1, int64_t a2, int64_t b1, int64_t b2, int64_t size) {
  double t;
  if (a2 == a1) {
    t = (static_cast<double>(b1) + static_cast<double>(b2)) / 2.0;
  } else {
    t = static_cast<double>(b1) +
        static_cast<double>(v - a1) * static_cast<double>(b2 - b1) / static_cast<double>(a2 - a1);
  }
  const double u = std::min(std::max(t + 0.5, 0.0), static_cast<double>(size) - 0.5);
  return static_cast<int64_t>(u);
}

// Smallest unassigned index >= x in a row (x == W means none), with path halving.
inline int64_t find_free(std::vector<int64_t>& next, int64_t x) {
  while (next[x] != x) {
    next[x] = next[next[x]];
    x = next[x];
  }
  return x;
}

}  // namespace

void match_field(const View2D<const int32_t>& boxes_a, const View2D<const int32_t>& boxes_b,
                 const View2D<const float>& conf, int64_t height_a, int64_t width_a, int64_t height_b,
                 int64_t width_b, const SparseField& out) {
  boxes::check_boxes(boxes_a, "boxes_a");
  boxes::check_boxes(boxes_b, "boxes_b");
  VSUM_CHECK(conf.rows == boxes_a.rows && conf.cols == boxes_b.rows,
             "conf must have shape (len(boxes_a), len(boxes_b)) = (", boxes_a.rows, ", ", boxes_b.rows,
             "); got (", conf.rows, ", ", conf.cols, ")");
  VSUM_CHECK(height_a > 0 && width_a > 0, "shape_a must be positive; got (", height_a, ", ", width_a, ")");
  VSUM_CHECK(height_b > 0 && width_b > 0, "shape_b must be positive; got (", height_b, ", ", width_b, ")");
  const int64_t na = conf.rows, nb = conf.cols;

  // Validation and best match per row (first arg max), in one parallel pass.
  std::vector<int64_t> best(static_cast<size_t>(na), -1);
  std::vector<float> score(static_cast<size_t>(na), 0.0f);
  parallel_for(na, [&](int64_t a) {
    const float* r = conf.row(a);
    bool ok = true;
    for (int64_t j = 0; j < nb; ++j) ok &= (r[j] >= 0.0f) & (r[j] <= std::numeric_limits<float>::max());
    if (!ok) {
      for (int64_t j = 0; j < nb; ++j) {
        VSUM_CHECK(std::isfinite(r[j]), "conf must be finite; it holds NaN or inf (row ", a, ")");
        VSUM_CHECK(r[j] >= 0.0f, "conf must be >= 0; row ", a, " holds ", r[j]);
      }
    }
    if (nb == 0) return;
    int64_t k = 0;
    float m = r[0];
    for (int64_t j = 1; j < nb; ++j) {
      if (r[j] > m) {
        m = r[j];
        k = j;
      }
    }
    best[a] = k;
    score[a] = m;
  }, 16);

  // The boxes that assign anything, in fill order, clipped to A.
  const int64_t H = height_a, W = width_a;
  struct Item {
    int64_t x1, x2, y1, y2;  // clipped span in A
    const int32_t* a;        // box in A (unclipped)
    const int32_t* b;        // matched box in B
    float score;
  };
  std::vector<int64_t> order;
  for (int64_t a = 0; a < na; ++a) {
    if (best[a] >= 0 && score[a] > 0.0f) order.push_back(a);
  }
  std::sort(order.begin(), order.end(), [&](int64_t p, int64_t q) {
    return score[p] > score[q] || (score[p] == score[q] && p < q);
  });
  std::vector<Item> items;
  items.reserve(order.size());
  for (const int64_t a : order) {
    const int32_t* ba = boxes_a.row(a);
    const Item it{std::max<int64_t>(ba[0], 0), std::min<int64_t>(ba[2], W - 1), std::max<int64_t>(ba[1], 0),
                  std::min<int64_t>(ba[3], H - 1), ba, boxes_b.row(best[a]), score[a]};
    if (it.x1 <= it.x2 && it.y1 <= it.y2) items.push_back(it);
  }

  // Per image row (independent): each box in order fills the free pixels of its span.
  parallel_for_range(H, 8, [&](int64_t y_begin, int64_t y_end) {
    std::vector<int64_t> next(static_cast<size_t>(W + 1));
    for (int64_t y = y_begin; y < y_end; ++y) {
      std::iota(next.begin(), next.end(), int64_t{0});
      float* vx = out.vx + y * W;
      float* vy = out.vy + y * W;
      uint8_t* valid = out.valid + y * W;
      float* sc = out.score + y * W;
      std::fill_n(vx, W, 0.0f);
      std::fill_n(vy, W, 0.0f);
      std::fill_n(valid, W, uint8_t{0});
      std::fill_n(sc, W, 0.0f);
      int64_t free_left = W;
      for (const Item& it : items) {
        if (free_left == 0) break;
        if (y < it.y1 || y > it.y2) continue;
        const int32_t* ba = it.a;
        const int32_t* bb = it.b;
        const int64_t x2 = it.x2;
        const float dy = static_cast<float>(map_coord(y, ba[1], ba[3], bb[1], bb[3], height_b) - y);
        const double xa1 = ba[0], xb1 = bb[0], sx = static_cast<double>(bb[2] - bb[0]);
        const double dx = static_cast<double>(ba[2] - ba[0]);
        const double centre = (static_cast<double>(bb[0]) + static_cast<double>(bb[2])) / 2.0;
        const double hi = static_cast<double>(width_b) - 0.5;
        // Free runs [x, e) inside [x1, x2]; afterwards the whole span is taken.
        for (int64_t x = find_free(next, it.x1); x <= x2; x = find_free(next, x)) {
          int64_t e = x + 1;
          while (e <= x2 && next[e] == e) ++e;
          for (int64_t k = x; k < e; ++k) {
            const double t = dx == 0.0 ? centre : xb1 + (static_cast<double>(k) - xa1) * sx / dx;
            vx[k] = static_cast<float>(static_cast<int64_t>(std::min(std::max(t + 0.5, 0.0), hi)) - k);
            vy[k] = dy;
            valid[k] = 1;
            sc[k] = it.score;
            next[k] = x2 + 1;
          }
          free_left -= e - x;
          x = e;
        }
      }
    }
  });

  // One-to-one post filter (sequential raster scan: the first best wins ties).
  std::vector<int64_t> owner(static_cast<size_t>(height_b * width_b), -1);  // source pixel per B pixel
  auto target = [&](int64_t x, int64_t y, int64_t p) {
    return (y + static_cast<int64_t>(out.vy[p])) * width_b + x + static_cast<int64_t>(out.vx[p]);
  };
  for (int64_t y = 0; y < H; ++y) {
    for (int64_t x = 0, p = y * W; x < W; ++x, ++p) {
      if (!out.valid[p]) continue;
      int64_t& o = owner[target(x, y, p)];
      if (o < 0 || out.score[p] > out.score[o]) o = p;
    }
  }
  parallel_for(H, [&](int64_t y) {
    for (int64_t x = 0, p = y * W; x < W; ++x, ++p) {
      if (out.valid[p] && owner[target(x, y, p)] != p) out.valid[p] = 0;
    }
  }, 8);
}

}  // namespace flow
}  // namespace vsum
