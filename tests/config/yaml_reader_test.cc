#include "service/config/yaml_reader.h"

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace tokenbroker::config_internal {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::tokenbroker::testing::IsOk;
using ::tokenbroker::testing::StatusIs;

// The root of the document `text`, as a Field at key path "root".
Field Root(const YamlReader& reader, const std::string& text) {
  absl::StatusOr<YAML::Node> node = reader.Load(text);
  EXPECT_THAT(node, IsOk());
  return Field{*node, node->Mark(), "root"};
}

TEST(YamlReaderTest, ErrorsNameFileLineAndKeyPath) {
  YamlReader reader("r.yaml");
  Field root = Root(reader, "a: 1\nb: x\n");
  FieldMap keys;
  ASSERT_THAT(reader.ReadMap(root, {"a", "b"}, &keys), IsOk());
  EXPECT_THAT(reader.Bool(keys.at("b")),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "r.yaml:2: root.b: must be true or false; got 'x'"));
}

TEST(YamlReaderTest, ReadMapRejectsUnknownAndRepeatedKeys) {
  YamlReader reader("r.yaml");
  FieldMap keys;
  EXPECT_THAT(
      reader.ReadMap(Root(reader, "nme: x\n"), {"name", "other"}, &keys),
      StatusIs(absl::StatusCode::kInvalidArgument,
               HasSubstr("r.yaml:1: root.nme: unknown key (did you "
                         "mean name?); allowed keys here are: name, "
                         "other")));
  keys.clear();
  EXPECT_THAT(
      reader.ReadMap(Root(reader, "name: x\nname: y\n"), {"name"}, &keys),
      StatusIs(absl::StatusCode::kInvalidArgument,
               HasSubstr("r.yaml:2: root.name: duplicate key (first "
                         "given on line 1)")));
}

TEST(YamlReaderTest, ForEachElementGivesEachItsPathAndStopsAtAnError) {
  YamlReader reader("r.yaml");
  std::vector<std::string> paths;
  absl::Status status =
      reader.ForEachElement(Root(reader, "- a\n- b\n- c\n"), "not a list",
                            [&](const Field& item) -> absl::Status {
                              paths.push_back(item.path);
                              if (item.node.Scalar() == "b")
                                return reader.Error(item, "no b");
                              return absl::OkStatus();
                            });
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument,
                               "r.yaml:2: root[1]: no b"));
  EXPECT_THAT(paths, ElementsAre("root[0]", "root[1]"));
  EXPECT_THAT(
      reader.ForEachElement(Root(reader, "a: 1\n"), "must be a list",
                            [](const Field&) { return absl::OkStatus(); }),
      StatusIs(absl::StatusCode::kInvalidArgument,
               "r.yaml:1: root: must be a list"));
}

TEST(YamlReaderTest, ReadOptionalLeavesAnAbsentKeyAlone) {
  YamlReader reader("r.yaml");
  FieldMap keys;
  ASSERT_THAT(reader.ReadMap(Root(reader, "t: 2s\n"), {"t", "u"}, &keys),
              IsOk());
  absl::Duration t = absl::Seconds(1);
  absl::Duration u = absl::Seconds(1);
  EXPECT_THAT(reader.ReadOptional(keys, "t", &t, &YamlReader::Duration,
                                  /*allow_zero=*/false),
              IsOk());
  EXPECT_THAT(reader.ReadOptional(keys, "u", &u, &YamlReader::Duration,
                                  /*allow_zero=*/false),
              IsOk());
  EXPECT_EQ(t, absl::Seconds(2));
  EXPECT_EQ(u, absl::Seconds(1));
}

TEST(YamlReaderTest, TypedReaders) {
  YamlReader reader("r.yaml");
  FieldMap keys;
  ASSERT_THAT(reader.ReadMap(Root(reader, "d: 5\nn: 2000\nl: [a, b]\ne: up\n"),
                             {"d", "n", "l", "e"}, &keys),
              IsOk());
  EXPECT_THAT(reader.Duration(keys.at("d"), false),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("'5' has no unit")));
  EXPECT_THAT(reader.Count(keys.at("n"), 1, 1000, "10"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("'2000' must be a whole number between 1 "
                                 "and 1000, e.g. 10")));
  absl::StatusOr<std::vector<std::string>> list =
      reader.TokenList(keys.at("l"));
  ASSERT_THAT(list, IsOk());
  EXPECT_THAT(*list, ElementsAre("a", "b"));
  EXPECT_THAT(reader.Enum<int>(keys.at("e"), {{"down", 0}, {"left", 1}}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("'up' is not one of down, left")));
}

TEST(YamlReaderTest, LoadRefusesSeveralDocuments) {
  YamlReader reader("r.yaml");
  EXPECT_THAT(reader.Load("a: 1\n---\nb: 2\n"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("r.yaml: the file holds 2 YAML documents")));
}

}  // namespace
}  // namespace tokenbroker::config_internal
