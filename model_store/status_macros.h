// Early-return helpers for absl::Status and absl::StatusOr, in the style used across
// Headway. Header-only; no state.
#ifndef HEADWAY_MODEL_STORE_STATUS_MACROS_H_
#define HEADWAY_MODEL_STORE_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

// Returns `expr` from the enclosing function when it is not OK.
#define HEADWAY_RETURN_IF_ERROR(expr)                  \
  do {                                                 \
    ::absl::Status headway_status_ = (expr);           \
    if (!headway_status_.ok()) return headway_status_; \
  } while (false)

#define HEADWAY_CONCAT_INNER_(a, b) a##b
#define HEADWAY_CONCAT_(a, b) HEADWAY_CONCAT_INNER_(a, b)

// Evaluates `rexpr` (an absl::StatusOr<T>); returns its status when not OK, else
// moves its value into `lhs` (which may be a declaration).
#define HEADWAY_ASSIGN_OR_RETURN(lhs, rexpr) \
  HEADWAY_ASSIGN_OR_RETURN_IMPL_(HEADWAY_CONCAT_(headway_statusor_, __LINE__), lhs, rexpr)

#define HEADWAY_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                                   \
  if (!statusor.ok()) return statusor.status();              \
  lhs = std::move(statusor).value()

#endif  // HEADWAY_MODEL_STORE_STATUS_MACROS_H_
