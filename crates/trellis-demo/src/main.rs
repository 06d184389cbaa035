//! `trellis-app`: the demo applications as one binary (see `trellis_demo::cli`).

fn main() -> std::process::ExitCode {
    trellis_demo::cli::main(std::env::args_os(), true)
}
