// libFuzzer target: the NOTIFY payload decoder must never crash, hang or read out of bounds,
// and whatever the unverified parser accepts must survive an encode/decode round trip.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "contract/payload.h"

using namespace pgcohere::contract;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  (void)decode_payload(input, "appdb", "secret");
  auto parsed = parse_payload_unverified(input);
  if (parsed.ok()) {
    std::string again = encode_payload(*parsed.payload, "appdb", "secret");
    auto back = decode_payload(again, "appdb", "secret");
    if (!back.ok() || !(*back.payload == *parsed.payload)) std::abort();
  }
  return 0;
}
