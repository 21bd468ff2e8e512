// A Pratt parser: one function per precedence climb, recursion only into nested
// parentheses, arguments, lists and unary operators, each bounded by Limits::max_depth.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "compiler.h"
#include "ecrm/status/macros.h"

namespace ecrm::rules {
namespace {

enum Precedence : int {
  kNone = 0,
  kOrPrec = 1,
  kAndPrec = 2,
  kComparePrec = 3,
  kAddPrec = 4,
  kMulPrec = 5,
};

int PrecedenceOf(Tok t) {
  switch (t) {
    case Tok::kOr:
      return kOrPrec;
    case Tok::kAnd:
      return kAndPrec;
    case Tok::kEq:
    case Tok::kNe:
    case Tok::kLt:
    case Tok::kLe:
    case Tok::kGt:
    case Tok::kGe:
    case Tok::kIn:
      return kComparePrec;
    case Tok::kPlus:
    case Tok::kMinus:
      return kAddPrec;
    case Tok::kStar:
    case Tok::kSlash:
      return kMulPrec;
    default:
      return kNone;
  }
}

Op BinaryOp(Tok t) {
  switch (t) {
    case Tok::kOr:
      return Op::kOr;
    case Tok::kAnd:
      return Op::kAnd;
    case Tok::kEq:
      return Op::kEq;
    case Tok::kNe:
      return Op::kNe;
    case Tok::kLt:
      return Op::kLt;
    case Tok::kLe:
      return Op::kLe;
    case Tok::kGt:
      return Op::kGt;
    case Tok::kGe:
      return Op::kGe;
    case Tok::kIn:
      return Op::kInList;  // the checker picks the kind of `in`
    case Tok::kPlus:
      return Op::kAdd;
    case Tok::kMinus:
      return Op::kSub;
    case Tok::kStar:
      return Op::kMul;
    default:
      return Op::kDiv;
  }
}

bool StartsOperand(Tok t) {
  switch (t) {
    case Tok::kIdent:
    case Tok::kNumber:
    case Tok::kDuration:
    case Tok::kString:
    case Tok::kTrue:
    case Tok::kFalse:
    case Tok::kLParen:
    case Tok::kLBracket:
    case Tok::kNot:
    case Tok::kMinus:
      return true;
    default:
      return false;
  }
}

// Functions called by a plain or dotted name; anything else before '(' is a method.
constexpr absl::string_view kGlobalFunctions[] = {"days_since", "has",          "segment",       "timestamp",
                                                  "date",       "events.count", "events.last_at"};
bool IsGlobalFunction(absl::string_view name) {
  return std::find(std::begin(kGlobalFunctions), std::end(kGlobalFunctions), name) != std::end(kGlobalFunctions);
}

}  // namespace

Compiler::Compiler(absl::string_view source, const Schema& schema, const Limits& limits)
    : source_(source), schema_(schema), limits_(limits), lexer_(source) {
  limits_.max_depth = std::clamp(limits_.max_depth, 1, kMaxDepthCeiling);
  limits_.max_length = std::min<size_t>(limits_.max_length, kMaxLengthCeiling);  // offsets are int32
}

absl::Status Compiler::Advance() { return lexer_.Next(tok_); }

std::string Compiler::Show(const Token& token) const {
  if (token.kind == Tok::kEnd) return "end of rule";
  absl::string_view text = source_.substr(token.begin, token.end - token.begin);
  const bool long_text = text.size() > 40;
  if (long_text) text = text.substr(0, 40);
  if (token.kind == Tok::kString) return absl::StrCat(text, long_text ? "…" : "");
  return absl::StrCat("'", text, long_text ? "…" : "", "'");
}

int32_t Compiler::AddString(std::string s) {
  rule_.strings_.push_back(std::move(s));
  return static_cast<int32_t>(rule_.strings_.size() - 1);
}

absl::Status Compiler::Enter(int32_t offset) {
  if (++nesting_ > limits_.max_depth) {
    return Error(offset, absl::StrCat("expected at most ", limits_.max_depth, " levels of nesting, found more"));
  }
  return absl::OkStatus();
}

absl::StatusOr<int32_t> Compiler::AddNode(Node node, const std::vector<int32_t>& children) {
  if (static_cast<int>(rule_.nodes_.size()) >= limits_.max_nodes) {
    return Error(node.begin,
                 absl::StrCat("expected at most ", limits_.max_nodes, " operations and values in a rule, found more"));
  }
  node.first_child = static_cast<int32_t>(rule_.children_.size());
  node.child_count = static_cast<int32_t>(children.size());
  node.depth = 1;
  for (int32_t c : children) {
    node.depth = std::max(node.depth, rule_.nodes_[c].depth + 1);
    rule_.children_.push_back(c);
  }
  if (node.depth > limits_.max_depth) {
    return Error(node.begin, absl::StrCat("expected at most ", limits_.max_depth, " levels of nesting, found more"));
  }
  rule_.nodes_.push_back(node);
  return static_cast<int32_t>(rule_.nodes_.size() - 1);
}

absl::StatusOr<int32_t> Compiler::ParseOperand(int min_precedence, absl::string_view context) {
  if (!StartsOperand(tok_.kind)) {
    return Error(tok_.begin,
                 absl::StrCat("expected a value", context.empty() ? "" : " ", context, ", found ", Show(tok_)));
  }
  return ParseExpr(min_precedence);
}

absl::StatusOr<int32_t> Compiler::ParseExpr(int min_precedence) {
  ECRM_ASSIGN_OR_RETURN(int32_t left, ParseUnary());
  while (true) {
    const Tok op = tok_.kind;
    const int precedence = PrecedenceOf(op);
    if (precedence == kNone || precedence < min_precedence) return left;
    const std::string op_text(source_.substr(tok_.begin, tok_.end - tok_.begin));
    const std::string context = absl::StrCat("after '", op_text, "'");
    ECRM_RETURN_IF_ERROR(Advance());
    std::vector<int32_t> operands{left};
    if (op == Tok::kAnd || op == Tok::kOr) {
      // a && b && c is one n-ary node, so long conjunctions stay shallow.
      while (true) {
        ECRM_ASSIGN_OR_RETURN(int32_t right, ParseOperand(precedence + 1, context));
        operands.push_back(right);
        if (tok_.kind != op) break;
        ECRM_RETURN_IF_ERROR(Advance());
      }
    } else {
      ECRM_ASSIGN_OR_RETURN(int32_t right, ParseOperand(precedence + 1, context));
      operands.push_back(right);
    }
    Node node;
    node.op = BinaryOp(op);
    node.begin = rule_.nodes_[left].begin;
    node.end = rule_.nodes_[operands.back()].end;
    ECRM_ASSIGN_OR_RETURN(left, AddNode(node, operands));
    if (precedence == kComparePrec && PrecedenceOf(tok_.kind) == kComparePrec) {
      return Error(tok_.begin, absl::StrCat("expected '&&' or '||' between two comparisons, found ", Show(tok_)));
    }
  }
}

absl::StatusOr<int32_t> Compiler::ParseUnary() {
  if (tok_.kind != Tok::kNot && tok_.kind != Tok::kMinus) return ParsePrimary();
  const Tok op = tok_.kind;
  const int32_t begin = tok_.begin;
  ECRM_RETURN_IF_ERROR(Enter(begin));
  ECRM_RETURN_IF_ERROR(Advance());
  if (!StartsOperand(tok_.kind)) {
    return Error(tok_.begin,
                 absl::StrCat("expected a value after '", op == Tok::kNot ? "!" : "-", "', found ", Show(tok_)));
  }
  ECRM_ASSIGN_OR_RETURN(int32_t operand, ParseUnary());
  Leave();
  Node& inner = rule_.nodes_[operand];
  if (op == Tok::kMinus && inner.op == Op::kNumber) {  // a negative literal
    inner.number = -inner.number;
    inner.begin = begin;
    return operand;
  }
  Node node;
  node.op = op == Tok::kNot ? Op::kNot : Op::kNeg;
  node.begin = begin;
  node.end = inner.end;
  return AddNode(node, {operand});
}

absl::StatusOr<int32_t> Compiler::ParsePrimary() {
  Node node;
  node.begin = tok_.begin;
  node.end = tok_.end;
  int32_t result = -1;
  switch (tok_.kind) {
    case Tok::kNumber:
      node.op = Op::kNumber;
      node.type = Type::kNumber;
      node.number = tok_.number;
      break;
    case Tok::kDuration:
      node.op = Op::kDuration;
      node.type = Type::kDuration;
      node.duration = tok_.duration;
      break;
    case Tok::kString:
      node.op = Op::kString;
      node.type = Type::kString;
      node.aux = AddString(std::move(tok_.text));
      break;
    case Tok::kTrue:
    case Tok::kFalse:
      node.op = Op::kBool;
      node.type = Type::kBool;
      node.boolean = tok_.kind == Tok::kTrue;
      break;
    case Tok::kLParen: {
      const int32_t open = tok_.begin;
      ECRM_RETURN_IF_ERROR(Enter(open));
      ECRM_RETURN_IF_ERROR(Advance());
      ECRM_ASSIGN_OR_RETURN(result, ParseOperand(kOrPrec, "after '('"));
      if (tok_.kind != Tok::kRParen) {
        return Error(tok_.begin, absl::StrCat("expected ')' to close the '(' at ", Position(source_, open), ", found ",
                                              Show(tok_)));
      }
      Leave();
      rule_.nodes_[result].begin = open;
      rule_.nodes_[result].end = tok_.end;
      ECRM_RETURN_IF_ERROR(Advance());
      break;
    }
    case Tok::kLBracket: {
      ECRM_ASSIGN_OR_RETURN(result, ParseList());
      break;
    }
    case Tok::kIdent: {
      ECRM_ASSIGN_OR_RETURN(result, ParsePath());
      break;
    }
    default:
      return Error(tok_.begin, absl::StrCat("expected a value, found ", Show(tok_)));
  }
  if (result < 0) {
    ECRM_ASSIGN_OR_RETURN(result, AddNode(node, {}));
    ECRM_RETURN_IF_ERROR(Advance());
  }
  // Method calls on any value: "abc".startsWith("a"), (x).contains("y").
  while (tok_.kind == Tok::kDot) {
    ECRM_RETURN_IF_ERROR(Advance());
    if (tok_.kind != Tok::kIdent) {
      return Error(tok_.begin, absl::StrCat("expected a method name after '.', found ", Show(tok_)));
    }
    std::string name(source_.substr(tok_.begin, tok_.end - tok_.begin));
    const Token name_token = tok_;
    method_name_at_ = tok_.begin;
    ECRM_RETURN_IF_ERROR(Advance());
    if (tok_.kind != Tok::kLParen) {
      return Error(tok_.begin,
                   absl::StrCat("expected '(' after the method name ", Show(name_token), ", found ", Show(tok_)));
    }
    ECRM_ASSIGN_OR_RETURN(result, ParseArguments(Op::kMethod, std::move(name), rule_.nodes_[result].begin, {result}));
  }
  return result;
}

absl::StatusOr<int32_t> Compiler::ParsePath() {
  const int32_t begin = tok_.begin;
  std::string path(source_.substr(tok_.begin, tok_.end - tok_.begin));
  std::string last(path);
  int32_t end = tok_.end;
  int32_t prefix_end = tok_.end;
  int32_t last_begin = tok_.begin;
  std::string prefix;  // the path before its last component
  ECRM_RETURN_IF_ERROR(Advance());
  bool bracketed = false;
  while (tok_.kind == Tok::kDot) {
    ECRM_RETURN_IF_ERROR(Advance());
    if (tok_.kind != Tok::kIdent) {
      return Error(tok_.begin, absl::StrCat("expected a field or method name after '.', found ", Show(tok_)));
    }
    prefix = path;
    prefix_end = end;
    last_begin = tok_.begin;
    last = std::string(source_.substr(tok_.begin, tok_.end - tok_.begin));
    absl::StrAppend(&path, ".", last);
    end = tok_.end;
    ECRM_RETURN_IF_ERROR(Advance());
  }
  if (path == "attributes" && tok_.kind == Tok::kLBracket) {  // attributes["name"]
    ECRM_RETURN_IF_ERROR(Advance());
    if (tok_.kind != Tok::kString) {
      return Error(tok_.begin,
                   absl::StrCat("expected an attribute name in double quotes after '[', found ", Show(tok_)));
    }
    absl::StrAppend(&path, ".", tok_.text);
    ECRM_RETURN_IF_ERROR(Advance());
    if (tok_.kind != Tok::kRBracket) {
      return Error(tok_.begin, absl::StrCat("expected ']', found ", Show(tok_)));
    }
    end = tok_.end;
    ECRM_RETURN_IF_ERROR(Advance());
    bracketed = true;
  }
  if (tok_.kind == Tok::kLParen && !bracketed) {
    if (IsGlobalFunction(path) || prefix.empty() || prefix == "events") {
      return ParseArguments(Op::kCall, path, begin, {});
    }
    // profile.city.startsWith(…): a method of the field before it.
    Node receiver;
    receiver.op = Op::kPath;
    receiver.begin = begin;
    receiver.end = prefix_end;
    receiver.aux = AddString(prefix);
    ECRM_ASSIGN_OR_RETURN(int32_t r, AddNode(receiver, {}));
    method_name_at_ = last_begin;
    return ParseArguments(Op::kMethod, last, begin, {r});
  }
  Node node;
  node.op = Op::kPath;
  node.begin = begin;
  node.end = end;
  node.aux = AddString(std::move(path));
  return AddNode(node, {});
}

absl::StatusOr<int32_t> Compiler::ParseArguments(Op op, std::string name, int32_t begin, std::vector<int32_t> args) {
  // At '('. A method's name is at method_name_at_, which nested calls may overwrite.
  const int32_t name_at = method_name_at_;
  ECRM_RETURN_IF_ERROR(Enter(tok_.begin));
  ECRM_RETURN_IF_ERROR(Advance());
  const std::string context = absl::StrCat("in the arguments of ", name);
  if (tok_.kind != Tok::kRParen) {
    while (true) {
      ECRM_ASSIGN_OR_RETURN(int32_t arg, ParseOperand(kOrPrec, context));
      args.push_back(arg);
      if (tok_.kind == Tok::kRParen) break;
      if (tok_.kind != Tok::kComma) {
        return Error(tok_.begin, absl::StrCat("expected ',' or ')' ", context, ", found ", Show(tok_)));
      }
      ECRM_RETURN_IF_ERROR(Advance());
    }
  }
  Leave();
  Node node;
  node.op = op;
  node.begin = begin;
  node.end = tok_.end;
  node.aux = AddString(std::move(name));
  node.number = name_at;
  ECRM_RETURN_IF_ERROR(Advance());
  return AddNode(node, args);
}

absl::StatusOr<int32_t> Compiler::ParseList() {
  // At '['.
  Node node;
  node.op = Op::kList;
  node.type = Type::kList;
  node.begin = tok_.begin;
  ECRM_RETURN_IF_ERROR(Enter(tok_.begin));
  ECRM_RETURN_IF_ERROR(Advance());
  std::vector<int32_t> elements;
  while (tok_.kind != Tok::kRBracket) {
    if (static_cast<int>(elements.size()) >= limits_.max_list_size) {
      return Error(tok_.begin,
                   absl::StrCat("expected at most ", limits_.max_list_size, " elements in a list, found more"));
    }
    ECRM_ASSIGN_OR_RETURN(int32_t element, ParseOperand(kOrPrec, "in the list"));
    elements.push_back(element);
    if (tok_.kind == Tok::kRBracket) break;
    if (tok_.kind != Tok::kComma) {
      return Error(tok_.begin, absl::StrCat("expected ',' or ']' in the list, found ", Show(tok_)));
    }
    ECRM_RETURN_IF_ERROR(Advance());
  }
  Leave();
  node.end = tok_.end;
  ECRM_RETURN_IF_ERROR(Advance());
  return AddNode(node, elements);
}

absl::StatusOr<Rule> Compiler::Run() {
  if (source_.size() > limits_.max_length) {
    return Error(static_cast<int32_t>(limits_.max_length),
                 absl::StrCat("expected a rule of at most ", limits_.max_length, " bytes, found ", source_.size()));
  }
  rule_.source_ = std::string(source_);
  rule_.nodes_.clear();
  ECRM_RETURN_IF_ERROR(Advance());
  ECRM_ASSIGN_OR_RETURN(rule_.root_, ParseOperand(kOrPrec, ""));
  if (tok_.kind != Tok::kEnd) {
    return Error(tok_.begin,
                 absl::StrCat("expected an operator such as '&&' or the end of the rule, found ", Show(tok_)));
  }
  ECRM_RETURN_IF_ERROR(Check());
  return std::move(rule_);
}

absl::StatusOr<Rule> Compile(absl::string_view source, const Schema& schema, const Limits& limits) {
  return Compiler(source, schema, limits).Run();
}

}  // namespace ecrm::rules
