//! The local API v1 (axum): routes, auth by role token, problem+json errors, request ids,
//! body limits, the event stream and the OpenAPI document.
//!
//! Every request gets an id (the client's `x-request-id` if it is sane, else a new UUID v7),
//! echoed in the `x-request-id` header, carried in the log span, in every problem body and
//! into the sale and its outbox entries.

use crate::app::App;
use crate::checkout::Refusal;
use crate::checkout::order::Actor;
use crate::tokens::Role;
use crate::wire::{kind_str, sale_out};
use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequest, FromRequestParts, MatchedPath, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use edge_api::*;
use edge_sync::domain::{OutboxEntry, OutboxState, RecordKind, new_id};
use edge_sync::store::OutboxQuery;
use jiff::Timestamp;
use serde::Deserialize;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use utoipa::OpenApi;
use uuid::Uuid;

tokio::task_local! {
    static REQUEST_ID: String;
}

fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// An error answer: `application/problem+json`.
#[derive(Debug)]
pub struct ApiError(pub Box<Problem>);

impl ApiError {
    pub fn new(status: StatusCode, slug: &str, title: &str, detail: impl Into<String>) -> ApiError {
        ApiError(Box::new(Problem {
            kind: format!("/problems/{slug}"),
            title: title.to_string(),
            status: status.as_u16(),
            detail: detail.into(),
            field: None,
            request_id: None,
        }))
    }

    pub fn field(mut self, f: impl Into<String>) -> ApiError {
        self.0.field = Some(f.into());
        self
    }

    fn internal(e: impl std::fmt::Display) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "store-unavailable", "Store unavailable", e.to_string())
    }
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> ApiError {
        use crate::checkout::RefusalKind as K;
        let status = match r.kind {
            K::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
            K::NotFound => StatusCode::NOT_FOUND,
            K::NeedsApproval => StatusCode::FORBIDDEN,
            K::Declined => StatusCode::PAYMENT_REQUIRED,
            K::Conflict => StatusCode::CONFLICT,
            K::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            K::InDoubt => StatusCode::GATEWAY_TIMEOUT,
            K::StorageLow => StatusCode::INSUFFICIENT_STORAGE,
        };
        let e = ApiError::new(status, r.slug, r.title, r.detail);
        match r.field {
            Some(f) => e.field(f),
            None => e,
        }
    }
}

impl From<edge_sync::store::StoreError> for ApiError {
    fn from(e: edge_sync::store::StoreError) -> ApiError {
        ApiError::internal(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut p = self.0;
        if p.request_id.is_none() {
            p.request_id = current_request_id();
        }
        let status = StatusCode::from_u16(p.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&p).unwrap_or_default();
        (status, [(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"))], body).into_response()
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// The caller's role, from `Authorization: Bearer <token>` (or `?access_token=` on the
/// event stream, which browsers cannot give headers).
pub struct Auth(pub Role);

impl Auth {
    fn require(&self, roles: &[Role]) -> ApiResult<()> {
        if roles.contains(&self.0) {
            Ok(())
        } else {
            let names: Vec<&str> = roles.iter().map(Role::as_str).collect();
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "Wrong role",
                format!("the {} token may not do this; allowed: {}", self.0.as_str(), names.join(", ")),
            ))
        }
    }
}

impl FromRequestParts<Arc<App>> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> ApiResult<Auth> {
        let from_header = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim)
            .map(str::to_string);
        let from_query = || {
            parts
                .uri
                .query()
                .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("access_token=").map(str::to_string)))
        };
        let token = match from_header {
            Some(t) => Some(t),
            None if parts.uri.path() == "/v1/events" => from_query(),
            None => None,
        };
        let Some(token) = token else {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Token missing",
                "send Authorization: Bearer <token> (tokens.json holds one per role)",
            )
            .field("Authorization"));
        };
        match app.tokens.role_of(&token) {
            Some(r) => Ok(Auth(r)),
            None => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Token unknown",
                "the bearer token is not valid",
            )
            .field("Authorization")),
        }
    }
}

/// A JSON body: 413 past the size limit, 415 for another content type, 400 for broken JSON,
/// 422 naming the field for a body of the wrong shape.
pub struct ApiJson<T>(pub T);

impl<T: serde::de::DeserializeOwned> FromRequest<Arc<App>> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, app: &Arc<App>) -> ApiResult<ApiJson<T>> {
        if let Some(ct) = req.headers().get(header::CONTENT_TYPE) {
            let ok = ct.to_str().map(|s| s.starts_with("application/json") || s.ends_with("+json")).unwrap_or(false);
            if !ok {
                return Err(ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported-media-type",
                    "JSON expected",
                    format!("Content-Type {ct:?} is not application/json"),
                )
                .field("Content-Type"));
            }
        }
        let limit = app.cfg.max_body_bytes;
        let bytes = read_body(req, limit).await?;
        let de = &mut serde_json::Deserializer::from_slice(&bytes);
        match serde_path_to_error::deserialize(de) {
            Ok(v) => Ok(ApiJson(v)),
            Err(e) => {
                let path = e.path().to_string();
                let inner = e.into_inner();
                if inner.is_data() {
                    let field = if path == "." { "(body)".to_string() } else { path };
                    Err(ApiError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "bad-field",
                        "Invalid field",
                        inner.to_string(),
                    )
                    .field(field))
                } else {
                    Err(ApiError::new(StatusCode::BAD_REQUEST, "malformed-json", "Malformed JSON", inner.to_string()))
                }
            }
        }
    }
}

/// Bytes past the limit that are still read (and dropped) before answering 413, so that a
/// client still writing its body reads the answer instead of a broken connection.
const DRAIN_BEYOND_LIMIT: usize = 8 * 1024 * 1024;

/// Reads a request body of at most `limit` bytes; a longer one is a 413 problem.
async fn read_body(req: Request, limit: usize) -> ApiResult<Vec<u8>> {
    use futures_util::StreamExt;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body-too-large",
            "Body too large",
            format!("the request body is larger than {limit} bytes"),
        )
    };
    let declared =
        req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit + DRAIN_BEYOND_LIMIT) {
        return Err(too_large());
    }
    let mut stream = req.into_body().into_data_stream();
    let mut buf = Vec::with_capacity(declared.unwrap_or(0).min(limit));
    let mut seen = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad-body", "Body unreadable", e.to_string()))?;
        seen += chunk.len();
        if seen > limit + DRAIN_BEYOND_LIMIT {
            return Err(too_large());
        }
        if seen <= limit {
            buf.extend_from_slice(&chunk);
        }
    }
    if seen > limit {
        return Err(too_large());
    }
    Ok(buf)
}

/// Query string parsing with a problem+json refusal.
fn query<T: serde::de::DeserializeOwned>(parts_uri: &axum::http::Uri) -> ApiResult<T> {
    Query::<T>::try_from_uri(parts_uri).map(|q| q.0).map_err(|e| {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "bad-query", "Invalid query", e.body_text()).field("(query)")
    })
}

fn sane_request_id(v: &HeaderValue) -> Option<String> {
    let s = v.to_str().ok()?;
    let ok = !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
    ok.then(|| s.to_string())
}

/// Request id, log span, metrics.
async fn request_context(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let rid = req.headers().get("x-request-id").and_then(sane_request_id).unwrap_or_else(|| new_id().to_string());
    let route =
        req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_string()).unwrap_or_else(|| "unmatched".into());
    let method = req.method().clone();
    let started = Instant::now();
    let span = tracing::info_span!("request", request_id = %rid, %method, route = %route);
    let mut resp = {
        let _e = span.enter();
        tracing::debug!(path = %req.uri().path(), "request");
        drop(_e);
        REQUEST_ID.scope(rid.clone(), next.run(req)).await
    };
    let status = resp.status();
    if let Ok(v) = HeaderValue::from_str(&rid) {
        resp.headers_mut().insert("x-request-id", v);
    }
    let took = started.elapsed();
    app.metrics
        .http_requests
        .get_or_create(&crate::metrics::HttpLabels {
            method: method.to_string(),
            route: route.clone(),
            status: status.as_u16(),
        })
        .inc();
    app.metrics
        .http_duration
        .get_or_create(&crate::metrics::RouteLabel { route: route.clone() })
        .observe(took.as_secs_f64());
    let _e = span.enter();
    if status.is_server_error() {
        tracing::warn!(status = status.as_u16(), micros = took.as_micros() as u64, "answered");
    } else {
        tracing::debug!(status = status.as_u16(), micros = took.as_micros() as u64, "answered");
    }
    resp
}

/// Builds the router over the shared state.
pub fn router(app: Arc<App>) -> Router {
    let body_limit = app.cfg.max_body_bytes;
    Router::new()
        .route("/v1/health", get(health))
        .route("/v1/openapi.json", get(openapi))
        .route("/v1/catalog/items", get(catalog_items))
        .route("/v1/catalog/barcode/{code}", get(catalog_barcode))
        .route("/v1/sales", get(list_sales).post(post_sale))
        .route("/v1/sales/{id}", get(get_sale))
        .route("/v1/sales/{id}/refunds", post(post_refund))
        .route("/v1/stock/adjustments", get(list_adjustments).post(post_adjustment))
        .route("/v1/stock/adjustments/{id}", get(get_adjustment))
        .route("/v1/sync", get(sync_status))
        .route("/v1/lanes", get(get_lanes))
        .route("/v1/sync/run", post(sync_run))
        .route("/v1/sync/report", get(sync_report))
        .route("/v1/outbox", get(list_outbox))
        .route("/v1/outbox/retry", post(retry_dead_all))
        .route("/v1/outbox/{id}", get(get_outbox))
        .route("/v1/outbox/{id}/retry", post(retry_dead_one))
        .route("/v1/devices", get(devices))
        .route("/v1/devices/{id}", get(device_one))
        .route("/v1/devices/{id}/health", post(device_health))
        .route("/v1/drawer/open", post(drawer_open))
        .route("/v1/payments", get(list_payments))
        .route("/v1/payments/{id}/settle", post(settle_payment))
        .route("/v1/terminal/{op}", post(terminal_op))
        .route("/v1/reports/x", get(report_x))
        .route("/v1/reports/z", post(report_z))
        .route("/v1/login", post(login))
        .route("/v1/whoami", get(whoami))
        .route("/v1/approvals", get(list_approvals).post(post_approval))
        .route("/v1/approvals/{id}", get(get_approval))
        .route("/v1/approvals/{id}/decision", post(decide_approval))
        .route("/v1/catalog/categories", get(categories))
        .route("/v1/catalog/favourites", get(favourites))
        .route("/v1/catalog/items/{sku}/image", get(item_image))
        .route("/v1/scale", get(scale))
        .route("/v1/sales/{id}/receipt", get(get_receipt).post(reprint))
        .route("/v1/voids", post(post_void))
        .route("/v1/events", get(events))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(app.clone(), request_context))
        .layer(axum::extract::DefaultBodyLimit::max(body_limit))
        .with_state(app)
}

