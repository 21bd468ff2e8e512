#include "output.h"

#include <algorithm>
#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/duration.pb.h"
#include "google/protobuf/timestamp.pb.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/time_util.h"

namespace ecrm::ctl {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

std::string ToJson(const Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(message, &out, options);
  return out;
}

namespace {

std::string EnumText(const google::protobuf::EnumValueDescriptor& v) {
  const std::string& zero = v.type()->value(0)->name();
  std::string name = v.name();
  if (absl::EndsWith(zero, "UNSPECIFIED")) {
    const std::string prefix = zero.substr(0, zero.size() - 11);
    if (absl::StartsWith(name, prefix)) name = name.substr(prefix.size());
  }
  return absl::AsciiStrToLower(name);
}

// A message printed as one value, or empty when it is printed field by field.
std::string Atomic(const Message& m) {
  const std::string& type = m.GetDescriptor()->full_name();
  if (type == "google.protobuf.Timestamp") {
    return google::protobuf::util::TimeUtil::ToString(static_cast<const google::protobuf::Timestamp&>(m));
  }
  if (type == "google.protobuf.Duration") {
    return google::protobuf::util::TimeUtil::ToString(static_cast<const google::protobuf::Duration&>(m));
  }
  if (type == "ecrm.common.v1.Money") {
    const auto* d = m.GetDescriptor();
    const Reflection& r = *m.GetReflection();
    const int64_t minor = r.GetInt64(m, d->FindFieldByName("amount_minor"));
    const std::string currency = r.GetString(m, d->FindFieldByName("currency"));
    if (currency == "JPY" || currency == "KRW") return absl::StrCat(minor, " ", currency);
    return absl::StrFormat("%s%d.%02d %s", minor < 0 ? "-" : "", std::abs(minor) / 100, std::abs(minor) % 100,
                           currency);
  }
  return "";
}

std::string ScalarText(const Message& m, const FieldDescriptor& f, int index) {
  const Reflection& r = *m.GetReflection();
  const bool rep = index >= 0;
  switch (f.cpp_type()) {
    case FieldDescriptor::CPPTYPE_STRING:
      return rep ? r.GetRepeatedString(m, &f, index) : r.GetString(m, &f);
    case FieldDescriptor::CPPTYPE_INT32:
      return absl::StrCat(rep ? r.GetRepeatedInt32(m, &f, index) : r.GetInt32(m, &f));
    case FieldDescriptor::CPPTYPE_INT64:
      return absl::StrCat(rep ? r.GetRepeatedInt64(m, &f, index) : r.GetInt64(m, &f));
    case FieldDescriptor::CPPTYPE_UINT32:
      return absl::StrCat(rep ? r.GetRepeatedUInt32(m, &f, index) : r.GetUInt32(m, &f));
    case FieldDescriptor::CPPTYPE_UINT64:
      return absl::StrCat(rep ? r.GetRepeatedUInt64(m, &f, index) : r.GetUInt64(m, &f));
    case FieldDescriptor::CPPTYPE_DOUBLE:
      return absl::StrCat(rep ? r.GetRepeatedDouble(m, &f, index) : r.GetDouble(m, &f));
    case FieldDescriptor::CPPTYPE_FLOAT:
      return absl::StrCat(rep ? r.GetRepeatedFloat(m, &f, index) : r.GetFloat(m, &f));
    case FieldDescriptor::CPPTYPE_BOOL:
      return (rep ? r.GetRepeatedBool(m, &f, index) : r.GetBool(m, &f)) ? "true" : "false";
    case FieldDescriptor::CPPTYPE_ENUM:
      return EnumText(*(rep ? r.GetRepeatedEnum(m, &f, index) : r.GetEnum(m, &f)));
    case FieldDescriptor::CPPTYPE_MESSAGE:
      break;
  }
  return "";
}

void FlattenInto(const Message& m, const std::string& prefix, std::vector<std::pair<std::string, std::string>>& out) {
  if (std::string atomic = Atomic(m); !atomic.empty()) {
    out.emplace_back(prefix, std::move(atomic));
    return;
  }
  const Reflection& r = *m.GetReflection();
  std::vector<const FieldDescriptor*> fields;
  r.ListFields(m, &fields);
  for (const FieldDescriptor* f : fields) {
    const std::string path = prefix.empty() ? f->name() : absl::StrCat(prefix, ".", f->name());
    if (f->is_map()) {
      const FieldDescriptor* key = f->message_type()->map_key();
      const FieldDescriptor* value = f->message_type()->map_value();
      std::vector<std::pair<std::string, const Message*>> entries;
      for (int i = 0; i < r.FieldSize(m, f); ++i) {
        const Message& e = r.GetRepeatedMessage(m, f, i);
        entries.emplace_back(ScalarText(e, *key, -1), &e);
      }
      std::sort(entries.begin(), entries.end());  // maps have no order: print them sorted
      for (const auto& [k, e] : entries) {
        if (value->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
          FlattenInto(e->GetReflection()->GetMessage(*e, value), absl::StrCat(path, ".", k), out);
        } else {
          out.emplace_back(absl::StrCat(path, ".", k), ScalarText(*e, *value, -1));
        }
      }
    } else if (f->is_repeated()) {
      if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
        for (int i = 0; i < r.FieldSize(m, f); ++i) {
          FlattenInto(r.GetRepeatedMessage(m, f, i), absl::StrCat(path, ".", i), out);
        }
      } else {
        std::vector<std::string> values;
        for (int i = 0; i < r.FieldSize(m, f); ++i) values.push_back(ScalarText(m, *f, i));
        out.emplace_back(path, absl::StrJoin(values, ", "));
      }
    } else if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      FlattenInto(r.GetMessage(m, f), path, out);
    } else {
      out.emplace_back(path, ScalarText(m, *f, -1));
    }
  }
}

