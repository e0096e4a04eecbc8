// Felzenszwalb-Huttenlocher graph segmentation (see segmentation.h).
#include "proposals/segmentation.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

// The reference repeats these float64 operations one by one; a fused
// multiply-add would change the last bit and possibly the partition.
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

namespace vsum {
namespace proposals {
namespace {

// Union-find with union by rank and path halving; tracks component sizes and
// the merge threshold Int(C) + k / |C|.
class DisjointSets {
 public:
  explicit DisjointSets(int64_t n) : parent_(static_cast<size_t>(n)), rank_(static_cast<size_t>(n), 0),
                                     size_(static_cast<size_t>(n), 1) {
    std::iota(parent_.begin(), parent_.end(), int32_t{0});
  }
  int32_t find(int32_t x) {
    while (parent_[x] != x) {
      parent_[x] = parent_[parent_[x]];
      x = parent_[x];
    }
    return x;
  }
  // Joins two roots; returns the new root.
  int32_t join(int32_t a, int32_t b) {
    if (rank_[a] < rank_[b]) std::swap(a, b);
    parent_[b] = a;
    size_[a] += size_[b];
    if (rank_[a] == rank_[b]) ++rank_[a];
    return a;
  }
  int64_t size(int32_t root) const { return size_[root]; }

 private:
  std::vector<int32_t> parent_;
  std::vector<uint8_t> rank_;
  std::vector<int64_t> size_;
};

// Separable Gaussian smoothing of one (H, W) plane with stride C, in place
// semantics through `out` (H*W doubles).
void smooth_plane(const double* src, int64_t H, int64_t W, int64_t C, const std::vector<double>& g,
                  double* out, std::vector<double>& tmp) {
  const int64_t r = static_cast<int64_t>(g.size()) - 1;
  tmp.resize(static_cast<size_t>(H * W));
  for (int64_t y = 0; y < H; ++y) {  // rows
    const double* s = src + y * W * C;
    double* t = tmp.data() + y * W;
    for (int64_t x = 0; x < W; ++x) {
      double acc = g[0] * s[x * C];
      for (int64_t i = 1; i <= r; ++i) {
        const int64_t xl = std::max<int64_t>(x - i, 0), xr = std::min<int64_t>(x + i, W - 1);
        acc = acc + g[i] * (s[xl * C] + s[xr * C]);
      }
      t[x] = acc;
    }
  }
  for (int64_t y = 0; y < H; ++y) {  // columns
    double* o = out + y * W;
    for (int64_t x = 0; x < W; ++x) o[x] = g[0] * tmp[y * W + x];
    for (int64_t i = 1; i <= r; ++i) {
      const double* up = tmp.data() + std::max<int64_t>(y - i, 0) * W;
      const double* dn = tmp.data() + std::min<int64_t>(y + i, H - 1) * W;
      for (int64_t x = 0; x < W; ++x) o[x] = o[x] + g[i] * (up[x] + dn[x]);
    }
  }
}

}  // namespace

std::vector<double> gaussian_half_kernel(double sigma) {
  if (!(sigma > 0)) return {};
  const int64_t r = static_cast<int64_t>(std::ceil(sigma * 4.0));
  std::vector<double> g(static_cast<size_t>(r + 1));
  for (int64_t i = 0; i <= r; ++i) {
    const double t = static_cast<double>(i) / sigma;
    g[i] = std::exp(-0.5 * t * t);
  }
  double sum = g[0];
  for (int64_t i = 1; i <= r; ++i) sum = sum + 2.0 * g[i];
  for (auto& v : g) v = v / sum;
  return g;
}

int32_t felzenszwalb(const double* image, int64_t H, int64_t W, int64_t C, double sigma, double k,
                     int64_t min_size, int32_t* labels) {
  const int64_t N = H * W;
  // 1. smoothing, stored planar: planes[c * N + p]
  std::vector<double> planes(static_cast<size_t>(N * C));
  const std::vector<double> g = gaussian_half_kernel(sigma);
  if (g.empty()) {
    for (int64_t p = 0; p < N; ++p)
      for (int64_t c = 0; c < C; ++c) planes[c * N + p] = image[p * C + c];
  } else {
    std::vector<double> tmp;
    for (int64_t c = 0; c < C; ++c) smooth_plane(image + c, H, W, C, g, planes.data() + c * N, tmp);
  }

  // 2. edges in generation order; key = (float32 weight bits << 32) | index
  // sorts by (weight, index) because non-negative float bit patterns are
  // ordered like the floats.
  const int64_t dy[4] = {0, 1, 1, -1}, dx[4] = {1, 0, 1, 1};
  std::vector<uint64_t> keys;
  std::vector<int32_t> eu, ev;
  keys.reserve(static_cast<size_t>(4 * N));
  eu.reserve(static_cast<size_t>(4 * N));
  ev.reserve(static_cast<size_t>(4 * N));
  for (int64_t y = 0; y < H; ++y) {
    for (int64_t x = 0; x < W; ++x) {
      const int64_t p = y * W + x;
      for (int t = 0; t < 4; ++t) {
        const int64_t yy = y + dy[t], xx = x + dx[t];
        if (yy < 0 || yy >= H || xx >= W) continue;
        const int64_t q = yy * W + xx;
        double acc = 0.0;
        for (int64_t c = 0; c < C; ++c) {
          const double d = planes[c * N + p] - planes[c * N + q];
          acc = (c == 0) ? d * d : acc + d * d;
        }
        const float w = static_cast<float>(std::sqrt(acc));
        uint32_t bits;
        std::memcpy(&bits, &w, sizeof bits);
        keys.push_back((static_cast<uint64_t>(bits) << 32) | static_cast<uint64_t>(eu.size()));
        eu.push_back(static_cast<int32_t>(p));
        ev.push_back(static_cast<int32_t>(q));
      }
    }
  }
  // 3. sort
  std::sort(keys.begin(), keys.end());

  // 4. merging with the adaptive threshold
  DisjointSets sets(N);
  std::vector<double> threshold(static_cast<size_t>(N), k);  // Int = 0, |C| = 1
  for (const uint64_t key : keys) {
    const uint32_t bits = static_cast<uint32_t>(key >> 32);
    float wf;
    std::memcpy(&wf, &bits, sizeof wf);
    const double w = wf;
    const size_t e = static_cast<size_t>(key & 0xffffffffu);
    int32_t a = sets.find(eu[e]), b = sets.find(ev[e]);
    if (a != b && w <= threshold[a] && w <= threshold[b]) {
      const int32_t root = sets.join(a, b);
      threshold[root] = w + k / static_cast<double>(sets.size(root));
    }
  }
  // 5. small components
  if (min_size > 1) {
    for (const uint64_t key : keys) {
      const size_t e = static_cast<size_t>(key & 0xffffffffu);
      const int32_t a = sets.find(eu[e]), b = sets.find(ev[e]);
      if (a != b && (sets.size(a) < min_size || sets.size(b) < min_size)) sets.join(a, b);
    }
  }
  // 6. labels in raster order of first appearance
  std::vector<int32_t> label_of_root(static_cast<size_t>(N), -1);
  int32_t n = 0;
  for (int64_t p = 0; p < N; ++p) {
    const int32_t root = sets.find(static_cast<int32_t>(p));
    if (label_of_root[root] < 0) label_of_root[root] = n++;
    labels[p] = label_of_root[root];
  }
  return n;
}

}  // namespace proposals
}  // namespace vsum
