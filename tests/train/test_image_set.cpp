// train::open_image_set: the image sets of the tools whose labels may be absent.
#include <doctest/doctest.h>

#include <filesystem>

#include "engine/core/error.h"
#include "engine/data/image.h"
#include "engine/train/image_set.h"
#include "tests/data/data_util.h"

using namespace pneuma;
using pneuma::testing::TempDir;
using pneuma::testing::write_text;
namespace fs = std::filesystem;

TEST_CASE("open_image_set: any image folder (recursive and sorted with label 0) or Kermany folder or CSV") {
  TempDir dir("image-set");
  const data::Image gray(1, 8, 8, 0.5f);
  fs::create_directories(dir / "plain/b/c");
  data::write_png(gray, dir / "plain/z.png");
  data::write_png(gray, dir / "plain/b/c/a.png");
  data::write_jpeg(gray, dir / "plain/b/y.JPG");
  write_text(dir / "plain/notes.txt", "not an image");
  fs::create_directories(dir / "plain/.cache");
  data::write_png(gray, dir / "plain/.cache/hidden.png");
  const data::Manifest plain = train::open_image_set(dir / "plain", false, 1);
  REQUIRE(plain.size() == 3);
  CHECK(plain.records[0].path == "b/c/a.png");
  CHECK(plain.records[1].path == "b/y.JPG");
  CHECK(plain.records[2].path == "z.png");
  CHECK(plain.records[2].file == dir / "plain/z.png");
  for (const data::Record& r : plain.records) CHECK(r.label == 0);

  // Kermany layout, with or without train/: labels from the folders
  fs::create_directories(dir / "k/train/NORMAL");
  fs::create_directories(dir / "k/train/PNEUMONIA");
  data::write_png(gray, dir / "k/train/NORMAL/IM-0001-0001.png");
  data::write_png(gray, dir / "k/train/PNEUMONIA/person1_virus_2.png");
  for (const std::string& root : {dir / "k", dir / "k/train"}) {
    const data::Manifest k = train::open_image_set(root, false, 1);
    REQUIRE(k.size() == 2);
    CHECK(k.records[1].label == 1);
    CHECK(k.records[1].subtype == "viral");
  }

  // a CSV manifest, with a bad file reported or skipped
  write_text(dir / "m.csv", "path,label\nplain/z.png,1\nplain/notes.txt,0\n");
  CHECK_THROWS_WITH_AS(train::open_image_set(dir / "m.csv", false, 1), doctest::Contains("notes.txt"), Error);
  int64_t skipped = 0;
  const data::Manifest csv = train::open_image_set(dir / "m.csv", true, 1, &skipped);
  CHECK(csv.size() == 1);
  CHECK(skipped == 1);

  fs::create_directories(dir / "empty");
  CHECK_THROWS_WITH_AS(train::open_image_set(dir / "empty", false, 1), doctest::Contains("no images"), Error);
  CHECK_THROWS_WITH_AS(train::open_image_set(dir / "absent", false, 1), doctest::Contains("no such file or folder"),
                       Error);
}
