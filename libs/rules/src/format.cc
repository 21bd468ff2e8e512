// Prints a compiled rule back as text that compiles to the same AST.
#include <charconv>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "ecrm/rules/rule.h"

namespace ecrm::rules {
namespace {

std::string Quote(absl::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) {
          absl::StrAppendFormat(&out, "\\u%04X", static_cast<unsigned char>(c));
        } else {
          out += c;
        }
    }
  }
  out += '"';
  return out;
}

std::string Number(double n) {
  char buf[64];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, n);  // shortest round trip
  return ec == std::errc() ? std::string(buf, end) : "0";
}

std::string Duration(absl::Duration d) {
  const int64_t s = absl::ToInt64Seconds(d);
  if (s % 86400 == 0) return absl::StrCat(s / 86400, "d");
  if (s % 3600 == 0) return absl::StrCat(s / 3600, "h");
  if (s % 60 == 0) return absl::StrCat(s / 60, "m");
  return absl::StrCat(s, "s");
}

absl::string_view Infix(Op op) {
  switch (op) {
    case Op::kAnd:
      return " && ";
    case Op::kOr:
      return " || ";
    case Op::kEq:
      return " == ";
    case Op::kNe:
      return " != ";
    case Op::kLt:
      return " < ";
    case Op::kLe:
      return " <= ";
    case Op::kGt:
      return " > ";
    case Op::kGe:
      return " >= ";
    case Op::kInList:
    case Op::kInField:
    case Op::kInString:
      return " in ";
    case Op::kAdd:
      return " + ";
    case Op::kSub:
      return " - ";
    case Op::kMul:
      return " * ";
    case Op::kDiv:
      return " / ";
    default:
      return " ? ";
  }
}

void Print(const Rule& rule, int32_t index, std::string& out) {
  const Node& n = rule.node(index);
  const absl::Span<const int32_t> kids = rule.children(n);
  auto call = [&](absl::string_view name) {
    absl::StrAppend(&out, name, "(");
    for (size_t i = 0; i < kids.size(); ++i) {
      if (i > 0) out += ", ";
      Print(rule, kids[i], out);
    }
  };
  switch (n.op) {
    case Op::kBool:
      out += n.boolean ? "true" : "false";
      return;
    case Op::kNumber:
      out += Number(n.number);
      return;
    case Op::kString:
      out += Quote(rule.string(n.aux));
      return;
    case Op::kTime:
      absl::StrAppend(&out, "timestamp(\"", absl::FormatTime(absl::RFC3339_full, n.time, absl::UTCTimeZone()), "\")");
      return;
    case Op::kDuration:
      out += Duration(n.duration);
      return;
    case Op::kList:
      out += "[";
      for (size_t i = 0; i < kids.size(); ++i) {
        if (i > 0) out += ", ";
        Print(rule, kids[i], out);
      }
      out += "]";
      return;
    case Op::kField:
      out += rule.field_name(n.aux);
      return;
    case Op::kNow:
      out += "now";
      return;
    case Op::kDaysSince:
      call("days_since");
      break;
    case Op::kEventCount:
      call("events.count");
      if (n.duration != absl::InfiniteDuration()) absl::StrAppend(&out, ", ", Duration(n.duration));
      break;
    case Op::kEventLastAt:
      call("events.last_at");
      break;
    case Op::kSegment:
      call("segment");
      break;
    case Op::kHas:
      call("has");
      break;
    case Op::kNot:
    case Op::kNeg:
      out += n.op == Op::kNot ? "!" : "-";
      Print(rule, kids[0], out);
      return;
    case Op::kStartsWith:
    case Op::kEndsWith:
      Print(rule, kids[0], out);
      out += n.op == Op::kStartsWith ? ".startsWith(" : ".endsWith(";
      Print(rule, kids[1], out);
      break;
    default:
      out += "(";
      for (size_t i = 0; i < kids.size(); ++i) {
        if (i > 0) absl::StrAppend(&out, Infix(n.op));
        Print(rule, kids[i], out);
      }
      break;
  }
  out += ")";
}

}  // namespace

std::string Format(const Rule& rule) {
  std::string out;
  Print(rule, rule.root(), out);
  return out;
}

}  // namespace ecrm::rules
