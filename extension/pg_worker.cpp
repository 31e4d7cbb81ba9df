// Preload mode: background workers (stub, filled in next).
#include "state.hpp"
namespace pgcohere {
void register_workers() {}
}  // namespace pgcohere
