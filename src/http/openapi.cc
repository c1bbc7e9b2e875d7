// Generated from the API's shape; keep in step with the routes (tests check that every
// route is described).
#include "garde/http/openapi.h"

namespace garde {

const char* OpenApiDocument() {
  return R"openapi({
 "openapi": "3.1.0",
 "info": {
  "title": "Garde API",
  "version": "1.0.0",
  "description": "Encrypted, purpose-bound customer vault with consent, register and data-subject rights. Errors are RFC 9457 problem+json. Reads of personal data name their processing activity in X-Purpose."
 },
 "servers": [
  {
   "url": "/"
  }
 ],
 "security": [
  {
   "bearer": []
  }
 ],
 "components": {
  "securitySchemes": {
   "bearer": {
    "type": "http",
    "scheme": "bearer",
    "description": "API key created with `garde apikey create`."
   }
  },
  "parameters": {
   "XPurpose": {
    "name": "X-Purpose",
    "in": "header",
    "required": true,
    "schema": {
     "type": "string"
    },
    "description": "Id of the processing activity (register.yaml) this read serves. The key must be bound to it; only the activity's fields are returned."
   },
   "SubjectId": {
    "name": "id",
    "in": "path",
    "required": true,
    "schema": {
     "type": "string"
    }
   }
  },
  "schemas": {
   "Incident": {
    "type": "object",
    "properties": {
     "id": {
      "type": "string"
     },
     "status": {
      "enum": [
       "open",
       "closed"
      ]
     },
     "detected_at": {
      "type": "string",
      "format": "date-time"
     },
     "aware_at": {
      "type": "string",
      "format": "date-time"
     },
     "authority_due_at": {
      "type": "string",
      "format": "date-time",
      "description": "aware_at + 72 hours (Art. 33(1))"
     },
     "authority_notified_at": {
      "type": [
       "string",
       "null"
      ],
      "format": "date-time"
     },
     "subjects_notified_at": {
      "type": [
       "string",
       "null"
      ],
      "format": "date-time"
     },
     "closed_at": {
      "type": [
       "string",
       "null"
      ],
      "format": "date-time"
     },
     "overdue": {
      "type": "boolean"
     },
     "facts": {
      "type": "object",
      "description": "what was recorded (IncidentFacts), plus scope and subjects_notified"
     }
    }
   },
   "IncidentFacts": {
    "type": "object",
    "properties": {
     "title": {
      "oneOf": [
       {
        "type": "string"
       },
       {
        "type": "object",
        "additionalProperties": {
         "type": "string"
        }
       }
      ],
      "description": "a text, or texts by language"
     },
     "nature": {
      "oneOf": [
       {
        "type": "string"
       },
       {
        "type": "object",
        "additionalProperties": {
         "type": "string"
        }
       }
      ],
      "description": "a text, or texts by language"
     },
     "categories_of_data": {
      "type": "array",
      "items": {
       "type": "string"
      }
     },
     "categories_of_subjects": {
      "type": "array",
      "items": {
       "type": "string"
      }
     },
     "approx_subjects": {
      "type": "integer",
      "minimum": 0
     },
     "approx_records": {
      "type": "integer",
      "minimum": 0
     },
     "consequences": {
      "oneOf": [
       {
        "type": "string"
       },
       {
        "type": "object",
        "additionalProperties": {
         "type": "string"
        }
       }
      ],
      "description": "a text, or texts by language"
     },
     "measures": {
      "oneOf": [
       {
        "type": "string"
       },
       {
        "type": "object",
        "additionalProperties": {
         "type": "string"
        }
       }
      ],
      "description": "a text, or texts by language"
     },
     "contact": {
      "oneOf": [
       {
        "type": "string"
       },
       {
        "type": "object",
        "additionalProperties": {
         "type": "string"
        }
       }
      ],
      "description": "a text, or texts by language"
     },
     "delay_reasons": {
      "oneOf": [
       {
        "type": "string"
       },
       {
        "type": "object",
        "additionalProperties": {
         "type": "string"
        }
       }
      ],
      "description": "a text, or texts by language"
     },
     "assessment": {
      "type": "object",
      "properties": {
       "readable_by_intruder": {
        "type": "boolean"
       },
       "risk": {
        "enum": [
         "none",
         "risk",
         "high"
        ]
       },
       "reasoning": {
        "type": "string"
       }
      }
     },
     "containment": {
      "type": "array",
      "items": {
       "type": "object"
      }
     },
     "notes": {
      "oneOf": [
       {
        "type": "string"
       },
       {
        "type": "object",
        "additionalProperties": {
         "type": "string"
        }
       }
      ],
      "description": "a text, or texts by language"
     }
    }
   }
  ,
   "Interaction": {
    "type": "object",
    "additionalProperties": false,
    "required": ["kind"],
    "properties": {
     "kind": {
      "type": "string",
      "enum": ["purchase", "contact", "visit", "support", "other"]
     },
     "occurred_at": {
      "type": "string",
      "format": "date-time"
     },
     "amount": {
      "type": "number",
      "minimum": 0,
      "description": "purchases only"
     }
    }
   },
   "Delivery": {
    "type": "object",
    "required": ["id", "endpoint", "event_id", "topic", "subject", "status", "attempts", "queued_at", "next_attempt_at", "delivered_at", "last_error"],
    "properties": {
     "id": {
      "type": "string"
     },
     "endpoint": {
      "type": "string"
     },
     "event_id": {
      "type": "string",
      "description": "the webhook-id header; the same on every attempt"
     },
     "topic": {
      "type": "string"
     },
     "subject": {
      "type": ["string", "null"]
     },
     "status": {
      "type": "string",
      "enum": ["pending", "delivered", "dead", "skipped"]
     },
     "attempts": {
      "type": "integer"
     },
     "queued_at": {
      "type": "string",
      "format": "date-time"
     },
     "next_attempt_at": {
      "type": ["string", "null"],
      "format": "date-time"
     },
     "delivered_at": {
      "type": ["string", "null"],
      "format": "date-time"
     },
     "last_error": {
      "type": ["string", "null"]
     }
    }
   },
   "RetentionRun": {
    "type": "object",
    "required": ["id", "status", "dry_run", "started_at", "at", "finished_at", "report"],
    "properties": {
     "id": {
      "type": "string"
     },
     "status": {
      "type": "string",
      "enum": ["running", "completed"]
     },
     "dry_run": {
      "type": "boolean"
     },
     "started_at": {
      "type": "string",
      "format": "date-time"
     },
     "at": {
      "type": "string",
      "format": "date-time",
      "description": "the time the rules were evaluated at"
     },
     "finished_at": {
      "type": ["string", "null"],
      "format": "date-time"
     },
     "report": {
      "type": "object",
      "description": "subjects_scanned, subjects_erased, holds_released, fields_erased, skipped_restricted, consents_expired, requests_due_soon, requests_overdue, by_activity:{id:{rule, subjects_erased, holds_released, fields:{name: count}}}"
     }
    }
   },
   "Subject": {
    "type": "object",
    "required": [
     "id",
     "kind",
     "status",
     "fields",
     "created_at",
     "updated_at"
    ],
    "properties": {
     "id": {
      "type": "string",
      "pattern": "^sub_[0-9a-hjkmnp-tv-z]{26}$"
     },
     "kind": {
      "type": "string",
      "enum": [
       "person",
       "organization"
      ]
     },
     "status": {
      "type": "string",
      "enum": [
       "active",
       "restricted",
       "erased"
      ]
     },
     "source": {
      "type": "string"
     },
     "external_id": {
      "type": "string"
     },
     "fields": {
      "type": "object",
      "additionalProperties": {
       "type": [
        "string",
        "number",
        "boolean",
        "null"
       ]
      }
     },
     "created_at": {
      "type": "string",
      "format": "date-time"
     },
     "updated_at": {
      "type": "string",
      "format": "date-time"
     },
     "last_interaction_at": {
      "type": "string",
      "format": "date-time"
     }
    }
   },
   "NewSubject": {
    "type": "object",
    "required": [
     "kind"
    ],
    "additionalProperties": false,
    "properties": {
     "kind": {
      "type": "string",
      "enum": [
       "person",
       "organization"
      ]
     },
     "source": {
      "type": "string",
      "description": "Where the data came from (order, web_form, import, call_centre...). Default: api."
     },
     "external_id": {
      "type": "string",
      "maxLength": 128
     },
     "fields": {
      "type": "object",
      "additionalProperties": {
       "type": [
        "string",
        "number",
        "boolean"
       ]
      },
      "description": "Fields declared in policies/schema.yaml."
     }
    }
   },
   "SubjectChanges": {
    "type": "object",
    "additionalProperties": false,
    "properties": {
     "fields": {
      "type": "object",
      "additionalProperties": {
       "type": [
        "string",
        "number",
        "boolean",
        "null"
       ]
      },
      "description": "null removes a field."
     },
     "external_id": {
      "type": [
       "string",
       "null"
      ]
     }
    }
   },
   "Problem": {
    "type": "object",
    "required": [
     "type",
     "title",
     "status",
     "detail"
    ],
    "properties": {
     "type": {
      "type": "string",
      "format": "uri"
     },
     "title": {
      "type": "string"
     },
     "status": {
      "type": "integer"
     },
     "detail": {
      "type": "string"
     },
     "request_id": {
      "type": "string"
     },
     "existing_id": {
      "type": "string",
      "description": "On 409 for a unique field: the subject that holds the value."
     },
     "errors": {
      "type": "array",
      "items": {
       "type": "object",
       "required": [
        "field",
        "message"
       ],
       "properties": {
        "field": {
         "type": "string"
        },
        "message": {
         "type": "string"
        }
       }
      }
     }
    }
   },
   "SegmentDefinition": {
    "type": "object",
    "required": ["activity", "purpose"],
    "properties": {
     "activity": {"type": "string"},
     "purpose": {"type": "string"},
     "channel": {"type": "string"},
     "where": {"type": "object", "description": "the audience where language (SPEC §4)"},
     "description": {"type": "string", "maxLength": 500}
    }
   },
   "Segment": {
    "type": "object",
    "required": ["name", "definition", "created_at", "updated_at"],
    "properties": {
     "name": {"type": "string"},
     "definition": {"$ref": "#/components/schemas/SegmentDefinition"},
     "created_at": {"type": "string", "format": "date-time"},
     "updated_at": {"type": "string", "format": "date-time"},
     "count": {"type": "integer", "description": "members now: matching, and allowed by consent for the purpose and channel"}
    }
   },
   "ConcentrationReport": {
    "type": "object",
    "required": ["segment", "measure", "customers", "revenue", "customers_for_80_percent", "steps", "smallest_group"],
    "properties": {
     "segment": {"type": "string"},
     "measure": {"type": "string"},
     "customers": {"type": "integer"},
     "revenue": {"type": "number"},
     "customers_for_80_percent": {"type": ["number", "null"], "description": "% of customers that bring 80 % of the revenue; null when that is fewer than 5 customers"},
     "steps": {"type": "array", "items": {"type": "object", "required": ["top_percent", "customers", "revenue_share"], "properties": {"top_percent": {"type": "integer"}, "customers": {"type": "integer"}, "revenue_share": {"type": ["number", "null"]}}}},
     "smallest_group": {"type": "integer"}
    }
   },
   "ImportResult": {
    "type": "object",
    "required": ["id", "mapping", "dry_run", "rows", "updated", "duplicates", "invalid", "failed", "resumed", "results"],
    "properties": {
     "id": {"type": "string", "description": "imp_ and a digest of the file and the mapping"},
     "mapping": {"type": "string"},
     "dry_run": {"type": "boolean"},
     "rows": {"type": "integer"},
     "created": {"type": "integer", "description": "absent in a dry run"},
     "valid": {"type": "integer", "description": "a dry run's rows that would be written"},
     "updated": {"type": "integer"},
     "duplicates": {"type": "integer"},
     "invalid": {"type": "integer"},
     "failed": {"type": "integer"},
     "resumed": {"type": "integer", "description": "rows an earlier, interrupted run of the same import had created"},
     "results": {
      "type": "array",
      "items": {
       "type": "object",
       "required": ["row", "line", "outcome"],
       "properties": {
        "row": {"type": "integer"},
        "line": {"type": "integer"},
        "outcome": {"type": "string", "enum": ["created", "updated", "duplicate", "valid", "invalid", "failed"]},
        "id": {"type": "string"},
        "earlier": {"type": "boolean"},
        "detail": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object", "required": ["field", "message"], "properties": {"field": {"type": "string"}, "message": {"type": "string"}}}}
       }
      }
     }
    }
   },
   "BatchResult": {
    "type": "object",
    "properties": {
     "results": {
      "type": "array",
      "items": {
       "type": "object",
       "required": [
        "index",
        "status"
       ],
       "properties": {
        "index": {
         "type": "integer"
        },
        "status": {
         "type": "integer"
        },
        "id": {
         "type": "string"
        },
        "type": {
         "type": "string"
        },
        "detail": {
         "type": "string"
        },
        "existing_id": {
         "type": "string"
        },
        "errors": {
         "type": "array",
         "items": {
          "type": "object"
         }
        }
       }
      }
     }
    }
   },
   "AuditEntry": {
    "type": "object",
    "description": "See docs/audit.md; members in this order.",
    "properties": {
     "v": {
      "type": "integer"
     },
     "seq": {
      "type": "integer"
     },
     "time": {
      "type": "string"
     },
     "actor": {
      "type": [
       "string",
       "null"
      ]
     },
     "role": {
      "type": [
       "string",
       "null"
      ]
     },
     "action": {
      "type": "string"
     },
     "subject": {
      "type": [
       "string",
       "null"
      ]
     },
     "activity": {
      "type": [
       "string",
       "null"
      ]
     },
     "request_id": {
      "type": [
       "string",
       "null"
      ]
     },
     "outcome": {
      "type": "string"
     },
     "fields": {
      "type": "array"
     },
     "count": {
      "type": "integer"
     }
    }
   },
   "ConsentDecision": {
    "type": "object",
    "required": [
     "subject",
     "purpose",
     "channel",
     "allowed",
     "reason",
     "basis",
     "since",
     "expires_at"
    ],
    "properties": {
     "subject": {
      "type": "string"
     },
     "purpose": {
      "type": "string"
     },
     "channel": {
      "type": [
       "string",
       "null"
      ]
     },
     "allowed": {
      "type": "boolean"
     },
     "reason": {
      "type": "string",
      "enum": [
       "consent_granted",
       "no_consent",
       "consent_withdrawn",
       "consent_refused",
       "consent_expired",
       "objected",
       "suppressed",
       "restricted",
       "erased",
       "legitimate_interest",
       "contract",
       "legal_obligation",
       "vital_interests",
       "public_task",
       "not_found"
      ]
     },
     "basis": {
      "type": "string"
     },
     "since": {
      "type": [
       "string",
       "null"
      ],
      "format": "date-time"
     },
     "expires_at": {
      "type": [
       "string",
       "null"
      ],
      "format": "date-time"
     }
    }
   },
   "ConsentEvent": {
    "type": "object",
    "properties": {
     "id": {
      "type": [
       "string",
       "null"
      ]
     },
     "subject": {
      "type": [
       "string",
       "null"
      ]
     },
     "purpose": {
      "type": [
       "string",
       "null"
      ]
     },
     "channel": {
      "type": [
       "string",
       "null"
      ]
     },
     "event": {
      "type": [
       "string",
       "null"
      ]
     },
     "legal_basis": {
      "type": [
       "string",
       "null"
      ]
     },
     "notice_version": {
      "type": [
       "string",
       "null"
      ]
     },
     "method": {
      "type": [
       "string",
       "null"
      ]
     },
     "actor": {
      "type": [
       "string",
       "null"
      ]
     },
     "at": {
      "type": [
       "string",
       "null"
      ]
     },
     "expires_at": {
      "type": [
       "string",
       "null"
      ]
     },
     "receipt": {
      "type": "object",
      "description": "{receipt:{\u2026}, signature:{alg, key_id, signed (base64url of the exact receipt bytes), value (base64 Ed25519)}}"
     }
    }
   },
   "Request": {
    "type": "object",
    "description": "A data-subject request (SPEC \u00a72.5). Notes and reasons are present only while the subject's data key exists.",
    "required": [
     "id",
     "type",
     "subject",
     "status",
     "received_at",
     "due_at",
     "extended",
     "completed_at"
    ],
    "properties": {
     "id": {
      "type": "string"
     },
     "type": {
      "enum": [
       "access",
       "portability",
       "rectification",
       "erasure",
       "restriction",
       "objection"
      ]
     },
     "subject": {
      "type": "string"
     },
     "status": {
      "enum": [
       "received",
       "verified",
       "in_progress",
       "completed",
       "rejected"
      ]
     },
     "jurisdiction": {
      "type": "string"
     },
     "received_at": {
      "type": "string",
      "format": "date-time"
     },
     "verified_at": {
      "type": [
       "string",
       "null"
      ],
      "format": "date-time"
     },
     "due_at": {
      "type": "string",
      "format": "date-time"
     },
     "extended": {
      "type": "boolean"
     },
     "overdue": {
      "type": "boolean"
     },
     "completed_at": {
      "type": [
       "string",
       "null"
      ],
      "format": "date-time"
     },
     "opened_by": {
      "type": "string",
      "description": "API key id, or \"subject\" for the customer's own link"
     },
     "verification": {
      "type": [
       "string",
       "null"
      ],
      "enum": [
       "officer",
       "subject_link",
       null
      ]
     },
     "note": {
      "type": "string"
     },
     "verification_note": {
      "type": "string"
     },
     "extension_reason": {
      "type": "string"
     },
     "rejection_reason": {
      "type": "string"
     },
     "texts_destroyed": {
      "type": "boolean"
     },
     "result": {
      "description": "What completing the request did: package hash and size, rectified fields, erased and kept fields with reasons, objected purposes. No personal data."
     },
     "verification_url": {
      "type": "string",
      "description": "Only on creation of a request that awaits verification: the link to send to the customer's known contact."
     }
    }
   },
   "Register": {
    "type": "object",
    "required": [
     "organisation",
     "content_hash",
     "activities"
    ],
    "properties": {
     "organisation": {
      "type": "object",
      "required": [
       "controller"
      ],
      "properties": {
       "controller": {
        "type": "object",
        "required": [
         "name",
         "contact"
        ],
        "properties": {"name": {"type": "string"}, "contact": {"type": "string"}}
       },
       "dpo": {
        "type": [
         "object",
         "null"
        ]
       },
       "representative": {
        "type": [
         "object",
         "null"
        ]
       }
      }
     },
     "content_hash": {
      "type": "string"
     },
     "activities": {
      "type": "array",
      "items": {
       "$ref": "#/components/schemas/Activity"
      }
     }
    }
   },
   "Activity": {
    "type": "object",
    "required": [
     "id",
     "name",
     "purposes",
     "legal_basis",
     "data_subjects",
     "data",
     "retention"
    ],
    "properties": {
     "id": {
      "type": "string"
     },
     "name": {
      "type": "string"
     },
     "reference": {
      "type": "string"
     },
     "purposes": {
      "type": "array",
      "items": {
       "type": "string"
      }
     },
     "legal_basis": {
      "enum": [
       "consent",
       "contract",
       "legal_obligation",
       "vital_interests",
       "public_task",
       "legitimate_interests"
      ]
     },
     "data_subjects": {
      "type": "array",
      "items": {
       "type": "string"
      }
     },
     "data": {
      "type": "object",
      "properties": {
       "fields": {
        "type": "array",
        "items": {
         "type": "string"
        }
       },
       "categories": {
        "type": "array",
        "items": {
         "type": "string"
        }
       },
       "retention": {
        "type": "object"
       }
      }
     },
     "recipients": {
      "type": "object"
     },
     "transfers": {
      "type": "array",
      "items": {
       "type": "object",
       "required": [
        "country",
        "safeguard"
       ],
       "properties": {"country": {"type": "string"}, "recipient": {"type": "string"}, "safeguard": {"type": "string"}}
      }
     },
     "retention": {
      "type": "string"
     },
     "security": {
      "type": [
       "array",
       "object"
      ]
     },
     "dpia": {
      "type": "object",
      "required": [
       "required"
      ],
      "properties": {"required": {"type": "boolean"}}
     },
     "joint_controllers": {
      "type": "array",
      "items": {
       "type": "object",
       "required": [
        "name",
        "contact"
       ],
       "properties": {"name": {"type": "string"}, "contact": {"type": "string"}}
      }
     }
    }
   }
  },
  "responses": {
   "Problem": {
    "description": "Problem details (RFC 9457). Any operation may also be answered at the HTTP edge, before it runs: 400 (malformed request), 408 (request timeout), 413, 431, 501 (unknown method), 505 (HTTP version); see docs/http.md",
    "content": {
     "application/problem+json": {
      "schema": {
       "$ref": "#/components/schemas/Problem"
      }
     }
    }
   }
  }
 },
 "paths": {
  "/healthz": {
   "get": {
    "summary": "Liveness",
    "security": [],
    "responses": {
     "200": {
      "description": "Alive"
     }
    }
   }
  },
  "/readyz": {
   "get": {
    "summary": "Readiness: database and keys usable",
    "security": [],
    "responses": {
     "200": {
      "description": "Ready"
     },
     "503": {
      "description": "Not ready"
     }
    }
   }
  },
  "/openapi.json": {
   "get": {
    "summary": "This document",
    "security": [],
    "responses": {
     "200": {
      "description": "OpenAPI 3.1"
     }
    }
   }
  },
  "/v1/subjects": {
   "post": {
    "summary": "Create a subject (operator)",
    "requestBody": {
     "required": true,
     "content": {
      "application/json": {
       "schema": {
        "$ref": "#/components/schemas/NewSubject"
       }
      }
     }
    },
    "responses": {
     "201": {
      "description": "Created",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Subject"
        }
       }
      }
     },
     "400": {
      "$ref": "#/components/responses/Problem"
     },
     "401": {
      "$ref": "#/components/responses/Problem"
     },
     "403": {
      "$ref": "#/components/responses/Problem"
     },
     "409": {
      "$ref": "#/components/responses/Problem"
     },
     "413": {
      "$ref": "#/components/responses/Problem"
     },
     "415": {
      "$ref": "#/components/responses/Problem"
     },
     "422": {
      "$ref": "#/components/responses/Problem"
     }
    }
   }
  },
  "/v1/subjects:batch": {
   "post": {
    "summary": "Create (no id) or rectify (with id) many subjects (operator); JSON array or NDJSON",
    "requestBody": {
     "required": true,
     "content": {
      "application/json": {
       "schema": {
        "type": "array",
        "items": {
         "type": "object"
        }
       }
      },
      "application/x-ndjson": {
       "schema": {
        "type": "string"
       }
      }
     }
    },
    "responses": {
     "200": {
      "description": "Per-row results",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/BatchResult"
        }
       }
      }
     },
     "400": {
      "$ref": "#/components/responses/Problem"
     },
     "401": {
      "$ref": "#/components/responses/Problem"
     },
     "403": {
      "$ref": "#/components/responses/Problem"
     },
     "413": {
      "$ref": "#/components/responses/Problem"
     },
     "415": {
      "$ref": "#/components/responses/Problem"
     },
     "422": {
      "$ref": "#/components/responses/Problem"
     }
    }
   }
  },
  "/v1/imports": {
   "post": {
    "summary": "Import subjects from a spreadsheet's CSV (operator), read with a mapping of the policies' imports/ directory; the same upload again resumes it",
    "parameters": [
     {"name": "mapping", "in": "query", "required": true, "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"}},
     {"name": "dry_run", "in": "query", "required": false, "schema": {"type": "boolean"}}
    ],
    "requestBody": {
     "required": true,
     "content": {
      "text/csv": {
       "schema": {
        "type": "string"
       }
      }
     }
    },
    "responses": {
     "200": {
      "description": "The import's counts and its per-row report (created, updated, duplicate, invalid, failed; ids and field errors, never a value)",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/ImportResult"
        }
       },
       "text/csv": {
        "schema": {
         "type": "string"
        }
       }
      }
     },
     "401": {
      "$ref": "#/components/responses/Problem"
     },
     "403": {
      "$ref": "#/components/responses/Problem"
     },
     "404": {
      "$ref": "#/components/responses/Problem"
     },
     "413": {
      "$ref": "#/components/responses/Problem"
     },
     "415": {
      "$ref": "#/components/responses/Problem"
     },
     "422": {
      "$ref": "#/components/responses/Problem"
     }
    }
   }
  },
  "/v1/subjects/{id}/contacts": {
   "parameters": [{"$ref": "#/components/parameters/SubjectId"}],
   "get": {
    "summary": "The contact links of a subject, as organisation or as person (operator): ids and roles only",
    "responses": {
     "200": {"description": "The links", "content": {"application/json": {"schema": {"type": "object", "required": ["items"], "properties": {"items": {"type": "array", "items": {"type": "object", "required": ["organisation", "person", "role"], "properties": {"organisation": {"type": "string"}, "person": {"type": "string"}, "role": {"type": "string"}, "since": {"type": "string", "format": "date-time"}}}}}}}}},
     "401": {"$ref": "#/components/responses/Problem"}, "403": {"$ref": "#/components/responses/Problem"}, "404": {"$ref": "#/components/responses/Problem"}
    }
   }
  },
  "/v1/subjects/{id}/contacts/{person}": {
   "parameters": [{"$ref": "#/components/parameters/SubjectId"}, {"name": "person", "in": "path", "required": true, "schema": {"type": "string"}}],
   "put": {
    "summary": "Link a person to an organisation with a role (buyer, accounting ...), or change the role (operator)",
    "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["role"], "additionalProperties": false, "properties": {"role": {"type": "string", "pattern": "^[a-z_-]{1,40}$"}}}}}},
    "responses": {
     "200": {"description": "Linked", "content": {"application/json": {"schema": {"type": "object", "required": ["organisation", "person", "role"], "properties": {"organisation": {"type": "string"}, "person": {"type": "string"}, "role": {"type": "string"}, "since": {"type": "string", "format": "date-time"}}}}}},
     "400": {"$ref": "#/components/responses/Problem"}, "401": {"$ref": "#/components/responses/Problem"}, "403": {"$ref": "#/components/responses/Problem"}, "404": {"$ref": "#/components/responses/Problem"}, "409": {"$ref": "#/components/responses/Problem"}, "415": {"$ref": "#/components/responses/Problem"}, "422": {"$ref": "#/components/responses/Problem"}
    }
   },
   "delete": {
    "summary": "Unlink a person from an organisation (operator)",
    "responses": {"204": {"description": "Unlinked"}, "401": {"$ref": "#/components/responses/Problem"}, "403": {"$ref": "#/components/responses/Problem"}, "404": {"$ref": "#/components/responses/Problem"}}
   }
  },
  "/v1/incidents/{id}/evidence": {
   "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
   "get": {
    "summary": "The proof behind one subject of an incident's scope: each entry's exact bytes with an inclusion proof to the tree head signed when the scope was drawn (officer)",
    "parameters": [{"name": "subject", "in": "query", "required": true, "schema": {"type": "string"}}],
    "responses": {
     "200": {"description": "The evidence", "content": {"application/json": {"schema": {"type": "object", "required": ["incident", "subject", "checkpoint", "size", "root_hash", "entries"], "properties": {"incident": {"type": "string"}, "subject": {"type": "string"}, "checkpoint": {"type": "string"}, "size": {"type": "integer"}, "root_hash": {"type": "string"}, "entries": {"type": "array", "items": {"type": "object", "required": ["index", "entry", "leaf_hash", "proof"], "properties": {"index": {"type": "integer"}, "entry": {"type": "string"}, "leaf_hash": {"type": "string"}, "proof": {"type": "array", "items": {"type": "string"}}}}}}}}}},
     "401": {"$ref": "#/components/responses/Problem"}, "403": {"$ref": "#/components/responses/Problem"}, "404": {"$ref": "#/components/responses/Problem"}, "409": {"$ref": "#/components/responses/Problem"}, "422": {"$ref": "#/components/responses/Problem"}
    }
   }
  },
  "/v1/duplicates": {
   "get": {
    "summary": "Likely duplicates (operator, officer): pairs of subjects whose names, folded and compared by sound, go with the same postal code, phone or street; ids and the rules that matched only",
    "parameters": [
     {"name": "limit", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}},
     {"name": "cursor", "in": "query", "required": false, "schema": {"type": "string"}}
    ],
    "responses": {
     "200": {"description": "Candidate pairs, in order of their ids", "content": {"application/json": {"schema": {"type": "object", "required": ["items", "count", "next_cursor"], "properties": {"items": {"type": "array", "items": {"type": "object", "required": ["subjects", "rules"], "properties": {"subjects": {"type": "array", "minItems": 2, "maxItems": 2, "items": {"type": "string"}}, "rules": {"type": "array", "items": {"type": "string", "enum": ["name+postal_code", "name+phone", "name+street", "sounds-like name+postal_code", "sounds-like name+phone"]}}}}}, "count": {"type": "integer"}, "next_cursor": {"type": ["string", "null"]}}}}}},
     "401": {"$ref": "#/components/responses/Problem"}, "403": {"$ref": "#/components/responses/Problem"}, "422": {"$ref": "#/components/responses/Problem"}
    }
   }
  },
  "/v1/segments": {
   "get": {
    "summary": "Saved segments (marketing); with counts=true each is counted now",
    "parameters": [{"name": "counts", "in": "query", "required": false, "schema": {"type": "boolean"}}],
    "responses": {
     "200": {"description": "The segments, by name", "content": {"application/json": {"schema": {"type": "object", "required": ["items"], "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/Segment"}}}}}}},
     "401": {"$ref": "#/components/responses/Problem"}, "403": {"$ref": "#/components/responses/Problem"}
    }
   }
  },
  "/v1/segments/{name}": {
   "parameters": [{"name": "name", "in": "path", "required": true, "schema": {"type": "string", "pattern": "^[a-z0-9_-]{1,64}$"}}],
   "put": {
    "summary": "Save a segment: an audience definition (activity, purpose, channel, where), counted as it is saved",
    "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/SegmentDefinition"}}}},
    "responses": {
     "200": {"description": "Updated", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Segment"}}}},
     "201": {"description": "Created", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Segment"}}}},
     "400": {"$ref": "#/components/responses/Problem"}, "401": {"$ref": "#/components/responses/Problem"}, "403": {"$ref": "#/components/responses/Problem"}, "415": {"$ref": "#/components/responses/Problem"}, "422": {"$ref": "#/components/responses/Problem"}
    }
   },
   "get": {
    "summary": "A segment with its count now (consent and the activity apply, as for a campaign)",
    "responses": {
     "200": {"description": "The segment", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Segment"}}}},
     "401": {"$ref": "#/components/responses/Problem"}, "403": {"$ref": "#/components/responses/Problem"}, "404": {"$ref": "#/components/responses/Problem"}
    }
   },
   "delete": {
    "summary": "Delete a segment",
    "responses": {"204": {"description": "Deleted"}, "401": {"$ref": "#/components/responses/Problem"}, "403": {"$ref": "#/components/responses/Problem"}, "404": {"$ref": "#/components/responses/Problem"}}
   }
  },
  "/v1/segments/{name}/report": {
   "parameters": [{"name": "name", "in": "path", "required": true, "schema": {"type": "string"}}],
   "get": {
    "summary": "Revenue concentration of a segment (the 20/80 report): aggregates only, no group of fewer than 5 customers",
    "parameters": [
     {"name": "measure", "in": "query", "required": false, "schema": {"type": "string", "default": "total_spend"}},
     {"name": "format", "in": "query", "required": false, "schema": {"type": "string", "enum": ["json", "csv", "svg"]}}
    ],
    "responses": {
     "200": {"description": "The report", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ConcentrationReport"}}, "text/csv": {"schema": {"type": "string"}}, "image/svg+xml": {"schema": {"type": "string"}}}},
     "401": {"$ref": "#/components/responses/Problem"}, "403": {"$ref": "#/components/responses/Problem"}, "404": {"$ref": "#/components/responses/Problem"}, "422": {"$ref": "#/components/responses/Problem"}
    }
   }
  },
  "/v1/subjects/{id}": {
   "get": {
    "summary": "Read a subject for a processing activity",
    "parameters": [
     {
      "$ref": "#/components/parameters/SubjectId"
     },
     {
      "$ref": "#/components/parameters/XPurpose"
     }
    ],
    "responses": {
     "200": {
      "description": "The subject with the activity's fields only",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Subject"
        }
       }
      }
     },
     "401": {
      "$ref": "#/components/responses/Problem"
     },
     "403": {
      "$ref": "#/components/responses/Problem"
     },
     "404": {
      "$ref": "#/components/responses/Problem"
     },
     "409": {
      "$ref": "#/components/responses/Problem"
     }
    }
   },
   "patch": {
    "summary": "Rectify fields (operator)",
    "parameters": [
     {
      "$ref": "#/components/parameters/SubjectId"
     }
    ],
    "requestBody": {
     "required": true,
     "content": {
      "application/json": {
       "schema": {
        "$ref": "#/components/schemas/SubjectChanges"
       }
      }
     }
    },
    "responses": {
     "200": {
      "description": "The subject with the changed fields",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Subject"
        }
       }
      }
     },
     "400": {
      "$ref": "#/components/responses/Problem"
     },
     "401": {
      "$ref": "#/components/responses/Problem"
     },
     "403": {
      "$ref": "#/components/responses/Problem"
     },
     "404": {
      "$ref": "#/components/responses/Problem"
     },
     "409": {
      "$ref": "#/components/responses/Problem"
     },
     "413": {
      "$ref": "#/components/responses/Problem"
     },
     "415": {
      "$ref": "#/components/responses/Problem"
     },
     "422": {
      "$ref": "#/components/responses/Problem"
     }
    }
   }
  },
  "/v1/subjects:search": {
   "post": {
    "summary": "Look up subjects by blind-indexed fields",
    "parameters": [
     {
      "$ref": "#/components/parameters/XPurpose"
     }
    ],
    "requestBody": {
     "required": true,
     "content": {
      "application/json": {
       "schema": {
        "type": "object",
        "additionalProperties": {
         "type": [
          "string",
          "number"
         ]
        },
        "example": {
         "email": "ana@example.org"
        }
       }
      }
     }
    },
    "responses": {
     "200": {
      "description": "Matches",
      "content": {
       "application/json": {
        "schema": {
         "type": "object",
         "properties": {
          "items": {
           "type": "array",
           "items": {
            "$ref": "#/components/schemas/Subject"
           }
          },
          "count": {
           "type": "integer"
          },
          "next_cursor": {
           "type": [
            "string",
            "null"
           ]
          }
         }
        }
       }
      }
     },
     "400": {
      "$ref": "#/components/responses/Problem"
     },
     "401": {
      "$ref": "#/components/responses/Problem"
     },
     "403": {
      "$ref": "#/components/responses/Problem"
     },
     "415": {
      "$ref": "#/components/responses/Problem"
     },
     "422": {
      "$ref": "#/components/responses/Problem"
     }
    }
   }
  },
  "/v1/audit": {
   "get": {
    "summary": "Search the audit log (officer, auditor)",
    "parameters": [
     {
      "name": "subject",
      "in": "query",
      "required": false,
      "schema": {
       "type": "string"
      }
     },
     {
      "name": "actor",
      "in": "query",
      "required": false,
      "schema": {
       "type": "string"
      }
     },
     {
      "name": "action",
      "in": "query",
      "required": false,
      "schema": {
       "type": "string"
      }
     },
     {
      "name": "activity",
      "in": "query",
      "required": false,
      "schema": {
       "type": "string"
      }
     },
     {
      "name": "since",
      "in": "query",
      "required": false,
      "schema": {
       "type": "string"
      }
     },
     {
      "name": "until",
      "in": "query",
      "required": false,
      "schema": {
       "type": "string"
      }
     },
     {
      "name": "cursor",
      "in": "query",
      "required": false,
      "schema": {
       "type": "string"
      }
     },
     {
      "name": "limit",
      "in": "query",
      "required": false,
      "schema": {
       "type": "integer"
      }
     }
    ],
    "responses": {
     "200": {
      "description": "Entries in log order",
      "content": {
       "application/json": {
        "schema": {
         "type": "object",
         "properties": {
          "items": {
           "type": "array",
           "items": {
            "$ref": "#/components/schemas/AuditEntry"
           }
          },
          "next_cursor": {
           "type": [
            "string",
            "null"
           ]
          }
         }
        }
       }
      }
     },
     "400": {
      "$ref": "#/components/responses/Problem"
     },
     "401": {
      "$ref": "#/components/responses/Problem"
     },
     "403": {
      "$ref": "#/components/responses/Problem"
     },
     "422": {
      "$ref": "#/components/responses/Problem"
     }
    }
   }
  },
  "/v1/audit/entries": {
   "get": {
    "summary": "Exact entry bytes [start, end), one per line (officer, auditor)",
    "parameters": [
     {
      "name": "start",
      "in": "query",
      "required": false,
      "schema": {
       "type": "integer"
      }
     },
     {
      "name": "end",
      "in": "query",
      "required": false,
      "schema": {
       "type": "integer"
      }
     }
    ],
    "responses": {
     "200": {
      "description": "NDJSON",
      "content": {
       "application/x-ndjson": {
        "schema": {
         "type": "string"
        }
       }
      }
     },
     "401": {
      "$ref": "#/components/responses/Problem"
     },
     "403": {
      "$ref": "#/components/responses/Problem"
     },
     "422": {
      "$ref": "#/components/responses/Problem"
     }
    }
   }
  },
  "/v1/audit/checkpoint": {
   "get": {
    "summary": "Latest signed tree head, signing a new one if the tree grew (officer, auditor)",
    "responses": {
     "200": {
      "description": "Checkpoint",
      "content": {
       "application/json": {
        "schema": {
         "type": "object",
         "properties": {
          "size": {
           "type": "integer"
          },
          "root_hash": {
           "type": "string"
          },
          "time": {
           "type": "string",
           "format": "date-time"
          },
          "checkpoint": {
           "type": "string",
           "description": "C2SP signed note"
          }
         }
        }
       }
      }
     },
     "401": {
      "$ref": "#/components/responses/Problem"
     },
     "403": {
      "$ref": "#/components/responses/Problem"
     }
    }
   }
  },
  "/v1/audit/proof/inclusion": {
   "get": {
    "summary": "RFC 6962 inclusion proof (officer, auditor)",
    "parameters": [
     {
      "name": "index",
      "in": "query",
      "required": true,
      "schema": {
       "type": "integer"
      }
     },
     {
      "name": "size",
      "in": "query",
      "required": true,
      "schema": {
       "type": "integer"
      }
     }
    ],
    "responses": {
     "200": {
      "description": "Proof",
      "content": {
       "application/json": {
        "schema": {
         "type": "object",
         "properties": {
          "index": {
           "type": "integer"
          },
          "size": {
           "type": "integer"
          },
          "leaf_hash": {
           "type": "string"
          },
          "root_hash": {
           "type": "string"
          },
          "proof": {
           "type": "array",
           "items": {
            "type": "string"
           }
          }
         }
        }
       }
      }
     },
     "401": {
      "$ref": "#/components/responses/Problem"
     },
     "403": {
      "$ref": "#/components/responses/Problem"
     },
     "422": {
      "$ref": "#/components/responses/Problem"
     }
    }
   }
  },
  "/v1/audit/proof/consistency": {
   "get": {
    "summary": "RFC 6962 consistency proof (officer, auditor)",
    "parameters": [
     {
      "name": "from",
      "in": "query",
      "required": true,
      "schema": {
       "type": "integer"
      }
     },
     {
      "name": "to",
      "in": "query",
      "required": true,
      "schema": {
       "type": "integer"
      }
     }
    ],
    "responses": {
     "200": {
      "description": "Proof",
      "content": {
       "application/json": {
        "schema": {
         "type": "object",
         "properties": {
          "from": {
           "type": "integer"
          },
          "to": {
           "type": "integer"
          },
          "from_root": {
           "type": "string"
          },
          "to_root": {
           "type": "string"
          },
          "proof": {
           "type": "array",
           "items": {
            "type": "string"
           }
          }
         }
        }
       }
      }
     },
     "401": {
      "$ref": "#/components/responses/Problem"
     },
     "403": {
      "$ref": "#/components/responses/Problem"
     },
     "422": {
      "$ref": "#/components/responses/Problem"
     }
    }
   }
  },
  "/v1/keys/public": {
   "get": {
    "summary": "Ed25519 public key for checkpoints and receipts",
    "security": [],
    "responses": {
     "200": {
      "description": "Key",
      "content": {
       "application/json": {
        "schema": {
         "type": "object",
         "properties": {
          "algorithm": {
           "const": "Ed25519"
          },
          "public_key": {
           "type": "string"
          },
          "key_id": {
           "type": "string"
          },
          "origin": {
           "type": "string"
          },
          "verifier_key": {
           "type": "string"
          }
         }
        }
       }
      }
     }
    }
   }
  },
  "/v1/purposes": {
   "get": {
    "summary": "Purposes catalogue (any key)",
    "responses": {
     "200": {
      "description": "Purposes"
     },
     "401": {
      "$ref": "#/components/responses/Problem"
     },
     "403": {
      "$ref": "#/components/responses/Problem"
     }
    }
   }
  },
  "/v1/subjects/{id}/consents": {
   "post": {
    "summary": "Record a consent event (operator) \u2192 signed receipt",
    "parameters": [
     {
      "$ref": "#/components/parameters/SubjectId"
     }
    ],
    "requestBody": {
     "required": true,
     "content": {
      "application/json": {
       "schema": {
        "type": "object",
        "required": [
         "purpose",
         "event"
        ],
        "additionalProperties": false,
        "properties": {
         "purpose": {
          "type": "string"
         },
         "channel": {
          "type": "string"
         },
         "event": {
          "enum": [
           "granted",
           "withdrawn",
           "refused",
           "objected"
          ]
         },
         "notice_version": {
          "type": "string"
         },
         "method": {
          "enum": [
           "web_form",
           "preference_centre",
           "one_click_unsubscribe",
           "phone",
           "import",
           "gpc",
           "api",
           "in_store",
           "call_centre",
           "email"
          ]
         },
         "collected_at": {
          "type": "string",
          "format": "date-time"
         }
        }
       }
      }
     }
    },
    "responses": {
     "201": {
      "description": "The event with its receipt",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/ConsentEvent"
        }
       }
      }
     },
     "202": {
      "description": "Double opt-in: the grant waits for the customer's click on the link sent to the address on file; nothing is recorded yet",
      "content": {
       "application/json": {
        "schema": {
         "type": "object",
         "required": [
          "status",
          "confirmation",
          "subject",
          "purpose",
          "requested_at",
          "expires_at"
         ],
         "properties": {
          "status": {
           "const": "pending_confirmation"
          },
          "confirmation": {
           "type": "string"
          },
          "subject": {
           "type": "string"
          },
          "purpose": {
           "type": "string"
          },
          "channel": {
           "type": [
            "string",
            "null"
           ]
          },
          "notice_version": {
           "type": [
            "string",
            "null"
           ]
          },
          "requested_at": {
           "type": "string",
           "format": "date-time"
          },
          "expires_at": {
           "type": "string",
           "format": "date-time"
          }
         }
        }
       }
      }
     },
     "400": {
      "$ref": "#/components/responses/Problem"
     },
     "401": {
      "$ref": "#/components/responses/Problem"
     },
     "403": {
      "$ref": "#/components/responses/Problem"
     },
     "404": {
      "$ref": "#/components/responses/Problem"
     },
     "409": {
      "$ref": "#/components/responses/Problem"
     },
     "415": {
      "$ref": "#/components/responses/Problem"
     },
     "422": {
      "$ref": "#/components/responses/Problem"
     }
    }
   },
   "get": {
    "summary": "Current state per purpose/channel and history (operator, officer)",
    "parameters": [
     {
      "$ref": "#/components/parameters/SubjectId"
     }
    ],
    "responses": {
     "200": {
      "description": "{subject, state:[event], history:[event with receipt]}"
     },
     "401": {
      "$ref": "#/components/responses/Problem"
     },
     "403": {
      "$ref": "#/components/responses/Problem"
     },
     "404": {
      "$ref": "#/components/responses/Problem"
     }
    }
   }
  },
  "/v1/consent/check": {
   "get": {
    "summary": "One decision with its reason (marketing, operator)",
    "parameters": [
     {
      "name": "subject",
      "in": "query",
      "required": true,
      "schema": {
       "type": "string"
      }
     },
     {
      "name": "purpose",
      "in": "query",
      "required": true,
      "schema": {
       "type": "string"
      }
     },
     {
      "name": "channel",
      "in": "query",
      "required": false,
      "schema": {
       "type": "string"
      }
     }
    ],
    "responses": {
     "200": {
      "description": "Decision",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/ConsentDecision"
        }
       }
      }
     },
     "401": {
      "$ref": "#/components/responses/Problem"
     },
     "403": {
      "$ref": "#/components/responses/Problem"
     },
     "404": {
      "$ref": "#/components/responses/Problem"
     },
     "422": {
      "$ref": "#/components/responses/Problem"
     }
    }
   },
   "post": {
    "summary": "Decisions for up to 10 000 subjects (marketing, operator)",
    "requestBody": {
     "required": true,
     "content": {
      "application/json": {
       "schema": {
        "type": "object",
        "required": [
         "purpose",
         "subjects"
        ],
        "properties": {
         "purpose": {
          "type": "string"
         },
         "channel": {
          "type": "string"
         },
         "subjects": {
          "type": "array",
          "items": {
           "type": "string"
          }
         }
        }
       }
      }
     }
    },
    "responses": {
     "200": {
      "description": "{purpose, channel, decisions:[decision], allowed, denied}"
     },
     "400": {
      "$ref": "#/components/responses/Problem"
     },
     "401": {
      "$ref": "#/components/responses/Problem"
     },
     "403": {
      "$ref": "#/components/responses/Problem"
     },
     "413": {
      "$ref": "#/components/responses/Problem"
     },
     "415": {
      "$ref": "#/components/responses/Problem"
     },
     "422": {
      "$ref": "#/components/responses/Problem"
     }
    }
   }
  },
  "/v1/suppressions:check": {
   "post": {
    "summary": "Which contacts are suppressed, answered by position (marketing)",
    "requestBody": {
     "required": true,
     "content": {
      "application/json": {
       "schema": {
        "type": "object",
        "properties": {
         "emails": {
          "type": "array",
          "items": {
           "type": "string"
          }
         },
         "phones": {
          "type": "array",
          "items": {
           "type": "string"
          }
         }
        }
       }
      }
     }
    },
    "responses": {
     "200": {
      "description": "{emails:[{index, suppressed}], phones:[\u2026], suppressed}"
     },
     "400": {
      "$ref": "#/components/responses/Problem"
     },
     "401": {
      "$ref": "#/components/responses/Problem"
     },
     "403": {
      "$ref": "#/components/responses/Problem"
     },
     "413": {
      "$ref": "#/components/responses/Problem"
     },
     "415": {
      "$ref": "#/components/responses/Problem"
     },
     "422": {
      "$ref": "#/components/responses/Problem"
     }
    }
   }
  },
  "/v1/subjects/{id}/links": {
   "post": {
    "summary": "Mint subject links (operator): preference centre and one-click unsubscribe",
    "parameters": [
     {
      "$ref": "#/components/parameters/SubjectId"
     }
    ],
    "requestBody": {
     "content": {
      "application/json": {
       "schema": {
        "type": "object",
        "additionalProperties": false,
        "properties": {
         "uses": {
          "type": "array",
          "items": {
           "enum": [
            "preferences",
            "unsubscribe",
            "dsr"
           ]
          }
         },
         "purpose": {
          "type": "string",
          "description": "a marketing purpose, default * (all)"
         },
         "ttl_days": {
          "type": "integer",
          "minimum": 1,
          "maximum": 400
         }
        }
       }
      }
     }
    },
    "responses": {
     "201": {
      "description": "{subject, links:[{use, url, token, expires_at, headers?}]}"
     },
     "400": {
      "$ref": "#/components/responses/Problem"
     },
     "401": {
      "$ref": "#/components/responses/Problem"
     },
     "403": {
      "$ref": "#/components/responses/Problem"
     },
     "404": {
      "$ref": "#/components/responses/Problem"
     },
     "415": {
      "$ref": "#/components/responses/Problem"
     },
     "422": {
      "$ref": "#/components/responses/Problem"
     }
    }
   }
  },
  "/u/{token}": {
   "get": {
    "summary": "One-click unsubscribe confirmation page (never unsubscribes)",
    "security": [],
    "parameters": [
     {
      "name": "token",
      "in": "path",
      "required": true,
      "schema": {
       "type": "string"
      }
     }
    ],
    "responses": {
     "200": {
      "description": "HTML form"
     },
     "404": {
      "$ref": "#/components/responses/Problem"
     }
    }
   },
   "post": {
    "summary": "RFC 8058 one-click unsubscribe: body List-Unsubscribe=One-Click (urlencoded or multipart); 200, no redirect",
    "security": [],
    "parameters": [
     {
      "name": "token",
      "in": "path",
      "required": true,
      "schema": {
       "type": "string"
      }
     }
    ],
    "responses": {
     "200": {
      "description": "HTML confirmation"
     },
     "404": {
      "$ref": "#/components/responses/Problem"
     },
     "422": {
      "$ref": "#/components/responses/Problem"
     }
    }
   }
  },
  "/c/{token}": {
   "get": {
    "summary": "Double opt-in confirmation page: what the customer is about to confirm (never confirms)",
    "security": [],
    "parameters": [
     {
      "name": "token",
      "in": "path",
      "required": true,
      "schema": {
       "type": "string"
      }
     }
    ],
    "responses": {
     "200": {
      "description": "HTML page in the customer's language"
     },
     "404": {
      "$ref": "#/components/responses/Problem"
     }
    }
   },
   "post": {
    "summary": "Confirms the grant (form-urlencoded form=confirm): it counts from now; a used or expired link records nothing and says so",
    "security": [],
    "parameters": [
     {
      "name": "token",
      "in": "path",
      "required": true,
      "schema": {
       "type": "string"
      }
     }
    ],
    "responses": {
     "200": {
      "description": "HTML page"
     },
     "404": {
      "$ref": "#/components/responses/Problem"
     },
     "415": {
      "$ref": "#/components/responses/Problem"
     }
    }
   }
  },
  "/notices/{purpose}/{version}": {
   "get": {
    "summary": "The text of a notice version, in the customer's language (?lang=, Accept-Language)",
    "security": [],
    "parameters": [
     {
      "name": "purpose",
      "in": "path",
      "required": true,
      "schema": {
       "type": "string"
      }
     },
     {
      "name": "version",
      "in": "path",
      "required": true,
      "schema": {
       "type": "string"
      }
     }
    ],
    "responses": {
     "200": {
      "description": "HTML page"
     },
     "404": {
      "$ref": "#/components/responses/Problem"
     }
    }
   }
  },
  "/.well-known/gpc.json": {
   "get": {
    "summary": "Global Privacy Control support statement",
    "security": [],
    "responses": {
     "200": {
      "description": "{gpc:true, lastUpdate}"
     }
    }
   }
  },
  "/v1/audiences": {
   "post": {
    "summary": "Campaign audience (marketing): where-language \u2229 consent, activity fields only; NDJSON or CSV",
    "requestBody": {
     "required": true,
     "content": {
      "application/json": {
       "schema": {
        "type": "object",
        "required": [
         "activity",
         "purpose"
        ],
        "additionalProperties": false,
        "properties": {
         "activity": {
          "type": "string"
         },
         "purpose": {
          "type": "string"
         },
         "channel": {
          "type": "string"
         },
         "format": {
          "enum": [
           "ndjson",
           "csv"
          ]
         },
         "fields": {
          "type": "array",
          "items": {
           "type": "string"
          }
         },
         "where": {
          "type": "object",
          "description": "{all:[\u2026]} | {any:[\u2026]} | {not:{\u2026}} | {field, eq|in|prefix|gt|gte|lt|lte|within: value}"
         }
        }
       }
      }
     }
    },
    "responses": {
     "200": {
      "description": "One member per line / row; X-Audience-Count and X-Audience-Sha256 headers",
      "content": {
       "application/x-ndjson": {
        "schema": {
         "type": "string"
        }
       },
       "text/csv": {
        "schema": {
         "type": "string"
        }
       }
      }
     },
     "400": {
      "$ref": "#/components/responses/Problem"
     },
     "401": {
      "$ref": "#/components/responses/Problem"
     },
     "403": {
      "$ref": "#/components/responses/Problem"
     },
     "415": {
      "$ref": "#/components/responses/Problem"
     },
     "422": {
      "$ref": "#/components/responses/Problem"
     }
    }
   }
  },
  "/p/{token}": {
   "get": {
    "summary": "Preference centre page (no JavaScript needed; in the language of ?lang=, the subject's language field, Accept-Language or default_language; the controller and each consent's notice version shown); Sec-GPC: 1 records a GPC opt-out",
    "security": [],
    "parameters": [
     {
      "name": "token",
      "in": "path",
      "required": true,
      "schema": {
       "type": "string"
      }
     }
    ],
    "responses": {
     "200": {
      "description": "HTML"
     },
     "404": {
      "$ref": "#/components/responses/Problem"
     }
    }
   },
   "post": {
    "summary": "Save choices: form=preferences with purpose=<id> for each wanted purpose, or form=unsubscribe_all",
    "security": [],
    "parameters": [
     {
      "name": "token",
      "in": "path",
      "required": true,
      "schema": {
       "type": "string"
      }
     }
    ],
    "requestBody": {
     "content": {
      "application/x-www-form-urlencoded": {
       "schema": {
        "type": "object"
       }
      }
     }
    },
    "responses": {
     "200": {
      "description": "HTML with the saved state"
     },
     "404": {
      "$ref": "#/components/responses/Problem"
     },
     "415": {
      "$ref": "#/components/responses/Problem"
     },
     "422": {
      "$ref": "#/components/responses/Problem"
     }
    }
   }
  },
  "/v1/register": {
   "get": {
    "summary": "Register of processing activities (officer)",
    "parameters": [
     {
      "name": "format",
      "in": "query",
      "schema": {
       "enum": [
        "json",
        "csv",
        "md",
        "html"
       ]
      }
     },
     {
      "name": "lang",
      "in": "query",
      "description": "Headings and labels of CSV values, Markdown and HTML; default from Accept-Language",
      "schema": {
       "enum": [
        "en",
        "fr"
       ]
      }
     }
    ],
    "responses": {
     "200": {
      "description": "The register: JSON (Register), CSV, Markdown or HTML by format",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Register"
        }
       },
       "text/csv": {},
       "text/markdown": {},
       "text/html": {}
      }
     },
     "401": {
      "$ref": "#/components/responses/Problem"
     },
     "403": {
      "$ref": "#/components/responses/Problem"
     },
     "422": {
      "$ref": "#/components/responses/Problem"
     }
    }
   }
  },
  "/v1/register/{id}": {
   "get": {
    "summary": "One activity (officer)",
    "parameters": [
     {
      "name": "id",
      "in": "path",
      "required": true,
      "schema": {
       "type": "string"
      }
     }
    ],
    "responses": {
     "200": {
      "description": "The activity as in register.yaml"
     },
     "401": {
      "$ref": "#/components/responses/Problem"
     },
     "403": {
      "$ref": "#/components/responses/Problem"
     },
     "404": {
      "$ref": "#/components/responses/Problem"
     }
    }
   }
  },
  "/v1/register/lint": {
   "get": {
    "summary": "Lint findings (officer, admin)",
    "responses": {
     "200": {
      "description": "{findings:[{severity, rule, location, message, hint}], ok}"
     },
     "401": {
      "$ref": "#/components/responses/Problem"
     },
     "403": {
      "$ref": "#/components/responses/Problem"
     }
    }
   }
  },
  "/v1/requests": {
   "post": {
    "summary": "Open a data-subject request (operator, officer, or the customer's subject link as bearer token)",
    "requestBody": {
     "required": true,
     "content": {
      "application/json": {
       "schema": {
        "type": "object",
        "required": [
         "type"
        ],
        "additionalProperties": false,
        "properties": {
         "type": {
          "enum": [
           "access",
           "portability",
           "rectification",
           "erasure",
           "restriction",
           "objection"
          ]
         },
         "subject": {
          "type": "string",
          "description": "required with an API key; a subject link implies its own subject"
         },
         "jurisdiction": {
          "type": "string",
          "description": "deadline rules (dsr_jurisdictions); default dsr_jurisdiction"
         },
         "note": {
          "type": "string",
          "maxLength": 4000
         },
         "received_at": {
          "type": "string",
          "format": "date-time",
          "description": "when the request reached the controller, if earlier than now (API keys only)"
         },
         "changes": {
          "type": "object",
          "description": "rectification: {field: value|null} or {fields:{\u2026}, external_id}"
         },
         "purposes": {
          "type": "array",
          "items": {
           "type": "string"
          },
          "description": "objection: purposes objected to; default every marketing purpose"
         },
         "suppress": {
          "type": "boolean",
          "description": "erasure: also put the contacts on the suppression list"
         }
        }
       }
      }
     }
    },
    "responses": {
     "201": {
      "description": "The request; status verified when opened through a subject link",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Request"
        }
       }
      }
     },
     "400": {
      "$ref": "#/components/responses/Problem"
     },
     "401": {
      "$ref": "#/components/responses/Problem"
     },
     "403": {
      "$ref": "#/components/responses/Problem"
     },
     "404": {
      "$ref": "#/components/responses/Problem"
     },
     "409": {
      "$ref": "#/components/responses/Problem"
     },
     "415": {
      "$ref": "#/components/responses/Problem"
     },
     "422": {
      "$ref": "#/components/responses/Problem"
     }
    }
   },
   "get": {
    "summary": "The queue (officer), oldest deadline first; a subject link lists its own requests",
    "parameters": [
     {
      "name": "status",
      "in": "query",
      "schema": {
       "type": "string"
      },
      "description": "comma-separated: open, received, verified, in_progress, completed, rejected"
     },
     {
      "name": "overdue",
      "in": "query",
      "schema": {
       "type": "boolean"
      }
     },
     {
      "name": "due_within",
      "in": "query",
      "schema": {
       "type": "integer",
       "minimum": 0
      },
      "description": "open requests due within N days (overdue included)"
     },
     {
      "name": "type",
      "in": "query",
      "schema": {
       "type": "string"
      }
     },
     {
      "name": "subject",
      "in": "query",
      "schema": {
       "type": "string"
      }
     },
     {
      "name": "cursor",
      "in": "query",
      "schema": {
       "type": "string"
      }
     },
     {
      "name": "limit",
      "in": "query",
      "schema": {
       "type": "integer",
       "minimum": 1,
       "maximum": 1000
      }
     }
    ],
    "responses": {
     "200": {
      "description": "{items:[Request], count, next_cursor}"
     },
     "401": {
      "$ref": "#/components/responses/Problem"
     },
     "403": {
      "$ref": "#/components/responses/Problem"
     },
     "422": {
      "$ref": "#/components/responses/Problem"
     }
    }
   }
  },
  "/v1/requests/{id}": {
   "get": {
    "summary": "One request (officer; a subject link for its own)",
    "parameters": [
     {
      "name": "id",
      "in": "path",
      "required": true,
      "schema": {
       "type": "string"
      }
     }
    ],
    "responses": {
     "200": {
      "description": "The request",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Request"
        }
       }
      }
     },
     "401": {
      "$ref": "#/components/responses/Problem"
     },
     "403": {
      "$ref": "#/components/responses/Problem"
     },
     "404": {
      "$ref": "#/components/responses/Problem"
     }
    }
   }
  },
  "/v1/requests/{id}:verify": {
   "post": {
    "summary": "Identity verified by an officer (officer)",
    "parameters": [
     {
      "name": "id",
      "in": "path",
      "required": true,
      "schema": {
       "type": "string"
      }
     }
    ],
    "requestBody": {
     "required": false,
     "description": "{note?}",
     "content": {
      "application/json": {
       "schema": {
        "type": "object"
       }
      }
     }
    },
    "responses": {
     "200": {
      "description": "The request after the step",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Request"
        }
       }
      }
     },
     "400": {
      "$ref": "#/components/responses/Problem"
     },
     "401": {
      "$ref": "#/components/responses/Problem"
     },
     "403": {
      "$ref": "#/components/responses/Problem"
     },
     "404": {
      "$ref": "#/components/responses/Problem"
     },
     "409": {
      "$ref": "#/components/responses/Problem"
     },
     "415": {
      "$ref": "#/components/responses/Problem"
     },
     "422": {
      "$ref": "#/components/responses/Problem"
     }
    }
   }
  },
  "/v1/requests/{id}:start": {
   "post": {
    "summary": "Work begins (verified \u2192 in_progress) (officer)",
    "parameters": [
     {
      "name": "id",
      "in": "path",
      "required": true,
      "schema": {
       "type": "string"
      }
     }
    ],
    "requestBody": {
     "required": false,
     "description": "{}",
     "content": {
      "application/json": {
       "schema": {
        "type": "object"
       }
      }
     }
    },
    "responses": {
     "200": {
      "description": "The request after the step",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Request"
        }
       }
      }
     },
     "400": {
      "$ref": "#/components/responses/Problem"
     },
     "401": {
      "$ref": "#/components/responses/Problem"
     },
     "403": {
      "$ref": "#/components/responses/Problem"
     },
     "404": {
      "$ref": "#/components/responses/Problem"
     },
     "409": {
      "$ref": "#/components/responses/Problem"
     },
     "415": {
      "$ref": "#/components/responses/Problem"
     },
     "422": {
      "$ref": "#/components/responses/Problem"
     }
    }
   }
  },
  "/v1/requests/{id}:extend": {
   "post": {
    "summary": "The one extension, before the first deadline, with a reason (officer)",
    "parameters": [
     {
      "name": "id",
      "in": "path",
      "required": true,
      "schema": {
       "type": "string"
      }
     }
    ],
    "requestBody": {
     "required": false,
     "description": "{by?: ISO 8601 duration (default the jurisdiction's longest), reason}",
     "content": {
      "application/json": {
       "schema": {
        "type": "object"
       }
      }
     }
    },
    "responses": {
     "200": {
      "description": "The request after the step",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Request"
        }
       }
      }
     },
     "400": {
      "$ref": "#/components/responses/Problem"
     },
     "401": {
      "$ref": "#/components/responses/Problem"
     },
     "403": {
      "$ref": "#/components/responses/Problem"
     },
     "404": {
      "$ref": "#/components/responses/Problem"
     },
     "409": {
      "$ref": "#/components/responses/Problem"
     },
     "415": {
      "$ref": "#/components/responses/Problem"
     },
     "422": {
      "$ref": "#/components/responses/Problem"
     }
    }
   }
  },
  "/v1/requests/{id}:reject": {
   "post": {
    "summary": "Refuse, with the reason given to the requester (officer)",
    "parameters": [
     {
      "name": "id",
      "in": "path",
      "required": true,
      "schema": {
       "type": "string"
      }
     }
    ],
    "requestBody": {
     "required": false,
     "description": "{reason}",
     "content": {
      "application/json": {
       "schema": {
        "type": "object"
       }
      }
     }
    },
    "responses": {
     "200": {
      "description": "The request after the step",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Request"
        }
       }
      }
     },
     "400": {
      "$ref": "#/components/responses/Problem"
     },
     "401": {
      "$ref": "#/components/responses/Problem"
     },
     "403": {
      "$ref": "#/components/responses/Problem"
     },
     "404": {
      "$ref": "#/components/responses/Problem"
     },
     "409": {
      "$ref": "#/components/responses/Problem"
     },
     "415": {
      "$ref": "#/components/responses/Problem"
     },
     "422": {
      "$ref": "#/components/responses/Problem"
     }
    }
   }
  },
  "/v1/requests/{id}:complete": {
   "post": {
    "summary": "Carry the request out and close it, in one transaction with its audit entries (officer)",
    "parameters": [
     {
      "name": "id",
      "in": "path",
      "required": true,
      "schema": {
       "type": "string"
      }
     }
    ],
    "requestBody": {
     "required": false,
     "description": "{note?, changes? (rectification opened without them)}",
     "content": {
      "application/json": {
       "schema": {
        "type": "object"
       }
      }
     }
    },
    "responses": {
     "200": {
      "description": "The request after the step",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Request"
        }
       }
      }
     },
     "400": {
      "$ref": "#/components/responses/Problem"
     },
     "401": {
      "$ref": "#/components/responses/Problem"
     },
     "403": {
      "$ref": "#/components/responses/Problem"
     },
     "404": {
      "$ref": "#/components/responses/Problem"
     },
     "409": {
      "$ref": "#/components/responses/Problem"
     },
     "415": {
      "$ref": "#/components/responses/Problem"
     },
     "422": {
      "$ref": "#/components/responses/Problem"
     }
    }
   }
  },
  "/v1/requests/{id}:lift": {
   "post": {
    "summary": "Lift the restriction a completed restriction request put in place (officer)",
    "parameters": [
     {
      "name": "id",
      "in": "path",
      "required": true,
      "schema": {
       "type": "string"
      }
     }
    ],
    "requestBody": {
     "required": false,
     "description": "{}",
     "content": {
      "application/json": {
       "schema": {
        "type": "object"
       }
      }
     }
    },
    "responses": {
     "200": {
      "description": "The request after the step",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Request"
        }
       }
      }
     },
     "400": {
      "$ref": "#/components/responses/Problem"
     },
     "401": {
      "$ref": "#/components/responses/Problem"
     },
     "403": {
      "$ref": "#/components/responses/Problem"
     },
     "404": {
      "$ref": "#/components/responses/Problem"
     },
     "409": {
      "$ref": "#/components/responses/Problem"
     },
     "415": {
      "$ref": "#/components/responses/Problem"
     },
     "422": {
      "$ref": "#/components/responses/Problem"
     }
    }
   }
  },
  "/v1/requests/{id}/package": {
   "get": {
    "summary": "Access (Art. 15) or portability (Art. 20) package: officer, or the customer's subject link",
    "parameters": [
     {
      "name": "id",
      "in": "path",
      "required": true,
      "schema": {
       "type": "string"
      }
     },
     {
      "name": "format",
      "in": "query",
      "schema": {
       "enum": [
        "json",
        "html",
        "csv"
       ]
      }
     },
     {
      "name": "lang",
      "in": "query",
      "schema": {
       "enum": [
        "en",
        "fr"
       ]
      }
     }
    ],
    "responses": {
     "200": {
      "description": "garde-access-package/1 or garde-portability/1 JSON; an HTML page; CSV of the fields",
      "content": {
       "application/json": {},
       "text/html": {},
       "text/csv": {}
      }
     },
     "401": {
      "$ref": "#/components/responses/Problem"
     },
     "403": {
      "$ref": "#/components/responses/Problem"
     },
     "404": {
      "$ref": "#/components/responses/Problem"
     },
     "409": {
      "$ref": "#/components/responses/Problem"
     },
     "422": {
      "$ref": "#/components/responses/Problem"
     }
    }
   }
  },
  "/r/{token}": {
   "get": {
    "summary": "DSR link page: confirm the request the link was sent for, or the customer's rights page (requests, downloads, new access/portability/erasure)",
    "security": [],
    "parameters": [
     {
      "name": "token",
      "in": "path",
      "required": true,
      "schema": {
       "type": "string"
      }
     }
    ],
    "responses": {
     "200": {
      "description": "HTML",
      "content": {
       "text/html": {}
      }
     },
     "404": {
      "$ref": "#/components/responses/Problem"
     }
    }
   },
   "post": {
    "summary": "form=confirm confirms the request (once); form=request&type=access|portability|erasure[&confirm=yes] opens one",
    "security": [],
    "parameters": [
     {
      "name": "token",
      "in": "path",
      "required": true,
      "schema": {
       "type": "string"
      }
     }
    ],
    "requestBody": {
     "content": {
      "application/x-www-form-urlencoded": {
       "schema": {
        "type": "object"
       }
      }
     }
    },
    "responses": {
     "200": {
      "description": "HTML",
      "content": {
       "text/html": {}
      }
     },
     "404": {
      "$ref": "#/components/responses/Problem"
     },
     "409": {
      "$ref": "#/components/responses/Problem"
     },
     "415": {
      "$ref": "#/components/responses/Problem"
     },
     "422": {
      "$ref": "#/components/responses/Problem"
     }
    }
   }
  },
  "/r/{token}/requests/{id}/package": {
   "get": {
    "summary": "The customer's package through the link sent for this request (HTML by default); any other link is refused (403)",
    "security": [],
    "parameters": [
     {
      "name": "token",
      "in": "path",
      "required": true,
      "schema": {
       "type": "string"
      }
     },
     {
      "name": "id",
      "in": "path",
      "required": true,
      "schema": {
       "type": "string"
      }
     },
     {
      "name": "format",
      "in": "query",
      "schema": {
       "enum": [
        "json",
        "html",
        "csv"
       ]
      }
     }
    ],
    "responses": {
     "200": {
      "description": "the package"
     },
     "403": {
      "$ref": "#/components/responses/Problem"
     },
     "404": {
      "$ref": "#/components/responses/Problem"
     },
     "409": {
      "$ref": "#/components/responses/Problem"
     },
     "422": {
      "$ref": "#/components/responses/Problem"
     }
    }
   }
  },
  "/v1/admin/reload": {
   "post": {
    "summary": "Reload the policy files (admin): linted first; on errors the running policies stay and the errors come back (422); a change is audited with before/after content hashes. SIGHUP does the same.",
    "responses": {
     "200": {
      "description": "{changed, before, after, summary:{activities|purposes|roles|fields:{added, removed, changed}}}"
     },
     "401": {
      "$ref": "#/components/responses/Problem"
     },
     "403": {
      "$ref": "#/components/responses/Problem"
     },
     "422": {
      "$ref": "#/components/responses/Problem"
     }
    }
   }
  },
  "/v1/register/history": {
   "get": {
    "summary": "The policy versions the service ran with, newest first (officer)",
    "responses": {
     "200": {
      "description": "{current, items:[{content_hash, loaded_at, source: start|api|sighup, changes}]}"
     },
     "401": {
      "$ref": "#/components/responses/Problem"
     },
     "403": {
      "$ref": "#/components/responses/Problem"
     }
    }
   }
  },
  "/v1/retention/runs": {
   "get": {
    "summary": "Runs of the retention sweep, newest first (officer, auditor, admin): what was erased or released, by activity and rule, counts only",
    "parameters": [
     {
      "name": "cursor",
      "in": "query",
      "required": false,
      "schema": {
       "type": "string"
      },
      "description": "next_cursor of the previous page"
     }
    ],
    "responses": {
     "200": {
      "description": "{items:[RetentionRun], next_cursor}",
      "content": {
       "application/json": {
        "schema": {
         "type": "object",
         "required": ["items", "next_cursor"],
         "properties": {
          "items": {
           "type": "array",
           "items": {
            "$ref": "#/components/schemas/RetentionRun"
           }
          },
          "next_cursor": {
           "type": ["string", "null"]
          }
         }
        }
       }
      }
     },
     "401": {
      "$ref": "#/components/responses/Problem"
     },
     "403": {
      "$ref": "#/components/responses/Problem"
     },
     "422": {
      "$ref": "#/components/responses/Problem"
     }
    }
   },
   "post": {
    "summary": "Run the retention sweep now at the service's time (officer, admin); a dry run only counts",
    "requestBody": {
     "required": false,
     "content": {
      "application/json": {
       "schema": {
        "type": "object",
        "additionalProperties": false,
        "properties": {
         "dry_run": {
          "type": "boolean"
         }
        }
       }
      }
     }
    },
    "responses": {
     "201": {
      "description": "The completed run",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/RetentionRun"
        }
       }
      }
     },
     "400": {
      "$ref": "#/components/responses/Problem"
     },
     "401": {
      "$ref": "#/components/responses/Problem"
     },
     "403": {
      "$ref": "#/components/responses/Problem"
     },
     "422": {
      "$ref": "#/components/responses/Problem"
     }
    }
   }
  },
  "/v1/subjects/{id}/interactions": {
   "post": {
    "summary": "Record a purchase or contact (operator): moves last_interaction_at, the anchor of most retention periods, and for purchases total_spend, last_purchase and spend_30d; the amount is sealed",
    "parameters": [
     {
      "name": "id",
      "in": "path",
      "required": true,
      "schema": {
       "type": "string"
      }
     }
    ],
    "requestBody": {
     "required": true,
     "content": {
      "application/json": {
       "schema": {
        "oneOf": [
         {
          "$ref": "#/components/schemas/Interaction"
         },
         {
          "type": "object",
          "additionalProperties": false,
          "required": ["interactions"],
          "properties": {
           "interactions": {
            "type": "array",
            "minItems": 1,
            "maxItems": 1000,
            "items": {
             "$ref": "#/components/schemas/Interaction"
            }
           }
          }
         }
        ]
       }
      }
     }
    },
    "responses": {
     "201": {
      "description": "{subject, recorded, last_interaction_at}"
     },
     "400": {
      "$ref": "#/components/responses/Problem"
     },
     "401": {
      "$ref": "#/components/responses/Problem"
     },
     "403": {
      "$ref": "#/components/responses/Problem"
     },
     "404": {
      "$ref": "#/components/responses/Problem"
     },
     "409": {
      "$ref": "#/components/responses/Problem"
     },
     "415": {
      "$ref": "#/components/responses/Problem"
     },
     "422": {
      "$ref": "#/components/responses/Problem"
     }
    }
   }
  },
  "/v1/incidents": {
   "post": {
    "summary": "Open an incident in the breach register (officer): detected_at, aware_at (default now), facts; the 72-hour clock runs from aware_at",
    "requestBody": {
     "required": true,
     "content": {
      "application/json": {
       "schema": {
        "allOf": [
         {
          "$ref": "#/components/schemas/IncidentFacts"
         },
         {
          "type": "object",
          "properties": {
           "detected_at": {
            "type": "string",
            "format": "date-time"
           },
           "aware_at": {
            "type": "string",
            "format": "date-time"
           }
          },
          "required": [
           "detected_at"
          ]
         }
        ]
       }
      }
     }
    },
    "responses": {
     "201": {
      "description": "The incident",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Incident"
        }
       }
      }
     },
     "400": {
      "$ref": "#/components/responses/Problem"
     },
     "401": {
      "$ref": "#/components/responses/Problem"
     },
     "403": {
      "$ref": "#/components/responses/Problem"
     },
     "415": {
      "$ref": "#/components/responses/Problem"
     },
     "422": {
      "$ref": "#/components/responses/Problem"
     }
    }
   },
   "get": {
    "summary": "The breach register, earliest authority deadline first (officer)",
    "parameters": [
     {
      "name": "status",
      "in": "query",
      "schema": {
       "enum": [
        "open",
        "closed"
       ]
      }
     },
     {
      "name": "overdue",
      "in": "query",
      "schema": {
       "type": "boolean"
      }
     },
     {
      "name": "due_within_hours",
      "in": "query",
      "schema": {
       "type": "integer",
       "minimum": 0
      }
     }
    ],
    "responses": {
     "200": {
      "description": "{items, count}",
      "content": {
       "application/json": {
        "schema": {
         "type": "object",
         "properties": {
          "items": {
           "type": "array",
           "items": {
            "$ref": "#/components/schemas/Incident"
           }
          },
          "count": {
           "type": "integer"
          }
         }
        }
       }
      }
     },
     "401": {
      "$ref": "#/components/responses/Problem"
     },
     "403": {
      "$ref": "#/components/responses/Problem"
     },
     "422": {
      "$ref": "#/components/responses/Problem"
     }
    }
   }
  },
  "/v1/incidents/{id}": {
   "get": {
    "summary": "One incident (officer); format=html&lang=fr|en: the sheet for the supervisory authority under the notification form's headings (Art. 33(3) (a)-(d))",
    "parameters": [
     {
      "name": "id",
      "in": "path",
      "required": true,
      "schema": {
       "type": "string"
      }
     },
     {
      "name": "format",
      "in": "query",
      "schema": {
       "enum": [
        "json",
        "html"
       ]
      }
     },
     {
      "name": "lang",
      "in": "query",
      "schema": {
       "enum": [
        "en",
        "fr"
       ]
      }
     }
    ],
    "responses": {
     "200": {
      "description": "The incident, or the HTML sheet",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Incident"
        }
       }
      }
     },
     "401": {
      "$ref": "#/components/responses/Problem"
     },
     "403": {
      "$ref": "#/components/responses/Problem"
     },
     "404": {
      "$ref": "#/components/responses/Problem"
     },
     "422": {
      "$ref": "#/components/responses/Problem"
     }
    }
   },
   "patch": {
    "summary": "Record facts, effects, measures, assessment, containment; authority_notified_at; status closed (officer, audited)",
    "parameters": [
     {
      "name": "id",
      "in": "path",
      "required": true,
      "schema": {
       "type": "string"
      }
     }
    ],
    "requestBody": {
     "required": true,
     "content": {
      "application/json": {
       "schema": {
        "allOf": [
         {
          "$ref": "#/components/schemas/IncidentFacts"
         },
         {
          "type": "object",
          "properties": {
           "authority_notified_at": {
            "type": "string",
            "format": "date-time"
           },
           "status": {
            "const": "closed"
           }
          }
         }
        ]
       }
      }
     }
    },
    "responses": {
     "200": {
      "description": "The incident",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Incident"
        }
       }
      }
     },
     "400": {
      "$ref": "#/components/responses/Problem"
     },
     "401": {
      "$ref": "#/components/responses/Problem"
     },
     "403": {
      "$ref": "#/components/responses/Problem"
     },
     "404": {
      "$ref": "#/components/responses/Problem"
     },
     "415": {
      "$ref": "#/components/responses/Problem"
     },
     "422": {
      "$ref": "#/components/responses/Problem"
     }
    }
   }
  },
  "/v1/incidents/{id}:scope": {
   "post": {
    "summary": "Every subject an API key read or changed in a window, with fields and activities, from the audit log verified first against a checkpoint signed now (409 when it does not verify)",
    "parameters": [
     {
      "name": "id",
      "in": "path",
      "required": true,
      "schema": {
       "type": "string"
      }
     }
    ],
    "requestBody": {
     "required": true,
     "content": {
      "application/json": {
       "schema": {
        "type": "object",
        "required": [
         "actor"
        ],
        "additionalProperties": false,
        "properties": {
         "actor": {
          "type": "string"
         },
         "since": {
          "type": "string",
          "format": "date-time"
         },
         "until": {
          "type": "string",
          "format": "date-time"
         }
        }
       }
      }
     }
    },
    "responses": {
     "200": {
      "description": "The incident with facts.scope",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Incident"
        }
       }
      }
     },
     "400": {
      "$ref": "#/components/responses/Problem"
     },
     "401": {
      "$ref": "#/components/responses/Problem"
     },
     "403": {
      "$ref": "#/components/responses/Problem"
     },
     "404": {
      "$ref": "#/components/responses/Problem"
     },
     "409": {
      "$ref": "#/components/responses/Problem"
     },
     "415": {
      "$ref": "#/components/responses/Problem"
     },
     "422": {
      "$ref": "#/components/responses/Problem"
     }
    }
   }
  },
  "/v1/incidents/{id}:revoke-key": {
   "post": {
    "summary": "Containment: revokes an API key at once and records the step in the incident (officer)",
    "parameters": [
     {
      "name": "id",
      "in": "path",
      "required": true,
      "schema": {
       "type": "string"
      }
     }
    ],
    "requestBody": {
     "required": true,
     "content": {
      "application/json": {
       "schema": {
        "type": "object",
        "required": [
         "key"
        ],
        "additionalProperties": false,
        "properties": {
         "key": {
          "type": "string"
         }
        }
       }
      }
     }
    },
    "responses": {
     "200": {
      "description": "The incident with the step in facts.containment",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Incident"
        }
       }
      }
     },
     "400": {
      "$ref": "#/components/responses/Problem"
     },
     "401": {
      "$ref": "#/components/responses/Problem"
     },
     "403": {
      "$ref": "#/components/responses/Problem"
     },
     "404": {
      "$ref": "#/components/responses/Problem"
     },
     "415": {
      "$ref": "#/components/responses/Problem"
     },
     "422": {
      "$ref": "#/components/responses/Problem"
     }
    }
   }
  }
 ,
  "/v1/incidents/{id}:notify-subjects": {
   "post": {
    "summary": "Art. 34: a breach notice to each subject of the scope, by e-mail in their language (nature, consequences and measures required)",
    "parameters": [
     {
      "name": "id",
      "in": "path",
      "required": true,
      "schema": {
       "type": "string"
      }
     }
    ],
    "responses": {
     "200": {
      "description": "The incident with facts.subjects_notified",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Incident"
        }
       }
      }
     },
     "401": {
      "$ref": "#/components/responses/Problem"
     },
     "403": {
      "$ref": "#/components/responses/Problem"
     },
     "404": {
      "$ref": "#/components/responses/Problem"
     },
     "409": {
      "$ref": "#/components/responses/Problem"
     },
     "422": {
      "$ref": "#/components/responses/Problem"
     }
    }
   }
  }
 ,
  "/v1/webhooks/deliveries": {
   "get": {
    "summary": "Webhook deliveries, oldest first (officer, admin): what each recipient was told, pending retries and dead letters",
    "parameters": [
     {
      "name": "status",
      "in": "query",
      "required": false,
      "schema": {
       "type": "string",
       "enum": ["pending", "delivered", "dead", "skipped"]
      }
     },
     {
      "name": "endpoint",
      "in": "query",
      "required": false,
      "schema": {
       "type": "string"
      }
     },
     {
      "name": "cursor",
      "in": "query",
      "required": false,
      "schema": {
       "type": "string"
      }
     }
    ],
    "responses": {
     "200": {
      "description": "{items:[Delivery], next_cursor}",
      "content": {
       "application/json": {
        "schema": {
         "type": "object",
         "required": ["items", "next_cursor"],
         "properties": {
          "items": {
           "type": "array",
           "items": {
            "$ref": "#/components/schemas/Delivery"
           }
          },
          "next_cursor": {
           "type": ["string", "null"]
          }
         }
        }
       }
      }
     },
     "401": {
      "$ref": "#/components/responses/Problem"
     },
     "403": {
      "$ref": "#/components/responses/Problem"
     },
     "422": {
      "$ref": "#/components/responses/Problem"
     }
    }
   }
  },
  "/v1/webhooks/deliveries/{id}:replay": {
   "post": {
    "summary": "Put a dead (or delivered) delivery back in the queue, due now (officer, admin)",
    "parameters": [
     {
      "name": "id",
      "in": "path",
      "required": true,
      "schema": {
       "type": "string"
      }
     }
    ],
    "responses": {
     "200": {
      "description": "The delivery, pending again",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Delivery"
        }
       }
      }
     },
     "401": {
      "$ref": "#/components/responses/Problem"
     },
     "403": {
      "$ref": "#/components/responses/Problem"
     },
     "404": {
      "$ref": "#/components/responses/Problem"
     },
     "409": {
      "$ref": "#/components/responses/Problem"
     }
    }
   }
  },
  "/v1/retention/runs/{id}": {
   "get": {
    "summary": "One retention run (officer, auditor, admin)",
    "parameters": [
     {
      "name": "id",
      "in": "path",
      "required": true,
      "schema": {
       "type": "string"
      }
     }
    ],
    "responses": {
     "200": {
      "description": "The run",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/RetentionRun"
        }
       }
      }
     },
     "401": {
      "$ref": "#/components/responses/Problem"
     },
     "403": {
      "$ref": "#/components/responses/Problem"
     },
     "404": {
      "$ref": "#/components/responses/Problem"
     }
    }
   }
  }
 }
})openapi";
}

}  // namespace garde
