#ifndef TOKENBROKER_SERVICE_COMMON_STATUS_MACROS_H_
#define TOKENBROKER_SERVICE_COMMON_STATUS_MACROS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

// Early returns for absl::Status / absl::StatusOr, as in Abseil's internal
// status macros (Debian's Abseil 20220623 ships none).
//
//   TB_RETURN_IF_ERROR(DoThing());
//   TB_ASSIGN_OR_RETURN(std::string text, ReadFile(path));  // declares
//   TB_ASSIGN_OR_RETURN(existing, Parse(text));             // assigns

#define TB_STATUS_MACROS_CONCAT_INNER_(a, b) a##b
#define TB_STATUS_MACROS_CONCAT_(a, b) TB_STATUS_MACROS_CONCAT_INNER_(a, b)

// Returns the status of `expr` if it is not OK.
#define TB_RETURN_IF_ERROR(expr)                          \
  do {                                                    \
    const absl::Status tb_status_macros_status_ = (expr); \
    if (!tb_status_macros_status_.ok()) {                 \
      return tb_status_macros_status_;                    \
    }                                                     \
  } while (false)

// Evaluates `expr` (an absl::StatusOr<T>); returns its status if it is not
// OK, else moves its value into `lhs` (a declaration or an lvalue).
#define TB_ASSIGN_OR_RETURN(lhs, expr) \
  TB_ASSIGN_OR_RETURN_IMPL_(           \
      TB_STATUS_MACROS_CONCAT_(tb_status_macros_or_, __LINE__), lhs, expr)

#define TB_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                              \
  if (!statusor.ok()) return statusor.status();        \
  lhs = *std::move(statusor)

#endif  // TOKENBROKER_SERVICE_COMMON_STATUS_MACROS_H_
