//! Compiles `udf.proto` with protox (pure Rust), so no system `protoc` is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=udf.proto");
    let fds = protox::compile(["udf.proto"], ["."])?;
    prost_build::Config::new().compile_fds(fds)?;
    Ok(())
}
