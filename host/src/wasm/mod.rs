//! The WebAssembly engine: compile a transform component once, instantiate
//! it per worker, and call it under a deadline and a memory limit.
//!
//! A call that traps, runs past its deadline or exhausts its memory fails
//! as a whole ([`CallError`]); the instance is then rebuilt from the
//! pre-instantiated component before the next call, so one bad batch
//! costs that batch only.

mod convert;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rand_wasi::SeedableRng;
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Config, Engine as WasmEngine, Store, StoreLimits, StoreLimitsBuilder, Trap};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::window::Batch;
pub use convert::InvalidResult;

mod bindings {
    wasmtime::component::bindgen!({
        path: "../sdk/wit",
        world: "transform",
    });
}

use bindings::exports::sluice::transform::aggregate_transform as agg;
use bindings::sluice::transform::types::{FeatureType as WitType, Kind as WitKind};
use bindings::{Transform, TransformPre};
use sluice_sink_api::{FeatureSchema, FeatureSpec, FeatureType};

/// The transform's result for one window.
pub type Features = sluice_sink_api::Features;

/// Aggregates: an accumulator (or none yet) and the rows of a call to fold
/// into it.
pub use agg::AddGroup;

/// Why one input of a call has no result (the call itself went well).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// A stable name (see [`sluice_sink_api::DeadLetter::error_class`]).
    pub class: &'static str,
    pub message: String,
}

impl RowError {
    /// The transform returned an error, or a result the host cannot read.
    pub fn returned(message: String) -> RowError {
        RowError { class: "transform_error", message }
    }

    /// The row breaks the module's declared features.
    fn schema(message: String) -> RowError {
        RowError { class: "schema", message }
    }
}

/// Which contract a module implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Window,
    Aggregate,
}

impl Kind {
    pub const ALL: [Kind; 2] = [Kind::Window, Kind::Aggregate];

    /// What a module of this kind does, in a line.
    pub fn about(self) -> &'static str {
        match self {
            Kind::Window => "Gets a window's events when it fires and returns its features.",
            Kind::Aggregate => "Folds each event into a per-window accumulator; returns the features when it fires.",
        }
    }

    /// As written in a manifest.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Window => "window",
            Kind::Aggregate => "aggregate",
        }
    }

    fn article(self) -> &'static str {
        match self {
            Kind::Window => "a window",
            Kind::Aggregate => "an aggregate",
        }
    }
}

impl LoadError {
    /// What to do about it.
    pub fn hint(&self) -> &'static str {
        match self {
            LoadError::Read { .. } => "build the transforms with scripts/build-transforms, or fix transform.module",
            LoadError::Compile { .. } | LoadError::Contract { .. } => {
                "build the module for wasm32-wasip2 against sluice-sdk (see the README, Writing a transform)"
            }
            LoadError::WrongKind { .. } => "set transform.kind to the module's kind",
            LoadError::Engine(_) => "this is a host problem; please report it",
        }
    }
}

/// Whether an error comes from the operating system (memory, a file
/// descriptor) rather than from the module.
fn refused_by_the_os(e: &wasmtime::Error) -> bool {
    e.chain().any(|cause| cause.is::<std::io::Error>())
}

/// Limits for every call into a module.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Wall-clock time one call may take.
    pub timeout: Duration,
    /// Linear memory one instance may grow to, bytes.
    pub memory_bytes: usize,
}

/// Why a module could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: {message}")]
    Read { path: String, message: String },
    #[error("{path} is not a valid WebAssembly component: {message}")]
    Compile { path: String, message: String },
    #[error("{path} does not implement the Sluice transform contract (sdk/wit): {message}")]
    Contract { path: String, message: String },
    #[error("{path} is {} transform but the manifest says `transform.kind: {}`", found.article(), expected.name())]
    WrongKind { path: String, expected: Kind, found: Kind },
    #[error("wasmtime: {0}")]
    Engine(String),
}

/// Why a whole call failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum CallError {
    #[error("the transform ran past its {0:?} deadline")]
    Timeout(Duration),
    #[error("the transform exceeded its memory limit of {0} bytes")]
    OutOfMemory(usize),
    #[error("the transform trapped: {0}")]
    Trap(String),
    #[error("the transform broke the contract: {0}")]
    Contract(String),
}

