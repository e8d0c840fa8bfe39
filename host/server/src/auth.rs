//! Tenants and roles: bearer tokens, stored hashed, and the one extractor
//! every handler uses to authenticate and authorise.
//!
//! A token is 32 random bytes shown once to whoever asked for it; the
//! registry keeps only its SHA-256 with its role, scope and label, so a
//! copy of the registry holds no usable credential. (The first operator
//! token is also written to `operator-token` in the data directory, for the
//! operator to read once; a copy of the whole directory holds that one.)
//! Every handler takes an [`Authorized<P>`] whose permission `P` names
//! what it does; the extractor refuses before the handler runs (and before
//! the body is read) unless the token's role grants `P` and, for a store's
//! routes, the token is scoped to that store. A merchant token therefore
//! cannot reach another store's data by any route.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use axum::extract::rejection::RawPathParamsRejection;
use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use bazaar_kernel::model::{PluginId, StoreId};
use bazaar_store::Storage;
use rand::TryRngCore as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use utoipa::ToSchema;

use crate::error::{ApiError, echoed};
use crate::state::AppState;

/// Registry prefix of token records (`server/tokens/<id>`).
const TOKEN_KEY_PREFIX: &str = "server/tokens/";
/// Most tokens a node keeps: every token is held in memory for the lookup
/// on each request, and thousands of tenants need only thousands of tokens.
pub const TOKENS_MAX: usize = 10_000;
/// Most stores one merchant token may be scoped to: a merchant group with
/// more stores than this should get several tokens.
pub const TOKEN_STORES_MAX: usize = 100;
/// Most plugins one partner token may be scoped to: a partner with more
/// plugins than this should get several tokens.
pub const TOKEN_PLUGINS_MAX: usize = 100;
/// Longest label of a token (who it is for), in bytes.
pub const TOKEN_LABEL_LEN_MAX: usize = 128;
/// Longest bearer secret accepted before hashing: ours are 68 characters;
/// anything far longer is not a token and is not worth hashing.
const SECRET_LEN_MAX: usize = 256;
/// Random bytes in a token secret: 256 bits cannot be guessed.
const SECRET_BYTES: usize = 32;
/// Prefix of every secret, so a leaked one is recognisable in logs and by
/// secret scanners.
const SECRET_PREFIX: &str = "bzr_";

/// What a token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Runs the node: everything, every store.
    Operator,
    /// Runs its own stores (listed in the token): catalogue, stock, plugin
    /// configuration, orders.
    Merchant,
    /// Publishes plugins (listed in the token): installs their versions,
    /// reads their shadow runs and call counters, and browses the
    /// marketplace; nothing of any store.
    Partner,
    /// A storefront of one store: places and reads orders, prices carts,
    /// reads products and stock, browses the marketplace; nothing else.
    Checkout,
}

impl Role {
    /// The role's name as in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::Merchant => "merchant",
            Role::Partner => "partner",
            Role::Checkout => "checkout",
        }
    }
}

/// A token as the registry keeps it: everything but the secret.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TokenRecord {
    /// Public identifier, used to list and revoke it.
    pub id: String,
    /// SHA-256 of the secret, hex.
    pub secret_sha256_hex: String,
    /// What it may do.
    pub role: Role,
    /// The stores a merchant or checkout token is scoped to.
    pub stores: Vec<StoreId>,
    /// The plugins a partner token is scoped to.
    pub plugins: Vec<PluginId>,
    /// Who or what it is for.
    pub label: String,
    /// When it was issued, milliseconds since the Unix epoch.
    pub created_at_ms: u64,
}

impl TokenRecord {
    /// Whether the token reaches `store` (given as it appears in the path).
    pub fn reaches_store(&self, store: &str) -> bool {
        match self.role {
            Role::Operator => true,
            Role::Merchant | Role::Checkout => self.stores.iter().any(|s| s.as_str() == store),
            Role::Partner => false,
        }
    }

    /// Whether the token may act for `plugin` (given as it appears in the
    /// path or manifest) as its publisher: operators for every plugin,
    /// partners for the plugins listed in the token, nobody else.
    pub fn reaches_plugin(&self, plugin: &str) -> bool {
        match self.role {
            Role::Operator => true,
            Role::Partner => self.plugins.iter().any(|p| p.as_str() == plugin),
            Role::Merchant | Role::Checkout => false,
        }
    }
}

