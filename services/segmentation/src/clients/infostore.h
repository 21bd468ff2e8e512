// The information store as segmentation uses it: its change feed and the listings a resync reads
// (libs/feed, shared with the personalisation engine's recommendation feed).
#pragma once

#include "ecrm/feed/infostore.h"

namespace ecrm::segmentation {

using InformationStore = feed::InformationStore;

}  // namespace ecrm::segmentation
