#include "service/store/grant_store.h"

#include <algorithm>
#include <ostream>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "service/common/path_segments.h"
#include "service/common/status_macros.h"

namespace tokenbroker {
namespace {

constexpr size_t kMaxKeyFieldBytes = 256;

absl::Status CheckKeyField(absl::string_view name, absl::string_view value) {
  if (value.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("grant ", name, " is empty"));
  }
  if (value.size() > kMaxKeyFieldBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "grant ", name, " is longer than ", kMaxKeyFieldBytes, " bytes"));
  }
  if (value.find('\0') != absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("grant ", name, " contains a NUL byte"));
  }
  if (!IsValidUtf8(value)) {
    return absl::InvalidArgumentError(
        absl::StrCat("grant ", name, " is not valid UTF-8"));
  }
  return absl::OkStatus();
}

absl::Status CheckText(absl::string_view name, absl::string_view value) {
  if (!IsValidUtf8(value)) {
    return absl::InvalidArgumentError(
        absl::StrCat("grant ", name, " is not valid UTF-8"));
  }
  return absl::OkStatus();
}

}  // namespace

void PrintTo(const UserGrant& grant, std::ostream* out) {
  *out << "UserGrant{app=\"" << grant.app << "\", user_id=\"" << grant.user_id
       << "\", username=\"" << grant.username << "\", refresh_token=<"
       << grant.refresh_token.size() << " bytes>, scopes=["
       << absl::StrJoin(grant.scopes, " ")
       << "], connected_at=" << absl::FormatTime(grant.connected_at)
       << ", updated_at=" << absl::FormatTime(grant.updated_at)
       << ", needs_reauthorization=" << grant.needs_reauthorization
       << ", reauthorization_reason=\"" << grant.reauthorization_reason
       << "\", version=" << grant.version << "}";
}

absl::Status ValidateGrantKey(absl::string_view app,
                              absl::string_view user_id) {
  TB_RETURN_IF_ERROR(CheckKeyField("app", app));
  return CheckKeyField("user_id", user_id);
}

absl::Status ValidateGrant(const UserGrant& grant) {
  TB_RETURN_IF_ERROR(ValidateGrantKey(grant.app, grant.user_id));
  // RFC 6749 A.17: refresh-token = 1*VSCHAR (%x20-7E).
  if (!std::all_of(grant.refresh_token.begin(), grant.refresh_token.end(),
                   [](char c) { return c >= 0x20 && c <= 0x7e; })) {
    return absl::InvalidArgumentError(
        "grant refresh_token holds characters other than printable ASCII");
  }
  TB_RETURN_IF_ERROR(CheckText("username", grant.username));
  TB_RETURN_IF_ERROR(
      CheckText("reauthorization_reason", grant.reauthorization_reason));
  for (const std::string& scope : grant.scopes) {
    TB_RETURN_IF_ERROR(CheckText("scope", scope));
  }
  return absl::OkStatus();
}

}  // namespace tokenbroker
