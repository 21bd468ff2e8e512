#include "mustache.h"

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace ecrm::personalisation::mustache {

Value& Value::Append(Value v) {
  items_.push_back(std::move(v));
  return items_.back();
}

Value& Value::Set(absl::string_view key, Value v) {
  if (Value* existing = FindMutable(key)) {
    *existing = std::move(v);
    return *existing;
  }
  keys_.emplace_back(key);
  items_.push_back(std::move(v));
  return items_.back();
}

const Value* Value::Find(absl::string_view key) const {
  if (kind_ != Kind::kMap) return nullptr;
  for (size_t i = 0; i < keys_.size(); ++i) {
    if (keys_[i] == key) return &items_[i];
  }
  return nullptr;
}

Value* Value::FindMutable(absl::string_view key) {
  return const_cast<Value*>(static_cast<const Value*>(this)->Find(key));
}

bool Value::Truthy() const {
  switch (kind_) {
    case Kind::kNull:
      return false;
    case Kind::kBool:
      return bool_;
    case Kind::kString:
      return !text_.empty();
    case Kind::kList:
      return !items_.empty();
    case Kind::kMap:
      return true;
  }
  return false;
}

void AppendHtmlEscaped(absl::string_view text, std::string& out) {
  size_t start = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    const char* entity = nullptr;
    switch (text[i]) {
      case '&':
        entity = "&amp;";
        break;
      case '<':
        entity = "&lt;";
        break;
      case '>':
        entity = "&gt;";
        break;
      case '"':
        entity = "&quot;";
        break;
      case '\'':
        entity = "&#39;";
        break;
      default:
        continue;
    }
    out.append(text.data() + start, i - start);
    out.append(entity);
    start = i + 1;
  }
  out.append(text.data() + start, text.size() - start);
}

namespace {

struct Token {
  bool is_tag = false;
  char sigil = 0;        // tags: 0 (variable), '{', '&', '#', '^', '/', '!', '>', '='
  std::string content;   // text, or the tag's trimmed name
  size_t offset = 0;     // where it starts in the source
  bool removed = false;  // whitespace of a standalone line
};

// "line L, column C" of a byte offset (columns count UTF-8 characters).
std::string Where(absl::string_view source, size_t offset) {
  int line = 1, column = 1;
  for (size_t i = 0; i < offset && i < source.size(); ++i) {
    if (source[i] == '\n') {
      ++line;
      column = 1;
    } else if ((static_cast<unsigned char>(source[i]) & 0xC0) != 0x80) {
      ++column;
    }
  }
  return absl::StrCat("line ", line, ", column ", column);
}

absl::Status ErrorAt(absl::string_view source, size_t offset, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(Where(source, offset), ": ", what));
}

bool IsBlank(absl::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; });
}

// Splits the source into text (each piece ending at a newline at most) and tags, following
// set-delimiter tags as it goes.
absl::StatusOr<std::vector<Token>> Tokenize(absl::string_view src) {
  std::vector<Token> tokens;
  std::string open = "{{", close = "}}";
  auto add_text = [&](size_t from, size_t to) {
    while (from < to) {
      size_t nl = src.find('\n', from);
      size_t piece_end = (nl == absl::string_view::npos || nl >= to) ? to : nl + 1;
      tokens.push_back(Token{false, 0, std::string(src.substr(from, piece_end - from)), from});
      from = piece_end;
    }
  };
  size_t pos = 0;
  while (pos < src.size()) {
    size_t start = src.find(open, pos);
    if (start == absl::string_view::npos) {
      add_text(pos, src.size());
      break;
    }
    add_text(pos, start);
    size_t q = start + open.size();
    char sigil = 0;
    if (q < src.size() && absl::string_view("{&#^/!>=").find(src[q]) != absl::string_view::npos) sigil = src[q++];
    std::string closing = sigil == '{' ? "}" + close : sigil == '=' ? "=" + close : close;
    size_t end = src.find(closing, q);
    if (end == absl::string_view::npos) {
      return ErrorAt(src, start, absl::StrCat("tag not closed (expected \"", closing, "\")"));
    }
    std::string content(absl::StripAsciiWhitespace(src.substr(q, end - q)));
    if (sigil == '=') {
      std::vector<std::string> parts = absl::StrSplit(content, absl::ByAnyChar(" \t\r\n"), absl::SkipEmpty());
      if (parts.size() != 2 || parts[0].find('=') != std::string::npos || parts[1].find('=') != std::string::npos) {
        return ErrorAt(src, start, "a set-delimiter tag needs two delimiters without '=', e.g. {{=<% %>=}}");
      }
      open = parts[0];
      close = parts[1];
    } else if (sigil != '!') {
      if (content.empty()) return ErrorAt(src, start, "tag without a name");
      if (std::any_of(content.begin(), content.end(), [](char c) { return absl::ascii_isspace(c); })) {
        return ErrorAt(src, start, absl::StrCat("tag name \"", content, "\" contains a space"));
      }
      if (content != "." &&
          (content.front() == '.' || content.back() == '.' || content.find("..") != std::string::npos)) {
        return ErrorAt(src, start, absl::StrCat("tag name \"", content, "\" has an empty part between dots"));
      }
    }
    tokens.push_back(Token{true, sigil, std::move(content), start});
    pos = end + closing.size();
  }
  return tokens;
}