async fn not_found(req: Request) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not-found",
        "No such path",
        format!("{} is not a path of the API v1", req.uri().path()),
    )
}

async fn method_not_allowed(req: Request) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "Method not allowed",
        format!("{} is not allowed on {}", req.method(), req.uri().path()),
    )
}

#[utoipa::path(get, path = "/v1/health", tag = "daemon", responses((status = 200, body = Health)))]
async fn health(State(app): State<Arc<App>>) -> Json<Health> {
    Json(app.health())
}

#[utoipa::path(get, path = "/v1/openapi.json", tag = "daemon", responses((status = 200, description = "This document")))]
async fn openapi() -> Response {
    let doc = ApiDoc::openapi();
    match doc.to_json() {
        Ok(s) => ([(header::CONTENT_TYPE, "application/json")], s).into_response(),
        Err(e) => ApiError::internal(e).into_response(),
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ItemsQuery {
    /// SKU, barcode, or part of the name.
    q: Option<String>,
    /// 1 to 500, default 50.
    limit: Option<usize>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// Most items a search examines per call; the cursor continues it.
const SEARCH_SCAN_LIMIT: usize = 20_000;

#[utoipa::path(get, path = "/v1/catalog/items", tag = "catalog", params(ItemsQuery),
    security(("bearer" = [])),
    responses((status = 200, body = ItemsPage), (status = 401, body = Problem), (status = 422, body = Problem)))]
async fn catalog_items(State(app): State<Arc<App>>, _auth: Auth, uri: axum::http::Uri) -> ApiResult<Json<ItemsPage>> {
    let q: ItemsQuery = query(&uri)?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad-query",
            "Bad limit",
            format!("limit {limit} must be 1 to 500"),
        )
        .field("limit"));
    }
    if q.q.as_ref().is_some_and(|s| s.len() > 100) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad-query",
            "Query too long",
            "q is at most 100 characters",
        )
        .field("q"));
    }
    let store = app.store.clone();
    let (entries, next) = tokio::task::spawn_blocking(move || {
        store.items_page(q.q.as_deref(), q.cursor.as_deref(), limit, SEARCH_SCAN_LIMIT)
    })
    .await
    .map_err(ApiError::internal)??;
    Ok(Json(ItemsPage {
        items: {
            let cutoff = age_cutoff(&app);
            entries.into_iter().map(|e| catalog_item(&app, e.item, &e.stock, &cutoff)).collect()
        },
        next_cursor: next,
    }))
}

/// The latest birth date of a customer old enough for age-restricted items today (the
/// store's business date less its minimum age), as the screens ask it.
fn age_cutoff(app: &App) -> String {
    let now = app.checkout.now();
    let today = edge_sync::domain::business_date(now, &app.cfg.timezone, app.cfg.business_day_start);
    edge_sync::domain::born_on_or_before(today, app.cfg.minimum_age).to_string()
}

fn catalog_item(
    app: &App,
    it: edge_sync::domain::Item,
    stock: &edge_sync::domain::StockLevel,
    cutoff: &str,
) -> CatalogItem {
    let pics = app.pictures.get();
    CatalogItem {
        image: it
            .image
            .as_deref()
            .filter(|u| pics.is_some_and(|p| p.has(u)))
            .map(|_| format!("/v1/catalog/items/{}/image", edge_sync::netsuite::tba::pct(&it.sku))),
        born_on_or_before: it.age_restricted.then(|| cutoff.to_string()),
        sku: it.sku,
        name: it.name,
        price_minor: it.price_minor,
        currency: it.currency.to_string(),
        kind: kind_str(it.kind).into(),
        tax_rate_bp: it.tax_rate_bp,
        barcodes: it.barcodes,
        category: it.category,
        age_restricted: it.age_restricted,
        stock: stock.available(),
        stock_at: stock.remote_at.map(|t| t.to_string()),
    }
}

#[utoipa::path(get, path = "/v1/catalog/barcode/{code}", tag = "catalog",
    params(("code" = String, Path, description = "EAN / UPC / any barcode of the item")),
    security(("bearer" = [])),
    responses((status = 200, body = CatalogItem), (status = 404, body = Problem)))]
async fn catalog_barcode(
    State(app): State<Arc<App>>,
    _auth: Auth,
    Path(code): Path<String>,
) -> ApiResult<Json<CatalogItem>> {
    if code.is_empty() || code.len() > 64 {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad-barcode",
            "Bad barcode",
            "a barcode is 1 to 64 characters",
        )
        .field("code"));
    }
    let item = app.store.item_by_barcode(&code)?.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown-barcode",
            "Unknown barcode",
            format!("no item has barcode {code:?}"),
        )
        .field("code")
    })?;
    let stock = app.store.stock(&item.sku)?;
    Ok(Json(catalog_item(&app, item, &stock, &age_cutoff(&app))))
}

/// Who asks the checkout: the token's role, the approving manager, this request's id.
fn actor_of(auth: &Auth, approver: Option<String>) -> Actor {
    Actor {
        role: auth.0.as_str().into(),
        approver,
        request_id: current_request_id().unwrap_or_else(|| new_id().to_string()),
        cashier: None,
    }
}

/// A `remote` query parameter: one of the remotes, or a 422 naming it.
fn remote_param(r: Option<&str>) -> ApiResult<Option<edge_sync::domain::Remote>> {
    let Some(r) = r else { return Ok(None) };
    edge_sync::domain::Remote::parse(r).map(Some).ok_or_else(|| {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "bad-query", "Unknown remote", format!("{r:?} is not a remote"))
            .field("remote")
    })
}

fn idempotency_key(headers: &HeaderMap) -> ApiResult<Option<String>> {
    let Some(v) = headers.get("idempotency-key") else { return Ok(None) };
    let s = v.to_str().ok().filter(|s| !s.is_empty() && s.len() <= 255 && s.bytes().all(|b| (0x21..0x7f).contains(&b)));
    match s {
        Some(s) => Ok(Some(s.to_string())),
        None => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad-idempotency-key",
            "Bad Idempotency-Key",
            "an Idempotency-Key is 1 to 255 visible ASCII characters",
        )
        .field("Idempotency-Key")),
    }
}

#[utoipa::path(post, path = "/v1/sales", tag = "sales", request_body = SaleIn,
    params(("Idempotency-Key" = Option<String>, Header, description = "Repeat to get the first result back")),
    security(("bearer" = [])),
    responses(
        (status = 201, body = SaleOut, description = "Completed and durable (flushed and fdatasync'd)"),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 409, body = Problem),
        (status = 413, body = Problem), (status = 422, body = Problem), (status = 503, body = Problem)))]
async fn post_sale(
    State(app): State<Arc<App>>,
    auth: Auth,
    headers: HeaderMap,
    ApiJson(req): ApiJson<SaleIn>,
) -> ApiResult<Response> {
    auth.require(&[Role::Cashier, Role::Kiosk])?;
    let key = idempotency_key(&headers)?;
    let approver = match headers.get("x-manager-pin") {
        Some(v) => {
            let pin = v.to_str().map_err(|_| {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "bad-pin", "Bad PIN", "X-Manager-Pin must be digits")
                    .field("X-Manager-Pin")
            })?;
            let m = verify_pin(&app, pin, "X-Manager-Pin")?;
            if m.role != Role::Manager {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "approval-required",
                    "Manager approval required",
                    format!("{} is not a manager; a price override or discount needs a manager's PIN", m.name),
                )
                .field("X-Manager-Pin"));
            }
            Some(m.name)
        }
        None => None,
    };
    let mut actor = actor_of(&auth, approver);
    actor.cashier = cashier_of(&app, req.cashier.as_deref())?;
    let age_check = req.age_check.as_ref().map(|a| age_check_of(&app, a)).transpose()?;
    let co = app.checkout.clone();
    let mut order = crate::wire::sale_order(req);
    order.age_check = age_check;
    let c = tokio::task::spawn_blocking(move || co.sell(order, key, &actor)).await.map_err(ApiError::internal)??;
    Ok(sale_created(c.record(), c.replayed()))
}

#[utoipa::path(post, path = "/v1/sales/{id}/refunds", tag = "sales", params(("id" = String, Path)), request_body = RefundIn,
    security(("bearer" = [])),
    responses((status = 201, body = SaleOut, description = "The refund (kind `refund`), paid back in cash or to the card"),
        (status = 402, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "More than is left to refund"), (status = 422, body = Problem)))]
async fn post_refund(
    State(app): State<Arc<App>>,
    auth: Auth,
    headers: HeaderMap,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<RefundIn>,
) -> ApiResult<Response> {
    auth.require(&[Role::Manager])?;
    let id = find_sale(&app, &id)?.id;
    let key = idempotency_key(&headers)?;
    let mut actor = actor_of(&auth, None);
    actor.cashier = cashier_of(&app, req.cashier.as_deref())?;
    let order = crate::wire::refund_order(req);
    let co = app.checkout.clone();
    let c =
        tokio::task::spawn_blocking(move || co.refund(id, order, key, &actor)).await.map_err(ApiError::internal)??;
    Ok(sale_created(c.record(), c.replayed()))
}

#[utoipa::path(post, path = "/v1/stock/adjustments", tag = "stock", request_body = AdjustmentIn,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry safe: the same key answers the stored adjustment")),
    security(("bearer" = [])),
    responses((status = 201, body = AdjustmentOut), (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 422, body = Problem), (status = 403, body = Problem), (status = 507, body = Problem)))]
