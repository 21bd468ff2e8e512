// Every ecrmctl command. Most are one RPC: the request is built from --json, the arguments and
// the flags (bound to its fields), and the answer printed as a table or JSON.
#include <grpcpp/client_context.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include <curl/curl.h>

#include <iostream>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "cli.h"
#include "ecrm/broadcast/v1/broadcast.grpc.pb.h"
#include "ecrm/infostore/v1/infostore.grpc.pb.h"
#include "ecrm/personalisation/v1/personalisation.grpc.pb.h"
#include "ecrm/segmentation/v1/segmentation.grpc.pb.h"
#include "ecrm/transaction/v1/transaction.grpc.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "import.h"

namespace ecrm::ctl {

namespace bc = ecrm::broadcast::v1;
namespace is = ecrm::infostore::v1;
namespace ps = ecrm::personalisation::v1;
namespace sg = ecrm::segmentation::v1;
namespace tx = ecrm::transaction::v1;
using google::protobuf::Message;

int ExitCode(const grpc::Status& s) {
  switch (s.error_code()) {
    case grpc::StatusCode::OK:
      return kOk;
    case grpc::StatusCode::NOT_FOUND:
      return kNotFound;
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::FAILED_PRECONDITION:
    case grpc::StatusCode::ALREADY_EXISTS:
    case grpc::StatusCode::OUT_OF_RANGE:
    case grpc::StatusCode::ABORTED:
      return kRejected;
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return kUnavailable;
    default:
      return kFailed;
  }
}

std::shared_ptr<grpc::Channel> Invocation::Channel(const std::string& engine) {
  auto& channel = channels_[engine];
  if (!channel) channel = grpc::CreateChannel(addresses.at(engine), grpc::InsecureChannelCredentials());
  return channel;
}

namespace {

absl::Status FromGrpc(const grpc::Status& s) {
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
}

int Fail(const std::string& engine, const Invocation& inv, const grpc::Status& s) {
  std::cerr << "ecrmctl: " << engine << " (" << inv.addresses.at(engine) << ") answered "
            << absl::StatusCodeToString(static_cast<absl::StatusCode>(s.error_code())) << ": " << s.error_message()
            << "\n";
  return ExitCode(s);
}

template <typename Service>
std::unique_ptr<typename Service::Stub> StubOf(Invocation& inv, const std::string& engine) {
  return Service::NewStub(inv.Channel(engine));
}

// One unary RPC with the invocation's request; prints the answer (or `print` does).
template <typename Service, typename Req, typename Resp, typename PrintFn = std::nullptr_t>
std::function<int(Invocation&)> Unary(std::string engine,
                                      grpc::Status (Service::Stub::*rpc)(grpc::ClientContext*, const Req&, Resp*),
                                      PrintFn print = nullptr) {
  return [engine, rpc, print](Invocation& inv) {
    auto stub = StubOf<Service>(inv, engine);
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(inv.Deadline()));
    Resp resp;
    grpc::Status s = (stub.get()->*rpc)(&ctx, static_cast<const Req&>(*inv.request), &resp);
    if (!s.ok()) return Fail(engine, inv, s);
    if constexpr (std::is_same_v<PrintFn, std::nullptr_t>) {
      Print(resp, inv.format, std::cout);
    } else {
      print(resp, inv);
    }
    return static_cast<int>(kOk);
  };
}

Binding Field(std::string name, std::string path, std::string help) {
  return {std::move(name), std::move(help), std::move(path), nullptr};
}

// --email / --phone / --identifier=type:value, naming a customer by one of their identifiers.
std::vector<Binding> IdentifierFlags(const std::string& ref) {
  auto set = [ref](common::v1::IdentifierType type) {
    return [ref, type](const std::string& value, Message& req) -> absl::Status {
      Message* m = &req;
      for (absl::string_view part : absl::StrSplit(ref, '.')) {
        m = m->GetReflection()->MutableMessage(m, m->GetDescriptor()->FindFieldByName(std::string(part)));
      }
      auto& id = *static_cast<common::v1::CustomerRef*>(m)->mutable_identifier();
      id.set_type(type);
      id.set_value(value);
      return absl::OkStatus();
    };
  };
  return {{"email", "the customer's email address", "", set(common::v1::IDENTIFIER_TYPE_EMAIL)},
          {"phone", "the customer's phone number", "", set(common::v1::IDENTIFIER_TYPE_PHONE)},
          {"loyalty-card", "the customer's loyalty card number", "", set(common::v1::IDENTIFIER_TYPE_LOYALTY_CARD)}};
}

absl::Status AddIdentifier(common::v1::IdentifierType type, const std::string& value, Message& m) {
  auto& req = static_cast<is::UpsertCustomerRequest&>(m);
  auto* id = req.add_identifiers();
  id->set_type(type);
  id->set_value(value);
  return absl::OkStatus();
}

std::map<std::string, ColumnHook> CustomerColumns() {
  return {{"email",
           [](const std::string& v, Message& m) { return AddIdentifier(common::v1::IDENTIFIER_TYPE_EMAIL, v, m); }},
          {"phone",
           [](const std::string& v, Message& m) { return AddIdentifier(common::v1::IDENTIFIER_TYPE_PHONE, v, m); }},
          {"loyalty_card", [](const std::string& v, Message& m) {
             return AddIdentifier(common::v1::IDENTIFIER_TYPE_LOYALTY_CARD, v, m);
           }}};
}

// Rows sent one RPC each (the import runs several at once).
template <typename Service, typename Req, typename Resp, typename Row = Req>
std::function<std::vector<absl::Status>(Invocation&, const std::vector<const Message*>&)> EachRow(
    std::string engine, grpc::Status (Service::Stub::*rpc)(grpc::ClientContext*, const Req&, Resp*),
    std::function<Req(const Row&)> wrap = nullptr) {
  return [engine, rpc, wrap](Invocation& inv, const std::vector<const Message*>& rows) {
    thread_local std::unique_ptr<typename Service::Stub> stub;
    if (!stub) stub = StubOf<Service>(inv, engine);
    std::vector<absl::Status> out;
    for (const Message* row : rows) {
      grpc::ClientContext ctx;
      ctx.set_deadline(absl::ToChronoTime(inv.Deadline()));
      Resp resp;
      grpc::Status s;
      if constexpr (std::is_same_v<Req, Row>) {
        s = (stub.get()->*rpc)(&ctx, static_cast<const Req&>(*row), &resp);
      } else {
        s = (stub.get()->*rpc)(&ctx, wrap(static_cast<const Row&>(*row)), &resp);
      }
      out.push_back(FromGrpc(s));
    }
    return out;
  };
}

// Events go in batches over one RecordEvents stream; a batch the store refuses is sent again
// one event at a time, so that only the bad events are rejected (event ids make resends safe).
std::vector<absl::Status> SendEvents(Invocation& inv, const std::vector<const Message*>& rows) {
  auto stub = StubOf<is::InformationStore>(inv, "infostore");
  auto send = [&](size_t from, size_t to) {
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(inv.Deadline()));
    is::RecordEventsResponse resp;
    auto writer = stub->RecordEvents(&ctx, &resp);
    is::RecordEventsRequest req;
    for (size_t i = from; i < to; ++i) *req.add_events() = static_cast<const is::Event&>(*rows[i]);
    writer->Write(req);
    writer->WritesDone();
    return FromGrpc(writer->Finish());
  };
  absl::Status all = send(0, rows.size());
  if (all.ok() || absl::IsUnavailable(all) || rows.size() == 1) return std::vector<absl::Status>(rows.size(), all);
  std::vector<absl::Status> each;
  for (size_t i = 0; i < rows.size(); ++i) each.push_back(send(i, i + 1));
  return each;
}

