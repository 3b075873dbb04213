#include "engine/data/synth/synth.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <optional>
#include <thread>

#include "engine/core/error.h"
#include "engine/data/manifest.h"
#include "engine/data/rng.h"

namespace fs = std::filesystem;

namespace pneuma::data::synth {

namespace {

constexpr float kTwoPi = 6.2831853f;

inline float smoothstep(float e0, float e1, float x) {
  float t = (x - e0) / (e1 - e0);
  t = t < 0.0f ? 0.0f : (t > 1.0f ? 1.0f : t);
  return t * t * (3.0f - 2.0f * t);
}

// Smooth value noise on a (cells + 1)^2 lattice over the image, read one image row at a
// time: the row of lattice values is interpolated once per row, leaving one lerp per
// pixel. Textures use plain image coordinates (they need not follow the pose).
class ValueNoise {
 public:
  ValueNoise(int cells, uint64_t seed, int64_t size)
      : cells_(cells), lattice_(static_cast<size_t>((cells + 1) * (cells + 1))), size_(size) {
    for (size_t i = 0; i < lattice_.size(); ++i) lattice_[i] = static_cast<float>(random::uniform(seed, i));
    ix_.resize(static_cast<size_t>(size));
    fx_.resize(static_cast<size_t>(size));
    for (int64_t x = 0; x < size; ++x) {
      const float p = (x + 0.5f) / static_cast<float>(size) * static_cast<float>(cells);
      ix_[x] = std::min(static_cast<int>(p), cells - 1);
      const float f = p - static_cast<float>(ix_[x]);
      fx_[x] = f * f * (3 - 2 * f);
    }
  }
  void row(int64_t y, std::vector<float>& out) const {
    const float p = (y + 0.5f) / static_cast<float>(size_) * static_cast<float>(cells_);
    const int iy = std::min(static_cast<int>(p), cells_ - 1);
    float f = p - static_cast<float>(iy);
    f = f * f * (3 - 2 * f);
    float line[128];
    const float* r0 = lattice_.data() + iy * (cells_ + 1);
    const float* r1 = r0 + cells_ + 1;
    for (int i = 0; i <= cells_; ++i) line[i] = r0[i] + f * (r1[i] - r0[i]);
    out.resize(static_cast<size_t>(size_));
    for (int64_t x = 0; x < size_; ++x) {
      const int i = ix_[x];
      out[x] = line[i] + fx_[x] * (line[i + 1] - line[i]);
    }
  }

 private:
  int cells_;
  std::vector<float> lattice_;
  int64_t size_;
  std::vector<int> ix_;
  std::vector<float> fx_;
};

inline float ridge(float n) { return 1.0f - std::fabs(2.0f * n - 1.0f); }

struct Lung {
  float cx = 0, side = 1;  // side: -1 image left (patient's right), +1 image right
  float top = 0, bottom = 0, w_med = 0, w_lat = 0, dome = 0;
  float inv_h = 0, inv_med = 0, inv_lat = 0;

  void finish() {
    inv_h = 1.0f / (bottom - top);
    inv_med = 1.0f / w_med;
    inv_lat = 1.0f / w_lat;
  }

