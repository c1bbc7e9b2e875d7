// Routes anyone may call: liveness, readiness, the OpenAPI description.
#include "garde/base/json_writer.h"
#include "garde/http/http_service.h"
#include "garde/http/openapi.h"

namespace garde {

void AddSystemRoutes(Router& router, Deployment& d) {
  router.Add(
      "GET", "/healthz",
      [](Exchange& x) {
        x.Json(200, R"({"status":"ok"})");
        return Status::Ok();
      },
      Pace::kAtOnce);
  router.Add("GET", "/readyz", [&d](Exchange& x) {
    const Status db = d.store().Ping();
    const auto ring = d.keys().Current();
    // A token that does not answer fails readiness: no data key can be opened or sealed.
    const bool keys_ok = ring && ring->Usable(ring->current_version()) &&
                         (ring->TokenKey(ring->current_version()) == nullptr ||
                          ring->token()->Probe(*ring->TokenKey(ring->current_version())).ok());
    JsonWriter w;
    w.BeginObject()
        .String("status", db.ok() && keys_ok ? "ready" : "unavailable")
        .BeginObject("checks")
        .String("database", db.ok() ? "ok" : "failing")
        .String("keys", keys_ok ? "ok" : "failing")
        .EndObject()
        .EndObject();
    if (!db.ok() || !keys_ok) {
      x.status = 503;
      x.reply = w.Take();
      return Status::Ok();
    }
    x.Json(200, w.Take());
    return Status::Ok();
  });
  router.Add("GET", "/openapi.json", [](Exchange& x) {
    x.Json(200, std::string(OpenApiDocument()));
    return Status::Ok();
  });
}

}  // namespace garde
