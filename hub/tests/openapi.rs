//! The API contract (issue 15, deliver 7): the served OpenAPI document is
//! one a client or a fuzzer can build requests from, and the interactive
//! docs are served by the hub itself. The full check (openapi-spec-validator
//! and schemathesis) runs in `make test` (`api-validate`, `api-fuzz`); these
//! are its cheap regressions.

mod support;

use std::collections::BTreeSet;

use reqwest::StatusCode;
use serde_json::Value;
use support::TestHub;

/// The served document.
async fn document(hub: &TestHub) -> Value {
    let (status, document) = hub
        .call(reqwest::Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    document
}

/// `schema`, with a `$ref` to `#/components/schemas/…` followed.
fn resolve<'a>(document: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(reference) => {
            let name = reference
                .strip_prefix("#/components/schemas/")
                .unwrap_or_else(|| panic!("unexpected $ref {reference}"));
            let target = &document["components"]["schemas"][name];
            assert!(!target.is_null(), "$ref {reference} resolves to nothing");
            resolve(document, target)
        }
        None => schema,
    }
}

/// Whether a JSON body schema says what to send: properties of its own, or
/// variants (`oneOf`/`anyOf`/`allOf`) that each do.
fn has_properties(document: &Value, schema: &Value) -> bool {
    let schema = resolve(document, schema);
    if schema["properties"]
        .as_object()
        .is_some_and(|p| !p.is_empty())
    {
        return true;
    }
    ["oneOf", "anyOf", "allOf"].iter().any(|k| {
        schema[*k].as_array().is_some_and(|variants| {
            !variants.is_empty() && variants.iter().all(|v| has_properties(document, v))
        })
    })
}

/// Every operation of the document: (method, path template, operation).
fn operations(document: &Value) -> Vec<(String, String, Value)> {
    let operations: Vec<_> = document["paths"]
        .as_object()
        .into_iter()
        .flatten()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .into_iter()
                .flatten()
                .map(|(method, op)| (method.clone(), path.clone(), op.clone()))
        })
        .collect();
    assert!(
        operations.len() > 90,
        "the document lists {} operations",
        operations.len()
    );
    operations
}

/// Issue 15: query parameters were declared `in: path` (35 in 11
/// operations). Every path parameter names a `{placeholder}` of its
/// template, and every placeholder has one.
#[tokio::test]
async fn i15_path_parameters_match_the_path_templates() {
    let hub = TestHub::start().await;
    let document = document(&hub).await;
    let mut wrong = Vec::new();
    for (method, path, op) in operations(&document) {
        let template: BTreeSet<String> = path
            .split('{')
            .skip(1)
            .filter_map(|rest| rest.split_once('}').map(|(name, _)| name.to_owned()))
            .collect();
        let declared: BTreeSet<String> = op["parameters"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter(|p| p["in"] == "path")
            .map(|p| p["name"].as_str().unwrap().to_owned())
            .collect();
        if template != declared {
            wrong.push(format!(
                "{method} {path}: path parameters {declared:?}, template {template:?}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// Issue 15: request bodies were bare objects. Every JSON request body has
/// a schema with properties; every other body is a string (bytes or CSV).
#[tokio::test]
async fn i15_every_request_body_has_a_schema_with_properties() {
    let hub = TestHub::start().await;
    let document = document(&hub).await;
    let mut wrong = Vec::new();
    let mut bodies = 0;
    for (method, path, op) in operations(&document) {
        let Some(content) = op["requestBody"]["content"].as_object() else {
            continue;
        };
        for (media_type, media) in content {
            bodies += 1;
            let schema = &media["schema"];
            let ok = if media_type == "application/json" {
                has_properties(&document, schema)
            } else {
                resolve(&document, schema)["type"] == "string"
            };
            if !ok {
                wrong.push(format!("{method} {path} {media_type}: {schema}"));
            }
        }
    }
    assert!(
        bodies > 30,
        "only {bodies} request bodies: is the document whole?"
    );
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// Every documented 4xx/5xx answer is the JSON error contract
/// `{"error", "message"}`, and operation ids are unique (the validator
/// refuses duplicates; generated clients need them).
#[tokio::test]
async fn i15_errors_are_the_json_contract_and_operation_ids_unique() {
    let hub = TestHub::start().await;
    let document = document(&hub).await;
    let reference = serde_json::json!({"$ref": "#/components/schemas/ErrorBody"});
    let error_body = resolve(&document, &reference);
    assert_eq!(
        error_body["required"],
        serde_json::json!(["error", "message"])
    );
    let mut wrong = Vec::new();
    let mut ids = BTreeSet::new();
    for (method, path, op) in operations(&document) {
        let id = op["operationId"].as_str().unwrap_or_default().to_owned();
        if !ids.insert(id.clone()) {
            wrong.push(format!("{method} {path}: operationId {id:?} is not unique"));
        }
        for (status, response) in op["responses"].as_object().unwrap() {
            if !(status.starts_with('4') || status.starts_with('5')) {
                continue;
            }
            let schema = &response["content"]["application/json"]["schema"];
            if schema["$ref"] != "#/components/schemas/ErrorBody" {
                wrong.push(format!("{method} {path} {status}: {response}"));
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// The interactive docs are at `/api/docs`, for anyone, self-hosted: the
/// page loads nothing from another origin and reads the hub's document.
#[tokio::test]
async fn i15_api_docs_are_served_self_hosted() {
    let hub = TestHub::start().await;
    let page = hub
        .client
        .get(format!("{}/api/docs", hub.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    assert!(
        !html.contains("https://") && !html.contains("http://"),
        "{html}"
    );
    let init = hub
        .client
        .get(format!("{}/api/docs/swagger-initializer.js", hub.base))
        .send()
        .await
        .unwrap();
    assert_eq!(init.status(), StatusCode::OK);
    assert!(init.text().await.unwrap().contains("/api/v1/openapi.json"));
    let bundle = hub
        .client
        .get(format!("{}/api/docs/swagger-ui-bundle.js", hub.base))
        .send()
        .await
        .unwrap();
    assert_eq!(bundle.status(), StatusCode::OK);
    assert!(bundle.bytes().await.unwrap().len() > 100_000);
}