/// What a new token should be.
pub struct TokenRequest {
    /// Its role.
    pub role: Role,
    /// Stores (merchant: 1 to [`TOKEN_STORES_MAX`]; checkout: exactly 1).
    pub stores: Vec<StoreId>,
    /// Plugins (partner: 1 to [`TOKEN_PLUGINS_MAX`]).
    pub plugins: Vec<PluginId>,
    /// Who it is for.
    pub label: String,
}

/// Every token of the node: the registry copy and an in-memory index by
/// digest, consulted on each request without touching storage.
pub struct TokenBook {
    /// Where the records live.
    storage: Arc<dyn Storage>,
    /// Records by the SHA-256 of their secret.
    by_digest: RwLock<HashMap<[u8; 32], Arc<TokenRecord>>>,
    /// Serialises issuing and revoking, so the limits and the "last operator
    /// token" rule are checked against a state nobody else is changing.
    writer: Mutex<()>,
}

fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn storage_error(error: impl std::fmt::Display) -> ApiError {
    ApiError::internal(format!("token registry: {error}"))
}

impl TokenBook {
    /// Loads every token record from the registry.
    pub fn load(storage: Arc<dyn Storage>) -> anyhow::Result<Self> {
        let mut by_digest = HashMap::new();
        for (key, value) in storage.kv_scan_prefix(TOKEN_KEY_PREFIX.as_bytes())? {
            let record: TokenRecord = serde_json::from_slice(&value).map_err(|error| {
                anyhow::anyhow!(
                    "token record {} is unreadable: {error}",
                    String::from_utf8_lossy(&key)
                )
            })?;
            let mut digest = [0u8; 32];
            let bytes = decode_hex(&record.secret_sha256_hex).ok_or_else(|| {
                anyhow::anyhow!("token record {} has a malformed digest", record.id)
            })?;
            digest.copy_from_slice(&bytes);
            by_digest.insert(digest, Arc::new(record));
        }
        Ok(Self { storage, by_digest: RwLock::new(by_digest), writer: Mutex::new(()) })
    }

    /// The token whose secret this is.
    pub fn authenticate(&self, secret: &str) -> Option<Arc<TokenRecord>> {
        if secret.len() > SECRET_LEN_MAX {
            return None;
        }
        let index = self.by_digest.read().unwrap_or_else(PoisonError::into_inner);
        index.get(&digest(secret)).cloned()
    }

    /// Every token, oldest first.
    pub fn list(&self) -> Vec<Arc<TokenRecord>> {
        let index = self.by_digest.read().unwrap_or_else(PoisonError::into_inner);
        let mut all: Vec<_> = index.values().cloned().collect();
        all.sort_by(|a, b| (a.created_at_ms, &a.id).cmp(&(b.created_at_ms, &b.id)));
        all
    }

    /// Whether any operator token exists.
    pub fn has_operator(&self) -> bool {
        let index = self.by_digest.read().unwrap_or_else(PoisonError::into_inner);
        index.values().any(|record| record.role == Role::Operator)
    }

    /// Issues a token and stores its record durably; returns the record and
    /// the secret (never stored, never shown again). Blocks on storage.
    pub fn issue(&self, request: TokenRequest) -> Result<(Arc<TokenRecord>, String), ApiError> {
        check_scope(&request)?;
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        if self.by_digest.read().unwrap_or_else(PoisonError::into_inner).len() >= TOKENS_MAX {
            return Err(ApiError::conflict(
                "too_many_tokens",
                format!("the node already holds {TOKENS_MAX} tokens; revoke unused ones first"),
            ));
        }
        let mut secret_bytes = [0u8; SECRET_BYTES];
        let mut id_bytes = [0u8; 8];
        let mut rng = rand::rngs::OsRng;
        rng.try_fill_bytes(&mut secret_bytes)
            .and_then(|()| rng.try_fill_bytes(&mut id_bytes))
            .map_err(|error| ApiError::internal(format!("no randomness for a token: {error}")))?;
        let secret = format!("{SECRET_PREFIX}{}", hex(&secret_bytes));
        let digest = digest(&secret);
        let record = TokenRecord {
            id: format!("tok_{}", hex(&id_bytes)),
            secret_sha256_hex: hex(&digest),
            role: request.role,
            stores: request.stores,
            plugins: request.plugins,
            label: request.label,
            created_at_ms: bazaar_node::wall_clock_ms(),
        };
        let value = serde_json::to_vec(&record).map_err(storage_error)?;
        self.storage
            .kv_put(format!("{TOKEN_KEY_PREFIX}{}", record.id).as_bytes(), &value)
            .map_err(storage_error)?;
        let record = Arc::new(record);
        self.by_digest
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(digest, record.clone());
        Ok((record, secret))
    }

