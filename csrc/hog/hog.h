// Felzenszwalb HOG (the 31-dimensional DPM / voc-release features.cc variant)
// and per-box proposal descriptors (docs/method.md, stage 3).
//
// Conventions (shared with vsum/features.py and vsum/reference/hog.py):
//   * an image is (H, W, 3) float32, C-contiguous, channel-last, values on the
//     0-255 scale (see fhog below for what the scale changes);
//   * gradients: central differences per channel, the channel with the largest
//     squared magnitude wins (first channel on ties); pixel (y, x) is read at
//     (min(y, H - 2), min(x, W - 2)) exactly as voc-release does;
//   * orientation: theta = atan2(dy, dx) (dy down the rows) voted into the two
//     nearest of 18 contrast-sensitive bins centred at o * 20 degrees, linear
//     in angle; space: bilinear into the 4 nearest cells, cell centres at
//     (c + 0.5) * cell - 0.5;
//   * cells per side: blocks = round(side / cell) (half away from zero); the
//     output drops one border cell on each side: (max(bh - 2, 0), max(bw - 2, 0), 31);
//   * per output cell: 18 contrast-sensitive + 9 contrast-insensitive features
//     (each 0.5 * the sum of its 4 block-normalised, 0.2-truncated values) and
//     4 texture features (0.2357 * the sum over the 18 sensitive orientations
//     of each normalisation); the 32nd (truncation) feature is dropped;
//   * arithmetic (hog_cpu.cpp): the channel choice and the box resampling are
//     exactly the reference's float64 ones; orientations, magnitudes and
//     histograms are float32, block normalisation float64, so the features
//     agree with the reference to ~1e-6 relative.
//
// Kernels validate their input (std::invalid_argument) and never touch Python,
// so callers may release the GIL around them.
#pragma once

#include <cstdint>

#include "common/array_view.h"

namespace vsum {
namespace hog {

constexpr int kOrientations = 18;
constexpr int kFeatures = 31;          // 18 + 9 + 4
constexpr double kTruncation = 0.2;    // clip of block-normalised values
constexpr double kTextureScale = 0.2357;
constexpr double kEps = 1e-4;          // added to the block energy

// Descriptor geometry: box padded by one cell, resized to 80 x 80, FHOG with
// 8-pixel cells (10 x 10 blocks -> inner 8 x 8 cells), flattened (y, x, f).
constexpr int kDescCell = 8;
constexpr int kDescSide = 80;
constexpr int kDescCells = 8;
constexpr int kDescLength = kDescCells * kDescCells * kFeatures;  // 1984
constexpr int kMinImageSide = 16;  // describe() rejects smaller images

// Largest accepted cell size (keeps every intermediate in range).
constexpr int kMaxCell = 1 << 12;

// Largest accepted |pixel value|: squared gradients (<= 8 * 1e36) and the
// histograms stay finite in the float32 intermediates.  Far above the 0-255
// (or 0-1) scale the features are meant for.
constexpr float kMaxValue = 1e18f;

// An (H, W, 3) float32 channel-last image.
struct Image {
  const float* data = nullptr;
  int64_t height = 0;
  int64_t width = 0;
};

using BoxesView = View2D<const int32_t>;  // (n, 4) inclusive x1, y1, x2, y2

// Number of cells of the FHOG output: rows, cols (each max(round(side / cell) - 2, 0)).
void fhog_shape(int64_t height, int64_t width, int cell, int64_t* out_rows, int64_t* out_cols);

// out: (out_rows, out_cols, 31) float32 as given by fhog_shape.  Parallel over
// rows with vsum::parallel_for (serial when called from a worker).  Throws for
// values that are not finite or exceed kMaxValue in magnitude.
void fhog(const Image& image, int cell, float* out);

// out: (n, 1984) float32 descriptors of the boxes, parallel over boxes.
// Throws for images smaller than 16 x 16, for invalid / degenerate boxes and
// for image values as fhog does.
void describe(const Image& image, const BoxesView& boxes, float* out);

}  // namespace hog
}  // namespace vsum
