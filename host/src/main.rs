//! The `weir` command line: everything lives in the library; this only hands
//! over the process arguments.

fn main() -> std::process::ExitCode {
    weir::cli::main()
}
