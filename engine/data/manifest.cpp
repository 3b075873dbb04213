#include "engine/data/manifest.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "engine/core/error.h"
#include "engine/data/image.h"

namespace fs = std::filesystem;

namespace pneuma::data {

namespace {

std::string lower(std::string s) {
  for (char& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return s;
}

std::string trim(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}

bool parse_int(const std::string& text, int64_t& value) {
  const std::string t = trim(text);
  if (t.empty()) return false;
  const auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), value);
  return ec == std::errc() && end == t.data() + t.size();
}

// One CSV record (RFC 4180: quoted fields may hold commas, quotes as "" and newlines).
// Returns false at end of input; `lines` counts the physical lines consumed.
bool next_csv_row(std::istream& in, std::vector<std::string>& fields, int64_t& lines, bool& unterminated) {
  fields.clear();
  unterminated = false;
  std::string line;
  if (!std::getline(in, line)) return false;
  ++lines;
  std::string field;
  bool quoted = false;
  for (;;) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    for (size_t i = 0; i < line.size(); ++i) {
      const char ch = line[i];
      if (quoted) {
        if (ch == '"' && i + 1 < line.size() && line[i + 1] == '"') {
          field += '"';
          ++i;
        } else if (ch == '"') {
          quoted = false;
        } else {
          field += ch;
        }
      } else if (ch == '"') {
        quoted = true;
      } else if (ch == ',') {
        fields.push_back(field);
        field.clear();
      } else {
        field += ch;
      }
    }
    if (!quoted) break;
    if (!std::getline(in, line)) {
      unterminated = true;
      break;
    }
    ++lines;
    field += '\n';
  }
  fields.push_back(field);
  return true;
}

std::string csv_field(const std::string& value) {
  if (value.find_first_of(",\"\n\r") == std::string::npos) return value;
  std::string out = "\"";
  for (char ch : value) out += ch == '"' ? std::string("\"\"") : std::string(1, ch);
  return out + "\"";
}

std::string resolve(const fs::path& base, const std::string& path) {
  const fs::path p(path);
  return (p.is_absolute() ? p : base / p).lexically_normal().string();
}

std::string relative_to(const std::string& file, const fs::path& folder) {
  const fs::path abs_file = fs::absolute(file).lexically_normal();
  const fs::path rel = abs_file.lexically_relative(fs::absolute(folder).lexically_normal());
  return rel.empty() ? abs_file.string() : rel.string();
}

bool is_image_name(const fs::path& p) {
  const std::string ext = lower(p.extension().string());
  return ext == ".jpeg" || ext == ".jpg" || ext == ".png" || ext == ".bmp";
}

std::string problem_list(const std::vector<Problem>& problems) {
  std::string out;
  for (const Problem& p : problems) out += "\n  " + p.str();
  return out;
}

}  // namespace

std::string Problem::str() const {
  if (line > 0) return detail::concat(file, ": line ", line, ": ", message);
  return detail::concat(file, ": ", message);
}

std::vector<int64_t> Manifest::labels() const {
  std::vector<int64_t> out;
  out.reserve(records.size());
  for (const Record& r : records) out.push_back(r.label);
  return out;
}

int64_t Manifest::num_classes() const {
  int64_t k = 0;
  for (const Record& r : records) k = std::max(k, r.label + 1);
  return k;
}

std::vector<int64_t> Manifest::class_counts() const {
  std::vector<int64_t> counts(static_cast<size_t>(num_classes()), 0);
  for (const Record& r : records) ++counts[r.label];
  return counts;
}

std::vector<std::string> Manifest::domain_names() const {
  std::set<std::string> names;
  for (const Record& r : records) names.insert(r.domain);
  return {names.begin(), names.end()};
}

std::vector<int64_t> Manifest::domain_ids() const {
  const std::vector<std::string> names = domain_names();
  std::vector<int64_t> out;
  out.reserve(records.size());
  for (const Record& r : records)
    out.push_back(std::lower_bound(names.begin(), names.end(), r.domain) - names.begin());
  return out;
}

std::vector<std::string> Manifest::patient_ids() const {
  std::vector<std::string> out;
  out.reserve(records.size());
  for (const Record& r : records) out.push_back(r.patient.empty() ? "path:" + r.path : r.patient);
  return out;
}

