// Box geometry shared by the Proposal Flow matchers (internal to csrc/flow).
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "flow/match.h"

namespace vsum {
namespace flow {

// Largest box side for which the aspect gate runs in float32: products of two
// sides stay below 2^24, so they, their doubles and the comparisons are exact.
constexpr int64_t kFloatGateMaxSide = int64_t{1} << 12;

// Per box (structure of arrays): width w = x2 - x1 + 1 and height h (int64,
// and as float32 in wf / hf, exact when max_side <= kFloatGateMaxSide),
// centre (xc, yc) = ((x1 + x2) / 2, (y1 + y2) / 2) and area = w * h (double).
struct Geometry {
  std::vector<int64_t> w, h;
  std::vector<float> wf, hf;
  std::vector<double> xc, yc, area;
  int64_t max_side = 0;
  explicit Geometry(const BoxesView& b) {
    const auto n = static_cast<size_t>(b.rows);
    w.resize(n), h.resize(n), wf.resize(n), hf.resize(n), xc.resize(n), yc.resize(n), area.resize(n);
    for (size_t i = 0; i < n; ++i) {
      const int32_t* r = b.row(static_cast<int64_t>(i));
      w[i] = int64_t{r[2]} - r[0] + 1;
      h[i] = int64_t{r[3]} - r[1] + 1;
      wf[i] = static_cast<float>(w[i]);
      hf[i] = static_cast<float>(h[i]);
      max_side = std::max({max_side, w[i], h[i]});
      xc[i] = (static_cast<double>(r[0]) + static_cast<double>(r[2])) * 0.5;
      yc[i] = (static_cast<double>(r[1]) + static_cast<double>(r[3])) * 0.5;
      area[i] = static_cast<double>(w[i]) * static_cast<double>(h[i]);
    }
  }
};

}  // namespace flow
}  // namespace vsum
