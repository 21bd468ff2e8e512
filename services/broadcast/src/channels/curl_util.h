// What the libcurl-based channels share.
#pragma once

#include <curl/curl.h>

#include <algorithm>
#include <mutex>

#include "absl/time/time.h"

namespace ecrm::broadcast::curl_util {

// curl_global_init once per process, before the first handle (libcurl 7.84+ makes it
// thread-safe, older ones need it done before threads; either way once is enough).
inline void EnsureInitialised() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

// A timeout option value in milliseconds, at least 1 (0 would mean "no timeout" to libcurl).
inline long Millis(absl::Duration d) { return static_cast<long>(std::max<int64_t>(1, absl::ToInt64Milliseconds(d))); }

}  // namespace ecrm::broadcast::curl_util
