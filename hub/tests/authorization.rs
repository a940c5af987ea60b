//! The authorization matrix (S8, T3, T4, P1): every route of the OpenAPI
//! document × every role × own tenant / other tenant, with the exact status
//! each must get. Generated from one table; the test fails when the hub
//! serves a route that has no row, so no route escapes the matrix.
//!
//! Each cell logs in afresh (a `DELETE /session` row revokes its token) and,
//! for rows that consume their target, makes a fresh target as the admin.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::{PASSWORD, TestHub};

/// Roles in order: the columns of `own` and `other`.
const ROLES: [&str; 5] = ["viewer", "contributor", "moderator", "manager", "admin"];

/// What a cell needs made fresh before the call.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fresh {
    /// Nothing: the tenant's standing objects do.
    Nothing,
    /// A new leaf node (`{site}`) in the target tenant.
    Site,
    /// A new viewer user (`{user}`) in the target tenant.
    User,
}

/// Who calls.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Caller {
    /// A user of tenant A with each role, against tenant A and tenant B.
    Roles {
        /// Expected status per role against tenant A's objects.
        own: [u16; 5],
        /// Expected status per role against tenant B's objects.
        other: [u16; 5],
    },
    /// No token at all (public routes).
    Anonymous(u16),
}

/// One row: a route and what every caller gets.
struct Row {
    /// HTTP method.
    method: Method,
    /// The OpenAPI path template, e.g. `/api/v1/nodes/{id}`.
    route: &'static str,
    /// The concrete path: placeholders `{node}`, `{site}`, `{user}`.
    path: &'static str,
    /// The JSON body, with the same placeholders in string values.
    body: Option<Value>,
    /// What is made fresh per cell.
    fresh: Fresh,
    /// Who calls and what they get.
    caller: Caller,
}

const NO: [u16; 5] = [404, 404, 404, 404, 404];

