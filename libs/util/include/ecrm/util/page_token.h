// Keyset page tokens (AIP-158): opaque to clients and bound to the list they continue, so a
// token from another list, an edited token or a made-up one is refused with INVALID_ARGUMENT
// instead of silently restarting or skipping part of a listing.
//
//   ECRM_ASSIGN_OR_RETURN(std::optional<util::PageCursor> after,
//                         util::DecodePageToken("ListOrders", req.page_token()));
//   … WHERE (created_at, id) < (after->number, after->text) …
//   out.set_next_page_token(util::EncodePageToken("ListOrders", {last.created_at, last.id}));
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ecrm::util {

// Where the previous page ended: a number (a time, a sequence) and/or a text (an id, a key).
struct PageCursor {
  int64_t number = 0;
  std::string text;
  bool operator==(const PageCursor&) const = default;
};

std::string EncodePageToken(absl::string_view list, const PageCursor& at);

// nullopt for an empty token (the first page); INVALID_ARGUMENT "page_token: …" naming `list`
// for anything EncodePageToken(list, …) did not make.
absl::StatusOr<std::optional<PageCursor>> DecodePageToken(absl::string_view list, absl::string_view token);

}  // namespace ecrm::util
