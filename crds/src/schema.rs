//! Hand-written schema fragments where the derived one would differ from Cilium's CRDs.
//!
//! The types keep Kubernetes' own `LabelSelector` (operator as a string, so that a bad operator
//! in a manifest directory becomes a status condition rather than a parse failure), but the
//! generated CRDs carry the enum and the label-value pattern Cilium's schemas have, so an API
//! server rejects what Cilium's would.

use schemars::{Schema, SchemaGenerator, json_schema};

/// The schema of a `LabelSelector` as Cilium's CRDs write it.
pub fn label_selector(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "description": "A label selector: matchLabels and matchExpressions are ANDed. \
                        An empty selector matches everything.",
        "type": "object",
        "properties": {
            "matchExpressions": {
                "description": "Requirements on label keys, ANDed.",
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "key": {"type": "string"},
                        "operator": {
                            "type": "string",
                            "enum": ["In", "NotIn", "Exists", "DoesNotExist"]
                        },
                        "values": {
                            "type": "array",
                            "items": {"type": "string"},
                            "x-kubernetes-list-type": "atomic"
                        }
                    },
                    "required": ["key", "operator"]
                },
                "x-kubernetes-list-type": "atomic"
            },
            "matchLabels": {
                "description": "key=value pairs, each equivalent to an `In` requirement with one value.",
                "type": "object",
                "additionalProperties": {
                    "type": "string",
                    "maxLength": 63,
                    "pattern": "^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
                }
            }
        },
        "x-kubernetes-map-type": "atomic"
    })
}
