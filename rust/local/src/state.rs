//! Shared server state: tables (files), faults, stats, issued tokens.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use serde_json::json;
use tokio::sync::watch;

use crate::faults::{self, FaultEntry, FaultSpec, StreamFaults};
use crate::ServerConfig;

/// Writes at or below this size (without fsync) are done inline on the async thread.
const INLINE_WRITE_MAX: usize = 256 * 1024;

/// One table = one append-only JSONL file. The std mutex makes each commit's buffer land
/// contiguously (no interleaving of concurrent streams).
pub(crate) struct Table {
    pub name: String,
    pub path: PathBuf,
    file: Mutex<File>,
    pub committed_records: AtomicU64,
    pub committed_bytes: AtomicU64,
}

impl Table {
    /// Appends the buffers (complete lines), optionally fsyncs, then counts the records.
    pub async fn append(self: &Arc<Self>, bufs: Vec<Vec<u8>>, records: u64, fsync: bool) -> io::Result<()> {
        let bytes: usize = bufs.iter().map(Vec::len).sum();
        if bytes == 0 {
            return Ok(());
        }
        if !fsync && bytes <= INLINE_WRITE_MAX {
            self.append_blocking(&bufs, records, bytes, false)
        } else {
            let table = self.clone();
            tokio::task::spawn_blocking(move || table.append_blocking(&bufs, records, bytes, fsync))
                .await
                .map_err(io::Error::other)?
        }
    }

    fn append_blocking(&self, bufs: &[Vec<u8>], records: u64, bytes: usize, fsync: bool) -> io::Result<()> {
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        for b in bufs {
            file.write_all(b)?;
        }
        if fsync {
            file.sync_data()?;
        }
        drop(file);
        self.committed_records.fetch_add(records, Ordering::Relaxed);
        self.committed_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        Ok(())
    }
}

#[derive(Default)]
struct Stats {
    last_user_agent: Option<String>,
    last_authorization_details: Option<String>,
    tokens_issued: u64,
    /// Token requests answered, issued or refused by an injected fault.
    token_requests: u64,
    /// Streams refused for an invalid or expired bearer token.
    auth_refusals: u64,
}

pub(crate) struct State {
    pub config: ServerConfig,
    pub shutdown: watch::Receiver<bool>,
    tables: RwLock<HashMap<String, Arc<Table>>>,
    faults: Mutex<Vec<FaultEntry>>,
    stats: Mutex<Stats>,
    /// Issued tokens and when they expire.
    tokens: Mutex<HashMap<String, std::time::Instant>>,
    /// Statuses the next token requests answer with (fault injection), in order.
    token_errors: Mutex<std::collections::VecDeque<u16>>,
    pub streams_opened: AtomicU64,
    pub streams_active: AtomicI64,
    pub create_failures: AtomicU64,
    pub streams_failed: AtomicU64,
    /// Arrow dictionary batches received (DoPut), all streams.
    pub dictionary_batches: AtomicU64,
    next_id: AtomicU64,
}

/// Validates a three-part table name and that it is safe as a file name.
pub(crate) fn validate_table_name(name: &str) -> Result<(), String> {
    let parts: Vec<&str> = name.split('.').collect();
    if parts.len() != 3 || parts.iter().any(|p| p.is_empty()) {
        return Err(format!(
            "invalid table name {name:?}: expected three-part name catalog.schema.table"
        ));
    }
    if name
        .chars()
        .any(|c| c == '/' || c == '\\' || c == '\0' || c.is_control())
    {
        return Err(format!("invalid table name {name:?}: contains a forbidden character"));
    }
    Ok(())
}

impl State {
    pub fn new(config: ServerConfig, shutdown: watch::Receiver<bool>) -> Result<Self, String> {
        if config.client_id.is_some() != config.client_secret.is_some() {
            return Err("clientId and clientSecret must be set together".to_string());
        }
        std::fs::create_dir_all(&config.data_dir).map_err(|e| {
            format!("cannot create data dir {}: {e}", config.data_dir.display())
        })?;
        let state = Self {
            config: config.clone(),
            shutdown,
            tables: RwLock::new(HashMap::new()),
            faults: Mutex::new(Vec::new()),
            stats: Mutex::new(Stats::default()),
            tokens: Mutex::new(HashMap::new()),
            token_errors: Mutex::new(Default::default()),
            streams_opened: AtomicU64::new(0),
            streams_active: AtomicI64::new(0),
            create_failures: AtomicU64::new(0),
            streams_failed: AtomicU64::new(0),
            dictionary_batches: AtomicU64::new(0),
            next_id: AtomicU64::new(1),
        };
        for t in &config.tables {
            state.register_table(t)?;
        }
        Ok(state)
    }

    /// Registers a table (opens/creates its file). Returns the table and whether it was new.
    pub fn register_table(&self, name: &str) -> Result<(Arc<Table>, bool), String> {
        validate_table_name(name)?;
        if let Some(t) = self.tables.read().unwrap().get(name) {
            return Ok((t.clone(), false));
        }
        let mut tables = self.tables.write().unwrap();
        if let Some(t) = tables.get(name) {
            return Ok((t.clone(), false));
        }
        let path = self.config.data_dir.join(format!("{name}.jsonl"));
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        let table = Arc::new(Table {
            name: name.to_string(),
            path,
            file: Mutex::new(file),
            committed_records: AtomicU64::new(0),
            committed_bytes: AtomicU64::new(0),
        });
        tables.insert(name.to_string(), table.clone());
        Ok((table, true))
    }

    pub fn table(&self, name: &str) -> Option<Arc<Table>> {
        self.tables.read().unwrap().get(name).cloned()
    }

