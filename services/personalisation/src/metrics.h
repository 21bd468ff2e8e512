// The personalisation engine's metrics: registered once, at construction, from the registry it
// is given; the code then only moves the values.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/registry.h>

namespace ecrm::personalisation {

struct PersonalisationMetrics {
  explicit PersonalisationMetrics(prometheus::Registry& registry)
      : rendered(prometheus::BuildCounter()
                     .Name("ecrm_personalisation_messages_rendered_total")
                     .Help("Messages rendered (RenderMessage and each customer of BatchRender)")
                     .Register(registry)
                     .Add({})),
        render_failures(prometheus::BuildCounter()
                            .Name("ecrm_personalisation_render_failures_total")
                            .Help("Customers a message could not be rendered for, by reason")
                            .Register(registry)),
        failed_unknown_customer(render_failures.Add({{"reason", "unknown_customer"}})),
        failed_missing_variable(render_failures.Add({{"reason", "missing_variable"}})),
        failed_unavailable(render_failures.Add({{"reason", "store_unavailable"}})),
        missing_variables(prometheus::BuildCounter()
                              .Name("ecrm_personalisation_missing_variables_total")
                              .Help("Variables rendered empty because the customer's data had no value for them")
                              .Register(registry)
                              .Add({})),
        customer_reads(prometheus::BuildCounter()
                           .Name("ecrm_personalisation_customer_reads_total")
                           .Help("Customers read for rendering, by where they came from")
                           .Register(registry)),
        read_from_cache(customer_reads.Add({{"source", "cache"}})),
        read_from_store(customer_reads.Add({{"source", "infostore"}})),
        compilations(prometheus::BuildCounter()
                         .Name("ecrm_personalisation_template_compilations_total")
                         .Help("Template versions parsed into instruction lists (then kept in memory)")
                         .Register(registry)
                         .Add({})) {}

  prometheus::Counter& rendered;
  prometheus::Family<prometheus::Counter>& render_failures;
  prometheus::Counter& failed_unknown_customer;
  prometheus::Counter& failed_missing_variable;
  prometheus::Counter& failed_unavailable;
  prometheus::Counter& missing_variables;
  prometheus::Family<prometheus::Counter>& customer_reads;
  prometheus::Counter& read_from_cache;
  prometheus::Counter& read_from_store;
  prometheus::Counter& compilations;
};

}  // namespace ecrm::personalisation
