//! labkit: test support for the ocmigrate lab (see lab/README.md).
fn main() {
    eprintln!("labkit: not built yet");
    std::process::exit(2);
}