impl CallError {
    /// A stable name for dashboards and dead-letter headers.
    pub fn class(&self) -> &'static str {
        match self {
            CallError::Timeout(_) => "timeout",
            CallError::OutOfMemory(_) => "out_of_memory",
            CallError::Trap(_) => "trap",
            CallError::Contract(_) => "contract",
        }
    }
}

/// Largest module file read. Rust transforms are a few hundred kilobytes;
/// a Python one (componentize-py: CPython and its standard library) about
/// 18 MB, more with bundled dependencies.
pub const MAX_MODULE_BYTES: u64 = 64 << 20;

/// How often the deadline clock ticks.
const TICK: Duration = Duration::from_millis(5);

/// `deadline` in ticks of the deadline clock.
fn ticks(deadline: Duration) -> u64 {
    deadline.as_nanos().div_ceil(TICK.as_nanos()).max(1) as u64
}

/// A compiled module, ready to instantiate.
#[derive(Clone)]
pub struct Module {
    engine: WasmEngine,
    pre: TransformPre<HostState>,
    limits: Limits,
    kind: Kind,
    name: Arc<str>,
    schema: Arc<FeatureSchema>,
}

impl std::fmt::Debug for Module {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Module").field("name", &self.name).field("kind", &self.kind).finish()
    }
}

struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: StoreLimits,
    stderr: MemoryOutputPipe,
    module: Arc<str>,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl bindings::sluice::transform::types::Host for HostState {}

impl bindings::sluice::transform::host::Host for HostState {
    fn log(&mut self, level: bindings::sluice::transform::types::Level, message: String) {
        use bindings::sluice::transform::types::Level;
        let module = &*self.module;
        match level {
            Level::Trace => tracing::trace!(module, "{message}"),
            Level::Debug => tracing::debug!(module, "{message}"),
            Level::Info => tracing::info!(module, "{message}"),
            Level::Warn => tracing::warn!(module, "{message}"),
            Level::Error => tracing::error!(module, "{message}"),
        }
    }
}

/// The seed of every guest's random numbers: fixed, so that a window gives
/// the same features on every instance and every run.
const GUEST_RANDOM_SEED: u64 = 0x5eed_51c3;

/// A clock frozen at the epoch: guests get no time (determinism).
struct NoClock;

impl wasmtime_wasi::HostWallClock for NoClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl wasmtime_wasi::HostMonotonicClock for NoClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        0
    }
}

/// The compiler and its deadline clock, shared by every module of a host:
/// one code cache, one ticking thread, whatever the number of pipelines.
#[derive(Clone)]
pub struct Engine {
    inner: WasmEngine,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine that compiles every module it is given.
    pub fn new() -> Result<Engine, LoadError> {
        Self::with_cache(None)
    }

    /// An engine that keeps compiled modules in `dir` (wasmtime's code
    /// cache, keyed by the module's bytes and the compiler's settings): a
    /// module compiled once, by any process using `dir`, is read back
    /// after. A Python module (CPython inside) takes seconds to compile and
    /// a fraction of one to read back (see the README's figures). wasmtime
    /// trims the folder past its soft limits (512 MiB by default).
    pub fn cached(dir: &Path) -> Result<Engine, LoadError> {
        Self::with_cache(Some(dir))
    }

    fn with_cache(dir: Option<&Path>) -> Result<Engine, LoadError> {
        let mut config = Config::new();
        config.wasm_component_model(true).epoch_interruption(true);
        // `SLUICE_PERF_MAP=1`: name guest functions for `perf` (profiling
        // transforms).
        if std::env::var_os("SLUICE_PERF_MAP").is_some() {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        if let Some(dir) = dir {
            let unusable =
                |e: &dyn std::fmt::Display| LoadError::Engine(format!("the code cache in {}: {e}", dir.display()));
            // wasmtime takes an absolute path only.
            let absolute = std::path::absolute(dir).map_err(|e| unusable(&e))?;
            let mut cache = wasmtime::CacheConfig::new();
            cache.with_directory(absolute);
            let cache = wasmtime::Cache::new(cache).map_err(|e| unusable(&format!("{e:#}")))?;
            config.cache(Some(cache));
        }
        let engine = WasmEngine::new(&config).map_err(|e| LoadError::Engine(e.to_string()))?;
        // The deadline clock: it holds the engine weakly, so it ends once
        // the last module and the runtime are gone.
        let weak = engine.weak();
        std::thread::Builder::new()
            .name("sluice-epoch".into())
            .spawn(move || {
                while let Some(engine) = weak.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(TICK);
                }
            })
            .map_err(|e| LoadError::Engine(e.to_string()))?;
        Ok(Engine { inner: engine })
    }
}

