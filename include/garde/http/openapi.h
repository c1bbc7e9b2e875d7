// The OpenAPI 3.1 description served at GET /openapi.json.
#pragma once

namespace garde {

const char* OpenApiDocument();

}  // namespace garde