async fn post_adjustment(
    State(app): State<Arc<App>>,
    auth: Auth,
    headers: HeaderMap,
    ApiJson(req): ApiJson<AdjustmentIn>,
) -> ApiResult<Response> {
    auth.require(&[Role::Manager])?;
    let key = idempotency_key(&headers)?;
    let actor = actor_of(&auth, None);
    let order = crate::wire::adjust_order(req);
    let co = app.checkout.clone();
    let (c, stock) =
        tokio::task::spawn_blocking(move || co.adjust(order, key, &actor)).await.map_err(ApiError::internal)??;
    let a = c.record();
    let mut resp = (StatusCode::CREATED, Json(crate::wire::adjustment_out(a, stock))).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/v1/stock/adjustments/{}", a.id)) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    if c.replayed() {
        resp.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(resp)
}

#[utoipa::path(get, path = "/v1/stock/adjustments", tag = "stock", params(PageQuery),
    security(("bearer" = [])),
    responses((status = 200, body = AdjustmentsPage), (status = 403, body = Problem)))]
async fn list_adjustments(
    State(app): State<Arc<App>>,
    auth: Auth,
    uri: axum::http::Uri,
) -> ApiResult<Json<AdjustmentsPage>> {
    auth.require(&[Role::Manager, Role::Tech])?;
    let q: PageQuery = query(&uri)?;
    let limit = page_limit(q.limit)?;
    let after = q.cursor.as_deref().map(|c| parse_uuid(c, "cursor")).transpose()?;
    let store = app.store.clone();
    let page = tokio::task::spawn_blocking(move || store.adjustments_page(after.as_ref(), limit))
        .await
        .map_err(ApiError::internal)??;
    let next = if page.len() == limit { page.last().map(|a| a.id.to_string()) } else { None };
    Ok(Json(AdjustmentsPage {
        adjustments: page.iter().map(|a| crate::wire::adjustment_out(a, None)).collect(),
        next_cursor: next,
    }))
}

#[utoipa::path(get, path = "/v1/stock/adjustments/{id}", tag = "stock", params(("id" = String, Path)),
    security(("bearer" = [])),
    responses((status = 200, body = AdjustmentOut), (status = 404, body = Problem), (status = 403, body = Problem)))]
async fn get_adjustment(
    State(app): State<Arc<App>>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<AdjustmentOut>> {
    auth.require(&[Role::Manager, Role::Tech])?;
    let id = parse_uuid(&id, "id")?;
    let a = app.store.adjustment(&id)?.ok_or_else(|| {
        ApiError::new(StatusCode::NOT_FOUND, "unknown-adjustment", "Unknown adjustment", format!("no adjustment {id}"))
            .field("id")
    })?;
    Ok(Json(crate::wire::adjustment_out(&a, None)))
}

/// Queues a sale's receipt (a reprint is marked COPY and gets its own job id: the
/// printer prints each job id once).
fn sale_created(sale: &edge_sync::domain::Sale, replayed: bool) -> Response {
    let mut resp = (StatusCode::CREATED, Json(sale_out(sale))).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/v1/sales/{}", sale.id)) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    if replayed {
        resp.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    resp
}

fn parse_uuid(s: &str, field: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(s).map_err(|_| {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "bad-id", "Bad id", format!("{s:?} is not a UUID")).field(field)
    })
}

/// A sale by its id or by its receipt number (`1-000042`, as printed and in the barcode).
fn find_sale(app: &App, id: &str) -> ApiResult<edge_sync::domain::Sale> {
    let found = if let Ok(uuid) = Uuid::parse_str(id) {
        app.store.lane_sale(&uuid)?
    } else if edge_sync::domain::receipt_seq(id).is_some() {
        app.store.sale_by_receipt(id)?
    } else {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad-id",
            "Bad id",
            format!("{id:?} is neither a sale id (UUID) nor a receipt number such as 1-000042"),
        )
        .field("id"));
    };
    found.ok_or_else(|| {
        ApiError::new(StatusCode::NOT_FOUND, "unknown-sale", "Unknown sale", format!("no sale {id}")).field("id")
    })
}

/// An age check as the checkout records it: its member of staff found in the config, or
/// the self-serve screen's request that staff approved. A 422 names what is wrong.
fn age_check_of(app: &App, a: &edge_api::AgeCheckIn) -> ApiResult<crate::checkout::order::AgeCheckOrder> {
    use edge_sync::domain::AgeCheckMethod;
    let bad = |field: &str, detail: String| {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "bad-age-check", "Bad age check", detail)
            .field(format!("age_check.{field}"))
    };
    let Some(method) = AgeCheckMethod::parse(&a.method) else {
        return Err(bad("method", format!("{:?}: dob, id_scan or approval", a.method)));
    };
    let staff = |m: &crate::staff::StaffMember| edge_sync::domain::StaffRef { id: m.id.clone(), name: m.name.clone() };
    match method {
        AgeCheckMethod::Dob | AgeCheckMethod::IdScan => {
            let Some(id) = a.verified_by.as_deref() else {
                return Err(bad("verified_by", "who checked: a member of staff's id".into()));
            };
            let Some(m) = app.cfg.staff.iter().find(|m| m.id == id) else {
                return Err(bad("verified_by", format!("{id:?} is not a member of staff in the config")));
            };
            let Some(d) = a.born_on_or_before.as_deref() else {
                return Err(bad("born_on_or_before", "the date asked about, YYYY-MM-DD".into()));
            };
            let date: jiff::civil::Date =
                d.parse().map_err(|_| bad("born_on_or_before", format!("{d:?} is not a date like 2008-12-06")))?;
            Ok(crate::checkout::order::AgeCheckOrder {
                method,
                born_on_or_before: Some(date),
                verified_by: staff(m),
                approval: None,
            })
        }
        AgeCheckMethod::Approval => {
            let Some(id) = a.approval_id else {
                return Err(bad("approval_id", "the request staff approved (POST /v1/approvals)".into()));
            };
            let Some(ap) = app.approvals.get(&id) else {
                return Err(bad("approval_id", format!("no request {id} (requests expire, and a restart drops them)")));
            };
            if ap.kind != crate::staff::ApprovalKind::Age || ap.state != crate::staff::ApprovalState::Approved {
                return Err(bad(
                    "approval_id",
                    format!(
                        "request {id} is a {} request, {}: not an approved age check",
                        ap.kind.as_str(),
                        ap.state.as_str()
                    ),
                ));
            }
            let by = ap.decided_by.clone().unwrap_or_default();
            let verified_by = match app.cfg.staff.iter().find(|m| m.name == by) {
                Some(m) => staff(m),
                None => edge_sync::domain::StaffRef { id: String::new(), name: by },
            };
            Ok(crate::checkout::order::AgeCheckOrder {
                method,
                born_on_or_before: None,
                verified_by,
                approval: Some(id),
            })
        }
    }
}

/// The member of staff a body names as cashier (`[staff.ID]`), or a 422 naming the field.
fn cashier_of(app: &App, id: Option<&str>) -> ApiResult<Option<edge_sync::domain::StaffRef>> {
    let Some(id) = id else { return Ok(None) };
    match app.cfg.staff.iter().find(|m| m.id == id) {
        Some(m) => Ok(Some(edge_sync::domain::StaffRef { id: m.id.clone(), name: m.name.clone() })),
        None => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown-cashier",
            "Unknown cashier",
            format!("{id:?} is not a member of staff in the config"),
        )
        .field("cashier")),
    }
}

#[utoipa::path(get, path = "/v1/sales/{id}", tag = "sales",
    params(("id" = String, Path, description = "The sale's id, or its receipt number (1-000042)")),
    security(("bearer" = [])),
    responses((status = 200, body = SaleOut), (status = 404, body = Problem), (status = 403, body = Problem),
        (status = 422, body = Problem)))]
async fn get_sale(State(app): State<Arc<App>>, auth: Auth, Path(id): Path<String>) -> ApiResult<Json<SaleOut>> {
    auth.require(&[Role::Cashier, Role::Manager, Role::Tech])?;
    let sale = find_sale(&app, &id)?;
    let mut out = sale_out(&sale);
    out.receipt = Some(crate::wire::receipt_out(app.checkout.after.receipt(&sale.id)));
    // What is left to refund, line by line (a refund started from the receipt picks from it).
    let done = app.store.refunded(&sale.id)?;
    for l in &mut out.lines {
        l.refunded = done.get(&l.line_no).copied().unwrap_or(0);
    }
    Ok(Json(out))
}

#[utoipa::path(get, path = "/v1/sales/{id}/receipt", tag = "sales",
    params(("id" = String, Path, description = "The sale's id, or its receipt number (1-000042)")),
    security(("bearer" = [])),
    responses((status = 200, content_type = "text/plain", body = String,
            description = "The receipt's text as printed (a barcode reads `[BARCODE CODE128 DATA]`)"),
        (status = 404, body = Problem), (status = 403, body = Problem), (status = 422, body = Problem)))]
async fn get_receipt(State(app): State<Arc<App>>, auth: Auth, Path(id): Path<String>) -> ApiResult<Response> {
    auth.require(&[Role::Cashier, Role::Manager, Role::Tech])?;
    let sale = find_sale(&app, &id)?;
    let text = app.checkout.receipt(&sale, false).text();
    let mut resp = text.into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    if let Some(no) = sale.receipt_no.as_deref().and_then(|n| HeaderValue::from_str(n).ok()) {
        resp.headers_mut().insert("receipt-number", no);
    }
    Ok(resp)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct PageQuery {
    /// 1 to 500, default 100.
    limit: Option<usize>,
    cursor: Option<String>,
}

/// `GET /v1/sales` filters, to find a sale for a refund without its receipt.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct SalesQuery {
    /// 1 to 500, default 100.
    limit: Option<usize>,
    cursor: Option<String>,
    /// Only sales of this business date (`YYYY-MM-DD`, the store's day).
    date: Option<String>,
    /// Only sales whose total is this many minor units.
    total_minor: Option<i64>,
}