impl Module {
    /// Compile the component at `path`, check it implements the contract and
    /// is of kind `expected`.
    pub fn load(engine: &Engine, path: &Path, expected: Kind, limits: Limits) -> Result<Module, LoadError> {
        let bytes = crate::files::read_limited(path, MAX_MODULE_BYTES, "module")
            .map_err(|message| LoadError::Read { path: path.display().to_string(), message })?;
        Self::from_bytes(engine, &path.display().to_string(), &bytes, expected, limits)
    }

    /// Compile a component from bytes; `name` names it in errors and logs.
    pub fn from_bytes(
        engine: &Engine,
        name: &str,
        bytes: &[u8],
        expected: Kind,
        limits: Limits,
    ) -> Result<Module, LoadError> {
        Self::compile(engine, name, bytes, Some(expected), limits)
    }

    /// Compile a component of either kind and read what it declares (an
    /// upload to the module registry, before any manifest names it).
    pub fn inspect(engine: &Engine, name: &str, bytes: &[u8], limits: Limits) -> Result<Module, LoadError> {
        Self::compile(engine, name, bytes, None, limits)
    }

    fn compile(
        engine: &Engine,
        name: &str,
        bytes: &[u8],
        expected: Option<Kind>,
        limits: Limits,
    ) -> Result<Module, LoadError> {
        let engine = engine.inner.clone();
        let component = Component::new(&engine, bytes)
            .map_err(|e| LoadError::Compile { path: name.to_string(), message: format!("{e:#}") })?;
        let mut linker: Linker<HostState> = Linker::new(&engine);
        let engine_err = |e: wasmtime::Error| LoadError::Engine(format!("{e:#}"));
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(engine_err)?;
        Transform::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s).map_err(engine_err)?;
        let contract = |e: wasmtime::Error| LoadError::Contract { path: name.to_string(), message: format!("{e:#}") };
        let pre = TransformPre::new(linker.instantiate_pre(&component).map_err(contract)?).map_err(contract)?;
        let mut module = Module {
            engine,
            pre,
            limits,
            kind: expected.unwrap_or(Kind::Window),
            name: name.into(),
            schema: Arc::new(FeatureSchema::default()),
        };
        let instance = match module.instantiate() {
            // Wasmtime makes the module's copy-on-write memory image at its
            // first instance, and does not keep a failure: an OS refusal
            // there (a memfd the kernel will not seal while its pages are
            // pinned) may pass a moment later.
            Err(e) if refused_by_the_os(&e) => {
                tracing::warn!(module = %name, error = %format!("{e:#}"), "starting the module failed; once more");
                module.instantiate()
            }
            started => started,
        };
        let mut instance = instance.map_err(|e| match e.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => LoadError::Contract {
                path: name.to_string(),
                message: format!("starting it ran past the {:?} deadline", limits.timeout),
            },
            _ if refused_by_the_os(&e) => LoadError::Engine(format!("starting {name}: {e:#}")),
            _ => contract(e),
        })?;
        let broken = |message: String| LoadError::Contract { path: name.to_string(), message };
        let found = instance.kind().map_err(|e| broken(e.to_string()))?;
        match expected {
            Some(expected) if found != expected => {
                return Err(LoadError::WrongKind { path: name.to_string(), expected, found });
            }
            _ => module.kind = found,
        }
        let specs = instance.features().map_err(|e| broken(e.to_string()))?;
        let schema = FeatureSchema::new(specs).map_err(|e| broken(format!("its declared features: {e}")))?;
        module.schema = Arc::new(schema);
        Ok(module)
    }

    /// The features the module declares its rows hold.
    pub fn schema(&self) -> &Arc<FeatureSchema> {
        &self.schema
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// A new instance, for one worker.
    pub fn instantiate(&self) -> wasmtime::Result<Instance> {
        let (store, bindings) = self.fresh()?;
        Ok(Instance { module: self.clone(), store, bindings, broken: false })
    }

    fn fresh(&self) -> wasmtime::Result<(Store<HostState>, Transform)> {
        let stderr = MemoryOutputPipe::new(16 * 1024);
        let wasi = WasiCtx::builder()
            .stderr(stderr.clone())
            .wall_clock(NoClock)
            .monotonic_clock(NoClock)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            // Randomness a guest asks for at run time (`os.urandom`, a
            // `random.Random()` made in a call) is the same on every
            // instance and run: a replay after a crash writes the same rows.
            .secure_random(rand_wasi::rngs::StdRng::seed_from_u64(GUEST_RANDOM_SEED))
            .insecure_random(rand_wasi::rngs::StdRng::seed_from_u64(GUEST_RANDOM_SEED))
            .insecure_random_seed(u128::from(GUEST_RANDOM_SEED))
            .build();
        let limits = StoreLimitsBuilder::new().memory_size(self.limits.memory_bytes).trap_on_grow_failure(true).build();
        let state = HostState { wasi, table: ResourceTable::new(), limits, stderr, module: self.name.clone() };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        store.epoch_deadline_trap();
        // A module's start functions run at instantiation: they get the
        // deadline of a call, so one that never returns is stopped too.
        store.set_epoch_deadline(ticks(self.limits.timeout));
        let bindings = self.pre.instantiate(&mut store)?;
        store.set_epoch_deadline(u64::MAX / 2);
        Ok((store, bindings))
    }
}

