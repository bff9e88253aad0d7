// The small sections: upstream, limits, audit, development and log_level.

#include <cstdint>
#include <string>
#include <utility>

#include "service/common/status_macros.h"
#include "service/config/config.h"
#include "service/config/sections.h"
#include "service/config/yaml_reader.h"

namespace tokenbroker {
namespace config_internal {

absl::Status ParseUpstreamSection(const YamlReader& reader, const Field& field,
                                  Config* config) {
  UpstreamConfig* upstream = &config->upstream;
  FieldMap keys;
  TB_RETURN_IF_ERROR(
      reader.ReadMap(field,
                     {"ca_file", "connect_timeout", "request_timeout",
                      "max_request_bytes", "max_response_bytes"},
                     &keys));
  const std::pair<absl::string_view, int64_t*> byte_limits[] = {
      {"max_request_bytes", &upstream->max_request_bytes},
      {"max_response_bytes", &upstream->max_response_bytes}};
  for (const auto& [name, target] : byte_limits) {
    if (auto it = keys.find(std::string(name)); it != keys.end()) {
      TB_ASSIGN_OR_RETURN(*target,
                          reader.Integer(it->second, 1024, int64_t{1} << 30,
                                         "a number of bytes between 1024 and "
                                         "1073741824, e.g. 8388608 for 8 MiB"));
    }
  }
  TB_RETURN_IF_ERROR(reader.ReadOptional(keys, "ca_file", &upstream->ca_file,
                                         &YamlReader::String));
  TB_RETURN_IF_ERROR(reader.ReadOptional(keys, "connect_timeout",
                                         &upstream->connect_timeout,
                                         &YamlReader::Duration,
                                         /*allow_zero=*/false));
  return reader.ReadOptional(keys, "request_timeout",
                             &upstream->request_timeout, &YamlReader::Duration,
                             /*allow_zero=*/false);
}

absl::Status ParseLimitsSection(const YamlReader& reader, const Field& field,
                                Config* config) {
  LimitsConfig* limits = &config->limits;
  FieldMap keys;
  TB_RETURN_IF_ERROR(reader.ReadMap(
      field,
      {"max_calls_in_flight", "max_calls_per_caller", "max_watches_per_caller",
       "max_stream_buffer_bytes", "max_stream_lifetime"},
      &keys));
  const std::pair<absl::string_view, int*> counts[] = {
      {"max_calls_in_flight", &limits->max_calls_in_flight},
      {"max_calls_per_caller", &limits->max_calls_per_caller},
      {"max_watches_per_caller", &limits->max_watches_per_caller}};
  for (const auto& [name, target] : counts) {
    if (auto it = keys.find(std::string(name)); it != keys.end()) {
      TB_ASSIGN_OR_RETURN(int64_t value,
                          reader.Count(it->second, 1, 1000000, "128"));
      *target = static_cast<int>(value);
    }
  }
  TB_RETURN_IF_ERROR(reader.ReadOptional(
      keys, "max_stream_buffer_bytes", &limits->max_stream_buffer_bytes,
      &YamlReader::Count, int64_t{1} << 20, int64_t{64} << 30, "268435456"));
  return reader.ReadOptional(keys, "max_stream_lifetime",
                             &limits->max_stream_lifetime,
                             &YamlReader::Duration, /*allow_zero=*/false);
}

absl::Status ParseAuditSection(const YamlReader& reader, const Field& field,
                               Config* config) {
  AuditConfig* audit = &config->audit;
  FieldMap keys;
  TB_RETURN_IF_ERROR(reader.ReadMap(field, {"path", "fail_closed"}, &keys));
  TB_RETURN_IF_ERROR(
      reader.ReadOptional(keys, "path", &audit->path, &YamlReader::Token));
  if (auto it = keys.find("fail_closed"); it != keys.end()) {
    TB_ASSIGN_OR_RETURN(audit->fail_closed, reader.Bool(it->second));
    // Without a path nothing is written, so nothing could ever fail: the
    // operator asked for a guarantee the broker would not give.
    if (audit->fail_closed && audit->path.empty()) {
      return reader.Error(it->second,
                          "fail_closed needs audit.path (a file, or \"-\" for "
                          "stdout): without it no record is written");
    }
  }
  return absl::OkStatus();
}

absl::Status ParseDevelopmentSection(const YamlReader& reader,
                                     const Field& field, Config* config) {
  FieldMap keys;
  TB_RETURN_IF_ERROR(reader.ReadMap(
      field, {"allow_inline_secrets", "insecure_plaintext"}, &keys));
  DevelopmentConfig* development = &config->development;
  TB_RETURN_IF_ERROR(reader.ReadOptional(keys, "allow_inline_secrets",
                                         &development->allow_inline_secrets,
                                         &YamlReader::Bool));
  return reader.ReadOptional(keys, "insecure_plaintext",
                             &development->insecure_plaintext,
                             &YamlReader::Bool);
}

absl::Status ParseLogLevelSection(const YamlReader& reader, const Field& field,
                                  Config* config) {
  TB_ASSIGN_OR_RETURN(config->log_level,
                      reader.Enum<std::string>(field, {{"debug", "debug"},
                                                       {"info", "info"},
                                                       {"warning", "warning"},
                                                       {"error", "error"}}));
  return absl::OkStatus();
}

}  // namespace config_internal
}  // namespace tokenbroker
