//! The `sealmail` binary: everything lives in the library; see [`sealmail::cli`].

// why: see the note at `mimalloc` in Cargo.toml (benches/RESULTS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    sealmail::cli::main()
}
