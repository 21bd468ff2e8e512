// Structured logging: one line per event, logfmt (key=value) or JSON, with a level.
//
//   ecrm::log::Info("server started", {{"grpc_address", addr}, {"port", port}});
//   → ts=2026-11-22T07:44:17.123Z level=info service=ecrm-infostore msg="server started" ...
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <type_traits>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace ecrm::log {

enum class Level { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };
enum class Format { kLogfmt, kJson };

// A field value, rendered to text once at the call site.
class Value {
 public:
  Value(absl::string_view v) : text_(v), quoted_(true) {}
  Value(const char* v) : text_(v), quoted_(true) {}
  Value(const std::string& v) : text_(v), quoted_(true) {}
  Value(bool v) : text_(v ? "true" : "false") {}
  template <typename T, std::enable_if_t<std::is_integral_v<T> && !std::is_same_v<T, bool>, int> = 0>
  Value(T v) : text_(absl::StrCat(v)) {}
  Value(double v);
  Value(const absl::Status& s) : text_(s.ToString()), quoted_(true) {}
  Value(absl::Duration d) : text_(absl::FormatDuration(d)), quoted_(true) {}

  const std::string& text() const { return text_; }
  bool quoted() const { return quoted_; }

 private:
  std::string text_;
  bool quoted_ = false;
};

struct Field {
  absl::string_view key;
  Value value;
};
using Fields = std::initializer_list<Field>;

// Process-wide settings; set once from main before threads start.
void Configure(absl::string_view service, Level level, Format format);
absl::Status ParseLevel(absl::string_view text, Level* level);
absl::Status ParseFormat(absl::string_view text, Format* format);
bool Enabled(Level level);

// Renders one line without the trailing newline (exposed for tests).
std::string Render(absl::Time ts, Level level, absl::string_view msg, Fields fields);

void Write(Level level, absl::string_view msg, Fields fields = {});
inline void Debug(absl::string_view msg, Fields f = {}) { Write(Level::kDebug, msg, f); }
inline void Info(absl::string_view msg, Fields f = {}) { Write(Level::kInfo, msg, f); }
inline void Warn(absl::string_view msg, Fields f = {}) { Write(Level::kWarn, msg, f); }
inline void Error(absl::string_view msg, Fields f = {}) { Write(Level::kError, msg, f); }

}  // namespace ecrm::log
