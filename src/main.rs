//! The `sealmail` binary: everything lives in the library; see [`sealmail::cli`].

fn main() -> std::process::ExitCode {
    sealmail::cli::main()
}