fn page_limit(l: Option<usize>) -> ApiResult<usize> {
    let limit = l.unwrap_or(100);
    if (1..=500).contains(&limit) {
        Ok(limit)
    } else {
        Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad-query",
            "Bad limit",
            format!("limit {limit} must be 1 to 500"),
        )
        .field("limit"))
    }
}

#[utoipa::path(get, path = "/v1/sales", tag = "sales", params(SalesQuery),
    security(("bearer" = [])),
    responses((status = 200, body = SalesPage), (status = 403, body = Problem), (status = 422, body = Problem)))]
async fn list_sales(State(app): State<Arc<App>>, auth: Auth, uri: axum::http::Uri) -> ApiResult<Json<SalesPage>> {
    auth.require(&[Role::Cashier, Role::Manager, Role::Tech])?;
    let q: SalesQuery = query(&uri)?;
    let limit = page_limit(q.limit)?;
    let after = q.cursor.as_deref().map(|c| parse_uuid(c, "cursor")).transpose()?;
    let date = q
        .date
        .as_deref()
        .map(|d| {
            d.parse::<jiff::civil::Date>().map_err(|_| {
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "bad-query",
                    "Bad date",
                    format!("date {d:?} is not a date (YYYY-MM-DD)"),
                )
                .field("date")
            })
        })
        .transpose()?;
    let store = app.store.clone();
    let (sales, next) = if date.is_none() && q.total_minor.is_none() {
        let sales = tokio::task::spawn_blocking(move || store.sales_page(after.as_ref(), limit))
            .await
            .map_err(ApiError::internal)??;
        let next = if sales.len() == limit { sales.last().map(|s| s.id.to_string()) } else { None };
        (sales, next)
    } else {
        let tz = app.cfg.timezone.clone();
        let total = q.total_minor;
        tokio::task::spawn_blocking(move || search_sales(&*store, &tz, after, date, total, limit))
            .await
            .map_err(ApiError::internal)??
    };
    Ok(Json(SalesPage { sales: sales.iter().map(sale_out).collect(), next_cursor: next }))
}

/// Sales of one business date and / or one total. Ids are UUID v7, so a date's sales lie
/// between the ids of a day before and two days after its midnight (whatever the day's start
/// hour); only that span is read. Without a date the whole journal is searched, at most
/// `SEARCH_SCAN` sales per call (the cursor goes on from where the scan stopped).
fn search_sales(
    store: &dyn edge_sync::store::Store,
    tz: &jiff::tz::TimeZone,
    after: Option<Uuid>,
    date: Option<jiff::civil::Date>,
    total: Option<i64>,
    limit: usize,
) -> ApiResult<(Vec<edge_sync::domain::Sale>, Option<String>)> {
    const SEARCH_SCAN: usize = 20_000;
    let span = date.and_then(|d| {
        let from = d.yesterday().ok()?.to_zoned(tz.clone()).ok()?.timestamp();
        let to = d.checked_add(jiff::Span::new().days(2)).ok()?.to_zoned(tz.clone()).ok()?.timestamp();
        Some((from, to))
    });
    let floor = span.map(|(from, _)| {
        let ms = from.as_millisecond().max(0) as u128;
        Uuid::from_u128((ms << 80) | (0x7u128 << 76) | (0x2u128 << 62))
    });
    let mut cursor = match (after, floor) {
        (Some(a), Some(f)) => Some(a.max(f)),
        (a, f) => a.or(f),
    };
    let mut found = Vec::new();
    let mut scanned = 0usize;
    loop {
        let page = store.sales_page(cursor.as_ref(), 500)?;
        let Some(last) = page.last().map(|s| s.id) else { return Ok((found, None)) };
        for s in page.iter() {
            scanned += 1;
            cursor = Some(s.id);
            if let Some((_, to)) = span
                && s.created_at > to
            {
                return Ok((found, None));
            }
            if date.is_some_and(|d| s.business_date != d) || total.is_some_and(|t| s.total_minor != t) {
                continue;
            }
            found.push(s.clone());
            if found.len() == limit {
                return Ok((found, Some(s.id.to_string())));
            }
        }
        if page.len() < 500 {
            return Ok((found, None));
        }
        if scanned >= SEARCH_SCAN {
            return Ok((found, Some(last.to_string())));
        }
    }
}

#[utoipa::path(get, path = "/v1/lanes", tag = "sync", security(("bearer" = [])),
    responses((status = 200, body = edge_api::LanesOut, description = "Every lane of the store this lane has seen, its lag, what it has not published, the bus's health, and the flags across lanes"),
        (status = 403, body = Problem)))]
async fn get_lanes(State(app): State<Arc<App>>, auth: Auth) -> ApiResult<Json<edge_api::LanesOut>> {
    auth.require(&[Role::Cashier, Role::Manager, Role::Tech])?;
    let app2 = app.clone();
    let v = tokio::task::spawn_blocking(move || crate::lanes::view(&app2)).await.map_err(ApiError::internal)?;
    v.map(Json).map_err(ApiError::internal)
}

#[utoipa::path(get, path = "/v1/sync", tag = "sync", security(("bearer" = [])),
    responses((status = 200, body = SyncStatus)))]
async fn sync_status(State(app): State<Arc<App>>, _auth: Auth) -> Json<SyncStatus> {
    Json(SyncStatus { remotes: app.remote_statuses(Timestamp::now()) })
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct OutboxParams {
    /// `cloud`, `lightspeed` or `netsuite`.
    remote: Option<String>,
    /// `pending`, `in_flight`, `confirmed`, `unknown`, `rejected` or `dead`.
    state: Option<String>,
    /// Only the entries of this record (a sale id); no paging.
    record: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

fn outbox_out(e: OutboxEntry) -> OutboxEntryOut {
    let detail = match &e.state {
        OutboxState::Confirmed { remote_id } => Some(remote_id.clone()),
        OutboxState::Rejected { reason } | OutboxState::Dead { reason } => Some(reason.clone()),
        _ => None,
    };
    OutboxEntryOut {
        id: e.id,
        remote: e.remote.to_string(),
        kind: match e.kind {
            RecordKind::Sale => "sale".into(),
            RecordKind::Adjustment => "adjustment".into(),
        },
        record_id: e.record_id,
        state: e.state.name().into(),
        detail,
        attempts: e.attempts,
        created_at: e.created_at.to_string(),
        updated_at: e.updated_at.to_string(),
        request_id: e.request_id,
    }
}

#[utoipa::path(get, path = "/v1/outbox", tag = "sync", params(OutboxParams),
    security(("bearer" = [])),
    responses((status = 200, body = OutboxPage), (status = 403, body = Problem), (status = 422, body = Problem)))]
async fn list_outbox(State(app): State<Arc<App>>, auth: Auth, uri: axum::http::Uri) -> ApiResult<Json<OutboxPage>> {
    auth.require(&[Role::Manager, Role::Tech])?;
    let q: OutboxParams = query(&uri)?;
    let limit = page_limit(q.limit)?;
    if let Some(r) = &q.record {
        let id = parse_uuid(r, "record")?;
        let entries = app.store.outbox_entries_of(&id)?;
        return Ok(Json(OutboxPage { entries: entries.into_iter().map(outbox_out).collect(), next_cursor: None }));
    }
    use edge_sync::domain::OutboxStateKind;
    let state = match &q.state {
        None => None,
        Some(s) => Some(OutboxStateKind::parse(s).ok_or_else(|| {
            let names: Vec<&str> = OutboxStateKind::ALL.iter().map(|k| k.as_str()).collect();
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "bad-query",
                "Unknown state",
                format!("{s:?} is not a state; one of {}", names.join(", ")),
            )
            .field("state")
        })?),
    };
    let remote = remote_param(q.remote.as_deref())?;
    // The cursor is `remote/entry-id`.
    let after = match &q.cursor {
        Some(c) => {
            let (r, id) = c.split_once('/').ok_or_else(|| {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "bad-query", "Bad cursor", "use next_cursor as given")
                    .field("cursor")
            })?;
            let r = edge_sync::domain::Remote::parse(r).ok_or_else(|| {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "bad-query", "Bad cursor", "use next_cursor as given")
                    .field("cursor")
            })?;
            Some((r, parse_uuid(id, "cursor")?))
        }
        None => None,
    };
    let store = app.store.clone();
    let oq = OutboxQuery { remote, state, after, limit };
    let entries = tokio::task::spawn_blocking(move || store.outbox_page(&oq)).await.map_err(ApiError::internal)??;
    let next = if entries.len() == limit { entries.last().map(|e| format!("{}/{}", e.remote, e.id)) } else { None };
    Ok(Json(OutboxPage { entries: entries.into_iter().map(outbox_out).collect(), next_cursor: next }))
}

/// The outbox entry, or 404 naming the id.
fn entry_or_404(app: &App, id: &Uuid) -> ApiResult<OutboxEntry> {
    app.store.outbox_entry(id)?.ok_or_else(|| {
        ApiError::new(StatusCode::NOT_FOUND, "unknown-entry", "Unknown outbox entry", format!("no outbox entry {id}"))
            .field("id")
    })
}

#[utoipa::path(get, path = "/v1/outbox/{id}", tag = "sync", params(("id" = String, Path)),
    security(("bearer" = [])),
    responses((status = 200, body = OutboxEntryOut), (status = 404, body = Problem)))]
async fn get_outbox(
    State(app): State<Arc<App>>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<OutboxEntryOut>> {
    auth.require(&[Role::Manager, Role::Tech])?;
    let id = parse_uuid(&id, "id")?;
    let e = entry_or_404(&app, &id)?;
    Ok(Json(outbox_out(e)))
}

#[utoipa::path(post, path = "/v1/sync/run", tag = "sync", security(("bearer" = [])),
    responses((status = 202, body = SyncStatus, description = "Backoff forgotten, open breakers probed, every worker woken"),
        (status = 403, body = Problem)))]
