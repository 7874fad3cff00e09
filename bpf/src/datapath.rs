//! The programs on a real kernel: load them (maps pinned, so a restarted agent finds the
//! same maps and connections keep being balanced meanwhile), attach them to a cgroup with
//! pinned links, fill the maps from a [`Table`], read them back, and remove it all.

use std::collections::HashMap as Map;
use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use aya::maps::{HashMap, MapData, PerCpuArray};
use aya::programs::links::{FdLink, PinnedLink};
use aya::programs::{CgroupAttachMode, CgroupSock, CgroupSockAddr, SockOps};
use aya::{Ebpf, EbpfLoader};

use crate::layout::{Addr, Frontend, Service, SlotKey, LAYOUT_VERSION, SERVICE_L7, STATS};
use crate::table::{self, Table};
use crate::view::ServiceView;

/// The object clang built from `sock_lb.c`.
#[cfg(feature = "programs")]
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/sock_lb.o"));
#[cfg(not(feature = "programs"))]
static OBJECT: &[u8] = &[];

/// The programs, in the order they are attached (sock_ops last: it only reads what the
/// connect programs wrote).
const PROGRAMS: [&str; 10] = [
    "mesh_connect4",
    "mesh_connect6",
    "mesh_sendmsg4",
    "mesh_sendmsg6",
    "mesh_recvmsg4",
    "mesh_recvmsg6",
    "mesh_getpeername4",
    "mesh_getpeername6",
    "mesh_sockops",
    "mesh_release",
];

const SOCK_OPS: &str = "mesh_sockops";

/// Where the maps and links are pinned by default, as Cilium pins under `/sys/fs/bpf/tc`.
pub const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/kubectl-mesh";

const BPF_FS_MAGIC: i64 = 0xcafe_4a11;
const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "this mesh-agent was built without its eBPF programs (the mesh-bpf `programs` feature)"
    )]
    NotBuilt,
    #[error("{path}: {what}")]
    Setup { path: PathBuf, what: String },
    #[error("loading the eBPF object: {0}")]
    Object(#[source] Box<aya::EbpfError>),
    #[error("program {name}: {source}")]
    Program {
        name: &'static str,
        #[source]
        source: Box<aya::programs::ProgramError>,
    },
    #[error("attaching program {name}: {source}")]
    Attach {
        name: &'static str,
        #[source]
        source: BoxError,
    },
    #[error("pinned link {path}: {source}")]
    Link {
        path: PathBuf,
        #[source]
        source: BoxError,
    },
    #[error("map {map}: {source}")]
    Map {
        map: &'static str,
        #[source]
        source: Box<aya::maps::MapError>,
    },
}

fn map_err(map: &'static str) -> impl Fn(aya::maps::MapError) -> Error {
    move |e| Error::Map {
        map,
        source: Box::new(e),
    }
}

fn setup(path: &Path, what: impl std::fmt::Display) -> Error {
    Error::Setup {
        path: path.to_path_buf(),
        what: what.to_string(),
    }
}

/// The filesystem magic of `path` (`statfs`).
fn fs_type(path: &Path) -> std::io::Result<i64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated path and `st` a writable statfs.
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    #[allow(clippy::unnecessary_cast)]
    Ok(st.f_type as i64)
}

