// Selective search, per-image features: colour spaces, texture bins and the
// per-region colour/texture histograms, sizes and boxes of a segmentation.
//
// Colour spaces (computed here from 8-bit RGB; every channel is a float in
// [0, 255] so that one k works for all, as in the original):
//   HSV  hue (degrees * 255/360), saturation * 255, value = max(R, G, B);
//   Lab  CIE L*a*b* of sRGB (D65): L* * 255/100, a* + 128, b* + 128 (clamped);
//   rgI  255 R/(R+G+B), 255 G/(R+G+B) (1/3 each when R+G+B = 0), (R+G+B)/3;
//   H    the hue channel of HSV alone;
//   I    intensity 0.299 R + 0.587 G + 0.114 B.
// Colour histogram: 25 bins per channel over [0, 256) (bin = floor(v * 25 / 256)),
// concatenated over channels, L1-normalised.
// Texture: Gaussian derivatives (sigma 1, radius 4, replicated border) Gx, Gy
// of each channel; the responses in the 8 directions theta = 0, 45, ..., 315
// degrees, cos(theta) Gx + sin(theta) Gy, rectified (negative -> 0); each
// (channel, direction) image is divided by its maximum over the image and
// binned into 10 bins (bin = min(9, floor(10 * value))); histogram = 10 bins
// x 8 directions x channels, L1-normalised.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace vsum {
namespace proposals {

enum class ColourSpace { HSV, Lab, rgI, H, I };

// Parses "hsv", "lab", "rgi", "h", "i" (case-insensitive); throws ValueError.
ColourSpace parse_colour_space(const std::string& name);
int colour_space_channels(ColourSpace cs);

constexpr int kColourBins = 25;
constexpr int kTextureDirections = 8;
constexpr int kTextureBins = 10;

// An (H, W, C) float image and its texture bins (H, W, C * 8) uint8.
struct ColourImage {
  int64_t H = 0, W = 0, C = 0;
  std::vector<float> pixels;          // (H, W, C), values in [0, 255]
  std::vector<uint8_t> colour_bins;   // (H, W, C), 0..24
  std::vector<uint8_t> texture_bins;  // (H, W, C * 8), 0..9, index c * 8 + direction
};

// rgb: (H, W, 3) uint8.
ColourImage make_colour_image(const uint8_t* rgb, int64_t H, int64_t W, ColourSpace cs);

// Features of the regions of a labelling (labels 0..n-1, (H, W)).
struct RegionFeatures {
  int32_t n = 0;
  int colour_dim = 0, texture_dim = 0;
  std::vector<float> colour;     // (n, colour_dim), rows sum to 1
  std::vector<float> texture;    // (n, texture_dim), rows sum to 1
  std::vector<int64_t> size;     // (n,) pixels
  std::vector<int32_t> box;      // (n, 4) inclusive x1, y1, x2, y2
  std::vector<std::pair<int32_t, int32_t>> neighbours;  // a < b, 8-connected adjacency, sorted
};

RegionFeatures region_features(const ColourImage& img, const int32_t* labels, int32_t n);

}  // namespace proposals
}  // namespace vsum
