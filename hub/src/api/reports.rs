//! `/api/v1/reports/usage` (U3, L8): proof-of-play reports, as JSON pages
//! or a CSV download, and per-access-group usage summaries. The rules
//! (range, filters, who sees which event, CSV) are [`crate::fleet::reports`].

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::fleet::viewer;
use super::prelude::*;
use crate::fleet::reports::{
    self, GroupUsage, ItemSight, SummaryRange, UsageFilter, UsagePage, UsageQuery, UsageReport,
};

concern_routes! { usage_report; group_usage }

/// Proof-of-play events (U1, U3) inside the caller's domain, of items the
/// caller may view (M1: others are left out), filtered by
/// access group, user, device, node, item and time; a JSON page or a CSV
/// download (`format=csv`, `text/csv` with a header row).
#[utoipa::path(get, path = "/api/v1/reports/usage", tag = "reports", params(UsageFilter), security(("bearer" = [])),
    description = "Range `[from, to)`, default the 7 days before now, at most 366 days. `user=U`: events under an access group U is or was a member of. A CSV holds at most 100,000 rows (more: 400), JSON is paged.",
    responses((status = 200, description = "A JSON page, or with format=csv a text/csv download", body = UsagePage),
        (status = 400, description = "Invalid filter or range, or a CSV over the row limit", body = ErrorBody),
        (status = 404, description = "A filter names a node, group, user or item the caller cannot see", body = ErrorBody)))]
pub async fn usage_report(
    State(state): Ctx,
    caller: Caller,
    ApiQuery(filter): ApiQuery<UsageFilter>,
) -> Result<Response, ApiError> {
    let query = UsageQuery::parse(filter, state.now())?;
    let sight = ItemSight::load(&state, &caller.actor()).await?;
    match reports::usage_report(&state, (&viewer(&caller), &sight), &query)? {
        UsageReport::Page(page) => Ok(Json(page).into_response()),
        UsageReport::Csv { bytes, filename } => {
            let mut response = bytes.into_response();
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/csv; charset=utf-8"),
            );
            let disposition = format!("attachment; filename=\"{filename}\"");
            if let Ok(value) = HeaderValue::from_str(&disposition) {
                headers.insert(header::CONTENT_DISPOSITION, value);
            }
            Ok(response)
        }
    }
}

/// Usage of one access group (L8): plays, skips and time played per item,
/// over events of devices inside the caller's domain, of items the caller
/// may view (M1).
#[utoipa::path(get, path = "/api/v1/reports/usage/access-groups/{id}", tag = "reports",
    params(("id" = String, Path, description = "Access group id"), SummaryRange), security(("bearer" = [])),
    responses((status = 200, description = "The summary", body = GroupUsage), (status = 400, description = "Invalid range", body = ErrorBody),
        (status = 404, description = "No such group inside the caller's domain", body = ErrorBody)))]
pub async fn group_usage(
    State(state): Ctx,
    caller: Caller,
    Path(id): Id,
    ApiQuery(range): ApiQuery<SummaryRange>,
) -> Answer<GroupUsage> {
    let sight = ItemSight::load(&state, &caller.actor()).await?;
    let who = (&viewer(&caller), &sight);
    Ok(Json(reports::group_usage(&state, who, &id, &range)?))
}
