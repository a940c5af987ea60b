//! The content domain's own data as the API shows and takes it (T2, D6,
//! A2–A6): item and template views, and the requests of the content,
//! template and approval routes.
//!
//! Owns: these types and their OpenAPI schemas (names are part of the API).
//! Must not: decide anything.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use signet_common::approval::{ApprovalState, ItemApproval, Template};
use signet_common::digest::Sha256;
use signet_common::documents::ItemKind;
use signet_common::ids::{ItemId, NodeId, PermissionGroupId, UserId};

use super::approval::Decision;
use super::visibility::{MAX_ALLOWED_GROUPS, Settings, SettingsChange};
use super::{ContentItem, CopySource};

/// The approval queue (A6, C8): the items pending approval that the caller
/// may approve or reject now, oldest save first.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
pub struct ApprovalQueue {
    /// Whether the caller holds `approve_content` (by role or through a
    /// permission group, P4): whether they review at all.
    pub may_approve: bool,
    /// Pending media and templates at nodes inside the caller's domain that
    /// the caller views (empty without `approve_content`).
    pub items: Vec<ContentView>,
}

/// A content item as the API shows it.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
pub struct ContentView {
    /// Stable id.
    #[schema(value_type = String)]
    pub id: ItemId,
    /// The node it belongs to.
    #[schema(value_type = String)]
    pub node: NodeId,
    /// Display name.
    pub name: String,
    /// `video`, `image`, `audio` or `template`.
    #[schema(value_type = String)]
    pub kind: ItemKind,
    /// SHA-256 of the bytes, lowercase hex.
    #[schema(value_type = String)]
    pub sha256: Sha256,
    /// Size in bytes.
    pub size: u64,
    /// Detected media type.
    pub media_type: String,
    /// Uploader's user id.
    #[schema(value_type = String)]
    pub created_by: UserId,
    /// Upload time.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Playing time in milliseconds, when known.
    pub duration_ms: Option<u64>,
    /// Width in pixels, when known.
    pub width: Option<u32>,
    /// Height in pixels, when known.
    pub height: Option<u32>,
    /// `active`, `inactive` or `pending` (A3); only active items play (A7).
    #[schema(value_type = String)]
    pub approval_state: ApprovalState,
    /// The approved version's hash, when active (A8).
    #[schema(value_type = Option<String>)]
    pub approved_hash: Option<Sha256>,
    /// Why the last approval request was rejected, while the item is inactive.
    pub rejection_reason: Option<String>,
    /// The hash approval is about: the bytes' SHA-256 for media, the layout
    /// hash (feeds left out) for templates.
    #[schema(value_type = String)]
    pub approval_hash: Sha256,
    /// Counts saves, from 1.
    pub revision: u64,
    /// The item and revision this one was copied from (A2).
    pub source: Option<CopySource>,
    /// Last save.
    pub updated_at: chrono::DateTime<chrono::Utc>,
    /// Who saved it last.
    #[schema(value_type = String)]
    pub updated_by: UserId,
    /// Whether `GET /api/v1/content/{id}/thumbnail` answers an image (C5).
    pub thumbnail: bool,
    /// Empty: open to everyone at its node. Otherwise only these permission
    /// groups' members (transitively) below Moderator view it (M1, P6).
    #[schema(value_type = Vec<String>)]
    pub allowed_groups: BTreeSet<PermissionGroupId>,
    /// What viewers may do with it (M2, P5).
    pub settings: Settings,
}

impl From<ContentItem> for ContentView {
    fn from(item: ContentItem) -> Self {
        Self {
            id: item.id,
            node: item.node,
            name: item.name,
            kind: item.kind,
            sha256: item.sha256,
            size: item.size,
            media_type: item.media_type,
            created_by: item.created_by,
            created_at: item.created_at,
            duration_ms: item.duration_ms,
            width: item.width,
            height: item.height,
            approval_state: item.approval.state(),
            approved_hash: item.approval.approved_hash().copied(),
            rejection_reason: match &item.approval {
                ItemApproval::Inactive { rejection_reason } => rejection_reason.clone(),
                _ => None,
            },
            approval_hash: item.approval_hash,
            revision: item.revision,
            source: item.source,
            updated_at: item.updated_at,
            updated_by: item.updated_by,
            thumbnail: item.thumbnail,
            allowed_groups: item.allowed_groups,
            settings: item.settings,
        }
    }
}

/// Where to copy an item.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CopyRequest {
    /// The destination: a non-restricted node below the source's node,
    /// inside the caller's domain.
    #[schema(value_type = String)]
    pub node: NodeId,
    /// The copy's name; the source's name when absent.
    pub name: Option<String>,
}

