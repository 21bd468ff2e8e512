#include "lexer.h"

#include <charconv>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace ecrm::rules {
namespace {

bool IsIdentStart(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsIdentChar(char c) { return IsIdentStart(c) || IsDigit(c); }

// The longest duration literal: 100 years of days.
constexpr int64_t kMaxDurationSeconds = int64_t{36500} * 86400;

void AppendUtf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// A character as an error shows it: printable ASCII quoted, anything else as a code.
std::string ShowChar(char c) {
  const auto u = static_cast<unsigned char>(c);
  if (u >= 0x20 && u < 0x7F) return absl::StrCat("'", absl::string_view(&c, 1), "'");
  return absl::StrFormat("byte 0x%02X", u);
}

}  // namespace

std::string Position(absl::string_view source, int32_t offset) {
  int line = 1, column = 1;
  const size_t end = std::min<size_t>(static_cast<size_t>(std::max(offset, 0)), source.size());
  for (size_t i = 0; i < end; ++i) {
    const char c = source[i];
    if (c == '\n') {
      ++line;
      column = 1;
    } else if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) {
      ++column;
    }
  }
  return absl::StrCat(line, ":", column);
}

absl::Status ErrorAt(absl::string_view source, int32_t offset, absl::string_view message) {
  return absl::InvalidArgumentError(absl::StrCat(Position(source, offset), ": ", message));
}

absl::Status Lexer::Next(Token& token) {
  // Blanks and // comments.
  while (pos_ < src_.size()) {
    const char c = src_[pos_];
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      ++pos_;
    } else if (c == '/' && pos_ + 1 < src_.size() && src_[pos_ + 1] == '/') {
      while (pos_ < src_.size() && src_[pos_] != '\n') ++pos_;
    } else {
      break;
    }
  }
  token.begin = static_cast<int32_t>(pos_);
  token.text.clear();
  if (pos_ >= src_.size()) {
    token.kind = Tok::kEnd;
    token.end = token.begin;
    return absl::OkStatus();
  }
  const char c = src_[pos_];
  if (IsIdentStart(c)) {
    size_t end = pos_ + 1;
    while (end < src_.size() && IsIdentChar(src_[end])) ++end;
    const absl::string_view word = src_.substr(pos_, end - pos_);
    token.kind = word == "true" ? Tok::kTrue : word == "false" ? Tok::kFalse : word == "in" ? Tok::kIn : Tok::kIdent;
    pos_ = end;
    token.end = static_cast<int32_t>(end);
    return absl::OkStatus();
  }
  if (IsDigit(c) || (c == '.' && pos_ + 1 < src_.size() && IsDigit(src_[pos_ + 1]))) return LexNumber(token);
  if (c == '"') return LexString(token);
  if (c == '\'')
    return ErrorAt(src_, token.begin, "expected a value, found ''' (strings are written in double quotes)");

  auto two = [&](char second) { return pos_ + 1 < src_.size() && src_[pos_ + 1] == second; };
  int len = 1;
  switch (c) {
    case '(':
      token.kind = Tok::kLParen;
      break;
    case ')':
      token.kind = Tok::kRParen;
      break;
    case '[':
      token.kind = Tok::kLBracket;
      break;
    case ']':
      token.kind = Tok::kRBracket;
      break;
    case ',':
      token.kind = Tok::kComma;
      break;
    case '.':
      token.kind = Tok::kDot;
      break;
    case '+':
      token.kind = Tok::kPlus;
      break;
    case '-':
      token.kind = Tok::kMinus;
      break;
    case '*':
      token.kind = Tok::kStar;
      break;
    case '/':
      token.kind = Tok::kSlash;
      break;
    case '!':
      token.kind = two('=') ? Tok::kNe : Tok::kNot;
      len = two('=') ? 2 : 1;
      break;
    case '<':
      token.kind = two('=') ? Tok::kLe : Tok::kLt;
      len = two('=') ? 2 : 1;
      break;
    case '>':
      token.kind = two('=') ? Tok::kGe : Tok::kGt;
      len = two('=') ? 2 : 1;
      break;
    case '=':
      if (!two('=')) return ErrorAt(src_, token.begin, "expected '==' (equality), found '='");
      token.kind = Tok::kEq;
      len = 2;
      break;
    case '&':
      if (!two('&')) return ErrorAt(src_, token.begin, "expected '&&', found '&'");
      token.kind = Tok::kAnd;
      len = 2;
      break;
    case '|':
      if (!two('|')) return ErrorAt(src_, token.begin, "expected '||', found '|'");
      token.kind = Tok::kOr;
      len = 2;
      break;
    default:
      return ErrorAt(src_, token.begin, absl::StrCat("unexpected character ", ShowChar(c)));
  }
  pos_ += len;
  token.end = static_cast<int32_t>(pos_);
  return absl::OkStatus();
}