async fn sync_run(State(app): State<Arc<App>>, auth: Auth) -> ApiResult<(StatusCode, Json<SyncStatus>)> {
    auth.require(&[Role::Manager, Role::Tech])?;
    let now = Timestamp::now();
    app.engine.nudge(now);
    if let Some(l) = &app.cloud_link {
        l.wake_pull.notify_one();
    }
    audit(&app, &auth, "sync.run", "all remotes", String::new())?;
    Ok((StatusCode::ACCEPTED, Json(SyncStatus { remotes: app.remote_statuses(now) })))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ReportParams {
    /// The business date, YYYY-MM-DD (default: today's in the store's time zone).
    date: Option<String>,
}

#[utoipa::path(get, path = "/v1/sync/report", tag = "sync", security(("bearer" = [])), params(ReportParams),
    responses((status = 200, body = SyncReport, description = "The day reconciled with Lightspeed and NetSuite"),
        (status = 400, body = Problem), (status = 403, body = Problem)))]
async fn sync_report(
    State(app): State<Arc<App>>,
    auth: Auth,
    axum::extract::Query(p): axum::extract::Query<ReportParams>,
) -> ApiResult<Json<SyncReport>> {
    auth.require(&[Role::Manager, Role::Tech])?;
    let date = match p.date.as_deref() {
        Some(d) => d.parse::<jiff::civil::Date>().map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad-date",
                "Bad date",
                format!("date: {d:?} is not YYYY-MM-DD: {e}"),
            )
        })?,
        None => edge_sync::domain::business_date(Timestamp::now(), &app.cfg.timezone, app.cfg.business_day_start),
    };
    let (from, to) = crate::reconcile::window(&app, date).map_err(ApiError::internal)?;
    let reports = crate::reconcile::report(&app, date).await.map_err(ApiError::internal)?;
    let remotes = reports
        .into_iter()
        .map(|r| RemoteReconciliation {
            clean: r.clean(),
            remote: r.remote,
            local_count: r.local.count,
            local_total_minor: r.local.total_minor,
            remote_count: r.remote_side.count,
            remote_total_minor: r.remote_side.total_minor,
            lost: r
                .lost
                .into_iter()
                .map(|l| ReconLocal { sale_id: l.sale_id, total_minor: l.total_minor, state: l.state })
                .collect(),
            duplicated: r
                .duplicated
                .into_iter()
                .map(|(sale_id, remote_ids)| ReconDuplicate { sale_id, remote_ids })
                .collect(),
            unexpected: r
                .unexpected
                .into_iter()
                .map(|u| ReconRemote { reference: u.reference, remote_id: u.remote_id, total_minor: u.total_minor })
                .collect(),
            differs: r
                .differs
                .into_iter()
                .map(|d| ReconDiffers { sale_id: d.sale_id, local_minor: d.local_minor, remote_minor: d.remote_minor })
                .collect(),
            error: r.error,
        })
        .collect();
    let lane_flags = app
        .store
        .lane_flags()?
        .into_iter()
        .filter(|f| f.at >= from && f.at < to)
        .map(|f| edge_api::LaneFlagOut {
            id: f.id,
            at: f.at.to_string(),
            kind: f.kind,
            lane: f.lane,
            record_id: f.record_id,
            detail: f.detail,
        })
        .collect();
    Ok(Json(SyncReport {
        date: date.to_string(),
        store_id: app.cfg.store_id.clone(),
        window_utc: vec![from.to_string(), to.to_string()],
        remotes,
        lane_flags,
    }))
}

fn audit(app: &App, auth: &Auth, action: &str, subject: &str, detail: String) -> ApiResult<()> {
    let rid = current_request_id().unwrap_or_default();
    app.store.append_audit(&crate::checkout::audit_record(
        Timestamp::now(),
        auth.0.as_str(),
        action,
        subject,
        &rid,
        detail,
    ))?;
    Ok(())
}

/// Dead letters handed back to the worker at most per call.
const MAX_RETRY_PER_CALL: usize = 10_000;

/// Moves dead letters (rejected or dead) back to pending. The entry keeps its id, so the
/// remote keeps the record once however often it is replayed.
fn retry_entries(app: &App, entries: &[OutboxEntry]) -> ApiResult<Vec<OutboxEntry>> {
    let moves: Vec<edge_sync::store::OutboxMove> = entries
        .iter()
        .filter(|e| matches!(e.state, OutboxState::Rejected { .. } | OutboxState::Dead { .. }))
        .map(|e| edge_sync::store::OutboxMove {
            remote: e.remote,
            id: e.id,
            expected: e.state.clone(),
            next: OutboxState::Pending,
        })
        .collect();
    let res = app.store.transition_outbox_durable(&moves, Timestamp::now())?;
    app.engine.nudge(Timestamp::now());
    Ok(res.into_iter().filter_map(Result::ok).collect())
}

#[utoipa::path(post, path = "/v1/outbox/{id}/retry", tag = "sync", params(("id" = String, Path)),
    security(("bearer" = [])),
    responses((status = 200, body = OutboxEntryOut, description = "The dead letter is pending again"),
        (status = 404, body = Problem), (status = 409, body = Problem, description = "The entry is not a dead letter")))]
async fn retry_dead_one(
    State(app): State<Arc<App>>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<OutboxEntryOut>> {
    auth.require(&[Role::Manager, Role::Tech])?;
    let id = parse_uuid(&id, "id")?;
    let e = entry_or_404(&app, &id)?;
    if !matches!(e.state, OutboxState::Rejected { .. } | OutboxState::Dead { .. }) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not-dead",
            "Not a dead letter",
            format!("entry {id} is {}; only rejected or dead entries are replayed", e.state.name()),
        )
        .field("id"));
    }
    let done = retry_entries(&app, std::slice::from_ref(&e))?;
    let Some(out) = done.into_iter().next() else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not-dead",
            "Not a dead letter",
            "the entry changed meanwhile",
        ));
    };
    audit(&app, &auth, "outbox.retry", &id.to_string(), format!("remote {}", out.remote))?;
    tracing::info!(entry = %id, remote = %out.remote, "dead letter replayed");
    Ok(Json(outbox_out(out)))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct RetryParams {
    /// Only this remote's dead letters.
    remote: Option<String>,
}

#[utoipa::path(post, path = "/v1/outbox/retry", tag = "sync", params(RetryParams),
    security(("bearer" = [])),
    responses((status = 200, body = RetryOut, description = "Dead letters pending again")))]
async fn retry_dead_all(State(app): State<Arc<App>>, auth: Auth, uri: axum::http::Uri) -> ApiResult<Json<RetryOut>> {
    auth.require(&[Role::Manager, Role::Tech])?;
    let q: RetryParams = query(&uri)?;
    let remote = remote_param(q.remote.as_deref())?;
    let app2 = app.clone();
    let (done, more) = tokio::task::spawn_blocking(move || -> ApiResult<(Vec<OutboxEntry>, bool)> {
        let mut dead = Vec::new();
        for state in [edge_sync::domain::OutboxStateKind::Rejected, edge_sync::domain::OutboxStateKind::Dead] {
            let mut after = None;
            loop {
                let oq = OutboxQuery { remote, state: Some(state), after, limit: 1000 };
                let page = app2.store.outbox_page(&oq)?;
                let Some(last) = page.last() else { break };
                after = Some((last.remote, last.id));
                let full = page.len() < 1000;
                dead.extend(page);
                if full || dead.len() > MAX_RETRY_PER_CALL {
                    break;
                }
            }
        }
        let more = dead.len() > MAX_RETRY_PER_CALL;
        dead.truncate(MAX_RETRY_PER_CALL);
        Ok((retry_entries(&app2, &dead)?, more))
    })
    .await
    .map_err(ApiError::internal)??;
    audit(&app, &auth, "outbox.retry_all", q_remote_label(&uri), format!("{} entries", done.len()))?;
    tracing::info!(entries = done.len(), "dead letters replayed");
    Ok(Json(RetryOut { retried: done.into_iter().map(outbox_out).collect(), more }))
}

fn q_remote_label(uri: &axum::http::Uri) -> &str {
    uri.query().unwrap_or("all remotes")
}

#[utoipa::path(get, path = "/v1/devices", tag = "devices", security(("bearer" = [])),
    responses((status = 200, body = DevicesList, description = "Devices driven by this daemon, with state, health and statistics")))]
async fn devices(State(app): State<Arc<App>>, _auth: Auth) -> Json<DevicesList> {
    Json(DevicesList { devices: app.devices.get().map(|d| d.list()).unwrap_or_default() })
}

fn payment_out(p: &edge_sync::domain::Payment, now: Timestamp) -> PaymentOut {
    PaymentOut {
        id: p.id,
        kind: format!("{:?}", p.kind).to_lowercase(),
        sale_id: p.sale_id,
        amount_minor: p.amount_minor,
        currency: p.currency.to_string(),
        terminal: p.terminal.clone(),
        state: serde_json::to_value(p.state).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default(),
        reason: p.reason.clone(),
        offline: p.offline,
        forwarded: p.forwarded,
        pan_masked: p.card.as_ref().and_then(|c| c.pan_masked.clone()),
        receipt_no: p.card.as_ref().and_then(|c| c.receipt_no),
        idempotency_key: p.idempotency_key.clone(),
        created_at: p.created_at.to_string(),
        updated_at: p.updated_at.to_string(),
        age_s: now.duration_since(p.created_at).as_secs().max(0) as u64,
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct PaymentsQuery {
    /// Only payments not settled yet, and offline ones not forwarded.
    open: Option<bool>,
    /// 1 to 1000, default 100.
    limit: Option<usize>,
}

#[utoipa::path(get, path = "/v1/payments", tag = "payments", params(PaymentsQuery), security(("bearer" = [])),
    responses((status = 200, body = PaymentsList), (status = 403, body = Problem)))]
async fn list_payments(State(app): State<Arc<App>>, auth: Auth, uri: axum::http::Uri) -> ApiResult<Json<PaymentsList>> {
    auth.require(&[Role::Cashier, Role::Manager, Role::Tech])?;
    let q: PaymentsQuery = query(&uri)?;
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let now = Timestamp::now();
    let list = if q.open.unwrap_or(false) { app.store.payments_open()? } else { app.store.payments_recent(limit)? };
    let book = crate::checkout::payments::offline_book(&app.checkout).map_err(ApiError::internal)?;
    Ok(Json(PaymentsList {
        payments: list.iter().take(limit).map(|p| payment_out(p, now)).collect(),
        offline_pending: book.count,
        offline_pending_minor: book.total_minor,
        offline_oldest_age_s: book.oldest.map(|o| now.duration_since(o).as_secs().max(0) as u64),
        forced_offline: app.checkout.forced_offline(),
        terminal_offline: app.devices.get().is_some_and(|d| d.terminal_offline()),
    }))
}