Manifest Manifest::subset(std::span<const int64_t> indices) const {
  Manifest out = *this;
  out.records.clear();
  out.records.reserve(indices.size());
  for (int64_t i : indices) {
    PNEUMA_CHECK(i >= 0 && i < size(), "Manifest::subset: index ", i, " out of range for ", size(), " records");
    out.records.push_back(records[i]);
  }
  return out;
}

bool parse_label(const std::string& text, int64_t& label) {
  const std::string t = lower(trim(text));
  if (t == "normal") {
    label = 0;
    return true;
  }
  if (t == "pneumonia") {
    label = 1;
    return true;
  }
  return parse_int(t, label) && label >= 0;
}

Manifest read_manifest(const std::string& csv_path, bool skip_bad) {
  std::error_code ec;
  PNEUMA_CHECK(fs::is_regular_file(csv_path, ec), "manifest '", csv_path, "': no such file");
  std::ifstream in(csv_path, std::ios::binary);
  PNEUMA_CHECK(in.good(), "manifest '", csv_path, "': cannot open");
  Manifest m;
  m.source = csv_path;
  const fs::path base = fs::path(csv_path).parent_path();

  std::vector<std::string> fields;
  int64_t lines = 0;
  bool unterminated = false;
  PNEUMA_CHECK(next_csv_row(in, fields, lines, unterminated), "manifest '", csv_path,
               "': empty file (expected a header line such as path,label)");
  if (!fields.empty() && fields[0].rfind("\xEF\xBB\xBF", 0) == 0) fields[0] = fields[0].substr(3);  // UTF-8 BOM
  std::map<std::string, size_t> column;
  std::vector<size_t> extra_at;
  for (size_t i = 0; i < fields.size(); ++i) {
    const std::string name = lower(trim(fields[i]));
    PNEUMA_CHECK(!name.empty(), "manifest '", csv_path, "': line 1: column ", i + 1, " has no name");
    PNEUMA_CHECK(!column.count(name), "manifest '", csv_path, "': line 1: column '", name, "' appears twice");
    column[name] = i;
    static const std::set<std::string> known = {"path", "label", "domain", "subtype", "patient", "fold", "mask"};
    if (!known.count(name)) {
      m.extra_columns.push_back(trim(fields[i]));
      extra_at.push_back(i);
    }
  }
  PNEUMA_CHECK(column.count("path") && column.count("label"), "manifest '", csv_path,
               "': line 1: the header must name a 'path' and a 'label' column, got '", [&] {
                 std::string h;
                 for (const auto& f : fields) h += (h.empty() ? "" : ",") + f;
                 return h;
               }(), "'");
  m.has_domain = column.count("domain") > 0;
  m.has_subtype = column.count("subtype") > 0;
  m.has_patient = column.count("patient") > 0;
  m.has_fold = column.count("fold") > 0;
  m.has_mask = column.count("mask") > 0;
  const size_t width = fields.size();
  auto get = [&](const char* name) { return column.count(name) ? trim(fields[column.at(name)]) : std::string(); };

  for (;;) {
    const int64_t line = lines + 1;
    if (!next_csv_row(in, fields, lines, unterminated)) break;
    if (fields.size() == 1 && trim(fields[0]).empty()) continue;  // blank line
    auto bad = [&](std::string message) { m.problems.push_back({csv_path, line, std::move(message)}); };
    if (unterminated) {
      bad("unterminated quoted field");
      break;
    }
    if (fields.size() != width) {
      bad(detail::concat("expected ", width, " fields, got ", fields.size()));
      continue;
    }
    Record r;
    r.line = line;
    r.path = get("path");
    if (r.path.empty()) {
      bad("empty path");
      continue;
    }
    r.file = resolve(base, r.path);
    const std::string label = get("label");
    if (!parse_label(label, r.label)) {
      bad(detail::concat("label '", label, "' of '", r.path, "' is not a class index >= 0 or NORMAL/PNEUMONIA"));
      continue;
    }
    r.domain = get("domain");
    r.subtype = get("subtype");
    r.patient = get("patient");
    const std::string fold = get("fold");
    if (!fold.empty() && !(parse_int(fold, r.fold) && r.fold >= 0)) {
      bad(detail::concat("fold '", fold, "' of '", r.path, "' is not an integer >= 0"));
      continue;
    }
    const std::string mask = get("mask");
    if (!mask.empty()) r.mask = resolve(base, mask);
    for (size_t i : extra_at) r.extra.push_back(fields[i]);
    m.records.push_back(std::move(r));
  }
  if (!m.problems.empty() && !skip_bad)
    PNEUMA_FAIL("manifest '", csv_path, "': ", m.problems.size(), " bad row(s):", problem_list(m.problems));
  return m;
}

