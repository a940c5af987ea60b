//! Routes of this concern (being written).

use utoipa_axum::router::OpenApiRouter;

use super::AppState;

/// This concern's routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
}