#[utoipa::path(post, path = "/v1/payments/{id}/settle", tag = "payments", params(("id" = String, Path)),
    request_body = PaymentSettleIn, security(("bearer" = [])),
    responses((status = 200, body = PaymentOut, description = "Settled: failed (not charged), or recorded with its sale"),
        (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "Not in doubt"), (status = 422, body = Problem)))]
async fn settle_payment(
    State(app): State<Arc<App>>,
    auth: Auth,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<PaymentSettleIn>,
) -> ApiResult<Json<PaymentOut>> {
    auth.require(&[Role::Manager])?;
    let id = parse_uuid(&id, "id")?;
    let charged = match (req.charged, req.receipt_no) {
        (true, Some(r)) if (1..=9999).contains(&r) => Some(r),
        (true, _) => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "receipt-required",
                "Receipt number required",
                "a payment settled as charged needs the terminal's receipt number for it (1 to 9999)",
            )
            .field("receipt_no"));
        }
        (false, _) => None,
    };
    let app2 = app.clone();
    let who = auth.0.as_str().to_string();
    let p = tokio::task::spawn_blocking(move || {
        crate::checkout::payments::settle_by_hand(&app2.checkout, id, charged, &who)
    })
    .await
    .map_err(ApiError::internal)??;
    audit(&app, &auth, "payment.settle", &id.to_string(), format!("charged: {:?}", charged))?;
    Ok(Json(payment_out(&p, Timestamp::now())))
}

#[utoipa::path(post, path = "/v1/terminal/{op}", tag = "payments", params(("op" = String, Path,
        description = "status, diagnosis, eod (manager, tech), abort (cashier, kiosk: stops the payment under way), offline (manager: body ForceOfflineIn)")),
    security(("bearer" = [])),
    responses((status = 200, body = TerminalOut), (status = 403, body = Problem), (status = 404, body = Problem), (status = 503, body = Problem)))]
async fn terminal_op(
    State(app): State<Arc<App>>,
    auth: Auth,
    Path(op): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Json<TerminalOut>> {
    use crate::devices::TerminalOp;
    let unknown = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown-operation",
            "Unknown terminal operation",
            format!("{op:?}: status, diagnosis, eod, abort or offline"),
        )
        .field("op")
    };
    let devices = app.devices.get().cloned().filter(|d| d.terminal_id().is_some()).ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no-terminal",
            "No payment terminal",
            "no card terminal is configured",
        )
    })?;
    let done = |text: &str| TerminalOut {
        ok: true,
        code: 0,
        text: text.into(),
        status: None,
        receipt: Vec::new(),
        forwarded: 0,
    };
    match op.as_str() {
        "abort" => {
            auth.require(&[Role::Cashier, Role::Kiosk, Role::Manager])?;
            devices.abort_terminal();
            audit(&app, &auth, "terminal.abort", "terminal", String::new())?;
            return Ok(Json(done("abort asked; the payment under way ends as aborted")));
        }
        "offline" => {
            auth.require(&[Role::Manager])?;
            let req: ForceOfflineIn = serde_json::from_slice(&body).map_err(|e| {
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "bad-body",
                    "Bad body",
                    format!("expected {{\"force\": true|false}}: {e}"),
                )
            })?;
            app.checkout.force_offline(req.force);
            audit(&app, &auth, "terminal.force_offline", "terminal", req.force.to_string())?;
            tracing::warn!(force = req.force, "card acceptance forced offline by a manager");
            return Ok(Json(done(if req.force {
                "cards are taken under the offline policy"
            } else {
                "offline forcing lifted"
            })));
        }
        "status" | "diagnosis" | "eod" => auth.require(&[Role::Manager, Role::Tech])?,
        _ => return Err(unknown()),
    }
    let top = match op.as_str() {
        "status" => TerminalOp::Status,
        "diagnosis" => TerminalOp::Diagnosis,
        _ => TerminalOp::EndOfDay,
    };
    let app2 = app.clone();
    let (r, forwarded) = tokio::task::spawn_blocking(move || match top {
        TerminalOp::EndOfDay => match crate::checkout::payments::end_of_day(&app2.checkout) {
            Ok((o, fwd)) => (Ok(o), fwd),
            Err(e) => (Err(crate::devices::not_run(e)), 0),
        },
        _ => (devices.terminal(top, Box::new(|_| {}), std::time::Duration::from_secs(120)), 0),
    })
    .await
    .map_err(ApiError::internal)?;
    audit(&app, &auth, &format!("terminal.{op}"), "terminal", format!("{:?}", r.as_ref().map(|o| o.code)))?;
    match r {
        Ok(o) => Ok(Json(TerminalOut {
            ok: o.approved,
            code: o.code,
            text: o.text.clone(),
            status: o.info.as_ref().and_then(|i| i.text.clone()),
            receipt: o.receipt,
            forwarded,
        })),
        Err(f) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "terminal-unavailable",
            "Terminal unavailable",
            f.to_string(),
        )),
    }
}

/// `GET /v1/reports/x?scope=lane|store`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ReportQuery {
    /// `lane` (the default: this lane's totals) or `store` (every lane's, from the bus).
    scope: Option<String>,
}

#[utoipa::path(get, path = "/v1/reports/x", tag = "reports", security(("bearer" = [])), params(ReportQuery),
    responses((status = 200, body = crate::reports::Report), (status = 403, body = Problem)))]
async fn report_x(
    State(app): State<Arc<App>>,
    auth: Auth,
    Query(q): Query<ReportQuery>,
) -> ApiResult<Json<crate::reports::Report>> {
    auth.require(&[Role::Cashier, Role::Manager, Role::Tech])?;
    let store_wide = match q.scope.as_deref() {
        None | Some("lane") => false,
        Some("store") => true,
        Some(other) => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "bad-scope",
                "Bad scope",
                format!("{other:?} must be \"lane\" (this lane's totals) or \"store\" (every lane's)"),
            )
            .field("scope"));
        }
    };
    let app2 = app.clone();
    let r = tokio::task::spawn_blocking(move || {
        if store_wide {
            crate::reports::store_x_report(&app2.checkout)
        } else {
            crate::reports::x_report(&app2.checkout)
        }
    })
    .await
    .map_err(ApiError::internal)?;
    r.map(Json).map_err(ApiError::internal)
}

#[utoipa::path(post, path = "/v1/reports/z", tag = "reports", security(("bearer" = [])),
    responses((status = 200, body = crate::reports::Report, description = "Closed: terminal end-of-day run, totals kept"),
        (status = 403, body = Problem), (status = 503, body = Problem)))]
async fn report_z(State(app): State<Arc<App>>, auth: Auth) -> ApiResult<Json<crate::reports::Report>> {
    auth.require(&[Role::Manager])?;
    let app2 = app.clone();
    let r = tokio::task::spawn_blocking(move || crate::reports::z_report(&app2.checkout))
        .await
        .map_err(ApiError::internal)?;
    let r = r.map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "z-not-closed", "Z report not closed", e))?;
    audit(
        &app,
        &auth,
        "report.z",
        &r.number.to_string(),
        format!("{} sales, total {}", r.totals.sales, r.totals.total_minor),
    )?;
    Ok(Json(r))
}

fn no_device(id: &str) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "unknown-device", "Unknown device", format!("no device {id:?} is configured"))
        .field("id")
}

#[utoipa::path(get, path = "/v1/devices/{id}", tag = "devices", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = DeviceOut), (status = 404, body = Problem)))]
async fn device_one(State(app): State<Arc<App>>, _auth: Auth, Path(id): Path<String>) -> ApiResult<Json<DeviceOut>> {
    app.devices.get().and_then(|d| d.get(&id)).map(Json).ok_or_else(|| no_device(&id))
}

/// Longest a health check may take (the interactive scanner check waits for a scan).
const HEALTH_WAIT: std::time::Duration = std::time::Duration::from_secs(25);

#[utoipa::path(post, path = "/v1/devices/{id}/health", tag = "devices", params(("id" = String, Path)),
    request_body = HealthCheckIn, security(("bearer" = [])),
    responses((status = 200, body = HealthCheckOut, description = "The check ran; `ok` says whether the device passed"),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn device_health(
    State(app): State<Arc<App>>,
    auth: Auth,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<HealthCheckIn>,
) -> ApiResult<Json<HealthCheckOut>> {
    use edge_drivers::model::HealthLevel;
    auth.require(&[Role::Manager, Role::Tech])?;
    let level = match req.level.as_str() {
        "internal" => HealthLevel::Internal,
        "external" => HealthLevel::External,
        "interactive" => HealthLevel::Interactive,
        other => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "bad-level",
                "Unknown health level",
                format!("level {other:?} must be internal, external or interactive"),
            )
            .field("level"));
        }
    };
    let devices = app.devices.get().filter(|d| d.get(&id).is_some()).ok_or_else(|| no_device(&id))?.clone();
    let id2 = id.clone();
    let r = tokio::task::spawn_blocking(move || devices.check_health(&id2, level, HEALTH_WAIT))
        .await
        .map_err(ApiError::internal)?;
    audit(&app, &auth, "device.health", &id, format!("{} {}", req.level, r.is_ok()))?;
    let (ok, result) = match r {
        Ok(t) => (true, t),
        Err(e) => (false, e),
    };
    Ok(Json(HealthCheckOut { device: id, level: req.level, ok, result }))
}

#[utoipa::path(post, path = "/v1/drawer/open", tag = "devices", security(("bearer" = [])),
    responses((status = 200, body = DrawerOut, description = "Kicked; the sensor's reading after the kick"),
        (status = 409, body = Problem, description = "No printer, or it is offline")))]
