//! The authorization matrix (S8, T3, T4, P1): every route of the OpenAPI
//! document × every role × own tenant / other tenant, with the exact status
//! each must get. Generated from one table; the test fails when the hub
//! serves a route that has no row, so no route escapes the matrix.
//!
//! Each cell logs in afresh (a `DELETE /session` row revokes its token) and,
//! for rows that consume their target, makes a fresh target as the admin.
//! Routes without a login (invite accept, self-signup, the shop hook) get
//! cells for the right credential and for wrong ones. Besides the statuses,
//! every cell checks: no write naming a tenant-B object succeeds; no success
//! answer names a tenant-B object; every refusal carries a JSON `error` code;
//! every route that needs a token answers 401 without one.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use signet_common::approval::ItemApproval;
use signet_hub::content::{CONTENT, ContentItem};
use signet_hub::mail::{OUTBOX, OutboxEntry};
use signet_hub::store::WriteBatch;
use support::{PASSWORD, TestHub};

/// The clustered broker's token for its HTTP hooks (`mqtt.auth_hook_token`).
const BROKER_HOOK_TOKEN: &str = "broker-hook-token-for-the-matrix-0123456789";

/// Roles in order: the columns of `own` and `other`.
const ROLES: [&str; 5] = ["viewer", "contributor", "moderator", "manager", "admin"];

/// What a cell needs made fresh before the call (as the root admin, in the
/// target tenant).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fresh {
    /// Nothing: the tenant's standing objects do.
    Nothing,
    /// A new leaf node (`{site}`).
    Site,
    /// A new viewer user (`{user}`, `{user_name}`).
    User,
    /// A new permission group (`{pgroup}`).
    PermissionGroup,
    /// `{user}` and `{pgroup2}` (again) direct members of `{pgroup}`.
    PermissionMembers,
    /// A new access group (`{agroup}`) without self-signup.
    AccessGroup,
    /// `{member}` (again) a current member of `{agroup}`.
    Member,
    /// A new invite to `{agroup}`: `{invite}` and its mailed `{invite_token}`.
    Invite,
    /// A new self-signup request to `{agroup}`: its mailed `{signup_token}`.
    Signup,
    /// A new shop key for `{agroup}` (`{shop_key}`), replacing the old one.
    ShopKey,
    /// A new content item at the tenant's node (`{content}`).
    Content,
    /// A new comment by the root admin on `{content}` (`{comment}`).
    Comment,
    /// A new comment by the root admin on `{playlist}` (`{comment}`).
    PlaylistComment,
    /// A new comment by the root admin on `{template}` (`{comment}`).
    TemplateComment,
    /// A new template at the tenant's node showing `{content}` (`{template}`).
    Template,
    /// A new template (`{template}`) and image (`{content}`), both inactive.
    Inactive,
    /// A new template (`{template}`) and image (`{content}`), both pending approval.
    Pending,
    /// A new playlist at the tenant's node (`{playlist}`).
    Playlist,
    /// A new leaf node with a schedule (`{site}`, `{schedule}`).
    Schedule,
    /// A new pending deferred publication of the tenant's node (`{job}`).
    Job,
    /// A new run publishing the tenant's node now (`{run}`).
    Run,
    /// A new member of `{agroup}` made by CSV import: its welcome mail's
    /// set-password token (`{password_token}`).
    Welcome,
    /// A new leaf (`{site}`) and a new pairing (`{ticket}`, `{code}`): open
    /// for tenant A; for tenant B already approved into its new leaf (a
    /// code another tenant claimed is no open pairing).
    Pairing,
    /// A new leaf (`{site}`) with a newly paired device (`{device}`).
    Device,
    /// A new share link to `{content}` by the root admin (`{share}`,
    /// `{share_token}`).
    Share,
    /// A new image (`{content}`) with an open report on it (`{feedback}`).
    Feedback,
    /// A new custom attribute defined at the tenant's node (`{attribute}`).
    Attribute,
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
    /// No token at all (public routes), against tenant A's objects.
    Anonymous(u16),
    /// No user login, but `Authorization: Bearer <key>` with this key
    /// (placeholders allowed, e.g. a shop key), against tenant A's objects.
    Key(&'static str, u16),
}

/// One row: a route and what every caller gets.
struct Row {
    /// HTTP method.
    method: Method,
    /// The OpenAPI path template, e.g. `/api/v1/nodes/{id}`.
    route: &'static str,
    /// The concrete path, with the placeholders of [`Fixture::vars`].
    path: &'static str,
    /// The body, with the same placeholders in string values: sent as JSON,
    /// except that a bare JSON string is sent as a `text/csv` file.
    body: Option<Value>,
    /// What is made fresh per cell.
    fresh: Fresh,
    /// Who calls and what they get.
    caller: Caller,
}

const NO: [u16; 5] = [404, 404, 404, 404, 404];

/// Routes the hub serves that the OpenAPI document does not describe: the
/// interactive docs of that document (issue 15).
const SERVED_OUTSIDE_DOCUMENT: &[(&str, &str)] = &[("GET", "/api/docs")];