    /// Revokes a token by id. The last operator token cannot be revoked, or
    /// nobody could manage the node any more. Blocks on storage.
    pub fn revoke(&self, id: &str) -> Result<Arc<TokenRecord>, ApiError> {
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let (digest, record) = {
            let index = self.by_digest.read().unwrap_or_else(PoisonError::into_inner);
            let found = index.iter().find(|(_, record)| record.id == id);
            let Some((digest, record)) = found else {
                return Err(ApiError::not_found("token_not_found", format!("no token {id:?}")));
            };
            let operators = index.values().filter(|r| r.role == Role::Operator).count();
            if record.role == Role::Operator && operators == 1 {
                return Err(ApiError::conflict(
                    "last_operator_token",
                    "this is the last operator token; issue another operator token before revoking it",
                ));
            }
            (*digest, record.clone())
        };
        self.storage
            .kv_delete(format!("{TOKEN_KEY_PREFIX}{}", record.id).as_bytes())
            .map_err(storage_error)?;
        self.by_digest.write().unwrap_or_else(PoisonError::into_inner).remove(&digest);
        Ok(record)
    }
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() != 64 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| text.get(i..i + 2).and_then(|pair| u8::from_str_radix(pair, 16).ok()))
        .collect()
}

/// Checks that a token's scope fits its role.
fn check_scope(request: &TokenRequest) -> Result<(), ApiError> {
    let invalid = |field: &'static str, message: String| {
        ApiError::unprocessable("invalid_scope", message).at_field(field)
    };
    if request.label.len() > TOKEN_LABEL_LEN_MAX {
        return Err(invalid(
            "label",
            format!("the label is longer than {TOKEN_LABEL_LEN_MAX} bytes"),
        ));
    }
    let (stores, plugins) = (request.stores.len(), request.plugins.len());
    match request.role {
        Role::Operator if stores > 0 || plugins > 0 => Err(invalid(
            "stores",
            "an operator token reaches every store; give it no stores or plugins".into(),
        )),
        Role::Merchant if !(1..=TOKEN_STORES_MAX).contains(&stores) || plugins > 0 => Err(invalid(
            "stores",
            format!("a merchant token needs 1 to {TOKEN_STORES_MAX} stores and no plugins"),
        )),
        Role::Checkout if stores != 1 || plugins > 0 => Err(invalid(
            "stores",
            "a checkout token is scoped to exactly one store and no plugins".into(),
        )),
        Role::Partner if !(1..=TOKEN_PLUGINS_MAX).contains(&plugins) || stores > 0 => Err(invalid(
            "plugins",
            format!("a partner token needs 1 to {TOKEN_PLUGINS_MAX} plugins and no stores"),
        )),
        _ => Ok(()),
    }
}