void write_manifest(const Manifest& m, const std::string& csv_path) {
  fs::path folder = fs::path(csv_path).parent_path();
  if (folder.empty()) folder = ".";  // a bare file name lives in the working directory
  std::ostringstream out;
  out << "path,label";
  if (m.has_domain) out << ",domain";
  if (m.has_subtype) out << ",subtype";
  if (m.has_patient) out << ",patient";
  if (m.has_fold) out << ",fold";
  if (m.has_mask) out << ",mask";
  for (const std::string& e : m.extra_columns) out << ',' << csv_field(e);
  out << '\n';
  for (const Record& r : m.records) {
    PNEUMA_CHECK(r.extra.size() == m.extra_columns.size(), "write_manifest: record '", r.path, "' has ",
                 r.extra.size(), " extra values for ", m.extra_columns.size(), " extra columns");
    out << csv_field(relative_to(r.file, folder)) << ',' << r.label;
    if (m.has_domain) out << ',' << csv_field(r.domain);
    if (m.has_subtype) out << ',' << csv_field(r.subtype);
    if (m.has_patient) out << ',' << csv_field(r.patient);
    if (m.has_fold) out << ',' << (r.fold >= 0 ? std::to_string(r.fold) : std::string());
    if (m.has_mask) out << ',' << (r.mask.empty() ? std::string() : csv_field(relative_to(r.mask, folder)));
    for (const std::string& e : r.extra) out << ',' << csv_field(e);
    out << '\n';
  }
  const std::string text = out.str();
  write_file_bytes(csv_path, {reinterpret_cast<const uint8_t*>(text.data()), text.size()});
}

std::string kermany_patient(const std::string& file_name) {
  const std::string stem = fs::path(file_name).stem().string();
  // person12_bacteria_34 -> person12 (also with a prefix: ped-person12_virus_3 -> ped-person12)
  const size_t person = stem.find("person");
  if (person != std::string::npos && person + 6 < stem.size() &&
      std::isdigit(static_cast<unsigned char>(stem[person + 6]))) {
    const size_t underscore = stem.find('_', person);
    return underscore == std::string::npos ? stem : stem.substr(0, underscore);
  }
  // IM-0115-0001 -> IM-0115, NORMAL2-IM-0383-0001 -> NORMAL2-IM-0383: the last group numbers views.
  const size_t dash = stem.rfind('-');
  if (dash != std::string::npos && dash + 1 < stem.size() &&
      std::all_of(stem.begin() + static_cast<std::ptrdiff_t>(dash) + 1, stem.end(),
                  [](char ch) { return std::isdigit(static_cast<unsigned char>(ch)); }))
    return stem.substr(0, dash);
  return stem;
}

std::string kermany_subtype(const std::string& file_name, int64_t label) {
  const std::string name = lower(fs::path(file_name).filename().string());
  if (name.find("bacteria") != std::string::npos) return "bacterial";
  if (name.find("virus") != std::string::npos) return "viral";
  return label == 0 ? "normal" : "";
}