std::string Cell(std::string text, size_t width) {
  for (char& c : text) {
    if (c == '\n' || c == '\t') c = ' ';
  }
  if (text.size() > width) text = absl::StrCat(text.substr(0, width - 1), "…");
  return text;
}

// The one repeated message field of a list response (customers, segments …), if it has one.
const FieldDescriptor* ListField(const Message& m) {
  const FieldDescriptor* list = nullptr;
  const auto* d = m.GetDescriptor();
  for (int i = 0; i < d->field_count(); ++i) {
    const FieldDescriptor* f = d->field(i);
    if (f->is_repeated() && !f->is_map() && f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      if (list != nullptr) return nullptr;
      list = f;
    }
  }
  return list;
}

}  // namespace

std::vector<std::pair<std::string, std::string>> Flatten(const Message& message) {
  std::vector<std::pair<std::string, std::string>> out;
  FlattenInto(message, "", out);
  return out;
}

void Print(const Message& message, Format format, std::ostream& out) {
  if (format == Format::kJson) {
    out << ToJson(message) << "\n";
    return;
  }
  const FieldDescriptor* list = ListField(message);
  if (list == nullptr) {
    auto fields = Flatten(message);
    size_t width = 0;
    for (const auto& [k, v] : fields) width = std::max(width, k.size());
    for (const auto& [k, v] : fields) out << k << ":" << std::string(width - k.size() + 1, ' ') << v << "\n";
    if (fields.empty()) out << "(empty)\n";
    return;
  }
  // Columns: every path set in some row, in order of first appearance, at most 10.
  constexpr size_t kMaxColumns = 10, kMaxWidth = 40;
  const Reflection& r = *message.GetReflection();
  std::vector<std::string> columns;
  std::vector<std::map<std::string, std::string>> rows;
  for (int i = 0; i < r.FieldSize(message, list); ++i) {
    std::map<std::string, std::string> row;
    for (auto& [k, v] : Flatten(r.GetRepeatedMessage(message, list, i))) {
      if (std::find(columns.begin(), columns.end(), k) == columns.end()) {
        if (columns.size() >= kMaxColumns) continue;
        columns.push_back(k);
      }
      row[k] = Cell(v, kMaxWidth);
    }
    rows.push_back(std::move(row));
  }
  std::vector<size_t> widths;
  for (const std::string& c : columns) {
    size_t w = c.size();
    for (auto& row : rows) w = std::max(w, row[c].size());
    widths.push_back(w);
  }
  auto line = [&](const std::function<std::string(size_t)>& cell) {
    std::string text;
    for (size_t i = 0; i < columns.size(); ++i) {
      std::string v = cell(i);
      absl::StrAppend(&text, v, i + 1 < columns.size() ? std::string(widths[i] - v.size() + 2, ' ') : "");
    }
    out << text << "\n";
  };
  if (!columns.empty()) {
    line([&](size_t i) { return absl::AsciiStrToUpper(columns[i]); });
    for (auto& row : rows) line([&](size_t i) { return row[columns[i]]; });
  }
  // What else the response says (next_page_token …).
  std::vector<const FieldDescriptor*> fields;
  r.ListFields(message, &fields);
  for (const FieldDescriptor* f : fields) {
    if (f == list) continue;
    auto rest = Flatten(message);
    for (auto& [k, v] : rest) {
      if (!absl::StartsWith(k, list->name() + ".") && absl::StartsWith(k, f->name())) out << k << ": " << v << "\n";
    }
  }
  if (rows.empty()) out << "(none)\n";
}

}  // namespace ecrm::ctl
