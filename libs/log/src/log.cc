#include "ecrm/log/log.h"

#include <unistd.h>

#include <atomic>
#include <cstdio>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"

namespace ecrm::log {
namespace {

struct Settings {
  std::string service = "ecrm";
  std::atomic<int> level{static_cast<int>(Level::kInfo)};
  Format format = Format::kLogfmt;
};

Settings& Current() {
  static Settings* settings = new Settings();  // never destroyed: logging works during exit
  return *settings;
}

absl::string_view LevelName(Level level) {
  switch (level) {
    case Level::kDebug:
      return "debug";
    case Level::kInfo:
      return "info";
    case Level::kWarn:
      return "warn";
    case Level::kError:
      return "error";
  }
  return "info";
}

void AppendEscaped(std::string& out, absl::string_view text) {
  for (char c : text) {
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
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          absl::StrAppendFormat(&out, "\\u%04x", c);
        } else {
          out += c;
        }
    }
  }
}

bool NeedsQuotes(absl::string_view text) {
  if (text.empty()) return true;
  for (char c : text) {
    if (c <= ' ' || c == '"' || c == '=' || c == '\\') return true;
  }
  return false;
}

void AppendPair(std::string& out, Format format, absl::string_view key, absl::string_view text, bool quoted) {
  if (format == Format::kJson) {
    out += out.size() > 1 ? ",\"" : "\"";
    AppendEscaped(out, key);
    out += "\":";
    if (quoted) out += '"';
    AppendEscaped(out, text);
    if (quoted) out += '"';
    return;
  }
  if (!out.empty()) out += ' ';
  out.append(key.data(), key.size());
  out += '=';
  if (NeedsQuotes(text)) {
    out += '"';
    AppendEscaped(out, text);
    out += '"';
  } else {
    out.append(text.data(), text.size());
  }
}

}  // namespace

Value::Value(double v) : text_(absl::StrFormat("%.6g", v)) {}

void Configure(absl::string_view service, Level level, Format format) {
  Settings& s = Current();
  s.service = std::string(service);
  s.level.store(static_cast<int>(level));
  s.format = format;
}

absl::Status ParseLevel(absl::string_view text, Level* level) {
  std::string lower = absl::AsciiStrToLower(text);
  if (lower == "debug")
    *level = Level::kDebug;
  else if (lower == "info")
    *level = Level::kInfo;
  else if (lower == "warn" || lower == "warning")
    *level = Level::kWarn;
  else if (lower == "error")
    *level = Level::kError;
  else
    return absl::InvalidArgumentError(absl::StrCat("log level \"", text, "\" is not one of debug, info, warn, error"));
  return absl::OkStatus();
}

absl::Status ParseFormat(absl::string_view text, Format* format) {
  if (text == "logfmt")
    *format = Format::kLogfmt;
  else if (text == "json")
    *format = Format::kJson;
  else
    return absl::InvalidArgumentError(absl::StrCat("log format \"", text, "\" is not one of logfmt, json"));
  return absl::OkStatus();
}

bool Enabled(Level level) { return static_cast<int>(level) >= Current().level.load(std::memory_order_relaxed); }

std::string Render(absl::Time ts, Level level, absl::string_view msg, Fields fields) {
  const Settings& s = Current();
  std::string out;
  out.reserve(160);
  if (s.format == Format::kJson) out += '{';
  AppendPair(out, s.format, "ts", absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", ts, absl::UTCTimeZone()), true);
  AppendPair(out, s.format, "level", LevelName(level), true);
  AppendPair(out, s.format, "service", s.service, true);
  AppendPair(out, s.format, "msg", msg, true);
  for (const Field& f : fields) AppendPair(out, s.format, f.key, f.value.text(), f.value.quoted());
  if (s.format == Format::kJson) out += '}';
  return out;
}

void Write(Level level, absl::string_view msg, Fields fields) {
  if (!Enabled(level)) return;
  std::string line = Render(absl::Now(), level, msg, fields);
  line += '\n';
  // One write(2) per line keeps lines from different threads whole.
  ssize_t ignored = ::write(STDERR_FILENO, line.data(), line.size());
  (void)ignored;
}

}  // namespace ecrm::log