absl::Status Lexer::LexNumber(Token& token) {
  size_t end = pos_;
  while (end < src_.size() && IsDigit(src_[end])) ++end;
  bool fraction = false;
  if (end < src_.size() && src_[end] == '.' && end + 1 < src_.size() && IsDigit(src_[end + 1])) {
    fraction = true;
    ++end;
    while (end < src_.size() && IsDigit(src_[end])) ++end;
  }
  if (end < src_.size() && (src_[end] == 'e' || src_[end] == 'E')) {
    size_t e = end + 1;
    if (e < src_.size() && (src_[e] == '+' || src_[e] == '-')) ++e;
    if (e < src_.size() && IsDigit(src_[e])) {
      fraction = true;  // not a whole number: no duration unit may follow
      end = e;
      while (end < src_.size() && IsDigit(src_[end])) ++end;
    }
  }
  size_t suffix_end = end;
  while (suffix_end < src_.size() && IsIdentChar(src_[suffix_end])) ++suffix_end;
  const absl::string_view digits = src_.substr(pos_, end - pos_);
  const absl::string_view suffix = src_.substr(end, suffix_end - end);
  const absl::string_view whole = src_.substr(pos_, suffix_end - pos_);
  if (!suffix.empty()) {
    int64_t unit = 0;
    if (suffix == "d") unit = 86400;
    if (suffix == "h") unit = 3600;
    if (suffix == "m") unit = 60;
    if (suffix == "s") unit = 1;
    if (unit == 0) {
      return ErrorAt(src_, token.begin,
                     absl::StrCat("expected a number or a duration such as 30d, 12h, 15m or 90s, found '",
                                  whole.substr(0, 40), "'"));
    }
    if (fraction || digits.empty() || digits[0] == '.') {
      return ErrorAt(src_, token.begin,
                     absl::StrCat("expected a whole number of days, hours, minutes or seconds, found '",
                                  whole.substr(0, 40), "'"));
    }
    int64_t n = 0;
    for (char d : digits) {
      n = n * 10 + (d - '0');
      if (n * unit > kMaxDurationSeconds) {
        return ErrorAt(src_, token.begin,
                       absl::StrCat("expected a duration of at most 36500d, found '", whole.substr(0, 40), "'"));
      }
    }
    token.kind = Tok::kDuration;
    token.duration = absl::Seconds(n * unit);
  } else {
    if (digits.size() > 64) {
      return ErrorAt(src_, token.begin, "expected a number of at most 64 characters, found a longer one");
    }
    double value = 0;
    const auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
    if (ec == std::errc::result_out_of_range || (ec == std::errc() && !std::isfinite(value))) {
      return ErrorAt(src_, token.begin, absl::StrCat("expected a number a double can hold, found '", digits, "'"));
    }
    if (ec != std::errc() || ptr != digits.data() + digits.size()) {
      return ErrorAt(src_, token.begin, absl::StrCat("expected a number, found '", digits, "'"));
    }
    token.kind = Tok::kNumber;
    token.number = value;
  }
  pos_ = suffix_end;
  token.end = static_cast<int32_t>(pos_);
  return absl::OkStatus();
}

absl::Status Lexer::LexString(Token& token) {
  size_t i = pos_ + 1;
  std::string& out = token.text;
  while (true) {
    if (i >= src_.size()) return ErrorAt(src_, token.begin, "expected '\"' to close the string, found end of rule");
    const char c = src_[i];
    if (c == '"') break;
    if (c == '\n') return ErrorAt(src_, token.begin, "expected '\"' to close the string, found end of line");
    if (c != '\\') {
      out += c;
      ++i;
      continue;
    }
    if (i + 1 >= src_.size()) {
      return ErrorAt(src_, token.begin, "expected '\"' to close the string, found end of rule");
    }
    const char e = src_[i + 1];
    switch (e) {
      case '"':
        out += '"';
        break;
      case '\\':
        out += '\\';
        break;
      case 'n':
        out += '\n';
        break;
      case 't':
        out += '\t';
        break;
      case 'r':
        out += '\r';
        break;
      case 'u': {
        uint32_t cp = 0;
        for (int k = 0; k < 4; ++k) {
          const int h = i + 2 + k < src_.size() ? HexValue(src_[i + 2 + k]) : -1;
          if (h < 0) {
            return ErrorAt(src_, static_cast<int32_t>(i), "expected four hexadecimal digits after '\\u', found fewer");
          }
          cp = cp * 16 + static_cast<uint32_t>(h);
        }
        if (cp >= 0xD800 && cp <= 0xDFFF) {
          return ErrorAt(src_, static_cast<int32_t>(i), "expected a character after '\\u', found a UTF-16 surrogate");
        }
        AppendUtf8(out, cp);
        i += 6;
        continue;
      }
      default: {
        const auto u = static_cast<unsigned char>(e);
        const std::string shown =
            u >= 0x20 && u < 0x7F ? absl::StrCat("'\\", absl::string_view(&e, 1), "'") : ShowChar(e);
        return ErrorAt(src_, static_cast<int32_t>(i),
                       absl::StrCat("expected an escape such as \\\" \\\\ \\n \\t \\r or \\uXXXX, found ", shown));
      }
    }
    i += 2;
  }
  pos_ = i + 1;
  token.kind = Tok::kString;
  token.end = static_cast<int32_t>(pos_);
  return absl::OkStatus();
}

}  // namespace ecrm::rules