Manifest scan_folder(const std::string& root) {
  std::error_code ec;
  PNEUMA_CHECK(fs::is_directory(root, ec), "scan_folder: '", root, "' is not a folder");
  Manifest m;
  m.source = root;
  m.has_subtype = m.has_patient = true;
  bool any = false;
  for (const auto& [folder, label] : {std::pair<const char*, int64_t>{"NORMAL", 0}, {"PNEUMONIA", 1}}) {
    const fs::path dir = fs::path(root) / folder;
    if (!fs::is_directory(dir, ec)) continue;
    any = true;
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(dir)) {
      const fs::path& p = entry.path();
      if (p.filename().string().rfind('.', 0) == 0) continue;  // .DS_Store and friends
      if (!entry.is_regular_file(ec) || !is_image_name(p)) {
        m.problems.push_back({p.string(), 0, "not a .jpeg/.jpg/.png/.bmp image file"});
        continue;
      }
      files.push_back(p);
    }
    std::sort(files.begin(), files.end());
    for (const fs::path& p : files) {
      Record r;
      r.path = (fs::path(folder) / p.filename()).string();
      r.file = p.string();
      r.label = label;
      r.subtype = kermany_subtype(p.filename().string(), label);
      r.patient = kermany_patient(p.filename().string());
      m.records.push_back(std::move(r));
    }
  }
  PNEUMA_CHECK(any, "scan_folder: '", root, "' has neither a NORMAL nor a PNEUMONIA folder");
  return m;
}

std::string ScanReport::str() const {
  std::string out = detail::concat(problems.size(), " problem(s) in ", checked, " file(s)");
  return out + problem_list(problems);
}

ScanReport scan_files(const Manifest& m, const ScanOptions& options) {
  const int64_t n = m.size();
  std::vector<std::vector<Problem>> found(static_cast<size_t>(n));
  std::atomic<int64_t> next{0}, checked{0};
  auto check_file = [&](const std::string& file, int64_t line, const char* what, std::vector<Problem>& out) {
    checked.fetch_add(1, std::memory_order_relaxed);
    std::error_code ec;
    if (!fs::exists(file, ec)) {
      out.push_back({file, line, detail::concat(what, " file does not exist")});
      return;
    }
    try {
      const std::vector<uint8_t> bytes = read_file_bytes(file);
      if (options.decode)
        (void)decode_image(bytes, file, 1);
      else
        (void)probe_image(bytes, file);
    } catch (const std::exception& e) {
      // The message starts with the file name already; keep the reason only.
      std::string message = e.what();
      const std::string prefix = "image '" + file + "': ";
      if (message.rfind(prefix, 0) == 0) message = message.substr(prefix.size());
      out.push_back({file, line, message});
    }
  };
  auto work = [&] {
    for (int64_t i; (i = next.fetch_add(1)) < n;) {
      const Record& r = m.records[i];
      check_file(r.file, r.line, "image", found[i]);
      if (!r.mask.empty()) check_file(r.mask, r.line, "mask", found[i]);
    }
  };
  const int threads = std::clamp<int>(options.threads, 1, 64);
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  ScanReport report;
  report.checked = checked.load();
  for (int64_t i = 0; i < n; ++i) {
    if (found[i].empty()) continue;
    report.bad.push_back(i);
    report.problems.insert(report.problems.end(), found[i].begin(), found[i].end());
  }
  return report;
}

Manifest open_manifest(const std::string& csv_path, bool skip_bad, const ScanOptions& options, int64_t* skipped) {
  return check_manifest(read_manifest(csv_path, /*skip_bad=*/true), skip_bad, options, skipped);
}

Manifest check_manifest(Manifest m, bool skip_bad, const ScanOptions& options, int64_t* skipped) {
  const std::string& csv_path = m.source;
  const ScanReport report = scan_files(m, options);
  const int64_t bad_rows = static_cast<int64_t>(m.problems.size());
  const int64_t total = bad_rows + static_cast<int64_t>(report.bad.size());
  if (skipped != nullptr) *skipped = total;
  if (total == 0) return m;
  std::vector<Problem> all = m.problems;
  all.insert(all.end(), report.problems.begin(), report.problems.end());
  std::stable_sort(all.begin(), all.end(), [](const Problem& a, const Problem& b) { return a.line < b.line; });
  if (!skip_bad)
    PNEUMA_FAIL("manifest '", csv_path, "': ", total, " bad row(s) or file(s) (--skip-bad leaves them out):",
                problem_list(all));
  std::vector<int64_t> keep;
  size_t b = 0;
  for (int64_t i = 0; i < m.size(); ++i) {
    if (b < report.bad.size() && report.bad[b] == i) {
      ++b;
      continue;
    }
    keep.push_back(i);
  }
  Manifest out = m.subset(keep);
  out.problems = std::move(all);
  return out;
}

}  // namespace pneuma::data