    pub fn table_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.tables.read().unwrap().keys().cloned().collect();
        v.sort();
        v
    }

    pub fn add_fault(&self, spec: FaultSpec) -> Result<(), String> {
        spec.validate()?;
        let remaining = spec.times;
        self.faults.lock().unwrap().push(FaultEntry { spec, remaining });
        Ok(())
    }

    pub fn clear_faults(&self) {
        self.faults.lock().unwrap().clear();
    }

    pub fn faults_json(&self) -> serde_json::Value {
        faults::remaining_json(&self.faults.lock().unwrap())
    }

    pub fn take_faults(&self, table: &str) -> StreamFaults {
        faults::take_for_stream(&mut self.faults.lock().unwrap(), table)
    }

    pub fn set_user_agent(&self, ua: Option<String>) {
        if let Some(ua) = ua {
            self.stats.lock().unwrap().last_user_agent = Some(ua);
        }
    }

    pub fn set_authorization_details(&self, d: String) {
        self.stats.lock().unwrap().last_authorization_details = Some(d);
    }

    /// A fresh random-looking id (not cryptographic; fine for a local test server).
    pub fn random_hex(&self) -> String {
        use std::hash::{BuildHasher, Hasher};
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut out = String::with_capacity(32);
        for salt in [0x9e37_79b9_7f4a_7c15u64, 0xc2b2_ae3d_27d4_eb4f] {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(n);
            h.write_u64(salt);
            h.write_u128(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0),
            );
            out.push_str(&format!("{:016x}", h.finish()));
        }
        out
    }

    pub fn next_stream_id(&self) -> String {
        format!("local-{}", self.random_hex())
    }

    /// Issues a token valid for `token_ttl_secs`.
    pub fn issue_token(&self) -> String {
        let token = format!("zbl_{}", self.random_hex());
        let expires = std::time::Instant::now() + std::time::Duration::from_secs(self.config.token_ttl_secs);
        self.tokens.lock().unwrap().insert(token.clone(), expires);
        let mut st = self.stats.lock().unwrap();
        st.tokens_issued += 1;
        st.token_requests += 1;
        token
    }

    /// Ok if `token` was issued here and has not expired; else why not.
    pub fn check_token(&self, token: &str) -> Result<(), &'static str> {
        let r = match self.tokens.lock().unwrap().get(token) {
            None => Err("invalid bearer token"),
            Some(exp) if std::time::Instant::now() >= *exp => Err("expired bearer token"),
            Some(_) => Ok(()),
        };
        if r.is_err() {
            self.stats.lock().unwrap().auth_refusals += 1;
        }
        r
    }

    /// Forgets every issued token: streams opened with them are refused with UNAUTHENTICATED.
    pub fn revoke_tokens(&self) {
        self.tokens.lock().unwrap().clear();
    }

    /// The next token requests answer with these HTTP statuses, in order (fault injection).
    pub fn add_token_errors(&self, statuses: &[u16]) {
        self.token_errors.lock().unwrap().extend(statuses);
    }

    pub fn count_token_request(&self) {
        self.stats.lock().unwrap().token_requests += 1;
    }

    /// The status the current token request must answer with, if a token fault is queued.
    pub fn take_token_error(&self) -> Option<u16> {
        self.token_errors.lock().unwrap().pop_front()
    }

    pub fn auth_required(&self) -> bool {
        self.config.client_id.is_some()
    }

    pub fn stats_json(&self) -> serde_json::Value {
        let tables = self.tables.read().unwrap();
        let mut records = BTreeMap::new();
        let mut bytes = BTreeMap::new();
        let mut files = BTreeMap::new();
        for (name, t) in tables.iter() {
            records.insert(name.clone(), t.committed_records.load(Ordering::Relaxed));
            bytes.insert(name.clone(), t.committed_bytes.load(Ordering::Relaxed));
            files.insert(name.clone(), t.path.display().to_string());
        }
        drop(tables);
        let stats = self.stats.lock().unwrap();
        json!({
            "streamsOpened": self.streams_opened.load(Ordering::Relaxed),
            "streamsActive": self.streams_active.load(Ordering::Relaxed),
            "streamsFailed": self.streams_failed.load(Ordering::Relaxed),
            "createFailures": self.create_failures.load(Ordering::Relaxed),
            "dictionaryBatches": self.dictionary_batches.load(Ordering::Relaxed),
            "tokensIssued": stats.tokens_issued,
            "tokenRequests": stats.token_requests,
            "authRefusals": stats.auth_refusals,
            "committedRecords": records,
            "committedBytes": bytes,
            "tableFiles": files,
            "lastUserAgent": stats.last_user_agent,
            "lastAuthorizationDetails": stats.last_authorization_details,
            "faultsRemaining": self.faults_json(),
        })
    }

    /// Clears stats and faults; keeps tables, files, data and issued tokens.
    pub fn reset(&self) {
        self.clear_faults();
        {
            let mut stats = self.stats.lock().unwrap();
            let issued = std::mem::take(&mut *stats);
            drop(issued);
        }
        self.streams_opened.store(0, Ordering::Relaxed);
        self.create_failures.store(0, Ordering::Relaxed);
        self.streams_failed.store(0, Ordering::Relaxed);
        self.dictionary_batches.store(0, Ordering::Relaxed);
        for t in self.tables.read().unwrap().values() {
            t.committed_records.store(0, Ordering::Relaxed);
            t.committed_bytes.store(0, Ordering::Relaxed);
        }
    }
}

/// Resolves once shutdown was requested (or the server handle is gone).
pub(crate) async fn shutdown_requested(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|v| *v).await;
}
