//! The browser parts under web/ are embedded with `include_dir!`, which cargo does not track:
//! without this, an edit there left the old pages in the binary.
fn main() {
    println!("cargo:rerun-if-changed=../../web");
}
