//! The `tapswitch` command; all the work is in the library.
fn main() -> std::process::ExitCode {
    tapswitch::cli::main()
}
