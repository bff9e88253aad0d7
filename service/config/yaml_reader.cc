#include "service/config/yaml_reader.h"

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "service/config/value_checks.h"

namespace tokenbroker {
namespace config_internal {
namespace {

// Edit distance, for "did you mean" on unknown keys.
size_t Distance(absl::string_view a, absl::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1,
                         diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// Counts the "---" document markers that follow content: each starts
// another YAML document.
int ExtraDocuments(absl::string_view text) {
  int extra = 0;
  bool content = false;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    absl::string_view trimmed = absl::StripTrailingAsciiWhitespace(line);
    if (trimmed == "---" || absl::StartsWith(trimmed, "--- ")) {
      if (content) ++extra;
      content = true;  // What follows a marker belongs to its document.
      continue;
    }
    absl::string_view body = absl::StripLeadingAsciiWhitespace(trimmed);
    if (!body.empty() && body[0] != '#' && body[0] != '%') content = true;
  }
  return extra;
}

// "'<value>'" for a scalar, else what the node is.
std::string QuoteOrDescribe(const YAML::Node& node) {
  return node.IsScalar() ? "'" + node.Scalar() + "'" : Describe(node);
}

}  // namespace

std::string Describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Null:
      return "null (an empty value)";
    case YAML::NodeType::Scalar:
      return "a scalar";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a map";
    case YAML::NodeType::Undefined:
    default:
      return "nothing";
  }
}

absl::StatusOr<YAML::Node> YamlReader::Load(absl::string_view text) const {
  // YAML::LoadAll() of yaml-cpp 0.7 loops forever on some malformed input
  // (the fuzzer found ",r"), so load one document and look for a second
  // one by its "---" marker.
  if (int extra = ExtraDocuments(text); extra > 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(file_path_, ": the file holds ", extra + 1,
                     " YAML documents; put the whole configuration in one"));
  }
  try {
    return YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    // yaml-cpp's messages are fixed texts ("end of map not found"), they
    // never quote the document, so they cannot leak a secret.
    return absl::InvalidArgumentError(
        absl::StrCat(Where(e.mark), " YAML syntax error: ", e.msg,
                     "; check the indentation and quoting near this line"));
  }
}

std::string YamlReader::Where(const YAML::Mark& mark) const {
  if (mark.is_null()) return absl::StrCat(file_path_, ":");
  return absl::StrCat(file_path_, ":", mark.line + 1, ":");
}

absl::Status YamlReader::Error(const YAML::Mark& mark,
                               absl::string_view key_path,
                               absl::string_view what) const {
  return absl::InvalidArgumentError(
      absl::StrCat(Where(mark), " ", key_path, ": ", what));
}

absl::Status YamlReader::Error(const Field& field,
                               absl::string_view what) const {
  return Error(field.mark, field.path, what);
}

absl::Status YamlReader::ReadMap(const Field& field,
                                 const std::vector<absl::string_view>& allowed,
                                 FieldMap* out) const {
  if (!field.node.IsMap()) {
    return Error(field, absl::StrCat("must be a map with the keys ",
                                     absl::StrJoin(allowed, ", "), "; got ",
                                     Describe(field.node)));
  }
  const std::string prefix = field.path.empty() ? "" : field.path + ".";
  for (const auto& entry : field.node) {
    const YAML::Node& key = entry.first;
    if (!key.IsScalar()) {
      return Error(
          key.Mark(), field.path.empty() ? "(top level)" : field.path,
          absl::StrCat("keys must be plain names; got ", Describe(key)));
    }
    const std::string& name = key.Scalar();
    std::string path = prefix + name;
    if (std::find(allowed.begin(), allowed.end(), name) == allowed.end()) {
      std::string hint;
      for (absl::string_view candidate : allowed) {
        if (Distance(name, candidate) <= 2) {
          hint = absl::StrCat(" (did you mean ", candidate, "?)");
          break;
        }
      }
      return Error(
          key.Mark(), path,
          absl::StrCat("unknown key", hint, "; allowed keys here are: ",
                       absl::StrJoin(allowed, ", ")));
    }
    if (auto it = out->find(name); it != out->end()) {
      return Error(key.Mark(), path,
                   absl::StrCat("duplicate key (first given on line ",
                                it->second.mark.line + 1, "); keep only one"));
    }
    (*out)[name] = Field{entry.second, key.Mark(), path};
  }
  return absl::OkStatus();
}

