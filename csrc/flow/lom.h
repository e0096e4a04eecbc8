// LOM (local offset matching) kernel, internal to csrc/flow (see match.h and
// docs/method.md, stage 4, for the method).
#pragma once

#include <cstdint>

#include "flow/geometry.h"
#include "flow/match.h"

namespace vsum {
namespace flow {

// conf (na, nb) float32 holds the gated appearance on entry and the LOM
// confidence on exit (na = boxes_a.rows >= 1, nb = B's box count >= 1).
// best[k] / best_score[k]: first arg max of gated row k and its value.
// Parallel over rows of A; identical results for every thread count.
void lom(const BoxesView& boxes_a, const Geometry& A, const Geometry& B, const int64_t* best,
         const double* best_score, float* conf);

// The same, rows updated in place in order: after row i is rescaled its best
// match (first arg max of the new float32 row) and best score replace the
// gated ones for the rows after it, and the sum of best scores follows.  One
// thread (the order is inherently serial); callers parallelise over pairs.
void lom_sequential(const BoxesView& boxes_a, const Geometry& A, const Geometry& B, const int64_t* best,
                    const double* best_score, float* conf);

// Geometric median of n >= 1 points (px, py, ps): kLomIterations Weiszfeld
// steps from (1, 1, 1) with weights 1 / (L1 distance + kLomEps); m receives
// (x, y, s).  The arrays hold at least round_up(n, 8) values, zero after n.
// Uses AVX2 when the CPU has it; every path gives the same bits.
void weiszfeld(const double* px, const double* py, const double* ps, int64_t n, double m[3]);

}  // namespace flow
}  // namespace vsum
