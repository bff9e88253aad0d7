#ifndef TOKENBROKER_SERVICE_CONFIG_SECTIONS_H_
#define TOKENBROKER_SERVICE_CONFIG_SECTIONS_H_

// Internal to tb_config: the parsers of the top-level keys of a
// configuration, one file each (or a few small ones together). Each reads
// the value `field` of its key into `config` and returns INVALID_ARGUMENT
// at the first error (YamlReader words it). A section may read what a
// section parsed before it left in `config` (config.cc fixes the order).
//
// Adding a section: write its parser in a new file, declare it here and add
// one row to the table in config.cc.

#include <vector>

#include "absl/status/status.h"
#include "service/config/config.h"
#include "service/config/yaml_reader.h"

namespace tokenbroker {
namespace config_internal {

using SectionParser = absl::Status (*)(const YamlReader& reader,
                                       const Field& field, Config* config);

// app_section.cc. Reads config->development.allow_inline_secrets.
absl::Status ParseAppsSection(const YamlReader& reader, const Field& field,
                              Config* config);
// caller_section.cc. Checks each grant against config->apps.
absl::Status ParseCallersSection(const YamlReader& reader, const Field& field,
                                 Config* config);
// listen_section.cc (listen and listen.tls).
absl::Status ParseListenSection(const YamlReader& reader, const Field& field,
                                Config* config);
// cache_section.cc.
absl::Status ParseCacheSection(const YamlReader& reader, const Field& field,
                               Config* config);
// user_app_sections.cc: oauth (the browser flow) and grant_store.
absl::Status ParseOAuthSection(const YamlReader& reader, const Field& field,
                               Config* config);
absl::Status ParseGrantStoreSection(const YamlReader& reader,
                                    const Field& field, Config* config);
// user_app_sections.cc: a list of {id, file} keys, at least one, ids
// unique (grant_store.keys, shared_state.redis.keys).
absl::Status ParseStoreKeyList(const YamlReader& reader, const Field& list,
                               std::vector<StoreKeyConfig>* keys);
// shared_state_section.cc: shared_state (Redis).
absl::Status ParseSharedStateSection(const YamlReader& reader,
                                     const Field& field, Config* config);
// Checks what user apps need of the rest of the config: a grant store, a
// listener for the OAuth pages, a redirect URI. Runs after every section.
absl::Status CheckUserApps(const YamlReader& reader, const YAML::Node& root,
                           const Config& config);
// server_sections.cc: the small sections.
absl::Status ParseUpstreamSection(const YamlReader& reader, const Field& field,
                                  Config* config);
absl::Status ParseLimitsSection(const YamlReader& reader, const Field& field,
                                Config* config);
absl::Status ParseAuditSection(const YamlReader& reader, const Field& field,
                               Config* config);
absl::Status ParseDevelopmentSection(const YamlReader& reader,
                                     const Field& field, Config* config);
absl::Status ParseLogLevelSection(const YamlReader& reader, const Field& field,
                                  Config* config);

}  // namespace config_internal
}  // namespace tokenbroker

#endif  // TOKENBROKER_SERVICE_CONFIG_SECTIONS_H_