/// One instance of a module, owned by one worker.
pub struct Instance {
    module: Module,
    store: Store<HostState>,
    bindings: Transform,
    /// The last call failed: rebuild before the next.
    broken: bool,
}

impl Instance {
    /// The module's `transform.timeout`: the deadline of a first call.
    pub fn timeout(&self) -> Duration {
        self.module.limits.timeout
    }

    fn kind(&mut self) -> Result<Kind, CallError> {
        let timeout = self.timeout();
        let kind = self.call(timeout, |b, s| b.sluice_transform_guest().call_transform_kind(s))?;
        Ok(match kind {
            WitKind::Window => Kind::Window,
            WitKind::Aggregate => Kind::Aggregate,
        })
    }

    fn features(&mut self) -> Result<Vec<FeatureSpec>, CallError> {
        let timeout = self.timeout();
        let specs = self.call(timeout, |b, s| b.sluice_transform_guest().call_features(s))?;
        Ok(specs
            .into_iter()
            .map(|s| FeatureSpec {
                name: s.name.into(),
                ty: match s.type_ {
                    WitType::Boolean => FeatureType::Bool,
                    WitType::Int => FeatureType::Int,
                    WitType::Float => FeatureType::Float,
                    WitType::Str => FeatureType::Str,
                    WitType::Bools => FeatureType::Bools,
                    WitType::Ints => FeatureType::Ints,
                    WitType::Floats => FeatureType::Floats,
                    WitType::Strs => FeatureType::Strs,
                },
                nullable: s.nullable,
                description: s.description,
            })
            .collect())
    }

    /// Rows that break the declared features fail. The rows of a call
    /// share their name strings, so each is looked up once, then known by
    /// its address.
    fn checked(&self, rows: Vec<Result<Features, RowError>>) -> Vec<Result<Features, RowError>> {
        let schema = &self.module.schema;
        let mut known: Vec<(Arc<str>, Option<usize>)> = Vec::new();
        let mut index = |name: &Arc<str>| match known.iter().find(|(n, _)| Arc::ptr_eq(n, name)) {
            Some(&(_, i)) => i,
            // A call names a few features; past that, no list to scan.
            None if known.len() >= 64 => schema.index(name),
            None => {
                let i = schema.index(name);
                known.push((name.clone(), i));
                i
            }
        };
        rows.into_iter()
            .map(|r| r.and_then(|f| schema.check_with(&f, &mut index).map(|()| f).map_err(RowError::schema)))
            .collect()
    }

