#include "ecrm/util/page_token.h"

#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace ecrm::util {
namespace {

// Unit separator: cannot appear in a list name and splits off the cursor's number; the text
// is whatever follows the second one, so it may hold any byte.
constexpr char kSeparator = '\x1f';

}  // namespace

std::string EncodePageToken(absl::string_view list, const PageCursor& at) {
  return absl::WebSafeBase64Escape(
      absl::StrCat(list, std::string(1, kSeparator), at.number, std::string(1, kSeparator), at.text));
}

absl::StatusOr<std::optional<PageCursor>> DecodePageToken(absl::string_view list, absl::string_view token) {
  if (token.empty()) return std::nullopt;
  auto refuse = [&] {
    return absl::InvalidArgumentError(absl::StrCat("page_token: is not a token from a previous ", list,
                                                   " response; pass next_page_token unchanged, or none for "
                                                   "the first page"));
  };
  std::string raw;
  if (!absl::WebSafeBase64Unescape(token, &raw)) return refuse();
  std::vector<absl::string_view> parts = absl::StrSplit(raw, absl::MaxSplits(kSeparator, 2));
  PageCursor at;
  if (parts.size() != 3 || parts[0] != list || !absl::SimpleAtoi(parts[1], &at.number)) return refuse();
  at.text = std::string(parts[2]);
  return at;
}

}  // namespace ecrm::util
