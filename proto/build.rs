//! Compiles weir's `.proto` files with protox, a pure-Rust protobuf compiler,
//! so a fresh machine needs no system `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = ["proto/hstream.proto", "proto/devserver.proto"];
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }
    let descriptors = protox::compile(files, ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // Payloads stay `Bytes` end to end: a batch is sliced, never copied, on its
        // way from a rule's output to the wire.
        .bytes(".")
        .compile_fds(descriptors)?;
    Ok(())
}
