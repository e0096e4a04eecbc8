// Selective search: hierarchical grouping, pooling, ranking (see selective_search.h).
#include "proposals/selective_search.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <queue>
#include <random>
#include <unordered_set>

#include "common/errors.h"
#include "common/parallel.h"
#include "proposals/segmentation.h"

namespace vsum {
namespace proposals {
namespace {

// One hierarchy's emitted boxes, in emission order.
using BoxList = std::vector<int32_t>;  // (T, 4)

struct Pair {
  double s;
  int32_t a, b;  // a < b
};
struct PairOrder {  // priority_queue top = highest s, then smallest (a, b)
  bool operator()(const Pair& x, const Pair& y) const {
    if (x.s != y.s) return x.s < y.s;
    if (x.a != y.a) return x.a > y.a;
    return x.b > y.b;
  }
};

float intersection(const float* a, const float* b, int n) {
  float s = 0.0f;
  for (int i = 0; i < n; ++i) s += std::min(a[i], b[i]);
  return s;
}

BoxList group(const RegionFeatures& f, int strategy, int64_t image_area) {
  const int32_t n = f.n;
  const int32_t cap = std::max<int32_t>(1, 2 * n - 1);
  const bool use_colour = strategy & kColour, use_texture = strategy & kTexture;
  const int cd = use_colour ? f.colour_dim : 0, td = use_texture ? f.texture_dim : 0;
  std::vector<float> colour(static_cast<size_t>(cap) * cd), texture(static_cast<size_t>(cap) * td);
  if (cd) std::copy(f.colour.begin(), f.colour.end(), colour.begin());
  if (td) std::copy(f.texture.begin(), f.texture.end(), texture.begin());
  std::vector<int64_t> size(static_cast<size_t>(cap));
  std::copy(f.size.begin(), f.size.end(), size.begin());
  BoxList box(static_cast<size_t>(cap) * 4);
  std::copy(f.box.begin(), f.box.end(), box.begin());
  std::vector<char> alive(static_cast<size_t>(cap), 0);
  std::fill_n(alive.begin(), n, 1);
  std::vector<std::vector<int32_t>> nbrs(static_cast<size_t>(cap));
  for (const auto& [a, b] : f.neighbours) nbrs[a].push_back(b), nbrs[b].push_back(a);
  for (auto& v : nbrs) std::sort(v.begin(), v.end());

  const double A = static_cast<double>(image_area);
  auto similarity = [&](int32_t i, int32_t j) {
    double s = 0.0;
    if (cd) s += intersection(&colour[static_cast<size_t>(i) * cd], &colour[static_cast<size_t>(j) * cd], cd);
    if (td) s += intersection(&texture[static_cast<size_t>(i) * td], &texture[static_cast<size_t>(j) * td], td);
    if (strategy & kSize) s += 1.0 - static_cast<double>(size[i] + size[j]) / A;
    if (strategy & kFill) {
      const int32_t* bi = &box[4 * static_cast<size_t>(i)];
      const int32_t* bj = &box[4 * static_cast<size_t>(j)];
      const double bw = std::max(bi[2], bj[2]) - std::min(bi[0], bj[0]) + 1;
      const double bh = std::max(bi[3], bj[3]) - std::min(bi[1], bj[1]) + 1;
      s += 1.0 - (bw * bh - static_cast<double>(size[i] + size[j])) / A;
    }
    return s;
  };

  std::vector<Pair> initial;
  initial.reserve(f.neighbours.size());
  for (const auto& [a, b] : f.neighbours) initial.push_back({similarity(a, b), a, b});
  std::priority_queue<Pair, std::vector<Pair>, PairOrder> heap(PairOrder{}, std::move(initial));

  int32_t next = n;
  std::vector<int32_t> merged_nbrs;
  while (!heap.empty()) {
    const Pair top = heap.top();
    heap.pop();
    if (!alive[top.a] || !alive[top.b]) continue;
    const int32_t i = top.a, j = top.b, r = next++;
    alive[i] = alive[j] = 0;
    alive[r] = 1;
    const int64_t si = size[i], sj = size[j];
    size[r] = si + sj;
    int32_t* br = &box[4 * static_cast<size_t>(r)];
    const int32_t* bi = &box[4 * static_cast<size_t>(i)];
    const int32_t* bj = &box[4 * static_cast<size_t>(j)];
    br[0] = std::min(bi[0], bj[0]), br[1] = std::min(bi[1], bj[1]);
    br[2] = std::max(bi[2], bj[2]), br[3] = std::max(bi[3], bj[3]);
    const float wi = static_cast<float>(static_cast<double>(si) / static_cast<double>(si + sj)), wj = 1.0f - wi;
    for (int q = 0; q < cd; ++q)
      colour[static_cast<size_t>(r) * cd + q] =
          wi * colour[static_cast<size_t>(i) * cd + q] + wj * colour[static_cast<size_t>(j) * cd + q];
    for (int q = 0; q < td; ++q)
      texture[static_cast<size_t>(r) * td + q] =
          wi * texture[static_cast<size_t>(i) * td + q] + wj * texture[static_cast<size_t>(j) * td + q];

    merged_nbrs.clear();
    std::set_union(nbrs[i].begin(), nbrs[i].end(), nbrs[j].begin(), nbrs[j].end(), std::back_inserter(merged_nbrs));
    auto& nr = nbrs[r];
    for (int32_t t : merged_nbrs) {
      if (t == i || t == j) continue;
      nr.push_back(t);
      auto& nt = nbrs[t];
      nt.erase(std::remove_if(nt.begin(), nt.end(), [&](int32_t v) { return v == i || v == j; }), nt.end());
      nt.push_back(r);  // r is the largest id so far: nt stays sorted
      heap.push({similarity(t, r), t, r});
    }
    std::vector<int32_t>().swap(nbrs[i]);
    std::vector<int32_t>().swap(nbrs[j]);
  }
  box.resize(static_cast<size_t>(next) * 4);
  return box;
}

double uniform53(std::mt19937& rng) {
  const auto a = static_cast<uint32_t>(rng() >> 5);
  const auto b = static_cast<uint32_t>(rng() >> 6);
  return (static_cast<double>(a) * 67108864.0 + static_cast<double>(b)) / 9007199254740992.0;
}

}  // namespace

Proposals selective_search(const uint8_t* rgb, int64_t H, int64_t W, const SelectiveSearchConfig& cfg) {
  const int64_t n_cs = static_cast<int64_t>(cfg.colour_spaces.size());
  const int64_t n_k = static_cast<int64_t>(cfg.ks.size());
  const int64_t n_s = static_cast<int64_t>(cfg.strategies.size());
  VSUM_CHECK(n_cs > 0 && n_k > 0 && n_s > 0, "selective search needs at least one colour space, k and strategy");
  for (int s : cfg.strategies)
    VSUM_CHECK(s >= 1 && s <= 15, "strategy must be a non-empty combination of the similarity terms; got ", s);

  // Tasks are pulled from a shared counter (load balancing); every task
  // writes only its own slot, so the result does not depend on the schedule.
  auto run_tasks = [](int64_t count, const auto& task) {
    std::atomic<int64_t> next{0};
    const int64_t workers = std::min<int64_t>(count, get_num_threads());
    parallel_for(workers, [&](int64_t) {
      for (int64_t t; (t = next.fetch_add(1)) < count;) task(t);
    });
  };

  // colour images and texture bins, one per colour space
  std::vector<ColourImage> images(static_cast<size_t>(n_cs));
  run_tasks(n_cs, [&](int64_t c) { images[c] = make_colour_image(rgb, H, W, cfg.colour_spaces[c]); });

  // segmentation + region features per (colour space, k); then the strategies
  const int64_t n_seg = n_cs * n_k;
  std::vector<RegionFeatures> features(static_cast<size_t>(n_seg));
  run_tasks(n_seg, [&](int64_t t) {
    const ColourImage& img = images[t / n_k];
    const double k = cfg.ks[t % n_k];
    std::vector<double> pixels(img.pixels.begin(), img.pixels.end());
    std::vector<int32_t> labels(static_cast<size_t>(H * W));
    const int32_t n = felzenszwalb(pixels.data(), H, W, img.C, cfg.sigma, k,
                                   static_cast<int64_t>(std::llround(k)), labels.data());
    features[t] = region_features(img, labels.data(), n);
  });

  std::vector<BoxList> lists(static_cast<size_t>(n_seg * n_s));
  // Larger hierarchies first keeps the workers busy to the end.
  std::vector<int64_t> order(lists.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int64_t>(i);
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return features[a / n_s].n > features[b / n_s].n; });
  run_tasks(static_cast<int64_t>(lists.size()), [&](int64_t t) {
    const int64_t h = order[t];
    lists[h] = group(features[h / n_s], cfg.strategies[h % n_s], H * W);
  });
  features.clear();
  images.clear();