bool StandaloneKind(char sigil) {
  return sigil == '#' || sigil == '^' || sigil == '/' || sigil == '!' || sigil == '>' || sigil == '=';
}

std::vector<std::string> SplitPath(absl::string_view name) {
  if (name == ".") return {};
  return absl::StrSplit(name, '.');
}

}  // namespace

absl::StatusOr<Template> Template::Compile(absl::string_view source, bool allow_partials) {
  absl::StatusOr<std::vector<Token>> tokens_or = Tokenize(source);
  if (!tokens_or.ok()) return tokens_or.status();
  std::vector<Token>& tokens = *tokens_or;

  // Standalone lines: a line holding one section, inverted, closing, comment, partial or
  // set-delimiter tag and only whitespace besides loses that whitespace and its newline; a
  // standalone partial's indentation goes to every line of the partial.
  std::vector<std::string> indents(tokens.size());
  for (size_t begin = 0; begin < tokens.size();) {
    size_t end = begin;
    while (end < tokens.size()) {
      const Token& t = tokens[end++];
      if (!t.is_tag && !t.content.empty() && t.content.back() == '\n') break;
    }
    int tags = 0;
    size_t tag = 0;
    bool blank = true;
    for (size_t i = begin; i < end; ++i) {
      if (tokens[i].is_tag) {
        ++tags;
        tag = i;
      } else if (!IsBlank(tokens[i].content)) {
        blank = false;
      }
    }
    if (tags == 1 && blank && StandaloneKind(tokens[tag].sigil)) {
      for (size_t i = begin; i < end; ++i) {
        if (tokens[i].is_tag) continue;
        if (i < tag) indents[tag] += tokens[i].content;
        tokens[i].removed = true;
      }
    }
    begin = end;
  }

  Template t;
  t.size_hint_ = source.size();
  struct Open {
    size_t op;
    size_t offset;
  };
  std::vector<Open> open;
  bool can_merge = false;  // the last op is text that the next text may extend
  for (size_t i = 0; i < tokens.size(); ++i) {
    Token& tok = tokens[i];
    if (tok.removed) continue;
    if (!tok.is_tag) {
      if (can_merge) {
        t.ops_.back().text += tok.content;
      } else {
        t.ops_.push_back(Op{Op::kText, std::move(tok.content), {}, 0, {}});
        can_merge = true;
      }
      continue;
    }
    switch (tok.sigil) {
      case '!':
      case '=':
        continue;  // neither breaks a run of text
      case 0:
        t.ops_.push_back(Op{Op::kEscaped, tok.content, SplitPath(tok.content), 0, {}});
        break;
      case '{':
      case '&':
        t.ops_.push_back(Op{Op::kRaw, tok.content, SplitPath(tok.content), 0, {}});
        break;
      case '#':
      case '^':
        open.push_back(Open{t.ops_.size(), tok.offset});
        t.ops_.push_back(
            Op{tok.sigil == '#' ? Op::kSection : Op::kInverted, tok.content, SplitPath(tok.content), 0, {}});
        break;
      case '/': {
        if (open.empty()) {
          return ErrorAt(source, tok.offset, absl::StrCat("{{/", tok.content, "}} closes no open section"));
        }
        Op& section = t.ops_[open.back().op];
        if (section.text != tok.content) {
          return ErrorAt(source, tok.offset,
                         absl::StrCat("{{/", tok.content, "}} does not close section \"", section.text, "\" opened at ",
                                      Where(source, open.back().offset)));
        }
        section.end = static_cast<uint32_t>(t.ops_.size());
        open.pop_back();
        break;
      }
      case '>':
        if (!allow_partials) {
          return ErrorAt(source, tok.offset, absl::StrCat("partials ({{>", tok.content, "}}) are not supported here"));
        }
        t.ops_.push_back(Op{Op::kPartial, tok.content, {}, 0, std::move(indents[i])});
        break;
    }
    can_merge = false;
  }
  if (!open.empty()) {
    const Op& section = t.ops_[open.back().op];
    return ErrorAt(source, open.back().offset,
                   absl::StrCat("section \"", section.text, "\" is not closed (expected {{/", section.text, "}})"));
  }
  return t;
}