std::map<std::string, ColumnHook> EventColumns() {
  return {{"customer",
           [](const std::string& v, Message& m) {
             static_cast<is::Event&>(m).mutable_customer()->set_customer_id(v);
             return absl::OkStatus();
           }},
          {"email", [](const std::string& v, Message& m) {
             auto* id = static_cast<is::Event&>(m).mutable_customer()->mutable_identifier();
             id->set_type(common::v1::IDENTIFIER_TYPE_EMAIL);
             id->set_value(v);
             return absl::OkStatus();
           }}};
}

// Health of every engine, and what their metrics say about how far behind they are.
int Status(Invocation& inv) {
  int worst = kOk;
  std::vector<std::pair<std::string, std::string>> rows;
  for (const auto& [engine, address] : inv.addresses) {
    auto stub = grpc::health::v1::Health::NewStub(inv.Channel(engine));
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + std::min(inv.timeout, absl::Seconds(3))));
    grpc::health::v1::HealthCheckResponse resp;
    grpc::Status s = stub->Check(&ctx, {}, &resp);
    std::string state = s.ok() ? grpc::health::v1::HealthCheckResponse::ServingStatus_Name(resp.status())
                               : absl::StrCat("DOWN (", s.error_message(), ")");
    if (!s.ok() || resp.status() != grpc::health::v1::HealthCheckResponse::SERVING) worst = kUnavailable;
    std::string lag;
    if (auto it = inv.metrics_urls.find(engine); it != inv.metrics_urls.end() && s.ok()) {
      long code = 0;
      const std::string metrics = Get(it->second, absl::Seconds(3), &code);
      for (absl::string_view line : absl::StrSplit(metrics, '\n')) {
        if (!absl::StartsWith(line, "#") &&
            (absl::StrContains(line, "feed_lag") || absl::StrContains(line, "outbox_age"))) {
          absl::StrAppend(&lag, lag.empty() ? "" : "; ", line);
        }
      }
    }
    rows.emplace_back(engine, absl::StrCat(address, "  ", state, lag.empty() ? "" : absl::StrCat("  ", lag)));
  }
  for (const auto& [engine, text] : rows) {
    if (inv.format == Format::kJson) {
      std::cout << "{\"engine\":\"" << engine << "\",\"status\":\"" << absl::CEscape(text) << "\"}\n";
    } else {
      std::cout << engine << std::string(16 - std::min<size_t>(15, engine.size()), ' ') << text << "\n";
    }
  }
  return worst;
}