absl::Status YamlReader::ForEachElement(
    const Field& list, absl::string_view not_a_list,
    const std::function<absl::Status(const Field& element)>& visit) const {
  if (!list.node.IsSequence()) return Error(list, not_a_list);
  for (size_t i = 0; i < list.node.size(); ++i) {
    const YAML::Node element = list.node[i];
    Field item{element, element.Mark(), absl::StrCat(list.path, "[", i, "]")};
    if (item.mark.is_null()) item.mark = list.mark;
    TB_RETURN_IF_ERROR(visit(item));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> YamlReader::String(const Field& field) const {
  if (!field.node.IsScalar()) {
    return Error(field,
                 absl::StrCat("must be a string; got ", Describe(field.node)));
  }
  return field.node.Scalar();
}

absl::StatusOr<std::string> YamlReader::Token(const Field& field) const {
  TB_ASSIGN_OR_RETURN(std::string value, String(field));
  if (value.empty()) return Error(field, "must not be empty");
  if (HasWhitespaceOrControl(value)) {
    return Error(field, absl::StrCat("'", value,
                                     "' must not contain whitespace or "
                                     "control characters"));
  }
  return value;
}

absl::StatusOr<bool> YamlReader::Bool(const Field& field) const {
  bool value = false;
  if (!field.node.IsScalar() ||
      !YAML::convert<bool>::decode(field.node, value)) {
    return Error(field, absl::StrCat("must be true or false; got ",
                                     QuoteOrDescribe(field.node)));
  }
  return value;
}

absl::StatusOr<double> YamlReader::Double(const Field& field) const {
  double value = 0;
  if (!field.node.IsScalar() ||
      !absl::SimpleAtod(field.node.Scalar(), &value)) {
    return Error(field, absl::StrCat("must be a number; got ",
                                     QuoteOrDescribe(field.node)));
  }
  return value;
}

absl::StatusOr<absl::Duration> YamlReader::Duration(const Field& field,
                                                    bool allow_zero) const {
  TB_ASSIGN_OR_RETURN(std::string text, String(field));
  absl::string_view trimmed = absl::StripAsciiWhitespace(text);
  if (!trimmed.empty() &&
      trimmed.find_first_not_of("0123456789.+-") == absl::string_view::npos) {
    return Error(field,
                 absl::StrCat("'", trimmed, "' has no unit; add one, e.g. \"",
                              trimmed, "s\" (units: ms, s, m, h)"));
  }
  absl::Duration value;
  if (!absl::ParseDuration(trimmed, &value)) {
    return Error(field, absl::StrCat("'", trimmed,
                                     "' is not a duration; write e.g. "
                                     "\"250ms\", \"30s\", \"5m\" or \"1h\""));
  }
  if (value == absl::InfiniteDuration() || value < absl::ZeroDuration() ||
      (!allow_zero && value == absl::ZeroDuration())) {
    return Error(field, absl::StrCat("'", trimmed, "' must be ",
                                     allow_zero ? "zero or more" : "positive",
                                     " and finite"));
  }
  return value;
}

absl::StatusOr<int64_t> YamlReader::Integer(const Field& field, int64_t min,
                                            int64_t max,
                                            absl::string_view expected) const {
  TB_ASSIGN_OR_RETURN(std::string text, String(field));
  int64_t value = 0;
  if (!absl::SimpleAtoi(text, &value) || value < min || value > max) {
    return Error(field, absl::StrCat("'", text, "' must be ", expected));
  }
  return value;
}

absl::StatusOr<int64_t> YamlReader::Count(const Field& field, int64_t min,
                                          int64_t max,
                                          absl::string_view example) const {
  return Integer(field, min, max,
                 absl::StrCat("a whole number between ", min, " and ", max,
                              ", e.g. ", example));
}

absl::StatusOr<std::vector<std::string>> YamlReader::TokenList(
    const Field& field) const {
  std::vector<std::string> values;
  TB_RETURN_IF_ERROR(ForEachElement(
      field,
      absl::StrCat("must be a list of strings, e.g. [a, b]; got ",
                   Describe(field.node)),
      [&](const Field& item) -> absl::Status {
        TB_ASSIGN_OR_RETURN(std::string value, Token(item));
        values.push_back(std::move(value));
        return absl::OkStatus();
      }));
  return values;
}

}  // namespace config_internal
}  // namespace tokenbroker
