#ifndef TOKENBROKER_SERVICE_CONFIG_YAML_READER_H_
#define TOKENBROKER_SERVICE_CONFIG_YAML_READER_H_

// Internal to tb_config: reads typed values out of a yaml-cpp document and
// words every error as "<file>:<line>: <key.path>: <what is wrong>". The
// config sections (app_section.cc, ...) use it; nothing outside
// service/config/ should.

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "service/common/status_macros.h"
#include "yaml-cpp/yaml.h"

namespace tokenbroker {
// Not `internal`: other libraries keep their own internals there, and a
// second `internal::Field` linked into one binary would break the ODR.
namespace config_internal {

// A value in the document together with where it was written and its key
// path ("apps[1].client_secret"). `mark` is the key's position, which is the
// line a reader looks for; for list elements it is the element's own.
struct Field {
  YAML::Node node;
  YAML::Mark mark;
  std::string path;
};

// The entries of a map, by key.
using FieldMap = std::map<std::string, Field>;

// "a scalar", "a list", "a map", ...: what a node is, for messages.
std::string Describe(const YAML::Node& node);

// Reads fields of one configuration file. Every method returns
// INVALID_ARGUMENT naming the file, the line and the key path; no message
// quotes more than the one value at fault. Thread-compatible.
class YamlReader {
 public:
  // `file_path` is used in messages only.
  explicit YamlReader(absl::string_view file_path) : file_path_(file_path) {}

  const std::string& file_path() const { return file_path_; }

  // Parses `text` as one YAML document. Refuses a file of several documents
  // and reports syntax errors with their line.
  absl::StatusOr<YAML::Node> Load(absl::string_view text) const;

  // "<file>:<line>:", or "<file>:" when `mark` is unknown.
  std::string Where(const YAML::Mark& mark) const;

  absl::Status Error(const YAML::Mark& mark, absl::string_view key_path,
                     absl::string_view what) const;
  absl::Status Error(const Field& field, absl::string_view what) const;

  // Checks that `field` is a map whose keys are all in `allowed` (an unknown
  // key gets a "did you mean" from `allowed`, in its order) and none
  // repeated, and fills `out` with its entries.
  absl::Status ReadMap(const Field& field,
                       const std::vector<absl::string_view>& allowed,
                       FieldMap* out) const;

  // Calls `visit` on each element of the list `list` (its path
  // "<list.path>[i]"), stopping at the first error. `not_a_list` is the
  // message when `list` is not a list.
  absl::Status ForEachElement(
      const Field& list, absl::string_view not_a_list,
      const std::function<absl::Status(const Field& element)>& visit) const;

  // Typed readers.
  absl::StatusOr<std::string> String(const Field& field) const;
  // A string, not empty, with no whitespace or control characters.
  absl::StatusOr<std::string> Token(const Field& field) const;
  absl::StatusOr<bool> Bool(const Field& field) const;
  absl::StatusOr<double> Double(const Field& field) const;
  // "250ms", "30s", "5m", "1h": finite, positive (or zero if `allow_zero`).
  absl::StatusOr<absl::Duration> Duration(const Field& field,
                                          bool allow_zero) const;
  // A whole number in [min, max]; `example` completes the error message.
  absl::StatusOr<int64_t> Count(const Field& field, int64_t min, int64_t max,
                                absl::string_view example) const;
  // A whole number in [min, max]; otherwise "'<text>' must be <expected>".
  absl::StatusOr<int64_t> Integer(const Field& field, int64_t min, int64_t max,
                                  absl::string_view expected) const;
  // A list of Token()s.
  absl::StatusOr<std::vector<std::string>> TokenList(const Field& field) const;

  // Reads the key `name` of `keys`, when it is there, into `*target` with
  // the reader `read` (given `args` after the field), e.g.
  //   ReadOptional(keys, "ca_file", &ca_file, &YamlReader::String);
  // leaves `*target` as it is when the key is absent.
  template <typename T, typename... Params, typename... Args>
  absl::Status ReadOptional(
      const FieldMap& keys, absl::string_view name, T* target,
      absl::StatusOr<T> (YamlReader::*read)(const Field&, Params...) const,
      Args&&... args) const {
    auto it = keys.find(std::string(name));
    if (it == keys.end()) return absl::OkStatus();
    TB_ASSIGN_OR_RETURN(*target,
                        (this->*read)(it->second, std::forward<Args>(args)...));
    return absl::OkStatus();
  }

  // One of `choices` by name.
  template <typename T>
  absl::StatusOr<T> Enum(
      const Field& field,
      const std::vector<std::pair<absl::string_view, T>>& choices) const {
    TB_ASSIGN_OR_RETURN(std::string value, String(field));
    std::vector<absl::string_view> names;
    for (const auto& [name, result] : choices) {
      if (value == name) return result;
      names.push_back(name);
    }
    return Error(field, absl::StrCat("'", value, "' is not one of ",
                                     absl::StrJoin(names, ", ")));
  }

 private:
  std::string file_path_;
};

}  // namespace config_internal
}  // namespace tokenbroker

#endif  // TOKENBROKER_SERVICE_CONFIG_YAML_READER_H_