/// The version an approver reviewed.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApproveRequest {
    /// The hash of the version reviewed; the requested version when absent.
    /// Approval of another version than the one pending is refused (409).
    #[schema(value_type = Option<String>)]
    pub content_hash: Option<Sha256>,
}

/// Why a request is rejected.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectRequest {
    /// Shown to the requester; not blank, at most 2000 characters.
    pub reason: String,
}

/// A new template.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTemplate {
    /// The node it belongs to (inside the caller's domain).
    #[schema(value_type = String)]
    pub node: NodeId,
    /// Display name (1 to 256 bytes).
    pub name: String,
    /// The layout: `{canvas: {width, height}, zones: [...]}`.
    #[schema(value_type = Object)]
    pub template: Template,
    /// The permission groups it is restricted to (M1); absent or empty: open.
    #[serde(default)]
    #[schema(value_type = Vec<String>)]
    pub allowed_groups: Vec<PermissionGroupId>,
    /// Its publish settings (M2); absent fields take the defaults.
    #[serde(default)]
    pub settings: Settings,
}

/// A save of a template.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SaveTemplate {
    /// A new name; unchanged when absent.
    pub name: Option<String>,
    /// The whole new layout.
    #[schema(value_type = Object)]
    pub template: Template,
}

/// A template as the API shows it: the item and its current document.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
pub struct TemplateView {
    /// The item: id, node, approval state, hashes, revision, source.
    #[serde(flatten)]
    pub item: ContentView,
    /// The current layout, feeds included.
    #[schema(value_type = Object)]
    pub template: Template,
}

/// Changes to an item (media or template); absent fields stay as they are.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateContent {
    /// Display name (1 to 256 bytes).
    pub name: Option<String>,
    /// The permission groups it is restricted to (M1), replacing the old
    /// list; `[]` opens it to everyone at its node. Each group must exist in
    /// the caller's tenant, above or below the item's node.
    #[schema(value_type = Option<Vec<String>>)]
    pub allowed_groups: Option<Vec<PermissionGroupId>>,
    /// Publish settings to change (M2).
    pub settings: Option<SettingsChange>,
}

impl TemplateView {
    /// The view of the template item `item` with its document `template`.
    #[must_use]
    pub fn new(item: ContentItem, template: Template) -> Self {
        Self {
            item: item.into(),
            template,
        }
    }
}

/// Where an upload goes and what it is called.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UploadQuery {
    /// The node (inside the caller's domain).
    #[param(value_type = String)]
    pub node: NodeId,
    /// Display name (1 to 256 bytes).
    pub name: String,
    /// Comma-separated permission groups it is restricted to (M1); absent: open.
    pub allowed_groups: Option<String>,
    /// Publish setting `allow_download` (M2); default false.
    pub allow_download: Option<bool>,
    /// Publish setting `allow_share`; default false.
    pub allow_share: Option<bool>,
    /// Publish setting `allow_comments`; default true.
    pub allow_comments: Option<bool>,
    /// Publish setting `allow_rating`; default true.
    pub allow_rating: Option<bool>,
}

impl UploadQuery {
    /// The groups asked for and the settings (M1, M2), before the groups
    /// are checked against the store.
    ///
    /// # Errors
    /// [`super::visibility::GroupsRefused::TooMany`] beyond the bound.
    pub fn audience(
        &self,
    ) -> Result<(Vec<PermissionGroupId>, Settings), super::visibility::GroupsRefused> {
        let raw = self.allowed_groups.as_deref().unwrap_or_default();
        let groups: Vec<PermissionGroupId> = raw
            .split(',')
            .map(str::trim)
            .filter(|g| !g.is_empty())
            .take(MAX_ALLOWED_GROUPS + 1)
            .map(PermissionGroupId::from)
            .collect();
        if groups.len() > MAX_ALLOWED_GROUPS {
            return Err(super::visibility::GroupsRefused::TooMany);
        }
        let change = SettingsChange {
            allow_download: self.allow_download,
            allow_share: self.allow_share,
            allow_comments: self.allow_comments,
            allow_rating: self.allow_rating,
        };
        Ok((groups, Settings::default().with(&change)))
    }
}

impl From<ApproveRequest> for Decision {
    fn from(request: ApproveRequest) -> Self {
        Decision::Approve {
            content_hash: request.content_hash,
        }
    }
}

impl From<RejectRequest> for Decision {
    fn from(request: RejectRequest) -> Self {
        Decision::Reject {
            reason: request.reason,
        }
    }
}
