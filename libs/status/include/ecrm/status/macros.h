// Early-return helpers for absl::Status / absl::StatusOr.
#pragma once

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define ECRM_STATUS_CONCAT_INNER(a, b) a##b
#define ECRM_STATUS_CONCAT(a, b) ECRM_STATUS_CONCAT_INNER(a, b)

// ECRM_ASSIGN_OR_RETURN(auto x, StatusOrExpr): binds the value, or returns the error.
#define ECRM_ASSIGN_OR_RETURN(lhs, expr) \
  ECRM_ASSIGN_OR_RETURN_IMPL(ECRM_STATUS_CONCAT(ecrm_statusor_, __LINE__), lhs, expr)
#define ECRM_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                               \
  if (!tmp.ok()) return tmp.status();              \
  lhs = std::move(*tmp)

#define ECRM_RETURN_IF_ERROR(expr)                                    \
  do {                                                                \
    if (absl::Status ecrm_s_ = (expr); !ecrm_s_.ok()) return ecrm_s_; \
  } while (0)
