#include "templates.h"

#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "ecrm/status/macros.h"
#include "ecrm/util/page_token.h"
#include "ecrm/util/util.h"
#include "format.h"

namespace ecrm::personalisation {
namespace {

constexpr size_t kMaxName = 200;
constexpr size_t kMaxSubject = 2000;
constexpr size_t kMaxBody = 256 * 1024;
constexpr size_t kMaxCompiled = 10000;  // parsed versions kept in memory

absl::Status CheckChannelFields(const v1::Template& t) {
  auto need = [](const std::string& v, absl::string_view field, absl::string_view why) -> absl::Status {
    if (v.empty()) return util::Invalid(absl::StrCat("template.", field), absl::StrCat("required ", why));
    return absl::OkStatus();
  };
  auto none = [](const std::string& v, absl::string_view field, absl::string_view channel) -> absl::Status {
    if (!v.empty()) {
      return util::Invalid(absl::StrCat("template.", field), absl::StrCat("must be empty for ", channel, " templates"));
    }
    return absl::OkStatus();
  };
  switch (t.channel()) {
    case common::v1::CHANNEL_EMAIL:
      ECRM_RETURN_IF_ERROR(need(t.subject(), "subject", "for email templates"));
      if (t.html_body().empty() && t.text_body().empty()) {
        return util::Invalid("template.html_body", "an email template needs an HTML body, a text body or both");
      }
      return absl::OkStatus();
    case common::v1::CHANNEL_SMS:
      ECRM_RETURN_IF_ERROR(need(t.text_body(), "text_body", "for SMS templates (the message)"));
      ECRM_RETURN_IF_ERROR(none(t.subject(), "subject", "SMS"));
      return none(t.html_body(), "html_body", "SMS");
    case common::v1::CHANNEL_PUSH:
      ECRM_RETURN_IF_ERROR(need(t.subject(), "subject", "for push templates (the title)"));
      ECRM_RETURN_IF_ERROR(need(t.text_body(), "text_body", "for push templates (the body)"));
      return none(t.html_body(), "html_body", "push");
    case common::v1::CHANNEL_WEB:
      ECRM_RETURN_IF_ERROR(need(t.subject(), "subject", "for web inbox templates (the title)"));
      return need(t.html_body(), "html_body", "for web inbox templates");
    default:
      return util::Invalid("template.channel", "must be CHANNEL_EMAIL, CHANNEL_SMS, CHANNEL_PUSH or CHANNEL_WEB");
  }
}

absl::StatusOr<mustache::Template> Parse(const std::string& source, absl::string_view field, size_t max) {
  if (source.size() > max) {
    return util::Invalid(absl::StrCat("template.", field), absl::StrCat("longer than ", max, " bytes"));
  }
  absl::StatusOr<mustache::Template> t = mustache::Template::Compile(source, /*allow_partials=*/false);
  if (!t.ok()) return util::Invalid(absl::StrCat("template.", field), t.status().message());
  return t;
}

// The template's fields in a row: id, name, channel, locale, version, subject, text_body,
// html_body, created_at (of the template).
constexpr absl::string_view kColumns =
    "t.id, v.name, t.channel, v.locale, v.version, v.subject, v.text_body, v.html_body, t.created_at";

v1::Template FromRow(const sql::Row& r) {
  v1::Template t;
  t.set_id(std::string(r.Text(0)));
  t.set_name(std::string(r.Text(1)));
  t.set_channel(static_cast<common::v1::Channel>(r.Int(2)));
  t.set_locale(std::string(r.Text(3)));
  t.set_version(r.Int(4));
  t.set_subject(std::string(r.Text(5)));
  t.set_text_body(std::string(r.Text(6)));
  t.set_html_body(std::string(r.Text(7)));
  *t.mutable_created_at() = util::Ts(r.Int(8));
  return t;
}

absl::Status Taken(const v1::Template& t) {
  return absl::AlreadyExistsError(absl::StrCat("template: a template named \"", t.name(), "\" for ",
                                               common::v1::Channel_Name(t.channel()), " in locale \"", t.locale(),
                                               "\" exists; update it or choose another name or locale"));
}

absl::Status NotFound(const std::string& id) {
  return absl::NotFoundError(absl::StrCat("template \"", id, "\" does not exist"));
}

absl::Status InsertVersion(sql::Connection& c, const v1::Template& t, int64_t now) {
  return c
      .Execute(
          "INSERT INTO template_versions (template_id, version, name, locale, subject, text_body, html_body, "
          "created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
          {t.id(), t.version(), t.name(), t.locale(), t.subject(), t.text_body(), t.html_body(), now})
      .status();
}

}  // namespace

absl::StatusOr<std::shared_ptr<const CompiledTemplate>> Templates::Compile(const v1::Template& t) {
  if (t.name().empty()) return util::Invalid("template.name", "required");
  if (t.name().size() > kMaxName)
    return util::Invalid("template.name", absl::StrCat("longer than ", kMaxName, " bytes"));
  if (!t.locale().empty() && CanonicalLocale(t.locale()).empty()) {
    return util::Invalid("template.locale", "not a BCP 47 language tag such as \"en\", \"fr-CA\" or \"pt-BR\"");
  }
  ECRM_RETURN_IF_ERROR(CheckChannelFields(t));
  auto out = std::make_shared<CompiledTemplate>();
  ECRM_ASSIGN_OR_RETURN(out->subject, Parse(t.subject(), "subject", kMaxSubject));
  ECRM_ASSIGN_OR_RETURN(out->text_body, Parse(t.text_body(), "text_body", kMaxBody));
  ECRM_ASSIGN_OR_RETURN(out->html_body, Parse(t.html_body(), "html_body", kMaxBody));
  out->proto = t;
  if (!t.locale().empty()) out->proto.set_locale(CanonicalLocale(t.locale()));
  return std::shared_ptr<const CompiledTemplate>(std::move(out));
}

absl::StatusOr<v1::Template> Templates::Create(const v1::Template& request) {
  ECRM_ASSIGN_OR_RETURN(std::shared_ptr<const CompiledTemplate> compiled, Compile(request));
  v1::Template t = compiled->proto;
  t.set_id(util::NewId("tpl_"));
  t.set_version(1);
  const int64_t now = absl::ToUnixMicros(clock_());
  *t.mutable_created_at() = util::Ts(now);
  absl::Status s = db_.InTransaction([&](sql::Connection& c) -> absl::Status {
    ECRM_RETURN_IF_ERROR(c.Execute("INSERT INTO templates (id, name, channel, locale, version, created_at, updated_at) "
                                   "VALUES ($1, $2, $3, $4, 1, $5, $5)",
                                   {t.id(), t.name(), static_cast<int>(t.channel()), t.locale(), now})
                             .status());
    return InsertVersion(c, t, now);
  });
  if (absl::IsAlreadyExists(s)) return Taken(t);
  ECRM_RETURN_IF_ERROR(s);
  return t;
}

absl::StatusOr<v1::Template> Templates::Get(const std::string& id, int64_t version) {
  if (id.empty()) return util::Invalid("id", "required");
  if (version < 0) return util::Invalid("version", "must be 0 (the latest) or a version number");
  ECRM_ASSIGN_OR_RETURN(
      sql::Result r,
      version == 0 ? db_.Execute(absl::StrCat("SELECT ", kColumns,
                                              " FROM templates t JOIN template_versions v ON v.template_id = t.id AND "
                                              "v.version = t.version WHERE t.id = $1"),
                                 {id})
                   : db_.Execute(absl::StrCat("SELECT ", kColumns,
                                              " FROM templates t JOIN template_versions v ON v.template_id = t.id "
                                              "WHERE t.id = $1 AND v.version = $2"),
                                 {id, version}));
  if (r.empty()) {
    if (version == 0) return NotFound(id);
    ECRM_ASSIGN_OR_RETURN(sql::Result latest, db_.Execute("SELECT version FROM templates WHERE id = $1", {id}));
    if (latest.empty()) return NotFound(id);
    return absl::NotFoundError(
        absl::StrCat("template \"", id, "\" has no version ", version, " (latest: ", latest.front().Int(0), ")"));
  }
  return FromRow(r.front());
}

absl::StatusOr<v1::ListTemplatesResponse> Templates::List(const v1::ListTemplatesRequest& req) {
  if (req.page_size() < 0) return util::Invalid("page_size", "must not be negative");
  ECRM_ASSIGN_OR_RETURN(std::optional<util::PageCursor> after,
                        util::DecodePageToken("ListTemplates", req.page_token()));
  const int limit = util::PageSize(req.page_size());
  ECRM_ASSIGN_OR_RETURN(sql::Result r,
                        db_.Execute(absl::StrCat("SELECT ", kColumns,
                                                 " FROM templates t JOIN template_versions v ON v.template_id = t.id "
                                                 "AND v.version = t.version WHERE t.id > $1 ORDER BY t.id LIMIT $2"),
                                    {after ? after->text : std::string(), limit + 1}));
  v1::ListTemplatesResponse out;
  for (size_t i = 0; i < r.size() && static_cast<int>(i) < limit; ++i) *out.add_templates() = FromRow(r.row(i));
  if (static_cast<int>(r.size()) > limit) {
    out.set_next_page_token(util::EncodePageToken("ListTemplates", {0, out.templates().rbegin()->id()}));
  }
  return out;
}

absl::StatusOr<v1::Template> Templates::Update(const v1::UpdateTemplateRequest& req) {
  const v1::Template& in = req.template_();
  if (in.id().empty()) return util::Invalid("template.id", "required");
  static const std::set<std::string> kMutable = {"name", "subject", "text_body", "html_body", "locale"};
  std::set<std::string> paths;
  for (const std::string& p : req.update_mask().paths()) {
    if (p == "channel") {
      return util::Invalid("update_mask", "channel cannot change; create a template for the other channel");
    }
    if (!kMutable.contains(p)) {
      return util::Invalid("update_mask", absl::StrCat("unknown or read-only field \"", p,
                                                       "\" (changeable: ", absl::StrJoin(kMutable, ", "), ")"));
    }
    paths.insert(p);
  }
  if (paths.empty()) paths = kMutable;
  const int64_t now = absl::ToUnixMicros(clock_());
  int64_t conflict = 0;  // the latest version when the caller's is older
  v1::Template out;
  absl::Status s = db_.InTransaction([&](sql::Connection& c) -> absl::Status {
    conflict = 0;
    const std::string lock = c.dialect() == sql::Dialect::kPostgres ? " FOR UPDATE OF t" : "";
    ECRM_ASSIGN_OR_RETURN(sql::Result r,
                          c.Execute(absl::StrCat("SELECT ", kColumns,
                                                 " FROM templates t JOIN template_versions v ON v.template_id = t.id "
                                                 "AND v.version = t.version WHERE t.id = $1",
                                                 lock),
                                    {in.id()}));
    if (r.empty()) return NotFound(in.id());
    v1::Template t = FromRow(r.front());
    if (in.version() != 0 && in.version() != t.version()) {
      conflict = t.version();
      return absl::OkStatus();
    }
    if (paths.contains("name")) t.set_name(in.name());
    if (paths.contains("subject")) t.set_subject(in.subject());
    if (paths.contains("text_body")) t.set_text_body(in.text_body());
    if (paths.contains("html_body")) t.set_html_body(in.html_body());
    if (paths.contains("locale")) t.set_locale(in.locale());
    ECRM_ASSIGN_OR_RETURN(std::shared_ptr<const CompiledTemplate> compiled, Compile(t));
    t = compiled->proto;
    t.set_version(t.version() + 1);
    ECRM_ASSIGN_OR_RETURN(sql::Result updated,
                          c.Execute("UPDATE templates SET name = $2, locale = $3, version = $4, updated_at = $5 "
                                    "WHERE id = $1 AND version = $6",
                                    {t.id(), t.name(), t.locale(), t.version(), now, t.version() - 1}));
    if (updated.rows_affected() != 1) return absl::AbortedError("template changed concurrently");
    ECRM_RETURN_IF_ERROR(InsertVersion(c, t, now));
    out = std::move(t);
    return absl::OkStatus();
  });
  if (absl::IsAlreadyExists(s)) {
    return absl::AlreadyExistsError(
        absl::StrCat("template: another template has this name, channel and locale; choose another name or locale"));
  }
  ECRM_RETURN_IF_ERROR(s);
  if (conflict != 0) {
    return absl::AbortedError(absl::StrCat("template.version: template \"", in.id(), "\" is at version ", conflict,
                                           ", not ", in.version(), "; read it again and apply the change to it"));
  }
  return out;
}

absl::Status Templates::Delete(const std::string& id) {
  if (id.empty()) return util::Invalid("id", "required");
  bool found = false;
  ECRM_RETURN_IF_ERROR(db_.InTransaction([&](sql::Connection& c) -> absl::Status {
    ECRM_ASSIGN_OR_RETURN(sql::Result r, c.Execute("DELETE FROM templates WHERE id = $1", {id}));
    found = r.rows_affected() > 0;
    return c.Execute("DELETE FROM template_versions WHERE template_id = $1", {id}).status();
  }));
  if (!found) return NotFound(id);
  std::lock_guard lock(mu_);
  absl::erase_if(compiled_, [&](const auto& entry) { return entry.first.first == id; });
  return absl::OkStatus();
}

absl::StatusOr<std::vector<TemplateVariant>> Templates::Variants(const std::string& id) {
  if (id.empty()) return util::Invalid("template_id", "required");
  ECRM_ASSIGN_OR_RETURN(sql::Result r,
                        db_.Execute("SELECT o.id, o.locale, o.version FROM templates t JOIN templates o ON o.name = "
                                    "t.name AND o.channel = t.channel WHERE t.id = $1",
                                    {id}));
  std::vector<TemplateVariant> out;
  for (sql::Row row : r) {
    TemplateVariant v{std::string(row.Text(0)), std::string(row.Text(1)), row.Int(2)};
    if (v.id == id) {
      out.insert(out.begin(), std::move(v));
    } else {
      out.push_back(std::move(v));
    }
  }
  if (out.empty() || out.front().id != id) return NotFound(id);
  return out;
}

const TemplateVariant& Templates::Pick(const std::vector<TemplateVariant>& variants, absl::string_view locale) {
  std::string want = CanonicalLocale(locale);
  // fr-Latn-CA, fr-Latn, fr: each shorter tag in turn, then the default (no locale).
  while (true) {
    for (const TemplateVariant& v : variants) {
      if (v.locale == want) return v;
    }
    if (want.empty()) break;
    size_t dash = want.rfind('-');
    want = dash == std::string::npos ? "" : want.substr(0, dash);
  }
  return variants.front();
}

absl::StatusOr<std::shared_ptr<const CompiledTemplate>> Templates::Compiled(const std::string& id, int64_t version) {
  {
    std::lock_guard lock(mu_);
    auto it = compiled_.find(std::make_pair(id, version));
    if (it != compiled_.end()) return it->second;
  }
  ECRM_ASSIGN_OR_RETURN(v1::Template t, Get(id, version));
  absl::StatusOr<std::shared_ptr<const CompiledTemplate>> compiled = Compile(t);
  if (!compiled.ok()) {
    return absl::InternalError(absl::StrCat("template \"", id, "\" version ", version,
                                            " as saved no longer parses: ", compiled.status().message()));
  }
  metrics_.compilations.Increment();
  std::lock_guard lock(mu_);
  if (compiled_.size() >= kMaxCompiled) compiled_.clear();
  compiled_[std::make_pair(id, version)] = *compiled;
  return *compiled;
}

}  // namespace ecrm::personalisation
