// Running top-k merge for the all-pairs driver (vsum.pairs).
//
// Each selected proposal keeps its k best candidate scores, sorted best
// first, as three parallel rows: score (float32), image (int32) and index
// (int32).  An empty slot has index -1 (and score 0, image -1); filled slots
// always form a prefix of the row.
//
// Order ("better than"): higher score first; equal scores by lower image,
// then lower index.  The merged row is therefore the first k entries of all
// candidates ever offered, sorted in that order, whatever order the
// candidates arrive in.
#pragma once

#include <cstdint>

#include "common/array_view.h"

namespace vsum {
namespace pairs {

// Offer the candidates of one confidence matrix conf (na, nb) to nsel rows of
// top-k lists (scores/images/indices, each (nsel, k)).
//   transposed == false: list s gets row sel[s] of conf (candidates = the nb
//     columns, index = column);
//   transposed == true: list s gets column sel[s] of conf (candidates = the
//     na rows, index = row).
// Every candidate gets image number `image`.  sel values must be in range
// (checked by the caller).  Parallel over lists; identical results for every
// thread count.
void topk_merge(const View2D<const float>& conf, const int64_t* sel, int64_t nsel, bool transposed, int32_t image,
                View2D<float> scores, View2D<int32_t> images, View2D<int32_t> indices);

}  // namespace pairs
}  // namespace vsum
