//! The device bus over HTTP: a store's warehouse maps, its devices (with
//! what they last told the bus), its open robot tasks, releasing a device
//! from quarantine, emergency stops and resumes of a zone, and the node's
//! whole fleet for operators.
//!
//! Registrations, maps, quarantines and zone holds are kernel commands,
//! journaled before the answer like every other change. An emergency stop
//! goes through the bus, which pauses the zone's devices first and then
//! journals the hold; the answer waits for the journal. A node without a
//! bus, or whose bus has lost its broker, refuses stops and resumes
//! outright (409 or 503) rather than answer as if devices had been paused.
//!
//! Merchants run their own stores' floors: they set maps, register
//! devices, release quarantined ones and stop zones, since the people on a
//! warehouse floor work for the merchant and an emergency stop must never
//! wait for the node's operator. Only operators see every store's devices
//! and the bus's counters at once.

use std::ops::Bound;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::LOCATION;
use axum::response::{IntoResponse, Response};
use bazaar_kernel::model::{DeviceId, PluginId, PluginKind, StoreId, WarehouseId, ZoneId};
use bazaar_kernel::{Command, KernelError, Outcome, StoreState};
use bazaar_node::devices::{DeviceBus, DeviceStatus};
use bazaar_node::wall_clock_ms;
use tokio::sync::oneshot;

use crate::auth::{Authorized, perm};
use crate::device_dto::{
    BusCountersView, BusState, DeviceInput, DeviceList, DevicePageQuery, DeviceView, Fleet, Layout,
    StoredLayout, TaskList, TaskView, ZoneChange, ZoneRef, status_in,
};
use crate::dto::PageQuery;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{JsonBody, PathParams, QueryParams, decode_json};
use crate::routes::{cursor, entries_after, page};
use crate::state::AppState;

/// Largest body of a warehouse layout: the largest map the kernel accepts
/// (10,000 nodes and 100,000 pick locations, every id 64 characters and
/// every coordinate a billion millimetres) is about 14 MiB of JSON. Only
/// this route takes bodies above the API's 64 KiB, and at most
/// `LAYOUT_UPLOADS_MAX` at once.
pub const LAYOUT_BODY_BYTES_MAX: usize = 16 * 1024 * 1024;

/// Longest time a client may take to send a layout: 16 MiB arrive within a
/// minute over a link of 2.5 Mbit/s or better.
pub const LAYOUT_BODY_READ_TIMEOUT_MS: u64 = 60_000;

/// The 404 of a device path segment that is no device id.
fn unknown_device(text: &str) -> ApiError {
    KernelError::UnknownDevice(text.chars().take(80).collect()).into()
}

/// The 404 of a warehouse path segment that is no warehouse id.
fn unknown_warehouse(text: &str) -> ApiError {
    KernelError::UnknownWarehouse(text.chars().take(80).collect()).into()
}

/// The store `id` of `shard`, or the kernel's refusal.
fn store_of<'a>(
    shard: &'a bazaar_kernel::Shard,
    id: &StoreId,
) -> Result<&'a StoreState, KernelError> {
    shard.store(id).ok_or_else(|| KernelError::UnknownStore(id.to_string()))
}

/// The view of device `id` of `store` as it is now, or the kernel's
/// refusal when there is no such device.
fn device_view(
    state: &StoreState,
    store: &StoreId,
    id: &DeviceId,
    fleet: &[DeviceStatus],
) -> Result<DeviceView, KernelError> {
    let device =
        state.floor().device(id).ok_or_else(|| KernelError::UnknownDevice(id.to_string()))?;
    let stopped = state.floor().is_zone_stopped(&device.spec.warehouse, &device.spec.zone);
    Ok(DeviceView::of(store, device, stopped, status_in(fleet, store, id)))
}

/// The bus's state as the API shows it.
fn bus_state(state: &AppState) -> BusState {
    match state.devices() {
        Some(handle) => BusState { enabled: true, connected: handle.bus.is_connected() },
        None => BusState { enabled: false, connected: false },
    }
}

// ----- warehouse maps -----

