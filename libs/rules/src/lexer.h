// Splits rule text into tokens, one at a time, for the parser.
#pragma once

#include <cstdint>
#include <string>
#include "absl/strings/string_view.h"

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace ecrm::rules {

enum class Tok : uint8_t {
  kEnd,
  kIdent,
  kNumber,
  kDuration,
  kString,
  kTrue,
  kFalse,
  kIn,
  kLParen,
  kRParen,
  kLBracket,
  kRBracket,
  kComma,
  kDot,
  kNot,
  kAnd,
  kOr,
  kEq,
  kNe,
  kLt,
  kLe,
  kGt,
  kGe,
  kPlus,
  kMinus,
  kStar,
  kSlash,
};

struct Token {
  Tok kind = Tok::kEnd;
  int32_t begin = 0;  // byte offsets in the source
  int32_t end = 0;
  double number = 0;        // kNumber
  absl::Duration duration;  // kDuration
  std::string text;         // kString: the decoded value
};

class Lexer {
 public:
  explicit Lexer(absl::string_view source) : src_(source) {}
  // The next token, or an INVALID_ARGUMENT error (already "line:column: …").
  absl::Status Next(Token& token);

 private:
  absl::Status LexNumber(Token& token);
  absl::Status LexString(Token& token);

  absl::string_view src_;
  size_t pos_ = 0;
};

// "line:column" of a byte offset (both from 1; columns count UTF-8 characters).
std::string Position(absl::string_view source, int32_t offset);
// INVALID_ARGUMENT "line:column: message".
absl::Status ErrorAt(absl::string_view source, int32_t offset, absl::string_view message);

}  // namespace ecrm::rules
