// Unit tests of identifier normalisation (no server).
#include <catch2/catch.hpp>
#include <fstream>
#include <iterator>
#include <regex>

#include "identifiers.h"

using ecrm::infostore::IsStrong;
using ecrm::infostore::Normalize;
namespace common = ecrm::common::v1;

namespace {

common::Identifier Id(common::IdentifierType type, const std::string& value, const std::string& source = "") {
  common::Identifier id;
  id.set_type(type);
  id.set_value(value);
  id.set_source(source);
  return id;
}

std::string Value(const common::Identifier& id, const std::string& region = "GB") {
  auto n = Normalize(id, "identifiers[0]", region);
  INFO(n.status().ToString());
  REQUIRE(n.ok());
  return n->value();
}

void Rejected(const common::Identifier& id, const std::string& field) {
  auto n = Normalize(id, "identifiers[3]", "GB");
  CHECK(n.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK_THAT(std::string(n.status().message()), Catch::StartsWith(field));
}

}  // namespace

TEST_CASE("emails are trimmed and lower-cased and malformed ones are rejected") {
  CHECK(Value(Id(common::IDENTIFIER_TYPE_EMAIL, "  Ann.Smith@Example.COM\t")) == "ann.smith@example.com");
  for (const char* bad : {"ann", "@example.com", "ann@", "ann@example", "a b@example.com", "a@@b.co"}) {
    INFO(bad);
    Rejected(Id(common::IDENTIFIER_TYPE_EMAIL, bad), "identifiers[3].value");
  }
}

TEST_CASE("phone numbers become E.164 in the default region and invalid ones are rejected") {
  CHECK(Value(Id(common::IDENTIFIER_TYPE_PHONE, "+44 7911 123456")) == "+447911123456");
  CHECK(Value(Id(common::IDENTIFIER_TYPE_PHONE, "07911 123456")) == "+447911123456");
  CHECK(Value(Id(common::IDENTIFIER_TYPE_PHONE, "030 1234567"), "DE") == "+49301234567");
  Rejected(Id(common::IDENTIFIER_TYPE_PHONE, "12"), "identifiers[3].value");
  Rejected(Id(common::IDENTIFIER_TYPE_PHONE, "call me"), "identifiers[3].value");
}

TEST_CASE("external ids need their source system and other kinds may not have one") {
  auto n = Normalize(Id(common::IDENTIFIER_TYPE_EXTERNAL_ID, " K-42 ", "erp"), "identifiers[0]", "GB");
  REQUIRE(n.ok());
  CHECK(n->value() == "K-42");
  CHECK(n->source() == "erp");
  Rejected(Id(common::IDENTIFIER_TYPE_EXTERNAL_ID, "K-42"), "identifiers[3].source");
  Rejected(Id(common::IDENTIFIER_TYPE_EXTERNAL_ID, "K-42", "ERP System"), "identifiers[3].source");
  Rejected(Id(common::IDENTIFIER_TYPE_EMAIL, "a@b.co", "erp"), "identifiers[3].source");
  Rejected(Id(common::IDENTIFIER_TYPE_UNSPECIFIED, "x"), "identifiers[3].type");
  Rejected(Id(common::IDENTIFIER_TYPE_DEVICE_ID, "   "), "identifiers[3].value");
  Rejected(Id(common::IDENTIFIER_TYPE_LOYALTY_CARD, std::string(300, '9')), "identifiers[3].value");
}

TEST_CASE("a rejected identifier's error names the field and the rule, never the value") {
  for (const auto& id :
       {Id(common::IDENTIFIER_TYPE_EMAIL, "zelda.quist@example"),
        Id(common::IDENTIFIER_TYPE_EMAIL, "zelda quist@example.com"), Id(common::IDENTIFIER_TYPE_PHONE, "zelda 0791"),
        Id(common::IDENTIFIER_TYPE_PHONE, "+44 1632 960999 12345")}) {
    auto n = Normalize(id, "identifiers[0]", "GB");
    const std::string message(n.status().message());
    INFO(message);
    CHECK(n.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK_THAT(message, Catch::StartsWith("identifiers[0].value: is not a"));
    CHECK(message.find("zelda") == std::string::npos);
    CHECK(message.find("1632 960999") == std::string::npos);
  }
}

TEST_CASE("only device ids are weak") {
  CHECK(IsStrong(common::IDENTIFIER_TYPE_EMAIL));
  CHECK(IsStrong(common::IDENTIFIER_TYPE_PHONE));
  CHECK(IsStrong(common::IDENTIFIER_TYPE_EXTERNAL_ID));
  CHECK(IsStrong(common::IDENTIFIER_TYPE_LOYALTY_CARD));
  CHECK_FALSE(IsStrong(common::IDENTIFIER_TYPE_DEVICE_ID));
}

TEST_CASE("the contract's own phone example is accepted as written") {
  std::ifstream proto(std::string(ECRM_SOURCE_DIR) + "/proto/ecrm/common/v1/common.proto");
  const std::string text((std::istreambuf_iterator<char>(proto)), std::istreambuf_iterator<char>());
  std::smatch example;
  REQUIRE(
      std::regex_search(text, example, std::regex(R"re(Phone number; normalised to E\.164 \(e\.g\. "(\+[0-9]+)")re")));
  CHECK(Value(Id(common::IDENTIFIER_TYPE_PHONE, example[1].str())) == example[1].str());
  // Ofcom's drama range for mobiles is only of a possible length, not a valid number.
  Rejected(Id(common::IDENTIFIER_TYPE_PHONE, "+447700900123"), "identifiers[3].value");
}