async fn drawer_open(State(app): State<Arc<App>>, auth: Auth) -> ApiResult<Json<DrawerOut>> {
    auth.require(&[Role::Cashier, Role::Manager])?;
    let devices = app.devices.get().cloned().ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "no-drawer",
            "No cash drawer",
            "no printer (and so no drawer) is configured",
        )
    })?;
    let r = tokio::task::spawn_blocking(move || devices.open_drawer(std::time::Duration::from_secs(5)))
        .await
        .map_err(ApiError::internal)?;
    audit(&app, &auth, "drawer.open", "drawer", format!("{r:?}"))?;
    match r {
        Ok(open) => Ok(Json(DrawerOut { open })),
        Err(e) => Err(ApiError::new(StatusCode::CONFLICT, "drawer-unavailable", "Cash drawer unavailable", e)),
    }
}

#[utoipa::path(get, path = "/metrics", tag = "daemon", responses((status = 200, description = "OpenMetrics text")))]
async fn metrics(State(app): State<Arc<App>>) -> Response {
    let now = Timestamp::now();
    let sync: Vec<(String, edge_sync::engine::Health)> =
        app.engine.names().into_iter().filter_map(|n| app.engine.health(n, now).map(|h| (n.to_string(), h))).collect();
    if let Some(b) = &app.bus {
        app.metrics.set_bus(&b.view());
    }
    let body = app.metrics.render(app.store.as_ref(), &sync, now);
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], body).into_response()
}

#[utoipa::path(get, path = "/v1/events", tag = "events", security(("bearer" = [])),
    responses((status = 101, description = "WebSocket of JSON events", body = Event), (status = 503, body = Problem)))]
async fn events(
    State(app): State<Arc<App>>,
    auth: Auth,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    let ws = ws.map_err(|e| {
        ApiError::new(StatusCode::BAD_REQUEST, "websocket-required", "WebSocket required", e.body_text())
    })?;
    let max = app.cfg.max_ws_clients;
    if app.ws_clients.fetch_add(1, Ordering::SeqCst) >= max {
        app.ws_clients.fetch_sub(1, Ordering::SeqCst);
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too-many-clients",
            "Too many event clients",
            format!("at most {max} event streams at once (api.max_ws_clients)"),
        ));
    }
    app.metrics.ws_clients.inc();
    // Customers' screens (the kiosk role) never get staff-only events.
    let staff = auth.0 != Role::Kiosk;
    Ok(ws.max_message_size(4096).on_upgrade(move |socket| async move {
        ws_session(app.clone(), socket, staff).await;
        app.ws_clients.fetch_sub(1, Ordering::SeqCst);
        app.metrics.ws_clients.dec();
    }))
}

async fn ws_send(socket: &mut WebSocket, ev: &Event) -> bool {
    match serde_json::to_string(ev) {
        Ok(s) => socket.send(Message::Text(s.into())).await.is_ok(),
        Err(_) => true,
    }
}

async fn ws_session(app: Arc<App>, mut socket: WebSocket, staff: bool) {
    let mut rx = app.events.subscribe();
    let mut stopping = app.stopping.subscribe();
    let hello = Event::SyncStatus { at: Timestamp::now().to_string(), remotes: app.remote_statuses(Timestamp::now()) };
    if !ws_send(&mut socket, &hello).await {
        return;
    }
    let mut ping = tokio::time::interval(Duration::from_secs(20));
    ping.tick().await;
    loop {
        tokio::select! {
            ev = rx.recv() => match ev {
                Ok(ev) if !staff && ev.staff_only() => {}
                Ok(ev) => if !ws_send(&mut socket, &ev).await { return },
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    if !ws_send(&mut socket, &Event::Lagged { missed: n }).await { return }
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            },
            msg = socket.recv() => match msg {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {} // clients have nothing to say on this stream
            },
            _ = ping.tick() => {
                if socket.send(Message::Ping(Bytes::new())).await.is_err() { return }
            }
            _ = stopping.changed() => {
                let _ = ws_send(&mut socket, &Event::Stopping { at: Timestamp::now().to_string() }).await;
                let _ = socket.send(Message::Close(None)).await;
                return;
            }
        }
    }
}

struct SecurityAddon;

impl utoipa::Modify for SecurityAddon {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        if let Some(c) = openapi.components.as_mut() {
            c.add_security_scheme(
                "bearer",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
        }
    }
}

/// How long after its sale a self-serve screen may print the receipt.
const KIOSK_RECEIPT_WINDOW_S: i64 = 15 * 60;

/// Checks a staff PIN; `field` names where it came from.
fn verify_pin(app: &App, pin: &str, field: &str) -> ApiResult<crate::staff::StaffMember> {
    use crate::staff::PinError;
    app.staff.verify(pin).map_err(|e| {
        let (status, slug, title) = match &e {
            PinError::Malformed => (StatusCode::UNPROCESSABLE_ENTITY, "bad-pin", "Bad PIN"),
            PinError::Wrong => (StatusCode::UNAUTHORIZED, "wrong-pin", "Wrong PIN"),
            PinError::Locked(_) => (StatusCode::TOO_MANY_REQUESTS, "pin-locked", "Too many wrong PINs"),
            PinError::Shared => (StatusCode::CONFLICT, "pin-shared", "PIN not unique"),
        };
        if matches!(e, PinError::Wrong | PinError::Locked(_)) {
            tracing::warn!(why = %e, "PIN refused");
        }
        ApiError::new(status, slug, title, e.to_string()).field(field)
    })
}

#[utoipa::path(post, path = "/v1/login", tag = "staff", request_body = LoginIn,
    responses((status = 200, body = LoginOut, description = "Who the PIN belongs to and their role's token"),
        (status = 401, body = Problem, description = "Wrong PIN"), (status = 429, body = Problem, description = "Locked after wrong PINs")))]
async fn login(State(app): State<Arc<App>>, ApiJson(req): ApiJson<LoginIn>) -> ApiResult<Json<LoginOut>> {
    let m = verify_pin(&app, &req.pin, "pin")?;
    let token = app.tokens.token_of(m.role).to_string();
    let rid = current_request_id().unwrap_or_default();
    app.store.append_audit(&crate::checkout::audit_record(
        Timestamp::now(),
        &m.id,
        "staff.login",
        m.role.as_str(),
        &rid,
        String::new(),
    ))?;
    tracing::info!(staff = %m.id, role = m.role.as_str(), "staff logged in");
    Ok(Json(LoginOut { staff_id: m.id, name: m.name, role: m.role.as_str().into(), token }))
}

#[utoipa::path(get, path = "/v1/whoami", tag = "staff", security(("bearer" = [])),
    responses((status = 200, body = WhoAmI, description = "The role of the token used"), (status = 401, body = Problem)))]
async fn whoami(auth: Auth) -> Json<WhoAmI> {
    Json(WhoAmI { role: auth.0.as_str().into() })
}

#[utoipa::path(get, path = "/v1/approvals", tag = "staff", security(("bearer" = [])),
    responses((status = 200, body = ApprovalsList, description = "Requests waiting for staff, oldest first")))]
async fn list_approvals(State(app): State<Arc<App>>, auth: Auth) -> ApiResult<Json<ApprovalsList>> {
    auth.require(&[Role::Cashier, Role::Manager, Role::Tech])?;
    Ok(Json(ApprovalsList { approvals: app.approvals.pending().iter().map(crate::wire::approval_out).collect() }))
}

#[utoipa::path(post, path = "/v1/approvals", tag = "staff", security(("bearer" = [])), request_body = ApprovalIn,
    responses((status = 201, body = ApprovalOut, description = "Filed; staff screens hear approval.requested"),
        (status = 422, body = Problem, description = "Unknown kind, or the item needs no check")))]
async fn post_approval(
    State(app): State<Arc<App>>,
    auth: Auth,
    ApiJson(req): ApiJson<ApprovalIn>,
) -> ApiResult<(StatusCode, Json<ApprovalOut>)> {
    auth.require(&[Role::Kiosk, Role::Cashier])?;
    if req.screen.is_empty() || req.screen.len() > 64 {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad-approval",
            "Bad screen",
            "screen is 1 to 64 characters",
        )
        .field("screen"));
    }
    use crate::staff::ApprovalKind;
    let kind = ApprovalKind::parse(&req.kind).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad-approval",
            "Unknown request",
            format!("{:?} is not a request kind; use \"age\" or \"help\"", req.kind),
        )
        .field("kind")
    })?;
    let item_name = match (kind, &req.sku) {
        (ApprovalKind::Age, Some(sku)) => {
            let item = app.store.item(sku)?.ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "unknown-sku",
                    "Unknown SKU",
                    format!("no item with SKU {sku:?}"),
                )
                .field("sku")
            })?;
            if !item.age_restricted {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "no-check-needed",
                    "No age check needed",
                    format!("{} ({sku}) is not age-restricted", item.name),
                )
                .field("sku"));
            }
            Some(item.name)
        }
        (ApprovalKind::Age, None) => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "bad-approval",
                "SKU missing",
                "an age check names the item",
            )
            .field("sku"));
        }
        (ApprovalKind::Help, _) => None,
    };
    let a = crate::wire::approval_out(&app.approvals.open(kind, &req.screen, req.sku.clone(), item_name));
    tracing::info!(approval = %a.id, kind = %a.kind, screen = %a.screen, "staff asked");
    let _ = app.events.send(Event::ApprovalRequested { at: Timestamp::now().to_string(), approval: a.clone() });
    Ok((StatusCode::CREATED, Json(a)))
}

#[utoipa::path(get, path = "/v1/approvals/{id}", tag = "staff", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = ApprovalOut), (status = 404, body = Problem)))]
async fn get_approval(
    State(app): State<Arc<App>>,
    _auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<ApprovalOut>> {
    let id = parse_uuid(&id, "id")?;
    app.approvals
        .get(&id)
        .map(|a| Json(crate::wire::approval_out(&a)))
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not-found", "No such request", format!("no request {id}")))
}

#[utoipa::path(post, path = "/v1/approvals/{id}/decision", tag = "staff", params(("id" = String, Path)), security(("bearer" = [])), request_body = DecisionIn,
    responses((status = 200, body = ApprovalOut, description = "Answered; every screen hears approval.decided"),
        (status = 401, body = Problem, description = "Wrong PIN"), (status = 409, body = Problem, description = "Answered already")))]
