fn main() -> std::process::ExitCode {
    pushspec::cli::main()
}
