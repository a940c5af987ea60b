//! OpenAPI schemas of bodies the API has no Rust type for: raw bytes and
//! the OpenAPI document itself. The schema-only mirrors of the device wire
//! types of `signet-common` (which stays free of `utoipa`) are the device
//! and fleet views' ([`crate::devices::views`], [`crate::fleet::view`]).

use std::borrow::Cow;

use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::{RefOr, Schema};

/// Raw bytes (`application/octet-stream`, `image/png`): an OpenAPI
/// `string` of format `binary`.
pub struct Binary;

impl utoipa::PartialSchema for Binary {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
            .into()
    }
}

impl utoipa::ToSchema for Binary {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Binary")
    }
}

/// An OpenAPI 3.1 document (what `GET /api/v1/openapi.json` answers).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // schema only
pub struct OpenApiDocument {
    /// The OpenAPI version, `3.1.0`.
    openapi: String,
    /// Title, version and description of the API.
    #[schema(value_type = Object)]
    info: serde_json::Value,
    /// Every route and its operations.
    #[schema(value_type = Object)]
    paths: serde_json::Value,
    /// Reusable schemas and security schemes.
    #[schema(value_type = Option<Object>)]
    components: Option<serde_json::Value>,
}