  // Signed distance-like margin (> 0 inside), in normalized units.
  float margin(float u, float v) const {
    const float t = (v - top) * inv_h;
    if (t <= 0.0f) return -1.0f;
    const float q = (u - cx) * side;  // > 0 toward the ribs
    const float tl = std::min(t * (1.0f / 0.7f), 1.0f), tm = std::min(t * (1.0f / 0.35f), 1.0f);
    // A rounded apex, the widest part low down, the costophrenic angle at `bottom`.
    const float wl = w_lat * std::sqrt(tl * (2.0f - tl)), wm = w_med * std::sqrt(tm * (2.0f - tm));
    const float qn = q > 0 ? std::min(q * inv_lat, 1.0f) : std::max(q * inv_med, -1.0f);
    const float diaphragm = bottom - dome * (1.0f - qn * qn);
    return std::min(std::min(q + wm, wl - q), diaphragm - v);
  }
};

struct Anatomy {
  float cx = 0.5f;
  float body_w = 0, neck_w = 0;
  float medial = 0, lung_w = 0, lung_top = 0, lung_h = 0;
  Lung lungs[2];
  float heart_x = 0, heart_y = 0, heart_rx = 0, heart_ry = 0;
  float spine_w = 0, vertebra = 0;
  float rib_y0 = 0, rib_sp = 0, rib_grow = 0, rib_slope = 0, rib_curv = 0, rib_wf = 0;
  int ribs = 0;
  float ant_y0 = 0, ant_sp = 0, ant_slope = 0;
  float clav_y = 0;
  float thymus = 0;   // pediatric upper mediastinum ("sail")
  float breasts = 0;  // adult breast shadows
  float tissue = 0, air = 0, bone = 0, spine_d = 0, heart_d = 0, vessels = 0;
  float tone_k = 0, tone_lo = 0, tone_hi = 0, gamma = 1, noise = 0;
  float hilum_y = 0;
};

float uni(Rng& r, double lo, double hi) { return static_cast<float>(r.uniform(lo, hi)); }

Anatomy sample_anatomy(Domain domain, Rng& r) {
  Anatomy a;
  const bool ped = domain == Domain::Pediatric;
  a.cx = 0.5f + uni(r, -0.015, 0.015);
  // Children: a smaller, rounder chest in the frame (neck and abdomen show), lungs
  // about 1.6x as tall as wide; adults: the chest fills the frame, lungs ~2.2x.
  a.medial = ped ? uni(r, 0.045, 0.055) : uni(r, 0.04, 0.05);
  a.lung_w = ped ? uni(r, 0.24, 0.29) : uni(r, 0.28, 0.32);
  a.lung_h = a.lung_w * (ped ? uni(r, 1.5, 1.75) : uni(r, 2.05, 2.35));
  a.lung_top = ped ? uni(r, 0.17, 0.23) : uni(r, 0.07, 0.11);
  const float outer = a.medial + a.lung_w;
  a.body_w = outer + (ped ? uni(r, 0.1, 0.14) : uni(r, 0.07, 0.1));
  a.neck_w = ped ? uni(r, 0.13, 0.16) : uni(r, 0.15, 0.18);
  const float dome = a.lung_h * (ped ? uni(r, 0.13, 0.18) : uni(r, 0.09, 0.13));
  for (int s = 0; s < 2; ++s) {
    Lung& l = a.lungs[s];
    l.side = s == 0 ? -1.0f : 1.0f;
    l.w_med = a.lung_w * 0.4f;
    l.w_lat = a.lung_w * 0.6f;
    l.cx = a.cx + l.side * (a.medial + l.w_med);
    l.top = a.lung_top + uni(r, -0.01, 0.01);
    // The right hemidiaphragm (image left) sits higher over the liver.
    l.bottom = a.lung_top + a.lung_h - (s == 0 ? a.lung_h * uni(r, 0.02, 0.06) : 0.0f);
    l.dome = dome;
    l.finish();
  }
  const float ctr = ped ? uni(r, 0.5, 0.6) : uni(r, 0.42, 0.5);  // cardiothoracic ratio
  a.heart_rx = ctr * outer;
  a.heart_ry = a.heart_rx * uni(r, 0.8, 0.95);
  a.heart_x = a.cx + a.heart_rx * uni(r, 0.3, 0.45);
  a.heart_y = a.lungs[1].bottom - a.heart_ry * uni(r, 0.5, 0.7);
  a.spine_w = a.medial * uni(r, 0.55, 0.7);
  a.vertebra = a.lung_h / (ped ? uni(r, 7.5, 9) : uni(r, 9, 11));
  a.ribs = ped ? 9 : 11;
  a.rib_grow = uni(r, 0.03, 0.06);  // lower ribs lie further apart
  const float n = static_cast<float>(a.ribs) - 1.0f;
  a.rib_sp = a.lung_h * uni(r, 0.95, 1.05) / (n + a.rib_grow * n * n);
  a.rib_y0 = a.lung_top - uni(r, 0.3, 0.7) * a.rib_sp;
  a.rib_slope = ped ? uni(r, -0.15, 0.05) : uni(r, 0.05, 0.25);
  a.rib_curv = ped ? uni(r, 0.6, 1.0) : uni(r, 1.0, 1.5);
  a.rib_wf = ped ? uni(r, 0.33, 0.42) : uni(r, 0.4, 0.5);
  a.ant_sp = a.rib_sp * 1.25f;
  a.ant_y0 = a.lung_top + a.rib_sp * 1.2f;
  a.ant_slope = uni(r, 0.45, 0.75);
  a.clav_y = a.lung_top + uni(r, -0.005, 0.02);
  a.thymus = ped ? uni(r, 0.04, 0.14) : 0.0f;
  a.breasts = !ped && r.bernoulli(0.5) ? uni(r, 0.06, 0.14) : 0.0f;
  a.tissue = uni(r, 0.8, 0.95);
  a.air = ped ? uni(r, 0.42, 0.52) : uni(r, 0.5, 0.6);
  a.bone = ped ? uni(r, 0.12, 0.17) : uni(r, 0.13, 0.19);
  a.spine_d = uni(r, 0.25, 0.35);
  a.heart_d = uni(r, 0.06, 0.12);  // the heart shows mostly as the lung it displaces
  a.vessels = ped ? uni(r, 0.09, 0.14) : uni(r, 0.11, 0.17);
  a.tone_k = ped ? uni(r, 1.3, 1.7) : uni(r, 2.0, 2.6);
  a.tone_lo = ped ? uni(r, 0.08, 0.14) : uni(r, 0.01, 0.05);
  a.tone_hi = ped ? uni(r, 0.85, 0.95) : uni(r, 0.95, 1.0);
  a.gamma = ped ? uni(r, 0.8, 0.95) : uni(r, 1.05, 1.25);
  a.noise = ped ? uni(r, 0.03, 0.05) : uni(r, 0.012, 0.022);
  a.hilum_y = a.lung_top + a.lung_h * 0.42f;
  return a;
}

struct Blob {  // an elliptic opacity, optionally cut by a fissure line
  float x = 0, y = 0, rx = 1, ry = 1, density = 0;
  float fissure_y = 0, fissure_slope = 0, fissure_sign = 0;  // sign 0: no fissure
  float inv_rx = 1, inv_ry = 1;
  void finish() {
    inv_rx = 1.0f / rx;
    inv_ry = 1.0f / ry;
  }
};

}  // namespace

Domain parse_domain(const std::string& name) {
  if (name == "pediatric") return Domain::Pediatric;
  if (name == "adult") return Domain::Adult;
  PNEUMA_FAIL("synth: unknown domain '", name, "' (expected pediatric or adult)");
}

std::string domain_name(Domain d) { return d == Domain::Pediatric ? "pediatric" : "adult"; }

std::string finding_name(Finding f) {
  switch (f) {
    case Finding::Normal: return "normal";
    case Finding::Bacterial: return "bacterial";
    case Finding::Viral: return "viral";
  }
  return "?";
}

Rendered render(const Case& c, int64_t size) {
  PNEUMA_CHECK(size >= 16 && size <= 4096, "synth: size must be in [16, 4096], got ", size);
  Rng pr(c.patient_seed);
  const Anatomy a = sample_anatomy(c.domain, pr);
  const bool ped = c.domain == Domain::Pediatric;
  Rng ir(c.image_seed);

  // Pose of this image: tilt, shift, scale about the image centre.
  const float tilt = uni(ir, -1, 1) * (ped ? 5.0f : 2.0f) * 3.14159265f / 180.0f;
  const float shift_x = uni(ir, -1, 1) * (ped ? 0.03f : 0.015f), shift_y = uni(ir, -1, 1) * (ped ? 0.03f : 0.015f);
  const float zoom = uni(ir, 0.96, 1.04);
  const float exposure = uni(ir, 0.9, 1.1);
  const float noise_sigma = a.noise * uni(ir, 0.85, 1.15);
  const float ct = std::cos(tilt) / zoom, st = std::sin(tilt) / zoom;
  const uint64_t low_seed = ir.bits(), mid_seed = ir.bits(), high_seed = ir.bits(), patch_seed = ir.bits();
  const uint64_t grain = ir.bits();
  // Separate streams, so that the same image seed with another finding differs only in
  // the opacity: everything outside the lungs stays identical.
  Rng orng(derive_seed(c.image_seed, 1)), nrng(derive_seed(c.image_seed, 2));

  // Opacities. Pneumonia severity runs from barely visible to dense.
  std::vector<Blob> blobs;
  float viral = 0.0f;
  const float severity = 0.15f + 0.85f * static_cast<float>(std::pow(orng.uniform(), 0.9));
  if (c.finding == Finding::Bacterial) {
    const int count = orng.bernoulli(0.2) ? 2 : 1;
    for (int k = 0; k < count; ++k) {
      const Lung& l = a.lungs[orng.integer(0, 1)];
      const int64_t lobe = orng.integer(0, l.side < 0 ? 2 : 1);  // upper, lower (, middle on the right)
      const float h = l.bottom - l.top;
      Blob b;
      const float tc = lobe == 0 ? uni(orng, 0.15, 0.38) : lobe == 1 ? uni(orng, 0.6, 0.85) : uni(orng, 0.45, 0.6);
      b.y = l.top + tc * h;
      const float lateral = lobe == 2 ? uni(orng, -0.3, 0.1) : uni(orng, -0.1, 0.4);
      b.x = l.cx + l.side * lateral * l.w_lat;
      b.rx = (l.w_med + l.w_lat) * uni(orng, 0.3, 0.5);
      b.ry = h * uni(orng, 0.12, 0.22);
      b.density = severity * uni(orng, 0.55, 0.7);
      if (lobe != 2 || orng.bernoulli(0.5)) {
        // A fissure bounds the lobe: below an upper-lobe opacity, above a lower-lobe one.
        b.fissure_sign = lobe == 1 ? -1.0f : 1.0f;
        b.fissure_y = b.y + b.fissure_sign * b.ry * uni(orng, 0.3, 0.7);
        b.fissure_slope = uni(orng, -0.4, 0.4);
      }
      blobs.push_back(b);
    }
  } else if (c.finding == Finding::Viral) {
    viral = severity * uni(orng, 0.36, 0.5);
  }
  // Look-alikes in every class: small faint nodules.
  std::vector<Blob> nodules;
  for (int64_t k = 0, n = nrng.integer(0, 2); k < n; ++k) {
    const Lung& l = a.lungs[nrng.integer(0, 1)];
    Blob b;
    b.x = l.cx + l.side * uni(nrng, -0.5, 0.8) * l.w_lat;
    b.y = l.top + (l.bottom - l.top) * uni(nrng, 0.2, 0.85);
    b.rx = b.ry = uni(nrng, 0.015, 0.04);
    b.density = uni(nrng, 0.03, 0.09);
    nodules.push_back(b);
  }
  const bool marker = !ped && nrng.bernoulli(0.5);
  const float marker_x = nrng.bernoulli(0.5) ? 0.06f : 0.9f;

  // Exposure curve as a table over the attenuation.
  constexpr int kLut = 1024;
  constexpr float kMaxD = 3.0f;
  std::array<float, kLut + 2> lut;
  for (int i = 0; i <= kLut + 1; ++i) {
    const float d = kMaxD * static_cast<float>(i) / kLut;
    const float e = 1.0f - std::exp(-a.tone_k * d * exposure);
    lut[i] = a.tone_lo + (a.tone_hi - a.tone_lo) * std::pow(e, a.gamma);
  }

  Rendered out;
  out.image = Image(1, size, size);
  out.mask = Image(1, size, size);
  const float inv = 1.0f / static_cast<float>(size);
  const float edge = std::max(1.2f * inv, 0.004f);
  const float inv_heart_rx = 1.0f / a.heart_rx, inv_heart_ry = 1.0f / a.heart_ry, inv_rib_sp = 1.0f / a.rib_sp;
  const float inv_spine_w = 1.0f / a.spine_w, inv_vertebra = 1.0f / a.vertebra, inv_lung_h = 1.0f / a.lung_h;
  for (Blob& b : blobs) b.finish();
  for (Blob& b : nodules) b.finish();
  const float hilum_x[2] = {a.cx - a.medial - a.lung_w * 0.22f, a.cx + a.medial + a.lung_w * 0.22f};
  const float rib_outer = a.medial + a.lung_w + 0.02f;
  const float shoulder_lo = a.lung_top - 0.2f, shoulder_hi = a.lung_top + 0.06f;
  const float rib_floor = a.lungs[1].bottom;

  const ValueNoise mid(22, mid_seed, size), high(44, high_seed, size);
  std::optional<ValueNoise> low, patches;
  if (!blobs.empty()) low.emplace(5, low_seed, size);
  if (viral > 0) patches.emplace(7, patch_seed, size);
  std::vector<float> mid_row, high_row, low_row, patch_row;

  for (int64_t y = 0; y < size; ++y) {
    mid.row(y, mid_row);
    high.row(y, high_row);
    if (low) low->row(y, low_row);
    if (patches) patches->row(y, patch_row);
    for (int64_t x = 0; x < size; ++x) {
      const float px = (x + 0.5f) * inv - 0.5f - shift_x, py = (y + 0.5f) * inv - 0.5f - shift_y;
      const float u = 0.5f + ct * px + st * py, v = 0.5f - st * px + ct * py;  // anatomy coordinates
      const float dx = u - a.cx, q = std::fabs(dx);
      // body: a cylinder-like thickness, narrowing above the shoulders to the neck
      const float half_w = a.neck_w + (a.body_w - a.neck_w) * std::sqrt(smoothstep(shoulder_lo, shoulder_hi, v));
      const float bx = dx / half_w;  // one division per pixel; the rest use reciprocals
      const float body = bx * bx < 1.0f ? std::sqrt(1.0f - bx * bx) : 0.0f;
      float d = a.tissue * body, mask = 0.0f;
      if (body > 0.0f) {
        const int s = dx < 0 ? 0 : 1;
        float field = smoothstep(-edge, edge, a.lungs[s].margin(u, v));
        const float hx = (u - a.heart_x) * inv_heart_rx, hy = (v - a.heart_y) * inv_heart_ry;
        const float rh = hx * hx + hy * hy;
        if (rh < 1.0f) d += a.heart_d * std::sqrt(1.0f - rh);
        if (rh < 1.06f) field *= smoothstep(0.92f, 1.06f, rh);
        mask = field;
        // ribs: posterior ones arching down laterally, fainter anterior ones falling medially
        float bone = 0.0f;
        if (q > a.spine_w * 0.8f && q < rib_outer) {
          // the ribs fade at the chest wall, behind the spine and below the diaphragm
          const float fade = smoothstep(rib_outer, rib_outer - 0.05f, q) * smoothstep(a.spine_w * 0.8f, a.spine_w * 1.6f, q) *
                             smoothstep(rib_floor + 0.05f, rib_floor - 0.02f, v);
          const float yr = (v - (a.rib_y0 + a.rib_slope * q + a.rib_curv * q * q)) * inv_rib_sp;
          if (yr >= 0.0f) {
            // rib k starts at k + grow k^2 (in spacings)
            const float kc = a.rib_grow > 0 ? (std::sqrt(1.0f + 4.0f * a.rib_grow * yr) - 1.0f) / (2.0f * a.rib_grow) : yr;
            const float k = std::floor(kc);
            if (k < static_cast<float>(a.ribs)) {
              const float f = kc - k;
              const float band = smoothstep(0.0f, 0.1f, f) * (1.0f - smoothstep(a.rib_wf - 0.1f, a.rib_wf, f));
              const float cortex = 1.0f + 0.6f * (smoothstep(0.0f, 0.06f, f) - smoothstep(0.06f, 0.16f, f)) +
                                   0.4f * smoothstep(a.rib_wf - 0.12f, a.rib_wf - 0.04f, f);
              bone += band * cortex;
            }
          }
          if (q > 0.07f) {
            const float ya = (v - (a.ant_y0 - a.ant_slope * (q - 0.07f))) / a.ant_sp;
            const float ka = std::floor(ya);
            if (ka >= 0 && ka < static_cast<float>(a.ribs - 4)) {
              const float f = ya - ka;
              bone += 0.4f * smoothstep(0.0f, 0.08f, f) * (1.0f - smoothstep(0.22f, 0.32f, f));
            }
          }
          bone *= fade;
        }
        if (q > 0.015f && q < a.medial + a.lung_w * 0.75f) {  // clavicles
          const float cy = a.clav_y - 0.25f * (q - 0.02f) + 0.9f * (q - 0.02f) * (q - 0.1f);
          const float t = std::fabs(v - cy);
          if (t < 0.015f) bone += 1.3f * (1.0f - t * (1.0f / 0.015f));
        }
        d += a.bone * bone;
        if (q < a.spine_w) {
          const float w = q * inv_spine_w;
          const float vertebra = 0.85f + 0.15f * std::cos(kTwoPi * (v - a.lung_top) * inv_vertebra);
          d += a.spine_d * std::sqrt(1.0f - w * w) * vertebra;
        }
        if (q < 0.016f && v < a.hilum_y - 0.04f) d -= 0.18f * (1.0f - q * (1.0f / 0.016f));  // trachea
        if (a.thymus > 0) {
          const float tx = dx / (a.medial * 2.4f), ty = (v - a.lung_top - a.lung_h * 0.2f) / (a.lung_h * 0.2f);
          const float rt = tx * tx + ty * ty;
          if (rt < 1.0f) d += a.thymus * (1.0f - rt);
        }
        if (a.breasts > 0) {
          const float cx = a.cx + (dx < 0 ? -1.0f : 1.0f) * (a.medial + a.lung_w * 0.75f);
          const float ex = (u - cx) / 0.14f, ey = (v - (a.lung_top + a.lung_h * 0.88f)) / 0.1f;
          const float re = ex * ex + ey * ey;
          if (re < 1.2f) d += a.breasts * smoothstep(1.2f, 0.5f, re) * (ey > -0.3f ? 1.0f : smoothstep(-1.0f, -0.3f, ey));
        }
        if (field > 0.0f) {
          // air, vascular markings fanning out of the hila, opacities
          const float hdx = u - hilum_x[s], hdy = v - a.hilum_y;
          const float hilar = 1.0f / (1.0f + (hdx * hdx + hdy * hdy) * 60.0f);
          const float v1 = ridge(mid_row[x]), v2 = ridge(high_row[x]);
          const float v1c = v1 * v1 * v1, v2s = v2 * v2;
          float lung = -a.air + a.vessels * (0.75f * v1c + 0.25f * v2s * v2s) * (0.3f + 1.2f * hilar);
          float opacity = 0.0f;
          for (const Blob& b : blobs) {
            const float ox = (u - b.x) * b.inv_rx, oy = (v - b.y) * b.inv_ry;
            float r = ox * ox + oy * oy;
            if (r > 2.0f) continue;
            r *= 0.75f + 0.5f * low_row[x];
            float o = b.density * (1.0f - smoothstep(0.55f, 1.0f, r));
            if (b.fissure_sign != 0.0f) {
              const float fy = b.fissure_y + b.fissure_slope * (u - b.x);
              o *= smoothstep(-edge, edge, b.fissure_sign * (fy - v));
            }
            const float b2 = v2s * v2s;
            o *= 1.0f - 0.45f * b2 * b2;  // air bronchograms
            opacity += o;
          }
          if (viral > 0.0f) {
            const float t = (v - a.lung_top) * inv_lung_h;
            const float zone = 0.45f + 0.55f * std::max(std::min(hilar * 2.0f, 1.0f), smoothstep(0.3f, 0.9f, t));
            const float patch = smoothstep(0.3f, 0.62f, patch_row[x]);
            opacity += viral * zone * (0.15f + patch * (0.45f + 0.8f * v2s * v2));
          }
          for (const Blob& b : nodules) {
            const float ox = (u - b.x) * b.inv_rx, oy = (v - b.y) * b.inv_ry;
            const float r = ox * ox + oy * oy;
            if (r < 1.0f) opacity += b.density * (1.0f - r);
          }
          d += field * (lung + opacity);
        }
      }
      if (marker) {  // a burned-in side marker ("L")
        const float mx = (x + 0.5f) * inv - marker_x, my = (y + 0.5f) * inv - 0.05f;
        if (mx >= 0 && my >= 0 && my < 0.05f && (mx < 0.012f || (mx < 0.035f && my >= 0.038f))) d = 2.5f;
      }
      const float di = std::clamp(d, 0.0f, kMaxD) * (kLut / kMaxD);
      const int li = static_cast<int>(di);
      float value = lut[li] + (di - static_cast<float>(li)) * (lut[li + 1] - lut[li]);
      // quantum noise: an Irwin-Hall normal from one 64-bit draw, larger where brighter
      const uint64_t bits = random::bits(grain, static_cast<uint64_t>(y * size + x));
      const float g = (static_cast<float>(bits & 0xFFFF) + static_cast<float>((bits >> 16) & 0xFFFF) +
                       static_cast<float>((bits >> 32) & 0xFFFF) + static_cast<float>(bits >> 48)) *
                          (1.0f / 65536.0f) - 2.0f;
      value += noise_sigma * 1.7320508f * g * (0.6f + 0.4f * value);
      out.image.values[y * size + x] = std::clamp(value, 0.0f, 1.0f);
      out.mask.values[y * size + x] = mask > 0.5f ? 1.0f : 0.0f;
    }
  }
  return out;
}

std::vector<PlannedImage> plan(const PlanOptions& o) {
  PNEUMA_CHECK(o.n >= 1, "synth: n must be >= 1, got ", o.n);
  PNEUMA_CHECK(!o.domains.empty(), "synth: no domains");
  PNEUMA_CHECK(o.normal_fraction >= 0 && o.normal_fraction <= 1, "synth: normal fraction must be in [0, 1], got ",
               o.normal_fraction);
  PNEUMA_CHECK(o.viral_fraction >= 0 && o.viral_fraction <= 1, "synth: viral fraction must be in [0, 1], got ",
               o.viral_fraction);
  std::vector<PlannedImage> out;
  out.reserve(static_cast<size_t>(o.n));
  for (int64_t p = 0; static_cast<int64_t>(out.size()) < o.n; ++p) {
    const uint64_t patient_seed = derive_seed(o.seed, static_cast<uint64_t>(p));
    Rng r(derive_seed(patient_seed, 0x504c414eULL));
    Case c;
    c.domain = o.domains[p % o.domains.size()];
    c.patient_seed = patient_seed;
    c.finding = r.bernoulli(o.normal_fraction) ? Finding::Normal
                : r.bernoulli(o.viral_fraction) ? Finding::Viral
                                                : Finding::Bacterial;
    const double u = r.uniform();
    const int64_t views = c.finding == Finding::Normal ? (u < 0.85 ? 1 : 2) : (u < 0.6 ? 1 : u < 0.85 ? 2 : 3);
    const std::string prefix = c.domain == Domain::Pediatric ? "ped" : "adult";
    char id[64];
    std::snprintf(id, sizeof id, "%s-%05lld", prefix.c_str(), static_cast<long long>(p));
    for (int64_t k = 0; k < views && static_cast<int64_t>(out.size()) < o.n; ++k) {
      PlannedImage img;
      img.c = c;
      img.c.image_seed = derive_seed(patient_seed, static_cast<uint64_t>(k + 1));
      img.patient = p;
      img.view = k;
      img.patient_id = id;
      char stem[96];
      if (c.finding == Finding::Normal)
        std::snprintf(stem, sizeof stem, "%s-IM-%05lld-%04lld", prefix.c_str(), static_cast<long long>(p),
                      static_cast<long long>(k + 1));
      else
        std::snprintf(stem, sizeof stem, "%s-person%lld_%s_%lld", prefix.c_str(), static_cast<long long>(p),
                      c.finding == Finding::Bacterial ? "bacteria" : "virus", static_cast<long long>(k + 1));
      img.stem = stem;
      out.push_back(std::move(img));
    }
  }
  return out;
}

GenerateSummary generate(const GenerateOptions& o) {
  PNEUMA_CHECK(!o.out.empty(), "synth: no output folder");
  PNEUMA_CHECK(o.threads >= 1 && o.threads <= 256, "synth: threads must be in [1, 256], got ", o.threads);
  PNEUMA_CHECK(!o.split.empty() && o.split.find('/') == std::string::npos, "synth: bad split name '", o.split, "'");
  const auto start = std::chrono::steady_clock::now();
  const std::vector<PlannedImage> images = plan(o);
  const fs::path root(o.out);
  std::error_code ec;
  for (const char* sub : {"NORMAL", "PNEUMONIA"}) {
    fs::create_directories(root / o.split / sub, ec);
    PNEUMA_CHECK(!ec, "synth: cannot create '", (root / o.split / sub).string(), "': ", ec.message());
  }
  fs::create_directories(root / "masks", ec);
  PNEUMA_CHECK(!ec, "synth: cannot create '", (root / "masks").string(), "': ", ec.message());

  Manifest m;
  m.has_domain = m.has_subtype = m.has_patient = m.has_mask = true;
  m.records.resize(images.size());
  std::atomic<int64_t> next{0}, done{0};
  std::mutex error_mutex;
  std::exception_ptr error;
  auto work = [&] {
    for (int64_t i; (i = next.fetch_add(1)) < static_cast<int64_t>(images.size());) {
      try {
        const PlannedImage& p = images[i];
        const Rendered r = render(p.c, o.size);
        const bool normal = p.c.finding == Finding::Normal;
        const fs::path file = root / o.split / (normal ? "NORMAL" : "PNEUMONIA") / (p.stem + ".jpeg");
        const fs::path mask = root / "masks" / (p.stem + ".png");
        write_jpeg(r.image, file.string(), o.quality);
        write_png(r.mask, mask.string(), 1);
        Record& rec = m.records[i];
        rec.file = file.string();
        rec.path = (fs::path(o.split) / (normal ? "NORMAL" : "PNEUMONIA") / (p.stem + ".jpeg")).string();
        rec.mask = mask.string();
        rec.label = normal ? 0 : 1;
        rec.domain = domain_name(p.c.domain);
        rec.subtype = finding_name(p.c.finding);
        rec.patient = p.patient_id;
        const int64_t finished = done.fetch_add(1) + 1;
        if (o.progress && (finished % 500 == 0 || finished == static_cast<int64_t>(images.size())))
          std::fprintf(stderr, "\rsynth: %lld/%zu images", static_cast<long long>(finished), images.size());
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (!error) error = std::current_exception();
        next.store(static_cast<int64_t>(images.size()));
      }
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < o.threads; ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  if (o.progress) std::fprintf(stderr, "\n");
  if (error) std::rethrow_exception(error);

  GenerateSummary summary;
  summary.manifest = (root / (o.split + ".csv")).string();
  write_manifest(m, summary.manifest);
  summary.images = static_cast<int64_t>(images.size());
  summary.patients = images.empty() ? 0 : images.back().patient + 1;
  for (const PlannedImage& p : images) ++summary.per_finding[static_cast<size_t>(p.c.finding)];
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return summary;
}

}  // namespace pneuma::data::synth