/// Something a request does; each handler names exactly one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Permission {
    /// Issue, list and revoke tokens.
    ManageTokens,
    /// Create stores.
    CreateStores,
    /// List stores (a merchant sees its own).
    ListStores,
    /// Read a store's settings, warehouses and enabled plugins.
    ReadStore,
    /// Change products, prices and warehouses.
    WriteCatalog,
    /// Read products and prices.
    ReadProducts,
    /// Receive and write off stock.
    WriteStock,
    /// Read stock levels.
    ReadStock,
    /// Enable, configure and disable plugins for a store, and set how its
    /// pricing plugins combine.
    ConfigurePlugins,
    /// Place orders.
    PlaceOrders,
    /// Read one order.
    ReadOrder,
    /// List a store's orders.
    ListOrders,
    /// Pay, cancel and fulfil orders.
    ChangeOrders,
    /// Price a cart without ordering.
    PriceCarts,
    /// Trust, list and distrust plugin publishers' keys.
    ManagePublishers,
    /// Install a plugin version (a partner only for its own plugins,
    /// checked against the manifest once the body is read).
    InstallPlugins,
    /// Browse the marketplace: installed plugins, versions, capabilities.
    ListPlugins,
    /// Activate, roll back, shadow, promote and remove plugin versions.
    ManagePlugins,
    /// Read a plugin's shadow run and call counters (a partner only for
    /// its own plugins).
    ReadPluginReports,
    /// Read circuit breakers (a merchant sees its own stores').
    ReadBreakers,
    /// Ask a store's analytics plugins their queries and follow the live
    /// stream of its headline figures.
    ReadAnalytics,
    /// Read the node's Prometheus metrics (unless the node serves them to
    /// anyone, `metrics_public`).
    ReadMetrics,
    /// Set a store's warehouse maps, and register and remove its devices.
    ManageDevices,
    /// Release a store's quarantined devices, and stop and resume the
    /// zones of its warehouses. The people who run the warehouse floor
    /// work for the merchant, so merchants may; an emergency stop must
    /// never wait for the node's operator.
    OperateDevices,
    /// Read a store's warehouse maps, devices with their telemetry, and
    /// robot tasks.
    ReadDevices,
    /// Read every device of the node, the bus's connection and counters.
    ReadFleet,
}

impl Permission {
    /// Whether the permission concerns one store (named by the `{store}`
    /// path parameter), so the token's scope must include it.
    pub fn is_store_scoped(self) -> bool {
        !matches!(
            self,
            Permission::ManageTokens
                | Permission::CreateStores
                | Permission::ListStores
                | Permission::ManagePublishers
                | Permission::InstallPlugins
                | Permission::ListPlugins
                | Permission::ManagePlugins
                | Permission::ReadPluginReports
                | Permission::ReadBreakers
                | Permission::ReadMetrics
                | Permission::ReadFleet
        )
    }

    /// Whether the permission concerns one plugin (named by the `{plugin}`
    /// path parameter) in a way only its publisher may see, so a partner
    /// token's scope must include it.
    pub fn is_plugin_scoped(self) -> bool {
        matches!(self, Permission::ReadPluginReports)
    }

    /// The role table: who may do what.
    pub fn allows(self, role: Role) -> bool {
        use Permission::*;
        match role {
            Role::Operator => true,
            Role::Merchant => !matches!(
                self,
                ManageTokens
                    | CreateStores
                    | ManagePublishers
                    | InstallPlugins
                    | ManagePlugins
                    | ReadPluginReports
                    | ReadMetrics
                    | ReadFleet
            ),
            Role::Checkout => matches!(
                self,
                PlaceOrders | ReadOrder | PriceCarts | ReadProducts | ReadStock | ListPlugins
            ),
            Role::Partner => matches!(self, InstallPlugins | ListPlugins | ReadPluginReports),
        }
    }

    /// The permission in words, for refusals.
    pub fn describe(self) -> &'static str {
        use Permission::*;
        match self {
            ManageTokens => "manage tokens",
            CreateStores => "create stores",
            ListStores => "list stores",
            ReadStore => "read store settings, warehouses and plugins",
            WriteCatalog => "change products, prices and warehouses",
            ReadProducts => "read products",
            WriteStock => "change stock",
            ReadStock => "read stock",
            ConfigurePlugins => "enable or configure plugins",
            PlaceOrders => "place orders",
            ReadOrder => "read orders",
            ListOrders => "list orders",
            ChangeOrders => "pay, cancel or fulfil orders",
            PriceCarts => "price carts",
            ManagePublishers => "manage plugin publishers",
            InstallPlugins => "install plugins",
            ListPlugins => "browse plugins",
            ManagePlugins => "activate, roll back or shadow plugin versions",
            ReadPluginReports => "read plugin reports",
            ReadBreakers => "read circuit breakers",
            ReadAnalytics => "read a store's analytics",
            ReadMetrics => "read the node's metrics",
            ManageDevices => "change warehouse maps or devices",
            OperateDevices => "release devices or stop and resume zones",
            ReadDevices => "read warehouse maps, devices and robot tasks",
            ReadFleet => "read every device of the node",
        }
    }
}

