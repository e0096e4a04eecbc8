// Selective search per-image features (see ss_features.h).
#include "proposals/ss_features.h"

#include <algorithm>
#include <cctype>
#include <cmath>

#include "common/errors.h"

namespace vsum {
namespace proposals {
namespace {

void rgb_to_hsv(float r, float g, float b, float* out) {  // r, g, b in [0, 1]
  const float mx = std::max(r, std::max(g, b)), mn = std::min(r, std::min(g, b));
  const float delta = mx - mn;
  float h = 0.0f;
  if (delta > 0.0f) {
    if (mx == r) {
      h = 60.0f * (g - b) / delta;
      if (h < 0.0f) h += 360.0f;
    } else if (mx == g) {
      h = 60.0f * (b - r) / delta + 120.0f;
    } else {
      h = 60.0f * (r - g) / delta + 240.0f;
    }
  }
  out[0] = std::min(h, 359.999f) * (255.0f / 360.0f);
  out[1] = mx > 0.0f ? 255.0f * delta / mx : 0.0f;
  out[2] = 255.0f * mx;
}

float lab_f(double t) {
  constexpr double d = 6.0 / 29.0;
  return static_cast<float>(t > d * d * d ? std::cbrt(t) : t / (3.0 * d * d) + 4.0 / 29.0);
}

float clamp255(float v) { return std::min(255.0f, std::max(0.0f, v)); }

void convert(const uint8_t* rgb, int64_t N, ColourSpace cs, float* out) {
  double linear[256];
  for (int i = 0; i < 256; ++i) {
    const double c = i / 255.0;
    linear[i] = c <= 0.04045 ? c / 12.92 : std::pow((c + 0.055) / 1.055, 2.4);
  }
  for (int64_t p = 0; p < N; ++p) {
    const uint8_t R = rgb[3 * p], G = rgb[3 * p + 1], B = rgb[3 * p + 2];
    switch (cs) {
      case ColourSpace::HSV:
        rgb_to_hsv(R / 255.0f, G / 255.0f, B / 255.0f, out + 3 * p);
        break;
      case ColourSpace::H: {
        float hsv[3];
        rgb_to_hsv(R / 255.0f, G / 255.0f, B / 255.0f, hsv);
        out[p] = hsv[0];
        break;
      }
      case ColourSpace::Lab: {
        const double r = linear[R], g = linear[G], b = linear[B];
        const double X = (0.4124564 * r + 0.3575761 * g + 0.1804375 * b) / 0.95047;
        const double Y = 0.2126729 * r + 0.7151522 * g + 0.0721750 * b;
        const double Z = (0.0193339 * r + 0.1191920 * g + 0.9503041 * b) / 1.08883;
        const float fx = lab_f(X), fy = lab_f(Y), fz = lab_f(Z);
        out[3 * p] = clamp255((116.0f * fy - 16.0f) * (255.0f / 100.0f));
        out[3 * p + 1] = clamp255(500.0f * (fx - fy) + 128.0f);
        out[3 * p + 2] = clamp255(200.0f * (fy - fz) + 128.0f);
        break;
      }
      case ColourSpace::rgI: {
        const float s = static_cast<float>(R) + static_cast<float>(G) + static_cast<float>(B);
        out[3 * p] = s > 0 ? 255.0f * R / s : 85.0f;
        out[3 * p + 1] = s > 0 ? 255.0f * G / s : 85.0f;
        out[3 * p + 2] = s / 3.0f;
        break;
      }
      case ColourSpace::I:
        out[p] = 0.299f * R + 0.587f * G + 0.114f * B;
        break;
    }
  }
}

// Gaussian derivative responses of one plane (stride C): gx, gy (H*W).
void gaussian_gradients(const float* src, int64_t H, int64_t W, int64_t C, std::vector<float>& gx,
                        std::vector<float>& gy) {
  constexpr int r = 4;
  float g[2 * r + 1], d[2 * r + 1];
  float gsum = 0.0f, dnorm = 0.0f;
  for (int i = -r; i <= r; ++i) {
    g[i + r] = std::exp(-0.5f * static_cast<float>(i * i));
    gsum += g[i + r];
  }
  for (int i = -r; i <= r; ++i) {
    g[i + r] /= gsum;
    d[i + r] = -static_cast<float>(i) * g[i + r];  // derivative of the Gaussian (sigma 1)
    dnorm += -static_cast<float>(i) * d[i + r];     // response to the ramp f(x) = x
  }
  for (auto& v : d) v /= dnorm;
  const int64_t N = H * W;
  std::vector<float> sx(static_cast<size_t>(N)), dx(static_cast<size_t>(N));  // along x: smooth, derivative
  for (int64_t y = 0; y < H; ++y) {
    for (int64_t x = 0; x < W; ++x) {
      float as = 0.0f, ad = 0.0f;
      for (int i = -r; i <= r; ++i) {
        const int64_t xx = std::min<int64_t>(std::max<int64_t>(x + i, 0), W - 1);
        const float v = src[(y * W + xx) * C];
        as += g[i + r] * v;
        ad += d[i + r] * v;
      }
      sx[y * W + x] = as;
      dx[y * W + x] = ad;
    }
  }
  gx.assign(static_cast<size_t>(N), 0.0f);
  gy.assign(static_cast<size_t>(N), 0.0f);
  for (int64_t y = 0; y < H; ++y) {
    for (int i = -r; i <= r; ++i) {
      const int64_t yy = std::min<int64_t>(std::max<int64_t>(y + i, 0), H - 1);
      const float wg = g[i + r], wd = d[i + r];
      const float* a = dx.data() + yy * W;
      const float* b = sx.data() + yy * W;
      float* ox = gx.data() + y * W;
      float* oy = gy.data() + y * W;
      for (int64_t x = 0; x < W; ++x) {
        ox[x] += wg * a[x];
        oy[x] += wd * b[x];
      }
    }
  }
}

}  // namespace

ColourSpace parse_colour_space(const std::string& name) {
  std::string s;
  for (char ch : name) s += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  if (s == "hsv") return ColourSpace::HSV;
  if (s == "lab") return ColourSpace::Lab;
  if (s == "rgi") return ColourSpace::rgI;
  if (s == "h") return ColourSpace::H;
  if (s == "i") return ColourSpace::I;
  throw_value_error("unknown colour space '", name, "'; expected one of 'hsv', 'lab', 'rgi', 'h', 'i'");
}

int colour_space_channels(ColourSpace cs) { return (cs == ColourSpace::H || cs == ColourSpace::I) ? 1 : 3; }

ColourImage make_colour_image(const uint8_t* rgb, int64_t H, int64_t W, ColourSpace cs) {
  ColourImage img;
  img.H = H, img.W = W, img.C = colour_space_channels(cs);
  const int64_t N = H * W, C = img.C;
  img.pixels.resize(static_cast<size_t>(N * C));
  convert(rgb, N, cs, img.pixels.data());

  img.colour_bins.resize(static_cast<size_t>(N * C));
  for (int64_t i = 0; i < N * C; ++i) {
    const int b = static_cast<int>(img.pixels[i] * (kColourBins / 256.0f));
    img.colour_bins[i] = static_cast<uint8_t>(std::min(kColourBins - 1, std::max(0, b)));
  }

  img.texture_bins.assign(static_cast<size_t>(N * C * kTextureDirections), 0);
  std::vector<float> gx, gy, resp(static_cast<size_t>(N));
  const float c45 = static_cast<float>(std::sqrt(0.5));
  for (int64_t c = 0; c < C; ++c) {
    gaussian_gradients(img.pixels.data() + c, H, W, C, gx, gy);
    for (int dir = 0; dir < kTextureDirections; ++dir) {
      const float sign = dir < 4 ? 1.0f : -1.0f;
      float cx = 0, cy = 0;
      switch (dir % 4) {
        case 0: cx = 1, cy = 0; break;
        case 1: cx = c45, cy = c45; break;
        case 2: cx = 0, cy = 1; break;
        default: cx = -c45, cy = c45; break;
      }
      float mx = 0.0f;
      for (int64_t p = 0; p < N; ++p) {
        const float v = std::max(0.0f, sign * (cx * gx[p] + cy * gy[p]));
        resp[p] = v;
        mx = std::max(mx, v);
      }
      if (!(mx > 0.0f)) continue;  // flat: every pixel in bin 0
      const float scale = kTextureBins / mx;
      uint8_t* out = img.texture_bins.data() + c * kTextureDirections + dir;
      for (int64_t p = 0; p < N; ++p) {
        const int b = std::min(kTextureBins - 1, static_cast<int>(resp[p] * scale));
        out[p * C * kTextureDirections] = static_cast<uint8_t>(b);
      }
    }
  }
  return img;
}

RegionFeatures region_features(const ColourImage& img, const int32_t* labels, int32_t n) {
  RegionFeatures f;
  const int64_t H = img.H, W = img.W, C = img.C;
  f.n = n;
  f.colour_dim = static_cast<int>(C * kColourBins);
  f.texture_dim = static_cast<int>(C * kTextureDirections * kTextureBins);
  std::vector<double> ch(static_cast<size_t>(n) * f.colour_dim, 0.0), th(static_cast<size_t>(n) * f.texture_dim, 0.0);
  f.size.assign(static_cast<size_t>(n), 0);
  f.box.resize(static_cast<size_t>(n) * 4);
  for (int32_t i = 0; i < n; ++i) {
    f.box[4 * i] = static_cast<int32_t>(W), f.box[4 * i + 1] = static_cast<int32_t>(H);
    f.box[4 * i + 2] = -1, f.box[4 * i + 3] = -1;
  }
  const int64_t TD = C * kTextureDirections;
  for (int64_t y = 0; y < H; ++y) {
    for (int64_t x = 0; x < W; ++x) {
      const int64_t p = y * W + x;
      const int32_t l = labels[p];
      f.size[l] += 1;
      int32_t* b = f.box.data() + 4 * l;
      b[0] = std::min(b[0], static_cast<int32_t>(x)), b[1] = std::min(b[1], static_cast<int32_t>(y));
      b[2] = std::max(b[2], static_cast<int32_t>(x)), b[3] = std::max(b[3], static_cast<int32_t>(y));
      double* hc = ch.data() + static_cast<size_t>(l) * f.colour_dim;
      for (int64_t c = 0; c < C; ++c) hc[c * kColourBins + img.colour_bins[p * C + c]] += 1.0;
      double* ht = th.data() + static_cast<size_t>(l) * f.texture_dim;
      const uint8_t* tb = img.texture_bins.data() + p * TD;
      for (int64_t j = 0; j < TD; ++j) ht[j * kTextureBins + tb[j]] += 1.0;
    }
  }
  f.colour.resize(ch.size());
  f.texture.resize(th.size());
  for (int32_t i = 0; i < n; ++i) {
    // every pixel adds C colour counts and C * 8 texture counts
    const double sc = 1.0 / static_cast<double>(f.size[i] * C), st = 1.0 / static_cast<double>(f.size[i] * TD);
    for (int j = 0; j < f.colour_dim; ++j) {
      const size_t q = static_cast<size_t>(i) * f.colour_dim + j;
      f.colour[q] = static_cast<float>(ch[q] * sc);
    }
    for (int j = 0; j < f.texture_dim; ++j) {
      const size_t q = static_cast<size_t>(i) * f.texture_dim + j;
      f.texture[q] = static_cast<float>(th[q] * st);
    }
  }
  // adjacency over the same 8-neighbourhood as the segmentation graph
  const int64_t dy[4] = {0, 1, 1, -1}, dx[4] = {1, 0, 1, 1};
  for (int64_t y = 0; y < H; ++y) {
    for (int64_t x = 0; x < W; ++x) {
      const int32_t a = labels[y * W + x];
      for (int t = 0; t < 4; ++t) {
        const int64_t yy = y + dy[t], xx = x + dx[t];
        if (yy < 0 || yy >= H || xx >= W) continue;
        const int32_t b = labels[yy * W + xx];
        if (a != b) f.neighbours.emplace_back(std::min(a, b), std::max(a, b));
      }
    }
  }
  std::sort(f.neighbours.begin(), f.neighbours.end());
  f.neighbours.erase(std::unique(f.neighbours.begin(), f.neighbours.end()), f.neighbours.end());
  return f;
}

}  // namespace proposals
}  // namespace vsum
