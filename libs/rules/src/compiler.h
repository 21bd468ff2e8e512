// Compile(): the parser (parser.cc) builds the AST into a Rule, children before parents; the
// checker (checker.cc) then types every node in that order, resolves names against the
// schema and compacts the AST to what the root reaches.
#pragma once

#include <string>
#include <vector>
#include "absl/strings/string_view.h"

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "ecrm/rules/rule.h"
#include "lexer.h"

namespace ecrm::rules {

// The most nesting any Limits may allow: parsing and evaluation recurse that deep.
inline constexpr int kMaxDepthCeiling = 256;
// The longest rule any Limits may allow.
inline constexpr size_t kMaxLengthCeiling = size_t{1} << 30;

class Compiler {
 public:
  Compiler(absl::string_view source, const Schema& schema, const Limits& limits);
  absl::StatusOr<Rule> Run();

 private:
  // parser.cc
  absl::Status Advance();
  absl::StatusOr<int32_t> ParseExpr(int min_precedence);
  absl::StatusOr<int32_t> ParseOperand(int min_precedence, absl::string_view context);
  absl::StatusOr<int32_t> ParseUnary();
  absl::StatusOr<int32_t> ParsePrimary();
  absl::StatusOr<int32_t> ParsePath();
  absl::StatusOr<int32_t> ParseArguments(Op op, std::string name, int32_t begin, std::vector<int32_t> args);
  absl::StatusOr<int32_t> ParseList();
  absl::StatusOr<int32_t> AddNode(Node node, const std::vector<int32_t>& children);
  absl::Status Enter(int32_t offset);
  void Leave() { --nesting_; }
  int32_t AddString(std::string s);
  std::string Show(const Token& token) const;
  absl::Status Error(int32_t offset, absl::string_view message) const { return ErrorAt(source_, offset, message); }

  // checker.cc
  absl::Status Check();
  absl::Status CheckNode(int32_t index);
  absl::Status CheckPath(Node& node);
  absl::Status CheckCall(Node& node);
  absl::Status CheckMethod(Node& node);
  absl::Status CheckList(Node& node);
  absl::Status CheckComparison(Node& node);
  absl::Status CheckArithmetic(Node& node);
  absl::Status ExpectType(int32_t child, Type want, absl::string_view what);
  // An attribute whose type the schema left to the rule (AttributeInfo::inferred) takes
  // `type` from its use here; a node that is not such an attribute is left as it is.
  absl::Status Infer(int32_t child, Type type);
  bool Pending(int32_t child) const { return pending_.contains(child); }
  absl::StatusOr<std::string> LiteralString(int32_t child, absl::string_view what) const;
  std::string Describe(int32_t index) const;
  void Compact();
  int32_t CopyNode(const Rule& from, int32_t index);
  void CollectDependencies();

  absl::string_view source_;
  const Schema& schema_;
  Limits limits_;
  Lexer lexer_;
  Token tok_;
  int nesting_ = 0;
  int32_t method_name_at_ = 0;  // where the name of the method being parsed begins
  Rule rule_;
  // Inferred attributes: the nodes whose type is not known yet (node → attribute name), and
  // the type each attribute took at its first typed use (with where).
  absl::flat_hash_map<int32_t, std::string> pending_;
  absl::flat_hash_map<std::string, std::pair<Type, int32_t>> inferred_;
};

// The closest of `candidates` to `name` within a small edit distance, or "".
std::string Suggest(absl::string_view name, const std::vector<std::string>& candidates);
// "; did you mean 'x'?" or "".
std::string DidYouMean(absl::string_view name, const std::vector<std::string>& candidates);

}  // namespace ecrm::rules