std::vector<Command> Build() {
  std::vector<Command> c;
  const auto* customer_get = is::GetCustomerRequest::descriptor();
  c.push_back({"customers get",
               "show a customer (merged ids answer the survivor)",
               "<customer id>",
               customer_get,
               {Field("customer id", "customer.customer_id", "")},
               {},
               Unary<is::InformationStore>("infostore", &is::InformationStore::Stub::GetCustomer)});
  c.push_back({"customers find",
               "find a customer by an identifier",
               "--email=<address> | --phone=<number> | --loyalty-card=<n>",
               customer_get,
               {},
               IdentifierFlags("customer"),
               Unary<is::InformationStore>("infostore", &is::InformationStore::Stub::GetCustomer)});
  c.push_back({"customers upsert",
               "create or update a customer",
               "[--id=<id>] [--email=…] [--first-name=…] … (or --json=<request>)",
               is::UpsertCustomerRequest::descriptor(),
               {},
               {Field("id", "customer_id", "the customer's ecrm id (update); empty: resolve by identifiers"),
                {"email", "an email address", "", CustomerColumns().at("email")},
                {"phone", "a phone number (E.164 or national)", "", CustomerColumns().at("phone")},
                Field("first-name", "profile.first_name", "first name"),
                Field("last-name", "profile.last_name", "last name"),
                Field("locale", "profile.locale", "BCP 47 locale, e.g. fr-CA"),
                Field("time-zone", "profile.time_zone", "IANA time zone, e.g. Europe/Paris"),
                Field("request-id", "request_id", "idempotency key: a retried upsert with it applies once")},
               Unary<is::InformationStore>("infostore", &is::InformationStore::Stub::UpsertCustomer)});
  c.push_back({"customers import",
               "import customers from CSV or JSON lines",
               "<file.csv|file.jsonl|->",
               nullptr,
               {Field("file", "", "")},
               {},
               nullptr});
  c.push_back({"customers export",
               "everything every engine holds about a customer (JSON)",
               "<customer id>",
               is::ExportCustomerRequest::descriptor(),
               {Field("customer id", "customer.customer_id", "")},
               {},
               Unary<is::InformationStore>("infostore", &is::InformationStore::Stub::ExportCustomer,
                                           [](const is::ExportCustomerResponse& r, Invocation& inv) {
                                             if (inv.format == Format::kJson || r.unavailable_engines().empty()) {
                                               std::cout << r.json_document() << "\n";
                                             } else {
                                               Print(r, inv.format, std::cout);
                                             }
                                           })});
  c.push_back(
      {"customers erase",
       "erase a customer in every engine (right to erasure); needs --yes",
       "<customer id> --yes",
       is::EraseCustomerRequest::descriptor(),
       {Field("customer id", "customer.customer_id", "")},
       {Field("reason", "reason", "why (kept in the audit log)"), Field("request-id", "request_id", "idempotency key")},
       Unary<is::InformationStore>("infostore", &is::InformationStore::Stub::EraseCustomer)});
  c.push_back({"events import",
               "import events from CSV or JSON lines",
               "<file.csv|file.jsonl|->",
               nullptr,
               {Field("file", "", "")},
               {},
               nullptr});
  c.push_back({"products import",
               "import products into the catalogue from CSV or JSON lines",
               "<file.csv|file.jsonl|->",
               nullptr,
               {Field("file", "", "")},
               {},
               nullptr});
  c.push_back({"segments create",
               "save a segment (its rule is checked first)",
               "--name=<name> --rule=<rule>",
               sg::CreateSegmentRequest::descriptor(),
               {},
               {Field("name", "segment.name", "unique name"),
                Field("rule", "segment.rule", "the rule, e.g. 'orders.count >= 3'"),
                Field("description", "segment.description", "what it is for")},
               Unary<sg::Segmentation>("segmentation", &sg::Segmentation::Stub::CreateSegment)});
  c.push_back({"segments preview",
               "count who a rule selects now, without saving it",
               "<rule> [--sample=<n>]",
               sg::PreviewSegmentRequest::descriptor(),
               {Field("rule", "rule", "")},
               {Field("sample", "sample_size", "how many customer ids to show")},
               Unary<sg::Segmentation>("segmentation", &sg::Segmentation::Stub::PreviewSegment)});
  c.push_back({"segments list",
               "the saved segments and their sizes",
               "",
               sg::ListSegmentsRequest::descriptor(),
               {},
               {Field("page-size", "page_size", "at most this many"),
                Field("page-token", "page_token", "from a previous page")},
               Unary<sg::Segmentation>("segmentation", &sg::Segmentation::Stub::ListSegments)});
  c.push_back({"segments members",
               "a page of a segment's members",
               "<segment id>",
               sg::ListSegmentMembersRequest::descriptor(),
               {Field("segment id", "segment_id", "")},
               {Field("page-size", "page_size", "at most this many"),
                Field("page-token", "page_token", "from a previous page")},
               Unary<sg::Segmentation>("segmentation", &sg::Segmentation::Stub::ListSegmentMembers,
                                       [](const sg::ListSegmentMembersResponse& r, Invocation& inv) {
                                         if (inv.format == Format::kJson) return Print(r, inv.format, std::cout);
                                         for (const std::string& id : r.customer_ids()) std::cout << id << "\n";
                                         if (!r.next_page_token().empty()) {
                                           std::cerr << "more: --page-token=" << r.next_page_token() << "\n";
                                         }
                                       })});
  c.push_back({"scores",
               "a customer's RFM cell, engagement and lifetime value",
               "<customer id>",
               sg::GetCustomerScoresRequest::descriptor(),
               {Field("customer id", "customer_id", "")},
               {},
               Unary<sg::Segmentation>("segmentation", &sg::Segmentation::Stub::GetCustomerScores)});
  c.push_back(
      {"campaigns create",
       "create a draft campaign",
       "--name=<name> --segments=<id,…> --template=<id> [--control=0.2] [--goal=purchase] [--channels=email,…]",
       sg::CreateCampaignRequest::descriptor(),
       {},
       {Field("name", "campaign.name", "name"), Field("type", "campaign.type", "one_off (default) or triggered"),
        Field("segments", "campaign.include_segment_ids", "segments whose members it addresses"),
        Field("exclude", "campaign.exclude_segment_ids", "segments whose members it leaves out"),
        Field("trigger", "campaign.trigger_segment_id", "triggered: entering this segment sends it"),
        Field("template", "campaign.template_id", "personalisation template to send"),
        Field("offer", "campaign.offer_id", "or an offer to send"),
        Field("placement", "campaign.placement", "with --template: where each customer's offers are decided"),
        Field("channels", "campaign.channel_policy.channels", "channels in order of preference (email,sms,push,web)"),
        Field("control", "campaign.control_fraction", "fraction held out as control, 0-0.5"),
        Field("goal", "campaign.goal_event_type", "the event that counts as a conversion, e.g. purchase"),
        Field("window", "campaign.attribution_window", "how long after launch a conversion counts, e.g. 1209600s")},
       Unary<sg::Segmentation>("segmentation", &sg::Segmentation::Stub::CreateCampaign)});
  c.push_back({"campaigns launch",
               "launch a draft campaign (a retried launch with the same --request-id launches once)",
               "<campaign id>",
               sg::LaunchCampaignRequest::descriptor(),
               {Field("campaign id", "id", "")},
               {Field("request-id", "request_id", "idempotency key")},
               Unary<sg::Segmentation>("segmentation", &sg::Segmentation::Stub::LaunchCampaign)});
  c.push_back({"campaigns report",
               "a campaign's funnel, conversions per group and uplift",
               "<campaign id>",
               sg::GetCampaignReportRequest::descriptor(),
               {Field("campaign id", "id", "")},
               {},
               Unary<sg::Segmentation>("segmentation", &sg::Segmentation::Stub::GetCampaignReport)});
  c.push_back(
      {"campaigns list",
       "campaigns, newest first",
       "[--state=running]",
       sg::ListCampaignsRequest::descriptor(),
       {},
       {Field("state", "state", "draft, running, completed …"), Field("page-size", "page_size", "at most this many"),
        Field("page-token", "page_token", "from a previous page")},
       Unary<sg::Segmentation>("segmentation", &sg::Segmentation::Stub::ListCampaigns)});
  c.push_back({"broadcasts status",
               "a broadcast's progress by state and suppression reason",
               "<broadcast id>",
               bc::GetBroadcastRequest::descriptor(),
               {Field("broadcast id", "id", "")},
               {},
               Unary<bc::Broadcast>("broadcast", &bc::Broadcast::Stub::GetBroadcast)});
  c.push_back(
      {"broadcasts list",
       "broadcasts, newest first",
       "[--campaign=<id>]",
       bc::ListBroadcastsRequest::descriptor(),
       {},
       {Field("campaign", "campaign_id", "only this campaign's"), Field("page-size", "page_size", "at most this many"),
        Field("page-token", "page_token", "from a previous page")},
       Unary<bc::Broadcast>("broadcast", &bc::Broadcast::Stub::ListBroadcasts)});
  c.push_back({"broadcasts pause",
               "stop sending a broadcast (within a second); resume goes on where it stopped",
               "<broadcast id>",
               bc::PauseBroadcastRequest::descriptor(),
               {Field("broadcast id", "id", "")},
               {},
               Unary<bc::Broadcast>("broadcast", &bc::Broadcast::Stub::PauseBroadcast)});
  c.push_back({"broadcasts resume",
               "go on sending a paused broadcast (never re-sends)",
               "<broadcast id>",
               bc::ResumeBroadcastRequest::descriptor(),
               {Field("broadcast id", "id", "")},
               {},
               Unary<bc::Broadcast>("broadcast", &bc::Broadcast::Stub::ResumeBroadcast)});
  c.push_back({"broadcasts cancel",
               "cancel what a broadcast has not sent yet",
               "<broadcast id>",
               bc::CancelBroadcastRequest::descriptor(),
               {Field("broadcast id", "id", "")},
               {},
               Unary<bc::Broadcast>("broadcast", &bc::Broadcast::Stub::CancelBroadcast)});
  c.push_back(
      {"offers list",
       "the offers",
       "[--active-only]",
       ps::ListOffersRequest::descriptor(),
       {},
       {Field("active-only", "active_only", "only active offers"), Field("page-size", "page_size", "at most this many"),
        Field("page-token", "page_token", "from a previous page")},
       Unary<ps::Personalisation>("personalisation", &ps::Personalisation::Stub::ListOffers)});
  c.push_back({"offers get",
               "one offer",
               "<offer id>",
               ps::GetOfferRequest::descriptor(),
               {Field("offer id", "id", "")},
               {},
               Unary<ps::Personalisation>("personalisation", &ps::Personalisation::Stub::GetOffer)});
  c.push_back({"offers create",
               "create an offer from its JSON",
               "--json='{\"offer\":{…}}'",
               ps::CreateOfferRequest::descriptor(),
               {},
               {},
               Unary<ps::Personalisation>("personalisation", &ps::Personalisation::Stub::CreateOffer)});
  c.push_back({"offers decide",
               "the offers a customer is eligible for, ranked, with reasons",
               "<customer id> --placement=<p>",
               ps::DecideOffersRequest::descriptor(),
               {Field("customer id", "customer_id", "")},
               {Field("placement", "placement", "where the offer shows, e.g. email_hero"),
                Field("channel", "channel", "email, sms, push or web"), Field("max", "max_offers", "at most this many"),
                Field("record-impression", "record_impression", "count the offers shown against their caps")},
               Unary<ps::Personalisation>("personalisation", &ps::Personalisation::Stub::DecideOffers)});
  c.push_back({"templates create",
               "save a message template (a new one; an update makes a new version)",
               "--name=<name> --channel=email --subject=… --text=… --html=…",
               ps::CreateTemplateRequest::descriptor(),
               {},
               {Field("name", "template.name", "the message's name"),
                Field("channel", "template.channel", "email, sms, push or web"),
                Field("locale", "template.locale", "BCP 47 locale of this variant; empty: the default"),
                Field("subject", "template.subject", "subject (email) or title (push), Mustache"),
                Field("text", "template.text_body", "text body, Mustache"),
                Field("html", "template.html_body", "HTML body, Mustache")},
               Unary<ps::Personalisation>("personalisation", &ps::Personalisation::Stub::CreateTemplate)});
  c.push_back({"templates list",
               "the message templates",
               "",
               ps::ListTemplatesRequest::descriptor(),
               {},
               {Field("page-size", "page_size", "at most this many"),
                Field("page-token", "page_token", "from a previous page")},
               Unary<ps::Personalisation>("personalisation", &ps::Personalisation::Stub::ListTemplates)});
  c.push_back({"templates render",
               "preview a template for a customer",
               "<template id> <customer id> [--var=name=value …]",
               ps::RenderMessageRequest::descriptor(),
               {Field("template id", "template_id", ""), Field("customer id", "customer_id", "")},
               {Field("placement", "placement", "decide offers for this placement"),
                Field("strict", "strict", "fail when the customer lacks a variable the template reads"),
                {"var", "an extra value for {{vars.name}}, as name=value", "",
                 [](const std::string& v, Message& m) -> absl::Status {
                   const size_t eq = v.find('=');
                   if (eq == std::string::npos || eq == 0) {
                     return absl::InvalidArgumentError("--var takes name=value");
                   }
                   (*static_cast<ps::RenderMessageRequest&>(m).mutable_vars())[v.substr(0, eq)] = v.substr(eq + 1);
                   return absl::OkStatus();
                 }}},
               Unary<ps::Personalisation>("personalisation", &ps::Personalisation::Stub::RenderMessage)});
  c.push_back({"demo",
               "the main job: a synthetic shop through the whole loop, ending in a campaign report",
               "[--customers=20000] [--products=500] [--seed=1] [--uplift=0.04] [--mail-dir=DIR]",
               nullptr,
               {},
               {Field("customers", "", "customers to seed (default 20000)"),
                Field("products", "", "products to seed, a multiple of 10 (default 500)"),
                Field("seed", "", "seed of the synthetic data (default 1)"),
                Field("uplift", "", "the true uplift the simulated customers answer with, absolute (default 0.04)"),
                Field("mail-dir", "",
                      "the local SMTP server's mailbox: 40% of the mails are opened and 12% clicked through "
                      "their tracking links (default: no opens or clicks)"),
                Field("tracking-url", "", "broadcast's public base URL (default http://127.0.0.1:8080)")},
               [](Invocation& inv) {
                 auto number = [&](const char* name, double fallback) {
                   double v = fallback;
                   if (!inv.options[name].empty() && !absl::SimpleAtod(inv.options[name], &v)) v = -1;
                   return v;
                 };
                 return RunDemo(inv, static_cast<int64_t>(number("customers", 20000)),
                                static_cast<int64_t>(number("products", 500)), static_cast<int64_t>(number("seed", 1)),
                                number("uplift", 0.04), inv.options["mail-dir"], inv.options["tracking-url"]);
               }});
  c.push_back({"status", "health of every engine, and their feed lag and outbox age", "", nullptr, {}, {}, Status});

  // A retried erase or launch must act once: without --request-id, the key is derived from what
  // it acts on.
  for (Command& cmd : c) {
    if (cmd.words != "customers erase" && cmd.words != "campaigns launch") continue;
    cmd.run = [run = cmd.run, verb = cmd.words](Invocation& inv) {
      const google::protobuf::FieldDescriptor* key = inv.request->GetDescriptor()->FindFieldByName("request_id");
      const google::protobuf::Reflection& r = *inv.request->GetReflection();
      if (r.GetString(*inv.request, key).empty())
        r.SetString(inv.request.get(), key, absl::StrCat("ecrmctl ", verb, " ", inv.args.at(0)));
      return run(inv);
    };
  }
  // The imports.
  for (Command& cmd : c) {
    if (cmd.words == "customers import") {
      cmd.details =
          "CSV: a header row naming the columns: customer_id, email, phone, loyalty_card, any field of the\n"
          "request by its path (profile.first_name, profile.locale, profile.address.city …) and\n"
          "attributes.<name>[:int|double|bool|time] (text by default). JSON lines: one\n"
          "UpsertCustomerRequest per line. Every rejected row is listed with its line and why.";
    } else if (cmd.words == "events import") {
      cmd.details =
          "CSV columns: event_id, customer (an ecrm id) or email, type, occurred_at (RFC 3339),\n"
          "amount.amount_minor, amount.currency, properties.<name>[:int|double|bool|time]. JSON lines: one\n"
          "Event per line. Sent in batches of 500; the event ids make a re-import safe.";
    } else if (cmd.words == "products import") {
      cmd.details =
          "CSV columns: sku, title, description, category, price.amount_minor, price.currency, active,\n"
          "track_stock, stock. JSON lines: one Product per line.";
    }
    if (cmd.words == "customers import") {
      cmd.run = [](Invocation& inv) {
        ImportSpec spec{is::UpsertCustomerRequest::descriptor(), CustomerColumns(), 1,
                        EachRow<is::InformationStore>("infostore", &is::InformationStore::Stub::UpsertCustomer)};
        return RunImport(inv, spec, inv.import_format);
      };
    } else if (cmd.words == "events import") {
      cmd.run = [](Invocation& inv) {
        inv.parallel = std::min(inv.parallel, 2);  // the store group-commits: a few wide streams beat many narrow ones
        return RunImport(inv, {is::Event::descriptor(), EventColumns(), 500, SendEvents}, inv.import_format);
      };
    } else if (cmd.words == "products import") {
      cmd.run = [](Invocation& inv) {
        ImportSpec spec{tx::Product::descriptor(),
                        {},
                        1,
                        EachRow<tx::Transaction, tx::UpsertProductRequest, tx::Product, tx::Product>(
                            "transaction", &tx::Transaction::Stub::UpsertProduct, [](const tx::Product& p) {
                              tx::UpsertProductRequest r;
                              *r.mutable_product() = p;
                              return r;
                            })};
        return RunImport(inv, spec, inv.import_format);
      };
    }
  }
  return c;
}

}  // namespace

std::string Get(const std::string& url, absl::Duration timeout, long* code) {
  std::string body;
  CURL* curl = curl_easy_init();
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(absl::ToInt64Milliseconds(timeout)));
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(
      curl, CURLOPT_WRITEFUNCTION, +[](char* p, size_t size, size_t n, void* out) {
        static_cast<std::string*>(out)->append(p, size * n);
        return size * n;
      });
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
  *code = curl_easy_perform(curl) == CURLE_OK ? 0 : -1;
  if (*code == 0) curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, code);
  curl_easy_cleanup(curl);
  return body;
}

const std::vector<Command>& Commands() {
  static const std::vector<Command> commands = Build();
  return commands;
}

}  // namespace ecrm::ctl
