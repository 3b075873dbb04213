#include <doctest/doctest.h>

#include <filesystem>
#include <functional>
#include <map>
#include <set>

#include "engine/data/image.h"
#include "engine/data/manifest.h"
#include "tests/data/data_util.h"

using namespace pneuma;
using namespace pneuma::data;
using pneuma::testing::TempDir;
using pneuma::testing::write_text;
namespace fs = std::filesystem;

namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST_SUITE("data") {
  TEST_CASE("manifest: the Kermany train.csv") {
    PNEUMA_REQUIRE_KERMANY();
    const Manifest m = read_manifest(pneuma::testing::kermany_csv());
    CHECK(m.size() == 5216);
    CHECK(m.has_subtype);
    CHECK(m.has_patient);
    CHECK_FALSE(m.has_domain);
    CHECK_FALSE(m.has_fold);
    CHECK(m.class_counts() == std::vector<int64_t>{1341, 3875});
    CHECK(m.records[0].path == "train/NORMAL/IM-0115-0001.jpeg");
    CHECK(m.records[0].line == 2);
    CHECK(m.records[0].file == pneuma::testing::kermany_dir() + "/train/NORMAL/IM-0115-0001.jpeg");
    CHECK(fs::exists(m.records.back().file));
    CHECK(m.domain_names() == std::vector<std::string>{""});
  }

  TEST_CASE("manifest: the Kermany folder layout gives the labels and subtypes and patients of the CSV") {
    PNEUMA_REQUIRE_KERMANY();
    const Manifest csv = read_manifest(pneuma::testing::kermany_csv());
    const Manifest folder = scan_folder(pneuma::testing::kermany_dir() + "/train");
    CHECK(folder.problems.empty());
    REQUIRE(folder.size() == csv.size());
    std::map<std::string, const Record*> by_file;
    for (const Record& r : csv.records) by_file[fs::path(r.file).filename().string()] = &r;
    int64_t mismatches = 0;
    for (const Record& r : folder.records) {
      const Record* c = by_file.at(fs::path(r.file).filename().string());
      mismatches += r.label != c->label || r.subtype != c->subtype || r.patient != c->patient;
    }
    CHECK(mismatches == 0);
    CHECK(kermany_patient("NORMAL2-IM-0383-0001.jpeg") == "NORMAL2-IM-0383");
    CHECK(kermany_patient("person1000_virus_1681.jpeg") == "person1000");
    CHECK(kermany_patient("ped-person12_bacteria_3.jpeg") == "ped-person12");
    CHECK(kermany_subtype("person1_virus_6.jpeg", 1) == "viral");
  }

  TEST_CASE("manifest: every bad row is reported with its line") {
    TempDir dir("csv");
    write_text(dir / "m.csv",
               "path,label,domain,fold\n"
               "a.png,0,adult,1\n"
               "b.png,1,adult\n"             // line 3: 3 fields
               "c.png,maybe,adult,0\n"       // line 4: bad label
               ",1,adult,0\n"                // line 5: empty path
               "\n"                          // blank lines are skipped
               "d.png,PNEUMONIA,\"ped, 1\",x\n"  // line 7: bad fold
               "e.png,normal,\"ped, 1\",2\n");
    const std::string e = error_of([&] { (void)read_manifest(dir / "m.csv"); });
    MESSAGE(e);
    CHECK(contains(e, "4 bad row(s)"));
    CHECK(contains(e, dir / "m.csv" + ": line 3: expected 4 fields, got 3"));
    CHECK(contains(e, ": line 4: label 'maybe' of 'c.png' is not a class index >= 0 or NORMAL/PNEUMONIA"));
    CHECK(contains(e, ": line 5: empty path"));
    CHECK(contains(e, ": line 7: fold 'x' of 'd.png' is not an integer >= 0"));
    const Manifest m = read_manifest(dir / "m.csv", /*skip_bad=*/true);
    REQUIRE(m.size() == 2);
    CHECK(m.problems.size() == 4);
    CHECK(m.records[0].fold == 1);
    CHECK(m.records[1].label == 0);
    CHECK(m.records[1].domain == "ped, 1");
    CHECK(m.records[1].line == 8);
    CHECK(m.records[1].file == (fs::path(dir.str()) / "e.png").string());

    write_text(dir / "nolabel.csv", "path,target\na.png,0\n");
    CHECK(contains(error_of([&] { (void)read_manifest(dir / "nolabel.csv"); }),
                   "line 1: the header must name a 'path' and a 'label' column, got 'path,target'"));
    write_text(dir / "empty.csv", "");
    CHECK(contains(error_of([&] { (void)read_manifest(dir / "empty.csv"); }), "empty file"));
    CHECK(contains(error_of([&] { (void)read_manifest(dir / "none.csv"); }), "none.csv': no such file"));
    write_text(dir / "dup.csv", "path,label,Label\n");
    CHECK(contains(error_of([&] { (void)read_manifest(dir / "dup.csv"); }), "column 'label' appears twice"));
  }

  TEST_CASE("manifest: write and read back with paths relative to the new CSV and extra columns kept") {
    TempDir dir("roundtrip");
    fs::create_directories(dir / "img");
    write_text(dir / "img/m.csv",
               "path,label,domain,subtype,patient,fold,note\n"
               "x.png,1,adult,viral,p1,2,\"has, comma and \"\"quote\"\"\"\n"
               "sub/y.png,0,pediatric,normal,p2,,plain\n");
    Manifest m = read_manifest(dir / "img/m.csv");
    CHECK(m.extra_columns == std::vector<std::string>{"note"});
    CHECK(m.records[0].extra[0] == "has, comma and \"quote\"");
    CHECK(m.records[1].fold == -1);
    write_manifest(m, dir / "out.csv");
    const Manifest back = read_manifest(dir / "out.csv");
    REQUIRE(back.size() == 2);
    CHECK(back.records[0].path == "img/x.png");
    CHECK(back.records[1].path == "img/sub/y.png");
    CHECK(back.records[0].file == m.records[0].file);
    CHECK(back.records[0].extra == m.records[0].extra);
    CHECK(back.records[0].subtype == "viral");
    CHECK(back.records[1].fold == -1);
    CHECK(back.has_fold);
    CHECK(back.domain_names() == std::vector<std::string>{"adult", "pediatric"});
    CHECK(back.domain_ids() == std::vector<int64_t>{0, 1});
  }

  TEST_CASE("manifest: a bare file name is written to and read from the working directory") {
    TempDir dir("bare");
    write_text(dir / "a.png", "");
    Manifest m;
    Record r;
    r.path = "a.png";
    r.file = dir / "a.png";
    m.records.push_back(r);
    const fs::path before = fs::current_path();
    fs::current_path(dir.str());
    std::string error;
    try {
      write_manifest(m, "bare.csv");
      const Manifest back = read_manifest("bare.csv");
      CHECK(back.size() == 1);
      CHECK(back.records[0].path == "a.png");
    } catch (const std::exception& e) {
      error = e.what();
    }
    fs::current_path(before);
    CHECK(error == "");
  }

  TEST_CASE("manifest: the scan lists every missing / empty / truncated / undecodable file by line") {
    PNEUMA_REQUIRE_KERMANY();
    TempDir dir("scan");
    const Manifest kermany = read_manifest(pneuma::testing::kermany_csv());
    const std::vector<uint8_t> good = read_file_bytes(kermany.records[0].file);
    pneuma::testing::write_bytes(dir / "good1.jpeg", good);
    pneuma::testing::write_bytes(dir / "good2.jpeg", good);
    pneuma::testing::write_bytes(dir / "empty.jpeg", {});
    pneuma::testing::write_bytes(dir / "cut.jpeg", {good.begin(), good.begin() + 3000});
    write_text(dir / "text.jpeg", "this is not an image\n");
    write_text(dir / "m.csv",
               "path,label\ngood1.jpeg,0\nempty.jpeg,1\ncut.jpeg,0\nmissing.jpeg,1\ntext.jpeg,0\ngood2.jpeg,1\n"
               "good2.jpeg,7x\n");
    const Manifest m = read_manifest(dir / "m.csv", true);
    for (bool decode : {true, false}) {
      const ScanReport report = scan_files(m, ScanOptions{decode, 2});
      CHECK(report.checked == 6);
      CHECK(report.bad == std::vector<int64_t>{1, 2, 3, 4});
      REQUIRE(report.problems.size() == 4);
      CHECK(report.problems[0].str() == dir / "empty.jpeg" + ": line 3: file is empty (0 bytes)");
      CHECK(contains(report.problems[1].str(), dir / "cut.jpeg" + ": line 4: truncated JPEG"));
      CHECK(report.problems[2].str() == dir / "missing.jpeg" + ": line 5: image file does not exist");
      CHECK(contains(report.problems[3].str(), ": line 6: not a JPEG, PNG or BMP file"));
    }
    const std::string e = error_of([&] { (void)open_manifest(dir / "m.csv"); });
    MESSAGE(e);
    CHECK(contains(e, "5 bad row(s) or file(s) (--skip-bad leaves them out)"));
    CHECK(contains(e, "line 8: label '7x'"));
    CHECK(contains(e, "line 4: truncated JPEG"));
    int64_t skipped = -1;
    const Manifest ok = open_manifest(dir / "m.csv", /*skip_bad=*/true, {}, &skipped);
    CHECK(skipped == 5);
    REQUIRE(ok.size() == 2);
    CHECK(ok.records[1].path == "good2.jpeg");
    CHECK(ok.problems.size() == 5);
  }
}
