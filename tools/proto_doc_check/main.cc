// ecrm-proto-doc-check --proto_path=DIR file.proto… : exits 1 and names each service, RPC,
// message, field, enum and enum value that has no leading or trailing comment.
#include <google/protobuf/compiler/importer.h>
#include <google/protobuf/descriptor.h>

#include <cstdio>
#include <string>
#include <vector>

namespace {

using google::protobuf::Descriptor;
using google::protobuf::EnumDescriptor;
using google::protobuf::SourceLocation;

class Errors : public google::protobuf::compiler::MultiFileErrorCollector {
 public:
  void AddError(const std::string& file, int line, int column, const std::string& message) override {
    std::fprintf(stderr, "%s:%d:%d: %s\n", file.c_str(), line + 1, column + 1, message.c_str());
    failed = true;
  }
  bool failed = false;
};

struct Checker {
  std::vector<std::string> missing;

  template <typename D>
  void Check(const D* d, const char* kind) {
    SourceLocation loc;
    bool has = d->GetSourceLocation(&loc) && (!loc.leading_comments.empty() || !loc.trailing_comments.empty());
    if (!has) {
      int line = d->GetSourceLocation(&loc) ? loc.start_line + 1 : 0;
      missing.push_back(d->file()->name() + ":" + std::to_string(line) + ": " + kind + " " + d->full_name() +
                        " has no comment");
    }
  }

  void Enum(const EnumDescriptor* e) {
    Check(e, "enum");
    for (int i = 0; i < e->value_count(); ++i) Check(e->value(i), "enum value");
  }

  void Message(const Descriptor* m) {
    if (m->options().map_entry()) return;
    Check(m, "message");
    for (int i = 0; i < m->field_count(); ++i) Check(m->field(i), "field");
    for (int i = 0; i < m->nested_type_count(); ++i) Message(m->nested_type(i));
    for (int i = 0; i < m->enum_type_count(); ++i) Enum(m->enum_type(i));
  }
};

}  // namespace

int main(int argc, char** argv) {
  google::protobuf::compiler::DiskSourceTree tree;
  std::vector<std::string> files;
  std::string root;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.rfind("--proto_path=", 0) == 0) {
      root = arg.substr(13);
      tree.MapPath("", root);
    } else {
      files.push_back(arg);
    }
  }
  if (root.empty() || files.empty()) {
    std::fprintf(stderr, "usage: %s --proto_path=DIR file.proto...\n", argv[0]);
    return 2;
  }
  tree.MapPath("", "/usr/include");  // google/protobuf/*.proto
  Errors errors;
  google::protobuf::compiler::Importer importer(&tree, &errors);
  Checker checker;
  for (const std::string& path : files) {
    std::string rel = path.rfind(root + "/", 0) == 0 ? path.substr(root.size() + 1) : path;
    const google::protobuf::FileDescriptor* f = importer.Import(rel);
    if (f == nullptr) continue;
    for (int i = 0; i < f->service_count(); ++i) {
      checker.Check(f->service(i), "service");
      for (int j = 0; j < f->service(i)->method_count(); ++j) checker.Check(f->service(i)->method(j), "rpc");
    }
    for (int i = 0; i < f->message_type_count(); ++i) checker.Message(f->message_type(i));
    for (int i = 0; i < f->enum_type_count(); ++i) checker.Enum(f->enum_type(i));
  }
  for (const std::string& m : checker.missing) std::fprintf(stderr, "%s\n", m.c_str());
  if (errors.failed || !checker.missing.empty()) {
    std::fprintf(stderr, "proto documentation check failed: %zu undocumented element(s)\n", checker.missing.size());
    return 1;
  }
  std::printf("proto documentation check passed: %zu file(s)\n", files.size());
  return 0;
}