/// A permission as a type, so a handler's signature states what it does.
pub trait Guard {
    /// The permission the handler needs.
    const PERMISSION: Permission;
}

/// Marker types of the permissions, one per [`Permission`] that a handler
/// names in its signature (`ReadMetrics` depends on the configuration, so
/// its handler calls [`authorize`] instead).
pub mod perm {
    use super::{Guard, Permission};

    macro_rules! guards {
        ($($name:ident),* $(,)?) => {$(
            #[doc = concat!("Requires [`Permission::", stringify!($name), "`].")]
            pub struct $name;
            impl Guard for $name {
                const PERMISSION: Permission = Permission::$name;
            }
        )*};
    }

    guards!(
        ManageTokens,
        CreateStores,
        ListStores,
        ReadStore,
        WriteCatalog,
        ReadProducts,
        WriteStock,
        ReadStock,
        ConfigurePlugins,
        PlaceOrders,
        ReadOrder,
        ListOrders,
        ChangeOrders,
        PriceCarts,
        ManagePublishers,
        InstallPlugins,
        ListPlugins,
        ManagePlugins,
        ReadPluginReports,
        ReadBreakers,
        ReadAnalytics,
        ManageDevices,
        OperateDevices,
        ReadDevices,
        ReadFleet,
    );
}

/// An authenticated caller allowed to do `P`; for a store's routes, also
/// the store, checked against the token's scope and the store's rate limit.
pub struct Authorized<P> {
    /// The caller's token.
    pub caller: Arc<TokenRecord>,
    /// The store of the route, for store-scoped permissions.
    store: Option<StoreId>,
    /// The permission checked.
    permission: PhantomData<P>,
}

impl<P> Authorized<P> {
    /// The route's store. Only store-scoped handlers call this, and for
    /// them the extractor always found one.
    pub fn store(&self) -> Result<&StoreId, ApiError> {
        self.store
            .as_ref()
            .ok_or_else(|| ApiError::internal("route without a {store} parameter needs a store"))
    }
}

/// The caller's token from `Authorization: Bearer <secret>`.
pub fn authenticate(headers: &HeaderMap, state: &AppState) -> Result<Arc<TokenRecord>, ApiError> {
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Err(ApiError::unauthorized(
            "missing bearer token: send `Authorization: Bearer <token>`; the operator token is in the data directory's `operator-token` file",
        ));
    };
    let text = value.to_str().unwrap_or_default();
    let secret = match text.split_once(' ') {
        Some((scheme, secret)) if scheme.eq_ignore_ascii_case("bearer") => secret.trim(),
        _ => {
            return Err(ApiError::unauthorized(
                "malformed Authorization header: expected `Bearer <token>`",
            ));
        }
    };
    state
        .tokens()
        .authenticate(secret)
        .ok_or_else(|| ApiError::unauthorized("invalid or revoked bearer token"))
}

/// The caller's token, if its role grants `permission`; for the routes whose
/// guard depends on the configuration, so cannot be a type. Checks neither
/// a store nor a plugin scope.
pub fn authorize(
    headers: &HeaderMap,
    state: &AppState,
    permission: Permission,
) -> Result<Arc<TokenRecord>, ApiError> {
    let caller = authenticate(headers, state)?;
    if !permission.allows(caller.role) {
        return Err(ApiError::forbidden(format!(
            "a {} token may not {}",
            caller.role.name(),
            permission.describe()
        )));
    }
    Ok(caller)
}