fn mount(fstype: &str, target: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let t = std::ffi::CString::new(target.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let f = std::ffi::CString::new(fstype).expect("no NUL");
    // SAFETY: valid NUL-terminated strings; no data argument.
    if unsafe { libc::mount(f.as_ptr(), t.as_ptr(), f.as_ptr(), 0, std::ptr::null()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// A host-wide lock around "is it mounted? then mount it": two agents (or tests) starting at
/// once on a host without bpffs would otherwise both mount, the second mount hiding what the
/// first pinned. Best effort: without `/run` (or `/tmp`) writable, no lock.
struct MountLock {
    _held: Option<File>,
}

impl MountLock {
    fn take() -> MountLock {
        use std::os::fd::AsRawFd;
        let file = [
            "/run/kubectl-mesh-mount.lock",
            "/tmp/kubectl-mesh-mount.lock",
        ]
        .iter()
        .find_map(|p| {
            std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(p)
                .ok()
        });
        if let Some(f) = &file {
            // SAFETY: flock on a descriptor this struct owns; released when it is closed.
            unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
        }
        MountLock { _held: file }
    }
}

/// Make sure `pin_dir` lies on a bpf filesystem, mounting one on `/sys/fs/bpf` when the host
/// has none there (as Cilium's agent does).
fn ensure_bpffs(pin_dir: &Path) -> Result<(), Error> {
    let root = Path::new("/sys/fs/bpf");
    let _lock = MountLock::take();
    if pin_dir.starts_with(root) && fs_type(root).ok() != Some(BPF_FS_MAGIC) {
        std::fs::create_dir_all(root).map_err(|e| setup(root, e))?;
        mount("bpf", root).map_err(|e| setup(root, format!("mounting the bpf filesystem: {e}")))?;
    }
    std::fs::create_dir_all(pin_dir).map_err(|e| setup(pin_dir, e))?;
    match fs_type(pin_dir) {
        Ok(BPF_FS_MAGIC) => Ok(()),
        Ok(_) => Err(setup(
            pin_dir,
            "not on a bpf filesystem: pass a --bpf-pin-dir under /sys/fs/bpf",
        )),
        Err(e) => Err(setup(pin_dir, e)),
    }
}

/// The cgroup v2 root: where cgroup2 is mounted, else a cgroup2 mounted at
/// `/run/kubectl-mesh/cgroupv2` (hosts with only cgroup v1 hierarchies mounted).
pub fn cgroup2_root() -> Result<PathBuf, Error> {
    let mounts = std::fs::read_to_string("/proc/self/mounts")
        .map_err(|e| setup(Path::new("/proc/self/mounts"), e))?;
    if let Some(path) = mounts.lines().find_map(|l| {
        let mut f = l.split_whitespace();
        let (_, path, fstype) = (f.next()?, f.next()?, f.next()?);
        (fstype == "cgroup2").then(|| PathBuf::from(path.replace("\\040", " ")))
    }) {
        return Ok(path);
    }
    let path = PathBuf::from("/run/kubectl-mesh/cgroupv2");
    std::fs::create_dir_all(&path).map_err(|e| setup(&path, e))?;
    let _lock = MountLock::take();
    if fs_type(&path).ok() != Some(CGROUP2_SUPER_MAGIC) {
        mount("cgroup2", &path).map_err(|e| setup(&path, format!("mounting cgroup2: {e}")))?;
    }
    Ok(path)
}

/// Open a cgroup v2 directory to attach to; an error that says what to pass otherwise. Open
/// it before loading, so a wrong `--cgroup` leaves nothing pinned.
pub fn open_cgroup(cgroup: &Path) -> Result<File, Error> {
    let file = File::open(cgroup).map_err(|e| setup(cgroup, format!("opening the cgroup: {e}")))?;
    if fs_type(cgroup).ok() != Some(CGROUP2_SUPER_MAGIC) {
        return Err(setup(
            cgroup,
            "not a cgroup v2 directory: pass --cgroup PATH of a cgroup2 mount",
        ));
    }
    Ok(file)
}

/// Limits of the maps, from the agent's flags (they apply when the maps are first created;
/// pinned maps keep the sizes they were made with).
#[derive(Debug, Clone)]
pub struct Limits {
    pub services: u32,
    pub slots: u32,
    pub sockets: u32,
    /// Slots per frontend (see [`table::slots`]).
    pub slots_per_service: usize,
}

impl Limits {
    /// The defaults, the agent's flags' defaults too (Cilium sizes its LB maps alike).
    pub const DEFAULT: Limits = Limits {
        services: 65_536,
        slots: 262_144,
        sockets: 65_536,
        slots_per_service: 4_096,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}

/// What a sync did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SyncReport {
    pub written: usize,
    pub unchanged: usize,
    pub removed: usize,
    /// Frontends that could not be written (a full map, say), with why; the others are.
    pub failed: Vec<(SocketAddr, String)>,
    /// Attaching or detaching sock_ops failed: redirected connections are then routed by
    /// their Host (attach), or sock_ops keeps running for nothing (detach).
    pub sock_ops: Option<String>,
}

/// The maps a program reads, opened from the object just loaded or from their pins.
struct Maps {
    services: HashMap<MapData, Frontend, Service>,
    slots: HashMap<MapData, SlotKey, Addr>,
    stats: PerCpuArray<MapData, u64>,
}

impl Maps {
    /// The maps, each obtained by `get` (from a loaded object, or opened from its pin).
    fn from(
        mut get: impl FnMut(&'static str) -> Result<aya::maps::Map, Error>,
    ) -> Result<Self, Error> {
        Ok(Maps {
            services: HashMap::try_from(get("mesh_services")?).map_err(map_err("mesh_services"))?,
            slots: HashMap::try_from(get("mesh_slots")?).map_err(map_err("mesh_slots"))?,
            stats: PerCpuArray::try_from(get("mesh_stats")?).map_err(map_err("mesh_stats"))?,
        })
    }

    fn take(ebpf: &mut Ebpf) -> Result<(Self, OriginalDestinations), Error> {
        let mut take = |name: &'static str| {
            ebpf.take_map(name).ok_or(Error::Map {
                map: name,
                source: Box::new(aya::maps::MapError::InvalidName { name: name.into() }),
            })
        };
        let origdst = HashMap::try_from(take("mesh_origdst")?).map_err(map_err("mesh_origdst"))?;
        Ok((
            Maps::from(take)?,
            OriginalDestinations(Arc::new(Mutex::new(origdst))),
        ))
    }

    fn open(dir: &Path) -> Result<Self, Error> {
        Maps::from(|name| {
            let path = dir.join(name);
            let data = MapData::from_pin(&path).map_err(|e| setup(&path, e))?;
            aya::maps::Map::from_map_data(data).map_err(|e| setup(&path, e))
        })
    }

    /// Every frontend with its service value and slots, as the kernel holds them.
    fn read(&self) -> Vec<(Frontend, Service, Vec<Addr>)> {
        let mut out = Vec::new();
        for (frontend, service) in self.services.iter().flatten() {
            let slots = (0..service.count)
                .filter_map(|slot| {
                    let key = SlotKey {
                        frontend,
                        version: service.version,
                        slot,
                    };
                    self.slots.get(&key, 0).ok()
                })
                .collect();
            out.push((frontend, service, slots));
        }
        out.sort_by_key(|(f, _, _)| *f);
        out
    }

    fn stats(&self) -> Vec<Counter> {
        STATS
            .iter()
            .map(|&(index, name, help)| {
                let n = self
                    .stats
                    .get(&index, 0)
                    .map(|per_cpu| per_cpu.iter().sum())
                    .unwrap_or(0);
                Counter {
                    name,
                    help,
                    value: n,
                }
            })
            .collect()
    }
}

/// A counter of the programs, summed over CPUs, with its Prometheus name and help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counter {
    pub name: &'static str,
    pub help: &'static str,
    pub value: u64,
}

/// The views of what the maps hold; `names` gives each frontend its Service when known.
fn views(
    entries: Vec<(Frontend, Service, Vec<Addr>)>,
    names: &dyn Fn(&Frontend) -> Option<String>,
) -> Vec<ServiceView> {
    entries
        .into_iter()
        .map(|(frontend, service, slots)| {
            let backends = crate::view::backends_of(slots.iter().map(Addr::socket_addr));
            ServiceView {
                frontend: frontend.socket_addr().to_string(),
                protocol: frontend.transport().map_or("?", |t| t.as_str()).to_string(),
                service: names(&frontend),
                l7: service.flags & SERVICE_L7 != 0,
                version: service.version,
                backends,
            }
        })
        .collect()
}

/// The original destinations the programs recorded for redirected connections, by client
/// address: what the outbound entry asks for each connection it accepts.
#[derive(Clone)]
pub struct OriginalDestinations(Arc<Mutex<HashMap<MapData, Addr, Addr>>>);

impl OriginalDestinations {
    /// The Service address `client` dialled before it was redirected here, taken out of the
    /// map (a later connection from the same port is a new one).
    pub fn take(&self, client: SocketAddr) -> Option<SocketAddr> {
        let key = Addr::new(client);
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let orig = map.get(&key, 0).ok()?;
        let _ = map.remove(&key);
        Some(orig.socket_addr())
    }
}

/// The loaded programs and their maps.
pub struct Datapath {
    ebpf: Ebpf,
    dir: PathBuf,
    maps: Maps,
    origdst: OriginalDestinations,
    /// What each frontend holds now (read back at load, so a restart carries on from the
    /// pinned generations).
    written: Map<Frontend, (Service, Vec<SocketAddr>)>,
    limits: Limits,
    /// The cgroup attached to (`attach`), for attaching sock_ops later.
    cgroup: Option<File>,
    /// sock_ops is attached.
    sock_ops: bool,
}

impl Datapath {
    /// Load the programs into the kernel (verifier log in the error when one is refused),
    /// with maps pinned under `pin_dir/v<layout>` (reused when already there).
    pub fn load(pin_dir: &Path, limits: Limits) -> Result<Self, Error> {
        if OBJECT.is_empty() {
            return Err(Error::NotBuilt);
        }
        ensure_bpffs(pin_dir)?;
        let dir = pin_dir.join(format!("v{LAYOUT_VERSION}"));
        std::fs::create_dir_all(dir.join("links")).map_err(|e| setup(&dir, e))?;
        let has_set_retval = u32::from(
            aya::util::KernelVersion::current()
                .is_ok_and(|v| v >= aya::util::KernelVersion::new(5, 18, 0)),
        );
        let mut loader = EbpfLoader::new();
        loader
            .override_global("mesh_has_set_retval", &has_set_retval, true)
            .default_map_pin_directory(&dir)
            .map_max_entries("mesh_services", limits.services)
            .map_max_entries("mesh_slots", limits.slots)
            .map_max_entries("mesh_socks", limits.sockets)
            .map_max_entries("mesh_revnat", limits.sockets)
            .map_max_entries("mesh_origdst", limits.sockets);
        let mut ebpf = loader
            .load(OBJECT)
            .map_err(|e| Error::Object(Box::new(e)))?;
        for name in PROGRAMS {
            let program = ebpf.program_mut(name).ok_or_else(|| Error::Program {
                name,
                source: Box::new(aya::programs::ProgramError::UnexpectedProgramType),
            })?;
            let loaded = match program {
                aya::programs::Program::CgroupSockAddr(p) => p.load(),
                aya::programs::Program::SockOps(p) => p.load(),
                aya::programs::Program::CgroupSock(p) => p.load(),
                _ => Err(aya::programs::ProgramError::UnexpectedProgramType),
            };
            loaded.map_err(|source| Error::Program {
                name,
                source: Box::new(source),
            })?;
        }
        let (maps, origdst) = Maps::take(&mut ebpf)?;
        let written = maps
            .read()
            .into_iter()
            .map(|(f, s, slots)| (f, (s, slots.iter().map(Addr::socket_addr).collect())))
            .collect();
        Ok(Datapath {
            ebpf,
            dir,
            maps,
            origdst,
            written,
            limits,
            cgroup: None,
            sock_ops: false,
        })
    }

    /// Attach every program to `cgroup` (from [`open_cgroup`]; and so to every cgroup below
    /// it) through links
    /// pinned under `links/`, then detach the links a previous agent pinned: both run for a
    /// moment, which is harmless (the second program sees a backend, not a frontend), and no
    /// connect goes untranslated.
    pub fn attach(&mut self, cgroup: File) -> Result<(), Error> {
        for name in PROGRAMS {
            // sock_ops runs for every TCP callback of every socket of the cgroup (five per
            // connection), and only redirected connections need it: it is attached while some
            // frontend is L7 (see `sync`), and here only to replace a previous agent's.
            if name == SOCK_OPS && !self.link_path(name).exists() {
                continue;
            }
            self.attach_one(name, &cgroup)?;
            self.sock_ops = self.sock_ops || name == SOCK_OPS;
        }
        self.cgroup = Some(cgroup);
        Ok(())
    }

    fn link_path(&self, name: &str) -> PathBuf {
        self.dir.join("links").join(name)
    }

    /// Attach one program through a new link, pin it, then detach the link it replaces.
    fn attach_one(&mut self, name: &'static str, cgroup: &File) -> Result<(), Error> {
        let program = self.ebpf.program_mut(name).expect("loaded in load()");
        let link: FdLink = match program {
            aya::programs::Program::CgroupSockAddr(p) => attach_sock_addr(p, cgroup),
            aya::programs::Program::SockOps(p) => attach_sock_ops(p, cgroup),
            aya::programs::Program::CgroupSock(p) => attach_sock(p, cgroup),
            _ => Err(aya::programs::ProgramError::UnexpectedProgramType.into()),
        }
        .map_err(|source| Error::Attach { name, source })?;
        let path = self.link_path(name);
        // bpffs refuses '.' in names.
        let fresh = self.dir.join("links").join(format!("{name}_new"));
        let _ = std::fs::remove_file(&fresh);
        link.pin(&fresh).map_err(|e| Error::Link {
            path: fresh.clone(),
            source: Box::new(e),
        })?;
        remove_link(&path)?;
        std::fs::rename(&fresh, &path).map_err(|e| setup(&path, e))
    }

    /// Attach sock_ops before a frontend is redirected (so every redirected connection has
    /// its original destination filed), detach it once none is.
    fn sock_ops_for(&mut self, wanted: bool) -> Result<(), Error> {
        if wanted == self.sock_ops {
            return Ok(());
        }
        let Some(cgroup) = self.cgroup.take() else {
            return Ok(());
        };
        let done = if wanted {
            self.attach_one(SOCK_OPS, &cgroup)
        } else {
            remove_link(&self.link_path(SOCK_OPS))
        };
        self.cgroup = Some(cgroup);
        done?;
        self.sock_ops = wanted;
        Ok(())
    }

    /// Bring the maps to `table`: each changed frontend gets a new generation of slots, then
    /// its service value, then loses the old generation; frontends no longer in the table
    /// are removed. A frontend that cannot be written is reported and the others still are.
    pub fn sync(&mut self, table: &Table) -> SyncReport {
        let mut report = SyncReport::default();
        let redirects = table.entries.iter().any(|e| e.l7);
        if redirects {
            if let Err(e) = self.sock_ops_for(true) {
                report.sock_ops = Some(e.to_string());
            }
        }
        let mut wanted = std::collections::HashSet::new();
        for entry in &table.entries {
            let key = Frontend::new(entry.frontend, entry.transport);
            wanted.insert(key);
            let slots = table::slots(&entry.backends, self.limits.slots_per_service);
            let flags = if entry.l7 { SERVICE_L7 } else { 0 };
            let old = self.written.get(&key).cloned();
            if old
                .as_ref()
                .is_some_and(|(s, o)| s.flags == flags && *o == slots)
            {
                report.unchanged += 1;
                continue;
            }
            let service = Service {
                version: old.as_ref().map_or(1, |(s, _)| s.version.wrapping_add(1)),
                count: slots.len() as u32,
                flags,
            };
            match self.write(key, service, &slots) {
                Ok(()) => {
                    if let Some((s, _)) = old {
                        self.remove_slots(key, s);
                    }
                    self.written.insert(key, (service, slots));
                    report.written += 1;
                }
                Err(e) => {
                    // Leave the old generation serving; drop what was half written.
                    self.remove_slots(key, service);
                    report.failed.push((entry.frontend, e.to_string()));
                }
            }
        }
        let stale: Vec<Frontend> = self
            .written
            .keys()
            .filter(|k| !wanted.contains(k))
            .copied()
            .collect();
        for key in stale {
            let _ = self.maps.services.remove(&key);
            if let Some((s, _)) = self.written.remove(&key) {
                self.remove_slots(key, s);
            }
            report.removed += 1;
        }
        if !redirects {
            if let Err(e) = self.sock_ops_for(false) {
                report.sock_ops = Some(e.to_string());
            }
        }
        report
    }

    /// A generation's slots, then the service value that makes it the one in use.
    fn write(
        &mut self,
        frontend: Frontend,
        service: Service,
        slots: &[SocketAddr],
    ) -> Result<(), Error> {
        for (slot, addr) in slots.iter().enumerate() {
            let key = SlotKey {
                frontend,
                version: service.version,
                slot: slot as u32,
            };
            self.maps
                .slots
                .insert(key, Addr::new(*addr), 0)
                .map_err(map_err("mesh_slots"))?;
        }
        self.maps
            .services
            .insert(frontend, service, 0)
            .map_err(map_err("mesh_services"))
    }

    fn remove_slots(&mut self, frontend: Frontend, service: Service) {
        for slot in 0..service.count {
            let _ = self.maps.slots.remove(&SlotKey {
                frontend,
                version: service.version,
                slot,
            });
        }
    }

    /// What the kernel's maps hold, with each frontend's Service from `names`.
    pub fn services(&self, names: &dyn Fn(&Frontend) -> Option<String>) -> Vec<ServiceView> {
        views(self.maps.read(), names)
    }

    /// The programs' counters.
    pub fn stats(&self) -> Vec<Counter> {
        self.maps.stats()
    }

    pub fn original_destinations(&self) -> OriginalDestinations {
        self.origdst.clone()
    }

    /// The folder holding this layout's pins.
    pub fn pin_dir(&self) -> &Path {
        &self.dir
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

// `Single` is the mode a cgroup bpf_link takes (its flags must be 0); links to one cgroup
// still run side by side, in the order they were made. Kernels before 5.8 (no links for
// cgroups, no getpeername hooks) are refused by the loader before this.

fn attach_sock_addr(p: &mut CgroupSockAddr, cgroup: &File) -> Result<FdLink, BoxError> {
    let id = p.attach(cgroup, CgroupAttachMode::Single)?;
    Ok(FdLink::try_from(p.take_link(id)?)?)
}

fn attach_sock(p: &mut CgroupSock, cgroup: &File) -> Result<FdLink, BoxError> {
    let id = p.attach(cgroup, CgroupAttachMode::Single)?;
    Ok(FdLink::try_from(p.take_link(id)?)?)
}

fn attach_sock_ops(p: &mut SockOps, cgroup: &File) -> Result<FdLink, BoxError> {
    let id = p.attach(cgroup, CgroupAttachMode::Single)?;
    Ok(FdLink::try_from(p.take_link(id)?)?)
}

/// Unpin a pinned link and drop it, which detaches its program.
fn remove_link(path: &Path) -> Result<(), Error> {
    if !path.exists() {
        return Ok(());
    }
    let pinned = PinnedLink::from_pin(path).map_err(|e| Error::Link {
        path: path.to_path_buf(),
        source: Box::new(e),
    })?;
    pinned.unpin().map_err(|e| Error::Link {
        path: path.to_path_buf(),
        source: Box::new(e),
    })?;
    Ok(())
}

/// Detach everything an agent pinned under `pin_dir` (every layout version) and remove the
/// pins: `--bpf off`, or an uninstall. Returns whether anything was there.
pub fn uninstall(pin_dir: &Path) -> Result<bool, Error> {
    let Ok(versions) = std::fs::read_dir(pin_dir) else {
        return Ok(false);
    };
    for version in versions.flatten() {
        let dir = version.path();
        if let Ok(links) = std::fs::read_dir(dir.join("links")) {
            for link in links.flatten() {
                remove_link(&link.path())?;
            }
            let _ = std::fs::remove_dir(dir.join("links"));
        }
        if let Ok(pins) = std::fs::read_dir(&dir) {
            for pin in pins.flatten() {
                std::fs::remove_file(pin.path()).map_err(|e| setup(&pin.path(), e))?;
            }
        }
        std::fs::remove_dir(&dir).map_err(|e| setup(&dir, e))?;
    }
    std::fs::remove_dir(pin_dir).map_err(|e| setup(pin_dir, e))?;
    Ok(true)
}

/// What the pinned maps under `pin_dir` hold, read directly (`kubectl mesh proxy-config
/// services --bpf-pin`), like `cilium-dbg bpf lb list`.
pub fn read_pinned(pin_dir: &Path) -> Result<(Vec<ServiceView>, Vec<Counter>), Error> {
    let dir = pin_dir.join(format!("v{LAYOUT_VERSION}"));
    if !dir.is_dir() {
        return Err(setup(&dir, "no maps of this agent version are pinned here"));
    }
    let maps = Maps::open(&dir)?;
    Ok((views(maps.read(), &|_| None), maps.stats()))
}
