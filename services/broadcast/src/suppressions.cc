#include "suppressions.h"

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "ecrm/status/macros.h"
#include "ecrm/util/page_token.h"
#include "ecrm/util/util.h"

namespace ecrm::broadcast {
namespace {

constexpr absl::string_view kReasons[] = {"hard_bounce", "complaint", "unsubscribed", "manual", "erased"};

absl::Status ValidateTarget(common::v1::Channel channel, const std::string& address, const std::string& customer_id,
                            absl::string_view prefix) {
  if (!common::v1::Channel_IsValid(channel)) return util::Invalid(absl::StrCat(prefix, "channel"), "is not a channel");
  if (address.empty() == customer_id.empty()) {
    return util::Invalid(absl::StrCat(prefix, "address"), "exactly one of address and customer_id must be set");
  }
  if (address.size() > 320 || customer_id.size() > 128) {
    return util::Invalid(absl::StrCat(prefix, address.empty() ? "customer_id" : "address"), "is too long");
  }
  return absl::OkStatus();
}

v1::Suppression ToProto(const sql::Row& r) {
  v1::Suppression s;
  s.set_channel(static_cast<common::v1::Channel>(r.Int(0)));
  s.set_address(std::string(r.Text(1)));
  s.set_customer_id(std::string(r.Text(2)));
  s.set_reason(std::string(r.Text(3)));
  *s.mutable_created_at() = util::Ts(r.Int(4));
  return s;
}

}  // namespace

std::string HashedAddress(const std::string& normalised) {
  return absl::StrCat("sha256:", util::Sha256Hex(normalised));
}

absl::Status Suppressions::AddIn(sql::Connection& c, const SuppressionEntry& e) {
  return c
      .Execute(
          "INSERT INTO suppressions (channel, address, customer_id, reason, created_at) VALUES ($1, $2, $3, $4, "
          "$5) ON CONFLICT (channel, address, customer_id) DO NOTHING",
          {static_cast<int>(e.channel), e.address, e.customer_id, e.reason, e.created_at_us})
      .status();
}

absl::StatusOr<std::vector<SuppressionEntry>> Suppressions::ForCustomer(sql::Connection& c,
                                                                        const std::string& customer_id,
                                                                        const std::vector<std::string>& addresses) {
  std::vector<SuppressionEntry> out;
  auto collect = [&](const sql::Result& r) {
    for (sql::Row row : r) {
      out.push_back({static_cast<common::v1::Channel>(row.Int(0)), std::string(row.Text(1)), std::string(row.Text(2)),
                     std::string(row.Text(3)), row.Int(4)});
    }
  };
  ECRM_ASSIGN_OR_RETURN(sql::Result mine, c.Execute("SELECT channel, address, customer_id, reason, created_at FROM "
                                                    "suppressions WHERE customer_id = $1",
                                                    {customer_id}));
  collect(mine);
  for (const std::string& a : addresses) {
    if (a.empty()) continue;
    ECRM_ASSIGN_OR_RETURN(sql::Result r, c.Execute("SELECT channel, address, customer_id, reason, created_at FROM "
                                                   "suppressions WHERE customer_id = '' AND address IN ($1, $2)",
                                                   {a, HashedAddress(a)}));
    for (sql::Row row : r) {
      // A hashed entry stands for the address it hashes.
      out.push_back({static_cast<common::v1::Channel>(row.Int(0)), a, "", std::string(row.Text(3)), row.Int(4)});
    }
  }
  return out;
}

absl::StatusOr<v1::Suppression> Suppressions::Add(const v1::AddSuppressionRequest& req) {
  const v1::Suppression& s = req.suppression();
  ECRM_RETURN_IF_ERROR(ValidateTarget(s.channel(), s.address(), s.customer_id(), "suppression."));
  std::string reason = s.reason().empty() ? "manual" : s.reason();
  if (std::find(std::begin(kReasons), std::end(kReasons), reason) == std::end(kReasons)) {
    return util::Invalid("suppression.reason", "must be hard_bounce, complaint, unsubscribed, manual or erased");
  }
  SuppressionEntry e{s.channel(), NormaliseAddress(s.channel(), s.address()), s.customer_id(), reason,
                     util::NowMicros()};
  v1::Suppression out;
  ECRM_RETURN_IF_ERROR(db_.InTransaction([&](sql::Connection& c) -> absl::Status {
    ECRM_RETURN_IF_ERROR(AddIn(c, e));
    ECRM_ASSIGN_OR_RETURN(sql::Result r, c.Execute("SELECT channel, address, customer_id, reason, created_at FROM "
                                                   "suppressions WHERE channel = $1 AND address = $2 AND customer_id "
                                                   "= $3",
                                                   {static_cast<int>(e.channel), e.address, e.customer_id}));
    out = ToProto(r.front());
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<v1::ListSuppressionsResponse> Suppressions::List(const v1::ListSuppressionsRequest& req) {
  if (!common::v1::Channel_IsValid(req.channel())) return util::Invalid("channel", "is not a channel");
  ECRM_ASSIGN_OR_RETURN(std::optional<util::PageCursor> after,
                        util::DecodePageToken("ListSuppressions", req.page_token()));
  const int size = util::PageSize(req.page_size());
  // Keyset on (created_at, channel|address|customer) newest first.
  std::string sql =
      "SELECT channel, address, customer_id, reason, created_at, channel || '|' || address || '|' || customer_id AS k "
      "FROM suppressions WHERE 1 = 1";
  std::vector<sql::Value> params;
  if (req.channel() != common::v1::CHANNEL_UNSPECIFIED) {
    params.emplace_back(static_cast<int>(req.channel()));
    absl::StrAppend(&sql, " AND channel = $", params.size());
  }
  if (after) {
    params.emplace_back(after->number);
    params.emplace_back(after->text);
    absl::StrAppend(&sql, " AND (created_at < $", params.size() - 1, " OR (created_at = $", params.size() - 1,
                    " AND channel || '|' || address || '|' || customer_id < $", params.size(), "))");
  }
  params.emplace_back(size + 1);
  absl::StrAppend(&sql, " ORDER BY created_at DESC, k DESC LIMIT $", params.size());
  ECRM_ASSIGN_OR_RETURN(sql::Lease conn, db_.Acquire());
  ECRM_ASSIGN_OR_RETURN(sql::Result r, conn->Execute(sql, params));
  v1::ListSuppressionsResponse out;
  for (size_t i = 0; i < r.size() && static_cast<int>(i) < size; ++i) *out.add_suppressions() = ToProto(r.row(i));
  if (static_cast<int>(r.size()) > size) {
    sql::Row last = r.row(size - 1);
    out.set_next_page_token(util::EncodePageToken("ListSuppressions", {last.Int(4), std::string(last.Text(5))}));
  }
  return out;
}

absl::Status Suppressions::Remove(const v1::RemoveSuppressionRequest& req) {
  ECRM_RETURN_IF_ERROR(ValidateTarget(req.channel(), req.address(), req.customer_id(), ""));
  ECRM_ASSIGN_OR_RETURN(sql::Result r,
                        db_.Execute("DELETE FROM suppressions WHERE channel = $1 AND address = $2 AND customer_id = $3",
                                    {static_cast<int>(req.channel()), NormaliseAddress(req.channel(), req.address()),
                                     req.customer_id()}));
  if (r.rows_affected() == 0) return absl::NotFoundError("no such suppression on this channel");
  return absl::OkStatus();
}

absl::StatusOr<std::map<std::string, std::vector<SuppressionEntry>>> Suppressions::ForCustomers(
    sql::Connection& c, const std::map<std::string, std::vector<std::string>>& addresses_by_customer) {
  constexpr size_t kChunk = 500;
  std::map<std::string, std::vector<SuppressionEntry>> out;
  std::vector<std::string> customers;
  // A stored address (plain or hashed) -> the plain addresses it stands for.
  std::map<std::string, std::vector<std::string>> lookups;
  for (const auto& [customer, addresses] : addresses_by_customer) {
    out[customer];
    customers.push_back(customer);
    for (const std::string& a : addresses) {
      if (a.empty()) continue;
      lookups[a].push_back(a);
      lookups[HashedAddress(a)].push_back(a);
    }
  }
  for (size_t i = 0; i < customers.size(); i += kChunk) {
    const size_t n = std::min(kChunk, customers.size() - i);
    std::vector<sql::Value> params(customers.begin() + static_cast<std::ptrdiff_t>(i),
                                   customers.begin() + static_cast<std::ptrdiff_t>(i + n));
    ECRM_ASSIGN_OR_RETURN(sql::Result r, c.Execute(absl::StrCat("SELECT channel, address, customer_id, reason, "
                                                                "created_at FROM suppressions WHERE customer_id IN (",
                                                                util::Placeholders(1, static_cast<int>(n)), ")"),
                                                   params));
    for (sql::Row row : r) {
      out[std::string(row.Text(2))].push_back({static_cast<common::v1::Channel>(row.Int(0)), std::string(row.Text(1)),
                                               std::string(row.Text(2)), std::string(row.Text(3)), row.Int(4)});
    }
  }
  // Which customers have each plain address (a shared address concerns each of them).
  std::map<std::string, std::vector<std::string>> customers_of;
  for (const auto& [customer, addresses] : addresses_by_customer) {
    for (const std::string& a : addresses) {
      if (!a.empty()) customers_of[a].push_back(customer);
    }
  }
  std::vector<std::string> keys;
  for (const auto& [stored, plain] : lookups) keys.push_back(stored);
  for (size_t i = 0; i < keys.size(); i += kChunk) {
    const size_t n = std::min(kChunk, keys.size() - i);
    std::vector<sql::Value> params(keys.begin() + static_cast<std::ptrdiff_t>(i),
                                   keys.begin() + static_cast<std::ptrdiff_t>(i + n));
    ECRM_ASSIGN_OR_RETURN(
        sql::Result r,
        c.Execute(absl::StrCat("SELECT channel, address, customer_id, reason, created_at FROM suppressions WHERE "
                               "customer_id = '' AND address IN (",
                               util::Placeholders(1, static_cast<int>(n)), ")"),
                  params));
    for (sql::Row row : r) {
      auto it = lookups.find(std::string(row.Text(1)));
      if (it == lookups.end()) continue;
      std::set<std::string> plains(it->second.begin(), it->second.end());
      for (const std::string& a : plains) {
        // A hashed entry stands for the address it hashes.
        for (const std::string& customer : customers_of[a]) {
          out[customer].push_back(
              {static_cast<common::v1::Channel>(row.Int(0)), a, "", std::string(row.Text(3)), row.Int(4)});
        }
      }
    }
  }
  return out;
}

}  // namespace ecrm::broadcast