async fn decide_approval(
    State(app): State<Arc<App>>,
    auth: Auth,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<DecisionIn>,
) -> ApiResult<Json<ApprovalOut>> {
    auth.require(&[Role::Cashier, Role::Manager])?;
    let id = parse_uuid(&id, "id")?;
    let Some(current) = app.approvals.get(&id) else {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "not-found", "No such request", format!("no request {id}")));
    };
    let Some(state) = current.kind.decided(&req.decision) else {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad-decision",
            "Bad decision",
            format!(
                "{:?} does not answer a {} request (age: approve or refuse; help: done)",
                req.decision,
                current.kind.as_str()
            ),
        )
        .field("decision"));
    };
    let m = verify_pin(&app, &req.pin, "pin")?;
    if !matches!(m.role, Role::Cashier | Role::Manager) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Wrong role",
            format!("{} is {}; a cashier or manager answers", m.name, m.role.as_str()),
        )
        .field("pin"));
    }
    let a = app
        .approvals
        .decide(&id, state, &m.name)
        .map(|a| crate::wire::approval_out(&a))
        .map_err(|e| ApiError::new(StatusCode::CONFLICT, "decided", "Answered already", e))?;
    let rid = current_request_id().unwrap_or_default();
    let detail = format!("{} for {} {}", state.as_str(), a.screen, a.sku.as_deref().unwrap_or(""));
    app.store.append_audit(&crate::checkout::audit_record(
        Timestamp::now(),
        &m.id,
        &format!("approval.{}", a.kind),
        &a.id.to_string(),
        &rid,
        detail,
    ))?;
    let _ = app.events.send(Event::ApprovalDecided { at: Timestamp::now().to_string(), approval: a.clone() });
    let _ = auth;
    Ok(Json(a))
}

#[utoipa::path(get, path = "/v1/catalog/categories", tag = "catalog", security(("bearer" = [])),
    responses((status = 200, body = CategoriesOut, description = "Categories and how many items each has; browse with q=category:NAME")))]
async fn categories(State(app): State<Arc<App>>, _auth: Auth) -> ApiResult<Json<CategoriesOut>> {
    let app2 = app.clone();
    let cats = tokio::task::spawn_blocking(move || app2.categories()).await.map_err(ApiError::internal)??;
    Ok(Json(CategoriesOut { categories: cats.into_iter().map(|(name, items)| CategoryOut { name, items }).collect() }))
}

#[utoipa::path(get, path = "/v1/catalog/items/{sku}/image", tag = "catalog", params(("sku" = String, Path)),
    security(("bearer" = [])),
    responses((status = 200, description = "The item's picture as kept on disk (PNG, JPEG, WebP or SVG)", content_type = "image/*"),
        (status = 404, body = Problem, description = "No such item, no picture, or not fetched yet")))]
async fn item_image(State(app): State<Arc<App>>, _auth: Auth, Path(sku): Path<String>) -> ApiResult<Response> {
    let app2 = app.clone();
    let sku2 = sku.clone();
    let found = tokio::task::spawn_blocking(move || -> ApiResult<Option<(Vec<u8>, &'static str)>> {
        let Some(item) = app2.store.item(&sku2)? else { return Ok(None) };
        Ok(item.image.as_deref().and_then(|u| app2.pictures.get().and_then(|p| p.read(u))))
    })
    .await
    .map_err(ApiError::internal)??;
    match found {
        Some((bytes, kind)) => {
            Ok(([(header::CONTENT_TYPE, kind), (header::CACHE_CONTROL, "private, max-age=3600")], bytes)
                .into_response())
        }
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no-picture",
            "No picture",
            format!("no picture of {sku:?} is kept (no such item, it has none, or it is not fetched yet)"),
        )),
    }
}

#[utoipa::path(get, path = "/v1/catalog/favourites", tag = "catalog", security(("bearer" = [])),
    responses((status = 200, body = ItemsPage, description = "The register's favourites (`[register] favourites`), in their order; SKUs not in the catalog are left out")))]
async fn favourites(State(app): State<Arc<App>>, _auth: Auth) -> ApiResult<Json<ItemsPage>> {
    let app2 = app.clone();
    let items = tokio::task::spawn_blocking(move || -> ApiResult<Vec<CatalogItem>> {
        let cutoff = age_cutoff(&app2);
        let mut out = Vec::new();
        for sku in &app2.cfg.favourites {
            match app2.store.item(sku)? {
                Some(it) => {
                    let stock = app2.store.stock(sku)?;
                    out.push(catalog_item(&app2, it, &stock, &cutoff));
                }
                None => tracing::debug!(sku, "a favourite is not in the catalog"),
            }
        }
        Ok(out)
    })
    .await
    .map_err(ApiError::internal)??;
    Ok(Json(ItemsPage { items, next_cursor: None }))
}

#[utoipa::path(get, path = "/v1/scale", tag = "devices", security(("bearer" = [])),
    responses((status = 200, body = ScaleOut, description = "The scale's reading; stable = false while it moves"),
        (status = 409, body = Problem, description = "No scale")))]
async fn scale(State(app): State<Arc<App>>, _auth: Auth) -> ApiResult<Json<ScaleOut>> {
    let Some(devices) = app.devices.get().cloned() else {
        return Err(ApiError::new(StatusCode::CONFLICT, "no-scale", "No scale", "no scale is configured"));
    };
    let r =
        tokio::task::spawn_blocking(move || devices.weigh(Duration::from_secs(3))).await.map_err(ApiError::internal)?;
    match r {
        Ok(w) => Ok(Json(ScaleOut { grams: w.grams, stable: true, status: "stable".into() })),
        Err(e) if e.contains("no scale") => Err(ApiError::new(StatusCode::CONFLICT, "no-scale", "No scale", e)),
        Err(e) => Ok(Json(ScaleOut { grams: 0, stable: false, status: e })),
    }
}

#[utoipa::path(post, path = "/v1/sales/{id}/receipt", tag = "sales", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 202, description = "A copy is queued at the printer"), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "No printer")))]
async fn reprint(State(app): State<Arc<App>>, auth: Auth, Path(id): Path<String>) -> ApiResult<StatusCode> {
    auth.require(&[Role::Cashier, Role::Manager, Role::Kiosk])?;
    let sale = find_sale(&app, &id)?;
    let id = sale.id;
    // A self-serve customer gets the receipt of the sale just made, once asked; staff
    // print copies of any sale.
    let kiosk = auth.0 == Role::Kiosk;
    if kiosk
        && (sale.actor != Role::Kiosk.as_str()
            || Timestamp::now().duration_since(sale.created_at).as_secs() > KIOSK_RECEIPT_WINDOW_S)
    {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Receipt not available here",
            format!(
                "a self-serve screen prints the receipt of its own sale within {KIOSK_RECEIPT_WINDOW_S} s; ask staff for a copy"
            ),
        ));
    }
    if !app.devices.get().is_some_and(|d| d.has(crate::devices::Kind::Printer)) {
        return Err(ApiError::new(StatusCode::CONFLICT, "no-printer", "No printer", "no printer is configured"));
    }
    // Queued like every receipt: the outcome comes as receipt.printed / receipt.failed and
    // in GET /v1/sales/{id}.
    app.checkout.reprint(&sale, !kiosk);
    audit(&app, &auth, "receipt.reprint", &id.to_string(), String::new())?;
    Ok(StatusCode::ACCEPTED)
}

#[utoipa::path(post, path = "/v1/voids", tag = "sales", security(("bearer" = [])), request_body = VoidIn,
    responses((status = 204, description = "Recorded in the audit"), (status = 403, body = Problem)))]
async fn post_void(State(app): State<Arc<App>>, auth: Auth, ApiJson(req): ApiJson<VoidIn>) -> ApiResult<StatusCode> {
    auth.require(&[Role::Manager])?;
    if req.reason.trim().is_empty() || req.reason.len() > 200 {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad-void",
            "Reason missing",
            "a void needs a reason (1 to 200 characters)",
        )
        .field("reason"));
    }
    audit(&app, &auth, "cart.void", "cart", format!("{} lines, total {}: {}", req.lines, req.total_minor, req.reason))?;
    tracing::info!(lines = req.lines, total_minor = req.total_minor, "cart voided");
    Ok(StatusCode::NO_CONTENT)
}

/// The OpenAPI document of the local API v1.
#[derive(OpenApi)]
#[openapi(
    info(title = "edged local API", version = "1", description = "The store edge daemon's loopback API. Errors are application/problem+json."),
    paths(health, openapi, catalog_items, catalog_barcode, post_sale, get_sale, get_receipt, post_refund, list_sales, post_adjustment, list_adjustments, get_adjustment, sync_status, get_lanes, sync_run, sync_report, list_outbox, get_outbox,
        retry_dead_one, retry_dead_all, devices, device_one, device_health, drawer_open, list_payments, settle_payment, terminal_op, report_x, report_z, events, metrics,
        login, whoami, list_approvals, post_approval, get_approval, decide_approval, categories, favourites, item_image, scale, reprint, post_void),
    components(schemas(AdjustmentIn, AdjustmentOut, AdjustmentsPage, RefundIn, RefundLineIn, Problem, Health, StoreHealth, CatalogItem, ItemsPage, SaleIn, edge_api::AgeCheckIn, edge_api::AgeCheckOut, SaleLineIn, TenderIn, SaleOut, SaleLineOut, TenderOut,
        SalesPage, SyncStatus, SyncReport, RemoteReconciliation, ReconLocal, ReconDuplicate, ReconRemote, ReconDiffers, RemoteStatus, RetryOut, OutboxEntryOut, OutboxPage, DevicesList, DeviceOut, HealthCheckIn,
        HealthCheckOut, DrawerOut, PaymentOut, PaymentsList, PaymentSettleIn, TerminalOut, ForceOfflineIn, crate::reports::Report,
        crate::reports::Totals, Event, LoginIn, LoginOut, ApprovalIn, ApprovalOut, DecisionIn, ApprovalsList, CategoriesOut,
        CategoryOut, ScaleOut, VoidIn, WhoAmI, edge_api::LanesOut, edge_api::LaneOut, edge_api::LaneFlagOut, edge_api::LaneTotals)),
    modifiers(&SecurityAddon)
)]
pub struct ApiDoc;
