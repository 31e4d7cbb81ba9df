// libFuzzer target: every SCRAM message parser, the secret parser and both state machines
// fed with arbitrary bytes must fail cleanly, never crash.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "auth/exchange.h"
#include "auth/scram.h"

using namespace pgcohere::auth;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  (void)parse_client_first(in);
  (void)parse_server_first(in);
  (void)parse_client_final(in);
  (void)parse_server_final(in);
  (void)parse_scram_secret(in);
  (void)saslprep(in);
  (void)parse_sasl_initial_response(in);

  // Split the input into two messages for the state machines.
  std::size_t cut = in.find('\n');
  std::string_view first = in.substr(0, cut);
  std::string_view second = cut == std::string_view::npos ? std::string_view() : in.substr(cut + 1);

  static const ScramSecret secret = scram_secret_from_password("pencil", "saltsaltsalt", 1);
  ScramServer server(secret, "servernonce");
  if (server.client_first(first).ok()) (void)server.client_final(second);

  // A hostile server can ask for any iteration count; keep the fuzzer fast.
  auto sf = parse_server_first(first);
  if (sf && sf->iterations > 16) return 0;
  auto client = ScramClient::with_password("pencil", "clientnonce");
  client.client_first();
  auto step = client.server_first(first);
  if (step.ok()) (void)client.server_final(second);
  return 0;
}
