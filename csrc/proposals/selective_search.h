// Selective search (Uijlings et al., IJCV 2013): hierarchical grouping of
// Felzenszwalb-Huttenlocher segments over several colour spaces, thresholds k
// and similarity strategies, pooled and ranked (see docs/method.md, stage 2).
//
// One hierarchy = (colour space, k, strategy).  Its initial regions are the
// segments of the colour image (sigma, k, min size = k); it repeatedly merges
// the most similar pair of neighbouring regions (ties: the pair with the
// smaller (a, b) ids first) until none is left.  It emits the boxes of its
// initial regions (in label order) followed by the box of each merged region
// (in merge order); with T emitted boxes, box t (0-based) has priority T - t,
// so the last merge (the largest region) has priority 1.
//
// All hierarchies are pooled in the order colour space, k, strategy (outer to
// inner); box i of the pool gets the score priority_i * u_i with u_i uniform in
// [0, 1) drawn in pool order from std::mt19937(seed) (53 bits from two draws:
// ((a >> 5) * 2^26 + (b >> 6)) / 2^53).  Boxes are ranked by score ascending
// (stable), then, walking down the ranking, a box is dropped when it is
// narrower or shorter than min_side pixels, when it touches the border (its
// distance to an image edge, in pixels, is below border * W horizontally or
// border * H vertically) unless it is the whole image, or when an equal box was
// already kept.  The first `num` kept boxes are returned.
#pragma once

#include <cstdint>
#include <vector>

#include "proposals/ss_features.h"

namespace vsum {
namespace proposals {

// Similarity terms; a strategy is a non-empty OR of these.
enum SimilarityTerm : int { kColour = 1, kTexture = 2, kSize = 4, kFill = 8 };

struct SelectiveSearchConfig {
  std::vector<ColourSpace> colour_spaces;
  std::vector<double> ks;         // FH thresholds; min size = k (rounded)
  std::vector<int> strategies;    // OR of SimilarityTerm
  double sigma = 0.8;
  int64_t num = 500;              // < 0: keep all
  uint32_t seed = 0;
  int64_t min_side = 20;
  double border = 0.01;
};

struct Proposals {
  std::vector<int32_t> boxes;    // (n, 4) inclusive x1, y1, x2, y2
  std::vector<double> scores;    // (n,) priority * u, ascending
};

// rgb: (H, W, 3) uint8, C-contiguous; H, W >= 1.  Parallel over the
// independent hierarchies (vsum::parallel_for); identical output for every
// thread count.
Proposals selective_search(const uint8_t* rgb, int64_t H, int64_t W, const SelectiveSearchConfig& config);

}  // namespace proposals
}  // namespace vsum