fn rows() -> Vec<Row> {
    use Caller::{Anonymous, Roles};
    use Fresh::{Nothing, Site, User};
    let row = |method: Method, route, path, body, fresh, caller| Row {
        method,
        route,
        path,
        body,
        fresh,
        caller,
    };
    vec![
        row(
            Method::GET,
            "/healthz",
            "/healthz",
            None,
            Nothing,
            Anonymous(200),
        ),
        row(
            Method::GET,
            "/api/v1/openapi.json",
            "/api/v1/openapi.json",
            None,
            Nothing,
            Anonymous(200),
        ),
        row(
            Method::POST,
            "/api/v1/session",
            "/api/v1/session",
            Some(json!({"name": "{user_name}", "password": PASSWORD})),
            User,
            Anonymous(200),
        ),
        row(
            Method::GET,
            "/api/v1/session",
            "/api/v1/session",
            None,
            Nothing,
            Roles {
                own: [200; 5],
                other: [200; 5],
            },
        ),
        row(
            Method::DELETE,
            "/api/v1/session",
            "/api/v1/session",
            None,
            Nothing,
            Roles {
                own: [204; 5],
                other: [204; 5],
            },
        ),
        row(
            Method::GET,
            "/api/v1/users",
            "/api/v1/users",
            None,
            Nothing,
            Roles {
                own: [403, 403, 403, 200, 200],
                other: [403, 403, 403, 200, 200],
            },
        ),
        row(
            Method::POST,
            "/api/v1/users",
            "/api/v1/users",
            Some(
                json!({"name": "{unique}", "email": "new@example.test", "password": PASSWORD, "role": "viewer", "domain": ["{node}"]}),
            ),
            Nothing,
            Roles {
                own: [403, 403, 403, 201, 201],
                other: [403, 403, 403, 400, 400],
            },
        ),
        row(
            Method::GET,
            "/api/v1/users/{id}",
            "/api/v1/users/{user}",
            None,
            Nothing,
            Roles {
                own: [404, 404, 404, 200, 200],
                other: NO,
            },
        ),
        row(
            Method::PATCH,
            "/api/v1/users/{id}",
            "/api/v1/users/{user}",
            Some(json!({"email": "changed@example.test"})),
            Nothing,
            Roles {
                own: [404, 404, 404, 200, 200],
                other: NO,
            },
        ),
        row(
            Method::DELETE,
            "/api/v1/users/{id}",
            "/api/v1/users/{user}",
            None,
            User,
            // Manager-only: the role is checked before visibility.
            Roles {
                own: [403, 403, 403, 204, 204],
                other: [403, 403, 403, 404, 404],
            },
        ),
        row(
            Method::POST,
            "/api/v1/users/{id}/revoke-sessions",
            "/api/v1/users/{user}/revoke-sessions",
            None,
            Nothing,
            Roles {
                own: [404, 404, 404, 204, 204],
                other: NO,
            },
        ),
        row(
            Method::GET,
            "/api/v1/nodes",
            "/api/v1/nodes",
            None,
            Nothing,
            Roles {
                own: [200; 5],
                other: [200; 5],
            },
        ),
        row(
            Method::POST,
            "/api/v1/nodes",
            "/api/v1/nodes",
            Some(json!({"parent": "{node}", "name": "made by the matrix"})),
            Nothing,
            Roles {
                own: [403, 403, 403, 201, 201],
                other: [403, 403, 403, 404, 404],
            },
        ),
        row(
            Method::GET,
            "/api/v1/nodes/{id}",
            "/api/v1/nodes/{site}",
            None,
            Nothing,
            Roles {
                own: [200; 5],
                other: NO,
            },
        ),
        row(
            Method::PATCH,
            "/api/v1/nodes/{id}",
            "/api/v1/nodes/{site}",
            Some(json!({"name": "renamed by the matrix"})),
            Nothing,
            Roles {
                own: [403, 403, 403, 200, 200],
                other: [403, 403, 403, 404, 404],
            },
        ),
        row(
            Method::DELETE,
            "/api/v1/nodes/{id}",
            "/api/v1/nodes/{site}",
            None,
            Site,
            Roles {
                own: [403, 403, 403, 204, 204],
                other: [403, 403, 403, 404, 404],
            },
        ),
        row(
            Method::GET,
            "/api/v1/audit",
            "/api/v1/audit",
            None,
            Nothing,
            Roles {
                own: [403, 403, 403, 403, 200],
                other: [403, 403, 403, 403, 200],
            },
        ),
        // The mail outbox is for root-level admins only: every tenant role is refused.
        row(
            Method::GET,
            "/api/v1/mail/outbox",
            "/api/v1/mail/outbox",
            None,
            Nothing,
            Roles {
                own: [403; 5],
                other: [403; 5],
            },
        ),
        row(
            Method::POST,
            "/api/v1/mail/outbox/{id}/retry",
            "/api/v1/mail/outbox/any/retry",
            None,
            Nothing,
            Roles {
                own: [403; 5],
                other: [403; 5],
            },
        ),
    ]
}

/// A tenant's standing objects.
struct Tenant {
    /// The tenant's top node.
    node: String,
    /// A standing leaf below it.
    site: String,
    /// A standing viewer user in it.
    user: String,
}

struct Fixture {
    hub: TestHub,
    /// Tenant A (the callers' own) and tenant B.
    tenants: [Tenant; 2],
    /// Counter for unique names.
    serial: std::sync::atomic::AtomicUsize,
}

