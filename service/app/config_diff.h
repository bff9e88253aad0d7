#ifndef TOKENBROKER_SERVICE_APP_CONFIG_DIFF_H_
#define TOKENBROKER_SERVICE_APP_CONFIG_DIFF_H_

#include <string>
#include <vector>

#include "service/config/config.h"

namespace tokenbroker {

// What a config reload changes, by name (each list sorted).
struct ConfigDiff {
  // Apps: `changed` means they would fetch tokens differently (SameApp()),
  // so their cached tokens must go.
  std::vector<std::string> added_apps;
  std::vector<std::string> changed_apps;
  std::vector<std::string> removed_apps;
  // Callers: `changed` means any of identities, keys, role or grants.
  std::vector<std::string> added_callers;
  std::vector<std::string> changed_callers;
  std::vector<std::string> removed_callers;
  // Sections read only at start that differ ("listen", "upstream",
  // "audit"): they take effect after a restart.
  std::vector<std::string> restart_only;
};

// Compares two configs. Pure: reads nothing but its arguments (the client
// ids' fingerprints are in the configs, see FingerprintClientIds()).
ConfigDiff DiffConfigs(const Config& before, const Config& after);

}  // namespace tokenbroker

#endif  // TOKENBROKER_SERVICE_APP_CONFIG_DIFF_H_