namespace {

using Stack = std::vector<const Value*>;

const Value* Resolve(const std::vector<std::string>& path, const Stack& stack) {
  if (path.empty()) return stack.empty() ? nullptr : stack.back();
  const Value* v = nullptr;
  for (auto it = stack.rbegin(); it != stack.rend(); ++it) {
    if ((v = (*it)->Find(path[0])) != nullptr) break;
  }
  for (size_t i = 1; v != nullptr && i < path.size(); ++i) v = v->Find(path[i]);
  return v;
}

struct Renderer {
  const std::vector<Template::Op>& ops;
  const RenderOptions& options;
  RenderResult& out;

  void Missing(const std::string& name) {
    if (std::find(out.missing.begin(), out.missing.end(), name) == out.missing.end()) out.missing.push_back(name);
  }

  void Range(size_t begin, size_t end, Stack& stack);
};

void Renderer::Range(size_t begin, size_t end, Stack& stack) {
  for (size_t i = begin; i < end; ++i) {
    const Template::Op& op = ops[i];
    switch (op.kind) {
      case Template::Op::kText:
        out.text += op.text;
        break;
      case Template::Op::kEscaped:
      case Template::Op::kRaw: {
        const Value* v = Resolve(op.path, stack);
        if (v == nullptr || v->kind() == Value::Kind::kNull) {
          Missing(op.text);
        } else if (v->kind() == Value::Kind::kString) {
          if (op.kind == Template::Op::kEscaped && options.escape == Escape::kHtml) {
            AppendHtmlEscaped(v->text(), out.text);
          } else {
            out.text += v->text();
          }
        } else if (v->kind() == Value::Kind::kBool) {
          out.text += v->boolean() ? "true" : "false";
        }
        break;
      }
      case Template::Op::kSection: {
        const Value* v = Resolve(op.path, stack);
        if (v != nullptr && v->Truthy()) {
          if (v->kind() == Value::Kind::kList) {
            for (const Value& item : v->items()) {
              stack.push_back(&item);
              Range(i + 1, op.end, stack);
              stack.pop_back();
            }
          } else {
            stack.push_back(v);
            Range(i + 1, op.end, stack);
            stack.pop_back();
          }
        }
        i = op.end - 1;
        break;
      }
      case Template::Op::kInverted: {
        const Value* v = Resolve(op.path, stack);
        if (v == nullptr || !v->Truthy()) Range(i + 1, op.end, stack);
        i = op.end - 1;
        break;
      }
      case Template::Op::kPartial: {
        const Template* partial = options.partials ? options.partials(op.text, op.indent) : nullptr;
        if (partial != nullptr) partial->RenderWith(stack, options, out);
        break;
      }
    }
  }
}

}  // namespace

void Template::RenderWith(std::vector<const Value*>& stack, const RenderOptions& options, RenderResult& out) const {
  Renderer r{ops_, options, out};
  r.Range(0, ops_.size(), stack);
}

void Template::Render(const Value& context, const RenderOptions& options, RenderResult& out) const {
  Render({&context}, options, out);
}

void Template::Render(std::initializer_list<const Value*> layers, const RenderOptions& options,
                      RenderResult& out) const {
  out.text.clear();
  out.missing.clear();
  out.text.reserve(size_hint_ + size_hint_ / 2);
  std::vector<const Value*> stack;
  stack.reserve(8 + layers.size());
  stack.insert(stack.end(), layers.begin(), layers.end());
  RenderWith(stack, options, out);
}

std::vector<std::string> Template::Names() const {
  std::vector<std::string> names;
  for (const Op& op : ops_) {
    if (op.kind == Op::kText || op.kind == Op::kPartial) continue;
    if (std::find(names.begin(), names.end(), op.text) == names.end()) names.push_back(op.text);
  }
  return names;
}

}  // namespace ecrm::personalisation::mustache
