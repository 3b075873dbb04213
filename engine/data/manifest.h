#pragma once
// Image lists: CSV manifests (header; path,label plus optional domain, subtype, patient,
// fold, mask and any other columns, kept as they are; paths relative to the CSV file)
// and the Kaggle/Kermany folder layout (<root>/NORMAL, <root>/PNEUMONIA). Before
// training, scan_files opens and decodes every image so that all bad files are reported
// at once, by path and manifest line, instead of one crash at a time mid-epoch.
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace pneuma::data {

struct Record {
  std::string path;     // as written in the manifest (relative to it), or relative to the scanned folder
  std::string file;     // the path to open
  int64_t label = 0;    // 0 = normal, 1 = pneumonia for the binary task; any class index >= 0
  std::string domain;   // "pediatric", "adult", ... ("" without a domain column)
  std::string subtype;  // "normal", "bacterial", "viral", ...
  std::string patient;  // records of one patient never straddle a split
  int64_t fold = -1;    // -1: not assigned
  std::string mask;     // lung mask file to open ("" without a mask column)
  int64_t line = 0;     // 1-based manifest line (0: not from a manifest)
  std::vector<std::string> extra;  // values of Manifest::extra_columns
};

// One bad row or file: "<file>: line <n>: <message>".
struct Problem {
  std::string file;
  int64_t line = 0;
  std::string message;
  std::string str() const;
};

struct Manifest {
  std::string source;  // the CSV file or scanned folder
  std::vector<Record> records;
  bool has_domain = false, has_subtype = false, has_patient = false, has_fold = false, has_mask = false;
  std::vector<std::string> extra_columns;
  std::vector<Problem> problems;  // rows rejected while reading (read_manifest with skip_bad)

  int64_t size() const { return static_cast<int64_t>(records.size()); }
  std::vector<int64_t> labels() const;
  int64_t num_classes() const;  // largest label + 1
  std::vector<std::string> domain_names() const;  // sorted distinct values
  std::vector<int64_t> domain_ids() const;         // per record, index into domain_names()
  // The patient of each record; a record without one is its own patient (its path).
  std::vector<std::string> patient_ids() const;
  std::vector<int64_t> class_counts() const;
  Manifest subset(std::span<const int64_t> indices) const;
};

// Parses a label: an integer >= 0, or NORMAL (0) / PNEUMONIA (1) in any case.
bool parse_label(const std::string& text, int64_t& label);

// Reads a CSV manifest. A missing file, a missing header or a header without path or
// label columns throws. Bad rows (wrong field count, empty path, bad label or fold) are
// all collected: without skip_bad the call throws one Error listing every one of them
// with its line; with skip_bad they are left out and listed in Manifest::problems.
Manifest read_manifest(const std::string& csv_path, bool skip_bad = false);
// Writes path,label, then the optional columns the manifest has, then its extra columns;
// paths (and masks) relative to the CSV's folder. Written to a temporary and renamed.
void write_manifest(const Manifest& manifest, const std::string& csv_path);

// The Kaggle/Kermany layout: label 0 from root/NORMAL, 1 from root/PNEUMONIA; subtype
// and patient from the file names (person12_bacteria_34.jpeg, IM-0115-0001.jpeg).
// Files are sorted by path; hidden files are ignored, other non-image files are problems.
Manifest scan_folder(const std::string& root);
std::string kermany_patient(const std::string& file_name);
std::string kermany_subtype(const std::string& file_name, int64_t label);

struct ScanOptions {
  bool decode = true;  // full decode (catches corrupt data); false: headers and structure only
  int threads = 1;
};

struct ScanReport {
  int64_t checked = 0;            // files looked at
  std::vector<Problem> problems;  // in record order
  std::vector<int64_t> bad;       // record indices with a problem
  std::string str() const;        // one problem per line
};

// Opens every image (and mask) of the manifest; reports missing, unreadable, empty,
// truncated and undecodable files.
ScanReport scan_files(const Manifest& manifest, const ScanOptions& options = {});

// scan_files on a manifest read with skip_bad (its rejected rows in `problems`). With any
// bad row or file: throws one Error listing them all by path and line (the default), or
// with skip_bad drops them, lists them in Manifest::problems and counts them in `skipped`.
Manifest check_manifest(Manifest manifest, bool skip_bad = false, const ScanOptions& options = {},
                        int64_t* skipped = nullptr);
// read_manifest(csv_path, true) + check_manifest.
Manifest open_manifest(const std::string& csv_path, bool skip_bad = false, const ScanOptions& options = {},
                       int64_t* skipped = nullptr);

}  // namespace pneuma::data
