#include "catalogue.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_split.h"
#include "ecrm/status/macros.h"
#include "ecrm/util/page_token.h"
#include "store_helpers.h"

namespace ecrm::transaction {

namespace {

absl::Status ValidateProduct(const v1::Product& p) {
  ECRM_RETURN_IF_ERROR(ValidateSku(p.sku(), "product.sku"));
  if (p.title().empty() || p.title().size() > 200) return Invalid("product.title", "must be 1–200 bytes");
  if (p.description().size() > 10'000) return Invalid("product.description", "is longer than 10,000 bytes");
  if (p.category().size() > 200) return Invalid("product.category", "is longer than 200 bytes");
  if (!p.category().empty()) {
    for (absl::string_view part : absl::StrSplit(p.category(), '/')) {
      if (part.empty()) return Invalid("product.category", "is a path like \"sports/cycling\" without empty parts");
    }
  }
  const std::string& cur = p.price().currency();
  if (cur.size() != 3 || !absl::ascii_isupper(cur[0]) || !absl::ascii_isupper(cur[1]) || !absl::ascii_isupper(cur[2])) {
    return Invalid("product.price.currency", "must be an ISO 4217 code such as EUR");
  }
  if (p.price().amount_minor() < 0) return Invalid("product.price.amount_minor", "must not be negative");
  if (p.stock() < 0) return Invalid("product.stock", "must not be negative");
  return absl::OkStatus();
}

constexpr absl::string_view kProductColumns =
    "sku, title, description, category, price_minor, currency, active, track_stock, stock, updated_at";

v1::Product ProductFromRow(const sql::Row& r) {
  v1::Product p;
  p.set_sku(std::string(r.Text(0)));
  p.set_title(std::string(r.Text(1)));
  p.set_description(std::string(r.Text(2)));
  p.set_category(std::string(r.Text(3)));
  *p.mutable_price() = MakeMoney(r.Int(4), r.Text(5));
  p.set_active(r.Bool(6));
  p.set_track_stock(r.Bool(7));
  p.set_stock(r.Int(8));
  *p.mutable_updated_at() = Ts(r.Int(9));
  return p;
}

}  // namespace

absl::StatusOr<v1::Product> Catalogue::UpsertProduct(const v1::UpsertProductRequest& req) {
  ECRM_RETURN_IF_ERROR(ValidateProduct(req.product()));
  v1::Product p = req.product();
  const int64_t now = NowMicros();
  *p.mutable_updated_at() = Ts(now);
  ECRM_RETURN_IF_ERROR(db_.InTransaction([&](sql::Connection& c) -> absl::Status {
    return c
        .Execute(absl::StrCat("INSERT INTO products (", kProductColumns,
                              ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (sku) DO UPDATE SET "
                              "title = excluded.title, description = excluded.description, category = "
                              "excluded.category, price_minor = excluded.price_minor, currency = excluded.currency, "
                              "active = excluded.active, track_stock = excluded.track_stock, stock = excluded.stock, "
                              "updated_at = excluded.updated_at"),
                 {p.sku(), p.title(), p.description(), p.category(), p.price().amount_minor(), p.price().currency(),
                  p.active(), p.track_stock(), p.stock(), now})
        .status();
  }));
  return p;
}

absl::StatusOr<v1::Product> Catalogue::GetProduct(const v1::GetProductRequest& req) {
  ECRM_RETURN_IF_ERROR(ValidateSku(req.sku()));
  ECRM_ASSIGN_OR_RETURN(
      sql::Result r,
      db_.Execute(absl::StrCat("SELECT ", kProductColumns, " FROM products WHERE sku = $1"), {req.sku()}));
  if (r.empty()) return absl::NotFoundError(absl::StrCat("sku: no product \"", req.sku(), "\""));
  return ProductFromRow(r.front());
}

absl::StatusOr<v1::ListProductsResponse> Catalogue::ListProducts(const v1::ListProductsRequest& req) {
  const int limit = PageSize(req.page_size());
  ECRM_ASSIGN_OR_RETURN(std::optional<util::PageCursor> cursor,
                        util::DecodePageToken("ListProducts", req.page_token()));
  const std::string after = cursor ? cursor->text : "";
  // A category and everything under it: "a/b", then the range "a/b/" up to "a/b0" ('0' follows '/').
  const std::string& cat = req.category();
  ECRM_ASSIGN_OR_RETURN(
      sql::Result r,
      db_.Execute(absl::StrCat("SELECT ", kProductColumns,
                               " FROM products WHERE sku > $1 AND ($2 = '' OR category = $2 OR (category >= $3 AND "
                               "category < $4)) AND ($5 = 0 OR active = 1) ORDER BY sku LIMIT $6"),
                  {after, cat, absl::StrCat(cat, "/"), absl::StrCat(cat, "0"), req.active_only(), limit + 1}));
  v1::ListProductsResponse out;
  for (size_t i = 0; i < r.size() && static_cast<int>(i) < limit; ++i) *out.add_products() = ProductFromRow(r.row(i));
  if (static_cast<int>(r.size()) > limit)
    out.set_next_page_token(util::EncodePageToken("ListProducts", {0, out.products(limit - 1).sku()}));
  return out;
}

}  // namespace ecrm::transaction
