// The official Mustache specification's tests (../shared/data/mustache-spec/, the mustache/spec
// repository's JSON files, never copied into this repository) run through the engine's
// renderer: every test of the required modules must pass; the optional modules (files starting
// with '~': lambdas, dynamic names, inheritance) are counted and reported, not required.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "mustache.h"

namespace {

using ecrm::personalisation::mustache::Escape;
using ecrm::personalisation::mustache::RenderOptions;
using ecrm::personalisation::mustache::Template;
using ecrm::personalisation::mustache::Value;

const std::filesystem::path kSpec = std::filesystem::path(ECRM_SOURCE_DIR) / ".." / "shared" / "data" / "mustache-spec";

nlohmann::json Load(const std::string& module) {
  std::ifstream in(kSpec / (module + ".json"));
  INFO("reading " << (kSpec / (module + ".json")).string()
                  << " (the shared data folder, see ../shared/data/README.md); it is missing");
  REQUIRE(in.good());
  return nlohmann::json::parse(in);
}

Value FromJson(const nlohmann::json& j) {
  switch (j.type()) {
    case nlohmann::json::value_t::null:
      return Value();
    case nlohmann::json::value_t::boolean:
      return Value::Bool(j.get<bool>());
    case nlohmann::json::value_t::string:
      return Value::String(j.get<std::string>());
    case nlohmann::json::value_t::number_integer:
    case nlohmann::json::value_t::number_unsigned:
      return Value::String(absl::StrCat(j.get<int64_t>()));
    case nlohmann::json::value_t::number_float:
      return Value::String(absl::StrCat(j.get<double>()));
    case nlohmann::json::value_t::array: {
      Value v = Value::List();
      for (const auto& item : j) v.Append(FromJson(item));
      return v;
    }
    case nlohmann::json::value_t::object: {
      Value v = Value::Map();
      for (const auto& [key, item] : j.items()) v.Set(key, FromJson(item));
      return v;
    }
    default:
      return Value();
  }
}

// A partial's source with `indent` before every line (the specification's standalone partial
// indentation), compiled once per (name, indent).
class Partials {
 public:
  explicit Partials(const nlohmann::json& partials) {
    for (const auto& [name, source] : partials.items()) sources_[name] = source.get<std::string>();
  }
  const Template* Find(absl::string_view name, absl::string_view indent) {
    auto source = sources_.find(std::string(name));
    if (source == sources_.end()) return nullptr;
    std::string key = absl::StrCat(name, "\n", indent);
    auto it = compiled_.find(key);
    if (it != compiled_.end()) return it->second.get();
    std::string text;
    const std::string& s = source->second;
    for (size_t i = 0; i < s.size(); ++i) {
      if (i == 0 || (s[i - 1] == '\n')) absl::StrAppend(&text, indent);
      text += s[i];
    }
    absl::StatusOr<Template> t = Template::Compile(text);
    if (!t.ok()) return nullptr;
    return (compiled_[key] = std::make_unique<Template>(std::move(*t))).get();
  }

 private:
  std::map<std::string, std::string> sources_;
  std::map<std::string, std::unique_ptr<Template>> compiled_;
};

struct Outcome {
  int passed = 0;
  int total = 0;
  std::vector<std::string> failures;
};

Outcome Run(const std::string& module) {
  Outcome outcome;
  nlohmann::json spec = Load(module);
  for (const auto& test : spec["tests"]) {
    ++outcome.total;
    std::string name = test["name"].get<std::string>();
    Partials partials(test.contains("partials") ? test["partials"] : nlohmann::json::object());
    RenderOptions options;
    options.escape = Escape::kHtml;
    options.partials = [&partials](absl::string_view n, absl::string_view indent) { return partials.Find(n, indent); };
    absl::StatusOr<Template> t = Template::Compile(test["template"].get<std::string>());
    std::string got = t.ok() ? t->Render(FromJson(test["data"]), options).text : t.status().ToString();
    std::string expected = test["expected"].get<std::string>();
    if (got == expected) {
      ++outcome.passed;
    } else {
      outcome.failures.push_back(absl::StrCat(module, ": ", name, "\n  template: ", test["template"].dump(),
                                              "\n  expected: ", nlohmann::json(expected).dump(),
                                              "\n  got:      ", nlohmann::json(got).dump()));
    }
  }
  return outcome;
}

}  // namespace

TEST_CASE("every test of the specification's required modules passes") {
  auto module =
      GENERATE(as<std::string>{}, "interpolation", "sections", "inverted", "comments", "partials", "delimiters");
  Outcome outcome = Run(module);
  for (const std::string& f : outcome.failures) UNSCOPED_INFO(f);
  INFO(module << ": " << outcome.passed << " of " << outcome.total << " passed");
  CHECK(outcome.total > 0);
  CHECK(outcome.passed == outcome.total);
}

TEST_CASE("the optional modules are reported") {
  for (const std::string module : {"~lambdas", "~dynamic-names", "~inheritance"}) {
    if (!std::filesystem::exists(kSpec / (module + ".json"))) continue;
    Outcome outcome = Run(module);
    // Not required (the renderer has no lambdas, dynamic names or inheritance); printed so that
    // the figures in docs/personalisation.md can be checked.
    WARN(module << ": " << outcome.passed << " of " << outcome.total << " pass");
  }
}
