// libopendkim's C header for C++: it spells the boolean type _Bool, which C++ calls bool (the
// same one-byte type in the ABI).
#pragma once

#define _Bool bool
#include <opendkim/dkim.h>
#undef _Bool