    /// Run `f` under `deadline`; classify and recover from failures.
    fn call<R>(
        &mut self,
        deadline: Duration,
        f: impl FnOnce(&Transform, &mut Store<HostState>) -> wasmtime::Result<R>,
    ) -> Result<R, CallError> {
        if self.broken {
            let (store, bindings) =
                self.module.fresh().map_err(|e| CallError::Trap(format!("cannot re-instantiate: {e:#}")))?;
            self.store = store;
            self.bindings = bindings;
            self.broken = false;
        }
        let limits = self.module.limits;
        self.store.set_epoch_deadline(ticks(deadline));
        let result = f(&self.bindings, &mut self.store);
        self.store.set_epoch_deadline(u64::MAX / 2);
        result.map_err(|e| {
            // After a trap the instance may be in any state: never reuse it.
            self.broken = true;
            let stderr = String::from_utf8_lossy(&self.store.data().stderr.contents()).trim().to_string();
            let error = match e.downcast_ref::<Trap>() {
                Some(Trap::Interrupt) => CallError::Timeout(deadline),
                _ if format!("{e:#}").contains("forcing trap when growing memory") => {
                    CallError::OutOfMemory(limits.memory_bytes)
                }
                _ if stderr.is_empty() => CallError::Trap(format!("{e:#}")),
                _ => CallError::Trap(format!("{e:#}; guest stderr: {stderr}")),
            };
            tracing::warn!(module = %self.module.name, class = error.class(), "{error}");
            error
        })
    }

    /// Window transforms: one result per window of `batch`.
    pub fn process(
        &mut self,
        batch: &mut Batch,
        deadline: Duration,
    ) -> Result<Vec<Result<Features, RowError>>, CallError> {
        let events = convert::events(batch);
        let windows = convert::windows(batch);
        let n = windows.len();
        let out = self.call(deadline, |b, s| b.sluice_transform_window_transform().call_process(s, &events, &windows));
        // Back into the batch whatever happened: dead letters need them.
        convert::give_back(batch, events, windows);
        Ok(self.checked(convert::results(out?, n, &batch.strings)?))
    }

    /// Aggregates: fold `groups` (accumulator or none, rows of the batch).
    pub fn add(
        &mut self,
        batch: &Batch,
        groups: &[AddGroup],
        deadline: Duration,
    ) -> Result<Vec<Result<Vec<u8>, RowError>>, CallError> {
        let events = convert::events_ref(batch);
        let out = self.call(deadline, |b, s| b.sluice_transform_aggregate_transform().call_add(s, &events, groups))?;
        accumulators(convert::check_len(out, groups.len())?)
    }

    /// Aggregates: merge each group of accumulators.
    pub fn merge(
        &mut self,
        groups: &[Vec<Vec<u8>>],
        deadline: Duration,
    ) -> Result<Vec<Result<Vec<u8>, RowError>>, CallError> {
        let out = self.call(deadline, |b, s| b.sluice_transform_aggregate_transform().call_merge(s, groups))?;
        accumulators(convert::check_len(out, groups.len())?)
    }

    /// Aggregates: features of each window's accumulator.
    pub fn finish(
        &mut self,
        windows: &[(&crate::window::Fired, Vec<u8>)],
        deadline: Duration,
    ) -> Result<Vec<Result<Features, RowError>>, CallError> {
        let windows: Vec<agg::FinishWindow> = windows
            .iter()
            .map(|(w, acc)| agg::FinishWindow {
                key: w.key.clone(),
                start: w.start,
                end: w.end,
                trigger: convert::trigger(w.trigger),
                acc: acc.clone(),
            })
            .collect();
        let n = windows.len();
        let out = self.call(deadline, |b, s| b.sluice_transform_aggregate_transform().call_finish(s, &windows))?;
        // Finish sees no events, so it has no string table to refer to.
        Ok(self.checked(convert::results(out, n, &[])?))
    }
}

fn accumulators(out: Vec<Result<Vec<u8>, String>>) -> Result<Vec<Result<Vec<u8>, RowError>>, CallError> {
    Ok(out.into_iter().map(|r| r.map_err(RowError::returned)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_os_refusal_is_told_from_a_modules_own_failure() {
        // As wasmtime reports a memory image the kernel would not seal.
        let sealed =
            wasmtime::Error::new(std::io::Error::from_raw_os_error(16)).context("cannot add seals to the memfd");
        assert!(refused_by_the_os(&sealed));
        let own = wasmtime::Error::msg("memory minimum size of 400 pages exceeds memory limits");
        assert!(!refused_by_the_os(&own));
    }
}