/// Sets a warehouse's map for its robots: nodes with their coordinates,
/// where each SKU is picked, and the pack station. Paid orders from now on
/// become robot tasks for their lines of SKUs with a pick location here;
/// tasks already made keep the places they were made with. Bodies up to
/// 16 MiB are accepted on this route.
#[utoipa::path(
    put,
    path = "/v1/stores/{store}/warehouses/{warehouse}/layout",
    tag = "devices",
    params(
        ("store" = String, Path, description = "Store id"),
        ("warehouse" = String, Path, description = "Warehouse id (the warehouse must exist)"),
    ),
    request_body = Layout,
    responses(
        (status = 200, description = "Stored", body = StoredLayout),
        (status = 404, description = "No such store or warehouse", body = ErrorBody),
        (status = 413, description = "Body over the 16 MiB limit of this route", body = ErrorBody),
        (status = 422, description = "An invalid id, or a map that makes no sense (a pack station or pick location that is not a node, a node listed twice, too many nodes); the message names the problem", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn put_layout(
    auth: Authorized<perm::ManageDevices>,
    State(state): State<AppState>,
    PathParams((_, warehouse)): PathParams<(String, String)>,
    body: JsonBody,
) -> Result<Json<StoredLayout>, ApiError> {
    let store = auth.store()?.clone();
    let warehouse =
        WarehouseId::new(warehouse).map_err(|error| ApiError::from(error).at_field("warehouse"))?;
    let _permit = state.layout_uploads().clone().try_acquire_owned().map_err(|_| {
        ApiError::overloaded(format!(
            "{} warehouse layouts are being uploaded already; retry shortly",
            crate::state::LAYOUT_UPLOADS_MAX
        ))
    })?;
    let bytes = body.bytes_within(LAYOUT_BODY_BYTES_MAX, LAYOUT_BODY_READ_TIMEOUT_MS).await?;
    // Decoding megabytes of JSON is CPU work: off the reactor.
    let layout = tokio::task::spawn_blocking(move || decode_json::<Layout>(&bytes)?.into_kernel())
        .await
        .map_err(|error| ApiError::internal(format!("a layout decoding task failed: {error}")))??;
    let command =
        Command::SetWarehouseLayout { store: store.clone(), warehouse: warehouse.clone(), layout };
    let id = warehouse.clone();
    let (_, view) = state
        .execute(command, move |shard, _| {
            shard.store(&store)?.floor().layouts().get(&id).map(Layout::from)
        })
        .await?;
    let layout = view.ok_or_else(|| ApiError::internal("a stored layout is missing"))?;
    Ok(Json(StoredLayout { warehouse: warehouse.to_string(), layout }))
}

/// A warehouse's map, as last set.
#[utoipa::path(
    get,
    path = "/v1/stores/{store}/warehouses/{warehouse}/layout",
    tag = "devices",
    params(
        ("store" = String, Path, description = "Store id"),
        ("warehouse" = String, Path, description = "Warehouse id"),
    ),
    responses(
        (status = 200, description = "The map", body = StoredLayout),
        (status = 404, description = "No such store or warehouse, or the warehouse has no map (`layout_not_found`)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get_layout(
    auth: Authorized<perm::ReadDevices>,
    State(state): State<AppState>,
    PathParams((_, warehouse)): PathParams<(String, String)>,
) -> Result<Json<StoredLayout>, ApiError> {
    let store = auth.store()?.clone();
    let id = WarehouseId::new(warehouse.clone()).map_err(|_| unknown_warehouse(&warehouse))?;
    let (wanted, read) = (id.clone(), store.clone());
    let found = state
        .read(&store, move |shard| {
            let state = store_of(shard, &read)?;
            if !state.warehouses().contains_key(&wanted) {
                return Err(KernelError::UnknownWarehouse(wanted.to_string()));
            }
            Ok(state.floor().layouts().get(&wanted).map(Layout::from))
        })
        .await??;
    let layout = found.ok_or_else(|| {
        ApiError::not_found(
            "layout_not_found",
            format!(
                "warehouse {id} of store {store} has no map yet; set one with PUT /v1/stores/{store}/warehouses/{id}/layout"
            ),
        )
    })?;
    Ok(Json(StoredLayout { warehouse: id.to_string(), layout }))
}

// ----- devices -----

/// Refuses a driver that is not an installed device-driver plugin; whether
/// the store enabled it is the kernel's check, made with the registration.
async fn check_driver(state: &AppState, driver: &PluginId) -> Result<(), ApiError> {
    let wanted = driver.clone();
    let listing = state.platform(move |platform| platform.listing(&wanted)).await?;
    let invalid =
        |message: String| ApiError::unprocessable("invalid_device", message).at_field("driver");
    match listing {
        None => Err(invalid(format!(
            "no plugin {driver} is installed; a device's driver is a device-driver plugin the store has enabled"
        ))),
        Some(listing) if listing.kind != PluginKind::DeviceDriver => Err(invalid(format!(
            "plugin {driver} is a {} plugin, not a device driver",
            listing.kind.world()
        ))),
        Some(_) => Ok(()),
    }
}

/// Registers a device, or changes its registration. Its warehouse must
/// exist and its driver must be a device-driver plugin the store has
/// enabled (`PUT /v1/stores/{store}/plugins/{driver}`). A new device is
/// offline until it connects to the bus; a device that holds a task
/// cannot move to another warehouse.
#[utoipa::path(
    put,
    path = "/v1/stores/{store}/devices/{device}",
    tag = "devices",
    params(
        ("store" = String, Path, description = "Store id"),
        ("device" = String, Path, description = "Device id: 1 to 64 characters of A-Z a-z 0-9 . _ -"),
    ),
    request_body = DeviceInput,
    responses(
        (status = 201, description = "Registered", body = DeviceView),
        (status = 200, description = "Registration changed", body = DeviceView),
        (status = 404, description = "No such store or warehouse", body = ErrorBody),
        (status = 422, description = "An invalid id or text, a driver that is not an enabled device-driver plugin, a serial number another device has, or too many devices", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn put_device(
    auth: Authorized<perm::ManageDevices>,
    State(state): State<AppState>,
    PathParams((_, device)): PathParams<(String, String)>,
    body: JsonBody,
) -> Result<Response, ApiError> {
    let store = auth.store()?.clone();
    let id = DeviceId::new(device).map_err(|error| ApiError::from(error).at_field("device"))?;
    let spec = body.parse::<DeviceInput>().await?.into_spec(id.clone())?;
    // An unknown store is a 404 before the driver is judged.
    state.store_currency(&store).await?;
    check_driver(&state, &spec.driver).await?;
    let command =
        Command::RegisterDevice { store: store.clone(), device: spec, at_ms: wall_clock_ms() };
    let fleet = state.fleet();
    let (view_store, view_id) = (store.clone(), id.clone());
    let (outcome, view) = state
        .execute(command, move |shard, _| {
            device_view(store_of(shard, &view_store)?, &view_store, &view_id, &fleet)
        })
        .await
        .map_err(|error| match error.code {
            "warehouse_not_found" => error.at_field("warehouse"),
            _ => error,
        })?;
    let view = view.map_err(|_| ApiError::internal("a registered device is missing"))?;
    // The writer tells whether the device was new when the command applied,
    // so of two registrations of one new device racing each other exactly
    // one is told 201.
    if !matches!(outcome, Outcome::DeviceRegistered { created: true }) {
        return Ok(Json(view).into_response());
    }
    let location = format!("/v1/stores/{store}/devices/{id}");
    Ok((StatusCode::CREATED, [(LOCATION, location)], Json(view)).into_response())
}

/// Removes a device. The task it held goes back to the other robots.
#[utoipa::path(
    delete,
    path = "/v1/stores/{store}/devices/{device}",
    tag = "devices",
    params(
        ("store" = String, Path, description = "Store id"),
        ("device" = String, Path, description = "Device id"),
    ),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such store or device", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn delete_device(
    auth: Authorized<perm::ManageDevices>,
    State(state): State<AppState>,
    PathParams((_, device)): PathParams<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let store = auth.store()?.clone();
    let id = DeviceId::new(device.clone()).map_err(|_| unknown_device(&device))?;
    let command = Command::RemoveDevice { store, device: id, at_ms: wall_clock_ms() };
    state.execute(command, |_, _| ()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The store's devices in id order, each with what the kernel decided
/// (online, quarantine, task) and what it last told the bus (position,
/// battery, paused, driving, errors, job); with every zone an emergency
/// stop holds and the bus's state.
#[utoipa::path(
    get,
    path = "/v1/stores/{store}/devices",
    tag = "devices",
    params(("store" = String, Path, description = "Store id"), DevicePageQuery),
    responses(
        (status = 200, description = "A page of devices", body = DeviceList),
        (status = 404, description = "No such store", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list_devices(
    auth: Authorized<perm::ReadDevices>,
    State(state): State<AppState>,
    QueryParams(query): QueryParams<DevicePageQuery>,
) -> Result<Json<DeviceList>, ApiError> {
    let store = auth.store()?.clone();
    let limit = query.limit()?;
    let after = cursor("after", query.after.as_deref(), DeviceId::new)?;
    let fleet = state.fleet();
    let id = store.clone();
    let (devices, next, stopped_zones) = state
        .read(&store, move |shard| {
            let state = store_of(shard, &id)?;
            let floor = state.floor();
            let entries = entries_after(floor.devices(), after.as_ref());
            let (devices, next) = page(entries, limit, |device_id, device| {
                let stopped = floor.is_zone_stopped(&device.spec.warehouse, &device.spec.zone);
                DeviceView::of(&id, device, stopped, status_in(&fleet, &id, device_id))
            });
            let stopped_zones = floor
                .stopped_zones()
                .iter()
                .map(|(warehouse, zone)| ZoneRef {
                    warehouse: warehouse.to_string(),
                    zone: zone.to_string(),
                })
                .collect();
            Ok::<_, KernelError>((devices, next, stopped_zones))
        })
        .await??;
    Ok(Json(DeviceList {
        devices,
        next_after: next.map(|id| id.to_string()),
        stopped_zones,
        bus: bus_state(&state),
    }))
}

/// One device, with what the kernel decided and what it last told the bus.
#[utoipa::path(
    get,
    path = "/v1/stores/{store}/devices/{device}",
    tag = "devices",
    params(
        ("store" = String, Path, description = "Store id"),
        ("device" = String, Path, description = "Device id"),
    ),
    responses(
        (status = 200, description = "The device", body = DeviceView),
        (status = 404, description = "No such store or device", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get_device(
    auth: Authorized<perm::ReadDevices>,
    State(state): State<AppState>,
    PathParams((_, device)): PathParams<(String, String)>,
) -> Result<Json<DeviceView>, ApiError> {
    let store = auth.store()?.clone();
    let id = DeviceId::new(device.clone()).map_err(|_| unknown_device(&device))?;
    let fleet = state.fleet();
    let read = store.clone();
    let view = state
        .read(&store, move |shard| device_view(store_of(shard, &read)?, &read, &id, &fleet))
        .await??;
    Ok(Json(view))
}

/// Takes a device out of quarantine (after a driver fault), so it is given
/// tasks again. Releasing a device that is not quarantined changes
/// nothing. Merchants may release their own devices: the person who
/// checked the robot on the floor works for them.
#[utoipa::path(
    post,
    path = "/v1/stores/{store}/devices/{device}/release",
    tag = "devices",
    params(
        ("store" = String, Path, description = "Store id"),
        ("device" = String, Path, description = "Device id"),
    ),
    responses(
        (status = 200, description = "The device, in service", body = DeviceView),
        (status = 404, description = "No such store or device", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn release_device(
    auth: Authorized<perm::OperateDevices>,
    State(state): State<AppState>,
    PathParams((_, device)): PathParams<(String, String)>,
) -> Result<Json<DeviceView>, ApiError> {
    let store = auth.store()?.clone();
    let id = DeviceId::new(device.clone()).map_err(|_| unknown_device(&device))?;
    let command = Command::QuarantineDevice {
        store: store.clone(),
        device: id.clone(),
        reason: None,
        at_ms: wall_clock_ms(),
    };
    let fleet = state.fleet();
    let (_, view) = state
        .execute(command, move |shard, _| {
            device_view(store_of(shard, &store)?, &store, &id, &fleet)
        })
        .await?;
    Ok(Json(view.map_err(|_| ApiError::internal("a released device is missing"))?))
}

// ----- tasks -----

/// The store's open robot tasks, oldest first: pending, held by a device,
/// or failed after too many attempts. Done tasks are in the journal only.
#[utoipa::path(
    get,
    path = "/v1/stores/{store}/tasks",
    tag = "devices",
    params(("store" = String, Path, description = "Store id"), PageQuery),
    responses(
        (status = 200, description = "A page of tasks", body = TaskList),
        (status = 404, description = "No such store", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list_tasks(
    auth: Authorized<perm::ReadDevices>,
    State(state): State<AppState>,
    QueryParams(query): QueryParams<PageQuery>,
) -> Result<Json<TaskList>, ApiError> {
    let store = auth.store()?.clone();
    let limit = query.limit()?;
    let after = query
        .after
        .as_deref()
        .map(|text| {
            text.parse::<u64>().map_err(|_| {
                ApiError::bad_request(
                    "invalid_query",
                    format!(
                        "after must be a task number, got {:?}",
                        text.chars().take(32).collect::<String>()
                    ),
                )
            })
        })
        .transpose()?;
    let id = store.clone();
    let (tasks, next) = state
        .read(&store, move |shard| {
            let tasks = store_of(shard, &id)?.floor().tasks();
            Ok::<_, KernelError>(page(entries_after(tasks, after.as_ref()), limit, |_, task| {
                TaskView::from(task)
            }))
        })
        .await??;
    Ok(Json(TaskList { tasks, next_after: next }))
}

// ----- emergency stops -----

/// The running, connected bus, or why a zone cannot be changed now.
fn reachable_bus(state: &AppState) -> Result<Arc<DeviceBus>, ApiError> {
    let Some(handle) = state.devices() else {
        return Err(ApiError::conflict(
            "device_bus_disabled",
            "this node runs without a device bus (mqtt_disabled), so no device can be paused or resumed; nothing was changed",
        ));
    };
    if !handle.bus.is_connected() {
        let mut refused = ApiError::overloaded(format!(
            "the device bus is not connected to its MQTT broker {}, so no device can be reached; nothing was changed; retry once it reconnects",
            handle.broker
        ));
        refused.code = "device_bus_disconnected";
        return Err(refused);
    }
    Ok(handle.bus.clone())
}

/// Holds (`stopped`) or frees a zone through the bus and waits until the
/// change is journaled.
async fn change_zone(
    state: AppState,
    store: StoreId,
    warehouse: String,
    zone: String,
    stopped: bool,
) -> Result<Json<ZoneChange>, ApiError> {
    let warehouse =
        WarehouseId::new(warehouse.clone()).map_err(|_| unknown_warehouse(&warehouse))?;
    let zone = ZoneId::new(zone.clone()).map_err(|_| {
        ApiError::not_found(
            "zone_not_found",
            format!("no zone {:?}: not a zone id", zone.chars().take(80).collect::<String>()),
        )
    })?;
    // The path is checked before the bus's state, so a wrong path is a
    // 404 whether or not the bus could act.
    let (read_store, read_warehouse) = (store.clone(), warehouse.clone());
    state
        .read(&store, move |shard| {
            if !store_of(shard, &read_store)?.warehouses().contains_key(&read_warehouse) {
                return Err(KernelError::UnknownWarehouse(read_warehouse.to_string()));
            }
            Ok(())
        })
        .await??;
    let bus = reachable_bus(&state)?;
    let (sender, receiver) = oneshot::channel();
    let reply = Box::new(move |result| {
        let _ = sender.send(result);
    });
    let queued = bus.set_zone(store, warehouse.clone(), zone.clone(), stopped, reply);
    // The bus's own small queue of stops and resumes is full: a burst of
    // button presses, cleared within a dispatch round.
    queued.map_err(|_| {
        let mut refused = ApiError::overloaded(
            "the device bus has as many emergency stops and resumes queued as it takes; nothing was changed; retry shortly",
        );
        refused.code = "device_bus_busy";
        refused
    })?;
    let devices_commanded = receiver.await.map_err(|_| {
        let mut refused = ApiError::overloaded(
            "the zone change could not be journaled (the node is saturated or stopping); the zone's devices may have been sent the command; retry",
        );
        refused.code = "zone_change_not_journaled";
        refused
    })??;
    Ok(Json(ZoneChange {
        warehouse: warehouse.to_string(),
        zone: zone.to_string(),
        stopped,
        devices_commanded,
    }))
}

/// Emergency stop of a zone: every device of the zone is sent a pause at
/// once, then the hold is journaled, so no task starts in the zone until
/// it is resumed. Answers once the hold is durable, with the number of
/// devices the pause was sent to (a zone may have none yet). Refused when
/// the node runs without a device bus (409) or the bus has lost its broker
/// (503): a stop never answers as if devices had been paused when none
/// could be.
#[utoipa::path(
    post,
    path = "/v1/stores/{store}/warehouses/{warehouse}/zones/{zone}/emergency-stop",
    tag = "devices",
    params(
        ("store" = String, Path, description = "Store id"),
        ("warehouse" = String, Path, description = "Warehouse id"),
        ("zone" = String, Path, description = "Zone id"),
    ),
    responses(
        (status = 200, description = "The zone is held", body = ZoneChange),
        (status = 404, description = "No such store or warehouse", body = ErrorBody),
        (status = 409, description = "The node runs without a device bus (`device_bus_disabled`)", body = ErrorBody),
        (status = 422, description = "Too many zones of the store are held already", body = ErrorBody),
        (status = 503, description = "The bus is not connected to its broker (`device_bus_disconnected`), or the node is saturated; retry after Retry-After", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn emergency_stop(
    auth: Authorized<perm::OperateDevices>,
    State(state): State<AppState>,
    PathParams((_, warehouse, zone)): PathParams<(String, String, String)>,
) -> Result<Json<ZoneChange>, ApiError> {
    let store = auth.store()?.clone();
    change_zone(state, store, warehouse, zone, true).await
}

/// Frees a zone an emergency stop holds and resumes its devices; tasks
/// start there again. Freeing a zone that is not held changes nothing but
/// still sends its devices a resume.
#[utoipa::path(
    post,
    path = "/v1/stores/{store}/warehouses/{warehouse}/zones/{zone}/resume",
    tag = "devices",
    params(
        ("store" = String, Path, description = "Store id"),
        ("warehouse" = String, Path, description = "Warehouse id"),
        ("zone" = String, Path, description = "Zone id"),
    ),
    responses(
        (status = 200, description = "The zone is free", body = ZoneChange),
        (status = 404, description = "No such store or warehouse", body = ErrorBody),
        (status = 409, description = "The node runs without a device bus (`device_bus_disabled`)", body = ErrorBody),
        (status = 503, description = "The bus is not connected to its broker (`device_bus_disconnected`), or the node is saturated; retry after Retry-After", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn resume(
    auth: Authorized<perm::OperateDevices>,
    State(state): State<AppState>,
    PathParams((_, warehouse, zone)): PathParams<(String, String, String)>,
) -> Result<Json<ZoneChange>, ApiError> {
    let store = auth.store()?.clone();
    change_zone(state, store, warehouse, zone, false).await
}

// ----- the node's fleet -----

/// The `store/device` cursor of the fleet list.
fn fleet_cursor(text: Option<&str>) -> Result<Option<(StoreId, DeviceId)>, ApiError> {
    let Some(text) = text else { return Ok(None) };
    let invalid = || {
        ApiError::bad_request(
            "invalid_query",
            format!(
                "after must be store/device as in next_after, got {:?}",
                text.chars().take(140).collect::<String>()
            ),
        )
    };
    let (store, device) = text.split_once('/').ok_or_else(invalid)?;
    let store = StoreId::new(store).map_err(|_| invalid())?;
    let device = DeviceId::new(device).map_err(|_| invalid())?;
    Ok(Some((store, device)))
}

/// Every device of the node, in store and id order, with the bus's
/// connection, broker and counters. Operators only.
#[utoipa::path(
    get,
    path = "/v1/devices",
    tag = "devices",
    params(DevicePageQuery),
    responses((status = 200, description = "The bus and a page of devices", body = Fleet)),
    security(("bearer" = []))
)]
pub async fn fleet(
    _auth: Authorized<perm::ReadFleet>,
    State(state): State<AppState>,
    QueryParams(query): QueryParams<DevicePageQuery>,
) -> Result<Json<Fleet>, ApiError> {
    let limit = query.limit()?;
    let after = fleet_cursor(query.after.as_deref())?;
    let fleet = state.fleet();
    let pages = state
        .read_all(move |shard| {
            // One page per shard (plus one to know if more follow), then
            // merged: every shard holds whole stores.
            let start =
                after.as_ref().map_or(Bound::Unbounded, |(store, _)| Bound::Included(store));
            let mut views = Vec::new();
            for (store, state) in shard.stores().range((start, Bound::Unbounded)) {
                let floor = state.floor();
                let device_after = after
                    .as_ref()
                    .filter(|(cursor_store, _)| cursor_store == store)
                    .map(|(_, device)| device);
                for (id, device) in entries_after(floor.devices(), device_after) {
                    if views.len() > limit {
                        return views;
                    }
                    let stopped = floor.is_zone_stopped(&device.spec.warehouse, &device.spec.zone);
                    views.push(DeviceView::of(
                        store,
                        device,
                        stopped,
                        status_in(&fleet, store, id),
                    ));
                }
            }
            views
        })
        .await?;
    let mut devices: Vec<DeviceView> = pages.into_iter().flatten().collect();
    devices.sort_by(|a, b| (&a.store, &a.id).cmp(&(&b.store, &b.id)));
    let more = devices.len() > limit;
    devices.truncate(limit);
    let next_after =
        if more { devices.last().map(|d| format!("{}/{}", d.store, d.id)) } else { None };
    let handle = state.devices();
    Ok(Json(Fleet {
        bus: bus_state(&state),
        broker: handle.map(|handle| handle.broker.clone()),
        embedded_broker: handle.is_some_and(|handle| handle.embedded),
        counters: handle.map(|handle| BusCountersView::from(handle.bus.counters())),
        devices,
        next_after,
    }))
}
