#include "records.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/timestamp.pb.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/time_util.h"

namespace ecrm::ctl {

using google::protobuf::Descriptor;
using google::protobuf::EnumDescriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

absl::StatusOr<bool> CsvReader::Next(Record* record) {
  record->fields.clear();
  std::string line;
  if (!std::getline(in_, line)) return false;
  record->line = ++line_;
  std::string field;
  bool quoted = false;
  size_t i = 0;
  for (;;) {
    if (i == line.size()) {
      if (!quoted) break;
      // A quoted field goes on over a line break.
      std::string more;
      if (!std::getline(in_, more)) {
        return absl::InvalidArgumentError(absl::StrCat("line ", record->line, ": a quoted field is never closed"));
      }
      ++line_;
      field += '\n';
      line = std::move(more);
      i = 0;
      continue;
    }
    const char c = line[i++];
    if (quoted) {
      if (c != '"') {
        field += c;
      } else if (i < line.size() && line[i] == '"') {
        field += '"';
        ++i;
      } else {
        quoted = false;
      }
    } else if (c == '"' && field.empty()) {
      quoted = true;
    } else if (c == ',') {
      record->fields.push_back(std::move(field));
      field.clear();
    } else if (c == '\r' && i == line.size()) {
      // CRLF line ends.
    } else {
      field += c;
    }
  }
  record->fields.push_back(std::move(field));
  return true;
}

namespace {

absl::Status Bad(const std::string& column, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(column, ": ", what));
}

// The prefix of an enum's value names, from its zero value: IDENTIFIER_TYPE_UNSPECIFIED -> IDENTIFIER_TYPE_.
std::string EnumPrefix(const EnumDescriptor& e) {
  const std::string& zero = e.value(0)->name();
  return absl::EndsWith(zero, "UNSPECIFIED") ? zero.substr(0, zero.size() - 11) : "";
}

absl::Status SetScalar(Message& m, const FieldDescriptor& f, const std::string& value, const std::string& column) {
  const Reflection& r = *m.GetReflection();
  const bool rep = f.is_repeated();
  switch (f.cpp_type()) {
    case FieldDescriptor::CPPTYPE_STRING:
      rep ? r.AddString(&m, &f, value) : r.SetString(&m, &f, value);
      return absl::OkStatus();
    case FieldDescriptor::CPPTYPE_INT32:
    case FieldDescriptor::CPPTYPE_INT64: {
      int64_t v;
      if (!absl::SimpleAtoi(value, &v)) return Bad(column, absl::StrCat("\"", value, "\" is not an integer"));
      if (f.cpp_type() == FieldDescriptor::CPPTYPE_INT32) {
        if (v < INT32_MIN || v > INT32_MAX) return Bad(column, absl::StrCat(value, " is out of range"));
        rep ? r.AddInt32(&m, &f, static_cast<int32_t>(v)) : r.SetInt32(&m, &f, static_cast<int32_t>(v));
      } else {
        rep ? r.AddInt64(&m, &f, v) : r.SetInt64(&m, &f, v);
      }
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_UINT32:
    case FieldDescriptor::CPPTYPE_UINT64: {
      uint64_t v;
      if (!absl::SimpleAtoi(value, &v)) return Bad(column, absl::StrCat("\"", value, "\" is not a whole number"));
      if (f.cpp_type() == FieldDescriptor::CPPTYPE_UINT32) {
        if (v > UINT32_MAX) return Bad(column, absl::StrCat(value, " is out of range"));
        rep ? r.AddUInt32(&m, &f, static_cast<uint32_t>(v)) : r.SetUInt32(&m, &f, static_cast<uint32_t>(v));
      } else {
        rep ? r.AddUInt64(&m, &f, v) : r.SetUInt64(&m, &f, v);
      }
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_DOUBLE:
    case FieldDescriptor::CPPTYPE_FLOAT: {
      double v;
      if (!absl::SimpleAtod(value, &v)) return Bad(column, absl::StrCat("\"", value, "\" is not a number"));
      if (f.cpp_type() == FieldDescriptor::CPPTYPE_DOUBLE) {
        rep ? r.AddDouble(&m, &f, v) : r.SetDouble(&m, &f, v);
      } else {
        rep ? r.AddFloat(&m, &f, static_cast<float>(v)) : r.SetFloat(&m, &f, static_cast<float>(v));
      }
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_BOOL: {
      bool v;
      if (!absl::SimpleAtob(value, &v)) return Bad(column, absl::StrCat("\"", value, "\" is not true or false"));
      rep ? r.AddBool(&m, &f, v) : r.SetBool(&m, &f, v);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_ENUM: {
      const EnumDescriptor& e = *f.enum_type();
      const std::string upper = absl::AsciiStrToUpper(value);
      const auto* v = e.FindValueByName(upper);
      if (v == nullptr) v = e.FindValueByName(EnumPrefix(e) + upper);
      if (v == nullptr) return Bad(column, absl::StrCat("\"", value, "\" is not a ", e.name()));
      rep ? r.AddEnum(&m, &f, v) : r.SetEnum(&m, &f, v);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_MESSAGE:
      break;
  }
  if (f.message_type()->full_name() == "google.protobuf.Timestamp") {
    google::protobuf::Timestamp t;
    if (!google::protobuf::util::TimeUtil::FromString(value, &t)) {
      return Bad(column, absl::StrCat("\"", value, "\" is not an RFC 3339 time (2026-03-05T23:30:00Z)"));
    }
    (rep ? r.AddMessage(&m, &f) : r.MutableMessage(&m, &f))->CopyFrom(t);
    return absl::OkStatus();
  }
  return Bad(column, absl::StrCat(f.name(), " is a message: name one of its fields (", f.name(), ".…)"));
}

// The field of a map value message that a `:suffix` column sets (AttributeValue: string_value …).
const FieldDescriptor* ValueField(const Descriptor& value_type, const std::string& suffix) {
  return value_type.FindFieldByName(absl::StrCat(suffix.empty() ? "string" : suffix, "_value"));
}

// Walks `path` from `type`; with `m` set, also writes `value` there.
absl::Status Walk(const Descriptor& type, Message* m, const std::vector<std::string>& path, size_t i,
                  const std::string& suffix, const std::string* value, const std::string& column) {
  const FieldDescriptor* f = type.FindFieldByName(path[i]);
  if (f == nullptr) {
    return Bad(column, absl::StrCat(type.name(), " has no field \"", path[i], "\""));
  }
  const bool last = i + 1 == path.size();
  if (f->is_map()) {
    if (i + 2 != path.size())
      return Bad(column, absl::StrCat("name one key of the map ", f->name(), " (", f->name(), ".<key>)"));
    const FieldDescriptor* vf = f->message_type()->map_value();
    const FieldDescriptor* target = vf;
    if (vf->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      target = ValueField(*vf->message_type(), suffix);
      if (target == nullptr) return Bad(column, absl::StrCat("\":", suffix, "\" is not a value type of ", f->name()));
    }
    if (m == nullptr) return absl::OkStatus();
    Message* entry = m->GetReflection()->AddMessage(m, f);
    entry->GetReflection()->SetString(entry, entry->GetDescriptor()->map_key(), path[i + 1]);
    if (target == vf) return SetScalar(*entry, *vf, *value, column);
    Message* v = entry->GetReflection()->MutableMessage(entry, vf);
    return SetScalar(*v, *target, *value, column);
  }
  if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE && !last) {
    if (f->is_repeated())
      return Bad(column, absl::StrCat(f->name(), " is a list of messages: import it from JSON lines"));
    return Walk(*f->message_type(), m == nullptr ? nullptr : m->GetReflection()->MutableMessage(m, f), path, i + 1,
                suffix, value, column);
  }
  if (!last) return Bad(column, absl::StrCat(f->name(), " has no fields"));
  if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE &&
      f->message_type()->full_name() != "google.protobuf.Timestamp") {
    return Bad(column, absl::StrCat(f->name(), " is a message: name one of its fields (", f->name(), ".…)"));
  }
  if (m == nullptr) return absl::OkStatus();
  if (!f->is_repeated()) return SetScalar(*m, *f, *value, column);
  for (absl::string_view part : absl::StrSplit(*value, absl::ByAnyChar(",;"), absl::SkipWhitespace())) {
    if (absl::Status s = SetScalar(*m, *f, std::string(absl::StripAsciiWhitespace(part)), column); !s.ok()) return s;
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<CsvMapping> CsvMapping::Create(const Descriptor& type, const std::vector<std::string>& header,
                                              const std::map<std::string, ColumnHook>& hooks) {
  CsvMapping mapping;
  for (const std::string& raw : header) {
    Column c;
    c.name = std::string(absl::StripAsciiWhitespace(raw));
    if (auto it = hooks.find(c.name); it != hooks.end()) {
      c.hook = it->second;
    } else {
      std::string path = c.name;
      if (size_t colon = path.rfind(':'); colon != std::string::npos) {
        c.type_suffix = path.substr(colon + 1);
        path.resize(colon);
      }
      c.path = absl::StrSplit(path, '.');
      if (absl::Status s = Walk(type, nullptr, c.path, 0, c.type_suffix, nullptr, c.name); !s.ok()) {
        return absl::InvalidArgumentError(absl::StrCat("header column \"", c.name, "\": ", s.message()));
      }
    }
    mapping.columns_.push_back(std::move(c));
  }
  return mapping;
}

absl::Status CsvMapping::Fill(const std::vector<std::string>& row, Message& message) const {
  message.Clear();
  if (row.size() != columns_.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("has ", row.size(), " fields where the header has ", columns_.size()));
  }
  for (size_t i = 0; i < row.size(); ++i) {
    const Column& c = columns_[i];
    if (row[i].empty()) continue;
    absl::Status s = c.hook ? c.hook(row[i], message)
                            : Walk(*message.GetDescriptor(), &message, c.path, 0, c.type_suffix, &row[i], c.name);
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status SetField(Message& message, const std::string& path, const std::string& value, const std::string& what) {
  std::string p = path, suffix;
  if (size_t colon = p.rfind(':'); colon != std::string::npos) {
    suffix = p.substr(colon + 1);
    p.resize(colon);
  }
  return Walk(*message.GetDescriptor(), &message, absl::StrSplit(p, '.'), 0, suffix, &value, what);
}

absl::Status ParseJsonLine(const std::string& text, Message& message) {
  message.Clear();
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  auto s = google::protobuf::util::JsonStringToMessage(text, &message, options);
  if (!s.ok()) return absl::InvalidArgumentError(std::string(s.message()));
  return absl::OkStatus();
}

}  // namespace ecrm::ctl
