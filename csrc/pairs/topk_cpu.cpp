// CPU implementation of the running top-k merge (see topk.h).
#include "pairs/topk.h"

#include <algorithm>
#include <cstdint>
#include <vector>

#include "common/parallel.h"

namespace vsum {
namespace pairs {
namespace {

struct Entry {
  float score;
  int32_t image;
  int32_t index;
};

inline bool better(const Entry& a, const Entry& b) {
  if (a.score != b.score) return a.score > b.score;
  if (a.image != b.image) return a.image < b.image;
  return a.index < b.index;
}

}  // namespace

void topk_merge(const View2D<const float>& conf, const int64_t* sel, int64_t nsel, bool transposed, int32_t image,
                View2D<float> scores, View2D<int32_t> images, View2D<int32_t> indices) {
  const int64_t k = scores.cols;
  const int64_t ncand = transposed ? conf.rows : conf.cols;
  const int64_t step = transposed ? conf.cols : 1;  // stride between candidates
  if (nsel == 0 || k == 0 || ncand == 0) return;
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(1, ncand));
  parallel_for_range(nsel, grain, [&](int64_t begin, int64_t end) {
    std::vector<Entry> cand, merged;
    cand.reserve(static_cast<size_t>(std::min(ncand, k) + 1));
    for (int64_t s = begin; s < end; ++s) {
      float* sc = scores.row(s);
      int32_t* im = images.row(s);
      int32_t* ix = indices.row(s);
      int64_t filled = 0;
      while (filled < k && ix[filled] >= 0) ++filled;
      const float* src = transposed ? conf.data + sel[s] : conf.row(sel[s]);
      const bool full = filled == k;
      const Entry worst = full ? Entry{sc[k - 1], im[k - 1], ix[k - 1]} : Entry{0.0f, 0, 0};
      cand.clear();
      for (int64_t c = 0; c < ncand; ++c) {
        const Entry e{src[c * step], image, static_cast<int32_t>(c)};
        if (full && !better(e, worst)) continue;
        cand.push_back(e);
      }
      if (cand.empty()) continue;
      if (static_cast<int64_t>(cand.size()) > k) {
        std::partial_sort(cand.begin(), cand.begin() + k, cand.end(), better);
        cand.resize(static_cast<size_t>(k));
      } else {
        std::sort(cand.begin(), cand.end(), better);
      }
      merged.clear();
      for (int64_t t = 0; t < filled; ++t) merged.push_back(Entry{sc[t], im[t], ix[t]});
      const size_t old = merged.size();
      merged.insert(merged.end(), cand.begin(), cand.end());
      std::inplace_merge(merged.begin(), merged.begin() + static_cast<std::ptrdiff_t>(old), merged.end(), better);
      const int64_t keep = std::min<int64_t>(k, static_cast<int64_t>(merged.size()));
      for (int64_t t = 0; t < keep; ++t) {
        sc[t] = merged[static_cast<size_t>(t)].score;
        im[t] = merged[static_cast<size_t>(t)].image;
        ix[t] = merged[static_cast<size_t>(t)].index;
      }
    }
  });
}

}  // namespace pairs
}  // namespace vsum
