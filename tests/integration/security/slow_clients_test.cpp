// Security: slow clients (see docs/security.md), tried from outside against the
// real binaries.
#include <catch2/catch.hpp>

#include "../support/harness.hpp"