impl<P: Guard + Send + Sync> FromRequestParts<AppState> for Authorized<P> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let permission = P::PERMISSION;
        let caller = authorize(&parts.headers, state, permission)?;
        if permission.is_plugin_scoped() {
            let params = raw_path_params(parts, state).await?;
            let Some((_, raw)) = params.iter().find(|(name, _)| *name == "plugin") else {
                return Err(ApiError::internal("plugin-scoped route without a {plugin} parameter"));
            };
            if !caller.reaches_plugin(raw) {
                return Err(ApiError::forbidden(format!(
                    "this {} token is not scoped to plugin {}",
                    caller.role.name(),
                    echoed(raw)
                )));
            }
        }
        let mut store = None;
        if permission.is_store_scoped() {
            let params = raw_path_params(parts, state).await?;
            let Some((_, raw)) = params.iter().find(|(name, _)| *name == "store") else {
                return Err(ApiError::internal("store-scoped route without a {store} parameter"));
            };
            if !caller.reaches_store(raw) {
                return Err(ApiError::forbidden(format!(
                    "this {} token is not scoped to store {}",
                    caller.role.name(),
                    echoed(raw)
                )));
            }
            let id = StoreId::new(raw).map_err(|error| {
                ApiError::not_found("store_not_found", format!("no store {}: {error}", echoed(raw)))
            })?;
            state.rate_limits().admit_store(&id)?;
            store = Some(id);
        }
        Ok(Self { caller, store, permission: PhantomData })
    }
}

