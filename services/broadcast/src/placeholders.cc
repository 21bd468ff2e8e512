#include "placeholders.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace ecrm::broadcast {

namespace {

std::string HtmlEscape(absl::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string Link(absl::string_view base, absl::string_view delivery_id) {
  if (base.empty()) return "";
  return absl::StrCat(base, "?d=", delivery_id);
}

// The link a placeholder's name stands for; nullptr for a name that is not ours.
const std::string* LinkNamed(absl::string_view name, const DeliveryLinks& links) {
  if (name == "unsubscribe_url") return &links.unsubscribe;
  if (name == "preferences_url") return &links.preferences;
  if (name == "view_in_browser_url") return &links.view_in_browser;
  return nullptr;
}

std::string Fill(absl::string_view text, const DeliveryLinks& links, bool html) {
  std::string out;
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t open = text.find("{{", pos);
    if (open == absl::string_view::npos) break;
    const size_t close = text.find("}}", open + 2);
    if (close == absl::string_view::npos) break;
    const std::string* link = LinkNamed(absl::StripAsciiWhitespace(text.substr(open + 2, close - open - 2)), links);
    if (link == nullptr) {  // not ours: left as it is
      absl::StrAppend(&out, text.substr(pos, open + 2 - pos));
      pos = open + 2;
      continue;
    }
    absl::StrAppend(&out, text.substr(pos, open - pos));
    out.append(html ? HtmlEscape(*link) : *link);
    pos = close + 2;
  }
  absl::StrAppend(&out, text.substr(pos));
  return out;
}

}  // namespace

DeliveryLinks LinksFor(absl::string_view delivery_id, std::string unsubscribe_url, absl::string_view preferences_base,
                       absl::string_view view_in_browser_base) {
  return {std::move(unsubscribe_url), Link(preferences_base, delivery_id), Link(view_in_browser_base, delivery_id)};
}

v1::LiteralContent FillPlaceholders(v1::LiteralContent content, const DeliveryLinks& links) {
  if (content.subject().find("{{") != std::string::npos) content.set_subject(Fill(content.subject(), links, false));
  if (content.text_body().find("{{") != std::string::npos) {
    content.set_text_body(Fill(content.text_body(), links, false));
  }
  if (content.html_body().find("{{") != std::string::npos) {
    content.set_html_body(Fill(content.html_body(), links, true));
  }
  return content;
}

}  // namespace ecrm::broadcast
