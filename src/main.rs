//! The `sealmail` binary: everything lives in the library; see [`sealmail::cli`].

// why: see the note at `mimalloc` in Cargo.toml (benches/RESULTS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's options for the server, as `(variable, value)`: how long
/// freed memory waits before it goes back to the system (milliseconds;
/// mimalloc 3 waits 1,000), how many wholly free pages each thread
/// keeps per size class (mimalloc 3 keeps 2), and after how many
/// allocations off its fast path a thread collects its heap (mimalloc 3:
/// 10,000; the memory tick in `sealmail::memory` makes 1,000 such
/// allocations, so that each tick collects the heap of the thread it
/// runs on).
const ALLOCATOR_OPTIONS: [(&str, &str); 3] = [
    ("MIMALLOC_PURGE_DELAY", "10"),
    ("MIMALLOC_PAGE_FULL_RETAIN", "0"),
    ("MIMALLOC_GENERIC_COLLECT", "1000"),
];

fn main() -> std::process::ExitCode {
    allocator_settings();
    sealmail::cli::main()
}

/// `serve` runs itself again with [`ALLOCATOR_OPTIONS`], except those the
/// operator set. Why: mimalloc carries out a due purge only when some
/// thread allocates again, and each thread kept free pages of every size
/// class it used, so after a burst (imaptest's stress mode: 10 clients
/// appending and fetching) an idle server held about 200 MiB it had
/// freed, 4 times its start; with these it is back to its start once the
/// blocking pool's idle threads end (benches/RESULTS.md). The options are
/// read from the environment once, before `main`, and setting them in
/// code would need unsafe FFI, which the workspace forbids; `exec` keeps
/// the process id, limits and descriptors.
fn allocator_settings() {
    use std::os::unix::process::CommandExt as _;
    let mut args = std::env::args_os();
    let argv0 = args.next();
    let rest: Vec<std::ffi::OsString> = args.collect();
    let unset: Vec<(&str, &str)> = ALLOCATOR_OPTIONS
        .into_iter()
        .filter(|(key, _)| std::env::var_os(key).is_none())
        .collect();
    if unset.is_empty() || !rest.iter().any(|a| a == "serve") {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let mut command = std::process::Command::new(exe);
    if let Some(argv0) = argv0 {
        command.arg0(argv0);
    }
    // exec returns only when it failed: then serve with the defaults.
    let _ = command.args(rest).envs(unset).exec();
}