impl Fixture {
    async fn new() -> Self {
        let hub = TestHub::start().await;
        let mut tenants = Vec::new();
        for name in ["A", "B"] {
            let node = hub
                .node(&hub.admin, &hub.root, &format!("Tenant {name}"))
                .await;
            let site = hub.node(&hub.admin, &node, &format!("{name} site")).await;
            let (user, _) = hub
                .user(&format!("{name}-target"), "viewer", &[&node])
                .await;
            tenants.push(Tenant { node, site, user });
        }
        for role in ROLES {
            hub.user(&format!("A-{role}"), role, &[&tenants[0].node])
                .await;
        }
        let [a, b]: [Tenant; 2] = tenants.try_into().ok().unwrap();
        Self {
            hub,
            tenants: [a, b],
            serial: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    fn unique(&self) -> String {
        format!(
            "u{}",
            self.serial
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        )
    }

    /// Placeholder values for a cell against `tenant`, making fresh objects.
    async fn vars(&self, tenant: &Tenant, fresh: Fresh) -> Vec<(&'static str, String)> {
        let mut site = tenant.site.clone();
        let mut user = tenant.user.clone();
        let mut user_name = String::new();
        match fresh {
            Fresh::Nothing => {}
            Fresh::Site => {
                site = self
                    .hub
                    .node(&self.hub.admin, &tenant.node, &self.unique())
                    .await
            }
            Fresh::User => {
                user_name = self.unique();
                user = self.hub.user(&user_name, "viewer", &[&tenant.node]).await.0;
            }
        }
        vec![
            ("{node}", tenant.node.clone()),
            ("{site}", site),
            ("{user}", user),
            ("{user_name}", user_name),
            ("{unique}", self.unique()),
        ]
    }
}

fn substitute(text: &str, vars: &[(&str, String)]) -> String {
    vars.iter()
        .fold(text.to_owned(), |acc, (k, v)| acc.replace(k, v))
}

fn substitute_json(value: &Value, vars: &[(&str, String)]) -> Value {
    match value {
        Value::String(s) => Value::String(substitute(s, vars)),
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| substitute_json(v, vars)).collect())
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), substitute_json(v, vars)))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[tokio::test]
async fn s8_t4_every_route_every_role_own_and_other_tenant() {
    let fixture = Fixture::new().await;
    let hub = &fixture.hub;
    let rows = rows();

    // Coverage: the table and the OpenAPI document list the same routes.
    let (_, document) = hub
        .call(Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    let served: BTreeSet<(String, String)> = document["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |m| (m.to_uppercase(), path.clone()))
        })
        .collect();
    let tabled: BTreeSet<(String, String)> = rows
        .iter()
        .map(|r| (r.method.to_string(), r.route.to_owned()))
        .collect();
    let missing: Vec<_> = served.difference(&tabled).collect();
    let stale: Vec<_> = tabled.difference(&served).collect();
    assert!(
        missing.is_empty(),
        "routes without a matrix row: {missing:?}"
    );
    assert!(
        stale.is_empty(),
        "matrix rows for routes the hub does not serve: {stale:?}"
    );

    let mut failures = Vec::new();
    for row in &rows {
        match row.caller {
            Caller::Anonymous(expected) => {
                let vars = fixture.vars(&fixture.tenants[0], row.fresh).await;
                let body = row.body.as_ref().map(|b| substitute_json(b, &vars));
                let (status, answer) = hub
                    .call(row.method.clone(), &substitute(row.path, &vars), None, body)
                    .await;
                if status.as_u16() != expected {
                    failures.push(format!(
                        "{} {} anonymous: {status} (want {expected}) {answer}",
                        row.method, row.route
                    ));
                }
            }
            Caller::Roles { own, other } => {
                for (tenant_index, expected) in [(0, own), (1, other)] {
                    for (role, want) in ROLES.iter().zip(expected) {
                        let token = hub.login(&format!("A-{role}"), PASSWORD).await;
                        let vars = fixture
                            .vars(&fixture.tenants[tenant_index], row.fresh)
                            .await;
                        let body = row.body.as_ref().map(|b| substitute_json(b, &vars));
                        let (status, answer) = hub
                            .call(
                                row.method.clone(),
                                &substitute(row.path, &vars),
                                Some(&token),
                                body,
                            )
                            .await;
                        if status.as_u16() != want {
                            let tenant = if tenant_index == 0 { "own" } else { "other" };
                            failures.push(format!(
                                "{} {} {role}/{tenant}: {status} (want {want}) {answer}",
                                row.method, row.route
                            ));
                        }
                        if tenant_index == 1
                            && status.is_success()
                            && row.method != Method::GET
                            && row.path.contains('{')
                        {
                            failures.push(format!(
                                "{} {} {role}: a cross-tenant write succeeded",
                                row.method, row.route
                            ));
                        }
                        if !status.is_success() {
                            assert!(
                                answer["error"].is_string(),
                                "{} {}: error without a JSON code: {answer}",
                                row.method,
                                row.route
                            );
                        }
                    }
                }
                // Without a token every such route is 401.
                let vars = fixture.vars(&fixture.tenants[0], Fresh::Nothing).await;
                let body = row.body.as_ref().map(|b| substitute_json(b, &vars));
                let (status, _) = hub
                    .call(row.method.clone(), &substitute(row.path, &vars), None, body)
                    .await;
                if status != StatusCode::UNAUTHORIZED {
                    failures.push(format!(
                        "{} {} without a token: {status} (want 401)",
                        row.method, row.route
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} cells wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
