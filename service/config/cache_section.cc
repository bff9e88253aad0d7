// The `cache` section: when tokens are refreshed, retried and evicted.

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "service/common/status_macros.h"
#include "service/config/config.h"
#include "service/config/sections.h"
#include "service/config/yaml_reader.h"

namespace tokenbroker {
namespace config_internal {
namespace {

// The checks between two durations of the cache: `lower` must be less than
// `upper` (or not exceed it when `equal_allowed`).
struct DurationOrder {
  absl::string_view lower;
  absl::string_view upper;
  bool equal_allowed;
  absl::Duration CachePolicy::*lower_value;
  absl::Duration CachePolicy::*upper_value;
};

constexpr DurationOrder kDurationOrders[] = {
    {"min_ttl", "max_lifetime", false, &CachePolicy::min_ttl,
     &CachePolicy::max_lifetime},
    {"min_ttl", "default_lifetime", false, &CachePolicy::min_ttl,
     &CachePolicy::default_lifetime},
    {"default_lifetime", "max_lifetime", true, &CachePolicy::default_lifetime,
     &CachePolicy::max_lifetime},
    {"min_lifetime", "default_lifetime", true, &CachePolicy::min_lifetime,
     &CachePolicy::default_lifetime},
    {"backoff_base", "backoff_max", true, &CachePolicy::backoff_base,
     &CachePolicy::backoff_max},
};

absl::Status CheckDurationOrders(const YamlReader& reader, const Field& field,
                                 const FieldMap& keys,
                                 const CachePolicy& cache) {
  for (const DurationOrder& order : kDurationOrders) {
    absl::Duration lower = cache.*order.lower_value;
    absl::Duration upper = cache.*order.upper_value;
    if (order.equal_allowed ? lower <= upper : lower < upper) continue;
    // Name the key that was written, or the cache map when both sides are
    // defaults (which cannot conflict).
    const Field* where = &field;
    for (absl::string_view name : {order.lower, order.upper}) {
      if (auto it = keys.find(std::string(name)); it != keys.end()) {
        where = &it->second;
        break;
      }
    }
    return reader.Error(
        *where,
        absl::StrCat("cache.", order.lower, " (", absl::FormatDuration(lower),
                     order.equal_allowed ? ") must not exceed cache."
                                         : ") must be less than cache.",
                     order.upper, " (", absl::FormatDuration(upper), ")"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ParseCacheSection(const YamlReader& reader, const Field& field,
                               Config* config) {
  CachePolicy* cache = &config->cache;
  FieldMap keys;
  TB_RETURN_IF_ERROR(reader.ReadMap(
      field,
      {"min_ttl", "refresh_fraction", "refresh_jitter", "backoff_base",
       "backoff_max", "rejected_retry", "idle_evict_after", "default_lifetime",
       "min_lifetime", "max_lifetime", "fetch_timeout", "max_waiters_per_key"},
      &keys));
  if (auto it = keys.find("max_waiters_per_key"); it != keys.end()) {
    TB_ASSIGN_OR_RETURN(int64_t value,
                        reader.Count(it->second, 1, 1000000, "1024"));
    cache->max_waiters_per_key = static_cast<int>(value);
  }
  const std::pair<absl::string_view, absl::Duration*> durations[] = {
      {"min_ttl", &cache->min_ttl},
      {"backoff_base", &cache->backoff_base},
      {"backoff_max", &cache->backoff_max},
      {"rejected_retry", &cache->rejected_retry},
      {"idle_evict_after", &cache->idle_evict_after},
      {"default_lifetime", &cache->default_lifetime},
      {"min_lifetime", &cache->min_lifetime},
      {"max_lifetime", &cache->max_lifetime},
      {"fetch_timeout", &cache->fetch_timeout}};
  for (const auto& [name, target] : durations) {
    TB_RETURN_IF_ERROR(reader.ReadOptional(keys, name, target,
                                           &YamlReader::Duration,
                                           /*allow_zero=*/name == "min_ttl"));
  }
  if (auto it = keys.find("refresh_fraction"); it != keys.end()) {
    TB_ASSIGN_OR_RETURN(cache->refresh_fraction, reader.Double(it->second));
    if (!(cache->refresh_fraction > 0 && cache->refresh_fraction < 1)) {
      return reader.Error(it->second,
                          "must be between 0 and 1 exclusive, e.g. 0.66 "
                          "(refresh at two thirds of the token lifetime)");
    }
  }
  if (auto it = keys.find("refresh_jitter"); it != keys.end()) {
    TB_ASSIGN_OR_RETURN(cache->refresh_jitter, reader.Double(it->second));
    if (!(cache->refresh_jitter >= 0 && cache->refresh_jitter < 0.5)) {
      return reader.Error(it->second,
                          "must be at least 0 and less than 0.5, e.g. 0.1");
    }
  }
  return CheckDurationOrders(reader, field, keys, *cache);
}

}  // namespace config_internal
}  // namespace tokenbroker
