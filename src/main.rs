fn main() {
    std::process::exit(multipathd::run(std::env::args_os().collect()));
}
