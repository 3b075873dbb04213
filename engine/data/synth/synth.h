#pragma once
// Synthetic CXR-like images with lung masks, in two domains, for a pipeline that must
// run end to end where no adult data and no lung masks can be downloaded.
//
// Each image is an analytic attenuation map (body, two lung fields bounded by the
// mediastinum and the diaphragm domes, heart shadow, spine, posterior and anterior
// ribs, clavicles, vascular markings) mapped through an exposure curve plus quantum
// noise. Pediatric images have a smaller, rounder thorax, a relatively larger heart,
// a wide upper mediastinum (thymus), more horizontal ribs, softer contrast and more
// noise; adult images have taller lungs, sloping ribs, breast shadows and side markers.
// Pneumonia is an opacity confined to the lungs: bacterial is a dense lobar
// consolidation with a sharp fissure border and air bronchograms, viral a bilateral
// patchy reticular (interstitial) pattern with perihilar haze. Severities reach down to
// barely visible, and normal lungs carry faint nodular look-alikes, so the task is
// learnable but not trivially separable.
//
// Every number drawn is keyed by (seed, patient, view), so the output of a seed is the
// same with any thread count.
#include <cstdint>
#include <string>
#include <vector>

#include "engine/data/image.h"

namespace pneuma::data::synth {

enum class Domain { Pediatric, Adult };
enum class Finding { Normal, Bacterial, Viral };

Domain parse_domain(const std::string& name);  // "pediatric" / "adult"; throws otherwise
std::string domain_name(Domain domain);
std::string finding_name(Finding finding);     // "normal", "bacterial", "viral"

struct Case {
  Domain domain = Domain::Pediatric;
  Finding finding = Finding::Normal;
  uint64_t patient_seed = 0;  // anatomy, shared by a patient's images
  uint64_t image_seed = 0;    // pose, exposure, noise and opacity of one image
};

struct Rendered {
  Image image;  // 1 x size x size, values in [0, 1]
  Image mask;   // 1 x size x size, 1 inside the lung fields, else 0
};

Rendered render(const Case& c, int64_t size);

struct PlanOptions {
  int64_t n = 0;
  uint64_t seed = 0;
  std::vector<Domain> domains{Domain::Pediatric, Domain::Adult};  // patients alternate between them
  double normal_fraction = 0.5;  // of patients
  double viral_fraction = 0.5;   // of pneumonia patients
};

struct PlannedImage {
  Case c;
  int64_t patient = 0, view = 0;
  std::string patient_id;  // "ped-00012"
  std::string stem;        // Kermany-style file name without extension
};

// n images: patients of 1-3 images each (normal ones mostly 1).
std::vector<PlannedImage> plan(const PlanOptions& options);

struct GenerateOptions : PlanOptions {
  std::string out;            // folder: <split>/{NORMAL,PNEUMONIA}/*.jpeg, masks/*.png, <split>.csv
  std::string split = "train";
  int64_t size = 224;
  int threads = 1;
  int quality = 90;           // JPEG quality (<= 90: stb_image_write subsamples chroma, which a gray image does not have)
  bool progress = false;      // a progress line on stderr
};

struct GenerateSummary {
  int64_t images = 0, patients = 0;
  std::vector<int64_t> per_finding{0, 0, 0};  // normal, bacterial, viral
  std::string manifest;
  double seconds = 0;
};

GenerateSummary generate(const GenerateOptions& options);

}  // namespace pneuma::data::synth
