// A compiled Mustache renderer (https://mustache.github.io/mustache.5.html, spec v1.x):
// interpolation, sections, inverted sections, comments, partials and set-delimiter tags, with
// the specification's standalone-line and indentation rules. A template is parsed once
// (Template::Compile, when it is saved or first loaded) into a flat list of instructions; each
// render walks that list against a Value tree. Lambdas, dynamic names and inheritance (the
// specification's optional modules) are not supported.
//
// Beyond the specification, a render reports the variables it could not find (`missing`), so
// that the engine can list them or, in strict mode, refuse to send a message with a hole.
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ecrm::personalisation::mustache {

// What a template reads: null, a boolean, text (numbers are text, formatted by whoever builds
// the value), a list or a map of named values (kept in insertion order; small maps are
// searched linearly, which beats hashing at the sizes a message's context has).
class Value {
 public:
  enum class Kind : uint8_t { kNull, kBool, kString, kList, kMap };

  Value() = default;
  static Value Bool(bool b) {
    Value v;
    v.kind_ = Kind::kBool;
    v.bool_ = b;
    return v;
  }
  static Value String(std::string s) {
    Value v;
    v.kind_ = Kind::kString;
    v.text_ = std::move(s);
    return v;
  }
  static Value List() {
    Value v;
    v.kind_ = Kind::kList;
    return v;
  }
  static Value Map() {
    Value v;
    v.kind_ = Kind::kMap;
    return v;
  }

  Kind kind() const { return kind_; }
  bool boolean() const { return bool_; }
  const std::string& text() const { return text_; }
  // Items of a list, or values of a map (parallel to keys()).
  const std::vector<Value>& items() const { return items_; }
  const std::vector<std::string>& keys() const { return keys_; }

  // Lists: appends an item and returns it.
  Value& Append(Value v);
  // Maps: sets `key` (replacing an earlier value) and returns the value stored.
  Value& Set(absl::string_view key, Value v);
  Value& Set(absl::string_view key, std::string text) { return Set(key, String(std::move(text))); }
  Value& Set(absl::string_view key, const char* text) { return Set(key, String(text)); }
  // Maps: the value of `key`, or null when absent (or not a map).
  const Value* Find(absl::string_view key) const;
  Value* FindMutable(absl::string_view key);

  // Mustache truthiness: false, null, an empty list and an empty string are false.
  bool Truthy() const;

 private:
  Kind kind_ = Kind::kNull;
  bool bool_ = false;
  std::string text_;
  std::vector<Value> items_;
  std::vector<std::string> keys_;
};

// How a render escapes `{{name}}` (never `{{{name}}}` or `{{&name}}`).
enum class Escape : uint8_t {
  kHtml,  // & < > " ' as entities (HTML bodies)
  kNone,  // as is (subjects, plain text, SMS, push)
};

class Template;

// Finds a partial by name; null renders nothing (as the specification says of a missing
// partial).
using PartialLookup = std::function<const Template*(absl::string_view name, absl::string_view indent)>;

struct RenderOptions {
  Escape escape = Escape::kHtml;
  // Partials; none when empty.
  PartialLookup partials;
};

struct RenderResult {
  std::string text;
  // Interpolated names ({{a.b}}) that resolved to nothing, each once, in order of appearance.
  std::vector<std::string> missing;
};

class Template {
 public:
  // Parses `source`. INVALID_ARGUMENT "line L, column C: …" (1-based; the column counts
  // characters) for an unclosed or mismatched section, an unclosed tag, an empty name or a bad
  // set-delimiter tag, or a partial tag when `allow_partials` is false.
  static absl::StatusOr<Template> Compile(absl::string_view source, bool allow_partials = true);

  // Renders against `context`.
  void Render(const Value& context, const RenderOptions& options, RenderResult& out) const;
  // Renders against several contexts, searched from the last to the first (the first is the
  // bottom of the context stack): e.g. what every customer of a batch shares, then one
  // customer's data, without copying either.
  void Render(std::initializer_list<const Value*> layers, const RenderOptions& options, RenderResult& out) const;
  RenderResult Render(const Value& context, const RenderOptions& options = {}) const {
    RenderResult r;
    Render(context, options, r);
    return r;
  }

  // Renders on top of a context stack (partials render within the caller's contexts); appends.
  void RenderWith(std::vector<const Value*>& stack, const RenderOptions& options, RenderResult& out) const;

  // Every name the template reads ({{a.b}}, sections, inverted sections), each once.
  std::vector<std::string> Names() const;
  // True when the template has no tags (rendering copies it).
  bool is_literal() const { return ops_.size() <= 1 && (ops_.empty() || ops_[0].kind == Op::kText); }

  struct Op {
    enum Kind : uint8_t { kText, kEscaped, kRaw, kSection, kInverted, kPartial };
    Kind kind;
    // kText: the text; kPartial: the partial's name; otherwise the name as written.
    std::string text;
    // The name split at dots; empty for the implicit iterator "."
    std::vector<std::string> path;
    // kSection / kInverted: index of the op after the section's end; kPartial: unused.
    uint32_t end = 0;
    // kPartial: the standalone tag's indentation, given to every line of the partial.
    std::string indent;
  };

 private:
  std::vector<Op> ops_;
  size_t size_hint_ = 0;
};

// Appends `text` HTML-escaped.
void AppendHtmlEscaped(absl::string_view text, std::string& out);

}  // namespace ecrm::personalisation::mustache
