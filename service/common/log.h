#ifndef TOKENBROKER_SERVICE_COMMON_LOG_H_
#define TOKENBROKER_SERVICE_COMMON_LOG_H_

#include <string_view>

#include "nlohmann/json.hpp"

namespace tokenbroker {

// Structured logging: one JSON object per line on stderr, for example
//   {"ts":"2026-11-27T07:00:00.123Z","level":"info","msg":"token fetched",
//    "app":"design-center"}
// Never pass a secret or a token in `msg` or `fields`; name a token by
// TokenFingerprint() (service/common/token_fingerprint.h) instead. All
// functions are thread-safe.

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

// Records below `level` are dropped. The default is kInfo.
void SetLogLevel(LogLevel level);
LogLevel GetLogLevel();

// Parses "debug", "info", "warning" (or "warn") and "error".
bool ParseLogLevel(std::string_view text, LogLevel* level);

// Writes one record. `fields` must be a JSON object (or null); its keys are
// merged into the record.
void Log(LogLevel level, std::string_view msg,
         const nlohmann::json& fields = nullptr);

inline void LogDebug(std::string_view msg,
                     const nlohmann::json& fields = nullptr) {
  Log(LogLevel::kDebug, msg, fields);
}
inline void LogInfo(std::string_view msg,
                    const nlohmann::json& fields = nullptr) {
  Log(LogLevel::kInfo, msg, fields);
}
inline void LogWarning(std::string_view msg,
                       const nlohmann::json& fields = nullptr) {
  Log(LogLevel::kWarning, msg, fields);
}
inline void LogError(std::string_view msg,
                     const nlohmann::json& fields = nullptr) {
  Log(LogLevel::kError, msg, fields);
}

// Routes gRPC's own log lines into this logger.
void InstallGrpcLogBridge();

}  // namespace tokenbroker

#endif  // TOKENBROKER_SERVICE_COMMON_LOG_H_