fn rows() -> Vec<Row> {
    use Caller::{Anonymous, Key, Roles};
    use Fresh::{
        AccessGroup, Attribute, Comment, Content, Device, Feedback, Inactive, Invite, Job, Member,
        Nothing, Pairing, Pending, PermissionGroup, PermissionMembers, Playlist, PlaylistComment,
        Run, Schedule, Share, ShopKey, Signup, Site, Template, TemplateComment, User, Welcome,
    };
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
        // Counts only, like /healthz; see hub/src/metrics.
        row(
            Method::GET,
            "/metrics",
            "/metrics",
            None,
            Nothing,
            Anonymous(200),
        ),
        // A clustered broker's hooks (S7, O3): its token only; a user's
        // token, however strong the role, is not the broker's.
        row(
            Method::POST,
            "/api/v1/broker/authenticate",
            "/api/v1/broker/authenticate",
            Some(
                json!({"username": "{user_name}", "password": PASSWORD, "clientid": "{user_name}"}),
            ),
            Nothing,
            Key(BROKER_HOOK_TOKEN, 200),
        ),
        row(
            Method::POST,
            "/api/v1/broker/authenticate",
            "/api/v1/broker/authenticate",
            Some(
                json!({"username": "{user_name}", "password": PASSWORD, "clientid": "{user_name}"}),
            ),
            Nothing,
            Key("{admin_token}", 401),
        ),
        row(
            Method::POST,
            "/api/v1/broker/authenticate",
            "/api/v1/broker/authenticate",
            Some(
                json!({"username": "{user_name}", "password": PASSWORD, "clientid": "{user_name}"}),
            ),
            Nothing,
            Key("not-the-broker-token", 401),
        ),
        row(
            Method::POST,
            "/api/v1/broker/authenticate",
            "/api/v1/broker/authenticate",
            Some(
                json!({"username": "{user_name}", "password": PASSWORD, "clientid": "{user_name}"}),
            ),
            Nothing,
            Anonymous(401),
        ),
        row(
            Method::POST,
            "/api/v1/broker/authenticate",
            "/api/v1/broker/authenticate",
            Some(
                json!({"username": "{user_name}", "password": PASSWORD, "clientid": "{user_name}"}),
            ),
            Nothing,
            Roles {
                own: [401; 5],
                other: [401; 5],
            },
        ),
        row(
            Method::POST,
            "/api/v1/broker/authorize",
            "/api/v1/broker/authorize",
            Some(
                json!({"username": "{user_name}", "clientid": "{user_name}", "action": "subscribe", "topic": "signet/v1/trust"}),
            ),
            Nothing,
            Key(BROKER_HOOK_TOKEN, 200),
        ),
        row(
            Method::POST,
            "/api/v1/broker/authorize",
            "/api/v1/broker/authorize",
            Some(
                json!({"username": "{user_name}", "clientid": "{user_name}", "action": "subscribe", "topic": "signet/v1/trust"}),
            ),
            Nothing,
            Key("{admin_token}", 401),
        ),
        row(
            Method::POST,
            "/api/v1/broker/authorize",
            "/api/v1/broker/authorize",
            Some(
                json!({"username": "{user_name}", "clientid": "{user_name}", "action": "subscribe", "topic": "signet/v1/trust"}),
            ),
            Nothing,
            Key("not-the-broker-token", 401),
        ),
        row(
            Method::POST,
            "/api/v1/broker/authorize",
            "/api/v1/broker/authorize",
            Some(
                json!({"username": "{user_name}", "clientid": "{user_name}", "action": "subscribe", "topic": "signet/v1/trust"}),
            ),
            Nothing,
            Anonymous(401),
        ),
        row(
            Method::POST,
            "/api/v1/broker/authorize",
            "/api/v1/broker/authorize",
            Some(
                json!({"username": "{user_name}", "clientid": "{user_name}", "action": "subscribe", "topic": "signet/v1/trust"}),
            ),
            Nothing,
            Roles {
                own: [401; 5],
                other: [401; 5],
            },
        ),
        row(
            Method::GET,
            "/api/v1/openapi.json",
            "/api/v1/openapi.json",
            None,
            Nothing,
            Anonymous(200),
        ),
        // The interactive API docs (Swagger UI, self-hosted): public like
        // the document they show; served beside the API, not described in it.
        row(
            Method::GET,
            "/api/docs",
            "/api/docs",
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
        // One's own sessions (C2, S8): every role lists them; a session id
        // that is not one's own is 404.
        row(
            Method::GET,
            "/api/v1/me/sessions",
            "/api/v1/me/sessions",
            None,
            Nothing,
            Roles {
                own: [200; 5],
                other: [200; 5],
            },
        ),
        row(
            Method::DELETE,
            "/api/v1/me/sessions/{id}",
            "/api/v1/me/sessions/0123456789abcdef",
            None,
            Nothing,
            Roles {
                own: [404; 5],
                other: [404; 5],
            },
        ),
        // A set-password mail (S8, M5): Manager+ over users they see; below
        // Manager the role is checked first.
        row(
            Method::POST,
            "/api/v1/users/{id}/password-reset",
            "/api/v1/users/{user}/password-reset",
            None,
            Nothing,
            Roles {
                own: [403, 403, 403, 204, 204],
                other: [403, 403, 403, 404, 404],
            },
        ),
        // The permission catalogue (P7): every logged-in user.
        row(
            Method::GET,
            "/api/v1/permissions",
            "/api/v1/permissions",
            None,
            Nothing,
            Roles {
                own: [200; 5],
                other: [200; 5],
            },
        ),
        // Alert thresholds (U4): every role reads; Manager+ sets them at a
        // node of their domain.
        row(
            Method::GET,
            "/api/v1/alert-settings",
            "/api/v1/alert-settings",
            None,
            Nothing,
            Roles {
                own: [200; 5],
                other: [200; 5],
            },
        ),
        row(
            Method::PUT,
            "/api/v1/alert-settings/{node}",
            "/api/v1/alert-settings/{site}",
            Some(json!({"offline_secs": 600})),
            Nothing,
            Roles {
                own: [403, 403, 403, 200, 200],
                other: [403, 403, 403, 404, 404],
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
        // Content (T2, T4, S7): Contributor+ uploads and deletes inside its
        // domain; everyone reads; another tenant's item or node is 404. The
        // upload body is raw bytes (a GIF header), not a JSON request.
        row(
            Method::GET,
            "/api/v1/content",
            "/api/v1/content",
            None,
            Nothing,
            Roles {
                own: [200; 5],
                other: [200; 5],
            },
        ),
        row(
            Method::POST,
            "/api/v1/content",
            "/api/v1/content?node={node}&name={unique}",
            Some(Value::String("GIF {unique}".into())),
            Nothing,
            Roles {
                own: [403, 201, 201, 201, 201],
                other: [403, 404, 404, 404, 404],
            },
        ),
        row(
            Method::GET,
            "/api/v1/content/{id}",
            "/api/v1/content/{content}",
            None,
            Nothing,
            Roles {
                own: [200; 5],
                other: NO,
            },
        ),
        // Thumbnails (C5): as reading the item (the fixture's GIF has one).
        row(
            Method::GET,
            "/api/v1/content/{id}/thumbnail",
            "/api/v1/content/{content}/thumbnail",
            None,
            Nothing,
            Roles {
                own: [200; 5],
                other: NO,
            },
        ),
        // Download (M3, P5, M2): the fixture's items allow downloads; a
        // Viewer does not hold `download` (P1).
        row(
            Method::GET,
            "/api/v1/content/{id}/download",
            "/api/v1/content/{content}/download",
            None,
            Nothing,
            Roles {
                own: [403, 200, 200, 200, 200],
                other: NO,
            },
        ),
        // Process media (M3, P5): Moderator+ hold `process_media` (P2); the
        // fixture's item is a GIF, so they get 400 `not_video`; its jobs are
        // read by whoever views the item.
        row(
            Method::POST,
            "/api/v1/content/{id}/process",
            "/api/v1/content/{content}/process",
            None,
            Nothing,
            Roles {
                own: [403, 403, 400, 400, 400],
                other: NO,
            },
        ),
        row(
            Method::GET,
            "/api/v1/content/{id}/renditions",
            "/api/v1/content/{content}/renditions",
            None,
            Nothing,
            Roles {
                own: [200; 5],
                other: NO,
            },
        ),
        // Comments (M4, P7): every role views; Contributor+ add; nobody
        // edits another's comment (the fresh one is the admin's); Moderator+
        // delete others' (comment.delete_others).
        row(
            Method::GET,
            "/api/v1/content/{id}/comments",
            "/api/v1/content/{content}/comments",
            None,
            Nothing,
            Roles {
                own: [200; 5],
                other: NO,
            },
        ),
        row(
            Method::POST,
            "/api/v1/content/{id}/comments",
            "/api/v1/content/{content}/comments",
            Some(json!({"body": "{unique}"})),
            Nothing,
            Roles {
                own: [403, 201, 201, 201, 201],
                other: NO,
            },
        ),
        row(
            Method::PATCH,
            "/api/v1/content/{id}/comments/{comment}",
            "/api/v1/content/{content}/comments/{comment}",
            Some(json!({"body": "{unique}"})),
            Comment,
            Roles {
                own: [403; 5],
                other: NO,
            },
        ),
        row(
            Method::DELETE,
            "/api/v1/content/{id}/comments/{comment}",
            "/api/v1/content/{content}/comments/{comment}",
            None,
            Comment,
            Roles {
                own: [403, 403, 204, 204, 204],
                other: NO,
            },
        ),
        row(
            Method::PUT,
            "/api/v1/content/{id}",
            "/api/v1/content/{content}",
            Some(Value::String("GIF {unique}".into())),
            Content,
            Roles {
                own: [403, 200, 200, 200, 200],
                other: [403, 404, 404, 404, 404],
            },
        ),
        row(
            Method::PATCH,
            "/api/v1/content/{id}",
            "/api/v1/content/{content}",
            Some(json!({"name": "{unique}"})),
            Content,
            Roles {
                own: [403, 200, 200, 200, 200],
                other: [403, 404, 404, 404, 404],
            },
        ),
        row(
            Method::DELETE,
            "/api/v1/content/{id}",
            "/api/v1/content/{content}",
            None,
            Content,
            Roles {
                own: [403, 204, 204, 204, 204],
                other: [403, 404, 404, 404, 404],
            },
        ),
        // Copy-down (A2): Contributor+ copy a restricted node's master into a
        // node below it; another tenant's master is 404.
        row(
            Method::POST,
            "/api/v1/content/{id}/copy",
            "/api/v1/content/{master}/copy",
            Some(json!({"node": "{copy_site}"})),
            Nothing,
            Roles {
                own: [403, 201, 201, 201, 201],
                other: [403, 404, 404, 404, 404],
            },
        ),
        // Approval (A5, A6): Contributor+ request; approve_content (Moderator
        // and above by default) approves and rejects.
        row(
            Method::POST,
            "/api/v1/content/{id}/request-approval",
            "/api/v1/content/{content}/request-approval",
            None,
            Inactive,
            Roles {
                own: [403, 200, 200, 200, 200],
                other: [403, 404, 404, 404, 404],
            },
        ),
        row(
            Method::POST,
            "/api/v1/content/{id}/approve",
            "/api/v1/content/{content}/approve",
            Some(json!({})),
            Pending,
            Roles {
                own: [403, 403, 200, 200, 200],
                other: NO,
            },
        ),
        row(
            Method::POST,
            "/api/v1/content/{id}/reject",
            "/api/v1/content/{content}/reject",
            Some(json!({"reason": "not yet"})),
            Pending,
            Roles {
                own: [403, 403, 200, 200, 200],
                other: NO,
            },
        ),
        // Media actions (M3, P5, M2, M1): the fixture's items allow sharing
        // and rating. A Viewer holds rate, favorite and feedback; share from
        // Contributor; update_custom_attributes from Moderator (P1, P2).
        row(
            Method::GET,
            "/api/v1/content/{id}/actions",
            "/api/v1/content/{content}/actions",
            None,
            Nothing,
            Roles {
                own: [200; 5],
                other: NO,
            },
        ),
        row(
            Method::POST,
            "/api/v1/content/{id}/share",
            "/api/v1/content/{content}/share",
            Some(json!({"expires_in_secs": 600})),
            Nothing,
            Roles {
                own: [403, 201, 201, 201, 201],
                other: NO,
            },
        ),
        // The item's live links: each caller lists those it may revoke
        // (all for Moderator+, else its own: none here).
        row(
            Method::GET,
            "/api/v1/content/{id}/shares",
            "/api/v1/content/{content}/shares",
            None,
            Nothing,
            Roles {
                own: [200; 5],
                other: NO,
            },
        ),
        // Revoking the root admin's link: Moderator+ whose domain holds the
        // item's node (P2); below, not one's own (403).
        row(
            Method::DELETE,
            "/api/v1/shares/{share}",
            "/api/v1/shares/{share}",
            None,
            Share,
            Roles {
                own: [403, 403, 204, 204, 204],
                other: NO,
            },
        ),
        // The approval queue (A6): by approve_content; names no object.
        row(
            Method::GET,
            "/api/v1/approvals",
            "/api/v1/approvals",
            None,
            Nothing,
            Roles {
                own: [200; 5],
                other: [200; 5],
            },
        ),
        // The link itself plays without a login (M3).
        row(
            Method::GET,
            "/api/v1/shared/{token}",
            "/api/v1/shared/{share_token}",
            None,
            Share,
            Anonymous(200),
        ),
        row(
            Method::PUT,
            "/api/v1/content/{id}/rating",
            "/api/v1/content/{content}/rating",
            Some(json!({"value": "like"})),
            Nothing,
            Roles {
                own: [200; 5],
                other: NO,
            },
        ),
        row(
            Method::DELETE,
            "/api/v1/content/{id}/rating",
            "/api/v1/content/{content}/rating",
            None,
            Nothing,
            Roles {
                own: [200; 5],
                other: NO,
            },
        ),
        row(
            Method::PUT,
            "/api/v1/content/{id}/favorite",
            "/api/v1/content/{content}/favorite",
            None,
            Nothing,
            Roles {
                own: [200; 5],
                other: NO,
            },
        ),
        row(
            Method::DELETE,
            "/api/v1/content/{id}/favorite",
            "/api/v1/content/{content}/favorite",
            None,
            Nothing,
            Roles {
                own: [200; 5],
                other: NO,
            },
        ),
        row(
            Method::GET,
            "/api/v1/me/favorites",
            "/api/v1/me/favorites",
            None,
            Nothing,
            Roles {
                own: [200; 5],
                other: [200; 5],
            },
        ),
        row(
            Method::GET,
            "/api/v1/me/favorites/playlists",
            "/api/v1/me/favorites/playlists",
            None,
            Nothing,
            Roles {
                own: [200; 5],
                other: [200; 5],
            },
        ),
        row(
            Method::POST,
            "/api/v1/content/{id}/feedback",
            "/api/v1/content/{content}/feedback",
            Some(json!({"reason": "question", "comment": "why?"})),
            Content,
            Roles {
                own: [201; 5],
                other: NO,
            },
        ),
        // The moderators' queue: Moderator and above, their domain only.
        row(
            Method::GET,
            "/api/v1/feedback",
            "/api/v1/feedback",
            None,
            Nothing,
            Roles {
                own: [403, 403, 200, 200, 200],
                other: [403, 403, 200, 200, 200],
            },
        ),
        row(
            Method::POST,
            "/api/v1/feedback/{id}/resolve",
            "/api/v1/feedback/{feedback}/resolve",
            Some(json!({"note": "done"})),
            Feedback,
            Roles {
                own: [403, 403, 200, 200, 200],
                other: [403, 403, 404, 404, 404],
            },
        ),
        // Custom attributes: defined by Manager+ per node, read by anyone
        // who sees the node or the item.
        row(
            Method::GET,
            "/api/v1/nodes/{id}/attributes",
            "/api/v1/nodes/{node}/attributes",
            None,
            Nothing,
            Roles {
                own: [200; 5],
                other: NO,
            },
        ),
        row(
            Method::PUT,
            "/api/v1/nodes/{id}/attributes/{key}",
            "/api/v1/nodes/{node}/attributes/{unique}",
            Some(json!({"label": "Size", "type": "number"})),
            Nothing,
            Roles {
                own: [403, 403, 403, 201, 201],
                other: [403, 403, 403, 404, 404],
            },
        ),
        row(
            Method::DELETE,
            "/api/v1/nodes/{id}/attributes/{key}",
            "/api/v1/nodes/{node}/attributes/{attribute}",
            None,
            Attribute,
            Roles {
                own: [403, 403, 403, 204, 204],
                other: [403, 403, 403, 404, 404],
            },
        ),
        row(
            Method::GET,
            "/api/v1/content/{id}/attributes",
            "/api/v1/content/{content}/attributes",
            None,
            Nothing,
            Roles {
                own: [200; 5],
                other: NO,
            },
        ),
        row(
            Method::PATCH,
            "/api/v1/content/{id}/attributes",
            "/api/v1/content/{content}/attributes",
            Some(json!({"values": {}})),
            Nothing,
            Roles {
                own: [403, 403, 200, 200, 200],
                other: NO,
            },
        ),
        // Templates (D6, A1–A6): as content, plus saves.
        row(
            Method::GET,
            "/api/v1/templates",
            "/api/v1/templates",
            None,
            Nothing,
            Roles {
                own: [200; 5],
                other: [200; 5],
            },
        ),
        row(
            Method::POST,
            "/api/v1/templates",
            "/api/v1/templates",
            Some(json!({"node": "{node}", "name": "{unique}", "template": "{layout}"})),
            Nothing,
            Roles {
                own: [403, 201, 201, 201, 201],
                other: [403, 404, 404, 404, 404],
            },
        ),
        row(
            Method::GET,
            "/api/v1/templates/{id}",
            "/api/v1/templates/{template}",
            None,
            Nothing,
            Roles {
                own: [200; 5],
                other: NO,
            },
        ),
        row(
            Method::PUT,
            "/api/v1/templates/{id}",
            "/api/v1/templates/{template}",
            Some(json!({"name": "{unique}", "template": "{layout}"})),
            Template,
            Roles {
                own: [403, 200, 200, 200, 200],
                other: [403, 404, 404, 404, 404],
            },
        ),
        row(
            Method::DELETE,
            "/api/v1/templates/{id}",
            "/api/v1/templates/{template}",
            None,
            Template,
            Roles {
                own: [403, 204, 204, 204, 204],
                other: [403, 404, 404, 404, 404],
            },
        ),
        row(
            Method::POST,
            "/api/v1/templates/{id}/copy",
            "/api/v1/templates/{master_template}/copy",
            Some(json!({"node": "{copy_site}"})),
            Nothing,
            Roles {
                own: [403, 201, 201, 201, 201],
                other: [403, 404, 404, 404, 404],
            },
        ),
        row(
            Method::POST,
            "/api/v1/templates/{id}/request-approval",
            "/api/v1/templates/{template}/request-approval",
            None,
            Inactive,
            Roles {
                own: [403, 200, 200, 200, 200],
                other: [403, 404, 404, 404, 404],
            },
        ),
        row(
            Method::POST,
            "/api/v1/templates/{id}/approve",
            "/api/v1/templates/{template}/approve",
            Some(json!({})),
            Pending,
            Roles {
                own: [403, 403, 200, 200, 200],
                other: NO,
            },
        ),
        row(
            Method::POST,
            "/api/v1/templates/{id}/reject",
            "/api/v1/templates/{template}/reject",
            Some(json!({"reason": "not yet"})),
            Pending,
            Roles {
                own: [403, 403, 200, 200, 200],
                other: NO,
            },
        ),
        // Without device credentials (HTTP Basic, tests/devices.rs): refused.
        row(
            Method::GET,
            "/api/v1/device/content/{sha256}",
            "/api/v1/device/content/{content_sha}",
            None,
            Nothing,
            Anonymous(401),
        ),
        row(
            Method::POST,
            "/api/v1/device/events",
            "/api/v1/device/events",
            Some(json!({"events": []})),
            Nothing,
            Anonymous(401),
        ),
        row(
            Method::GET,
            "/api/v1/device/documents",
            "/api/v1/device/documents",
            None,
            Nothing,
            Anonymous(401),
        ),
        row(
            Method::POST,
            "/api/v1/device/screenshot",
            "/api/v1/device/screenshot",
            None,
            Nothing,
            Anonymous(401),
        ),
        // Fleet status, alerts and usage reports (U3, U4, L8): every role
        // reads its own tenant's; another tenant's device or group is 404.
        row(
            Method::GET,
            "/api/v1/fleet",
            "/api/v1/fleet",
            None,
            Nothing,
            Roles {
                own: [200; 5],
                other: [200; 5],
            },
        ),
        row(
            Method::GET,
            "/api/v1/fleet/{device}",
            "/api/v1/fleet/screen-{site}",
            None,
            Nothing,
            Roles {
                own: [200; 5],
                other: NO,
            },
        ),
        row(
            Method::GET,
            "/api/v1/fleet/summary",
            "/api/v1/fleet/summary",
            None,
            Nothing,
            Roles {
                own: [200; 5],
                other: [200; 5],
            },
        ),
        // The live stream (C3): every role, its own domain's devices only
        // (the first event, the domain's totals, is the answer checked).
        row(
            Method::GET,
            "/api/v1/fleet/stream",
            "/api/v1/fleet/stream",
            None,
            Nothing,
            Roles {
                own: [200; 5],
                other: [200; 5],
            },
        ),
        row(
            Method::GET,
            "/api/v1/fleet/alerts",
            "/api/v1/fleet/alerts",
            None,
            Nothing,
            Roles {
                own: [200; 5],
                other: [200; 5],
            },
        ),
        row(
            Method::GET,
            "/api/v1/reports/usage",
            "/api/v1/reports/usage",
            None,
            Nothing,
            Roles {
                own: [200; 5],
                other: [200; 5],
            },
        ),
        row(
            Method::GET,
            "/api/v1/reports/usage/access-groups/{id}",
            "/api/v1/reports/usage/access-groups/{agroup}",
            None,
            Nothing,
            Roles {
                own: [200; 5],
                other: NO,
            },
        ),
        // Playlists and schedules (D5, T2, T4): Contributor+ writes inside
        // its domain; everyone reads; another tenant's are 404.
        row(
            Method::GET,
            "/api/v1/playlists",
            "/api/v1/playlists",
            None,
            Nothing,
            Roles {
                own: [200; 5],
                other: [200; 5],
            },
        ),
        row(
            Method::POST,
            "/api/v1/playlists",
            "/api/v1/playlists",
            Some(json!({"node": "{node}", "name": "{unique}",
                "items": [{"item": "{content}", "duration_ms": 1000}]})),
            Nothing,
            Roles {
                own: [403, 201, 201, 201, 201],
                other: [403, 404, 404, 404, 404],
            },
        ),
        row(
            Method::GET,
            "/api/v1/playlists/{id}",
            "/api/v1/playlists/{playlist}",
            None,
            Nothing,
            Roles {
                own: [200; 5],
                other: NO,
            },
        ),
        row(
            Method::PATCH,
            "/api/v1/playlists/{id}",
            "/api/v1/playlists/{playlist}",
            Some(json!({"name": "{unique}"})),
            Nothing,
            Roles {
                own: [403, 200, 200, 200, 200],
                other: [403, 404, 404, 404, 404],
            },
        ),
        row(
            Method::DELETE,
            "/api/v1/playlists/{id}",
            "/api/v1/playlists/{playlist}",
            None,
            Playlist,
            Roles {
                own: [403, 204, 204, 204, 204],
                other: [403, 404, 404, 404, 404],
            },
        ),
        // Comments, rating and favorites on a playlist (M3, M4, P7): as on
        // content items; another tenant's playlist is not found for all.
        row(
            Method::GET,
            "/api/v1/playlists/{id}/actions",
            "/api/v1/playlists/{playlist}/actions",
            None,
            Nothing,
            Roles {
                own: [200; 5],
                other: NO,
            },
        ),
        row(
            Method::GET,
            "/api/v1/playlists/{id}/comments",
            "/api/v1/playlists/{playlist}/comments",
            None,
            Nothing,
            Roles {
                own: [200; 5],
                other: NO,
            },
        ),
        row(
            Method::POST,
            "/api/v1/playlists/{id}/comments",
            "/api/v1/playlists/{playlist}/comments",
            Some(json!({"body": "{unique}"})),
            Nothing,
            Roles {
                own: [403, 201, 201, 201, 201],
                other: NO,
            },
        ),
        row(
            Method::PATCH,
            "/api/v1/playlists/{id}/comments/{comment}",
            "/api/v1/playlists/{playlist}/comments/{comment}",
            Some(json!({"body": "{unique}"})),
            PlaylistComment,
            Roles {
                own: [403; 5],
                other: NO,
            },
        ),
        row(
            Method::DELETE,
            "/api/v1/playlists/{id}/comments/{comment}",
            "/api/v1/playlists/{playlist}/comments/{comment}",
            None,
            PlaylistComment,
            Roles {
                own: [403, 403, 204, 204, 204],
                other: NO,
            },
        ),
        row(
            Method::PUT,
            "/api/v1/playlists/{id}/rating",
            "/api/v1/playlists/{playlist}/rating",
            Some(json!({"value": "dislike"})),
            Nothing,
            Roles {
                own: [200; 5],
                other: NO,
            },
        ),
        row(
            Method::DELETE,
            "/api/v1/playlists/{id}/rating",
            "/api/v1/playlists/{playlist}/rating",
            None,
            Nothing,
            Roles {
                own: [200; 5],
                other: NO,
            },
        ),
        row(
            Method::PUT,
            "/api/v1/playlists/{id}/favorite",
            "/api/v1/playlists/{playlist}/favorite",
            None,
            Nothing,
            Roles {
                own: [200; 5],
                other: NO,
            },
        ),
        // The same on a template, by its template path (M3, M4, P7).
        row(
            Method::GET,
            "/api/v1/templates/{id}/actions",
            "/api/v1/templates/{template}/actions",
            None,
            Nothing,
            Roles {
                own: [200; 5],
                other: NO,
            },
        ),
        row(
            Method::GET,
            "/api/v1/templates/{id}/comments",
            "/api/v1/templates/{template}/comments",
            None,
            Nothing,
            Roles {
                own: [200; 5],
                other: NO,
            },
        ),
        row(
            Method::POST,
            "/api/v1/templates/{id}/comments",
            "/api/v1/templates/{template}/comments",
            Some(json!({"body": "{unique}"})),
            Nothing,
            Roles {
                own: [403, 201, 201, 201, 201],
                other: NO,
            },
        ),
        row(
            Method::PATCH,
            "/api/v1/templates/{id}/comments/{comment}",
            "/api/v1/templates/{template}/comments/{comment}",
            Some(json!({"body": "{unique}"})),
            TemplateComment,
            Roles {
                own: [403; 5],
                other: NO,
            },
        ),
        row(
            Method::DELETE,
            "/api/v1/templates/{id}/comments/{comment}",
            "/api/v1/templates/{template}/comments/{comment}",
            None,
            TemplateComment,
            Roles {
                own: [403, 403, 204, 204, 204],
                other: NO,
            },
        ),
        row(
            Method::PUT,
            "/api/v1/templates/{id}/rating",
            "/api/v1/templates/{template}/rating",
            Some(json!({"value": "like"})),
            Nothing,
            Roles {
                own: [200; 5],
                other: NO,
            },
        ),
        row(
            Method::DELETE,
            "/api/v1/templates/{id}/rating",
            "/api/v1/templates/{template}/rating",
            None,
            Nothing,
            Roles {
                own: [200; 5],
                other: NO,
            },
        ),
        row(
            Method::PUT,
            "/api/v1/templates/{id}/favorite",
            "/api/v1/templates/{template}/favorite",
            None,
            Nothing,
            Roles {
                own: [200; 5],
                other: NO,
            },
        ),
        row(
            Method::DELETE,
            "/api/v1/templates/{id}/favorite",
            "/api/v1/templates/{template}/favorite",
            None,
            Nothing,
            Roles {
                own: [200; 5],
                other: NO,
            },
        ),
        row(
            Method::DELETE,
            "/api/v1/playlists/{id}/favorite",
            "/api/v1/playlists/{playlist}/favorite",
            None,
            Nothing,
            Roles {
                own: [200; 5],
                other: NO,
            },
        ),
        // Custom attribute values on a playlist and on a template by its
        // template path (M3, P7): as on content items.
        row(
            Method::GET,
            "/api/v1/playlists/{id}/attributes",
            "/api/v1/playlists/{playlist}/attributes",
            None,
            Nothing,
            Roles {
                own: [200; 5],
                other: NO,
            },
        ),
        row(
            Method::PATCH,
            "/api/v1/playlists/{id}/attributes",
            "/api/v1/playlists/{playlist}/attributes",
            Some(json!({"values": {}})),
            Nothing,
            Roles {
                own: [403, 403, 200, 200, 200],
                other: NO,
            },
        ),
        row(
            Method::GET,
            "/api/v1/templates/{id}/attributes",
            "/api/v1/templates/{template}/attributes",
            None,
            Nothing,
            Roles {
                own: [200; 5],
                other: NO,
            },
        ),
        row(
            Method::PATCH,
            "/api/v1/templates/{id}/attributes",
            "/api/v1/templates/{template}/attributes",
            Some(json!({"values": {}})),
            Nothing,
            Roles {
                own: [403, 403, 200, 200, 200],
                other: NO,
            },
        ),
        row(
            Method::GET,
            "/api/v1/schedules",
            "/api/v1/schedules",
            None,
            Nothing,
            Roles {
                own: [200; 5],
                other: [200; 5],
            },
        ),
        row(
            Method::POST,
            "/api/v1/schedules",
            "/api/v1/schedules",
            Some(json!({"target": {"kind": "node", "id": "{site}"},
                "entries": [{"id": "all-day", "playlist": "{playlist}", "priority": 0}]})),
            Site,
            Roles {
                own: [403, 201, 201, 201, 201],
                other: [403, 404, 404, 404, 404],
            },
        ),
        row(
            Method::GET,
            "/api/v1/schedules/{id}",
            "/api/v1/schedules/{schedule}",
            None,
            Nothing,
            Roles {
                own: [200; 5],
                other: NO,
            },
        ),
        row(
            Method::PUT,
            "/api/v1/schedules/{id}",
            "/api/v1/schedules/{schedule}",
            Some(json!({"entries": [{"id": "{unique}", "playlist": "{playlist}", "priority": 1}]})),
            Nothing,
            Roles {
                own: [403, 200, 200, 200, 200],
                other: [403, 404, 404, 404, 404],
            },
        ),
        row(
            Method::DELETE,
            "/api/v1/schedules/{id}",
            "/api/v1/schedules/{schedule}",
            None,
            Schedule,
            Roles {
                own: [403, 204, 204, 204, 204],
                other: [403, 404, 404, 404, 404],
            },
        ),
        row(
            Method::GET,
            "/api/v1/schedules/{id}/preview",
            "/api/v1/schedules/{schedule}/preview?at=2026-01-15T09:00:00Z&tz=Europe/Berlin",
            None,
            Nothing,
            Roles {
                own: [200; 5],
                other: NO,
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
        // Permission groups (P2, T3, T4): Manager+ on every route, reads
        // included (403 below, before visibility); another tenant's group,
        // member user or member group is 404.
        row(
            Method::GET,
            "/api/v1/permission-groups",
            "/api/v1/permission-groups",
            None,
            Nothing,
            Roles {
                own: [403, 403, 403, 200, 200],
                other: [403, 403, 403, 200, 200],
            },
        ),
        row(
            Method::POST,
            "/api/v1/permission-groups",
            "/api/v1/permission-groups",
            Some(json!({"node": "{node}", "name": "{unique}", "permissions": []})),
            Nothing,
            Roles {
                own: [403, 403, 403, 201, 201],
                other: [403, 403, 403, 404, 404],
            },
        ),
        row(
            Method::GET,
            "/api/v1/permission-groups/{id}",
            "/api/v1/permission-groups/{pgroup}",
            None,
            Nothing,
            Roles {
                own: [403, 403, 403, 200, 200],
                other: [403, 403, 403, 404, 404],
            },
        ),
        row(
            Method::PATCH,
            "/api/v1/permission-groups/{id}",
            "/api/v1/permission-groups/{pgroup}",
            Some(json!({"description": "changed by the matrix"})),
            Nothing,
            Roles {
                own: [403, 403, 403, 200, 200],
                other: [403, 403, 403, 404, 404],
            },
        ),
        row(
            Method::DELETE,
            "/api/v1/permission-groups/{id}",
            "/api/v1/permission-groups/{pgroup}",
            None,
            PermissionGroup,
            Roles {
                own: [403, 403, 403, 204, 204],
                other: [403, 403, 403, 404, 404],
            },
        ),
        row(
            Method::GET,
            "/api/v1/permission-groups/{id}/members",
            "/api/v1/permission-groups/{pgroup}/members",
            None,
            Nothing,
            Roles {
                own: [403, 403, 403, 200, 200],
                other: [403, 403, 403, 404, 404],
            },
        ),
        row(
            Method::POST,
            "/api/v1/permission-groups/{id}/members/users",
            "/api/v1/permission-groups/{pgroup}/members/users",
            Some(json!({"user": "{user}"})),
            Nothing,
            Roles {
                own: [403, 403, 403, 204, 204],
                other: [403, 403, 403, 404, 404],
            },
        ),
        // No cross-tenant membership: the other tenant's user into one's own group.
        row(
            Method::POST,
            "/api/v1/permission-groups/{id}/members/users",
            "/api/v1/permission-groups/{pgroup}/members/users",
            Some(json!({"user": "{other_user}"})),
            Nothing,
            Roles {
                own: [403, 403, 403, 404, 404],
                other: [403, 403, 403, 404, 404],
            },
        ),
        row(
            Method::DELETE,
            "/api/v1/permission-groups/{id}/members/users/{user}",
            "/api/v1/permission-groups/{pgroup}/members/users/{user}",
            None,
            PermissionMembers,
            Roles {
                own: [403, 403, 403, 204, 204],
                other: [403, 403, 403, 404, 404],
            },
        ),
        row(
            Method::POST,
            "/api/v1/permission-groups/{id}/members/groups",
            "/api/v1/permission-groups/{pgroup}/members/groups",
            Some(json!({"group": "{pgroup2}"})),
            Nothing,
            Roles {
                own: [403, 403, 403, 204, 204],
                other: [403, 403, 403, 404, 404],
            },
        ),
        // No cross-tenant membership: the other tenant's group into one's own.
        row(
            Method::POST,
            "/api/v1/permission-groups/{id}/members/groups",
            "/api/v1/permission-groups/{pgroup}/members/groups",
            Some(json!({"group": "{other_pgroup}"})),
            Nothing,
            Roles {
                own: [403, 403, 403, 404, 404],
                other: [403, 403, 403, 404, 404],
            },
        ),
        row(
            Method::DELETE,
            "/api/v1/permission-groups/{id}/members/groups/{group}",
            "/api/v1/permission-groups/{pgroup}/members/groups/{pgroup2}",
            None,
            PermissionMembers,
            Roles {
                own: [403, 403, 403, 204, 204],
                other: [403, 403, 403, 404, 404],
            },
        ),
        // Another user's effective permissions: Manager+ for users they see;
        // below Manager the user is not visible (404, as GET /users/{id}).
        row(
            Method::GET,
            "/api/v1/users/{id}/permissions",
            "/api/v1/users/{user}/permissions",
            None,
            Nothing,
            Roles {
                own: [404, 404, 404, 200, 200],
                other: NO,
            },
        ),
        // One's own effective permissions: every role.
        row(
            Method::GET,
            "/api/v1/users/{id}/permissions",
            "/api/v1/users/{me}/permissions",
            None,
            Nothing,
            Roles {
                own: [200; 5],
                other: [200; 5],
            },
        ),
        // Access groups (L1-L9, T2-T4): every role reads groups and items;
        // Manager+ lists members and invites and makes every change (403
        // below, before visibility); another tenant's group is 404.
        row(
            Method::GET,
            "/api/v1/access-groups",
            "/api/v1/access-groups",
            None,
            Nothing,
            Roles {
                own: [200; 5],
                other: [200; 5],
            },
        ),
        row(
            Method::POST,
            "/api/v1/access-groups",
            "/api/v1/access-groups",
            Some(json!({"node": "{node}", "name": "made by the matrix", "license": license()})),
            Nothing,
            Roles {
                own: [403, 403, 403, 201, 201],
                other: [403, 403, 403, 404, 404],
            },
        ),
        row(
            Method::GET,
            "/api/v1/access-groups/{id}",
            "/api/v1/access-groups/{agroup}",
            None,
            Nothing,
            Roles {
                own: [200; 5],
                other: NO,
            },
        ),
        row(
            Method::PATCH,
            "/api/v1/access-groups/{id}",
            "/api/v1/access-groups/{agroup}",
            Some(json!({"name": "renamed by the matrix"})),
            Nothing,
            Roles {
                own: [403, 403, 403, 200, 200],
                other: [403, 403, 403, 404, 404],
            },
        ),
        row(
            Method::DELETE,
            "/api/v1/access-groups/{id}",
            "/api/v1/access-groups/{agroup}",
            None,
            AccessGroup,
            Roles {
                own: [403, 403, 403, 204, 204],
                other: [403, 403, 403, 404, 404],
            },
        ),
        row(
            Method::GET,
            "/api/v1/access-groups/{id}/members",
            "/api/v1/access-groups/{agroup}/members",
            None,
            Nothing,
            Roles {
                own: [403, 403, 403, 200, 200],
                other: [403, 403, 403, 404, 404],
            },
        ),
        row(
            Method::POST,
            "/api/v1/access-groups/{id}/members",
            "/api/v1/access-groups/{agroup}/members",
            Some(json!({"member": {"type": "user", "user_id": "{user}"}})),
            User,
            Roles {
                own: [403, 403, 403, 201, 201],
                other: [403, 403, 403, 404, 404],
            },
        ),
        // No cross-tenant membership: the other tenant's user into one's own group.
        row(
            Method::POST,
            "/api/v1/access-groups/{id}/members",
            "/api/v1/access-groups/{agroup}/members",
            Some(json!({"member": {"type": "user", "user_id": "{other_user}"}})),
            Nothing,
            Roles {
                own: [403, 403, 403, 404, 404],
                other: [403, 403, 403, 404, 404],
            },
        ),
        row(
            Method::PATCH,
            "/api/v1/access-groups/{id}/members/{kind}/{member_id}",
            "/api/v1/access-groups/{agroup}/members/user/{member}",
            Some(json!({"display_name": "changed by the matrix"})),
            Member,
            Roles {
                own: [403, 403, 403, 200, 200],
                other: [403, 403, 403, 404, 404],
            },
        ),
        row(
            Method::DELETE,
            "/api/v1/access-groups/{id}/members/{kind}/{member_id}",
            "/api/v1/access-groups/{agroup}/members/user/{member}",
            None,
            Member,
            Roles {
                own: [403, 403, 403, 204, 204],
                other: [403, 403, 403, 404, 404],
            },
        ),
        row(
            Method::POST,
            "/api/v1/access-groups/{id}/members/import",
            "/api/v1/access-groups/{agroup}/members/import",
            Some(json!(
                "email,name\n{unique}@example.test,Imported by the matrix\n"
            )),
            Nothing,
            Roles {
                own: [403, 403, 403, 200, 200],
                other: [403, 403, 403, 404, 404],
            },
        ),
        // Bulk device members: removing a device that is no member changes nothing.
        row(
            Method::POST,
            "/api/v1/access-groups/{id}/members/devices",
            "/api/v1/access-groups/{agroup}/members/devices",
            Some(json!({"remove": ["d-matrix-{unique}"]})),
            Nothing,
            Roles {
                own: [403, 403, 403, 200, 200],
                other: [403, 403, 403, 404, 404],
            },
        ),
        row(
            Method::GET,
            "/api/v1/access-groups/{id}/items",
            "/api/v1/access-groups/{agroup}/items",
            None,
            Nothing,
            Roles {
                own: [200; 5],
                other: NO,
            },
        ),
        row(
            Method::PUT,
            "/api/v1/access-groups/{id}/items",
            "/api/v1/access-groups/{agroup}/items",
            Some(json!({"items": [{"id": "{content}", "categories": []}]})),
            Nothing,
            Roles {
                own: [403, 403, 403, 200, 200],
                other: [403, 403, 403, 404, 404],
            },
        ),
        row(
            Method::GET,
            "/api/v1/access-groups/{id}/invites",
            "/api/v1/access-groups/{agroup}/invites",
            None,
            Nothing,
            Roles {
                own: [403, 403, 403, 200, 200],
                other: [403, 403, 403, 404, 404],
            },
        ),
        row(
            Method::POST,
            "/api/v1/access-groups/{id}/invites",
            "/api/v1/access-groups/{agroup}/invites",
            Some(json!({"email": "{unique}@example.test"})),
            Nothing,
            Roles {
                own: [403, 403, 403, 201, 201],
                other: [403, 403, 403, 404, 404],
            },
        ),
        row(
            Method::DELETE,
            "/api/v1/access-groups/{id}/invites/{invite_id}",
            "/api/v1/access-groups/{agroup}/invites/{invite}",
            None,
            Invite,
            Roles {
                own: [403, 403, 403, 204, 204],
                other: [403, 403, 403, 404, 404],
            },
        ),
        // The other tenant's invite through one's own group.
        row(
            Method::DELETE,
            "/api/v1/access-groups/{id}/invites/{invite_id}",
            "/api/v1/access-groups/{agroup}/invites/{other_invite}",
            None,
            Nothing,
            Roles {
                own: [403, 403, 403, 404, 404],
                other: [403, 403, 403, 404, 404],
            },
        ),
        // Accepting an invite: the mailed token is the credential.
        row(
            Method::POST,
            "/api/v1/access-groups/invites/accept",
            "/api/v1/access-groups/invites/accept",
            Some(json!({"token": "{invite_token}", "password": PASSWORD})),
            Invite,
            Anonymous(200),
        ),
        row(
            Method::POST,
            "/api/v1/access-groups/invites/accept",
            "/api/v1/access-groups/invites/accept",
            Some(json!({"token": "not-an-invite-token", "password": PASSWORD})),
            Nothing,
            Anonymous(404),
        ),
        // A login is no substitute for the token.
        row(
            Method::POST,
            "/api/v1/access-groups/invites/accept",
            "/api/v1/access-groups/invites/accept",
            Some(json!({"token": "not-an-invite-token"})),
            Nothing,
            Key("{admin_token}", 404),
        ),
        // Setting a password with a welcome mail's token (M5): the token is
        // the credential, once; a login is no substitute for it.
        row(
            Method::POST,
            "/api/v1/password/set",
            "/api/v1/password/set",
            Some(json!({"token": "{password_token}", "password": PASSWORD})),
            Welcome,
            Anonymous(200),
        ),
        row(
            Method::POST,
            "/api/v1/password/set",
            "/api/v1/password/set",
            Some(json!({"token": "not-a-password-token", "password": PASSWORD})),
            Nothing,
            Anonymous(404),
        ),
        row(
            Method::POST,
            "/api/v1/password/set",
            "/api/v1/password/set",
            Some(json!({"token": "not-a-password-token", "password": PASSWORD})),
            Nothing,
            Key("{admin_token}", 404),
        ),
        // Self-signup: only groups that enable it, only from an allowed domain.
        row(
            Method::POST,
            "/api/v1/access-groups/{id}/signup",
            "/api/v1/access-groups/{agroup}/signup",
            Some(json!({"email": "{unique}@{signup_domain}", "password": PASSWORD})),
            Nothing,
            Anonymous(202),
        ),
        row(
            Method::POST,
            "/api/v1/access-groups/{id}/signup",
            "/api/v1/access-groups/{agroup}/signup",
            Some(json!({"email": "{unique}@elsewhere.test", "password": PASSWORD})),
            Nothing,
            Anonymous(403),
        ),
        // Tenant A's domain is not allowed by tenant B's group.
        row(
            Method::POST,
            "/api/v1/access-groups/{id}/signup",
            "/api/v1/access-groups/{other_agroup}/signup",
            Some(json!({"email": "{unique}@{signup_domain}", "password": PASSWORD})),
            Nothing,
            Anonymous(403),
        ),
        // A group without self-signup does not take one.
        row(
            Method::POST,
            "/api/v1/access-groups/{id}/signup",
            "/api/v1/access-groups/{agroup}/signup",
            Some(json!({"email": "{unique}@{signup_domain}", "password": PASSWORD})),
            AccessGroup,
            Anonymous(404),
        ),
        // Confirming a self-signup: the mailed token is the credential.
        row(
            Method::POST,
            "/api/v1/access-groups/signup/confirm",
            "/api/v1/access-groups/signup/confirm",
            Some(json!({"token": "{signup_token}"})),
            Signup,
            Anonymous(200),
        ),
        row(
            Method::POST,
            "/api/v1/access-groups/signup/confirm",
            "/api/v1/access-groups/signup/confirm",
            Some(json!({"token": "not-a-signup-token"})),
            Nothing,
            Anonymous(404),
        ),
        row(
            Method::POST,
            "/api/v1/access-groups/signup/confirm",
            "/api/v1/access-groups/signup/confirm",
            Some(json!({"token": "not-a-signup-token"})),
            Nothing,
            Key("{admin_token}", 404),
        ),
        row(
            Method::POST,
            "/api/v1/access-groups/{id}/shop-key",
            "/api/v1/access-groups/{agroup}/shop-key",
            None,
            Nothing,
            Roles {
                own: [403, 403, 403, 201, 201],
                other: [403, 403, 403, 404, 404],
            },
        ),
        row(
            Method::DELETE,
            "/api/v1/access-groups/{id}/shop-key",
            "/api/v1/access-groups/{agroup}/shop-key",
            None,
            ShopKey,
            Roles {
                own: [403, 403, 403, 204, 204],
                other: [403, 403, 403, 404, 404],
            },
        ),
        // The shop hook authenticates by the group's shop key (L9) and by
        // nothing else: no user token of any role, not the root admin's, not
        // a wrong key, not tenant A's key for tenant B's group.
        row(
            Method::POST,
            "/api/v1/access-groups/{id}/members/shop",
            "/api/v1/access-groups/{agroup}/members/shop",
            Some(json!({"order_id": "{unique}", "email": "{unique}@example.test"})),
            ShopKey,
            Key("{shop_key}", 201),
        ),
        row(
            Method::POST,
            "/api/v1/access-groups/{id}/members/shop",
            "/api/v1/access-groups/{agroup}/members/shop",
            Some(json!({"order_id": "{unique}", "email": "{unique}@example.test"})),
            ShopKey,
            Roles {
                own: [401; 5],
                other: [401; 5],
            },
        ),
        row(
            Method::POST,
            "/api/v1/access-groups/{id}/members/shop",
            "/api/v1/access-groups/{agroup}/members/shop",
            Some(json!({"order_id": "{unique}", "email": "{unique}@example.test"})),
            ShopKey,
            Key("{admin_token}", 401),
        ),
        row(
            Method::POST,
            "/api/v1/access-groups/{id}/members/shop",
            "/api/v1/access-groups/{agroup}/members/shop",
            Some(json!({"order_id": "{unique}", "email": "{unique}@example.test"})),
            ShopKey,
            Key("not-the-shop-key", 401),
        ),
        row(
            Method::POST,
            "/api/v1/access-groups/{id}/members/shop",
            "/api/v1/access-groups/{other_agroup}/members/shop",
            Some(json!({"order_id": "{unique}", "email": "{unique}@example.test"})),
            ShopKey,
            Key("{shop_key}", 401),
        ),
        row(
            Method::POST,
            "/api/v1/access-groups/{id}/members/shop",
            "/api/v1/access-groups/{agroup}/members/shop",
            Some(json!({"order_id": "{unique}", "email": "{unique}@example.test"})),
            ShopKey,
            Anonymous(401),
        ),
        // The shop key holds for its group only: it may not make another
        // tenant's account a member nor learn its id. Import refuses such an
        // address ("outside your domain"); the shop hook must too. Stricter
        // reading of an undocumented case: 409, as for a taken login name.
        // Last, so the membership it wrongly makes shows in no other cell.
        row(
            Method::POST,
            "/api/v1/access-groups/{id}/members/shop",
            "/api/v1/access-groups/{agroup}/members/shop",
            Some(json!({"order_id": "{unique}", "email": "{other_user_email}"})),
            ShopKey,
            Key("{shop_key}", 409),
        ),
        // Publishing (U5) needs the publish permission (P7: Moderator and
        // above by default), checked before visibility; another tenant's
        // scope or job is 404. Everyone reads their own tenant's record.
        row(
            Method::POST,
            "/api/v1/publish",
            "/api/v1/publish",
            Some(json!({"scope": {"kind": "node", "id": "{node}"}})),
            Nothing,
            Roles {
                own: [403, 403, 200, 200, 200],
                other: [403, 403, 404, 404, 404],
            },
        ),
        row(
            Method::GET,
            "/api/v1/publications",
            "/api/v1/publications",
            None,
            Nothing,
            Roles {
                own: [200; 5],
                other: [200; 5],
            },
        ),
        // One run with per-device progress: read by everyone in its tenant.
        row(
            Method::GET,
            "/api/v1/publications/{id}",
            "/api/v1/publications/{run}",
            None,
            Run,
            Roles {
                own: [200; 5],
                other: [404; 5],
            },
        ),
        row(
            Method::DELETE,
            "/api/v1/publications/{id}",
            "/api/v1/publications/{job}",
            None,
            Job,
            Roles {
                own: [403, 403, 200, 200, 200],
                other: [403, 403, 404, 404, 404],
            },
        ),
        // Devices (S7, T1, T4): agents pair without a login; pairing,
        // changing and commanding devices need manage_devices (P7: Manager
        // and above), checked before visibility; everyone reads the devices
        // inside their domain. Open codes are listed to root-level callers
        // only, so tenant callers get an empty list.
        row(
            Method::POST,
            "/api/v1/device/pairings",
            "/api/v1/device/pairings",
            Some(json!({"public_key": AGENT_KEY, "agent_version": "1.0", "os": "matrix"})),
            Nothing,
            Anonymous(201),
        ),
        row(
            Method::POST,
            "/api/v1/device/pairings",
            "/api/v1/device/pairings",
            Some(json!({"public_key": "not a key", "agent_version": "1.0", "os": "matrix"})),
            Nothing,
            Anonymous(400),
        ),
        row(
            Method::GET,
            "/api/v1/device/pairings/{ticket}",
            "/api/v1/device/pairings/{ticket}",
            None,
            Pairing,
            Anonymous(200),
        ),
        row(
            Method::GET,
            "/api/v1/device/pairings/{ticket}",
            "/api/v1/device/pairings/not-a-ticket",
            None,
            Nothing,
            Anonymous(404),
        ),
        row(
            Method::GET,
            "/api/v1/devices/pairings",
            "/api/v1/devices/pairings",
            None,
            Nothing,
            Roles {
                own: [403, 403, 403, 200, 200],
                other: [403, 403, 403, 200, 200],
            },
        ),
        row(
            Method::POST,
            "/api/v1/devices/pairings/{code}/approve",
            "/api/v1/devices/pairings/{code}/approve",
            Some(json!({"node": "{site}", "name": "matrix screen"})),
            Pairing,
            Roles {
                own: [403, 403, 403, 201, 201],
                other: [403, 403, 403, 404, 404],
            },
        ),
        row(
            Method::POST,
            "/api/v1/devices/pairings/{code}/reject",
            "/api/v1/devices/pairings/{code}/reject",
            None,
            Pairing,
            Roles {
                own: [403, 403, 403, 204, 204],
                other: [403, 403, 403, 404, 404],
            },
        ),
        row(
            Method::GET,
            "/api/v1/devices",
            "/api/v1/devices",
            None,
            Nothing,
            Roles {
                own: [200; 5],
                other: [200; 5],
            },
        ),
        row(
            Method::GET,
            "/api/v1/devices/{id}",
            "/api/v1/devices/{device}",
            None,
            Nothing,
            Roles {
                own: [200; 5],
                other: NO,
            },
        ),
        // No screenshot uploaded yet: 404 for every role (the upload and
        // a visible device's 200 are in tests/screenshots.rs).
        row(
            Method::GET,
            "/api/v1/devices/{id}/screenshot",
            "/api/v1/devices/{device}/screenshot",
            None,
            Nothing,
            Roles { own: NO, other: NO },
        ),
        row(
            Method::PATCH,
            "/api/v1/devices/{id}",
            "/api/v1/devices/{device}",
            Some(json!({"name": "{unique}"})),
            Nothing,
            Roles {
                own: [403, 403, 403, 200, 200],
                other: [403, 403, 403, 404, 404],
            },
        ),
        row(
            Method::DELETE,
            "/api/v1/devices/{id}",
            "/api/v1/devices/{device}",
            None,
            Device,
            Roles {
                own: [403, 403, 403, 204, 204],
                other: [403, 403, 403, 404, 404],
            },
        ),
        row(
            Method::PUT,
            "/api/v1/devices/{id}/variables",
            "/api/v1/devices/{device}/variables",
            Some(json!({"variables": {"1": "{unique}"}})),
            Nothing,
            Roles {
                own: [403, 403, 403, 200, 200],
                other: [403, 403, 403, 404, 404],
            },
        ),
        row(
            Method::POST,
            "/api/v1/devices/{id}/commands",
            "/api/v1/devices/{device}/commands",
            Some(json!({"action": "resync"})),
            Nothing,
            Roles {
                own: [403, 403, 403, 202, 202],
                other: [403, 403, 403, 404, 404],
            },
        ),
        // A paired device joins an access group of its tenant (L1, L5).
        row(
            Method::POST,
            "/api/v1/access-groups/{id}/members",
            "/api/v1/access-groups/{agroup}/members",
            Some(json!({"member": {"type": "device", "device_id": "{device}"}})),
            Device,
            Roles {
                own: [403, 403, 403, 201, 201],
                other: [403, 403, 403, 404, 404],
            },
        ),
        // What the public pages read before they act (M5, C11): the token
        // or the group's self-signup is the credential; nothing changes.
        row(
            Method::GET,
            "/api/v1/access-groups/invites/{token}",
            "/api/v1/access-groups/invites/{invite_token}",
            None,
            Invite,
            Anonymous(200),
        ),
        row(
            Method::GET,
            "/api/v1/access-groups/invites/{token}",
            "/api/v1/access-groups/invites/not-an-invite-token",
            None,
            Nothing,
            Anonymous(404),
        ),
        row(
            Method::GET,
            "/api/v1/access-groups/{id}/signup",
            "/api/v1/access-groups/{agroup}/signup",
            None,
            Nothing,
            Anonymous(200),
        ),
        row(
            Method::GET,
            "/api/v1/access-groups/{id}/signup",
            "/api/v1/access-groups/{agroup}/signup",
            None,
            AccessGroup,
            Anonymous(404),
        ),
        row(
            Method::GET,
            "/api/v1/password/tokens/{token}",
            "/api/v1/password/tokens/{password_token}",
            None,
            Welcome,
            Anonymous(200),
        ),
        row(
            Method::GET,
            "/api/v1/password/tokens/{token}",
            "/api/v1/password/tokens/not-a-password-token",
            None,
            Nothing,
            Anonymous(404),
        ),
        // The member player (M6): every role reads and changes only its
        // own browsers and playbacks; nothing of a tenant is named.
        row(
            Method::GET,
            "/api/v1/my/content",
            "/api/v1/my/content",
            None,
            Nothing,
            Roles {
                own: [200; 5],
                other: [200; 5],
            },
        ),
        row(
            Method::GET,
            "/api/v1/my/devices",
            "/api/v1/my/devices",
            None,
            Nothing,
            Roles {
                own: [200; 5],
                other: [200; 5],
            },
        ),
        row(
            Method::POST,
            "/api/v1/my/devices",
            "/api/v1/my/devices",
            Some(json!({"name": "Browser"})),
            Nothing,
            Roles {
                own: [201; 5],
                other: [201; 5],
            },
        ),
        row(
            Method::DELETE,
            "/api/v1/my/devices/{id}",
            "/api/v1/my/devices/web-not-a-browser",
            None,
            Nothing,
            Roles { own: NO, other: NO },
        ),
        row(
            Method::POST,
            "/api/v1/my/items/{id}/play",
            "/api/v1/my/items/{content}/play",
            Some(json!({"device_token": "not-a-device-token"})),
            Nothing,
            Roles { own: NO, other: NO },
        ),
        row(
            Method::POST,
            "/api/v1/my/plays/{id}",
            "/api/v1/my/plays/0123456789abcdef0123456789abcdef",
            Some(json!({"played_ms": 1})),
            Nothing,
            Roles { own: NO, other: NO },
        ),
        row(
            Method::GET,
            "/api/v1/my/media/{play}",
            "/api/v1/my/media/0123456789abcdef0123456789abcdef?expires=1&signature=00",
            None,
            Nothing,
            Anonymous(403),
        ),
        row(
            Method::GET,
            "/api/v1/my/thumbnails/{item}",
            "/api/v1/my/thumbnails/c-0123456789abcdef?expires=1&signature=00",
            None,
            Nothing,
            Anonymous(403),
        ),
    ]
}

/// An agent's public key in pairing requests (32 bytes, standard base64).
const AGENT_KEY: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";

/// Asks to pair as an agent; returns (ticket, code).
async fn open_pairing(hub: &TestHub) -> (String, String) {
    let (status, answer) = hub
        .call(
            Method::POST,
            "/api/v1/device/pairings",
            None,
            Some(json!({"public_key": AGENT_KEY, "agent_version": "1.0", "os": "matrix"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "pairing request: {answer}");
    (
        answer["ticket"].as_str().unwrap().to_owned(),
        answer["code"].as_str().unwrap().to_owned(),
    )
}

/// Pairs a device into the leaf `node` as the root admin; returns its id.
async fn pair_device(hub: &TestHub, node: &str) -> String {
    let (_, code) = open_pairing(hub).await;
    let answer = made(
        hub,
        Method::POST,
        &format!("/api/v1/devices/pairings/{code}/approve"),
        Some(json!({"node": node, "name": "matrix screen"})),
    )
    .await;
    answer["device"]["id"].as_str().unwrap().to_owned()
}

/// The license of every access group the matrix makes: plain, valid terms.
fn license() -> Value {
    json!({"allow_offline": false, "offline_grace_secs": 0, "allow_export": false})
}

/// A tenant's standing objects, made through the API as the root admin.
struct Tenant {
    /// The tenant's top node.
    node: String,
    /// A standing leaf below it.
    site: String,
    /// A standing viewer user in it.
    user: String,
    /// That user's e-mail address.
    user_email: String,
    /// A permission group at its node.
    pgroup: String,
    /// A second permission group, the member group of group-membership rows.
    pgroup2: String,
    /// An access group at its node, self-signup open for `signup_domain`,
    /// with a shop key.
    agroup: String,
    /// The e-mail domain `agroup` allows to self-sign-up.
    signup_domain: String,
    /// A viewer user who is a current member of `agroup`.
    member: String,
    /// An open invite to `agroup`.
    invite: String,
    /// A content item at its node, and its SHA-256.
    content: (String, String),
    /// A template at its node showing `content`.
    template: String,
    /// A node restricted by the root admin below the tenant node, holding
    /// `master` and `master_template`, with `copy_site` below it (A1, A2).
    masters: String,
    /// A non-restricted node below `masters`.
    copy_site: String,
    /// An approved image at `masters`.
    master: String,
    /// An approved template at `masters`.
    master_template: String,
    /// A playlist at its node, playing `content`.
    playlist: String,
    /// The schedule of `site`, playing `playlist`.
    schedule: String,
    /// A leaf below the tenant node holding `device`.
    screens: String,
    /// A paired device at `screens`.
    device: String,
}

struct Fixture {
    hub: TestHub,
    /// Tenant A (the callers' own) and tenant B.
    tenants: [Tenant; 2],
    /// The ids of the callers `A-{role}`, in the order of `ROLES`.
    callers: Vec<String>,
    /// Counter for unique names.
    serial: std::sync::atomic::AtomicUsize,
}

/// Sends `method path` as the root admin and returns the answer, which must
/// be a success.
async fn made(hub: &TestHub, method: Method, path: &str, body: Option<Value>) -> Value {
    let (status, answer) = hub.call(method.clone(), path, Some(&hub.admin), body).await;
    assert!(status.is_success(), "{method} {path}: {status} {answer}");
    answer
}

/// Uploads an image at `node` as the root admin, downloads and sharing
/// allowed (M2); returns (id, sha256).
async fn upload(hub: &TestHub, node: &str, name: &str) -> (String, String) {
    let response = hub
        .client
        .post(format!("{}/api/v1/content", hub.base))
        .query(&[
            ("node", node),
            ("name", name),
            ("allow_download", "true"),
            ("allow_share", "true"),
        ])
        .bearer_auth(&hub.admin)
        .body(support::gif(name))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let answer: Value = response.json().await.unwrap();
    (id(&answer), answer["sha256"].as_str().unwrap().to_owned())
}

/// Makes a playlist at `node` playing `item`, as the root admin; returns its id.
async fn new_playlist(hub: &TestHub, node: &str, item: &str) -> String {
    id(&made(
        hub,
        Method::POST,
        "/api/v1/playlists",
        Some(json!({"node": node, "name": "matrix playlist",
            "items": [{"item": item, "duration_ms": 1000}]})),
    )
    .await)
}

/// A template layout showing the image `image`.
fn layout(image: &str) -> Value {
    json!({"canvas": {"width": 1280, "height": 720},
        "zones": [{"id": "main", "kind": "image",
            "rect": {"x": 0, "y": 0, "width": 1280, "height": 720}, "source": image}]})
}

/// Makes a template at `node` showing `image` as the root admin; its id.
async fn make_template(hub: &TestHub, node: &str, image: &str) -> String {
    id(&made(
        hub,
        Method::POST,
        "/api/v1/templates",
        Some(json!({"node": node, "name": format!("layout {image}"), "template": layout(image)})),
    )
    .await)
}

/// Attaches a schedule playing `playlist` to node `node`, as the root admin;
/// returns its id.
async fn new_schedule(hub: &TestHub, node: &str, playlist: &str) -> String {
    id(&made(
        hub,
        Method::POST,
        "/api/v1/schedules",
        Some(json!({"target": {"kind": "node", "id": node},
            "entries": [{"id": "all-day", "playlist": playlist, "priority": 0}]})),
    )
    .await)
}

/// Sets the approval record of the item `item` directly, as a requester
/// and the workflow would have.
async fn set_approval(hub: &TestHub, item: &str, pending: bool) {
    let mut record: ContentItem = hub.state.store.get(CONTENT, item).unwrap().unwrap();
    record.approval = if pending {
        ItemApproval::Pending {
            requested_hash: record.approval_hash,
        }
    } else {
        ItemApproval::Inactive {
            rejection_reason: None,
        }
    };
    let mut batch = WriteBatch::new();
    batch.put(CONTENT, item, &record).unwrap();
    hub.state.store.apply(batch).await.unwrap();
}

/// The id in a creation's answer.
fn id(answer: &Value) -> String {
    answer["id"].as_str().unwrap().to_owned()
}

/// The token in the newest mail to `to` (the outbox keeps it).
fn mailed_token(hub: &TestHub, to: &str) -> String {
    let outbox: Vec<OutboxEntry> = hub.state.store.scan(OUTBOX, "").unwrap();
    let mail = outbox.into_iter().rev().find(|m| m.mail.to == to).unwrap();
    mail.mail
        .body
        .lines()
        .find_map(|l| l.strip_prefix("token: "))
        .unwrap()
        .to_owned()
}

impl Fixture {
    async fn new() -> Self {
        let hub = TestHub::start_with(|config| {
            config.mqtt.auth_hook_token = Some(BROKER_HOOK_TOKEN.to_owned());
        })
        .await;
        let mut tenants = Vec::new();
        for name in ["A", "B"] {
            let node = hub
                .node(&hub.admin, &hub.root, &format!("Tenant {name}"))
                .await;
            let site = hub.node(&hub.admin, &node, &format!("{name} site")).await;
            let (user, _) = hub
                .user(&format!("{name}-target"), "viewer", &[&node])
                .await;
            let pgroup = id(&made(
                &hub,
                Method::POST,
                "/api/v1/permission-groups",
                Some(json!({"node": node, "name": format!("{name} group")})),
            )
            .await);
            let pgroup2 = id(&made(
                &hub,
                Method::POST,
                "/api/v1/permission-groups",
                Some(json!({"node": node, "name": format!("{name} member group")})),
            )
            .await);
            let signup_domain = format!("tenant-{}.example.test", name.to_lowercase());
            let agroup = id(&made(
                &hub,
                Method::POST,
                "/api/v1/access-groups",
                Some(json!({"node": node, "name": format!("{name} access"),
                    "license": license(), "self_signup": true,
                    "signup_domains": [signup_domain]})),
            )
            .await);
            let (member, _) = hub
                .user(&format!("{name}-member"), "viewer", &[&node])
                .await;
            made(
                &hub,
                Method::POST,
                &format!("/api/v1/access-groups/{agroup}/members"),
                Some(json!({"member": {"type": "user", "user_id": member}})),
            )
            .await;
            let invite = id(&made(
                &hub,
                Method::POST,
                &format!("/api/v1/access-groups/{agroup}/invites"),
                Some(json!({"email": format!("{name}-invitee@example.test")})),
            )
            .await);
            made(
                &hub,
                Method::POST,
                &format!("/api/v1/access-groups/{agroup}/shop-key"),
                None,
            )
            .await;
            let content = upload(&hub, &node, &format!("{name} content")).await;
            made(
                &hub,
                Method::PATCH,
                &format!("/api/v1/nodes/{node}"),
                Some(json!({"content_manager_email": format!("cm@tenant-{name}.example.test")})),
            )
            .await;
            let template = make_template(&hub, &node, &content.0).await;
            let masters = id(&made(
                &hub,
                Method::POST,
                "/api/v1/nodes",
                Some(
                    json!({"parent": node, "name": format!("{name} masters"), "restricted": true}),
                ),
            )
            .await);
            let copy_site = hub
                .node(&hub.admin, &masters, &format!("{name} copies"))
                .await;
            let master = upload(&hub, &masters, &format!("{name} master")).await.0;
            let master_template = make_template(&hub, &masters, &master).await;
            let playlist = new_playlist(&hub, &node, &content.0).await;
            let schedule = new_schedule(&hub, &site, &playlist).await;
            let screens = hub
                .node(&hub.admin, &node, &format!("{name} screens"))
                .await;
            let device = pair_device(&hub, &screens).await;
            tenants.push(Tenant {
                node,
                site,
                user,
                user_email: format!("{name}-target@example.test"),
                pgroup,
                pgroup2,
                agroup,
                signup_domain,
                member,
                invite,
                content,
                template,
                masters,
                copy_site,
                master,
                master_template,
                playlist,
                schedule,
                screens,
                device,
            });
        }
        // The root admin sees both tenants: tenant A's user in a tenant-B
        // group, which tenant A's callers must see only as a number (T4).
        made(
            &hub,
            Method::POST,
            &format!(
                "/api/v1/permission-groups/{}/members/users",
                tenants[1].pgroup2
            ),
            Some(json!({"user": tenants[0].user})),
        )
        .await;
        let mut callers = Vec::new();
        for role in ROLES {
            let (caller, _) = hub
                .user(&format!("A-{role}"), role, &[&tenants[0].node])
                .await;
            callers.push(caller);
        }
        let [a, b]: [Tenant; 2] = tenants.try_into().ok().unwrap();
        // Fleet rows (U4): one attached device per tenant, named after its
        // site, recorded as approving its pairing records it.
        for tenant in [&a, &b] {
            let device = format!("screen-{}", tenant.site);
            support::register_device(&hub, &tenant.site, &device, "fleet-row-secret").await;
        }
        Self {
            hub,
            tenants: [a, b],
            callers,
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

    /// Placeholder values for a cell against tenant `index` (0 = A, 1 = B),
    /// making fresh objects there. `{other_…}` name the other tenant's
    /// standing objects; `{me}` (the caller) is filled in by the caller.
    async fn vars(&self, index: usize, fresh: Fresh) -> Vec<(&'static str, String)> {
        let hub = &self.hub;
        let tenant = &self.tenants[index];
        let other = &self.tenants[1 - index];
        let mut site = tenant.site.clone();
        let mut user = tenant.user.clone();
        let mut user_name = String::new();
        let mut pgroup = tenant.pgroup.clone();
        let mut agroup = tenant.agroup.clone();
        let mut invite = tenant.invite.clone();
        let mut invite_token = String::new();
        let mut signup_token = String::new();
        let mut password_token = String::new();
        let mut shop_key = String::new();
        let mut content = tenant.content.0.clone();
        let mut template = tenant.template.clone();
        let mut playlist = tenant.playlist.clone();
        let mut schedule = tenant.schedule.clone();
        // Without a fresh job the path still names one (for the 401 check).
        let mut job = "pj-none".to_owned();
        let mut run = "no-run".to_owned();
        let mut ticket = "no-ticket".to_owned();
        let mut code = "NOCODE22".to_owned();
        let mut device = tenant.device.clone();
        let mut comment = "cm-none".to_owned();
        let mut share = "s-none".to_owned();
        let (mut share_token, mut feedback, mut attribute) = (
            "no-share".to_owned(),
            "no-feedback".to_owned(),
            "none".to_owned(),
        );
        match fresh {
            Fresh::Nothing => {}
            Fresh::Site => site = hub.node(&hub.admin, &tenant.node, &self.unique()).await,
            Fresh::User => {
                user_name = self.unique();
                user = hub.user(&user_name, "viewer", &[&tenant.node]).await.0;
            }
            Fresh::PermissionGroup => {
                pgroup = id(&made(
                    hub,
                    Method::POST,
                    "/api/v1/permission-groups",
                    Some(json!({"node": tenant.node, "name": self.unique()})),
                )
                .await);
            }
            Fresh::PermissionMembers => {
                let members = format!("/api/v1/permission-groups/{pgroup}/members");
                made(
                    hub,
                    Method::POST,
                    &format!("{members}/users"),
                    Some(json!({"user": user})),
                )
                .await;
                made(
                    hub,
                    Method::POST,
                    &format!("{members}/groups"),
                    Some(json!({"group": tenant.pgroup2})),
                )
                .await;
            }
            Fresh::AccessGroup => {
                agroup = id(&made(
                    hub,
                    Method::POST,
                    "/api/v1/access-groups",
                    Some(json!({"node": tenant.node, "name": self.unique(),
                        "license": license()})),
                )
                .await);
            }
            Fresh::Member => {
                // Adding a current member again is 409: re-add only when removed.
                let (status, answer) = hub
                    .post(
                        &hub.admin,
                        &format!("/api/v1/access-groups/{agroup}/members"),
                        json!({"member": {"type": "user", "user_id": tenant.member}}),
                    )
                    .await;
                assert!(
                    status == StatusCode::CREATED || answer["error"] == "already_member",
                    "re-add member: {status} {answer}"
                );
            }
            Fresh::Invite => {
                let email = format!("{}@example.test", self.unique());
                invite = id(&made(
                    hub,
                    Method::POST,
                    &format!("/api/v1/access-groups/{agroup}/invites"),
                    Some(json!({"email": email})),
                )
                .await);
                invite_token = mailed_token(hub, &email);
            }
            Fresh::Signup => {
                let email = format!("{}@{}", self.unique(), tenant.signup_domain);
                let (status, answer) = hub
                    .call(
                        Method::POST,
                        &format!("/api/v1/access-groups/{agroup}/signup"),
                        None,
                        Some(json!({"email": email, "password": PASSWORD})),
                    )
                    .await;
                assert_eq!(status, StatusCode::ACCEPTED, "signup: {answer}");
                signup_token = mailed_token(hub, &email);
            }
            Fresh::ShopKey => {
                let answer = made(
                    hub,
                    Method::POST,
                    &format!("/api/v1/access-groups/{agroup}/shop-key"),
                    None,
                )
                .await;
                shop_key = answer["shop_key"].as_str().unwrap().to_owned();
            }
            Fresh::Content => content = upload(hub, &tenant.node, &self.unique()).await.0,
            Fresh::Comment => {
                comment = id(&made(
                    hub,
                    Method::POST,
                    &format!("/api/v1/content/{content}/comments"),
                    Some(json!({"body": self.unique()})),
                )
                .await);
            }
            Fresh::PlaylistComment | Fresh::TemplateComment => {
                let on = if fresh == Fresh::PlaylistComment {
                    format!("playlists/{playlist}")
                } else {
                    format!("templates/{template}")
                };
                comment = id(&made(
                    hub,
                    Method::POST,
                    &format!("/api/v1/{on}/comments"),
                    Some(json!({"body": self.unique()})),
                )
                .await);
            }
            Fresh::Template => template = make_template(hub, &tenant.node, &content).await,
            Fresh::Inactive | Fresh::Pending => {
                content = upload(hub, &tenant.node, &self.unique()).await.0;
                template = make_template(hub, &tenant.node, &content).await;
                for item in [&content, &template] {
                    set_approval(hub, item, fresh == Fresh::Pending).await;
                }
            }
            Fresh::Playlist => playlist = new_playlist(hub, &tenant.node, &content).await,
            Fresh::Schedule => {
                site = hub.node(&hub.admin, &tenant.node, &self.unique()).await;
                schedule = new_schedule(hub, &site, &tenant.playlist).await;
            }
            Fresh::Pairing => {
                site = hub.node(&hub.admin, &tenant.node, &self.unique()).await;
                (ticket, code) = open_pairing(hub).await;
                if index == 1 {
                    made(
                        hub,
                        Method::POST,
                        &format!("/api/v1/devices/pairings/{code}/approve"),
                        Some(json!({"node": site, "name": "claimed by B"})),
                    )
                    .await;
                }
            }
            Fresh::Device => {
                site = hub.node(&hub.admin, &tenant.node, &self.unique()).await;
                device = pair_device(hub, &site).await;
            }
            Fresh::Job => {
                job = id(&made(
                    hub,
                    Method::POST,
                    "/api/v1/publish",
                    Some(json!({"scope": {"kind": "node", "id": tenant.node},
                        "when": {"type": "at", "at": "2999-01-01T00:00:00Z"}})),
                )
                .await);
            }
            Fresh::Welcome => {
                let email = format!("{}@welcome.test", self.unique());
                let response = hub
                    .client
                    .post(format!(
                        "{}/api/v1/access-groups/{agroup}/members/import",
                        hub.base
                    ))
                    .bearer_auth(&hub.admin)
                    .header("content-type", "text/csv")
                    .body(format!("email,name,end_date\n{email},,\n"))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), StatusCode::OK, "import for a welcome");
                password_token = mailed_token(hub, &email);
            }
            Fresh::Share => {
                let path = format!("/api/v1/content/{content}/share");
                let answer = made(hub, Method::POST, &path, Some(json!({}))).await;
                share_token = answer["token"].as_str().unwrap().to_owned();
                share = answer["id"].as_str().unwrap().to_owned();
            }
            Fresh::Feedback => {
                content = upload(hub, &tenant.node, &self.unique()).await.0;
                let path = format!("/api/v1/content/{content}/feedback");
                let body = json!({"reason": "other", "comment": "please check"});
                feedback = id(&made(hub, Method::POST, &path, Some(body)).await);
            }
            Fresh::Attribute => {
                attribute = self.unique();
                let path = format!("/api/v1/nodes/{}/attributes/{attribute}", tenant.node);
                let body = json!({"label": "Size", "type": "number"});
                made(hub, Method::PUT, &path, Some(body)).await;
            }
            Fresh::Run => {
                let answer = made(
                    hub,
                    Method::POST,
                    "/api/v1/publish",
                    Some(json!({"scope": {"kind": "node", "id": tenant.node}})),
                )
                .await;
                run = answer["run"]["id"].as_str().unwrap().to_owned();
            }
        }
        vec![
            ("{node}", tenant.node.clone()),
            ("{site}", site),
            ("{user}", user),
            ("{user_name}", user_name),
            ("{pgroup}", pgroup),
            ("{pgroup2}", tenant.pgroup2.clone()),
            ("{agroup}", agroup),
            ("{signup_domain}", tenant.signup_domain.clone()),
            ("{member}", tenant.member.clone()),
            ("{invite}", invite),
            ("{job}", job),
            ("{run}", run),
            ("{ticket}", ticket),
            ("{code}", code),
            ("{device}", device),
            ("{content_sha}", tenant.content.1.clone()),
            ("{layout}", layout(&content).to_string()),
            ("{comment}", comment),
            ("{content}", content),
            ("{template}", template),
            ("{masters}", tenant.masters.clone()),
            ("{copy_site}", tenant.copy_site.clone()),
            ("{master}", tenant.master.clone()),
            ("{master_template}", tenant.master_template.clone()),
            ("{playlist}", playlist),
            ("{schedule}", schedule),
            ("{invite_token}", invite_token),
            ("{signup_token}", signup_token),
            ("{password_token}", password_token),
            ("{shop_key}", shop_key),
            ("{other_user}", other.user.clone()),
            ("{other_user_email}", other.user_email.clone()),
            ("{other_pgroup}", other.pgroup.clone()),
            ("{other_agroup}", other.agroup.clone()),
            ("{other_invite}", other.invite.clone()),
            ("{admin_token}", hub.admin.clone()),
            ("{unique}", self.unique()),
            ("{share_token}", share_token),
            ("{share}", share),
            ("{feedback}", feedback),
            ("{attribute}", attribute),
        ]
    }

    /// Tenant B's standing object ids: no answer to a tenant-A caller may
    /// name one.
    fn tenant_b_ids(&self) -> Vec<&str> {
        let b = &self.tenants[1];
        vec![
            &b.node,
            &b.site,
            &b.user,
            &b.pgroup,
            &b.pgroup2,
            &b.agroup,
            &b.member,
            &b.invite,
            &b.content.0,
            &b.content.1,
            &b.playlist,
            &b.schedule,
            &b.screens,
            &b.device,
        ]
        .into_iter()
        .map(String::as_str)
        .collect()
    }
}

fn substitute(text: &str, vars: &[(&str, String)]) -> String {
    vars.iter()
        .fold(text.to_owned(), |acc, (k, v)| acc.replace(k, v))
}

/// Fills placeholders in every string of `value`; a string that is exactly
/// a placeholder whose value is a JSON object becomes that object.
fn substitute_json(value: &Value, vars: &[(&str, String)]) -> Value {
    match value {
        Value::String(s) => vars
            .iter()
            .find(|(k, _)| k == s)
            .and_then(|(_, v)| serde_json::from_str::<Value>(v).ok())
            .filter(Value::is_object)
            .unwrap_or_else(|| Value::String(substitute(s, vars))),
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

/// Sends a row's request with `vars` filled in and an optional bearer token;
/// returns the status and the JSON answer (`Null` when empty or not JSON).
async fn send(
    hub: &TestHub,
    row: &Row,
    vars: &[(&str, String)],
    token: Option<&str>,
) -> (StatusCode, Value) {
    let path = substitute(row.path, vars);
    let mut request = hub
        .client
        .request(row.method.clone(), format!("{}{path}", hub.base));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request = match row.body.as_ref().map(|b| substitute_json(b, vars)) {
        None => request,
        // "GIF tag": a whole GIF image carrying the tag (S13: uploads are checked).
        Some(Value::String(text)) if text.starts_with("GIF ") => {
            request.body(support::gif(&text[4..]))
        }
        Some(Value::String(csv)) => request.header("content-type", "text/csv").body(csv),
        Some(json) => request.json(&json),
    };
    let mut response = request.send().await.unwrap();
    let status = response.status();
    let streamed = response
        .headers()
        .get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    if streamed {
        // A live stream never ends: its first event's data is the answer.
        let mut text = String::new();
        while !text.contains("\n\n") {
            let chunk = tokio::time::timeout(std::time::Duration::from_secs(10), response.chunk())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
        let data = text
            .lines()
            .find_map(|l| l.strip_prefix("data:"))
            .unwrap_or_default();
        return (
            status,
            serde_json::from_str(data.trim()).unwrap_or(Value::Null),
        );
    }
    let bytes = response.bytes().await.unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// The first of `ids` that `answer` names anywhere.
fn names_one<'a>(answer: &Value, ids: &[&'a str]) -> Option<&'a str> {
    let text = answer.to_string();
    ids.iter().copied().find(|id| text.contains(id))
}

/// Whether a row's request names a tenant object (a placeholder in its path
/// or body), so that against tenant B it is a cross-tenant request.
fn names_an_object(row: &Row) -> bool {
    has_placeholder(row.path)
        || row
            .body
            .as_ref()
            .is_some_and(|b| has_placeholder(&b.to_string()))
}

/// Whether `text` holds a placeholder such as `{agroup}` (a JSON body's own
/// braces are none: a body naming nothing, like a browser's name, is no
/// cross-tenant write).
fn has_placeholder(text: &str) -> bool {
    text.split('{').skip(1).any(|rest| {
        rest.split_once('}').is_some_and(|(name, _)| {
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
        })
    })
}

#[tokio::test]
async fn s8_t4_every_route_every_role_own_and_other_tenant() {
    let fixture = Fixture::new().await;
    let hub = &fixture.hub;
    let rows = rows();
    let tenant_b_ids = fixture.tenant_b_ids();

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
        .chain(
            SERVED_OUTSIDE_DOCUMENT
                .iter()
                .map(|(m, p)| ((*m).to_owned(), (*p).to_owned())),
        )
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
        let (method, route) = (&row.method, row.route);
        match row.caller {
            Caller::Anonymous(_) | Caller::Key(..) => {
                let (key, expected) = match row.caller {
                    Caller::Key(key, expected) => (Some(key), expected),
                    Caller::Anonymous(expected) => (None, expected),
                    Caller::Roles { .. } => unreachable!(),
                };
                let vars = fixture.vars(0, row.fresh).await;
                let key = key.map(|k| substitute(k, &vars));
                let (status, answer) = send(hub, row, &vars, key.as_deref()).await;
                let who = if key.is_some() {
                    "with a key"
                } else {
                    "anonymous"
                };
                if status.as_u16() != expected {
                    failures.push(format!(
                        "{method} {route} {who}: {status} (want {expected}) {answer}"
                    ));
                }
                if status.is_success() {
                    if let Some(leaked) = names_one(&answer, &tenant_b_ids) {
                        failures.push(format!(
                            "{method} {route} {who}: the answer names tenant B's {leaked}: \
                             {answer}"
                        ));
                    }
                } else if !answer["error"].is_string() {
                    failures.push(format!(
                        "{method} {route} {who}: error without a JSON code: {answer}"
                    ));
                }
            }
            Caller::Roles { own, other } => {
                for (tenant_index, expected) in [(0, own), (1, other)] {
                    let tenant = if tenant_index == 0 { "own" } else { "other" };
                    for (role_index, (role, want)) in ROLES.iter().zip(expected).enumerate() {
                        let token = hub.login(&format!("A-{role}"), PASSWORD).await;
                        let mut vars = fixture.vars(tenant_index, row.fresh).await;
                        vars.push(("{me}", fixture.callers[role_index].clone()));
                        let (status, answer) = send(hub, row, &vars, Some(&token)).await;
                        if status.as_u16() != want {
                            failures.push(format!(
                                "{method} {route} {role}/{tenant}: {status} (want {want}) {answer}"
                            ));
                        }
                        if tenant_index == 1
                            && status.is_success()
                            && *method != Method::GET
                            && names_an_object(row)
                        {
                            failures.push(format!(
                                "{method} {route} {role}: a cross-tenant write succeeded"
                            ));
                        }
                        if status.is_success() {
                            if let Some(leaked) = names_one(&answer, &tenant_b_ids) {
                                failures.push(format!(
                                    "{method} {route} {role}/{tenant}: the answer names \
                                     tenant B's {leaked}: {answer}"
                                ));
                            }
                        } else if !answer["error"].is_string() {
                            failures.push(format!(
                                "{method} {route} {role}/{tenant}: error without a JSON code: \
                                 {answer}"
                            ));
                        }
                    }
                }
                // Without a token every such route is 401.
                let vars = fixture.vars(0, Fresh::Nothing).await;
                let (status, _) = send(hub, row, &vars, None).await;
                if status != StatusCode::UNAUTHORIZED {
                    failures.push(format!(
                        "{method} {route} without a token: {status} (want 401)"
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
