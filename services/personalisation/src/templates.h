// Message templates: CRUD with every version kept, per channel, in several locales.
//
// A template belongs to a channel (email: subject + HTML and/or text; SMS: text; push: title in
// `subject` + body in `text_body`; web inbox: title + HTML) and is parsed when saved (a syntax
// error is INVALID_ARGUMENT naming the field, line and column). UpdateTemplate makes a new
// version; every version stays readable (GetTemplate by version). Templates with the same name
// and channel are one message in several locales: rendering template T for a customer whose
// locale is fr-CA uses the fr-CA variant of T's message, else fr, else the variant without a
// locale, else T itself.
//
// Parsed versions are kept in memory (a version never changes, so the copy is never stale);
// which version is the latest is read from the database on every render, so several replicas
// see each other's updates at once.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "ecrm/personalisation/v1/personalisation.pb.h"
#include "ecrm/sql/sql.h"
#include "metrics.h"
#include "mustache.h"

namespace ecrm::personalisation {

// One version of a template, parsed.
struct CompiledTemplate {
  v1::Template proto;
  mustache::Template subject;
  mustache::Template text_body;
  mustache::Template html_body;
};

// One locale of a message: a template's id, locale and latest version.
struct TemplateVariant {
  std::string id;
  std::string locale;
  int64_t version = 0;
};

class Templates {
 public:
  using Clock = std::function<absl::Time()>;
  Templates(sql::Database& db, PersonalisationMetrics& metrics, Clock clock = absl::Now)
      : db_(db), metrics_(metrics), clock_(std::move(clock)) {}

  // Id, version and times of `t` are ignored. ALREADY_EXISTS when the name, channel and
  // locale are taken.
  absl::StatusOr<v1::Template> Create(const v1::Template& t);
  // version 0: the latest.
  absl::StatusOr<v1::Template> Get(const std::string& id, int64_t version);
  // By id.
  absl::StatusOr<v1::ListTemplatesResponse> List(const v1::ListTemplatesRequest& req);
  // Changes the fields of `update_mask` (all of name, subject, text_body, html_body and locale
  // when empty; the channel cannot change) as a new version. With a non-zero template.version,
  // ABORTED unless that is still the latest.
  absl::StatusOr<v1::Template> Update(const v1::UpdateTemplateRequest& req);
  // Deletes the template and all its versions.
  absl::Status Delete(const std::string& id);

  // The locales of template `id`'s message, `id` first. NOT_FOUND for an unknown id.
  absl::StatusOr<std::vector<TemplateVariant>> Variants(const std::string& id);
  // The variant to render for a customer's locale (BCP 47, any case; empty: the default).
  static const TemplateVariant& Pick(const std::vector<TemplateVariant>& variants, absl::string_view locale);
  // A version, parsed (from memory after its first use).
  absl::StatusOr<std::shared_ptr<const CompiledTemplate>> Compiled(const std::string& id, int64_t version);

  // Checks a template and parses it (exposed for the benchmark and tests).
  static absl::StatusOr<std::shared_ptr<const CompiledTemplate>> Compile(const v1::Template& t);

 private:
  sql::Database& db_;
  PersonalisationMetrics& metrics_;
  Clock clock_;
  std::mutex mu_;
  absl::flat_hash_map<std::pair<std::string, int64_t>, std::shared_ptr<const CompiledTemplate>> compiled_;
};

}  // namespace ecrm::personalisation