  // pool, score, rank
  struct Entry {
    double score;
    const int32_t* box;
  };
  std::vector<Entry> pool;
  size_t total = 0;
  for (const auto& l : lists) total += l.size() / 4;
  pool.reserve(total);
  std::mt19937 rng(cfg.seed);
  for (const auto& l : lists) {
    const int64_t T = static_cast<int64_t>(l.size() / 4);
    for (int64_t t = 0; t < T; ++t) pool.push_back({static_cast<double>(T - t) * uniform53(rng), &l[4 * t]});
  }
  std::stable_sort(pool.begin(), pool.end(), [](const Entry& a, const Entry& b) { return a.score < b.score; });

  Proposals out;
  const double mx = cfg.border * static_cast<double>(W), my = cfg.border * static_cast<double>(H);
  std::unordered_set<uint64_t> seen;
  for (const Entry& e : pool) {
    if (cfg.num >= 0 && static_cast<int64_t>(out.scores.size()) >= cfg.num) break;
    const int32_t x1 = e.box[0], y1 = e.box[1], x2 = e.box[2], y2 = e.box[3];
    if (x2 - x1 + 1 < cfg.min_side || y2 - y1 + 1 < cfg.min_side) continue;
    const bool whole = x1 == 0 && y1 == 0 && x2 == W - 1 && y2 == H - 1;
    if (!whole && (x1 < mx || y1 < my || static_cast<double>(W - 1 - x2) < mx || static_cast<double>(H - 1 - y2) < my))
      continue;
    const uint64_t key = (static_cast<uint64_t>(x1) << 48) | (static_cast<uint64_t>(y1) << 32) |
                         (static_cast<uint64_t>(x2) << 16) | static_cast<uint64_t>(y2);
    if (!seen.insert(key).second) continue;
    out.boxes.insert(out.boxes.end(), {x1, y1, x2, y2});
    out.scores.push_back(e.score);
  }
  return out;
}

}  // namespace proposals
}  // namespace vsum
