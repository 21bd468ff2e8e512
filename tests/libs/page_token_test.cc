#include "ecrm/util/page_token.h"

#include <catch2/catch.hpp>

namespace ecrm::util {
namespace {

TEST_CASE("a page token reads back as the cursor it was made from") {
  for (const PageCursor& at : {PageCursor{0, ""}, PageCursor{1764547200000000, "o_0123456789abcdef"},
                               PageCursor{-5, "with \x1f separators\x1f and : colons"}, PageCursor{42, ""}}) {
    absl::StatusOr<std::optional<PageCursor>> back = DecodePageToken("ListOrders", EncodePageToken("ListOrders", at));
    REQUIRE(back.ok());
    REQUIRE(back->has_value());
    CHECK(**back == at);
  }
}

TEST_CASE("an empty page token is the first page") {
  absl::StatusOr<std::optional<PageCursor>> first = DecodePageToken("ListOrders", "");
  REQUIRE(first.ok());
  CHECK_FALSE(first->has_value());
}

TEST_CASE("a token of another list, an edited token or garbage is INVALID_ARGUMENT naming the list") {
  const std::string orders = EncodePageToken("ListOrders", {7, "o_1"});
  std::string edited = orders;
  edited[2] = edited[2] == 'A' ? 'B' : 'A';
  for (const std::string& token : {EncodePageToken("ListInquiries", {7, "o_1"}), edited, std::string("garbage"),
                                   std::string("7:o_1"), std::string("!!!")}) {
    absl::StatusOr<std::optional<PageCursor>> r = DecodePageToken("ListOrders", token);
    INFO(token);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK(r.status().message().find("page_token: is not a token from a previous ListOrders response") == 0);
  }
}

}  // namespace
}  // namespace ecrm::util