/// The request's path parameters as sent. One that is not UTF-8 (`%FF`)
/// names nothing that could exist: 404, as [`crate::extract::PathParams`]
/// answers.
async fn raw_path_params(parts: &mut Parts, state: &AppState) -> Result<RawPathParams, ApiError> {
    RawPathParams::from_request_parts(parts, state).await.map_err(|rejection| match rejection {
        RawPathParamsRejection::InvalidUtf8InPathParam(_) => {
            ApiError::not_found("not_found", format!("no such resource: {}", rejection.body_text()))
        }
        _ => ApiError::internal(rejection.body_text()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_operators_manage_tokens_stores_publishers_and_plugin_versions() {
        for permission in [
            Permission::ManageTokens,
            Permission::CreateStores,
            Permission::ManagePublishers,
            Permission::ManagePlugins,
            Permission::ReadMetrics,
            Permission::ReadFleet,
        ] {
            assert!(permission.allows(Role::Operator));
            for role in [Role::Merchant, Role::Partner, Role::Checkout] {
                assert!(!permission.allows(role), "{role:?} may {permission:?}");
            }
        }
    }

    #[test]
    fn checkout_tokens_only_order_price_and_read_products_stock_and_the_marketplace() {
        let allowed = [
            Permission::PlaceOrders,
            Permission::ReadOrder,
            Permission::PriceCarts,
            Permission::ReadProducts,
            Permission::ReadStock,
            Permission::ListPlugins,
        ];
        for permission in [
            Permission::ListStores,
            Permission::ReadStore,
            Permission::WriteCatalog,
            Permission::WriteStock,
            Permission::ConfigurePlugins,
            Permission::ListOrders,
            Permission::ChangeOrders,
            Permission::ManagePublishers,
            Permission::InstallPlugins,
            Permission::ManagePlugins,
            Permission::ReadPluginReports,
            Permission::ReadBreakers,
            Permission::ReadAnalytics,
            Permission::ReadMetrics,
            Permission::ManageDevices,
            Permission::OperateDevices,
            Permission::ReadDevices,
            Permission::ReadFleet,
        ] {
            assert!(!permission.allows(Role::Checkout), "{permission:?}");
        }
        for permission in allowed {
            assert!(permission.allows(Role::Checkout), "{permission:?}");
        }
    }

    #[test]
    fn partners_install_browse_and_read_reports_of_their_plugins_only() {
        for permission in
            [Permission::InstallPlugins, Permission::ListPlugins, Permission::ReadPluginReports]
        {
            assert!(permission.allows(Role::Partner), "{permission:?}");
        }
        for permission in
            [Permission::ManagePlugins, Permission::ManagePublishers, Permission::ReadBreakers]
        {
            assert!(!permission.allows(Role::Partner), "{permission:?}");
        }
        let record = TokenRecord {
            id: "tok_1".into(),
            secret_sha256_hex: String::new(),
            role: Role::Partner,
            stores: Vec::new(),
            plugins: vec![PluginId::new("mine").unwrap()],
            label: String::new(),
            created_at_ms: 0,
        };
        assert!(record.reaches_plugin("mine"));
        assert!(!record.reaches_plugin("theirs"));
    }

    #[test]
    fn merchants_browse_plugins_and_breakers_but_do_not_manage_them() {
        for permission in [Permission::ListPlugins, Permission::ReadBreakers] {
            assert!(permission.allows(Role::Merchant), "{permission:?}");
        }
        for permission in [
            Permission::ManagePublishers,
            Permission::InstallPlugins,
            Permission::ManagePlugins,
            Permission::ReadPluginReports,
        ] {
            assert!(!permission.allows(Role::Merchant), "{permission:?}");
        }
        let record = TokenRecord {
            id: "tok_1".into(),
            secret_sha256_hex: String::new(),
            role: Role::Merchant,
            stores: vec![StoreId::new("a").unwrap()],
            plugins: Vec::new(),
            label: String::new(),
            created_at_ms: 0,
        };
        assert!(!record.reaches_plugin("anything"));
    }

    #[test]
    fn analytics_are_for_operators_and_the_stores_merchants_and_metrics_for_operators() {
        assert!(Permission::ReadAnalytics.is_store_scoped());
        assert!(Permission::ReadAnalytics.allows(Role::Merchant));
        assert!(!Permission::ReadMetrics.is_store_scoped());
        for role in [Role::Partner, Role::Checkout] {
            assert!(!Permission::ReadAnalytics.allows(role), "{role:?}");
        }
        for role in [Role::Merchant, Role::Partner, Role::Checkout] {
            assert!(!Permission::ReadMetrics.allows(role), "{role:?}");
        }
    }

    #[test]
    fn merchants_run_their_stores_devices_and_only_operators_see_the_whole_fleet() {
        for permission in
            [Permission::ManageDevices, Permission::OperateDevices, Permission::ReadDevices]
        {
            assert!(permission.is_store_scoped(), "{permission:?}");
            assert!(permission.allows(Role::Merchant), "{permission:?}");
            assert!(!permission.allows(Role::Partner), "{permission:?}");
        }
        assert!(!Permission::ReadFleet.is_store_scoped());
        assert!(!Permission::ReadFleet.allows(Role::Merchant));
        assert!(!Permission::ReadFleet.allows(Role::Partner));
    }

    #[test]
    fn partners_may_do_nothing_store_scoped() {
        let record = TokenRecord {
            id: "tok_1".into(),
            secret_sha256_hex: String::new(),
            role: Role::Partner,
            stores: Vec::new(),
            plugins: vec![PluginId::new("p").unwrap()],
            label: String::new(),
            created_at_ms: 0,
        };
        assert!(!record.reaches_store("any"));
        assert!(!Permission::ReadProducts.allows(Role::Partner));
    }

    #[test]
    fn a_merchant_token_reaches_only_its_stores() {
        let record = TokenRecord {
            id: "tok_1".into(),
            secret_sha256_hex: String::new(),
            role: Role::Merchant,
            stores: vec![StoreId::new("a").unwrap()],
            plugins: Vec::new(),
            label: String::new(),
            created_at_ms: 0,
        };
        assert!(record.reaches_store("a"));
        assert!(!record.reaches_store("b"));
    }

    #[test]
    fn scopes_must_fit_roles() {
        let store = || vec![StoreId::new("a").unwrap()];
        let request =
            |role, stores, plugins| TokenRequest { role, stores, plugins, label: "x".into() };
        assert!(check_scope(&request(Role::Operator, store(), vec![])).is_err());
        assert!(check_scope(&request(Role::Merchant, vec![], vec![])).is_err());
        assert!(check_scope(&request(Role::Checkout, vec![], vec![])).is_err());
        assert!(check_scope(&request(Role::Partner, vec![], vec![])).is_err());
        assert!(check_scope(&request(Role::Merchant, store(), vec![])).is_ok());
        assert!(check_scope(&request(Role::Checkout, store(), vec![])).is_ok());
    }

    #[test]
    fn digests_round_trip_through_hex() {
        let digest = digest("bzr_secret");
        assert_eq!(decode_hex(&hex(&digest)).unwrap(), digest.to_vec());
        assert!(decode_hex("zz").is_none());
    }
}
